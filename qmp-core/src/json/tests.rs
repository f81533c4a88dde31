//! Unit tests of the zero-copy JSON views.

use super::*;
use std::format;
use std::string::String;
use std::vec::Vec;

fn raw(s: &str) -> RawJson<'_> {
    RawJson::from_validated(s.as_bytes())
}

fn jstr(s: &str) -> JsonStr<'_> {
    raw(s).as_json_str().unwrap()
}

#[test]
fn scalars() {
    assert_eq!(raw("{}").kind(), JsonKind::Object);
    assert_eq!(raw("[]").kind(), JsonKind::Array);
    assert_eq!(raw("'x'").kind(), JsonKind::String);
    assert_eq!(raw("-1").kind(), JsonKind::Number);
    assert_eq!(raw("false").kind(), JsonKind::Bool);
    assert_eq!(raw("null").kind(), JsonKind::Null);
    assert!(raw("null").is_null());
    assert_eq!(raw("true").as_bool(), Some(true));
    assert_eq!(raw("1").as_bool(), None);
    assert_eq!(raw("-0").as_i64(), Some(0));
    assert_eq!(raw("-0").as_u64(), Some(0));
    assert_eq!(raw("-5").as_u64(), None);
    assert_eq!(
        raw("1795285234267252000").as_u64(),
        Some(1_795_285_234_267_252_000)
    );
    assert_eq!(
        raw("1795285234267252000").as_i64(),
        Some(1_795_285_234_267_252_000)
    );
    assert_eq!(raw("18446744073709551615").as_u64(), Some(u64::MAX));
    assert_eq!(raw("18446744073709551615").as_i64(), None);
    assert_eq!(raw("18446744073709551616").as_u64(), None);
    assert_eq!(raw("1.0").as_i64(), None);
    assert_eq!(raw("1e2").as_u64(), None);
    assert_eq!(raw("1e2").as_f64(), Some(100.0));
    assert_eq!(raw("-0.5").as_f64(), Some(-0.5));
    assert_eq!(raw("\"1\"").as_f64(), None);
    assert_eq!(raw("\"1\"").as_i64(), None);
    assert_eq!(raw("1").as_json_str(), None);
    assert_eq!(raw("\"").as_json_str(), None);
    assert_eq!(raw("'a\"").as_json_str(), None);
    assert_eq!(raw("[1]").as_str(), Some("[1]"));
    assert_eq!(format!("{:?}", raw("[\"a\"]")), "RawJson([\"a\"])");
    assert_eq!(
        format!("{}", RawJson::from_validated(b"\"\xC0\x80\"")),
        "\"\\xC0\\x80\""
    );
    assert_eq!(format!("{:?}", jstr(r#""a\n""#)), r#""a\n""#);
    assert_eq!(format!("{:?}", jstr("'b'")), "'b'");
}

#[test]
fn containers() {
    let v = raw(r#" {"a" : [1, {"x":"}]"}, 'q'] , "b\u0031":null,"e":{}, "c": -2.5e3 }"#.trim());
    let keys: Vec<_> = v.members().map(|(k, _)| k.raw()).collect();
    assert_eq!(keys, [&b"a"[..], b"b\\u0031", b"e", b"c"]);
    let a = v.get("a").unwrap();
    assert_eq!(a.as_bytes(), br#"[1, {"x":"}]"}, 'q']"#);
    let elems: Vec<_> = a.elements().map(|e| e.as_bytes()).collect();
    assert_eq!(elems, [&b"1"[..], br#"{"x":"}]"}"#, b"'q'"]);
    assert_eq!(elems.len(), 3);
    assert!(v.get("b1").unwrap().is_null());
    assert_eq!(v.get("e").unwrap().as_bytes(), b"{}");
    assert_eq!(v.get("c").unwrap().as_f64(), Some(-2500.0));
    assert_eq!(v.get("zz"), None);
    assert_eq!(a.get("a"), None);
    assert_eq!(v.elements().count(), 0);
    assert_eq!(raw("[]").elements().count(), 0);
    assert_eq!(raw("{}").members().count(), 0);
    assert_eq!(raw("[[],[[]],{}]").elements().count(), 3);
    let s = raw(r#"{"k":"a\"\\"}"#);
    assert!(s.get("k").unwrap().as_json_str().unwrap().eq_str("a\"\\"));
    // Malformed input never panics.
    for bad in [
        "{",
        "{\"a\"",
        "[1,",
        "{\"a\":",
        "[\"\\",
        "]",
        "}",
        "{]",
        "[@]",
        "{\"a\":1]",
    ] {
        let _ = raw(bad).members().count();
        let _ = raw(bad).elements().count();
        let _ = raw(bad).get("a");
    }
}

#[test]
fn strings() {
    let s = jstr(r#""a\"b\\c\/d\'e\b\f\n\r\t\u00e9\ud83d\ude00\u0000z""#);
    assert!(s.has_escapes());
    assert_eq!(s.as_plain_str(), None);
    let want = "a\"b\\c/d'e\u{8}\u{c}\n\r\té😀\0z";
    assert!(s.eq_str(want));
    assert!(s == want);
    assert!(!s.eq_str("a"));
    assert!(!s.eq_str(&format!("{want}!")));
    assert_eq!(s.unescaped_len(), want.len());
    let mut buf = [0u8; 64];
    assert_eq!(s.unescape_str_into(&mut buf).unwrap(), want);
    let mut small = [0u8; 5];
    assert_eq!(
        s.unescape_into(&mut small),
        Err(UnescapeError::InsufficientSize(InsufficientSize {
            required: want.len()
        }))
    );
    let frags: Vec<_> = jstr(r#""ab\ncd""#).fragments().collect();
    assert_eq!(
        frags,
        [
            Fragment::Literal(b"ab"),
            Fragment::Char('\n'),
            Fragment::Literal(b"cd")
        ]
    );
    let plain = jstr("'plain'");
    assert_eq!(plain.quote(), b'\'');
    assert_eq!(plain.as_plain_str(), Some("plain"));
    assert!(plain.eq_str("plain"));
    // Modified-UTF-8 NUL: bytes kept, not UTF-8.
    let nul = RawJson::from_validated(b"\"\xC0\x80\"")
        .as_json_str()
        .unwrap();
    assert_eq!(nul.as_plain_str(), None);
    assert_eq!(nul.unescape_into(&mut buf).unwrap(), b"\xC0\x80");
    assert_eq!(nul.unescape_str_into(&mut buf), Err(UnescapeError::NotUtf8));
    // Malformed escapes decode as U+FFFD, never panic.
    for bad in [
        r"\",
        r"\u12",
        r"\x",
        r"\ud800",
        r"\ud800\u0041",
        r"\udc00",
        r"\u12G4",
    ] {
        let s = JsonStr::from_validated(bad.as_bytes(), b'"');
        let out: String = s
            .fragments()
            .map(|f| match f {
                Fragment::Char(c) => c,
                Fragment::Literal(_) => 'L',
            })
            .collect();
        assert!(out.contains('\u{FFFD}'), "{bad}: {out}");
    }
    assert_eq!(
        format!("{}", UnescapeError::NotUtf8),
        "unescaped string is not valid UTF-8"
    );
}

#[derive(serde::Deserialize, Debug, PartialEq)]
struct Version<'a> {
    package: &'a str,
    qemu: Qemu,
}

#[derive(serde::Deserialize, Debug, PartialEq)]
struct Qemu {
    major: u32,
    minor: u32,
    micro: u32,
}

#[test]
fn parse() {
    let v = raw(r#"{"qemu": {"micro": 2, "minor": 0, "major": 10}, "package": "deb"}"#);
    let version: Version<'_> = v.parse().unwrap();
    assert_eq!(version.package, "deb");
    assert_eq!(
        version.qemu,
        Qemu {
            major: 10,
            minor: 0,
            micro: 2
        }
    );
    assert_eq!(
        raw("1795285234267252000").parse::<u64>().unwrap(),
        1_795_285_234_267_252_000
    );
    assert!(matches!(
        raw("\"x\"").parse::<u32>(),
        Err(ParseError::Json(_))
    ));
    let mut scratch = [0u8; 16];
    let s: heapless::String<16> = raw(r#""a\u00e9\n""#)
        .parse_with_scratch(&mut scratch)
        .unwrap();
    assert_eq!(s.as_str(), "aé\n");
    let e = raw("\"x\"").parse::<u32>().unwrap_err();
    assert!(format!("{e}").starts_with("cannot parse JSON value"));
}

/// `as_i64`/`as_u64` give what `str::parse` gave them on integer tokens,
/// and `parse_integer` with `plus` what it gives on any text.
#[test]
fn integers_as_str_parse() {
    let mut cases: Vec<String> = [
        "",
        "-",
        "+",
        "0",
        "-0",
        "+0",
        "00",
        "-00",
        "+-1",
        "-+1",
        "1-",
        " 1",
        "1 ",
        "1.0",
        "1e2",
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775808",
        "-9223372036854775809",
        "18446744073709551615",
        "18446744073709551616",
        "-18446744073709551615",
        "-18446744073709551616",
        "99999999999999999999",
        "184467440737095516150",
        "0018446744073709551615",
        "\u{e9}",
    ]
    .iter()
    .map(|s| String::from(*s))
    .collect();
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    for _ in 0..2000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let v = x >> (x % 64);
        cases.push(format!("{v}"));
        cases.push(format!("-{v}"));
    }
    for s in &cases {
        let r = RawJson::assume_validated(s.as_bytes());
        let integer = {
            let d = s.strip_prefix('-').unwrap_or(s);
            !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())
        };
        let want_i64 = if integer { s.parse::<i64>().ok() } else { None };
        let want_u64 = if integer {
            match s.parse::<i64>() {
                Ok(v) => u64::try_from(v).ok(),
                Err(_) => s.parse::<u64>().ok(),
            }
        } else {
            None
        };
        assert_eq!(r.as_i64(), want_i64, "{s:?}");
        assert_eq!(r.as_u64(), want_u64, "{s:?}");
        let got = parse_integer(s.as_bytes(), true);
        assert_eq!(got.and_then(signed), s.parse::<i64>().ok(), "{s:?}");
        let unsigned = got.and_then(|(neg, v)| (!neg).then_some(v));
        assert_eq!(unsigned, s.parse::<u64>().ok(), "{s:?}");
    }
}
