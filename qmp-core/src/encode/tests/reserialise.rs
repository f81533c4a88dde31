//! The re-serialiser: QDict order through the order table, its batches and
//! its member-by-member fallback; deep nesting; malformed input.

use super::{qemu, qemu_once, raw};
use crate::encode::reserialise::ORDER_SLOTS;
use crate::encode::{qdict_bucket, write_value_qemu, Style};
use std::string::String;
use std::vec;
use std::vec::Vec;

enum V {
    Int(usize),
    Obj(Vec<(String, V)>),
}
fn obj(prefix: &str, n: usize, nested: Vec<(usize, V)>) -> V {
    let mut members: Vec<(String, V)> = (0..n)
        .map(|i| (std::format!("{prefix}{i}"), V::Int(i)))
        .collect();
    for (at, v) in nested {
        members.insert(at, (std::format!("{prefix}-nested{at}"), v));
    }
    V::Obj(members)
}
fn input(v: &V, out: &mut String) {
    match v {
        V::Int(i) => out.push_str(&std::format!("{i}")),
        V::Obj(m) => {
            out.push('{');
            for (i, (k, v)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&std::format!("\"{k}\":"));
                input(v, out);
            }
            out.push('}');
        }
    }
}
fn expected(v: &V, out: &mut String) {
    match v {
        V::Int(i) => out.push_str(&std::format!("{i}")),
        V::Obj(m) => {
            let mut order: Vec<(u32, usize)> = m
                .iter()
                .enumerate()
                .map(|(i, (k, _))| (qdict_bucket(k.as_bytes()), i))
                .collect();
            order.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
            out.push('{');
            for (n, (_, i)) in order.iter().enumerate() {
                if n > 0 {
                    out.push_str(", ");
                }
                out.push_str(&std::format!("\"{}\": ", m[*i].0));
                expected(&m[*i].1, out);
            }
            out.push('}');
        }
    }
}

/// Objects ordered in one pass, in batches (too large for the free
/// slots), and member by member (the table full) all come out in
/// QDict order, against a plain sort.
#[test]
#[cfg_attr(
    miri,
    ignore = "thousands of members through the batched and quadratic paths: too slow under Miri"
)]
#[cfg_attr(
    not(feature = "qdict-order"),
    ignore = "asserts the behaviour of `qdict-order`"
)]
fn order_table_and_fallback_agree() {
    let cases = [
        obj("a", 0, vec![]),
        obj("a", 1, vec![]),
        obj("a", 5, vec![(2, obj("b", 3, vec![]))]),
        obj("a", ORDER_SLOTS - 1, vec![]),
        obj("a", ORDER_SLOTS, vec![]),
        obj("a", ORDER_SLOTS + 1, vec![]),
        obj("a", 200, vec![(7, obj("b", 9, vec![]))]),
        obj(
            "a",
            ORDER_SLOTS / 2,
            vec![(3, obj("b", ORDER_SLOTS / 2, vec![]))],
        ),
        obj("a", 2 * ORDER_SLOTS + 1, vec![]),
        // Batches of 32 with a batched child (16) inside, twice.
        obj(
            "a",
            3_000,
            vec![
                (0, obj("b", 100, vec![(50, obj("c", 70, vec![]))])),
                (1_500, obj("d", 17, vec![])),
                (2_999, obj("e", 40, vec![])),
            ],
        ),
        // Ten levels of 600-member objects (more than the 512 buckets,
        // so keys share buckets): the table runs out at the 8th, which
        // then picks member by member.
        (0..10).fold(obj("z", 600, vec![]), |inner, level| {
            obj(&std::format!("l{level}-"), 600, vec![(300, inner)])
        }),
        // The child no longer fits next to its parent; its siblings
        // after it do again, once it is closed.
        obj(
            "a",
            40,
            vec![
                (3, obj("b", 10, vec![])),
                (10, obj("c", 40, vec![(5, obj("d", 2, vec![]))])),
                (20, obj("e", 20, vec![])),
            ],
        ),
    ];
    for case in &cases {
        let (mut i, mut e) = (String::new(), String::new());
        input(case, &mut i);
        expected(case, &mut e);
        assert_eq!(qemu_once(&i, Style::QMP), e, "input {i}");
    }
}

/// Random trees of objects (0 to 300 members, up to 5 levels, short
/// keys that often share buckets) against a plain sort: whole batches,
/// a short last batch, children batched inside batches.
#[test]
#[cfg_attr(miri, ignore = "hundreds of large objects: too slow under Miri")]
#[cfg_attr(
    not(feature = "qdict-order"),
    ignore = "asserts the behaviour of `qdict-order`"
)]
fn random_objects_in_qdict_order() {
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    fn tree(next: &mut dyn FnMut(usize) -> usize, depth: usize) -> V {
        let n = match next(3) {
            0 => next(6),
            1 => 30 + next(40),
            _ => 100 + next(200),
        };
        let mut members = Vec::new();
        for i in 0..n {
            let key = std::format!("{}{}", ["k", "key-", "x"][next(3)], next(1000));
            let v = if depth < 4 && next(80) == 0 {
                tree(next, depth + 1)
            } else {
                V::Int(i)
            };
            members.push((key, v));
        }
        V::Obj(members)
    }
    for _ in 0..200 {
        let t = tree(&mut next, 0);
        let (mut i, mut e) = (String::new(), String::new());
        input(&t, &mut i);
        expected(&t, &mut e);
        assert_eq!(qemu_once(&i, Style::QMP), e, "input {i}");
    }
}

/// Without the `qdict-order` feature: QEMU's spacing, escapes and numbers,
/// members in input order (at every depth).
#[test]
fn input_order_without_qdict_order() {
    let unordered = |input: &str, style: Style| {
        let mut buf = vec![0u8; 256];
        let mut w = crate::encode::JsonWriter::new(&mut buf, style);
        crate::encode::reserialise::write_raw_as(&mut w, raw(input.as_bytes()), false).unwrap();
        let n = w.finish().unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    };
    assert_eq!(
        unordered(r#"{"major":10,"minor":0,"micro":2}"#, Style::QMP),
        r#"{"major": 10, "minor": 0, "micro": 2}"#
    );
    assert_eq!(
        unordered(
            r#" { "id" : {"b":[1,'x\u00e9'],"a":-0}, "error":{}, "return" : [ ] } "#.trim(),
            Style::QMP
        ),
        r#"{"id": {"b": [1, "x\u00E9"], "a": 0}, "error": {}, "return": []}"#
    );
    assert_eq!(
        unordered(r#"{"b":[{"b":1,"a":2}],"a":[]}"#, Style::CLIENT),
        r#"{"b":[{"b":1,"a":2}],"a":[]}"#
    );
    assert_eq!(
        unordered("[null,false,true]", Style::QMP),
        "[null, false, true]"
    );
    // The default build orders them.
    assert_eq!(
        super::qemu(r#"{"major":10,"minor":0,"micro":2}"#, Style::QMP)
            == r#"{"micro": 2, "minor": 0, "major": 10}"#,
        cfg!(feature = "qdict-order")
    );
}

#[test]
#[cfg_attr(
    not(feature = "qdict-order"),
    ignore = "asserts the behaviour of `qdict-order`"
)]
fn qemu_key_order() {
    assert_eq!(
        qemu(r#"[1,{"b":2,"a":1}]"#, Style::QMP),
        r#"[1, {"a": 1, "b": 2}]"#
    );
    assert_eq!(
        qemu(r#"{"major":10,"minor":0,"micro":2}"#, Style::QMP),
        r#"{"micro": 2, "minor": 0, "major": 10}"#
    );
    // Same bucket: the later input key comes first.
    assert_eq!(
        qemu(r#"{"micro":2,"minor":0}"#, Style::QMP),
        r#"{"minor": 0, "micro": 2}"#
    );
    assert_eq!(
        qemu(
            r#" { "id" : {"a":[1,"x"]}, "error":{}, "return" : [ ] } "#.trim(),
            Style::QMP
        ),
        r#"{"return": [], "id": {"a": [1, "x"]}, "error": {}}"#
    );
    assert_eq!(
        qemu("{'b': 'x', 'a': true}", Style::QMP),
        r#"{"a": true, "b": "x"}"#
    );
    assert_eq!(qemu("[null,false,true]", Style::QMP), "[null, false, true]");
    assert_eq!(qemu("[]", Style::QMP), "[]");
    assert_eq!(qemu("{}", Style::QMP), "{}");
    assert_eq!(
        qemu(r#"{"b":[{"b":1,"a":2}],"a":[]}"#, Style::CLIENT),
        r#"{"a":[],"b":[{"a":2,"b":1}]}"#
    );
}

#[test]
#[cfg_attr(
    miri,
    ignore = "1000 levels are quadratic to reorder: minutes under Miri"
)]
#[cfg_attr(
    not(feature = "qdict-order"),
    ignore = "asserts the behaviour of `qdict-order`"
)]
fn deep_nesting() {
    for depth in [31usize, 32, 33, 40, 1000] {
        let mut s = String::new();
        for _ in 0..depth {
            s.push_str(r#"{"b":1,"a":["#);
        }
        s.push_str("null");
        for _ in 0..depth {
            s.push_str("]}");
        }
        let out = qemu_once(&s, Style::QMP);
        if depth < 100 {
            // Pretty output is quadratic in depth (indentation).
            let pretty = qemu_once(&s, Style::QMP_PRETTY);
            assert_eq!(pretty.matches(": ").count(), 2 * depth);
            let a: serde_json::Value = serde_json::from_str(&s).unwrap();
            let b: serde_json::Value = serde_json::from_str(&out).unwrap();
            let c: serde_json::Value = serde_json::from_str(&pretty).unwrap();
            assert_eq!(a, b);
            assert_eq!(b, c);
        }
        // The outermost levels are reordered.
        assert!(out.starts_with(r#"{"a": [{"a": ["#), "{depth}");
        assert_eq!(out.matches(": ").count(), 2 * depth);
    }
    // Deep arrays and reordering below the fallback level.
    let s = std::format!("{}{}", "[".repeat(50), "]".repeat(50));
    assert_eq!(qemu(&s, Style::CLIENT), s);
}

#[test]
fn malformed_raw_does_not_panic() {
    for bad in [
        &b""[..],
        b"{",
        b"[1,",
        b"{\"a\"",
        b"\"abc",
        b"\"\\",
        b"@",
        b"{\"a\":}",
        b"]",
        b"nul",
        b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
        b"[\"\\u12\"]",
        b"-",
    ] {
        let mut buf = [0u8; 256];
        let _ = write_value_qemu(&mut buf, Style::QMP, raw(bad));
        let _ = write_value_qemu(&mut buf, Style::QMP_PRETTY, raw(bad));
    }
}
