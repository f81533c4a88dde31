//! The views and the index over qemu-storage-daemon 10.0's schema.

use super::{json, QSD};
use crate::schema::{JsonType, Kind, Lookup, MetaType, Schema, SchemaError};

#[test]
#[cfg_attr(miri, ignore = "walks of a 117 KB schema are slow under miri")]
fn views_of_a_real_schema() {
    let schema = Schema::from_reply(json(QSD)).unwrap();
    assert_eq!(schema.len(), 513);
    let add = schema.command("blockdev-add").unwrap();
    assert!(!add.allows_oob() && !add.is_deprecated());
    assert_eq!(add.ret_type().unwrap(), "2");
    let args = schema.arguments_of("blockdev-add").unwrap();
    assert_eq!(args.tag().unwrap(), "driver");
    assert!(args.variants().count() > 40);
    let file = schema.resolve(args.variant("file").unwrap().type_name());
    let Some(Kind::Object(file)) = file.map(|e| e.kind()) else {
        panic!("file variant is an object")
    };
    let aio = file.member("aio").unwrap();
    assert!(aio.is_optional());
    let Kind::Enum(aio) = schema.resolve(aio.type_name()).unwrap().kind() else {
        panic!("aio is an enum")
    };
    assert!(aio.value("threads").is_some() && aio.value("nope").is_none());
    assert!(schema.command("drive-backup").unwrap().is_deprecated());
    assert!(schema
        .command("x-debug-query-block-graph")
        .unwrap()
        .is_unstable());
    let Kind::Builtin(int) = schema.get("int").unwrap().kind() else {
        panic!("int is a builtin")
    };
    assert_eq!(int.json_type(), Some(JsonType::Int));
    assert!(schema.event("JOB_STATUS_CHANGE").is_some());
    assert!(schema.command("JOB_STATUS_CHANGE").is_none());
    let counts = [
        MetaType::Object,
        MetaType::Command,
        MetaType::Enum,
        MetaType::Array,
        MetaType::Event,
        MetaType::Builtin,
        MetaType::Alternate,
    ]
    .map(|m| schema.entries().filter(|e| e.meta_type() == m).count());
    assert_eq!(counts, [306, 76, 68, 39, 13, 6, 5]);
}

#[test]
#[cfg_attr(
    miri,
    ignore = "513 lookups of a 117 KB schema by scan are slow under miri"
)]
fn the_index_finds_what_the_scan_finds() {
    let schema = Schema::from_reply(json(QSD)).unwrap();
    let mut short = [0u32; 10];
    assert_eq!(schema.index(&mut short).unwrap_err().required, 513);
    let mut storage = [0u32; 513];
    let index = schema.index(&mut storage).unwrap();
    for e in schema.entries() {
        let name = e.name();
        assert_eq!(index.resolve(name), schema.resolve(name), "{name}");
    }
    assert!(index.get("no-such-thing").is_none());
    assert!(index.get("").is_none());
    assert!(index.get("zzzz").is_none());
}

#[test]
fn malformed_schemas_are_refused_or_read_as_absent() {
    assert_eq!(
        Schema::new(json(b"{}")).unwrap_err(),
        SchemaError::NotAnArray
    );
    assert_eq!(
        Schema::new(json(br#"[{"name": "a", "meta-type": "enum"}, 1]"#)).unwrap_err(),
        SchemaError::BadEntry { index: 1 }
    );
    assert_eq!(
        Schema::new(json(br#"[{"name": 1, "meta-type": "enum"}]"#)).unwrap_err(),
        SchemaError::BadEntry { index: 0 }
    );
    assert_eq!(
        Schema::from_reply(json(b"{}")).unwrap_err(),
        SchemaError::NoReturn
    );
    // Entries that lack what their meta-type needs read as empty.
    let s = Schema::new(json(
        br#"[{"name": "o", "meta-type": "object", "members": 3},
             {"name": "e", "meta-type": "enum", "members": [1, {"x": 1}]},
             {"name": "c", "meta-type": "command", "features": [1, "x"]},
             {"name": "n", "meta-type": "nonesuch"}]"#,
    ))
    .unwrap();
    let Kind::Object(o) = s.get("o").unwrap().kind() else {
        panic!()
    };
    assert_eq!(o.members().count(), 0);
    let Kind::Enum(e) = s.get("e").unwrap().kind() else {
        panic!()
    };
    assert_eq!(e.members().count(), 0);
    let c = s.command("c").unwrap();
    assert!(c.arg_type().is_none() && c.has_feature("x"));
    assert_eq!(c.features().count(), 1);
    assert!(matches!(s.get("n").unwrap().kind(), Kind::Unknown(_)));
    // Old-style enums (QEMU before 6.2) have values only.
    let s = Schema::new(json(
        br#"[{"name": "e", "meta-type": "enum", "values": ["a", "b"]}]"#,
    ))
    .unwrap();
    let Kind::Enum(e) = s.get("e").unwrap().kind() else {
        panic!()
    };
    assert_eq!(e.members().count(), 2);
    assert!(e.value("b").is_some_and(|v| v.features().count() == 0));
}

#[test]
fn names_with_escapes_compare_decoded() {
    let s = Schema::new(json(
        br#"[{"name": "b\u0061", "meta-type": "enum"}, {"name": "a", "meta-type": "enum"}]"#,
    ))
    .unwrap();
    let mut storage = [0u32; 2];
    let index = s.index(&mut storage).unwrap();
    assert!(index.get("ba").is_some() && s.get("ba").is_some());
    assert!(index.get("a").is_some() && index.get("b").is_none());
}
