//! What can go wrong between an agent and its application: [`SetupError`],
//! [`CompleteError`], [`EmitError`], and what [`Emitted`] means.

use core::fmt;

use super::ReplyToken;
use crate::encode::EncodeError;
use crate::InsufficientSize;

/// Why an agent could not be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum SetupError {
    /// The framer buffer is empty.
    Framer(InsufficientSize),
    /// The queue buffer is smaller than
    /// [`AgentBuffers::queue_required`](super::AgentBuffers::queue_required).
    Queue(InsufficientSize),
    /// The output buffer cannot hold the greeting.
    Output(InsufficientSize),
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetupError::Framer(s) => write!(f, "framer {s}"),
            SetupError::Queue(s) => write!(f, "queue {s}"),
            SetupError::Output(s) => write!(f, "output {s}"),
        }
    }
}

impl core::error::Error for SetupError {}

/// Why [`Agent::complete`](super::Agent::complete) did not queue the
/// application's reply.
///
/// Only [`CompleteError::OutputFull`] leaves the request pending, and it
/// hands the token back: transmit, then complete again. In every other case
/// the request is answered — by the agent, with an error, when the reply
/// can never be sent — so the peer always gets exactly one reply.
#[derive(Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum CompleteError {
    /// The output buffer has no room now: call
    /// [`poll_transmit`](super::Agent::poll_transmit), then complete again
    /// with the token given back here. Dropping it leaves the request
    /// pending and stalls the in-band queue.
    OutputFull {
        /// The request, still pending.
        token: ReplyToken,
        /// The size of the reply.
        required: usize,
    },
    /// The reply can never fit the output buffer; the agent answered with
    /// `GenericError` "reply too large for the output buffer" instead.
    InsufficientSize(InsufficientSize),
    /// The value could not be encoded; the agent answered with
    /// `GenericError` "reply could not be encoded" instead.
    Encode(EncodeError),
    /// No request with this token is pending (the session was reset, or the
    /// token belongs to another agent).
    UnknownToken,
}

impl fmt::Display for CompleteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompleteError::OutputFull { required, .. } => {
                write!(f, "output buffer full ({required} bytes needed)")
            }
            CompleteError::InsufficientSize(s) => {
                write!(
                    f,
                    "reply never fits the output: {s} (answered with an error)"
                )
            }
            CompleteError::Encode(e) => {
                write!(f, "cannot encode reply: {e} (answered with an error)")
            }
            CompleteError::UnknownToken => f.write_str("no pending request has this token"),
        }
    }
}

impl core::error::Error for CompleteError {}

/// What [`Agent::emit`](super::Agent::emit) did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[must_use]
#[non_exhaustive]
pub enum Emitted {
    /// Queued for transmission.
    Sent,
    /// Held by throttling; sent when the window ends unless replaced.
    Throttled,
    /// Dropped because the session has not completed negotiation (QEMU does
    /// not deliver or buffer events before `qmp_capabilities`).
    NotNegotiated,
}

/// Why [`Agent::emit`](super::Agent::emit) failed; the event was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum EmitError {
    /// The output buffer has no room now: transmit, then retry.
    OutputFull {
        /// The size of the event.
        required: usize,
    },
    /// The event can never fit the output (or throttle slot) buffer.
    InsufficientSize(InsufficientSize),
    /// Every throttle slot is in a window for another event.
    ThrottleSlotsBusy,
    /// The data could not be encoded.
    Encode(EncodeError),
}

impl fmt::Display for EmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EmitError::OutputFull { required } => {
                write!(f, "output buffer full ({required} bytes needed)")
            }
            EmitError::InsufficientSize(s) => write!(f, "event never fits: {s}"),
            EmitError::ThrottleSlotsBusy => f.write_str("all throttle slots are busy"),
            EmitError::Encode(e) => write!(f, "cannot encode event: {e}"),
        }
    }
}

impl core::error::Error for EmitError {}
