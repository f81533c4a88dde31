//! The envelope writer: commands, returns, errors, events and the greeting,
//! byte-exact with QEMU 10's JSON writer (`qobject/json-writer.c`).
//!
//! Every function writes one complete message into a caller buffer and
//! returns the number of bytes written. When the buffer is too small the
//! result is [`EncodeError::InsufficientSize`] with the exact size needed; the
//! buffer contents are then meaningless (only an `Ok` length is output).
//!
//! What QEMU does, and so what these writers do:
//!
//! * strings are decoded as modified UTF-8 and written as ASCII with
//!   uppercase `\uXXXX` escapes; each invalid sequence becomes `\uFFFD`;
//! * integers print as `i64`/`u64`, every other number as C's `%.17g`;
//! * object members come out in QDict order ([`qdict_bucket`] ascending,
//!   the most recently inserted key first within a bucket). The envelopes
//!   and [`RawJson`] values (re-serialised by [`write_value_qemu`]) follow
//!   it. Values written through [`Ser`] (serde) keep their field order: a
//!   byte-exact QEMU imitation must declare its struct fields in QDict order.
//!
//! Values are passed as `&dyn` [`WriteJson`]: a [`RawJson`] (re-serialised
//! the QEMU way), [`Verbatim`] (copied as is), a [`JsonStr`], `&str`, `i64`,
//! `u64`, `bool`, or anything `Serialize` wrapped in [`Ser`].
//!
//! ```
//! use qmp_core::encode::{write_command, write_error, write_return, Ser, Style};
//!
//! let mut buf = [0u8; 256];
//! let n = write_return(&mut buf, Style::QMP, &Ser(&()), Some(&7i64)).unwrap();
//! assert_eq!(&buf[..n], b"{\"return\": null, \"id\": 7}\r\n");
//!
//! let n = write_error(&mut buf, Style::QMP, None, b"GenericError", &[b"stray '", b"\xFF", b"'"])
//!     .unwrap();
//! assert_eq!(
//!     &buf[..n],
//!     &b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"stray '\\uFFFD'\"}}\r\n"[..]
//! );
//!
//! #[derive(serde::Serialize)]
//! struct Enable<'a> { enable: &'a [&'a str] }
//! let args = Enable { enable: &["oob"] };
//! let n = write_command(&mut buf, Style::CLIENT, false, "qmp_capabilities", Some(&Ser(&args)), Some(&"c1"))
//!     .unwrap();
//! assert_eq!(
//!     &buf[..n],
//!     &b"{\"execute\":\"qmp_capabilities\",\"arguments\":{\"enable\":[\"oob\"]},\"id\":\"c1\"}"[..]
//! );
//! ```

use crate::InsufficientSize;
use core::fmt::{self, Write as _};

use serde::ser::{self, Serialize};

use crate::json::{Fragment, JsonKind, JsonStr, RawJson, Token, Tokens};

// ---------------------------------------------------------------------------
// Errors and configuration

/// Why a message could not be written.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum EncodeError {
    /// The output buffer is too small; the complete message needs
    /// `required` bytes (the buffer's contents are then unspecified).
    InsufficientSize(InsufficientSize),
    /// A `Serialize` map has a key that is not a string.
    KeyMustBeString,
    /// A `Serialize` value asked for something JSON cannot hold (a
    /// non-finite float, an integer beyond 64 bits, a custom error).
    Unsupported,
    /// A [`RawJson`] value was not valid JSON.
    InvalidJson,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::InsufficientSize(InsufficientSize { required }) => {
                write!(f, "output buffer too small: {required} bytes required")
            }
            EncodeError::KeyMustBeString => f.write_str("JSON object key must be a string"),
            EncodeError::Unsupported => f.write_str("value cannot be encoded as JSON"),
            EncodeError::InvalidJson => f.write_str("raw value is not valid JSON"),
        }
    }
}

impl core::error::Error for EncodeError {}

impl ser::Error for EncodeError {
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        EncodeError::Unsupported
    }
}

/// Spacing between tokens.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Layout {
    /// QEMU's compact output: `": "` and `", "`, no other spaces.
    Compact,
    /// No spaces at all, like python `qemu.qmp` (`{"execute":"x"}`).
    Minimal,
    /// QEMU's pretty output (`pretty=on`): a newline and 4 spaces per depth
    /// after `{`, `[` and `,`, and before every closer.
    Pretty,
}

/// What ends each line (and each message).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum LineEnding {
    /// Nothing after the message (python `qemu.qmp` commands). Pretty
    /// output then uses `\n` inside the message.
    None,
    /// `\n` (the guest agent).
    Lf,
    /// `\r\n` (QMP: every `\n`, inside pretty messages too).
    CrLf,
}

/// Output style of every writer in this module.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Style {
    /// Spacing.
    pub layout: Layout,
    /// Line ending: appended after each message, and used for the newlines
    /// of pretty output.
    pub line_ending: LineEnding,
}

impl Style {
    /// QMP server output: compact, `\r\n`.
    pub const QMP: Style = Style {
        layout: Layout::Compact,
        line_ending: LineEnding::CrLf,
    };
    /// QMP server output with `pretty=on`.
    pub const QMP_PRETTY: Style = Style {
        layout: Layout::Pretty,
        line_ending: LineEnding::CrLf,
    };
    /// Guest-agent output: compact, `\n`.
    pub const QGA: Style = Style {
        layout: Layout::Compact,
        line_ending: LineEnding::Lf,
    };
    /// Client commands like python `qemu.qmp`: no spaces, no line ending.
    pub const CLIENT: Style = Style {
        layout: Layout::Minimal,
        line_ending: LineEnding::None,
    };
}

impl Default for Style {
    fn default() -> Self {
        Style::QMP
    }
}

// ---------------------------------------------------------------------------
// The writer: a counting sink plus QEMU's json-writer state.

/// The output state handed to [`WriteJson`]: an opaque counting writer over
/// the caller's buffer. It has no public methods.
pub struct JsonWriter<'b> {
    out: &'b mut [u8],
    /// Bytes produced so far (may exceed `out.len()`: counting continues).
    len: usize,
    style: Style,
    /// Open containers.
    depth: usize,
    /// A separator is due before the next element.
    need_comma: bool,
}

impl fmt::Debug for JsonWriter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonWriter")
            .field("len", &self.len)
            .field("capacity", &self.out.len())
            .field("style", &self.style)
            .finish()
    }
}

const SPACES: &[u8; 32] = b"                                ";

impl<'b> JsonWriter<'b> {
    fn new(out: &'b mut [u8], style: Style) -> Self {
        JsonWriter {
            out,
            len: 0,
            style,
            depth: 0,
            need_comma: false,
        }
    }

    fn put(&mut self, bytes: &[u8]) {
        let end = self.len.saturating_add(bytes.len());
        if let Some(dst) = self.out.get_mut(self.len..end) {
            // Not `copy_from_slice`: its length check is a panic path
            // wherever it is not inlined (opt-level "z"); see no-panic/.
            dst.iter_mut().zip(bytes).for_each(|(d, s)| *d = *s);
        }
        self.len = end;
    }

    fn put_byte(&mut self, b: u8) {
        if let Some(dst) = self.out.get_mut(self.len) {
            *dst = b;
        }
        self.len = self.len.saturating_add(1);
    }

    fn line_break(&mut self) {
        let nl: &[u8] = match self.style.line_ending {
            LineEnding::CrLf => b"\r\n",
            _ => b"\n",
        };
        self.put(nl);
    }

    /// QEMU's `pretty_newline`.
    fn newline(&mut self) {
        if self.style.layout != Layout::Pretty {
            return;
        }
        self.line_break();
        let mut n = self.depth.saturating_mul(4);
        while n > 0 {
            let k = n.min(SPACES.len());
            self.put(SPACES.get(..k).unwrap_or_default());
            n -= k;
        }
    }

    /// QEMU's `maybe_comma_name` without the name: called before every
    /// array element and object key.
    pub(crate) fn prefix(&mut self) {
        if self.need_comma {
            self.put_byte(b',');
            match self.style.layout {
                Layout::Pretty => self.newline(),
                Layout::Compact => self.put_byte(b' '),
                Layout::Minimal => {}
            }
        } else {
            if self.depth > 0 {
                self.newline();
            }
            self.need_comma = true;
        }
    }

    fn colon(&mut self) {
        match self.style.layout {
            Layout::Minimal => self.put_byte(b':'),
            _ => self.put(b": "),
        }
    }

    pub(crate) fn open(&mut self, c: u8) {
        self.put_byte(c);
        self.depth += 1;
        self.need_comma = false;
    }

    pub(crate) fn close(&mut self, c: u8) {
        self.depth = self.depth.saturating_sub(1);
        self.newline();
        self.put_byte(c);
        self.need_comma = true;
    }

    /// Separator, quoted key and colon of an object member.
    pub(crate) fn key(&mut self, key: &[u8]) {
        self.prefix();
        self.quoted(key);
        self.colon();
    }

    pub(crate) fn quoted(&mut self, s: &[u8]) {
        self.put_byte(b'"');
        escape_pieces(self, &[s]);
        self.put_byte(b'"');
    }

    fn quoted_json_str(&mut self, s: JsonStr<'_>) {
        self.put_byte(b'"');
        escape_json_str_body(self, s);
        self.put_byte(b'"');
    }

    fn end_message(&mut self) {
        if self.style.line_ending != LineEnding::None {
            self.line_break();
        }
    }

    fn finish(self) -> Result<usize, EncodeError> {
        if self.len <= self.out.len() {
            Ok(self.len)
        } else {
            Err(EncodeError::InsufficientSize(InsufficientSize {
                required: self.len,
            }))
        }
    }
}

// ---------------------------------------------------------------------------
// Strings: QEMU's quoted_str() over mod_utf8_codepoint().

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
fn escape_pieces(w: &mut JsonWriter<'_>, pieces: &[&[u8]]) {
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
fn escape_json_str_body(w: &mut JsonWriter<'_>, s: JsonStr<'_>) {
    for fragment in s.fragments() {
        match fragment {
            Fragment::Literal(bytes) => escape_pieces(w, &[bytes]),
            Fragment::Char(c) => escape_codepoint(w, u32::from(c)),
        }
    }
}

// ---------------------------------------------------------------------------
// Numbers

/// A small stack buffer for `core::fmt`.
struct FmtBuf {
    buf: [u8; 40],
    len: usize,
}

impl FmtBuf {
    const fn new() -> Self {
        FmtBuf {
            buf: [0; 40],
            len: 0,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }
}

impl fmt::Write for FmtBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        dst.iter_mut().zip(s.as_bytes()).for_each(|(d, s)| *d = *s);
        self.len = end;
        Ok(())
    }
}

fn write_display(w: &mut JsonWriter<'_>, v: impl fmt::Display) -> Result<(), EncodeError> {
    let mut buf = FmtBuf::new();
    write!(buf, "{v}").map_err(|_| EncodeError::Unsupported)?;
    w.put(buf.as_bytes());
    Ok(())
}

fn strip_zeros(mut s: &[u8]) -> &[u8] {
    while let [rest @ .., b'0'] = s {
        s = rest;
    }
    s
}

/// Writes `v` like C's `printf("%.17g", v)` (`inf`, `-inf`, `nan` included,
/// as QEMU does not guard against them).
fn write_g17(w: &mut JsonWriter<'_>, v: f64) -> Result<(), EncodeError> {
    if v.is_nan() {
        w.put(if v.is_sign_negative() {
            b"-nan"
        } else {
            b"nan"
        });
        return Ok(());
    }
    if v.is_infinite() {
        w.put(if v < 0.0 { b"-inf" } else { b"inf" });
        return Ok(());
    }
    let mut buf = FmtBuf::new();
    write!(buf, "{v:.16e}").map_err(|_| EncodeError::Unsupported)?;
    let s = buf.as_bytes();
    let (neg, s) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    let e = s
        .iter()
        .position(|&b| b == b'e')
        .ok_or(EncodeError::Unsupported)?;
    let (mantissa, exp) = s.split_at_checked(e).ok_or(EncodeError::Unsupported)?;
    let exp: i32 = core::str::from_utf8(exp.get(1..).unwrap_or_default())
        .ok()
        .and_then(|x| x.parse().ok())
        .ok_or(EncodeError::Unsupported)?;
    let mut digits = [b'0'; 17];
    for (d, m) in digits
        .iter_mut()
        .zip(mantissa.iter().filter(|b| b.is_ascii_digit()))
    {
        *d = *m;
    }
    if neg {
        w.put_byte(b'-');
    }
    if (-4..17).contains(&exp) {
        if exp >= 0 {
            let (int, frac) = digits
                .split_at_checked(exp.unsigned_abs() as usize + 1)
                .ok_or(EncodeError::Unsupported)?;
            w.put(int);
            let frac = strip_zeros(frac);
            if !frac.is_empty() {
                w.put_byte(b'.');
                w.put(frac);
            }
        } else {
            w.put(b"0.");
            for _ in 1..exp.unsigned_abs() {
                w.put_byte(b'0');
            }
            w.put(strip_zeros(&digits));
        }
    } else {
        let (first, frac) = digits.split_at_checked(1).ok_or(EncodeError::Unsupported)?;
        w.put(first);
        let frac = strip_zeros(frac);
        if !frac.is_empty() {
            w.put_byte(b'.');
            w.put(frac);
        }
        w.put_byte(b'e');
        w.put_byte(if exp < 0 { b'-' } else { b'+' });
        if exp.unsigned_abs() < 10 {
            w.put_byte(b'0');
        }
        write_display(w, exp.unsigned_abs())?;
    }
    Ok(())
}

/// Writes a number token the way QEMU re-prints it after parsing: an
/// integer that fits `i64` or `u64` as such, anything else as a double.
fn write_number(w: &mut JsonWriter<'_>, text: &[u8]) -> Result<(), EncodeError> {
    // An integer already as QEMU prints it (no leading zero, no `-0`) that
    // surely fits `i64` (at most 18 digits) is written as it is.
    let digits = text.strip_prefix(b"-").unwrap_or(text);
    if (digits == b"0" && digits.len() == text.len())
        || (matches!(digits.first(), Some(b'1'..=b'9'))
            && digits.len() <= 18
            && digits.iter().all(u8::is_ascii_digit))
    {
        w.put(text);
        return Ok(());
    }
    let s = core::str::from_utf8(text).map_err(|_| EncodeError::InvalidJson)?;
    if !s.bytes().any(|b| matches!(b, b'.' | b'e' | b'E')) {
        if let Ok(v) = s.parse::<i64>() {
            return write_display(w, v);
        }
        if !s.starts_with('-') {
            if let Ok(v) = s.parse::<u64>() {
                return write_display(w, v);
            }
        }
    }
    let v: f64 = s.parse().map_err(|_| EncodeError::InvalidJson)?;
    write_g17(w, v)
}

// ---------------------------------------------------------------------------
// QDict key order

/// QEMU's `tdb_hash` (`qobject/qdict.c`) of a key's bytes.
pub fn tdb_hash(key: &[u8]) -> u32 {
    let mut h = TdbHash::default();
    key.iter().for_each(|&b| h.push(b));
    h.finish()
}

/// Number of buckets of a QEMU `QDict`.
pub const QDICT_BUCKETS: u32 = 512;

/// The QDict bucket of a key: `tdb_hash(key) % 512`. QEMU emits object
/// members by ascending bucket, most recently inserted first within one.
pub fn qdict_bucket(key: &[u8]) -> u32 {
    tdb_hash(key) % QDICT_BUCKETS
}

#[derive(Default)]
struct TdbHash {
    sum: u32,
    len: u32,
}

impl TdbHash {
    fn push(&mut self, b: u8) {
        let shift = self.len.wrapping_mul(5) % 24;
        self.sum = self.sum.wrapping_add(u32::from(b) << shift);
        self.len = self.len.wrapping_add(1);
    }

    fn finish(&self) -> u32 {
        let value = 0x238F_13AFu32.wrapping_mul(self.len).wrapping_add(self.sum);
        1_103_515_243u32.wrapping_mul(value).wrapping_add(12345)
    }
}

/// Bucket of a peer's key: hashed over its unescaped bytes as QEMU stores
/// them (modified UTF-8: `\u0000` is `C0 80`).
pub(crate) fn json_str_bucket(key: JsonStr<'_>) -> u32 {
    if !key.has_escapes() {
        // Literal bytes are stored as they are.
        return qdict_bucket(key.raw());
    }
    let mut h = TdbHash::default();
    key.qemu_bytes().for_each(|b| h.push(b));
    h.finish() % QDICT_BUCKETS
}

// ---------------------------------------------------------------------------
// Re-serialising validated JSON the QEMU way

/// Nesting levels reordered by [`write_value_qemu`]; deeper containers are
/// written in input order.
const MAX_REORDER_DEPTH: usize = 32;

/// Members whose QEMU order is held at once, for all the objects being
/// written (nested ones after their parents). An object that fits is
/// ordered in one pass; a larger one is written in batches of the next
/// members in QDict order, one pass over its members per batch.
const ORDER_SLOTS: usize = 64;

/// One member of an object in [`write_raw`]'s order table.
#[derive(Clone, Copy)]
struct Slot {
    bucket: u16,
    /// Where the member starts in the object's text.
    pos: u32,
    /// Where its value ends.
    end: u32,
}

impl Slot {
    /// Its place in QEMU's output: bucket ascending, then input position
    /// (so input index) descending.
    fn rank(&self) -> u64 {
        u64::from(self.bucket) << 32 | u64::from(u32::MAX - self.pos)
    }
}

type Order = heapless::Vec<Slot, ORDER_SLOTS>;

enum Frame<'a> {
    Array(crate::json::Elements<'a>),
    /// An object whose next members are `order[next..end]`, sorted;
    /// `order` is cut back to `start` when it is closed. When `more`, the
    /// batch did not hold every member still to write: the next batch (at
    /// most `cap` members) is collected when this one runs out.
    Sorted {
        obj: RawJson<'a>,
        start: usize,
        next: usize,
        end: usize,
        cap: usize,
        more: bool,
    },
    /// An object met with the order table full (its ancestors hold it):
    /// ordered member by member.
    Object {
        obj: RawJson<'a>,
        /// (bucket, input index) of the member written last.
        last: Option<(u32, usize)>,
    },
}

/// The member of `obj` that QEMU writes after `last`: ordered by bucket
/// ascending, then input index descending. O(members) per call.
fn next_member<'a>(
    obj: RawJson<'a>,
    last: Option<(u32, usize)>,
) -> Option<(JsonStr<'a>, RawJson<'a>, u32, usize)> {
    let mut best: Option<(JsonStr<'a>, RawJson<'a>, u32, usize)> = None;
    for (i, (k, v)) in obj.members().enumerate() {
        let b = json_str_bucket(k);
        let after_last = match last {
            None => true,
            Some((lb, li)) => b > lb || (b == lb && i < li),
        };
        let before_best = match best {
            None => true,
            Some((_, _, bb, bi)) => b < bb || (b == bb && i > bi),
        };
        if after_last && before_best {
            best = Some((k, v, b, i));
        }
    }
    best
}

/// Appends to `order`, sorted, the first `cap` members of `obj` (at
/// least 1) that QEMU writes after the member ranked `after` (all when
/// `None`). Returns whether members after those are left. One pass over
/// the members; keeping the batch sorted costs at most `cap` slot moves
/// per member.
fn push_batch(
    obj: RawJson<'_>,
    after: Option<u64>,
    order: &mut Order,
    cap: usize,
) -> Result<bool, EncodeError> {
    let start = order.len();
    let cap = cap.min(ORDER_SLOTS.saturating_sub(start)).max(1);
    let mut more = false;
    let mut members = obj.members();
    loop {
        let pos = members.pos();
        let Some((k, _)) = members.next() else {
            break;
        };
        let (Ok(bucket), Ok(pos), Ok(end)) = (
            u16::try_from(json_str_bucket(k)),
            u32::try_from(pos),
            u32::try_from(members.pos()),
        ) else {
            // Objects of 4 GiB and more.
            return Err(EncodeError::Unsupported);
        };
        let slot = Slot { bucket, pos, end };
        let rank = slot.rank();
        if after.is_some_and(|a| rank <= a) {
            continue;
        }
        let len = order.len() - start;
        if len < cap {
            if order.push(slot).is_err() {
                return Err(EncodeError::Unsupported); // cap keeps it in range
            }
            if len + 1 == cap {
                if let Some(batch) = order.get_mut(start..) {
                    batch.sort_unstable_by_key(Slot::rank);
                }
            }
            continue;
        }
        // Full (and sorted): it displaces the batch's last member if it
        // comes before it.
        more = true;
        let Some(batch) = order.get_mut(start..) else {
            break;
        };
        if batch.last().is_some_and(|l| rank < l.rank()) {
            let at = batch.partition_point(|s| s.rank() < rank);
            if let Some(tail) = batch.get_mut(at..) {
                tail.rotate_right(1);
                if let Some(first) = tail.first_mut() {
                    *first = slot;
                }
            }
        }
    }
    if let Some(batch) = order.get_mut(start..) {
        if batch.len() < cap {
            batch.sort_unstable_by_key(Slot::rank);
        }
    }
    Ok(more)
}

fn write_scalar(w: &mut JsonWriter<'_>, value: RawJson<'_>) -> Result<(), EncodeError> {
    match value.kind() {
        JsonKind::String => {
            let s = value.as_json_str().ok_or(EncodeError::InvalidJson)?;
            w.quoted_json_str(s);
        }
        JsonKind::Bool => match value.as_bool() {
            Some(true) => w.put(b"true"),
            Some(false) => w.put(b"false"),
            None => return Err(EncodeError::InvalidJson),
        },
        JsonKind::Null if value.is_null() => w.put(b"null"),
        JsonKind::Number => write_number(w, value.as_bytes())?,
        _ => return Err(EncodeError::InvalidJson),
    }
    Ok(())
}

/// Writes one value (its separator already written): scalars at once,
/// containers opened and pushed.
fn emit<'a>(
    w: &mut JsonWriter<'_>,
    value: RawJson<'a>,
    stack: &mut heapless::Vec<Frame<'a>, MAX_REORDER_DEPTH>,
    order: &mut Order,
) -> Result<(), EncodeError> {
    let (frame, opener) = match value.kind() {
        JsonKind::Object if stack.is_full() => return write_stream(w, value),
        JsonKind::Object => {
            let start = order.len();
            let free = ORDER_SLOTS - start;
            let frame = if free == 0 {
                Frame::Object {
                    obj: value,
                    last: None,
                }
            } else {
                // All of it when it fits; otherwise batches of half the
                // free slots, leaving the rest to its children (the first
                // half of the sorted full batch is the first such batch).
                let mut cap = free;
                let more = push_batch(value, None, order, cap)?;
                if more {
                    cap = (free / 2).max(1);
                    order.truncate(start + cap);
                }
                Frame::Sorted {
                    obj: value,
                    start,
                    next: start,
                    end: order.len(),
                    cap,
                    more,
                }
            };
            (frame, b'{')
        }
        JsonKind::Array if stack.is_full() => return write_stream(w, value),
        JsonKind::Array => (Frame::Array(value.elements()), b'['),
        _ => return write_scalar(w, value),
    };
    w.open(opener);
    stack.push(frame).map_err(|_| EncodeError::Unsupported)
}

/// Writes `value` in QEMU's form and key order, without recursion.
fn write_raw(w: &mut JsonWriter<'_>, value: RawJson<'_>) -> Result<(), EncodeError> {
    let mut stack = heapless::Vec::new();
    let mut order = Order::new();
    emit(w, value, &mut stack, &mut order)?;
    while let Some(top) = stack.last_mut() {
        let (next, closer) = match top {
            Frame::Array(elements) => (elements.next().map(|e| (None, e)), b']'),
            Frame::Sorted {
                obj,
                start,
                next,
                end,
                cap,
                more,
            } => {
                if *next == *end && *more {
                    // The batch is written: collect the next one.
                    let after = end
                        .checked_sub(1)
                        .and_then(|l| order.get(l))
                        .map(Slot::rank);
                    order.truncate(*start);
                    *more = push_batch(*obj, after, &mut order, *cap)?;
                    *next = *start;
                    *end = order.len();
                }
                let slot = order.get(*next).filter(|_| *next < *end);
                *next += 1;
                let member = slot.and_then(|s| obj.member_at(s.pos as usize, s.end as usize));
                (member.map(|(k, v)| (Some(k), v)), b'}')
            }
            Frame::Object { obj, last } => {
                let next = next_member(*obj, *last).map(|(k, v, b, i)| {
                    *last = Some((b, i));
                    (Some(k), v)
                });
                (next, b'}')
            }
        };
        match next {
            Some((key, value)) => {
                w.prefix();
                if let Some(key) = key {
                    w.quoted_json_str(key);
                    w.colon();
                }
                emit(w, value, &mut stack, &mut order)?;
            }
            None => {
                if let Some(Frame::Sorted { start, .. }) = stack.pop() {
                    order.truncate(start);
                }
                w.close(closer);
            }
        }
    }
    Ok(())
}

/// Writes `value` in input order with a flat token walk (for nesting
/// beyond [`MAX_REORDER_DEPTH`]); the value's own separator is written.
fn write_stream(w: &mut JsonWriter<'_>, value: RawJson<'_>) -> Result<(), EncodeError> {
    let mut tokens = Tokens::new(value.as_bytes());
    let mut depth = 0usize;
    let mut first = true;
    let mut after_key = false;
    loop {
        let token = tokens.next_token().ok_or(EncodeError::InvalidJson)?;
        let is_closer = matches!(token, Token::ObjectEnd | Token::ArrayEnd);
        if !first && !after_key && !is_closer {
            w.prefix();
        }
        first = false;
        after_key = false;
        match token {
            Token::ObjectStart => {
                w.open(b'{');
                depth += 1;
            }
            Token::ArrayStart => {
                w.open(b'[');
                depth += 1;
            }
            Token::ObjectEnd | Token::ArrayEnd => {
                w.close(if matches!(token, Token::ArrayEnd) {
                    b']'
                } else {
                    b'}'
                });
                depth = depth.checked_sub(1).ok_or(EncodeError::InvalidJson)?;
            }
            Token::String(s) => {
                w.quoted_json_str(s);
                if tokens.at_colon() {
                    w.colon();
                    after_key = true;
                }
            }
            Token::Number(n) => write_number(w, n)?,
            Token::True => w.put(b"true"),
            Token::False => w.put(b"false"),
            Token::Null => w.put(b"null"),
        }
        if depth == 0 && !after_key {
            return Ok(());
        }
    }
}

// ---------------------------------------------------------------------------
// Values

/// Something that can be written as one JSON value: see the module docs.
pub trait WriteJson {
    /// Writes the value at the writer's current position.
    ///
    /// # Errors
    /// [`EncodeError::KeyMustBeString`], [`EncodeError::Unsupported`] or
    /// [`EncodeError::InvalidJson`]; a short buffer is not an error here.
    fn write_json(&self, w: &mut JsonWriter<'_>) -> Result<(), EncodeError>;
}

/// Validated JSON is re-serialised as QEMU would after parsing it: compact
/// or pretty spacing, strings re-escaped, numbers re-printed, members in
/// QDict order (see [`write_value_qemu`]).
impl WriteJson for RawJson<'_> {
    fn write_json(&self, w: &mut JsonWriter<'_>) -> Result<(), EncodeError> {
        write_raw(w, *self)
    }
}

/// Validated JSON copied byte for byte (no re-spacing, no reordering).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verbatim<'a>(pub RawJson<'a>);

impl WriteJson for Verbatim<'_> {
    fn write_json(&self, w: &mut JsonWriter<'_>) -> Result<(), EncodeError> {
        w.put(self.0.as_bytes());
        Ok(())
    }
}

/// A peer's string, decoded and re-escaped the QEMU way.
impl WriteJson for JsonStr<'_> {
    fn write_json(&self, w: &mut JsonWriter<'_>) -> Result<(), EncodeError> {
        w.quoted_json_str(*self);
        Ok(())
    }
}

impl WriteJson for &str {
    fn write_json(&self, w: &mut JsonWriter<'_>) -> Result<(), EncodeError> {
        w.quoted(self.as_bytes());
        Ok(())
    }
}

impl WriteJson for i64 {
    fn write_json(&self, w: &mut JsonWriter<'_>) -> Result<(), EncodeError> {
        write_display(w, self)
    }
}

impl WriteJson for u64 {
    fn write_json(&self, w: &mut JsonWriter<'_>) -> Result<(), EncodeError> {
        write_display(w, self)
    }
}

impl WriteJson for bool {
    fn write_json(&self, w: &mut JsonWriter<'_>) -> Result<(), EncodeError> {
        w.put(if *self { b"true" } else { b"false" });
        Ok(())
    }
}

/// Any `Serialize` value, written by this module's serializer: QEMU's
/// escaping and number format, members in *field order* (not reordered).
///
/// Unit, `()` and `None` are `null`; bytes are an array of numbers; enum
/// variants with data are `{"Variant": ...}` as in serde_json. Map keys must
/// be strings ([`EncodeError::KeyMustBeString`]); non-finite floats are
/// [`EncodeError::Unsupported`].
#[derive(Clone, Copy, Debug)]
pub struct Ser<'a, T: ?Sized>(pub &'a T);

impl<T: Serialize + ?Sized> WriteJson for Ser<'_, T> {
    fn write_json(&self, w: &mut JsonWriter<'_>) -> Result<(), EncodeError> {
        self.0.serialize(ValueSer { w })
    }
}

// ---------------------------------------------------------------------------
// Public writers

/// Writes one value (no line ending).
///
/// # Errors
/// [`EncodeError::InsufficientSize`] with the exact size, or an error of the
/// value.
pub fn write_value(
    out: &mut [u8],
    style: Style,
    value: &dyn WriteJson,
) -> Result<usize, EncodeError> {
    let mut w = JsonWriter::new(out, style);
    value.write_json(&mut w)?;
    w.finish()
}

/// Re-serialises validated JSON exactly as QEMU would after parsing it (no
/// line ending): QEMU's spacing, strings re-escaped to ASCII, numbers
/// re-printed (`0.1` → `0.10000000000000001`, `-0` → `0`), and object
/// members in QDict order (`{"b":2,"a":1}` → `{"a": 1, "b": 2}`).
///
/// No recursion and no allocation: an explicit stack of 32 levels
/// (containers nested deeper keep their input member order) and a table
/// of 64 member slots shared by the objects being written. An object that
/// fits in the free slots is ordered in one pass (n log n). A larger one
/// is written in batches of half the free slots, each collected by one
/// pass over its members: n²/batch member visits, so an object of
/// 10,000 members takes about 300 passes. With every slot held by its
/// ancestors (from the 8th level of large objects), an object picks each next
/// member by a scan (n² visits).
///
/// # Errors
/// [`EncodeError::InsufficientSize`] with the exact size;
/// [`EncodeError::InvalidJson`] if the bytes are not JSON.
pub fn write_value_qemu(
    out: &mut [u8],
    style: Style,
    value: RawJson<'_>,
) -> Result<usize, EncodeError> {
    write_value(out, style, &value)
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

fn message(
    out: &mut [u8],
    style: Style,
    body: impl FnOnce(&mut JsonWriter<'_>) -> Result<(), EncodeError>,
) -> Result<usize, EncodeError> {
    let mut w = JsonWriter::new(out, style);
    w.open(b'{');
    body(&mut w)?;
    w.close(b'}');
    w.end_message();
    w.finish()
}

/// Writes a command: `{"execute": N, "arguments": A, "id": I}` (or
/// `exec-oob`), in that order, like python `qemu.qmp` (use
/// [`Style::CLIENT`] for its exact spacing).
///
/// # Errors
/// [`EncodeError::InsufficientSize`] with the exact size, or an error of a
/// value.
pub fn write_command(
    out: &mut [u8],
    style: Style,
    exec_oob: bool,
    name: &str,
    arguments: Option<&dyn WriteJson>,
    id: Option<&dyn WriteJson>,
) -> Result<usize, EncodeError> {
    message(out, style, |w| {
        w.key(if exec_oob { b"exec-oob" } else { b"execute" });
        w.quoted(name.as_bytes());
        if let Some(arguments) = arguments {
            w.key(b"arguments");
            arguments.write_json(w)?;
        }
        if let Some(id) = id {
            w.key(b"id");
            id.write_json(w)?;
        }
        Ok(())
    })
}

/// Writes a success response: `{"return": R, "id": I}` (`id` omitted when
/// `None`).
///
/// # Errors
/// [`EncodeError::InsufficientSize`] with the exact size, or an error of a
/// value.
pub fn write_return(
    out: &mut [u8],
    style: Style,
    value: &dyn WriteJson,
    id: Option<&dyn WriteJson>,
) -> Result<usize, EncodeError> {
    message(out, style, |w| {
        w.key(b"return");
        value.write_json(w)?;
        if let Some(id) = id {
            w.key(b"id");
            id.write_json(w)?;
        }
        Ok(())
    })
}

/// Writes an error response: `{"id": I, "error": {"class": C, "desc": D}}`.
/// `desc` is the concatenation of its pieces, decoded as one modified-UTF-8
/// string (a raw `0xFF` becomes `\uFFFD`).
///
/// # Errors
/// [`EncodeError::InsufficientSize`] with the exact size, or an error of the
/// id.
pub fn write_error(
    out: &mut [u8],
    style: Style,
    id: Option<&dyn WriteJson>,
    class: &[u8],
    desc: &[&[u8]],
) -> Result<usize, EncodeError> {
    message(out, style, |w| {
        if let Some(id) = id {
            w.key(b"id");
            id.write_json(w)?;
        }
        w.key(b"error");
        w.open(b'{');
        w.key(b"class");
        w.quoted(class);
        w.key(b"desc");
        w.put_byte(b'"');
        escape_pieces(w, desc);
        w.put_byte(b'"');
        w.close(b'}');
        Ok(())
    })
}

/// Writes an event: `{"timestamp": {"seconds": S, "microseconds": U},
/// "event": E, "data": D}` (`data` omitted when `None`).
///
/// # Errors
/// [`EncodeError::InsufficientSize`] with the exact size, or an error of the
/// data.
pub fn write_event(
    out: &mut [u8],
    style: Style,
    name: &str,
    data: Option<&dyn WriteJson>,
    seconds: i64,
    microseconds: i64,
) -> Result<usize, EncodeError> {
    message(out, style, |w| {
        w.key(b"timestamp");
        w.open(b'{');
        w.key(b"seconds");
        write_display(w, seconds)?;
        w.key(b"microseconds");
        write_display(w, microseconds)?;
        w.close(b'}');
        w.key(b"event");
        w.quoted(name.as_bytes());
        if let Some(data) = data {
            w.key(b"data");
            data.write_json(w)?;
        }
        Ok(())
    })
}

/// Writes the greeting: `{"QMP": {"version": {"qemu": {"micro": 2, "minor":
/// 0, "major": 10}, "package": P}, "capabilities": [..]}}`.
///
/// # Errors
/// [`EncodeError::InsufficientSize`] with the exact size.
pub fn write_greeting(
    out: &mut [u8],
    style: Style,
    major: u64,
    minor: u64,
    micro: u64,
    package: &str,
    capabilities: &[&str],
) -> Result<usize, EncodeError> {
    message(out, style, |w| {
        w.key(b"QMP");
        w.open(b'{');
        w.key(b"version");
        w.open(b'{');
        w.key(b"qemu");
        w.open(b'{');
        w.key(b"micro");
        write_display(w, micro)?;
        w.key(b"minor");
        write_display(w, minor)?;
        w.key(b"major");
        write_display(w, major)?;
        w.close(b'}');
        w.key(b"package");
        w.quoted(package.as_bytes());
        w.close(b'}');
        w.key(b"capabilities");
        w.open(b'[');
        for cap in capabilities {
            w.prefix();
            w.quoted(cap.as_bytes());
        }
        w.close(b']');
        w.close(b'}');
        Ok(())
    })
}

// ---------------------------------------------------------------------------
// serde Serializer

/// Serializer of one value (its separator already written).
struct ValueSer<'w, 'b> {
    w: &'w mut JsonWriter<'b>,
}

/// Serializer of a map key: writes the separator, the quoted key and the
/// colon; only strings (and unit variants, chars) are accepted.
struct KeySer<'w, 'b> {
    w: &'w mut JsonWriter<'b>,
}

/// Sequence, map and struct state; `variant` closes an extra `}`.
struct Compound<'w, 'b> {
    w: &'w mut JsonWriter<'b>,
    variant: bool,
}

impl Compound<'_, '_> {
    fn end_with(self, closer: u8) -> Result<(), EncodeError> {
        self.w.close(closer);
        if self.variant {
            self.w.close(b'}');
        }
        Ok(())
    }
}

/// Writes a `Display` value as an escaped string body.
struct EscapeFmt<'w, 'b> {
    w: &'w mut JsonWriter<'b>,
}

impl fmt::Write for EscapeFmt<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        escape_pieces(self.w, &[s.as_bytes()]);
        Ok(())
    }
}

fn int128(w: &mut JsonWriter<'_>, v: i128) -> Result<(), EncodeError> {
    if let Ok(v) = i64::try_from(v) {
        write_display(w, v)
    } else if let Ok(v) = u64::try_from(v) {
        write_display(w, v)
    } else {
        Err(EncodeError::Unsupported)
    }
}

impl<'w, 'b> ser::Serializer for ValueSer<'w, 'b> {
    type Ok = ();
    type Error = EncodeError;
    type SerializeSeq = Compound<'w, 'b>;
    type SerializeTuple = Compound<'w, 'b>;
    type SerializeTupleStruct = Compound<'w, 'b>;
    type SerializeTupleVariant = Compound<'w, 'b>;
    type SerializeMap = Compound<'w, 'b>;
    type SerializeStruct = Compound<'w, 'b>;
    type SerializeStructVariant = Compound<'w, 'b>;

    fn serialize_bool(self, v: bool) -> Result<(), EncodeError> {
        v.write_json(self.w)
    }
    fn serialize_i8(self, v: i8) -> Result<(), EncodeError> {
        write_display(self.w, v)
    }
    fn serialize_i16(self, v: i16) -> Result<(), EncodeError> {
        write_display(self.w, v)
    }
    fn serialize_i32(self, v: i32) -> Result<(), EncodeError> {
        write_display(self.w, v)
    }
    fn serialize_i64(self, v: i64) -> Result<(), EncodeError> {
        write_display(self.w, v)
    }
    fn serialize_i128(self, v: i128) -> Result<(), EncodeError> {
        int128(self.w, v)
    }
    fn serialize_u8(self, v: u8) -> Result<(), EncodeError> {
        write_display(self.w, v)
    }
    fn serialize_u16(self, v: u16) -> Result<(), EncodeError> {
        write_display(self.w, v)
    }
    fn serialize_u32(self, v: u32) -> Result<(), EncodeError> {
        write_display(self.w, v)
    }
    fn serialize_u64(self, v: u64) -> Result<(), EncodeError> {
        write_display(self.w, v)
    }
    fn serialize_u128(self, v: u128) -> Result<(), EncodeError> {
        match u64::try_from(v) {
            Ok(v) => write_display(self.w, v),
            Err(_) => Err(EncodeError::Unsupported),
        }
    }
    fn serialize_f32(self, v: f32) -> Result<(), EncodeError> {
        self.serialize_f64(f64::from(v))
    }
    fn serialize_f64(self, v: f64) -> Result<(), EncodeError> {
        if !v.is_finite() {
            return Err(EncodeError::Unsupported);
        }
        write_g17(self.w, v)
    }
    fn serialize_char(self, v: char) -> Result<(), EncodeError> {
        let mut buf = [0u8; 4];
        self.w.quoted(v.encode_utf8(&mut buf).as_bytes());
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), EncodeError> {
        self.w.quoted(v.as_bytes());
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), EncodeError> {
        self.w.open(b'[');
        for b in v {
            self.w.prefix();
            write_display(self.w, b)?;
        }
        self.w.close(b']');
        Ok(())
    }
    fn serialize_none(self) -> Result<(), EncodeError> {
        self.w.put(b"null");
        Ok(())
    }
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<(), EncodeError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), EncodeError> {
        self.serialize_none()
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), EncodeError> {
        self.serialize_none()
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), EncodeError> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), EncodeError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), EncodeError> {
        self.w.open(b'{');
        self.w.key(variant.as_bytes());
        value.serialize(ValueSer { w: self.w })?;
        self.w.close(b'}');
        Ok(())
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Compound<'w, 'b>, EncodeError> {
        self.w.open(b'[');
        Ok(Compound {
            w: self.w,
            variant: false,
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<Compound<'w, 'b>, EncodeError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Compound<'w, 'b>, EncodeError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'w, 'b>, EncodeError> {
        self.w.open(b'{');
        self.w.key(variant.as_bytes());
        self.w.open(b'[');
        Ok(Compound {
            w: self.w,
            variant: true,
        })
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Compound<'w, 'b>, EncodeError> {
        self.w.open(b'{');
        Ok(Compound {
            w: self.w,
            variant: false,
        })
    }
    fn serialize_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Compound<'w, 'b>, EncodeError> {
        self.serialize_map(Some(len))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'w, 'b>, EncodeError> {
        self.w.open(b'{');
        self.w.key(variant.as_bytes());
        self.w.open(b'{');
        Ok(Compound {
            w: self.w,
            variant: true,
        })
    }
    fn collect_str<T: ?Sized + fmt::Display>(self, value: &T) -> Result<(), EncodeError> {
        self.w.put_byte(b'"');
        write!(EscapeFmt { w: self.w }, "{value}").map_err(|_| EncodeError::Unsupported)?;
        self.w.put_byte(b'"');
        Ok(())
    }
}

impl ser::SerializeSeq for Compound<'_, '_> {
    type Ok = ();
    type Error = EncodeError;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), EncodeError> {
        self.w.prefix();
        value.serialize(ValueSer { w: self.w })
    }
    fn end(self) -> Result<(), EncodeError> {
        self.end_with(b']')
    }
}

impl ser::SerializeTuple for Compound<'_, '_> {
    type Ok = ();
    type Error = EncodeError;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), EncodeError> {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Result<(), EncodeError> {
        self.end_with(b']')
    }
}

impl ser::SerializeTupleStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = EncodeError;
    fn serialize_field<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), EncodeError> {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Result<(), EncodeError> {
        self.end_with(b']')
    }
}

impl ser::SerializeTupleVariant for Compound<'_, '_> {
    type Ok = ();
    type Error = EncodeError;
    fn serialize_field<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), EncodeError> {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Result<(), EncodeError> {
        self.end_with(b']')
    }
}

impl ser::SerializeMap for Compound<'_, '_> {
    type Ok = ();
    type Error = EncodeError;
    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<(), EncodeError> {
        key.serialize(KeySer { w: self.w })
    }
    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), EncodeError> {
        value.serialize(ValueSer { w: self.w })
    }
    fn end(self) -> Result<(), EncodeError> {
        self.end_with(b'}')
    }
}

impl ser::SerializeStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = EncodeError;
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), EncodeError> {
        self.w.key(key.as_bytes());
        value.serialize(ValueSer { w: self.w })
    }
    fn end(self) -> Result<(), EncodeError> {
        self.end_with(b'}')
    }
}

impl ser::SerializeStructVariant for Compound<'_, '_> {
    type Ok = ();
    type Error = EncodeError;
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), EncodeError> {
        ser::SerializeStruct::serialize_field(self, key, value)
    }
    fn end(self) -> Result<(), EncodeError> {
        self.end_with(b'}')
    }
}

/// Every key type other than a string is rejected.
macro_rules! reject_keys {
    ($($name:ident($ty:ty)),* $(,)?) => {
        $(fn $name(self, _v: $ty) -> Result<(), EncodeError> {
            Err(EncodeError::KeyMustBeString)
        })*
    };
}

impl<'w, 'b> ser::Serializer for KeySer<'w, 'b> {
    type Ok = ();
    type Error = EncodeError;
    type SerializeSeq = ser::Impossible<(), EncodeError>;
    type SerializeTuple = ser::Impossible<(), EncodeError>;
    type SerializeTupleStruct = ser::Impossible<(), EncodeError>;
    type SerializeTupleVariant = ser::Impossible<(), EncodeError>;
    type SerializeMap = ser::Impossible<(), EncodeError>;
    type SerializeStruct = ser::Impossible<(), EncodeError>;
    type SerializeStructVariant = ser::Impossible<(), EncodeError>;

    reject_keys!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_i128(i128),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_u128(u128),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_bytes(&[u8]),
        serialize_unit_struct(&'static str),
    );

    fn serialize_char(self, v: char) -> Result<(), EncodeError> {
        let mut buf = [0u8; 4];
        self.w.key(v.encode_utf8(&mut buf).as_bytes());
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), EncodeError> {
        self.w.key(v.as_bytes());
        Ok(())
    }
    fn serialize_none(self) -> Result<(), EncodeError> {
        Err(EncodeError::KeyMustBeString)
    }
    fn serialize_some<T: ?Sized + Serialize>(self, _value: &T) -> Result<(), EncodeError> {
        Err(EncodeError::KeyMustBeString)
    }
    fn serialize_unit(self) -> Result<(), EncodeError> {
        Err(EncodeError::KeyMustBeString)
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), EncodeError> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), EncodeError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<(), EncodeError> {
        Err(EncodeError::KeyMustBeString)
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, EncodeError> {
        Err(EncodeError::KeyMustBeString)
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, EncodeError> {
        Err(EncodeError::KeyMustBeString)
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, EncodeError> {
        Err(EncodeError::KeyMustBeString)
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, EncodeError> {
        Err(EncodeError::KeyMustBeString)
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, EncodeError> {
        Err(EncodeError::KeyMustBeString)
    }
    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, EncodeError> {
        Err(EncodeError::KeyMustBeString)
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, EncodeError> {
        Err(EncodeError::KeyMustBeString)
    }
    fn collect_str<T: ?Sized + fmt::Display>(self, value: &T) -> Result<(), EncodeError> {
        self.w.prefix();
        self.w.put_byte(b'"');
        write!(EscapeFmt { w: self.w }, "{value}").map_err(|_| EncodeError::Unsupported)?;
        self.w.put_byte(b'"');
        self.w.colon();
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;
    use std::string::String;
    use std::vec;
    use std::vec::Vec;

    fn raw(s: &[u8]) -> RawJson<'_> {
        RawJson::from_validated(s)
    }

    /// Runs a writer at every buffer size: all short sizes must fail with
    /// the same exact `required`, the full size must succeed.
    fn all_sizes(f: impl Fn(&mut [u8]) -> Result<usize, EncodeError>) -> Vec<u8> {
        let mut big = vec![0u8; 1 << 16];
        let n = f(&mut big).unwrap();
        for size in 0..n {
            let mut buf = vec![0u8; size];
            assert_eq!(
                f(&mut buf),
                Err(EncodeError::InsufficientSize(InsufficientSize {
                    required: n
                })),
                "size {size}"
            );
        }
        let mut exact = vec![0u8; n];
        assert_eq!(f(&mut exact), Ok(n));
        assert_eq!(exact[..], big[..n]);
        exact
    }

    fn text(f: impl Fn(&mut [u8]) -> Result<usize, EncodeError>) -> String {
        String::from_utf8(all_sizes(f)).unwrap()
    }

    fn qemu(input: &str, style: Style) -> String {
        text(|out| write_value_qemu(out, style, raw(input.as_bytes())))
    }

    /// Without the every-size check (for big inputs).
    fn qemu_once(input: &str, style: Style) -> String {
        let mut buf = vec![0u8; (4 * input.len()).max(1 << 20)];
        let n = write_value_qemu(&mut buf, style, raw(input.as_bytes())).unwrap();
        buf.truncate(n);
        String::from_utf8(buf).unwrap()
    }

    fn esc(bytes: &[u8]) -> String {
        text(|out| escape_bytes(out, bytes))
    }

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

    #[test]
    fn buckets() {
        let table = [
            ("seconds", 5),
            ("timestamp", 26),
            ("extra", 41),
            ("QMP", 99),
            ("exec-oob", 162),
            ("version", 184),
            ("class", 211),
            ("capabilities", 216),
            ("minor", 225),
            ("micro", 225),
            ("qemu", 232),
            ("a", 233),
            ("enable", 252),
            ("control", 263),
            ("execute", 299),
            ("package", 326),
            ("b", 340),
            ("event", 361),
            ("microseconds", 374),
            ("desc", 377),
            ("return", 401),
            ("arguments", 447),
            ("major", 481),
            ("id", 486),
            ("error", 489),
            ("data", 505),
        ];
        for (key, bucket) in table {
            assert_eq!(qdict_bucket(key.as_bytes()), bucket, "{key}");
            let quoted = std::format!("\"{key}\"");
            let s = raw(quoted.as_bytes()).as_json_str().unwrap();
            assert_eq!(json_str_bucket(s), bucket, "{key}");
        }
        // Escaped keys hash their unescaped bytes.
        let s = raw(br#""\u0069\u0064""#).as_json_str().unwrap();
        assert_eq!(json_str_bucket(s), 486);
    }

    const G17: &[(u64, &str)] = &[
        (0x3ff8000000000000, "1.5"),
        (0x3fb999999999999a, "0.10000000000000001"),
        (0x4008000000000000, "3"),
        (0x7e37e43c8800759c, "1.0000000000000001e+300"),
        (0x43f0000000000000, "1.8446744073709552e+19"),
        (0x3ee4f8b588e368f1, "1.0000000000000001e-05"),
        (0x8000000000000000, "-0"),
        (0x0000000000000000, "0"),
        (0x4341c37937e08000, "10000000000000000"),
        (0x4376345785d8a000, "1e+17"),
        (0x4345ee2a2eb5a5c4, "12345678901234568"),
        (0x0000000000000001, "4.9406564584124654e-324"),
        (0x7fefffffffffffff, "1.7976931348623157e+308"),
        (0x3f1a36e2eb1c432d, "0.0001"),
        (0x3ee9e0fcaf9380fc, "1.234e-05"),
        (0x4059000000000000, "100"),
        (0x4004000000000000, "2.5"),
        (0x430c6bf526340002, "1000000000000000.2"),
        (0x40fe240c9fbe76c9, "123456.789"),
        (0x8010000000000000, "-2.2250738585072014e-308"),
        (0x4340000000000000, "9007199254740992"),
        (0x3fd3333333333333, "0.29999999999999999"),
        (0x3fe5555555555555, "0.66666666666666663"),
        (0x444b1ae4d6e2ef50, "1e+21"),
        (0x3e7ad7f29abcaf48, "9.9999999999999995e-08"),
        (0x3c36b082c2148b8e, "1.23e-18"),
        (0x3fe0000000000000, "0.5"),
        (0x4480f0cf064dd592, "1e+22"),
        (0x4011666666666666, "4.3499999999999996"),
        (0x3f202e85be111841, "0.000123456789"),
        (0xf2a74de452e6b438, "-1.989032661366619e+244"),
        (0x6513270e269e0d37, "7.761117632285041e+178"),
        (0x0c5c7fd0a6a3a450, "3.980498358697587e-249"),
        (0xd23f0824128b2f33, "-1.5432835417340557e+88"),
        (0x1818e811892f902b, "1.3647584518757569e-192"),
        (0x9531985d5d9dc9f8, "-1.3701135617873088e-206"),
        (0xe8e25d940ed90475, "-1.7160537630466207e+197"),
        (0x36f675cc81e74ef5, "6.2946752411953861e-44"),
        (0x1600a35a099950d8, "1.0613447212142254e-202"),
        (0x6b0d549b6f03675a, "4.7083251603875462e+207"),
        (0x3d9c172411e20b8f, "6.3870161585135632e-12"),
        (0x8d116ece1738f7d9, "-9.9731303785687331e-246"),
        (0x0f21ddb66cad4a26, "8.7797532256802712e-236"),
        (0x90c192cfd3ac94af, "-5.7955032484989932e-228"),
        (0xf28c105d1fb17c23, "-5.9881801593860111e+243"),
        (0xa170b33839263059, "-1.3060523885277959e-147"),
        (0x953f48f1a09f76b5, "-2.4361176994848409e-206"),
        (0x0fd630f1f29d0da9, "2.2333869991501741e-232"),
        (0x95e60af593bd04cf, "-3.5152797062666699e-203"),
        (0x0cb1e29c658cda14, "1.5987381841032883e-247"),
        (0x3898d190f9ebdacc, "4.6678633181812096e-36"),
        (0x8e81973e0becd7b0, "-8.4418727921054556e-239"),
        (0x2217beaddbc496cb, "1.9015657400796622e-144"),
        (0x6b4cb2424a23d596, "7.370437700706684e+208"),
        (0x8a6a63ec24ede6a4, "-1.7163996725272777e-258"),
        (0x922766581e27a1c0, "-3.2367190832119987e-221"),
        (0x8f6d05584ef8aa38, "-2.2818334634712625e-234"),
        (0xae97ba94d0eda82f, "-3.0536383926309363e-84"),
        (0x1a61dbe22e44158b, "1.3449551894627777e-181"),
        (0x923a736994e3bf91, "-7.3174959760626057e-221"),
        (0x301850c5a38fd547, "5.2498223088143036e-77"),
        (0x18f135d25f557203, "1.5450754142984396e-188"),
        (0xb64ce4228c38fb29, "-3.9536256982247919e-47"),
        (0x907a70c31012f037, "-2.7249126747649799e-229"),
        (0x9e7769b10f4205b4, "-6.5051418615487723e-162"),
        (0x7f15052434b9b5df, "1.4414848395559941e+304"),
        (0x881ed162ae2eb154, "-1.4583679262758548e-269"),
        (0xc6f877186d76b07e, "-7.9394166688077208e+33"),
        (0x7731af10506bf2ef, "1.4255183989699612e+266"),
        (0xec66a78795e761d1, "-1.5253157012324029e+214"),
        (0x5c90a9587403e430, "7.750545741548908e+137"),
        (0x3f98e2774cbd87ad, "0.024301399287089676"),
        (0x2e05319acb5c7427, "5.3269600817830169e-87"),
        (0xc7a2ea20b2f14c94, "-1.2570882301712172e+37"),
        (0x14f4733f3e7d1bfb, "9.9526840090024479e-208"),
        (0x4cdd2055930d6eaf, "1.8721667527122837e+62"),
        (0x7ebff20686734721, "3.4229783989470719e+302"),
        (0x57ee05cde00902c7, "3.6967297937384553e+115"),
        (0x72e6cc3ababced20, "3.1132849561694472e+245"),
        (0x9be4bcfc49b64a08, "-2.6202582260546103e-174"),
        (0x12bd4acefaecbd38, "2.0745096302730225e-218"),
        (0x830e07bc1e398f10, "-5.877500503097409e-294"),
        (0x2a3af4d46b0a18e8, "2.9383455973541661e-105"),
        (0x5790f82ec1d3fcff, "6.5295986747658322e+113"),
        (0xeeeacbe226e87555, "-1.9837344250050814e+226"),
        (0x6bf46c697d2caf82, "1.0743030475716402e+212"),
        (0xf646e1f40a097c97, "-5.629271400715247e+261"),
        (0x13deef86ab1031d0, "5.7433106149184849e-213"),
        (0x8ede0d7ac3baea9e, "-4.6151547070255599e-237"),
        (0xca02135e92b1d3f2, "-3.302201168194502e+48"),
        (0xd17f9acae01f5057, "-3.8373366379117136e+84"),
        (0x571242425051c1cc, "2.7444240984593666e+111"),
        (0x59a54a7bb1fee08f, "7.0372547696645247e+123"),
        (0x7f26144b98289fcd, "3.0282415270685036e+304"),
        (0xcc011cdd9474031b, "-1.3427313830183207e+58"),
        (0x119a72d174c9df6a, "7.1453650522518077e-224"),
        (0x17f5e837d70820fe, "3.0010119427191346e-193"),
        (0x451abd81f1d69ed6, "8.08174890787967e+24"),
        (0xb2715945795e8229, "-1.029599445714058e-65"),
        (0x10a3d6b2aa05e11a, "1.6356324386913733e-228"),
        (0xbb2d420f0f88080b, "-1.210084267904234e-23"),
        (0x4f426dcbb394fb36, "6.5122058598344157e+73"),
        (0x93f448b3a5aa3c81, "-1.5063173670565552e-212"),
        (0xae658f33fe3b890b, "-3.4680683343609559e-85"),
        (0x72158370d269a9a5, "3.5862982565236525e+241"),
        (0xb774eb5248db40af, "-1.500880737539812e-41"),
        (0xe315128862c33a4f, "-1.9881605394901064e+169"),
        (0x58d5563dab2cd31e, "8.6089299807627358e+119"),
        (0xf0ce583505c6af07, "-2.412056419517317e+235"),
        (0x5affb2297631a992, "2.1970596639627999e+130"),
        (0x9c6539382b0537e6, "-6.8648296141500026e-172"),
        (0x7e62aa0a1df9fd78, "6.2496465711118593e+300"),
        (0x37dc76fb0f17a300, "1.3070380624806793e-39"),
        (0x49952399c4aaeac1, "3.0170681842882087e+46"),
        (0xbd0561e6211c70cf, "-9.4957010010874352e-15"),
        (0x65dc9f503f63af83, "4.7507502047509849e+182"),
        (0xeab477d26415479c, "-1.0267710304426359e+206"),
        (0x7f1b103cdf1582b0, "1.8559166032057722e+304"),
        (0x2a96fb1a14a0f9e7, "1.6032007377980954e-103"),
        (0x66d2287672fdf202, "1.9751801151887592e+187"),
        (0x4720771f8ca81811, "4.2746428041772148e+34"),
        (0x230d977ee2257159, "7.7653871385137949e-140"),
        (0x6e36aab0d1bc52d9, "8.193439767873551e+222"),
        (0x8cdb305fdd2e1609, "-9.7215654460842523e-247"),
        (0xb4d66a3a47469a4d, "-3.6566096214330605e-54"),
        (0xfc891b4a6a50df4d, "-7.8294957456817992e+291"),
        (0xaec6f0245bd86d40, "-2.3614991605223492e-83"),
        (0x616499c9e25a7605, "1.4481396684332679e+161"),
        (0x3b1287fff52ddf5d, "3.8321725482165366e-24"),
        (0x153e7c2a26a2c0bd, "2.3738290563139491e-206"),
        (0x26bb7dbd2d1c9af0, "4.1586747791282524e-122"),
        (0xa8948c893b618676, "-3.337733639824717e-113"),
        (0x0316909e3bbbe9ea, "8.8327905439827136e-294"),
        (0xd4c28c2e7c26847f, "-2.0284108606212458e+100"),
        (0x2eae05cf96d0cc5f, "7.7271785554382585e-84"),
        (0x482c9cbc43435cc5, "4.8681216785982848e+39"),
        (0x254b0c4e010c4759, "4.8776212517061182e-129"),
        (0x88daf4016b4013ef, "-5.2243626508318762e-266"),
        (0x9c1caaf75e8766ed, "-2.8977267740353203e-173"),
        (0x519088f590fbbd11, "8.0305060980922437e+84"),
        (0x20203626f3fe39c0, "6.045556425707975e-154"),
        (0xdbf4a8b2b0c4312d, "-9.3848401234979093e+134"),
        (0xf341e07a83f73f16, "-1.5624204901097633e+247"),
        (0xa7abe1c29e1a8ef4, "-1.3820816268679183e-117"),
        (0xbd628881ad1b72db, "-5.2674604096931422e-13"),
        (0x74e69a5d0dd27a65, "1.3257208647146701e+255"),
        (0xdef88334e647cb8f, "-3.1343387564175544e+149"),
        (0xf3aed0b6c7ac1491, "-1.7236642596087033e+249"),
        (0xae3a2b7fdfe01893, "-5.2621550823053697e-86"),
        (0x8f2c6ec8cc4169a3, "-1.3972441246414233e-235"),
        (0x65e7e4236472f1a3, "7.9309409049828853e+182"),
        (0x64e50cad66237a04, "1.0662269838816983e+178"),
        (0x7b45145c1a81682c, "6.2691236220776179e+285"),
        (0x66836886a260cd0b, "6.5974322046350677e+185"),
        (0x30cbc97d0fef7928, "1.2286657182299287e-73"),
        (0xfc132d0d113db17d, "-4.6718988207962918e+289"),
        (0x70ccec313571810a, "2.2990284766219708e+235"),
        (0x1c2442f9298cb3a5, "4.0960622500000236e-173"),
        (0x99c94309570dc195, "-1.8578815093690756e-184"),
        (0x1a358ca00d75985d, "2.028598735161868e-182"),
        (0x9118bb16000f49c8, "-2.6098858497543247e-226"),
        (0x895fd7b326b94c7f, "-1.5800543282391385e-263"),
        (0xf2ee4e4519f9919c, "-4.1385804681105951e+245"),
        (0x9d1de2a05d158a2f, "-1.979700384530873e-168"),
        (0x1200339d068739fa, "5.6026243687848435e-222"),
        (0x353c631cdfd43f37, "2.9637577225244357e-52"),
        (0x6050914a9d33a01c, "8.8853783260576584e+155"),
        (0xa268aa872607679d, "-6.321104805376388e-143"),
        (0xf4998d7c4093f6de, "-4.6835242680021668e+253"),
        (0x9a2ef80f58ee8571, "-1.4576712926495294e-182"),
        (0x7961fd925d39d0a8, "4.9829854420184921e+276"),
        (0x1d87cec31f7296ab, "2.0186880235336049e-166"),
        (0x7cf20724d953ee26, "7.19616430630608e+293"),
        (0xfa529ba3fe3bfada, "-1.6888652122551737e+281"),
        (0x7afb2c68774b15d7, "2.5254629938390568e+284"),
        (0x4fd58dbe7bdc968b, "3.8996039709969242e+76"),
        (0x24e4e25a15fc899e, "5.8844986864652625e-131"),
        (0xbfeaa1551a28f7b3, "-0.83219390019779949"),
        (0xbd87a86557b6fb7e, "-2.6895800563014877e-12"),
        (0x7a86f7a243c71b9a, "1.6676168338224431e+282"),
        (0xb12aa1f6d42fddbb, "-7.5367792409297482e-72"),
        (0x842e7fc229540a6e, "-1.5648062434293159e-288"),
        (0x3488f87605e999f3, "1.2729722444358082e-55"),
        (0xf3b7a50df373ca53, "-2.6451545124100877e+249"),
        (0x5c9bcf35873be078, "1.2936292141064353e+138"),
        (0xb0a844e52587be6b, "-2.6827804666270476e-74"),
        (0xea0575438b0d590b, "-5.2560270604194377e+202"),
        (0xc215a82a06ec41ad, "-23253909947.064137"),
        (0x4c4f9b0687322e25, "3.9678273601399488e+59"),
        (0xa49636a2fa7f0eab, "-1.9559485635143812e-132"),
        (0x174c77a2dd02de92, "1.9041429903692674e-196"),
        (0xd86f40f6b239f3c7, "-9.8516881122180291e+117"),
        (0x84b5a81842d87208, "-5.6889852533184551e-286"),
        (0xe883a1d45de00997, "-2.8662561137530009e+195"),
        (0x5b0ee76f2ac34446, "4.2843347600837791e+130"),
        (0x3908f227c59db916, "6.0055116385069545e-34"),
        (0x8aa4248c8857f9a4, "-2.0961043337155302e-257"),
        (0x80b0c08bc7702420, "-2.3855829055394437e-305"),
        (0xa2eddbbd5464ecc2, "-1.9588354272108557e-140"),
        (0x9cfc865239194242, "-4.7239295389576093e-169"),
        (0xc9d488b1cfbf3360, "-4.6891282532274452e+47"),
        (0xc2216b02fc241d0b, "-37404900882.056725"),
        (0x31f51707da45e18a, "4.8891889123485164e-68"),
        (0x3d4882a5ce5b2a92, "1.7415645814351736e-13"),
        (0x66934036d17e4497, "1.3087808816820187e+186"),
        (0xcda6c6fdbd685167, "-1.1993653182754763e+66"),
        (0x332dd3313a0b9965, "3.6250242830062499e-62"),
        (0x7e26f36a8483f8b8, "4.8031302683796236e+299"),
        (0xbb2313f55b06258e, "-7.8904603860870608e-24"),
        (0xfd56a926076b3e36, "-5.7890830595466869e+295"),
        (0xca44eb860726e25c, "-6.1149269001271757e+49"),
        (0x78e4b98d4787f93b, "2.2423152312153185e+274"),
        (0x3192b70442594052, "6.7790483015019817e-70"),
        (0x9aea6429b1491e24, "-5.0880659661223471e-179"),
        (0x5822cb77f4de2c08, "3.7027639610999215e+116"),
        (0xcefe2a1f727d8349, "-3.3310083190936031e+72"),
        (0xb91ee9e5efe09f07, "-1.4884388187324959e-33"),
        (0x597a1ecffcf00fec, "1.0791887901409966e+123"),
        (0xf979d04af47aebdd, "-1.4299647765176006e+277"),
        (0x149e259b5d58c705, "2.2924808400735589e-209"),
        (0x1a26f88938703800, "1.0812088444412107e-182"),
        (0x785729763a12917c, "4.8945347718661209e+271"),
        (0x5675f6ad325b55dd, "3.223900221186047e+108"),
        (0x7b8f2ab53451d013, "1.4830591812993337e+287"),
        (0xfc3947249fc2d0a1, "-2.4634109827844716e+290"),
        (0x9c3a23cde67a9b75, "-1.0568802049276326e-172"),
        (0x007d1034d726c86b, "2.5867201219109653e-306"),
        (0xe8c147437abec539, "-4.0361754946379778e+196"),
        (0x5810d60ea72991b9, "1.6584463086542351e+116"),
        (0xa4a45effccb573d9, "-3.5874527890711494e-132"),
        (0xd5ab8b4d15b40aeb, "-4.9353483100144132e+104"),
        (0x1eb20109a91c2439, "8.0037335592765227e-161"),
        (0x63771407e8e72789, "1.3935429132563949e+171"),
        (0xb6246771c8450070, "-6.9805190117412717e-48"),
        (0x330698a1c0093492, "6.8660454359541822e-63"),
        (0xe39639be7a605a91, "-5.3682200674312672e+171"),
        (0x6f15b6ad2db3997f, "1.2859621349384839e+227"),
        (0xa2c68e45ca04c79f, "-3.6993835478682605e-141"),
        (0x16353d03551fd8f9, "1.0838353739705261e-201"),
        (0xf237e45acd02c5e1, "-1.5931227091528756e+242"),
        (0xb8c9817af8be8831, "-3.8376836373383669e-35"),
        (0x7691b06f6555abfe, "1.3925295317670518e+263"),
        (0xbe4c5ce666c1494e, "-1.3207500170060027e-08"),
        (0x15bd448ff26149ed, "5.834361644481157e-204"),
        (0x28aaca51b98c67c2, "8.7030076632523883e-113"),
        (0xfe3c9c8f2b855c1f, "-1.1975598584910996e+300"),
        (0x070d710920859634, "1.0629542477011113e-274"),
        (0x973f798626b1cffc, "-1.0526511963774054e-196"),
        (0x77216e9ee7a46309, "7.0261303246222784e+265"),
        (0xa7e6529bce76e9f4, "-1.7704277708033753e-116"),
        (0x9c9011ef256badf9, "-4.1583385425333168e-171"),
        (0x988af3fbd39630d6, "-1.8904310969702605e-190"),
        (0x796f74adfaf55496, "8.7125741552678118e+276"),
        (0xeffddeeaa842bc19, "-2.8984317427537012e+231"),
        (0x27e9e06f59b44e92, "2.0522986621069065e-116"),
        (0x8c5c715f8c74fc1e, "-3.97261910411318e-249"),
        (0x057a40b22188287e, "2.8247391580753291e-282"),
        (0xcca2a92b03a56cc1, "-1.4993384848054988e+61"),
        (0xb9f3635cf88c422b, "-1.5294543598773557e-29"),
        (0x1a4f44f9a6511445, "5.8872524230276059e-182"),
        (0xbfdefc1586ce03f9, "-0.48413599171186622"),
        (0x23a5ef88ef02090b, "5.8944480805588664e-137"),
        (0xfc8e80b36f0e2289, "-9.5122803026738462e+291"),
        (0x31dec4f4df2a8b79, "1.7832797613943653e-68"),
        (0xdfb85c0dd37ee915, "-1.2758150388432291e+153"),
        (0x072a98d23606defc, "3.841014257054016e-274"),
        (0x3678bc8d40783f0a, "2.7080673411631812e-46"),
        (0x804c25d64affdcd1, "-3.1315468202343171e-307"),
        (0xc38084a03d93fd4c, "-1.487815484836192e+17"),
        (0x537409029620bf0d, "1.0447978103344436e+94"),
        (0x8b5ab3ee4265bb31, "-5.6909052424762473e-254"),
        (0xd58dcdb46b446806, "-1.3350461816045554e+104"),
        (0x0f977044218e0b7b, "1.4743273485426034e-233"),
        (0xbd6b881ae8f6e0bd, "-7.824968581153925e-13"),
        (0xe5cfedfa5a9196f0, "-2.6498475578330683e+182"),
        (0xa997f351754a09cd, "-2.5495026020145973e-108"),
        (0xd0a6ec179556585e, "-3.3973932334811703e+80"),
        (0x844a7034e77ffe48, "-5.4258502547126975e-288"),
        (0xd3bf6d016bae4b5b, "-2.6220745174070609e+95"),
        (0xe0cfab4ceaefc4d2, "-2.1740225479195393e+158"),
        (0x2179b37d806c10b5, "2.0099923989960154e-147"),
        (0x26debfdb8825ae56, "1.8606257255997269e-121"),
        (0x82b3359986048719, "-1.174890724221447e-295"),
        (0xdf70301704c9d78d, "-5.2989160203055447e+151"),
        (0xc6c91b9270ac06ac, "-1.0184894430053454e+33"),
        (0x9bca3cb72ee0289d, "-8.2876140820051648e-175"),
        (0xc6aa7d550101b811, "-2.6863623872605245e+32"),
        (0x265974a7cc966f46, "6.0168140572526441e-124"),
        (0x243d35702c1eea1f, "4.0186002599798139e-134"),
        (0x9e7d6b377936d536, "-8.17386611297425e-162"),
        (0x1ece615db9a6442e, "2.7011263403004327e-160"),
        (0x0fcf31ca8e752fdf, "1.5697530943457442e-232"),
        (0xaead44b0537390e5, "-7.5330169845451407e-84"),
        (0x87ddaeb784b28054, "-8.7789830111328377e-271"),
        (0x7b8444d18e317041, "9.6448261968169314e+286"),
        (0xc6c80e2bc8c614b2, "-9.7580115067767271e+32"),
        (0xe21b37ca1b29fc99, "-3.9184355244378524e+164"),
        (0x0e8bec948f6f915f, "1.3400878900335163e-238"),
        (0x30f970583f9d52f9, "8.9986730714688336e-73"),
        (0x0acd8be146e40990, "1.2298676311984402e-256"),
        (0x1905d591c5b2e75a, "3.9204065657704412e-188"),
        (0x73c1cd2c81f98b52, "3.9829243245370635e+249"),
        (0x072235c28fcd7f40, "2.6298071705707708e-274"),
        (0xe4ddf9b9c28ee907, "-7.5917825584762799e+177"),
        (0x1038f0b5e998d0ee, "1.6064402655252351e-230"),
        (0x535b6a437178ba0a, "3.574113784857116e+93"),
        (0xf92e23399ccea098, "-5.217166335787948e+275"),
        (0x9b2bd6c0816bee06, "-8.5874505788862346e-178"),
        (0x330c16a3831d03bf, "8.5348996368954529e-63"),
        (0x46f5a1b4b156d1ad, "7.0198761205297745e+33"),
        (0x8216858f73ccef03, "-1.3451969312374068e-298"),
        (0xceaf4915888564e8, "-1.0796224028842281e+71"),
        (0x81fc069e7a609683, "-4.1848818378076176e-299"),
        (0x3f665edef10637ce, "0.0027307848287767339"),
        (0x85f1115bb2fff17b, "-4.7013407045036489e-280"),
        (0xe040015ce064a114, "-4.2919260490498252e+155"),
        (0xed84e91ef132bf2d, "-3.690744153706499e+219"),
        (0xec3b96054274a3eb, "-2.3216992379820049e+213"),
        (0xe48b96628f3c4be3, "-2.1834281461723717e+176"),
        (0x33dcd77ff179f2d2, "7.1793174882790308e-59"),
        (0x729135bdd70a39d1, "7.3443870815707537e+243"),
        (0x6aa8b9e0231b3e14, "6.2018643240575595e+205"),
        (0x6471fde41f229dd0, "7.119855593285067e+175"),
        (0x50e40d54712ea6b3, "4.755191906480943e+81"),
        (0xabd0d7fb12926185, "-1.2321349077850233e-97"),
        (0x6da79a873d9a8079, "1.6664242401548381e+220"),
        (0x3672d6ae12b80aed, "2.0623822144391842e-46"),
        (0x4d82feacab6286cd, "2.5004853232097495e+65"),
        (0x1f525265c8b007ee, "8.340497831612837e-158"),
        (0xc6e50df2e5a3863e, "-3.4162859262238563e+33"),
        (0xc12517458142c7ac, "-691106.75246261572"),
        (0x4264d78247848647, "716119882788.19617"),
        (0xc11055c5af2f3d02, "-267633.42107863736"),
        (0x3b3e994ee3533fbe, "2.5310783745968957e-23"),
        (0x412c896321734bea, "935089.56533276779"),
        (0x46062c365f02ba70, "2.1958783080191967e+29"),
        (0xc128c5ca38244791, "-811749.10965179105"),
        (0x3bc4e5174ddcd140, "8.8493287926361537e-21"),
        (0x412de63dd1a87c7a, "979742.90948857297"),
        (0x3bc3a7d1bbca25db, "8.3244466948294748e-21"),
        (0x41192f9c6b3f21cc, "412647.10473301704"),
        (0x3ee4d8e2fecfe64b, "9.9407261249128778e-06"),
        (0xc113a39ed864e388, "-321767.71132236021"),
        (0x3db585b8f7ff2378, "1.9574466613393117e-11"),
        (0xc128e3f7e53e8c96, "-815611.94774283725"),
        (0x3df925e79b5a1dd3, "3.6595251425715484e-10"),
        (0x40fa6447ee0bbb10, "108100.49561665603"),
        (0x39d655791986fe4d, "4.4045810180270206e-30"),
        (0xc10c3c7712cfac40, "-231310.88418516703"),
        (0x3d6234a13db1363a, "5.1743385660594005e-13"),
        (0x40d7f324694c6b40, "24524.568926911103"),
        (0x45809e6863fda735, "6.4290792590751877e+26"),
        (0x412199ac3971a4ec, "576726.11219516164"),
        (0x3af2cb9af7188c0b, "9.7169595864707401e-25"),
        (0xc129630aee9f51de, "-831877.46605926356"),
        (0x456c1dacb1b462a4, "2.7192045777729289e+26"),
        (0x41210755b863b7b0, "557994.86013578437"),
        (0x3b4058f35e482515, "2.7044609752130913e-23"),
        (0x4123848512c6f716, "639554.53667423385"),
        (0x429ee86739d983ce, "8495878272608.9512"),
        (0x4123780beb4bc8c8, "637957.95956256334"),
        (0x3b738a39d0d3ed9d, "2.5860901479384166e-22"),
        (0x40f1dedc7e4d0e00, "73197.780835203826"),
        (0x4014975fbfda5c8b, "5.1478261925723343"),
        (0x4118770b92870880, "400834.89309323579"),
        (0x3a1c5a095cf056b6, "8.9462207846807702e-29"),
        (0x4122490e362d26c8, "599175.10581322853"),
        (0x4562f5137c97cd5d, "1.8334403205899176e+26"),
        (0xc12a19079f00e24b, "-855171.81055361906"),
        (0x42017a666c133689, "9383497090.4016285"),
        (0xc1291ca85014d1b4, "-822868.15640883753"),
        (0x4178d92148a183d7, "26055188.539432373"),
        (0x4125be128ba523fe, "712457.27274429775"),
        (0x44e1a284c0b4c18d, "6.6622534874461471e+23"),
        (0xc1271749c412193e, "-756644.88295058138"),
        (0x40920a88505d96a8, "1154.6331190703586"),
        (0xc10413faa6736574, "-164479.33127478848"),
        (0x41cb4826c7a6c8f2, "915426703.30300736"),
        (0xc126a15ccce83d29, "-741550.40020934225"),
        (0x3cc2fbeeee27e355, "5.269150265271717e-16"),
        (0x412abdb7aaa3e5ba, "876251.83328168769"),
        (0x3d05d321a980bc0d, "9.692128163684092e-15"),
        (0xc12b71512193d304, "-899240.56558093475"),
        (0x3d81bf6ac3c75563, "2.0176824876850006e-12"),
        (0x410f69f18d81dac8, "257342.19409533427"),
        (0x3c587df475af5d85, "5.3108583956583035e-18"),
        (0xc119a3b9527c0924, "-420078.33055128367"),
        (0x3bed852010c46e5d, "5.0008859986183938e-20"),
        (0xc11c032d124a46fc, "-458955.26786147035"),
        (0x3d0218e4c8f808c6, "8.0367894484224252e-15"),
        (0xc12c432a9804c6f2, "-926101.29691144661"),
        (0x3ffd7e862a9db70e, "1.8433896698656471"),
        (0x40f8ed2418ab0e80, "102098.25602250732"),
        (0x3fc8401c483a4e60, "0.18945649649377838"),
        (0xc11f0b83d7e48d2a, "-508640.96083279199"),
        (0x425a05a594c95632, "447055549221.3468"),
        (0x412377208fb5bcfe, "637840.28068342782"),
        (0x4011497f9c485502, "4.3217758578441607"),
        (0x40f66a480fc8d7b0, "91812.503853647737"),
        (0x405637d8a0ba7806, "88.872596914385298"),
        (0xc11776c7999a4246, "-384433.90000251343"),
        (0x3c78cf069238fc15, "2.1518111960918108e-17"),
        (0xc113337aff251f86, "-314590.74916505103"),
        (0x4307a7ae7e19d60c, "832286543264449.5"),
        (0x411bef615d4448f0, "457688.34108079877"),
        (0x3e1800e5f737b533, "1.3971881124897078e-09"),
        (0x412d6967ba317a42, "963763.8636587339"),
        (0x39b0f9e454d7fdb1, "8.3698833830519451e-31"),
        (0xc12a3374bcd78bda, "-858554.36883198773"),
        (0x3d00aeef795c8dbe, "7.4088919818292746e-15"),
        (0xc100e8b4acb122f8, "-138518.58432223625"),
        (0x4229cc5303996caa, "55401087436.712234"),
        (0x4124d453ed6a48e2, "682537.9637015129"),
        (0x426956031f87f7f2, "870537821247.74829"),
        (0x412cbe47edf4a6a4, "941859.96475716354"),
        (0x42cb3ab2bb609c99, "59877841355065.195"),
        (0xc11942ec0f320a84, "-413883.01483932906"),
        (0x3bb5b271fcab59e2, "4.594529433947207e-21"),
        (0xc11c319a59d6bf64, "-461926.58773325966"),
        (0x3df8e524bdc71e37, "3.6227126661171338e-10"),
        (0x412c2f6a2229cf14, "923573.06672522658"),
        (0x40f7bee4cbf57642, "97262.299794637627"),
        (0xc1158a90d8292184, "-352932.21109440201"),
        (0x4506cb807f903ae2, "3.4446723503371746e+24"),
        (0xc1173fa0a8987626, "-380904.16464409453"),
        (0x399cedf54d265ba9, "3.565839170139871e-31"),
        (0xc11419d9ba884564, "-329334.43216045783"),
        (0x3d02e3f62a231cf1, "8.3890560825494066e-15"),
        (0x40b5980343c47780, "5528.0127527992008"),
        (0x40341916e21a2c8f, "20.098005420103217"),
        (0x4120dc384e428b42, "552476.15285144025"),
        (0x4448a01a5238ce16, "9.0851696313684276e+20"),
        (0xc1290a1a6891e36e, "-820493.20423804014"),
        (0x3a09527079bdd0da, "3.9951117028892581e-29"),
        (0xc109e255c01543b8, "-212042.71879055887"),
        (0x41e6534b8651b2f3, "2996460594.5530944"),
        (0xc1204ed9bbcf9ea6, "-534380.86681838776"),
        (0x40824caa90e5a31e, "585.58328418163342"),
        (0x41258f7dff136650, "706494.99819488265"),
        (0x45600d7d6e0438ef, "1.5525214118915543e+26"),
        (0x411a5dcb852fa918, "431986.88006462296"),
        (0x3ead7f54e0ff32f1, "8.7909069356738999e-07"),
        (0x412021dd62297b5e, "528622.6917227318"),
        (0x401cd3bc39ec7406, "7.2067727137155142"),
        (0xc1256523676177b6, "-701073.70191549393"),
        (0x4230dc4e04f82ebd, "72415577336.182571"),
        (0xc125aebf26b659f8, "-710495.57560998108"),
        (0x430771a02511968d, "824857136870097.62"),
        (0x4127ec196c6b6a9a, "783884.71175702219"),
        (0x4336498d6c451be1, "6273321243319265"),
        (0x41188aea523f7ae8, "402106.58032028237"),
        (0x45b055bcc841efb8, "5.0554103508075773e+27"),
        (0x40e7335235b71930, "47514.569057034678"),
        (0x44a55c66e298e58f, "5.0437105125546074e+22"),
        (0x41231925917ee2ce, "625810.78417118802"),
        (0x4242b824507cb536, "160797597945.41571"),
        (0x410485d844d69e60, "168123.03361247759"),
        (0x42a03d8ffc54ae28, "8928297364055.0781"),
        (0x412bd636d47d4710, "912155.41501829214"),
        (0x3ab3e57f6c94cc83, "6.4288979940072232e-26"),
        (0xc12c9d9de5145cf3, "-937678.94742098299"),
        (0x3e4c94e03d3f631b, "1.3309319792032148e-08"),
        (0x412c0bf049484a3c, "919032.14312965376"),
        (0x3f6eda41e9d6bc31, "0.0037661826488242446"),
        (0x40fc93e7e34b7140, "117054.49299186934"),
        (0x41f762da8ad3630f, "6277671085.2116842"),
        (0x40eeb4f5b856c160, "62887.678752305685"),
        (0x3ce607298a207353, "2.4455967910062003e-15"),
        (0xc12e50b6b10565be, "-993371.34574430413"),
        (0x4371b662b72f02cd, "79769755207085264"),
        (0x412a65e299d53d84, "865009.30045501934"),
        (0x3abbc98f85839e77, "8.9785758059620717e-26"),
        (0x4113721bea186624, "318598.97860869975"),
        (0x4337773eb1fdae1a, "6605035622215194"),
        (0xc0e98764c614f3d0, "-52283.149179912754"),
        (0x44e56b7ad07ff83f, "8.0921877976097152e+23"),
        (0xc11c9e4e38f19e62, "-468883.55560920213"),
        (0x3c60d13bf2c36a65, "7.2933503803939668e-18"),
        (0xc1206f3f7de745b5, "-538527.74590509257"),
        (0x3fb0a3656cb8ec14, "0.064993228000205072"),
        (0xc0c7a3389d549840, "-12102.442301344243"),
        (0x3fd87bdef09d29ca, "0.38256047723248499"),
        (0x41290d8aa50d1846, "820933.32236553053"),
        (0x3a02360520187967, "2.8731916671224013e-29"),
        (0x410c8ee040a0b1a8, "233948.03155649942"),
        (0x3a7fd3fd1c751459, "6.4276297538198622e-27"),
        (0x410857945c3f4228, "199410.54504253087"),
        (0x421ee61553291535, "33177294026.27071"),
        (0x411db08a0f1156d0, "486434.51471458096"),
        (0x411294848d452f60, "304417.13795923255"),
        (0xc1265f7bf7120566, "-733117.98255936499"),
        (0x40134bfcea4da566, "4.824206982602254"),
        (0xc11c39d9dfa9e300, "-462454.4684215039"),
        (0x42ce8f20c4eb19cc, "67200157865523.594"),
        (0xc1213b0a2865222c, "-564613.07889658725"),
        (0x42fbd4d3706fedb2, "489614310047451.12"),
        (0x40e025ec6b393c40, "33071.38808881538"),
        (0x3fa7ca6dcfc8206c, "0.04646628533743144"),
        (0x41204e8709ca336e, "534339.51912079542"),
        (0x40f84020a6d7ec95, "99330.040733265065"),
        (0xc1225b37e16c82ac, "-601499.94028099393"),
        (0x45f3c0caa23c79ec, "9.7812573675702693e+28"),
        (0xc0ea6bb53348fc60, "-54109.662510388298"),
        (0x3a6cadf3495ac7b5, "2.8958887948819113e-27"),
        (0x41238666c5531d40, "639795.38539973646"),
        (0x3f83d3ace662ddf7, "0.0096810825165069957"),
        (0x412e263bd87e189e, "987933.92283703736"),
        (0x45a8ffde7a32ef5b, "3.8684834696231192e+27"),
        (0x412b324d1b8a5406, "891174.55378973554"),
        (0x41401367fcd7e909, "2107087.9753390593"),
        (0xc12901839f7ca9ab, "-819393.81149797642"),
        (0x3d00d4f6e5e03911, "7.4748617801119163e-15"),
        (0x412ba21158bba0ca, "905480.67330648866"),
        (0x4451f8a9a408a4dc, "1.3260507288102607e+21"),
        (0x411012a19762c858, "263336.39783776319"),
        (0x3b0b09c40f11ea5e, "2.7956789647685107e-24"),
        (0x4118d2484f734488, "406674.07758814888"),
        (0x4567ecac482af197, "2.3138360305046989e+26"),
        (0x4126f544edf13e54, "752290.4647311666"),
        (0x3bb29c2422b674d6, "3.9408051986123911e-21"),
        (0xc12e4c661d029c38, "-992819.05666053947"),
        (0x3f7423ceb191d9e7, "0.0049169610948553771"),
        (0xc107174aba1681ec, "-189161.34086324216"),
        (0x3f13100a7c29076a, "7.271827693336249e-05"),
        (0xc1130c3ed41d95dc, "-312079.7071441093"),
        (0x449ac5d99e261c7c, "3.1607804537496972e+22"),
        (0xc114971d1c1a729e, "-337351.27744464006"),
        (0x3df64d806448a239, "3.2454758696804965e-10"),
        (0x4124b29b2db8d9c6, "678221.58930092375"),
        (0x45c364cb349e6ba0, "1.2004134759218254e+28"),
    ];

    fn g17(v: f64) -> String {
        text(|out| {
            let mut w = JsonWriter::new(out, Style::QMP);
            write_g17(&mut w, v)?;
            w.finish()
        })
    }

    #[test]
    fn percent_17g() {
        assert_eq!(g17(1.5), "1.5");
        assert_eq!(g17(0.1), "0.10000000000000001");
        assert_eq!(g17(3.0), "3");
        assert_eq!(g17(1e300), "1.0000000000000001e+300");
        assert_eq!(g17(18446744073709551616.0), "1.8446744073709552e+19");
        assert_eq!(g17(1e-5), "1.0000000000000001e-05");
        assert_eq!(g17(-0.0), "-0");
        assert_eq!(g17(f64::INFINITY), "inf");
        assert_eq!(g17(f64::NEG_INFINITY), "-inf");
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "530 float formattings take over ten minutes under Miri"
    )]
    fn percent_17g_table() {
        for &(bits, want) in G17 {
            let v = f64::from_bits(bits);
            assert_eq!(g17(v), want, "{v:e}");
        }
    }

    #[test]
    fn numbers() {
        for (input, want) in [
            ("0", "0"),
            ("-0", "0"),
            ("42", "42"),
            ("-9223372036854775808", "-9223372036854775808"),
            ("9223372036854775808", "9223372036854775808"),
            ("18446744073709551615", "18446744073709551615"),
            ("1795285234267252000", "1795285234267252000"),
            ("18446744073709551616", "1.8446744073709552e+19"),
            ("-9223372036854775809", "-9.2233720368547758e+18"),
            ("0.1", "0.10000000000000001"),
            ("1.0", "1"),
            ("1E2", "100"),
            ("-1e-5", "-1.0000000000000001e-05"),
            ("1e400", "inf"),
            ("-1e400", "-inf"),
            ("1e-400", "0"),
            ("-0.0", "-0"),
        ] {
            assert_eq!(qemu(input, Style::QMP), want, "{input}");
        }
    }

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

    #[test]
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
    fn pretty() {
        assert_eq!(qemu("{}", Style::QMP_PRETTY), "{\r\n}");
        assert_eq!(
            qemu(r#"{"b":{},"a":[1,2]}"#, Style::QMP_PRETTY),
            "{\r\n    \"a\": [\r\n        1,\r\n        2\r\n    ],\r\n    \"b\": {\r\n    }\r\n}"
        );
        let pretty_nl = Style {
            layout: Layout::Pretty,
            line_ending: LineEnding::Lf,
        };
        assert_eq!(
            text(|o| write_return(o, Style::QMP_PRETTY, &raw(b"{}"), None)),
            "{\r\n    \"return\": {\r\n    }\r\n}\r\n"
        );
        assert_eq!(
            text(|o| write_return(o, pretty_nl, &raw(b"[]"), Some(&1i64))),
            "{\n    \"return\": [\n    ],\n    \"id\": 1\n}\n"
        );
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "1000 levels are quadratic to reorder: minutes under Miri"
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

    #[test]
    fn observed_vectors() {
        assert_eq!(
            text(|o| write_greeting(
                o,
                Style::QMP,
                10,
                0,
                2,
                "Debian 1:10.0.2+ds-2+deb13u1~bpo12+1",
                &["oob"]
            )),
            "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 2, \"minor\": 0, \"major\": 10}, \"package\": \"Debian 1:10.0.2+ds-2+deb13u1~bpo12+1\"}, \"capabilities\": [\"oob\"]}}\r\n"
        );
        assert_eq!(
            text(|o| write_greeting(o, Style::QMP, 10, 2, 0, "", &[])),
            "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 10}, \"package\": \"\"}, \"capabilities\": []}}\r\n"
        );
        assert_eq!(
            text(|o| write_error(
                o,
                Style::QMP,
                None,
                b"CommandNotFound",
                &[b"Expecting capabilities negotiation with 'qmp_capabilities'"]
            )),
            "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"Expecting capabilities negotiation with 'qmp_capabilities'\"}}\r\n"
        );
        assert_eq!(
            text(|o| write_error(
                o,
                Style::QMP,
                Some(&raw(b"1")),
                b"CommandNotFound",
                &[b"Expecting capabilities negotiation with 'qmp_capabilities'"]
            )),
            "{\"id\": 1, \"error\": {\"class\": \"CommandNotFound\", \"desc\": \"Expecting capabilities negotiation with 'qmp_capabilities'\"}}\r\n"
        );
        assert_eq!(
            text(|o| write_error(
                o,
                Style::QMP,
                None,
                b"GenericError",
                &[b"JSON parse error, stray '", b"\xFF", b"'"]
            )),
            "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, stray '\\uFFFD'\"}}\r\n"
        );
        // A multi-byte character split across pieces is one character.
        assert_eq!(
            text(|o| write_error(o, Style::QGA, None, b"E", &[b"\xC3", b"\xA9", b""])),
            "{\"error\": {\"class\": \"E\", \"desc\": \"\\u00E9\"}}\n"
        );
        assert_eq!(
            text(|o| write_error(
                o,
                Style::QMP,
                Some(&raw(br#"{"a":[1,"x"]}"#)),
                b"GenericError",
                &[b"QMP input member 'foo' is unexpected"]
            )),
            "{\"id\": {\"a\": [1, \"x\"]}, \"error\": {\"class\": \"GenericError\", \"desc\": \"QMP input member 'foo' is unexpected\"}}\r\n"
        );
        assert_eq!(
            text(|o| write_error(
                o,
                Style::QMP,
                Some(&raw(br#"[1,{"b":2,"a":1}]"#)),
                b"CommandNotFound",
                &[b"The command no-such-cmd has not been found"]
            )),
            "{\"id\": [1, {\"a\": 1, \"b\": 2}], \"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command no-such-cmd has not been found\"}}\r\n"
        );
        assert_eq!(
            text(|o| write_return(o, Style::QMP, &"No CPU available\r\n", Some(&raw(b"7")))),
            "{\"return\": \"No CPU available\\r\\n\", \"id\": 7}\r\n"
        );
        assert_eq!(
            text(|o| write_return(o, Style::QMP, &raw(b"{}"), None)),
            "{\"return\": {}}\r\n"
        );
        assert_eq!(
            text(|o| write_return(o, Style::QMP, &raw(b"{}"), Some(&raw(br#""\u00e9""#)))),
            "{\"return\": {}, \"id\": \"\\u00E9\"}\r\n"
        );
        assert_eq!(
            text(|o| write_return(o, Style::QMP, &raw(b"{}"), Some(&raw(b"0.1")))),
            "{\"return\": {}, \"id\": 0.10000000000000001}\r\n"
        );
        assert_eq!(
            text(|o| write_return(o, Style::QGA, &raw(b"{}"), Some(&"p"))),
            "{\"return\": {}, \"id\": \"p\"}\n"
        );
        assert_eq!(
            text(|o| write_return(o, Style::QGA, &raw(b"1795285234267252000"), None)),
            "{\"return\": 1795285234267252000}\n"
        );
        assert_eq!(
            text(|o| write_event(o, Style::QMP, "STOP", None, 1700000000, 5)),
            "{\"timestamp\": {\"seconds\": 1700000000, \"microseconds\": 5}, \"event\": \"STOP\"}\r\n"
        );
        assert_eq!(
            text(|o| write_event(
                o,
                Style::QMP,
                "JOB_STATUS_CHANGE",
                Some(&raw(br#"{"id":"j1","status":"created"}"#)),
                1795285163,
                709520
            )),
            "{\"timestamp\": {\"seconds\": 1795285163, \"microseconds\": 709520}, \"event\": \"JOB_STATUS_CHANGE\", \"data\": {\"status\": \"created\", \"id\": \"j1\"}}\r\n"
        );
        assert_eq!(
            text(|o| write_event(
                o,
                Style::QMP,
                "SHUTDOWN",
                Some(&raw(br#"{"reason":"host-qmp-quit","guest":false}"#)),
                -1,
                -1
            )),
            "{\"timestamp\": {\"seconds\": -1, \"microseconds\": -1}, \"event\": \"SHUTDOWN\", \"data\": {\"guest\": false, \"reason\": \"host-qmp-quit\"}}\r\n"
        );
    }

    #[test]
    fn commands() {
        assert_eq!(
            text(|o| write_command(o, Style::CLIENT, false, "query-version", None, None)),
            r#"{"execute":"query-version"}"#
        );
        assert_eq!(
            text(|o| write_command(
                o,
                Style::CLIENT,
                true,
                "migrate-pause",
                Some(&raw(br#"{ "b" : 1 , "a" : 2 }"#)),
                Some(&5i64)
            )),
            r#"{"exec-oob":"migrate-pause","arguments":{"a":2,"b":1},"id":5}"#
        );
        assert_eq!(
            text(|o| write_command(
                o,
                Style::QGA,
                false,
                "x",
                Some(&Verbatim(raw(br#"{ "b" : 1 }"#))),
                Some(&raw(br#"{"n":[1]}"#))
            )),
            "{\"execute\": \"x\", \"arguments\": { \"b\" : 1 }, \"id\": {\"n\": [1]}}\n"
        );
        assert_eq!(
            text(|o| write_command(o, Style::CLIENT, false, "é", None, Some(&u64::MAX))),
            "{\"execute\":\"\\u00E9\",\"id\":18446744073709551615}"
        );
    }

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
        assert!(compact
            .starts_with(r#"{"inner": {"name": "x/y \"q\"", "list": [1, 2, 3], "opt": null"#));
        let pretty = ser(&v, Style::QMP_PRETTY);
        let b: serde_json::Value = serde_json::from_str(&pretty).unwrap();
        assert_eq!(a, b);
        assert!(pretty.contains("\"empty\": [\r\n    ],"));
    }

    #[test]
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

    #[test]
    fn display() {
        assert_eq!(
            std::format!(
                "{}",
                EncodeError::InsufficientSize(InsufficientSize { required: 3 })
            ),
            "output buffer too small: 3 bytes required"
        );
        let e: &dyn core::error::Error = &EncodeError::KeyMustBeString;
        assert!(!std::format!("{e}").is_empty());
    }
}
