//! An event for the agent to emit: [`EventOut`].

use crate::encode::WriteJson;

/// An event to emit, built with [`EventOut::new`] and its builder methods.
///
/// The timestamp is the caller's wall clock (QEMU: `g_get_real_time()`); a
/// board without a wall clock may send its uptime or `-1, -1` (QEMU's
/// "unavailable").
///
/// ```
/// use qmp_core::agent::EventOut;
/// use qmp_core::scan::{validate, FramerConfig};
/// let data = validate(br#"{"reason": "host-qmp-quit"}"#, FramerConfig::new()).unwrap();
/// let ev = EventOut::new("SHUTDOWN").data(&data).timestamp(1_700_000_000, 5);
/// assert_eq!(ev.name(), "SHUTDOWN");
/// ```
#[derive(Clone, Copy)]
#[non_exhaustive]
pub struct EventOut<'v> {
    pub(crate) name: &'v str,
    pub(crate) data: Option<&'v dyn WriteJson>,
    pub(crate) seconds: i64,
    pub(crate) microseconds: i64,
    pub(crate) throttle_key: Option<&'v str>,
}

impl<'v> EventOut<'v> {
    /// An event without data, stamped `(0, 0)`.
    pub const fn new(name: &'v str) -> Self {
        EventOut {
            name,
            data: None,
            seconds: 0,
            microseconds: 0,
            throttle_key: None,
        }
    }

    /// Sets `data` (a [`RawJson`](crate::RawJson) value is re-serialised
    /// the way QEMU would; wrap `Serialize` values in
    /// [`Ser`](crate::encode::Ser)).
    #[must_use]
    pub fn data(mut self, data: &'v dyn WriteJson) -> Self {
        self.data = Some(data);
        self
    }

    /// Sets the timestamp: wall-clock seconds and microseconds within the
    /// second.
    #[must_use]
    pub const fn timestamp(mut self, seconds: i64, microseconds: i64) -> Self {
        self.seconds = seconds;
        self.microseconds = microseconds;
        self
    }

    /// For events throttled per key (QEMU keys some by `data.id`,
    /// `data.node-name` or `data.qom-path`): the key value.
    #[must_use]
    pub const fn throttle_key(mut self, key: &'v str) -> Self {
        self.throttle_key = Some(key);
        self
    }

    /// The event name.
    pub const fn name(&self) -> &'v str {
        self.name
    }
}

impl core::fmt::Debug for EventOut<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("EventOut")
            .field("name", &self.name)
            .field("seconds", &self.seconds)
            .field("microseconds", &self.microseconds)
            .field("throttle_key", &self.throttle_key)
            .finish_non_exhaustive()
    }
}
