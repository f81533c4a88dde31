//! Typed events: `STOP`, `RESUME`, `POWERDOWN`, `SHUTDOWN` and
//! `JOB_STATUS_CHANGE`. Event names stay open: [`decode`] returns `None` for
//! any other name, and unknown `data` members are ignored.
//!
//! ```
//! use qmp_core::client::events::{decode, Shutdown};
//! use qmp_core::scan::{Frame, Framer};
//! use qmp_core::message::Inbound;
//!
//! let mut buf = [0u8; 256];
//! let mut framer = Framer::new(&mut buf[..]);
//! let fed = framer.feed(br#"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "SHUTDOWN", "data": {"guest": false, "reason": "host-qmp-quit"}}"#);
//! let Some(Frame::Message(m)) = fed.frame else { panic!() };
//! let Inbound::Event(ev) = m.classify() else { panic!() };
//! let data = decode::<Shutdown>(&ev).unwrap().unwrap();
//! assert!(!data.guest);
//! assert!(data.reason.eq_str("host-qmp-quit"));
//! ```

use super::commands::{bool_member, str_member};
use super::DecodeError;
use crate::json::{JsonStr, RawJson};
use crate::message::Event;

/// A typed event.
pub trait QmpEvent {
    /// The event name.
    const NAME: &'static str;
    /// The decoded `data`.
    type Data<'a>;
    /// Decodes `data` (absent for events without data).
    ///
    /// # Errors
    /// Data of the wrong shape.
    fn decode_data(data: Option<RawJson<'_>>) -> Result<Self::Data<'_>, DecodeError>;
}

/// `Some(data)` if `event` is an `E`, `None` otherwise.
pub fn decode<'a, E: QmpEvent>(event: &Event<'a>) -> Option<Result<E::Data<'a>, DecodeError>> {
    event
        .name
        .eq_str(E::NAME)
        .then(|| E::decode_data(event.data))
}

macro_rules! unit_event {
    ($(#[$doc:meta])* $ty:ident, $name:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $ty;

        impl QmpEvent for $ty {
            const NAME: &'static str = $name;
            type Data<'a> = ();
            fn decode_data(_: Option<RawJson<'_>>) -> Result<(), DecodeError> {
                Ok(())
            }
        }
    };
}

unit_event!(
    /// `STOP`: the guest paused.
    Stop,
    "STOP"
);
unit_event!(
    /// `RESUME`: the guest resumed.
    Resume,
    "RESUME"
);
unit_event!(
    /// `POWERDOWN`: the guest was asked to power down.
    Powerdown,
    "POWERDOWN"
);

/// `SHUTDOWN`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Shutdown;

/// `SHUTDOWN`'s data.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct ShutdownData<'a> {
    /// Whether the guest asked for it.
    pub guest: bool,
    /// `reason` (`"host-qmp-quit"`, `"guest-shutdown"`, …; open).
    pub reason: JsonStr<'a>,
}

impl QmpEvent for Shutdown {
    const NAME: &'static str = "SHUTDOWN";
    type Data<'a> = ShutdownData<'a>;
    fn decode_data(data: Option<RawJson<'_>>) -> Result<ShutdownData<'_>, DecodeError> {
        let d = data.ok_or(DecodeError::Missing("data"))?;
        Ok(ShutdownData {
            guest: bool_member(d, "guest")?,
            reason: str_member(d, "reason")?,
        })
    }
}

/// `JOB_STATUS_CHANGE`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JobStatusChange;

/// `JOB_STATUS_CHANGE`'s data.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct JobStatusChangeData<'a> {
    /// The job id.
    pub id: JsonStr<'a>,
    /// The new status (`"created"`, `"running"`, `"concluded"`, …; open).
    pub status: JsonStr<'a>,
}

impl QmpEvent for JobStatusChange {
    const NAME: &'static str = "JOB_STATUS_CHANGE";
    type Data<'a> = JobStatusChangeData<'a>;
    fn decode_data(data: Option<RawJson<'_>>) -> Result<JobStatusChangeData<'_>, DecodeError> {
        let d = data.ok_or(DecodeError::Missing("data"))?;
        Ok(JobStatusChangeData {
            id: str_member(d, "id")?,
            status: str_member(d, "status")?,
        })
    }
}
