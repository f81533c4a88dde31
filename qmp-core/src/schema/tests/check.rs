//! Argument checks against qemu-storage-daemon 10.0's schema, with the
//! texts the real daemon answered for the same arguments.

use super::{json, QSD};
use crate::schema::model::DeclModel;
use crate::schema::{check_arguments, CheckErrorKind, Lookup, Schema, Segment};

fn text(schema: &Schema<'_>, command: &str, args: &[u8]) -> String {
    match schema.check(command, Some(json(args))) {
        Ok(()) => "ok".into(),
        Err(e) => e.to_string(),
    }
}

#[test]
#[cfg_attr(miri, ignore = "scans of a 117 KB schema are slow under miri")]
fn qemu_texts() {
    let s = Schema::from_reply(json(QSD)).unwrap();
    for (cmd, args, want) in [
        (
            "query-block-jobs",
            &br#"{"x": 1}"#[..],
            "Parameter 'x' is unexpected",
        ),
        ("query-block-jobs", b"{}", "ok"),
        (
            "blockdev-add",
            br#"{"driver": "null-co", "node-name": "a"}"#,
            "ok",
        ),
        (
            "blockdev-add",
            br#"{"driver": "null-co", "node-name": "a", "size": "x"}"#,
            "Invalid parameter type for 'size', expected: integer",
        ),
        (
            "blockdev-add",
            br#"{"driver": "nope"}"#,
            "Parameter 'driver' does not accept value 'nope'",
        ),
        (
            "blockdev-add",
            br#"{"driver": "qcow2", "node-name": "q", "file": {"driver": "null-co", "size": "x"}}"#,
            "Invalid parameter type for 'file.size', expected: integer",
        ),
        (
            "blockdev-add",
            br#"{"node-name": "q"}"#,
            "Parameter 'driver' is missing",
        ),
        (
            "blockdev-add",
            br#"{"driver": "null-co", "cache": {"direct": 1}}"#,
            "Invalid parameter type for 'cache.direct', expected: boolean",
        ),
        (
            "blockdev-add",
            br#"{"driver": "null-co", "cache": {"x": 1}}"#,
            "Parameter 'cache.x' is unexpected",
        ),
        (
            "blockdev-add",
            br#"{"driver": "file", "node-name": "f", "filename": "/dev/null", "aio": "zz"}"#,
            "Parameter 'aio' does not accept value 'zz'",
        ),
        (
            "qmp_capabilities",
            br#"{"enable": ["x"]}"#,
            "Parameter 'null' does not accept value 'x'",
        ),
        (
            "qmp_capabilities",
            br#"{"enable": [1]}"#,
            "Invalid parameter type for 'enable[0]', expected: string",
        ),
        (
            "qmp_capabilities",
            br#"{"enable": "oob"}"#,
            "Invalid parameter type for 'enable', expected: array",
        ),
        ("nonesuch", b"{}", "The command nonesuch has not been found"),
    ] {
        assert_eq!(
            text(&s, cmd, args),
            want,
            "{cmd} {}",
            String::from_utf8_lossy(args)
        );
    }
}

#[test]
#[cfg_attr(miri, ignore = "scans of a 117 KB schema are slow under miri")]
fn paths_and_values() {
    let s = Schema::from_reply(json(QSD)).unwrap();
    let args = json(br#"{"driver": "qcow2", "file": {"driver": "null-co", "size": "x"}}"#);
    let e = s.check("blockdev-add", Some(args)).unwrap_err();
    let path: Vec<_> = e.path().collect();
    assert!(
        matches!(path[..], [Segment::Member(a), Segment::Member(b)] if a == "file" && b == "size")
    );
    assert_eq!(e.value().unwrap().as_bytes(), b"\"x\"");
    assert_eq!(e.class(), "GenericError");
    let e = s.check("nonesuch", None).unwrap_err();
    assert_eq!(e.kind(), CheckErrorKind::UnknownCommand);
    assert_eq!(e.class(), "CommandNotFound");
}

#[test]
fn declarations_check_like_the_schema_says() {
    use crate::schema::decl::{
        AlternateDecl, EnumDecl, EnumValueDecl, MemberDecl, ObjectDecl, TypeDecl, VariantDecl,
    };
    static KIND: EnumDecl<'static> =
        EnumDecl::new("Kind", &[EnumValueDecl::new("a"), EnumValueDecl::new("b")]);
    static A: ObjectDecl<'static> = ObjectDecl::new("A", &[MemberDecl::new("x", TypeDecl::INT)]);
    static REF: AlternateDecl<'static> =
        AlternateDecl::new("Ref", &[TypeDecl::STR, TypeDecl::Object(&A)]);
    static ARGS: ObjectDecl<'static> = ObjectDecl::union(
        "Args",
        &[
            MemberDecl::new("kind", TypeDecl::Enum(&KIND)),
            MemberDecl::optional("list", TypeDecl::Array(&TypeDecl::Object(&A))),
            MemberDecl::optional("ref", TypeDecl::Alternate(&REF)),
        ],
        "kind",
        &[VariantDecl::new("a", &A)],
    );
    let check = |args: &[u8]| match check_arguments(
        &DeclModel,
        TypeDecl::Object(&ARGS),
        Some(json(args)),
    ) {
        Ok(()) => "ok".to_string(),
        Err(e) => e.to_string(),
    };
    assert_eq!(check(br#"{"kind": "b"}"#), "ok");
    assert_eq!(check(br#"{"kind": "a"}"#), "Parameter 'x' is missing");
    assert_eq!(check(br#"{"kind": "a", "x": 1}"#), "ok");
    assert_eq!(
        check(br#"{"kind": "b", "x": 1}"#),
        "Parameter 'x' is unexpected"
    );
    assert_eq!(
        check(br#"{"kind": "a", "x": 1.5}"#),
        "Invalid parameter type for 'x', expected: integer"
    );
    assert_eq!(
        check(br#"{"kind": "b", "list": [{"x": 1}, {}]}"#),
        "Parameter 'list[1].x' is missing"
    );
    assert_eq!(
        check(br#"{"kind": "b", "list": [{"x": 1, "y": 2}]}"#),
        "Parameter 'list[0].y' is unexpected"
    );
    // Indices of several digits (written without `core::fmt`).
    for (at, want) in [(10, "list[10].x"), (123, "list[123].x")] {
        let mut args = String::from(r#"{"kind": "b", "list": ["#);
        for _ in 0..at {
            args.push_str(r#"{"x": 1}, "#);
        }
        args.push_str("{}]}");
        assert_eq!(
            check(args.as_bytes()),
            format!("Parameter '{want}' is missing")
        );
    }
    assert_eq!(check(br#"{"kind": "b", "ref": "n"}"#), "ok");
    assert_eq!(check(br#"{"kind": "b", "ref": {"x": 2}}"#), "ok");
    assert_eq!(
        check(br#"{"kind": "b", "ref": {"x": "2"}}"#),
        "Invalid parameter type for 'ref.x', expected: integer"
    );
    assert_eq!(
        check(br#"{"kind": "b", "ref": 1}"#),
        "Invalid parameter type for 'ref', expected: Ref"
    );
    assert_eq!(
        check(br#"{"kind": "c"}"#),
        "Parameter 'kind' does not accept value 'c'"
    );
    assert_eq!(
        check(br#"{"kind": 1}"#),
        "Invalid parameter type for 'kind', expected: string"
    );
    assert_eq!(check(b"{}"), "Parameter 'kind' is missing");
    // Arguments absent are {}.
    assert!(check_arguments(&DeclModel, TypeDecl::Object(&ARGS), None).is_err());
}

#[test]
fn a_looping_schema_is_cut_off() {
    let s = Schema::new(json(
        br#"[{"name": "c", "meta-type": "command", "arg-type": "0", "ret-type": "0"},
             {"name": "0", "meta-type": "object", "members": [{"name": "a", "type": "1"}]},
             {"name": "1", "meta-type": "alternate", "members": [{"type": "[1]"}]},
             {"name": "[1]", "meta-type": "array", "element-type": "1"},
             {"name": "d", "meta-type": "command", "arg-type": "9", "ret-type": "0"},
             {"name": "u", "meta-type": "command", "arg-type": "2", "ret-type": "0"},
             {"name": "2", "meta-type": "object", "members": [{"name": "t", "type": "str"}],
              "tag": "t", "variants": [{"case": "x", "type": "2"}]},
             {"name": "str", "meta-type": "builtin", "json-type": "string"}]"#,
    ))
    .unwrap();
    let deep = "[".repeat(40) + &"]".repeat(40);
    let args = format!(r#"{{"a": {deep}}}"#);
    let e = s.check("c", Some(json(args.as_bytes()))).unwrap_err();
    assert_eq!(e.kind(), CheckErrorKind::TooDeep);
    let e = s.check("d", None).unwrap_err();
    assert_eq!(e.kind(), CheckErrorKind::BrokenSchema);
    // A union that is its own variant.
    let e = s.check("u", Some(json(br#"{"t": "x"}"#))).unwrap_err();
    assert_eq!(e.kind(), CheckErrorKind::TooDeep);
}
