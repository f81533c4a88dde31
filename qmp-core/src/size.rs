//! The one "a buffer is too small" error shape, shared by every error enum
//! of the crate (rustls's `InsufficientSizeError`).
//!
//! Every fallible write into a caller's buffer promises: **on error the
//! buffer's contents are unspecified but nothing was registered or
//! consumed**, and `required` is the exact size that would have succeeded,
//! so the caller can retry with a buffer of that size.

use core::fmt;

/// A buffer is too small: it must hold `required` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct InsufficientSize {
    /// The size (in bytes) the buffer must have.
    pub required: usize,
}

impl InsufficientSize {
    /// A buffer of `required` bytes would do.
    pub const fn new(required: usize) -> Self {
        InsufficientSize { required }
    }
}

impl fmt::Display for InsufficientSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "buffer too small: {} bytes required", self.required)
    }
}

impl core::error::Error for InsufficientSize {}
