//! The one "a buffer is too small" error shape, shared by every error enum
//! of the crate (rustls's `InsufficientSizeError`).
//!
//! The promise that comes with it, everywhere: **an error changes nothing**
//! — nothing is registered, queued or consumed, and what already waits in a
//! session's own buffers (an agent's output, its queue) is untouched — and
//! `required` is the exact size that would have succeeded, so a retry with
//! a buffer of that size writes exactly what the first try would have. A
//! caller's scratch `out` buffer may have been written into on error, but
//! never holds a message to send (the tests in
//! `qmp-core/tests/session_contract.rs` check both halves).

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
