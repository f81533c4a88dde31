//! [`EncodeError`]: why a message could not be written.

use crate::InsufficientSize;
use core::fmt;
use serde::ser;

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
    /// A [`RawJson`](crate::RawJson) value was not valid JSON.
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
