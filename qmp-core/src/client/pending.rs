//! The pending-request table shared by the QMP and guest-agent clients:
//! wire ids, deadlines, the order resolutions are reported in, and the
//! replies still owed by requests given up on.

use super::Token;
use crate::Instant;

/// How a request travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// In-band: replies come in request order.
    InBand,
    /// `exec-oob`: its reply may overtake.
    Oob,
    /// A guest-agent sync (matched by its value, not by id).
    Sync,
}

/// A resolution that carries no message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    Timeout,
    Cancelled,
    Disconnected,
}

#[derive(Clone, Copy)]
enum SlotState {
    Waiting,
    /// Resolved without a message; freed when polled.
    Resolved {
        seq: u64,
        ended: Ended,
    },
}

/// One request: waiting, or resolved and not yet polled.
#[derive(Clone, Copy)]
pub(crate) struct Slot {
    /// The wire id (guest-agent syncs: the sync token's number).
    pub(crate) id: u64,
    pub(crate) kind: Kind,
    pub(crate) deadline: Option<Instant>,
    /// A manual `qmp_capabilities`: whether it enables OOB.
    pub(crate) caps: Option<bool>,
    st: SlotState,
}

impl Slot {
    pub(crate) const fn new(
        id: u64,
        kind: Kind,
        deadline: Option<Instant>,
        caps: Option<bool>,
    ) -> Self {
        Slot {
            id,
            kind,
            deadline,
            caps,
            st: SlotState::Waiting,
        }
    }

    fn waiting(&self) -> bool {
        matches!(self.st, SlotState::Waiting)
    }
}

/// A request given up on (timed out, cancelled, sent without waiting) whose
/// reply is still owed by the peer.
#[derive(Clone, Copy)]
struct Owed {
    id: u64,
    kind: Kind,
}

/// Where the oldest in-band reply owed by the peer belongs.
pub(crate) enum InBand {
    /// To this waiting slot.
    Waiting(usize),
    /// To a request given up on: the reply is dropped.
    Owed,
    /// Nothing in-band is owed.
    Nothing,
}

/// The table: `N` slots and `N` owed replies.
pub(crate) struct Table<const N: usize> {
    slots: [Option<Slot>; N],
    owed: [Option<Owed>; N],
    /// Orders resolutions and held messages: each gets the next number.
    seq: u64,
    /// Slots resolved and not yet polled (so that asking for the oldest
    /// costs nothing when there is none: drivers ask on every turn).
    resolved: usize,
    /// The earliest deadline of a waiting request (kept up to date, so
    /// that `next_deadline` and `expire` cost nothing on most turns).
    earliest: Option<Instant>,
}

impl<const N: usize> Table<N> {
    pub(crate) const fn new() -> Self {
        Table {
            slots: [None; N],
            owed: [None; N],
            seq: 0,
            resolved: 0,
            earliest: None,
        }
    }

    pub(crate) fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    pub(crate) fn get(&self, i: usize) -> Option<&Slot> {
        self.slots.get(i).and_then(Option::as_ref)
    }

    /// A free slot, if any.
    pub(crate) fn free(&self) -> Option<usize> {
        self.slots.iter().position(Option::is_none)
    }

    /// Puts a new waiting request in slot `i` (from [`Table::free`]).
    pub(crate) fn insert(&mut self, i: usize, slot: Slot) {
        if let Some(s) = self.slots.get_mut(i) {
            let replaced = s.replace(slot);
            if replaced.is_some_and(|r| !r.waiting()) {
                self.resolved = self.resolved.saturating_sub(1);
            }
            if replaced.is_some_and(|r| r.waiting() && r.deadline.is_some()) {
                self.recompute_earliest();
            } else if let Some(d) = slot.deadline {
                self.earliest = Some(self.earliest.map_or(d, |e| e.min(d)));
            }
        }
    }

    /// The earliest deadline of a waiting request, looked up again (after
    /// the request that had it stopped waiting).
    fn recompute_earliest(&mut self) {
        self.earliest = self
            .slots
            .iter()
            .flatten()
            .filter(|s| s.waiting())
            .filter_map(|s| s.deadline)
            .min();
    }

    /// A waiting request with `deadline` stopped waiting.
    fn left(&mut self, deadline: Option<Instant>) {
        if deadline.is_some() && deadline <= self.earliest {
            self.recompute_earliest();
        }
    }

    /// Marks waiting request `id` as a manual `qmp_capabilities` (whether
    /// it enables OOB).
    pub(crate) fn set_caps(&mut self, id: u64, oob: bool) {
        if let Some(s) = self.slots.iter_mut().flatten().find(|s| s.id == id) {
            s.caps = Some(oob);
        }
    }

    /// Notes a reply owed to nobody (a command sent without waiting).
    pub(crate) fn owe(&mut self, id: u64, kind: Kind) {
        let free = self.owed.iter().position(Option::is_none);
        let victim = free.or_else(|| {
            // Full: forget the oldest (it only weakens attribution).
            self.owed
                .iter()
                .enumerate()
                .filter_map(|(i, o)| o.map(|o| (i, o.id)))
                .min_by_key(|(_, id)| *id)
                .map(|(i, _)| i)
        });
        if let Some(o) = victim.and_then(|i| self.owed.get_mut(i)) {
            *o = Some(Owed { id, kind });
        }
    }

    pub(crate) fn find_waiting(&self, id: u64) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| matches!(s, Some(s) if s.id == id && s.waiting()))
    }

    pub(crate) fn oldest_waiting(&self, pred: impl Fn(&Slot) -> bool) -> Option<usize> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|s| (i, s)))
            .filter(|(_, s)| s.waiting() && pred(s))
            .min_by_key(|(_, s)| s.id)
            .map(|(i, _)| i)
    }

    /// Requests waiting for a reply, of the kinds `pred` accepts.
    pub(crate) fn waiting(&self, pred: impl Fn(&Slot) -> bool) -> usize {
        self.slots
            .iter()
            .flatten()
            .filter(|s| s.waiting() && pred(s))
            .count()
    }

    /// The earliest deadline of a waiting request.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.earliest
    }

    #[cfg(feature = "qga")] // used by the guest-agent client only
    /// Whether any slot (waiting, or resolved and not yet polled) is one
    /// `pred` accepts.
    pub(crate) fn any(&self, pred: impl Fn(&Slot) -> bool) -> bool {
        self.slots.iter().flatten().any(pred)
    }

    /// Whether `id` is waiting or its resolution is still to be polled.
    pub(crate) fn knows(&self, id: u64) -> bool {
        self.slots.iter().flatten().any(|s| s.id == id)
    }

    /// Removes waiting slot `i` because its reply arrived; in-band replies
    /// come in order, so owed in-band replies older than it never will.
    pub(crate) fn take_replied(&mut self, i: usize) -> Option<Slot> {
        let slot = self.slots.get_mut(i).and_then(Option::take)?;
        if slot.waiting() {
            self.left(slot.deadline);
        } else {
            self.resolved = self.resolved.saturating_sub(1);
        }
        if slot.kind == Kind::InBand {
            self.settle_in_band_before(slot.id);
        }
        Some(slot)
    }

    /// Resolves slot `i` without a message; the slot is freed when polled.
    pub(crate) fn resolve(&mut self, i: usize, ended: Ended) {
        let seq = self.next_seq();
        let mut left = None;
        if let Some(Some(slot)) = self.slots.get_mut(i) {
            if slot.waiting() {
                self.resolved += 1;
                left = Some(slot.deadline);
            }
            slot.st = SlotState::Resolved { seq, ended };
        }
        if let Some(deadline) = left {
            self.left(deadline);
        }
    }

    /// Resolves slot `i` without its reply, which stays owed. Returns the
    /// slot as it was.
    pub(crate) fn abandon(&mut self, i: usize, ended: Ended) -> Option<Slot> {
        let slot = *self.get(i)?;
        if slot.kind != Kind::Sync {
            self.owe(slot.id, slot.kind);
        }
        self.resolve(i, ended);
        Some(slot)
    }

    /// Abandons every waiting request whose deadline is at or before `now`
    /// (in request order) as timed out; calls `on` for each.
    pub(crate) fn expire(&mut self, now: Instant, mut on: impl FnMut(&Slot)) {
        if self.earliest.is_none_or(|e| e > now) {
            return;
        }
        while let Some(i) = self.oldest_waiting(|s| s.deadline.is_some_and(|d| d <= now)) {
            if let Some(slot) = self.abandon(i, Ended::Timeout) {
                on(&slot);
            }
        }
    }

    /// Resolves every waiting request as disconnected and forgets owed
    /// replies.
    pub(crate) fn disconnect(&mut self) {
        while let Some(i) = self.oldest_waiting(|_| true) {
            self.resolve(i, Ended::Disconnected);
        }
        self.owed = [None; N];
    }

    /// The oldest resolution without a message: its slot and number.
    pub(crate) fn oldest_resolved(&self) -> Option<(usize, u64)> {
        if self.resolved == 0 {
            return None;
        }
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s {
                Some(Slot {
                    st: SlotState::Resolved { seq, .. },
                    ..
                }) => Some((i, *seq)),
                _ => None,
            })
            .min_by_key(|(_, seq)| *seq)
    }

    /// Takes the oldest resolution without a message.
    pub(crate) fn take_resolved(&mut self) -> Option<(Token, Ended)> {
        let (i, _) = self.oldest_resolved()?;
        let slot = self.slots.get_mut(i)?.take()?;
        self.resolved = self.resolved.saturating_sub(1);
        match slot.st {
            SlotState::Resolved { ended, .. } => Some((Token(slot.id), ended)),
            SlotState::Waiting => None,
        }
    }

    /// A reply by id to a request given up on: forgets it. Returns whether
    /// it was owed.
    pub(crate) fn settle_owed(&mut self, id: u64) -> bool {
        let Some(o) = self
            .owed
            .iter_mut()
            .find(|o| matches!(o, Some(o) if o.id == id))
        else {
            return false;
        };
        let in_band = o.is_some_and(|o| o.kind == Kind::InBand);
        *o = None;
        if in_band {
            self.settle_in_band_before(id);
        }
        true
    }

    /// Forgets owed in-band replies older than `id` (in-band replies come in
    /// order, so they will never come).
    fn settle_in_band_before(&mut self, id: u64) {
        for o in self.owed.iter_mut() {
            if matches!(o, Some(x) if x.kind == Kind::InBand && x.id < id) {
                *o = None;
            }
        }
    }

    /// Whether an OOB reply is owed (waiting or given up on).
    pub(crate) fn oob_owed(&self) -> bool {
        self.owed.iter().flatten().any(|o| o.kind == Kind::Oob)
            || self.waiting(|s| s.kind == Kind::Oob) > 0
    }

    /// In-band replies owed (waiting or given up on).
    pub(crate) fn in_band_owed(&self) -> usize {
        self.owed
            .iter()
            .flatten()
            .filter(|o| o.kind == Kind::InBand)
            .count()
            + self.waiting(|s| s.kind == Kind::InBand)
    }

    /// Where the next in-band reply belongs (the oldest in-band request
    /// owed one). An owed reply is settled here: the caller drops it.
    pub(crate) fn next_in_band(&mut self) -> InBand {
        let waiting = self.oldest_waiting(|s| s.kind == Kind::InBand);
        let waiting_id = waiting.and_then(|i| self.get(i)).map(|s| s.id);
        let owed = self
            .owed
            .iter()
            .filter_map(|o| o.filter(|o| o.kind == Kind::InBand).map(|o| o.id))
            .min();
        match (waiting, waiting_id, owed) {
            (_, Some(w), Some(o)) if o < w => {
                self.settle_owed(o);
                InBand::Owed
            }
            (Some(i), Some(_), _) => InBand::Waiting(i),
            (_, _, Some(o)) => {
                self.settle_owed(o);
                InBand::Owed
            }
            _ => InBand::Nothing,
        }
    }
}
