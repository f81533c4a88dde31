//! How to send one request ([`ExecuteOptions`]) and why a client refuses to
//! ([`ExecuteError`]). Shared by the QMP and the guest-agent clients.

use core::fmt;

use crate::encode::EncodeError;
use crate::{Instant, InsufficientSize};

/// How to run one request. Defaults: in-band, no deadline, a reply
/// awaited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct ExecuteOptions {
    deadline: Option<Deadline>,
    oob: bool,
    no_response: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
enum Deadline {
    At(Instant),
    After(u64),
}

impl ExecuteOptions {
    /// In-band, no deadline, a reply awaited.
    pub const fn new() -> Self {
        ExecuteOptions {
            deadline: None,
            oob: false,
            no_response: false,
        }
    }

    /// Resolve as [`Outcome::Timeout`](super::Outcome::Timeout) `ms`
    /// milliseconds after `now`.
    #[must_use]
    pub const fn timeout_ms(mut self, ms: u64) -> Self {
        self.deadline = Some(Deadline::After(ms));
        self
    }

    /// Resolve as [`Outcome::Timeout`](super::Outcome::Timeout) at `at`.
    #[must_use]
    pub const fn deadline(mut self, at: Instant) -> Self {
        self.deadline = Some(Deadline::At(at));
        self
    }

    /// QMP: send with `exec-oob` (needs `oob` negotiated and a command
    /// that allows it; the guest agent has no OOB).
    #[must_use]
    pub const fn oob(mut self, oob: bool) -> Self {
        self.oob = oob;
        self
    }

    /// Await no reply: the request is written but nothing will resolve its
    /// token; a reply that comes anyway is
    /// [`ClientEvent::Unmatched`](super::ClientEvent::Unmatched). For
    /// guest-agent commands with `'success-response': false`
    /// (`guest-shutdown`, `guest-suspend-*`), and fire-and-forget QMP
    /// commands.
    #[must_use]
    pub const fn no_response(mut self) -> Self {
        self.no_response = true;
        self
    }

    /// Whether `exec-oob` is asked for.
    pub const fn is_oob(&self) -> bool {
        self.oob
    }

    /// Whether a reply is awaited.
    pub const fn awaits_reply(&self) -> bool {
        !self.no_response
    }

    /// The absolute deadline for a request sent at `now`.
    pub const fn deadline_from(&self, now: Instant) -> Option<Instant> {
        match self.deadline {
            Some(Deadline::At(t)) => Some(t),
            Some(Deadline::After(ms)) => Some(now.saturating_add_millis(ms)),
            None => None,
        }
    }
}

/// Why a client refused to send a request. Nothing was registered; `out`
/// holds nothing to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ExecuteError {
    /// `out` is too small for the message (with the queued
    /// `qmp_capabilities` in front, if any).
    InsufficientSize(InsufficientSize),
    /// The pending table (`N`) is full: poll events or wait for replies.
    TooManyInFlight,
    /// QMP with OOB: the in-band limit
    /// ([`ClientConfig::with_max_in_band`](super::ClientConfig::with_max_in_band))
    /// is reached.
    TooManyInBand,
    /// `exec-oob` asked for but `oob` is not negotiated (never, for the
    /// guest agent).
    OobNotNegotiated,
    /// `exec-oob` asked for a typed command that does not allow it.
    OobNotAllowed,
    /// QMP with automatic negotiation: no greeting yet.
    NotReady,
    /// Guest agent: the session is not synced; sync first.
    NotSynced,
    /// Guest agent: a sync is in progress, or its outcome not yet polled.
    SyncInProgress,
    /// Guest agent: a sync id above `i64::MAX` (`qemu-ga` takes an `int`).
    IdOutOfRange,
    /// The session has ended.
    Closed,
    /// The arguments could not be encoded.
    Encode(EncodeError),
}

impl From<EncodeError> for ExecuteError {
    fn from(e: EncodeError) -> Self {
        match e {
            EncodeError::InsufficientSize(s) => ExecuteError::InsufficientSize(s),
            e => ExecuteError::Encode(e),
        }
    }
}

impl fmt::Display for ExecuteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExecuteError::InsufficientSize(s) => write!(f, "output {s}"),
            ExecuteError::TooManyInFlight => f.write_str("too many requests in flight"),
            ExecuteError::TooManyInBand => f.write_str("too many in-band requests in flight"),
            ExecuteError::OobNotNegotiated => f.write_str("OOB is not negotiated"),
            ExecuteError::OobNotAllowed => f.write_str("command does not allow OOB"),
            ExecuteError::NotReady => f.write_str("no greeting received yet"),
            ExecuteError::NotSynced => f.write_str("guest agent session not synced"),
            ExecuteError::SyncInProgress => f.write_str("a sync is already in progress"),
            ExecuteError::IdOutOfRange => f.write_str("sync id above i64::MAX"),
            ExecuteError::Closed => f.write_str("session closed"),
            ExecuteError::Encode(e) => write!(f, "cannot encode command: {e}"),
        }
    }
}

impl core::error::Error for ExecuteError {}
