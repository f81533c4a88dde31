//! The caller's clock: one [`Instant`] type for every session.
//!
//! The core never asks for the time. Every method that needs it takes
//! `now: Instant`, the caller's own monotonic clock in milliseconds (any
//! epoch: time since boot, a SysTick counter, `std::time::Instant` minus a
//! start). Durations are plain milliseconds (`u64`).
//!
//! ```
//! use qmp_core::Instant;
//!
//! let start = Instant::from_millis(1_000);
//! let deadline = start.saturating_add_millis(250);
//! assert_eq!(deadline.as_millis(), 1_250);
//! assert_eq!(deadline.saturating_millis_since(start), 250);
//! assert!(start < deadline);
//! ```

/// A point on the caller's monotonic millisecond clock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Instant(u64);

impl Instant {
    /// The clock's epoch.
    pub const ZERO: Instant = Instant(0);
    /// The latest instant ("never").
    pub const MAX: Instant = Instant(u64::MAX);

    /// The instant `ms` milliseconds after the caller's epoch.
    pub const fn from_millis(ms: u64) -> Self {
        Instant(ms)
    }

    /// Milliseconds since the caller's epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// `ms` milliseconds later, saturating at [`Instant::MAX`].
    #[must_use]
    pub const fn saturating_add_millis(self, ms: u64) -> Self {
        Instant(self.0.saturating_add(ms))
    }

    /// Milliseconds from `earlier` to `self` (0 if `earlier` is later).
    pub const fn saturating_millis_since(self, earlier: Instant) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}
