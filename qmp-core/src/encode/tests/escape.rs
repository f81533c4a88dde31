//! QEMU's string escaping: modified UTF-8, invalid sequences, peer strings.

use super::{esc, qemu, raw, text};
use crate::encode::{escape_json_str, write_quoted, write_value_qemu, Style};

#[test]
fn escaping() {
    assert_eq!(esc(b"plain / text"), "plain / text");
    assert_eq!(esc(b"\"\\\x08\x0c\n\r\t"), r#"\"\\\b\f\n\r\t"#);
    assert_eq!(esc(b"\x00\x01\x1f\x7f"), r"\u0000\u0001\u001F\u007F");
    assert_eq!(esc("é€😀".as_bytes()), r"\u00E9\u20AC\uD83D\uDE00");
    assert_eq!(esc("\u{10FFFD}".as_bytes()), r"\uDBFF\uDFFD");
    // Modified UTF-8 NUL.
    assert_eq!(esc(b"a\xC0\x80b"), r"a\u0000b");
    // Invalid sequences.
    assert_eq!(esc(b"\xFF"), r"\uFFFD");
    assert_eq!(esc(b"\xFE\xFF"), r"\uFFFD\uFFFD");
    assert_eq!(esc(b"\x80\xBF"), r"\uFFFD\uFFFD");
    assert_eq!(esc(b"\xE2\x82"), r"\uFFFD");
    assert_eq!(esc(b"\xE2\x82A"), r"\uFFFDA");
    assert_eq!(esc(b"\xC3"), r"\uFFFD");
    assert_eq!(esc(b"\xC1\x81"), r"\uFFFD"); // overlong
    assert_eq!(esc(b"\xE0\x80\x80"), r"\uFFFD"); // overlong NUL
    assert_eq!(esc(b"\xED\xA0\x80"), r"\uFFFD"); // surrogate
    assert_eq!(esc(b"\xEF\xB7\x90"), r"\uFFFD"); // U+FDD0
    assert_eq!(esc(b"\xEF\xBF\xBE"), r"\uFFFD"); // U+FFFE
    assert_eq!(esc(b"\xF0\x9F\xBF\xBF"), r"\uFFFD"); // U+1FFFF
    assert_eq!(esc(b"\xF4\x90\x80\x80"), r"\uFFFD"); // > U+10FFFF
    assert_eq!(esc(b"\xF8\x88\x80\x80\x80x"), r"\uFFFDx"); // 5 bytes
    assert_eq!(esc(b"\xFC\x84\x80\x80\x80\x80x"), r"\uFFFDx"); // 6 bytes
    assert_eq!(text(|o| write_quoted(o, b"a\"b")), r#""a\"b""#);
}

#[test]
fn peer_strings() {
    let cases: &[(&[u8], &str)] = &[
        (br#""\u00e9""#, r#""\u00E9""#),
        ("\"é\"".as_bytes(), r#""\u00E9""#),
        (br#""\ud83d\ude00""#, r#""\uD83D\uDE00""#),
        (br#""\u0000""#, r#""\u0000""#),
        (br#""a\/b\'c""#, r#""a/b'c""#),
        (br#"'it\'s "q"'"#, r#""it's \"q\"""#),
        (br#""\n\u001f\u007f""#, r#""\n\u001F\u007F""#),
    ];
    for &(input, want) in cases {
        assert_eq!(
            qemu(core::str::from_utf8(input).unwrap_or("x"), Style::QMP),
            want
        );
    }
    let s = raw(br#""\u00e9x""#).as_json_str().unwrap();
    assert_eq!(text(|o| escape_json_str(o, s)), r"\u00E9x");
    // Invalid modified-UTF-8 NUL text (not a &str) re-serialised too.
    let mut buf = [0u8; 32];
    let n = write_value_qemu(&mut buf, Style::QMP, raw(b"\"\xC0\x80\"")).unwrap();
    assert_eq!(&buf[..n], br#""\u0000""#);
}
