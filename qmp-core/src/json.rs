//! Zero-copy views of JSON that the scanner has already validated.
//!
//! [`RawJson`] is a complete JSON value (a span of the framer's buffer);
//! [`JsonStr`] is the escaped body of a JSON string. Neither copies or
//! allocates: typed values are parsed on demand with serde-json-core, and
//! strings are compared or unescaped into caller scratch space.
//!
//! Every accessor is total: on bytes that are not valid JSON (which the
//! scanner never hands out) the accessors return `None`, stop iterating or
//! decode a bad escape as U+FFFD; they never panic.
//!
//! Numbers keep their text, so 64-bit integers keep full precision:
//! [`RawJson::as_u64`] of `1795285234267252000` is exact.

use crate::InsufficientSize;
use core::fmt;

/// A complete, validated JSON value: a span borrowed from the framer's buffer
/// (or from any caller slice the scanner has checked).
///
/// Leading and trailing whitespace is not part of the span.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RawJson<'a> {
    pub(crate) bytes: &'a [u8],
}

/// The kind of a JSON value, from its first byte.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum JsonKind {
    /// `{...}`
    Object,
    /// `[...]`
    Array,
    /// `"..."` (or QEMU's `'...'`)
    String,
    /// A number.
    Number,
    /// `true` or `false`.
    Bool,
    /// `null`.
    Null,
}

impl<'a> RawJson<'a> {
    /// Wraps bytes the scanner has validated as exactly one JSON value.
    pub(crate) const fn from_validated(bytes: &'a [u8]) -> Self {
        RawJson { bytes }
    }

    /// Wraps bytes already validated once (the exact span [`validate`]
    /// returned, kept by the caller), without scanning them again.
    ///
    /// Bytes that are not one valid JSON value do no harm beyond wrong
    /// answers: every accessor is total (see the module docs), and writers
    /// fail with `InvalidJson` or write garbage.
    ///
    /// [`validate`]: crate::scan::validate
    pub const fn assume_validated(bytes: &'a [u8]) -> Self {
        RawJson { bytes }
    }

    /// The value's bytes, exactly as received.
    pub const fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The value's text, if it is valid UTF-8 (it is unless a string holds
    /// QEMU's modified-UTF-8 NUL `C0 80`).
    pub fn as_str(&self) -> Option<&'a str> {
        core::str::from_utf8(self.bytes).ok()
    }

    /// The kind of value.
    pub fn kind(&self) -> JsonKind {
        match self.bytes.first() {
            Some(b'{') => JsonKind::Object,
            Some(b'[') => JsonKind::Array,
            Some(b'"' | b'\'') => JsonKind::String,
            Some(b't' | b'f') => JsonKind::Bool,
            Some(b'n') => JsonKind::Null,
            _ => JsonKind::Number,
        }
    }

    /// Whether the value is `null`.
    pub fn is_null(&self) -> bool {
        self.bytes == b"null"
    }

    /// The value of `true` or `false`.
    pub fn as_bool(&self) -> Option<bool> {
        match self.bytes {
            b"true" => Some(true),
            b"false" => Some(false),
            _ => None,
        }
    }

    /// The value as an `i64`, if it is an integer token in range
    /// (`-0` is `0`). Fractions and exponents give `None`.
    pub fn as_i64(&self) -> Option<i64> {
        signed(parse_integer(self.bytes, false)?)
    }

    /// The value as a `u64`, if it is a non-negative integer token in range
    /// (`-0` is `0`), with full 64-bit precision.
    pub fn as_u64(&self) -> Option<u64> {
        match parse_integer(self.bytes, false)? {
            (false, v) | (true, v @ 0) => Some(v),
            (true, _) => None,
        }
    }

    /// Any number as an `f64` (nearest double; out-of-range magnitudes give
    /// infinity, as C's `strtod` does in QEMU).
    pub fn as_f64(&self) -> Option<f64> {
        match self.bytes.first() {
            Some(b'-' | b'0'..=b'9') => self.as_str()?.parse().ok(),
            _ => None,
        }
    }

    /// The string body, if the value is a string.
    pub fn as_json_str(&self) -> Option<JsonStr<'a>> {
        let (&quote, rest) = self.bytes.split_first()?;
        if quote != b'"' && quote != b'\'' {
            return None;
        }
        let (&end, body) = rest.split_last()?;
        (end == quote).then_some(JsonStr::from_validated(body, quote))
    }

    /// The value of member `key` of an object (compared after unescaping).
    /// `None` if the value is not an object or has no such member.
    pub fn get(&self, key: &str) -> Option<RawJson<'a>> {
        self.members().find(|(k, _)| k.eq_str(key)).map(|(_, v)| v)
    }

    /// The members of an object, in input order (empty unless an object).
    pub fn members(&self) -> Members<'a> {
        Members {
            tokens: Tokens::at(self.bytes, 1),
            done: self.kind() != JsonKind::Object,
        }
    }

    /// The elements of an array, in order (empty unless an array).
    pub fn elements(&self) -> Elements<'a> {
        Elements {
            tokens: Tokens::at(self.bytes, 1),
            done: self.kind() != JsonKind::Array,
        }
    }

    /// Parses the value into `T` with serde-json-core. Strings borrow from
    /// the message, so `&str` fields only accept strings without escapes
    /// (use [`RawJson::parse_with_scratch`] or [`JsonStr`] otherwise).
    /// serde-json-core does not know QEMU's single-quoted strings.
    pub fn parse<T: serde::Deserialize<'a>>(&self) -> Result<T, ParseError> {
        let (value, used) = serde_json_core::from_slice(self.bytes).map_err(ParseError::Json)?;
        if used != self.bytes.len() {
            return Err(ParseError::TrailingData);
        }
        Ok(value)
    }

    /// Like [`RawJson::parse`], but strings are unescaped into `scratch`
    /// (serde-json-core's `from_slice_escaped`); such strings are handed to
    /// the visitor as transient `&str`, so use owned string types
    /// (`heapless::String`) for them.
    pub fn parse_with_scratch<T: serde::Deserialize<'a>>(
        &self,
        scratch: &mut [u8],
    ) -> Result<T, ParseError> {
        let (value, used) =
            serde_json_core::from_slice_escaped(self.bytes, scratch).map_err(ParseError::Json)?;
        if used != self.bytes.len() {
            return Err(ParseError::TrailingData);
        }
        Ok(value)
    }
}

/// Writes bytes as text, invalid UTF-8 as `\xNN`.
fn fmt_bytes(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for chunk in bytes.utf8_chunks() {
        f.write_str(chunk.valid())?;
        for b in chunk.invalid() {
            write!(f, "\\x{b:02X}")?;
        }
    }
    Ok(())
}

impl fmt::Debug for RawJson<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RawJson(")?;
        fmt_bytes(f, self.bytes)?;
        f.write_str(")")
    }
}

impl fmt::Display for RawJson<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_bytes(f, self.bytes)
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for RawJson<'_> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "RawJson({=[u8]:a})", self.bytes)
    }
}

/// Iterator over the members of an object: `(key, value)` in input order.
#[derive(Clone, Debug)]
pub struct Members<'a> {
    tokens: Tokens<'a>,
    done: bool,
}

impl<'a> Iterator for Members<'a> {
    type Item = (JsonStr<'a>, RawJson<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = match self.tokens.next_token() {
            Some(Token::String(key)) => self.tokens.skip_value().map(|v| (key, v)),
            _ => None,
        };
        self.done = item.is_none();
        item
    }
}

impl<'a> Members<'a> {
    /// Where the next member starts (an offset into the object's text), to
    /// come back to it with [`RawJson::member_at`].
    pub(crate) const fn pos(&self) -> usize {
        self.tokens.pos
    }
}

impl<'a> RawJson<'a> {
    /// The member between `pos` and `end`, offsets [`Members::pos`]
    /// returned for this object before and after it.
    pub(crate) fn member_at(&self, pos: usize, end: usize) -> Option<(JsonStr<'a>, RawJson<'a>)> {
        if self.kind() != JsonKind::Object {
            return None;
        }
        let mut tokens = Tokens::at(self.bytes.get(..end)?, pos);
        let Some(Token::String(key)) = tokens.next_token() else {
            return None;
        };
        tokens.skip_separators();
        let value = self.bytes.get(tokens.pos..end)?;
        Some((key, RawJson::from_validated(value)))
    }
}

impl<'a> RawJson<'a> {
    /// The value that starts at `pos` of this value's text (after any
    /// separators), e.g. an element of an array at an offset kept from an
    /// earlier walk. `None` at a closing bracket, the end, or past it.
    pub(crate) fn value_at(&self, pos: usize) -> Option<RawJson<'a>> {
        Tokens::at(self.bytes, pos).skip_value()
    }

    /// Where `part` (a value inside this one) starts in this value's text.
    pub(crate) fn offset_of(&self, part: &RawJson<'_>) -> Option<usize> {
        let start = (part.bytes.as_ptr() as usize).checked_sub(self.bytes.as_ptr() as usize)?;
        (start.checked_add(part.bytes.len())? <= self.bytes.len()).then_some(start)
    }
}

/// Iterator over the elements of an array.
#[derive(Clone, Debug)]
pub struct Elements<'a> {
    tokens: Tokens<'a>,
    done: bool,
}

impl<'a> Iterator for Elements<'a> {
    type Item = RawJson<'a>;

    fn next(&mut self) -> Option<RawJson<'a>> {
        if self.done {
            return None;
        }
        let item = self.tokens.skip_value();
        self.done = item.is_none();
        item
    }
}

/// One token of validated JSON.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Token<'a> {
    ObjectStart,
    ObjectEnd,
    ArrayStart,
    ArrayEnd,
    String(JsonStr<'a>),
    Number(&'a [u8]),
    True,
    False,
    Null,
}

/// A flat, non-recursive walker over validated JSON. Whitespace, `,` and
/// `:` are skipped. It stops (returns `None`) at the end or at any byte that
/// cannot start a token.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tokens<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Tokens<'a> {
    /// A walker over `bytes`, starting at the beginning.
    pub(crate) const fn new(bytes: &'a [u8]) -> Self {
        Tokens { bytes, pos: 0 }
    }

    /// A walker over `bytes`, starting at `pos`.
    const fn at(bytes: &'a [u8], pos: usize) -> Self {
        Tokens { bytes, pos }
    }

    fn skip_separators(&mut self) {
        while let Some(b' ' | b'\t' | b'\r' | b'\n' | b',' | b':') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    /// Whether the next non-whitespace byte is `:` (the last string token
    /// was an object key).
    pub(crate) fn at_colon(&self) -> bool {
        let rest = self.bytes.get(self.pos..).unwrap_or_default();
        rest.iter()
            .find(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
            .is_some_and(|&b| b == b':')
    }

    /// The next token.
    pub(crate) fn next_token(&mut self) -> Option<Token<'a>> {
        self.skip_separators();
        let rest = self.bytes.get(self.pos..)?;
        let (&first, _) = rest.split_first()?;
        let (token, len) = match first {
            b'{' => (Token::ObjectStart, 1),
            b'}' => (Token::ObjectEnd, 1),
            b'[' => (Token::ArrayStart, 1),
            b']' => (Token::ArrayEnd, 1),
            b'"' | b'\'' => {
                let body = rest.get(1..)?;
                let mut i = 0;
                loop {
                    let off = find_quote_or_backslash(first, body.get(i..)?)?;
                    let at = i + off;
                    if body.get(at) == Some(&first) {
                        let raw = body.get(..at)?;
                        break (Token::String(JsonStr::from_validated(raw, first)), at + 2);
                    }
                    i = at + 2;
                }
            }
            b't' if rest.starts_with(b"true") => (Token::True, 4),
            b'f' if rest.starts_with(b"false") => (Token::False, 5),
            b'n' if rest.starts_with(b"null") => (Token::Null, 4),
            _ => {
                let len = rest
                    .iter()
                    .position(|b| !matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
                    .unwrap_or(rest.len());
                if len == 0 {
                    return None;
                }
                (Token::Number(rest.get(..len)?), len)
            }
        };
        self.pos += len;
        Some(token)
    }

    /// Skips the next complete value and returns it; `None` (consuming
    /// nothing useful) at a closing bracket, the end, or malformed input.
    pub(crate) fn skip_value(&mut self) -> Option<RawJson<'a>> {
        self.skip_separators();
        let start = self.pos;
        let mut depth = 0usize;
        loop {
            match self.next_token()? {
                Token::ObjectStart | Token::ArrayStart => depth += 1,
                Token::ObjectEnd | Token::ArrayEnd => depth = depth.checked_sub(1)?,
                _ => {}
            }
            if depth == 0 {
                break;
            }
        }
        self.bytes.get(start..self.pos).map(RawJson::from_validated)
    }
}

/// Bytes searched with a plain loop before `memchr` takes over: most keys
/// and values are shorter, and `memchr`'s setup costs more than the loop.
/// (Bare-metal targets search in one loop: `find.rs`.)
#[cfg(not(target_os = "none"))]
const SHORT: usize = 16;

/// The first `\\` in `bytes`.
#[cfg(target_os = "none")]
fn find_backslash(bytes: &[u8]) -> Option<usize> {
    crate::find::find(b'\\', bytes)
}

/// The first `\\` in `bytes` (see [`SHORT`]).
#[cfg(not(target_os = "none"))]
fn find_backslash(bytes: &[u8]) -> Option<usize> {
    let head = bytes.get(..SHORT).unwrap_or(bytes);
    if let Some(at) = head.iter().position(|&b| b == b'\\') {
        return Some(at);
    }
    let tail = bytes.get(SHORT..)?;
    crate::find::find(b'\\', tail).map(|at| at + SHORT)
}

/// The first `quote` or `\\` in `bytes`.
#[cfg(target_os = "none")]
fn find_quote_or_backslash(quote: u8, bytes: &[u8]) -> Option<usize> {
    crate::find::find2(quote, b'\\', bytes)
}

/// The first `quote` or `\\` in `bytes` (see [`SHORT`]).
#[cfg(not(target_os = "none"))]
fn find_quote_or_backslash(quote: u8, bytes: &[u8]) -> Option<usize> {
    let head = bytes.get(..SHORT).unwrap_or(bytes);
    if let Some(at) = head.iter().position(|&b| b == quote || b == b'\\') {
        return Some(at);
    }
    let tail = bytes.get(SHORT..)?;
    crate::find::find2(quote, b'\\', tail).map(|at| at + SHORT)
}

/// An integer's text (`-`, or with `plus` also `+`, then at least one
/// digit, nothing else) as its sign (whether `-`) and magnitude, `None`
/// when it is no such text or the magnitude exceeds `u64::MAX`: what
/// `str::parse` takes and gives, without its code (or `from_utf8`).
pub(crate) fn parse_integer(text: &[u8], plus: bool) -> Option<(bool, u64)> {
    let (neg, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) if plus => (false, rest),
        _ => (false, text),
    };
    if digits.is_empty() {
        return None;
    }
    const MAX_10: u64 = u64::MAX / 10;
    let mut v = 0u64;
    for &b in digits {
        let d = b.wrapping_sub(b'0');
        if d > 9 || v > MAX_10 || (v == MAX_10 && u64::from(d) > u64::MAX % 10) {
            return None;
        }
        v = v * 10 + u64::from(d);
    }
    Some((neg, v))
}

/// A sign and magnitude as an `i64`, if in range (`-0` is `0`).
pub(crate) fn signed((neg, v): (bool, u64)) -> Option<i64> {
    if !neg {
        i64::try_from(v).ok()
    } else if v <= 1 << 63 {
        Some(0u64.wrapping_sub(v) as i64)
    } else {
        None
    }
}

/// The body of a JSON string (between the quotes, escapes not yet decoded),
/// borrowed from a validated message.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct JsonStr<'a> {
    /// Bytes between the quotes, still escaped.
    pub(crate) raw: &'a [u8],
    /// The quote character: `"` or, with QEMU's extension, `'`.
    pub(crate) quote: u8,
}

impl<'a> JsonStr<'a> {
    /// Wraps the body of a string the scanner has validated.
    pub(crate) const fn from_validated(raw: &'a [u8], quote: u8) -> Self {
        JsonStr { raw, quote }
    }

    /// The escaped body, as received (without the quotes).
    pub const fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// The quote character that delimited the string: `"` or `'`.
    pub const fn quote(&self) -> u8 {
        self.quote
    }

    /// Whether the body contains any backslash escape.
    pub fn has_escapes(&self) -> bool {
        find_backslash(self.raw).is_some()
    }

    /// The value as `&str` without copying, when it has no escapes and is
    /// valid UTF-8.
    pub fn as_plain_str(&self) -> Option<&'a str> {
        if self.has_escapes() {
            return None;
        }
        core::str::from_utf8(self.raw).ok()
    }

    /// The decoded value as runs of literal bytes and decoded escapes.
    pub fn fragments(&self) -> Fragments<'a> {
        Fragments { rest: self.raw }
    }

    /// Whether the unescaped value equals `s` (no allocation).
    ///
    /// Literal bytes are compared as they are: a raw modified-UTF-8 NUL
    /// (`C0 80`) does not equal `"\0"` (an escaped `\u0000` does).
    pub fn eq_str(&self, s: &str) -> bool {
        // Every escape the scanner accepts decodes to fewer bytes than it
        // takes, so the value is as long as the body only without escapes,
        // and never longer.
        if self.raw.len() < s.len() {
            return false;
        }
        // The value begins with the body's bytes before its first escape:
        // a difference there decides, and so does reaching the end of `s`
        // without an escape (the value is `s`, or longer: every escape
        // decodes to at least one byte). One pass, usually a byte or two.
        let mut escaped = false;
        for (&r, &c) in self.raw.iter().zip(s.as_bytes()) {
            if r == b'\\' {
                escaped = true;
                break;
            }
            if r != c {
                return false;
            }
        }
        if !escaped {
            return self.raw.len() == s.len();
        }
        let mut rest = s.as_bytes();
        for fragment in self.fragments() {
            let mut buf = [0u8; 4];
            let piece: &[u8] = match fragment {
                Fragment::Literal(bytes) => bytes,
                Fragment::Char(c) => c.encode_utf8(&mut buf).as_bytes(),
            };
            match rest.strip_prefix(piece) {
                Some(r) => rest = r,
                None => return false,
            }
        }
        rest.is_empty()
    }

    /// Whether two strings have the same value, as QEMU compares keys: both
    /// are decoded to QEMU's internal modified UTF-8, so `\u0000` equals a
    /// raw `C0 80`, `\u0041` equals `A`, and the quote style does not matter.
    pub fn eq_json_str(&self, other: &JsonStr<'_>) -> bool {
        if self.raw == other.raw {
            return true;
        }
        if !self.has_escapes() && !other.has_escapes() {
            return false;
        }
        self.qemu_bytes().eq(other.qemu_bytes())
    }

    /// The decoded value as QEMU stores it (modified UTF-8: NUL is `C0 80`).
    pub(crate) fn qemu_bytes(&self) -> QemuBytes<'a> {
        QemuBytes {
            fragments: self.fragments(),
            literal: &[],
            buf: [0; 4],
            at: 0,
            len: 0,
        }
    }

    /// The length in bytes of the unescaped value (escapes decoded to UTF-8).
    pub fn unescaped_len(&self) -> usize {
        self.fragments()
            .map(|f| match f {
                Fragment::Literal(bytes) => bytes.len(),
                Fragment::Char(c) => c.len_utf8(),
            })
            .sum()
    }

    /// Unescapes the value into `out` and returns the bytes written.
    ///
    /// # Errors
    /// [`UnescapeError::InsufficientSize`] with the size needed when `out` is
    /// too small (nothing useful is written then).
    pub fn unescape_into<'b>(&self, out: &'b mut [u8]) -> Result<&'b [u8], UnescapeError> {
        let required = self.unescaped_len();
        if out.len() < required {
            return Err(UnescapeError::InsufficientSize(InsufficientSize {
                required,
            }));
        }
        let mut len = 0;
        for fragment in self.fragments() {
            let mut buf = [0u8; 4];
            let piece: &[u8] = match fragment {
                Fragment::Literal(bytes) => bytes,
                Fragment::Char(c) => c.encode_utf8(&mut buf).as_bytes(),
            };
            let end = len + piece.len();
            let dst = out
                .get_mut(len..end)
                .ok_or(UnescapeError::InsufficientSize(InsufficientSize {
                    required,
                }))?;
            // Not `copy_from_slice` (a panic path where not inlined).
            dst.iter_mut().zip(piece).for_each(|(d, s)| *d = *s);
            len = end;
        }
        out.get(..len)
            .ok_or(UnescapeError::InsufficientSize(InsufficientSize {
                required,
            }))
    }

    /// Unescapes the value into `out` as a `&str`.
    ///
    /// # Errors
    /// As [`JsonStr::unescape_into`], plus [`UnescapeError::NotUtf8`] when
    /// the value is not valid UTF-8 (a raw modified-UTF-8 NUL `C0 80`).
    pub fn unescape_str_into<'b>(&self, out: &'b mut [u8]) -> Result<&'b str, UnescapeError> {
        let bytes = self.unescape_into(out)?;
        core::str::from_utf8(bytes).map_err(|_| UnescapeError::NotUtf8)
    }
}

impl PartialEq<str> for JsonStr<'_> {
    fn eq(&self, other: &str) -> bool {
        self.eq_str(other)
    }
}

impl PartialEq<&str> for JsonStr<'_> {
    fn eq(&self, other: &&str) -> bool {
        self.eq_str(other)
    }
}

impl fmt::Debug for JsonStr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let q = if self.quote == b'\'' { "'" } else { "\"" };
        f.write_str(q)?;
        fmt_bytes(f, self.raw)?;
        f.write_str(q)
    }
}

impl JsonStr<'_> {
    /// The decoded value as pieces of UTF-8 text, what `Display` writes
    /// (invalid UTF-8 as U+FFFD), without `core::fmt`.
    pub(crate) fn write_lossy(&self, put: &mut dyn FnMut(&str)) {
        for frag in self.fragments() {
            match frag {
                Fragment::Literal(bytes) => {
                    for chunk in bytes.utf8_chunks() {
                        put(chunk.valid());
                        if !chunk.invalid().is_empty() {
                            put("\u{FFFD}");
                        }
                    }
                }
                Fragment::Char(c) => put(c.encode_utf8(&mut [0; 4])),
            }
        }
    }
}

/// The decoded value (invalid UTF-8 shows as U+FFFD).
impl fmt::Display for JsonStr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut r = Ok(());
        self.write_lossy(&mut |s| r = r.and_then(|()| f.write_str(s)));
        r
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for JsonStr<'_> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "JsonStr({=[u8]:a})", self.raw)
    }
}

/// A piece of a decoded string: see [`JsonStr::fragments`].
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fragment<'a> {
    /// A run of bytes without escapes, as received.
    Literal(&'a [u8]),
    /// One decoded escape (`\u` surrogate pairs combined; `\u0000` is
    /// `'\0'`; a malformed escape is U+FFFD).
    Char(char),
}

/// Iterator over the [`Fragment`]s of a [`JsonStr`].
#[derive(Clone, Debug)]
pub struct Fragments<'a> {
    rest: &'a [u8],
}

/// Iterator over the bytes of a string's value as QEMU stores it.
#[derive(Clone, Debug)]
pub(crate) struct QemuBytes<'a> {
    fragments: Fragments<'a>,
    literal: &'a [u8],
    buf: [u8; 4],
    at: usize,
    len: usize,
}

impl Iterator for QemuBytes<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        loop {
            if let Some((&b, rest)) = self.literal.split_first() {
                self.literal = rest;
                return Some(b);
            }
            if self.at < self.len {
                let b = self.buf.get(self.at).copied();
                self.at += 1;
                return b;
            }
            match self.fragments.next()? {
                Fragment::Literal(bytes) => self.literal = bytes,
                Fragment::Char('\0') => {
                    self.buf = [0xC0, 0x80, 0, 0];
                    self.at = 0;
                    self.len = 2;
                }
                Fragment::Char(c) => {
                    self.len = c.encode_utf8(&mut self.buf).len();
                    self.at = 0;
                }
            }
        }
    }
}

/// Parses four hex digits.
fn hex4(bytes: &[u8]) -> Option<u32> {
    let digits = bytes.get(..4)?;
    digits.iter().try_fold(0u32, |acc, &b| {
        let d = char::from(b).to_digit(16)?;
        Some(acc << 4 | d)
    })
}

impl<'a> Iterator for Fragments<'a> {
    type Item = Fragment<'a>;

    fn next(&mut self) -> Option<Fragment<'a>> {
        let (&first, after) = self.rest.split_first()?;
        if first != b'\\' {
            let end = find_backslash(self.rest).unwrap_or(self.rest.len());
            let (literal, rest) = self.rest.split_at_checked(end)?;
            self.rest = rest;
            return Some(Fragment::Literal(literal));
        }
        let Some((&esc, after)) = after.split_first() else {
            self.rest = &[];
            return Some(Fragment::Char(char::REPLACEMENT_CHARACTER));
        };
        self.rest = after;
        let c = match esc {
            b'"' => '"',
            b'\'' => '\'',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let Some(cp) = hex4(after) else {
                    return Some(Fragment::Char(char::REPLACEMENT_CHARACTER));
                };
                self.rest = after.get(4..).unwrap_or_default();
                if (0xD800..0xDC00).contains(&cp) {
                    let low = match self.rest {
                        [b'\\', b'u', tail @ ..] => hex4(tail),
                        _ => None,
                    };
                    match low {
                        Some(low @ 0xDC00..0xE000) => {
                            self.rest = self.rest.get(6..).unwrap_or_default();
                            let c = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                            char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER)
                        }
                        _ => char::REPLACEMENT_CHARACTER,
                    }
                } else {
                    char::from_u32(cp).unwrap_or(char::REPLACEMENT_CHARACTER)
                }
            }
            _ => char::REPLACEMENT_CHARACTER,
        };
        Some(Fragment::Char(c))
    }
}

/// Error from [`RawJson::parse`] and [`RawJson::parse_with_scratch`].
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ParseError {
    /// serde-json-core rejected the value (wrong shape or type, string too
    /// long for the scratch buffer, ...).
    Json(serde_json_core::de::Error),
    /// The deserializer stopped before the end of the value.
    TrailingData,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Json(e) => write!(f, "cannot parse JSON value: {e}"),
            ParseError::TrailingData => f.write_str("cannot parse JSON value: trailing data"),
        }
    }
}

impl core::error::Error for ParseError {}

/// Error from [`JsonStr::unescape_into`] and [`JsonStr::unescape_str_into`].
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum UnescapeError {
    /// The output buffer is too small; `required` bytes are needed.
    InsufficientSize(InsufficientSize),
    /// The unescaped value is not valid UTF-8.
    NotUtf8,
}

impl fmt::Display for UnescapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnescapeError::InsufficientSize(InsufficientSize { required }) => {
                write!(f, "unescape buffer too small: {required} bytes required")
            }
            UnescapeError::NotUtf8 => f.write_str("unescaped string is not valid UTF-8"),
        }
    }
}

impl core::error::Error for UnescapeError {}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests;
