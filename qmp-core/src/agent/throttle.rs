//! Event throttling with QEMU's rule (`monitor_qapi_event_emit`): the first
//! event of a name (and key) goes out at once and opens a window; later ones
//! in the window replace a pending one, which goes out when the window ends
//! and opens the next.

use super::config::{Throttle, THROTTLE_SLOTS};
use super::output::Output;
use crate::encode::EncodeError;
use crate::Instant;

#[derive(Clone, Copy)]
struct Slot {
    /// Index of the rule; `u16::MAX` when free.
    rule: u16,
    key_hash: u32,
    window_end: Instant,
    /// Length of the pending rendered event in this slot's storage.
    pending: u32,
}

const FREE: Slot = Slot {
    rule: u16::MAX,
    key_hash: 0,
    window_end: Instant::ZERO,
    pending: 0,
};

/// The windows in flight and their pending events, in the caller's
/// throttle storage (shared evenly by the slots).
pub(crate) struct Throttler<'b> {
    buf: &'b mut [u8],
    slots: [Slot; THROTTLE_SLOTS],
    /// The slot whose window ends next (`u8::MAX`: none), kept as the slots
    /// change: it is asked several times a turn.
    next: u8,
}

/// Where an event to emit stands.
pub(crate) enum Window {
    /// Not throttled.
    Free,
    /// First in its window: send now, then [`Throttler::open`].
    First { rule: u16, key_hash: u32 },
    /// In a window: replace the pending event.
    Within(usize),
}

impl<'b> Throttler<'b> {
    pub(crate) fn new(buf: &'b mut [u8]) -> Self {
        Throttler {
            buf,
            slots: [FREE; THROTTLE_SLOTS],
            next: u8::MAX,
        }
    }

    pub(crate) fn clear(&mut self) {
        self.slots = [FREE; THROTTLE_SLOTS];
        self.next = u8::MAX;
    }

    fn slot_len(&self) -> usize {
        self.buf.len() / THROTTLE_SLOTS
    }

    /// Where an event named `name` (keyed by `key`) stands.
    pub(crate) fn window(&self, rules: &[Throttle<'_>], name: &str, key: Option<&str>) -> Window {
        // Rules past the first 65,535 are not applied.
        let Some(rule) = rules
            .iter()
            .position(|t| t.event() == name)
            .and_then(|r| u16::try_from(r).ok())
            .filter(|r| *r != u16::MAX)
        else {
            return Window::Free;
        };
        let key_hash = key.map_or(0, |k| crate::encode::tdb_hash(k.as_bytes()));
        match self
            .slots
            .iter()
            .position(|s| s.rule == rule && s.key_hash == key_hash)
        {
            Some(i) => Window::Within(i),
            None => Window::First { rule, key_hash },
        }
    }

    /// Whether a window can be opened.
    pub(crate) fn has_free(&self) -> bool {
        self.slots.iter().any(|s| s.rule == u16::MAX)
    }

    /// Opens a window after the first event of its name went out.
    pub(crate) fn open(&mut self, rule: u16, key_hash: u32, window_end: Instant) {
        if let Some(s) = self.slots.iter_mut().find(|s| s.rule == u16::MAX) {
            *s = Slot {
                rule,
                key_hash,
                window_end,
                pending: 0,
            };
        }
        self.next = self.earliest();
    }

    /// Renders the event pending in window `i` (replacing any).
    pub(crate) fn replace(
        &mut self,
        i: usize,
        write: impl FnOnce(&mut [u8]) -> Result<usize, EncodeError>,
    ) -> Result<(), EncodeError> {
        let len = self.slot_len();
        let region = self.buf.get_mut(i * len..(i + 1) * len).unwrap_or(&mut []);
        let n = write(region)?;
        if let Some(s) = self.slots.get_mut(i) {
            // A slot is never 4 GiB: `n` fits.
            s.pending = u32::try_from(n).unwrap_or(0);
        }
        Ok(())
    }

    /// When the next window ends.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.slots.get(usize::from(self.next)).map(|s| s.window_end)
    }

    /// The slot whose window ends next (the first of those ending then),
    /// from the slots; `u8::MAX` when none is open.
    fn earliest(&self) -> u8 {
        // A plain loop over the fixed slots: the iterator chain made LLVM
        // count the rest with a division, a library call on a Cortex-M0.
        let mut next: Option<Instant> = None;
        let mut at = u8::MAX;
        let mut i = 0u8;
        for s in &self.slots {
            if s.rule != u16::MAX && next.is_none_or(|n| s.window_end < n) {
                next = Some(s.window_end);
                at = i;
            }
            i = i.wrapping_add(1);
        }
        at
    }

    /// Ends the windows due by `now`: pending events go to `out` (and open
    /// a new window); windows with nothing pending close. An event with no
    /// room in `out` yet stays pending.
    pub(crate) fn due(&mut self, now: Instant, rules: &[Throttle<'_>], out: &mut Output<'_>) {
        let len = self.slot_len();
        for i in 0..THROTTLE_SLOTS {
            let Some(slot) = self.slots.get(i).copied() else {
                continue;
            };
            if slot.rule == u16::MAX || slot.window_end > now {
                continue;
            }
            if slot.pending == 0 {
                if let Some(s) = self.slots.get_mut(i) {
                    *s = FREE;
                }
                continue;
            }
            let pending = self
                .buf
                .get(i * len..i * len + slot.pending as usize)
                .unwrap_or(&[]);
            if out.raw(pending).is_err() {
                // No room yet: retried at the next call.
                continue;
            }
            let window = rules
                .get(usize::from(slot.rule))
                .map_or(0, |t| t.window_ms());
            if let Some(s) = self.slots.get_mut(i) {
                s.pending = 0;
                s.window_end = now.saturating_add_millis(window);
            }
        }
        self.next = self.earliest();
    }
}
