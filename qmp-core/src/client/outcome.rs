//! How a request ends: its [`Token`], its [`Outcome`], and the errors of
//! typed calls ([`CallError`], [`DecodeError`]). Shared by the QMP and the
//! guest-agent clients.

use core::fmt;

use crate::json::{JsonStr, RawJson};
use crate::message::ErrorClass;
use crate::scan::FrameError;

use super::Command;

/// The bit that marks a guest-agent sync's token.
pub(crate) const SYNC_BIT: u64 = 1 << 63;

/// Identifies one request of a client session (QMP or guest agent).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Token(pub(crate) u64);

impl Token {
    /// For a command, the integer `id` it was sent with; for a guest-agent
    /// sync, an opaque number with the top bit set (not the sync's id).
    pub const fn id(self) -> u64 {
        self.0
    }

    /// Whether this is the token of a guest-agent sync.
    pub const fn is_sync(self) -> bool {
        self.0 & SYNC_BIT != 0
    }
}

/// How a request ended (exactly once per request).
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Outcome<'a> {
    /// `{"return": value}`.
    Return(RawJson<'a>),
    /// `{"error": {"class", "desc"}}`.
    Error {
        /// The error class.
        class: ErrorClass<'a>,
        /// The description (escaped; `Display` unescapes).
        desc: JsonStr<'a>,
    },
    /// The deadline passed first. A late reply is reported as
    /// [`ClientEvent::Unmatched`](super::ClientEvent::Unmatched).
    Timeout,
    /// The request was cancelled. A late reply is reported as
    /// [`ClientEvent::Unmatched`](super::ClientEvent::Unmatched).
    Cancelled,
    /// End of stream before a reply.
    Disconnected,
    /// The reply did not fit the framer buffer; it was skipped.
    Oversized {
        /// Its size in bytes, as far as it was read.
        len: usize,
    },
    /// The message that stood where this request's reply must be was not
    /// valid JSON (invalid UTF-8, a lone surrogate, nesting too deep, …):
    /// a protocol error of the peer. The session goes on.
    Malformed(FrameError<'a>),
}

impl<'a> Outcome<'a> {
    /// Whether this is a `return`.
    pub fn is_return(&self) -> bool {
        matches!(self, Outcome::Return(_))
    }

    /// The `return` value of a [`Command`], decoded.
    ///
    /// # Errors
    /// Every other outcome, or a return value of the wrong shape.
    pub fn decode<C: Command>(&self) -> Result<C::Returns<'a>, CallError<'a>> {
        match *self {
            Outcome::Return(v) => C::decode_returns(v).map_err(CallError::Decode),
            Outcome::Error { class, desc } => Err(CallError::Error { class, desc }),
            Outcome::Timeout => Err(CallError::Timeout),
            Outcome::Cancelled => Err(CallError::Cancelled),
            Outcome::Disconnected => Err(CallError::Disconnected),
            Outcome::Oversized { len } => Err(CallError::Oversized { len }),
            Outcome::Malformed(e) => Err(CallError::Malformed(e)),
        }
    }
}

/// Why a typed call did not give its return value ([`Outcome::decode`]).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum CallError<'a> {
    /// The server answered with an error.
    Error {
        /// The error class.
        class: ErrorClass<'a>,
        /// The description.
        desc: JsonStr<'a>,
    },
    /// See [`Outcome::Timeout`].
    Timeout,
    /// See [`Outcome::Cancelled`].
    Cancelled,
    /// See [`Outcome::Disconnected`].
    Disconnected,
    /// See [`Outcome::Oversized`].
    Oversized {
        /// The reply's size.
        len: usize,
    },
    /// See [`Outcome::Malformed`].
    Malformed(FrameError<'a>),
    /// The return value has an unexpected shape.
    Decode(DecodeError),
}

impl fmt::Display for CallError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Error { class, desc } => write!(f, "{class}: {desc}"),
            CallError::Timeout => f.write_str("timed out"),
            CallError::Cancelled => f.write_str("cancelled"),
            CallError::Disconnected => f.write_str("disconnected"),
            CallError::Oversized { len } => write!(f, "reply too large ({len} bytes)"),
            CallError::Malformed(e) => write!(f, "malformed reply: {e}"),
            CallError::Decode(e) => write!(f, "bad return value: {e}"),
        }
    }
}

impl core::error::Error for CallError<'_> {}

/// Why a return value or event data could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum DecodeError {
    /// A required member is missing.
    Missing(&'static str),
    /// A member (or the value itself, `""`) has the wrong type.
    Type(&'static str),
    /// serde-json-core rejected the value.
    Parse(crate::json::ParseError),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Missing(m) => write!(f, "member '{m}' is missing"),
            DecodeError::Type(m) => write!(f, "member '{m}' has the wrong type"),
            DecodeError::Parse(e) => write!(f, "{e}"),
        }
    }
}

impl core::error::Error for DecodeError {}

impl From<crate::json::ParseError> for DecodeError {
    fn from(e: crate::json::ParseError) -> Self {
        DecodeError::Parse(e)
    }
}
