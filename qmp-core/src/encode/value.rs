//! Values: the [`WriteJson`] trait and what implements it ([`RawJson`],
//! [`Verbatim`], [`JsonStr`], `&str`, `i64`, `u64`, `bool`, and [`Ser`]
//! around anything `Serialize`).

use crate::json::{JsonStr, RawJson};
use serde::Serialize;

use super::number::write_display;
use super::reserialise::write_raw;
use super::serializer::write_serialize;
use super::{EncodeError, JsonWriter, Style};

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
/// QDict order (feature `qdict-order`, on by default; input order without
/// it). See [`write_value_qemu`](super::write_value_qemu).
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
        write_display(w, *self)
    }
}

impl WriteJson for u64 {
    fn write_json(&self, w: &mut JsonWriter<'_>) -> Result<(), EncodeError> {
        write_display(w, *self)
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
        write_serialize(w, self.0)
    }
}

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
