//! [`Json`]: an owned JSON value, validated by qmp-core's scanner.

use qmp_core::encode::{self, EncodeError, JsonWriter, Ser, Style, WriteJson};
use qmp_core::json::RawJson;
use qmp_core::scan::{validate, FramerConfig, ValidateError};
use qmp_core::InsufficientSize;
use serde::Serialize;
use std::fmt;

/// An owned, validated JSON value (its text).
///
/// Written into replies and events the way QEMU re-serialises a parsed
/// value: QEMU spacing and escaping, object members in QDict order (see
/// `qmp_core::encode::qdict_bucket`). So `Json::parse(r#"{"running": true,
/// "status": "running"}"#)` goes out as `{"status": "running", "running":
/// true}`, exactly as QEMU sends it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Json(Box<[u8]>);

/// Why [`Json::parse`] rejected its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidJson(pub ValidateError);

impl fmt::Display for InvalidJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.0 {
            ValidateError::Empty => "no JSON value",
            ValidateError::Incomplete => "JSON value cut short",
            ValidateError::TrailingData => "more than one JSON value",
            _ => "invalid JSON",
        };
        f.write_str(what)
    }
}

impl std::error::Error for InvalidJson {}

impl Json {
    /// Validates JSON text (exactly one value, whitespace around allowed).
    ///
    /// # Errors
    /// [`InvalidJson`] when the text is not exactly one JSON value.
    pub fn parse(text: impl Into<Vec<u8>>) -> Result<Json, InvalidJson> {
        let text = text.into();
        let span = validate(&text, FramerConfig::new()).map_err(InvalidJson)?;
        Ok(Json(span.as_bytes().into()))
    }

    /// A value from any `Serialize` (written with qmp-core's serializer).
    ///
    /// # Errors
    /// The serializer's error (non-string map keys, non-finite floats).
    pub fn from_serialize<T: Serialize + ?Sized>(value: &T) -> Result<Json, EncodeError> {
        let mut buf = vec![0u8; 256];
        loop {
            match encode::write_value(&mut buf, Style::CLIENT, &Ser(value)) {
                Ok(n) => {
                    buf.truncate(n);
                    return Json::parse(buf).map_err(|_| EncodeError::InvalidJson);
                }
                Err(EncodeError::InsufficientSize(InsufficientSize { required }))
                    if required > buf.len() =>
                {
                    buf.resize(required, 0);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// A JSON string.
    pub fn string(s: &str) -> Json {
        let mut buf = vec![0u8; s.len() * 6 + 2];
        match encode::write_quoted(&mut buf, s.as_bytes()) {
            Ok(n) => {
                buf.truncate(n);
                Json(buf.into())
            }
            // Unreachable: six bytes per input byte is the worst case.
            Err(_) => Json(b"\"\"".as_slice().into()),
        }
    }

    /// A JSON integer.
    pub fn int(v: i64) -> Json {
        Json(v.to_string().into_bytes().into())
    }

    /// A JSON integer.
    pub fn uint(v: u64) -> Json {
        Json(v.to_string().into_bytes().into())
    }

    /// `true` or `false`.
    pub fn bool(v: bool) -> Json {
        Json(if v { &b"true"[..] } else { b"false" }.into())
    }

    /// `null`.
    pub fn null() -> Json {
        Json(b"null".as_slice().into())
    }

    /// `{}`.
    pub fn empty_object() -> Json {
        Json(b"{}".as_slice().into())
    }

    /// The JSON text.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// A borrowed view for qmp-core (member access, typed parsing).
    pub fn raw(&self) -> RawJson<'_> {
        // The text is the span `validate` returned on construction (or a
        // literal, or `write_quoted`'s output): no need to scan it again.
        RawJson::assume_validated(&self.0)
    }
}

impl From<RawJson<'_>> for Json {
    fn from(raw: RawJson<'_>) -> Json {
        Json(raw.as_bytes().into())
    }
}

/// Re-serialised the QEMU way (see the type docs).
impl WriteJson for Json {
    fn write_json(&self, w: &mut JsonWriter<'_>) -> Result<(), EncodeError> {
        self.raw().write_json(w)
    }
}

impl fmt::Display for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.0))
    }
}

impl fmt::Debug for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Json({self})")
    }
}
