//! [`JsonWriter`], the counting sink over the caller's buffer, with QEMU's
//! json-writer state: separators, depth and pretty newlines.

use crate::json::JsonStr;
use crate::InsufficientSize;
use core::fmt;

use super::escape::{escape_json_str_body, escape_pieces};
use super::{EncodeError, Layout, LineEnding, Style};

/// The output state handed to [`WriteJson`]: an opaque counting writer over
/// the caller's buffer. It has no public methods.
///
/// [`WriteJson`]: super::WriteJson
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

// The small methods are `#[inline]`: their callers are in the other files of
// this module, so in other codegen units, and without it the re-serialiser
// and the envelopes measured 4-20% slower than when all was one file.
impl<'b> JsonWriter<'b> {
    #[inline]
    pub(super) fn new(out: &'b mut [u8], style: Style) -> Self {
        JsonWriter {
            out,
            len: 0,
            style,
            depth: 0,
            need_comma: false,
        }
    }

    #[inline]
    pub(super) fn put(&mut self, bytes: &[u8]) {
        let end = self.len.saturating_add(bytes.len());
        if let Some(dst) = self.out.get_mut(self.len..end) {
            crate::bytes::copy_prefix(dst, bytes);
        }
        self.len = end;
    }

    #[inline]
    pub(super) fn put_byte(&mut self, b: u8) {
        if let Some(dst) = self.out.get_mut(self.len) {
            *dst = b;
        }
        self.len = self.len.saturating_add(1);
    }

    // (Bytes, not `put`: a copy call for one or two bytes costs more.)
    #[inline]
    fn line_break(&mut self) {
        if self.style.line_ending() == LineEnding::CrLf {
            self.put_byte(b'\r');
        }
        self.put_byte(b'\n');
    }

    /// QEMU's `pretty_newline`.
    #[inline]
    fn newline(&mut self) {
        if self.style.layout() != Layout::Pretty {
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
            match self.style.layout() {
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

    #[inline]
    pub(super) fn colon(&mut self) {
        self.put_byte(b':');
        if self.style.layout() != Layout::Minimal {
            self.put_byte(b' ');
        }
    }

    #[inline]
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

    /// [`JsonWriter::key`] for one of the envelope's own keys (`return`,
    /// `id`, `error`, …: printable ASCII that needs no escape), copied as
    /// it is.
    pub(super) fn plain_key(&mut self, key: &'static [u8]) {
        self.prefix();
        self.put_byte(b'"');
        self.put(key);
        self.put_byte(b'"');
        self.colon();
    }

    #[inline]
    pub(crate) fn quoted(&mut self, s: &[u8]) {
        self.put_byte(b'"');
        escape_pieces(self, &[s]);
        self.put_byte(b'"');
    }

    #[inline]
    pub(super) fn quoted_json_str(&mut self, s: JsonStr<'_>) {
        self.put_byte(b'"');
        escape_json_str_body(self, s);
        self.put_byte(b'"');
    }

    #[inline]
    pub(super) fn end_message(&mut self) {
        if self.style.line_ending() != LineEnding::None {
            self.line_break();
        }
    }

    #[inline]
    pub(super) fn finish(self) -> Result<usize, EncodeError> {
        if self.len <= self.out.len() {
            Ok(self.len)
        } else {
            Err(EncodeError::InsufficientSize(InsufficientSize {
                required: self.len,
            }))
        }
    }
}
