//! The serde serializer against serde_json, scalars and errors.

use super::text;
use crate::encode::{write_value, EncodeError, Ser, Style};
use serde::ser::{self, Serialize};
use std::string::String;
use std::vec;
use std::vec::Vec;

#[derive(serde::Serialize)]
struct Inner<'a> {
    name: &'a str,
    list: Vec<u32>,
    opt: Option<i8>,
    unit: (),
}

#[derive(serde::Serialize)]
enum E {
    Unit,
    New(u8),
    Tuple(u8, i64),
    Struct { x: bool },
}

#[derive(serde::Serialize)]
struct Outer<'a> {
    inner: Inner<'a>,
    e: [E; 4],
    tuple: (u8, &'a str),
    map: std::collections::BTreeMap<&'a str, i32>,
    empty: Vec<u8>,
    newtype: Wrapper,
}

#[derive(serde::Serialize)]
struct Wrapper(i64);

fn ser<T: Serialize>(v: &T, style: Style) -> String {
    text(|o| write_value(o, style, &Ser(v)))
}

#[test]
fn serializer_matches_serde_json() {
    let mut map = std::collections::BTreeMap::new();
    map.insert("z", -1);
    map.insert("a", 2);
    let v = Outer {
        inner: Inner {
            name: "x/y \"q\"",
            list: vec![1, 2, 3],
            opt: None,
            unit: (),
        },
        e: [E::Unit, E::New(1), E::Tuple(2, -3), E::Struct { x: true }],
        tuple: (7, "t"),
        map,
        empty: vec![],
        newtype: Wrapper(i64::MIN),
    };
    assert_eq!(ser(&v, Style::CLIENT), serde_json::to_string(&v).unwrap());
    let compact = ser(&v, Style::QMP);
    let a: serde_json::Value = serde_json::from_str(&compact).unwrap();
    assert_eq!(a, serde_json::to_value(&v).unwrap());
    assert!(
        compact.starts_with(r#"{"inner": {"name": "x/y \"q\"", "list": [1, 2, 3], "opt": null"#)
    );
    let pretty = ser(&v, Style::QMP_PRETTY);
    let b: serde_json::Value = serde_json::from_str(&pretty).unwrap();
    assert_eq!(a, b);
    assert!(pretty.contains("\"empty\": [\r\n    ],"));
}

#[test]
#[cfg_attr(
    not(feature = "exact-floats"),
    ignore = "asserts the behaviour of `exact-floats`"
)]
fn serializer_scalars() {
    assert_eq!(ser(&'é', Style::QMP), r#""\u00E9""#);
    assert_eq!(ser(&"😀\u{7f}", Style::QMP), r#""\uD83D\uDE00\u007F""#);
    assert_eq!(ser(&0.1f64, Style::QMP), "0.10000000000000001");
    assert_eq!(ser(&3.0f64, Style::QMP), "3");
    assert_eq!(ser(&0.5f32, Style::QMP), "0.5");
    assert_eq!(ser(&u64::MAX, Style::QMP), "18446744073709551615");
    assert_eq!(
        ser(&(i128::from(i64::MIN)), Style::QMP),
        "-9223372036854775808"
    );
    assert_eq!(
        ser(&u128::from(u64::MAX), Style::QMP),
        "18446744073709551615"
    );
    assert_eq!(ser(&Some(true), Style::QMP), "true");
    assert_eq!(ser(&serde_bytes_like(), Style::QMP), "[0, 255]");
    assert_eq!(ser(&format_args!("a{}\"", 1), Style::QMP), r#""a1\"""#);
    let mut buf = [0u8; 64];
    for e in [
        write_value(&mut buf, Style::QMP, &Ser(&f64::NAN)),
        write_value(&mut buf, Style::QMP, &Ser(&f32::INFINITY)),
        write_value(&mut buf, Style::QMP, &Ser(&u128::MAX)),
        write_value(&mut buf, Style::QMP, &Ser(&i128::MIN)),
    ] {
        assert_eq!(e, Err(EncodeError::Unsupported));
    }
    let mut m = std::collections::BTreeMap::new();
    m.insert(1, 2);
    assert_eq!(
        write_value(&mut buf, Style::QMP, &Ser(&m)),
        Err(EncodeError::KeyMustBeString)
    );
    let mut m = std::collections::BTreeMap::new();
    m.insert('k', 2);
    assert_eq!(ser(&m, Style::QMP), r#"{"k": 2}"#);
    // Errors win over a short buffer.
    assert_eq!(
        write_value(&mut [], Style::QMP, &Ser(&f64::NAN)),
        Err(EncodeError::Unsupported)
    );
}

struct Bytes;
fn serde_bytes_like() -> Bytes {
    Bytes
}
impl Serialize for Bytes {
    fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&[0, 255])
    }
}
