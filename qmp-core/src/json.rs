//! Zero-copy views of JSON that the scanner has already validated.
//!
//! [`RawJson`] is a complete JSON value (a span of the framer's buffer);
//! [`JsonStr`] is the escaped body of a JSON string. Neither copies or
//! allocates: typed values are parsed on demand with serde-json-core, and
//! strings are compared or unescaped into caller scratch space.

/// A complete, validated JSON value: a span borrowed from the framer's buffer
/// (or from any caller slice checked with [`RawJson::new`]).
///
/// Leading and trailing whitespace is not part of the span.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RawJson<'a> {
    pub(crate) bytes: &'a [u8],
}

impl<'a> RawJson<'a> {
    /// Wraps bytes the scanner has validated as exactly one JSON value.
    pub(crate) const fn from_validated(bytes: &'a [u8]) -> Self {
        RawJson { bytes }
    }

    /// The value's bytes, exactly as received.
    pub const fn as_bytes(&self) -> &'a [u8] {
        self.bytes
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
}

// Temporary until the full json.rs lands.
impl JsonStr<'_> {
    /// Compares the unescaped value with `s`.
    pub fn eq_str(&self, s: &str) -> bool {
        self.raw == s.as_bytes()
    }
    /// Compares two strings by value.
    pub fn eq_json_str(&self, other: &JsonStr<'_>) -> bool {
        self.raw == other.raw
    }
}
impl core::fmt::Debug for RawJson<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:?}", self.bytes.utf8_chunks().next().map(|c| c.valid()).unwrap_or(""))
    }
}
impl core::fmt::Debug for JsonStr<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:?}", self.raw)
    }
}
