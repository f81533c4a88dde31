//! What a client session reports: [`ClientEvent`], shared by the QMP and
//! the guest-agent clients (each variant says which dialect produces it).

use crate::json::{JsonStr, RawJson};
use crate::message::{ErrorClass, Event, Greeting};
use crate::scan::FrameError;

use super::{Outcome, Token};

/// Something that happened, from `poll_event` of
/// [`Client`](super::Client) or [`QgaClient`](crate::qga::QgaClient).
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum ClientEvent<'a> {
    /// QMP: the server greeting.
    Greeting(Greeting<'a>),
    /// QMP: automatic negotiation succeeded; `oob` says whether OOB is
    /// enabled.
    Negotiated {
        /// OOB enabled.
        oob: bool,
    },
    /// QMP: the automatic `qmp_capabilities` failed. The session stays
    /// negotiating; the caller may execute `qmp_capabilities` itself.
    NegotiationFailed {
        /// The error class.
        class: ErrorClass<'a>,
        /// The description.
        desc: JsonStr<'a>,
    },
    /// A request (or guest-agent sync) ended: exactly once per request.
    Resolved {
        /// The request.
        token: Token,
        /// How.
        outcome: Outcome<'a>,
    },
    /// QMP: an asynchronous event.
    Event(Event<'a>),
    /// A reply nobody is waiting for (an unknown or foreign id, an id-less
    /// reply that cannot be attributed, or the late reply of a timed-out,
    /// cancelled or unawaited request); dropped.
    Unmatched {
        /// The reply's id.
        id: Option<RawJson<'a>>,
        /// The whole reply.
        message: RawJson<'a>,
    },
    /// An id-less error that belongs to no request of ours (QMP: nothing
    /// in-band is owed a reply; guest agent: the agent complaining about
    /// bytes that were not a request, usually stale input).
    OrphanError {
        /// The error class.
        class: ErrorClass<'a>,
        /// The description (escaped; `Display` unescapes).
        desc: JsonStr<'a>,
    },
    /// Guest agent: a message skipped by a sync in progress (stale output,
    /// the agent's complaint about our 0xFF, a reply with another id).
    /// Only a [`QgaClient`](crate::qga::QgaClient) (feature `qga`) reports
    /// it.
    Discarded(RawJson<'a>),
    /// A valid JSON value that is no message of the protocol; ignored.
    Unknown(RawJson<'a>),
    /// Bytes that do not frame, and that stood where no reply was expected;
    /// the session continues. (A malformed reply resolves its request as
    /// [`Outcome::Malformed`] instead.)
    FramingError(FrameError<'a>),
}
