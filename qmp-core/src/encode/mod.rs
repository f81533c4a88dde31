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
mod tests;
