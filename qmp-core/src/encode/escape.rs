//! QEMU's string escaping: `quoted_str()` over `mod_utf8_codepoint()`,
//! modified UTF-8 in, ASCII with uppercase `\uXXXX` escapes out.

use crate::json::{Fragment, JsonStr};

use super::{EncodeError, JsonWriter, Style};

/// A byte cursor over several pieces, read as one string.
struct Pieces<'p> {
    pieces: &'p [&'p [u8]],
    cur: &'p [u8],
}

impl<'p> Pieces<'p> {
    fn peek(&mut self) -> Option<u8> {
        loop {
            if let Some(&b) = self.cur.first() {
                return Some(b);
            }
            let (&first, rest) = self.pieces.split_first()?;
            self.cur = first;
            self.pieces = rest;
        }
    }

    fn bump(&mut self) {
        self.cur = self.cur.get(1..).unwrap_or_default();
    }

    /// The longest run of bytes written unchanged, in the current piece.
    fn take_plain(&mut self) -> &'p [u8] {
        if self.peek().is_none() {
            return &[];
        }
        let n = self
            .cur
            .iter()
            .position(|&b| !(0x20..0x7F).contains(&b) || b == b'"' || b == b'\\')
            .unwrap_or(self.cur.len());
        let (run, rest) = self.cur.split_at_checked(n).unwrap_or((&[], self.cur));
        self.cur = rest;
        run
    }
}

/// QEMU's `is_valid_codepoint`.
fn is_valid_codepoint(cp: u32) -> bool {
    cp <= 0x10FFFF
        && (cp & 0xFFFF_F800) != 0xD800
        && !(0xFDD0..=0xFDEF).contains(&cp)
        && (cp & 0xFFFE) != 0xFFFE
}

/// QEMU's `mod_utf8_codepoint` after its first byte `first` was consumed:
/// `None` for an invalid sequence (continuation bytes that matched are
/// consumed, the first mismatching byte is not).
fn mod_utf8_rest(first: u8, cur: &mut Pieces<'_>) -> Option<u32> {
    if first < 0x80 {
        return Some(u32::from(first));
    }
    if first >= 0xFE || first & 0x40 == 0 {
        return None;
    }
    let len = first.leading_ones(); // 2..=6
    let mut cp = u32::from(first) & ((0x80u32 >> len) - 1);
    for _ in 1..len {
        match cur.peek() {
            Some(b) if b & 0xC0 == 0x80 => {
                cur.bump();
                cp = cp << 6 | u32::from(b & 0x3F);
            }
            _ => return None,
        }
    }
    let min = match len {
        2 => 0x80,
        3 => 0x800,
        4 => 0x10000,
        5 => 0x20_0000,
        _ => 0x400_0000,
    };
    if !is_valid_codepoint(cp) || (cp < min && !(cp == 0 && len == 2)) {
        return None;
    }
    Some(cp)
}

fn hex_digit(n: u32) -> u8 {
    let n = (n & 0xF) as u8;
    if n < 10 {
        b'0' + n
    } else {
        b'A' + n - 10
    }
}

fn put_u_escape(w: &mut JsonWriter<'_>, v: u32) {
    w.put(&[
        b'\\',
        b'u',
        hex_digit(v >> 12),
        hex_digit(v >> 8),
        hex_digit(v >> 4),
        hex_digit(v),
    ]);
}

/// Writes one code point the way QEMU's `quoted_str` does.
fn escape_codepoint(w: &mut JsonWriter<'_>, cp: u32) {
    match cp {
        0x22 => w.put(b"\\\""),
        0x5C => w.put(b"\\\\"),
        0x08 => w.put(b"\\b"),
        0x0C => w.put(b"\\f"),
        0x0A => w.put(b"\\n"),
        0x0D => w.put(b"\\r"),
        0x09 => w.put(b"\\t"),
        0x10000.. => {
            let c = cp - 0x10000;
            put_u_escape(w, 0xD800 + (c >> 10));
            put_u_escape(w, 0xDC00 + (c & 0x3FF));
        }
        0x20..0x7F => w.put_byte(cp as u8),
        _ => put_u_escape(w, cp),
    }
}

/// Escapes the concatenation of `pieces` (without quotes). A NUL byte,
/// which ends a C string in QEMU, is written as `\u0000`.
pub(super) fn escape_pieces(w: &mut JsonWriter<'_>, pieces: &[&[u8]]) {
    let mut cur = Pieces { pieces, cur: &[] };
    loop {
        let run = cur.take_plain();
        if !run.is_empty() {
            w.put(run);
            continue;
        }
        let Some(first) = cur.peek() else { break };
        cur.bump();
        let cp = mod_utf8_rest(first, &mut cur).unwrap_or(0xFFFD);
        escape_codepoint(w, cp);
    }
}

/// Escapes the decoded value of a peer's string (without quotes).
#[inline]
pub(super) fn escape_json_str_body(w: &mut JsonWriter<'_>, s: JsonStr<'_>) {
    for fragment in s.fragments() {
        match fragment {
            Fragment::Literal(bytes) => escape_pieces(w, &[bytes]),
            Fragment::Char(c) => escape_codepoint(w, u32::from(c)),
        }
    }
}

/// Writes the QEMU-escaped contents of a (modified-)UTF-8 byte string,
/// without quotes.
///
/// # Errors
/// [`EncodeError::InsufficientSize`] with the exact size.
pub fn escape_bytes(out: &mut [u8], s: &[u8]) -> Result<usize, EncodeError> {
    let mut w = JsonWriter::new(out, Style::QMP);
    escape_pieces(&mut w, &[s]);
    w.finish()
}

/// Writes a byte string as a quoted, QEMU-escaped JSON string.
///
/// # Errors
/// [`EncodeError::InsufficientSize`] with the exact size.
pub fn write_quoted(out: &mut [u8], s: &[u8]) -> Result<usize, EncodeError> {
    let mut w = JsonWriter::new(out, Style::QMP);
    w.quoted(s);
    w.finish()
}

/// Writes the QEMU-escaped decoded value of a peer's string, without
/// quotes (`\u00e9` → `\u00E9`, a raw `é` → `\u00E9`).
///
/// # Errors
/// [`EncodeError::InsufficientSize`] with the exact size.
pub fn escape_json_str(out: &mut [u8], s: JsonStr<'_>) -> Result<usize, EncodeError> {
    let mut w = JsonWriter::new(out, Style::QMP);
    escape_json_str_body(&mut w, s);
    w.finish()
}
