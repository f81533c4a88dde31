//! Duplicate keys in any object at any depth, found with the free end of the
//! message buffer as scratch: QEMU's `duplicate key`.
//!
//! QEMU's parser (`json-parser.c`, `parse_pair`) rejects a member whose key
//! is already in its object, once the member's value has been parsed, and it
//! stops at its first error. Every duplicate among the members completed
//! before the first grammar error therefore comes first in QEMU's parse
//! order, and all of them read `duplicate key`: the framer only has to know
//! whether such a duplicate exists, never which one QEMU met first.
//!
//! # Storage
//!
//! The message grows from the start of the buffer; this module keeps a stack
//! of 32-bit words at its end, growing down: the offset of each key's
//! opening quote, pushed when the key is read. The words of one object form
//! a *segment*, opened by a header word (the object's nesting level and the
//! level of the segment below); objects nest, so the innermost object's
//! segment is on top. The framer itself keeps only the level of the top
//! segment and the deepest level whose member being read is already known to
//! repeat a key (a few bytes, nothing per level). The top level's first
//! [`MAX_TRACKED_MEMBERS`] members are compared as they complete, with the
//! member spans the framer keeps anyway; only further top-level keys are
//! pushed. The stack never costs the message any room: when the message
//! needs the space the stack *spills* (below) and goes on from empty.
//!
//! # Checks
//!
//! A segment is checked when its object closes: its keys are sorted in
//! place (comparisons decode escapes to QEMU's modified UTF-8, so `\u0061`
//! equals `a` and `\u0000` equals raw `C0 80`; a few keys are compared
//! pair by pair), neighbours are compared, and the object's members
//! *before* the segment (its prefix, present only after a spill, or the top
//! level's tracked members) are walked backwards from the segment's first
//! key and looked up in the sorted keys. Sorting makes the check immune to
//! crafted hash collisions: there is no hash.
//!
//! A *spill* (the message, or a new word, would overlap the stack) checks
//! every segment the same way, and the key of the member still being read at
//! each level against all of that object's earlier keys (a repeat is
//! reported if that member completes), then empties the stack. When even an
//! empty stack leaves no room, the key is checked at once against its
//! object's earlier keys. At the first grammar error the segments are
//! checked without the members still being read, since QEMU never compares
//! those.
//!
//! # Bounds
//!
//! No recursion, no allocation, a few bytes of framer state. With `n`
//! message bytes and `k` keys: a spill costs O(n) byte steps (the prefixes
//! walked belong to different open objects and are disjoint) plus
//! O(k log k) comparisons, and leaves at most 4/5 of the free space it
//! found (every key pushed after it needs at least one message byte of its
//! own besides its 4-byte word), so a message has O(log n) spills: none
//! while the buffer's free end holds 4 bytes per key of the objects open at
//! once, at most about 60 in a 1 MiB buffer. Closing an object walks its
//! prefix once, and the prefixes walked at closes after one spill are
//! disjoint. In all, O(n log n) byte steps and O(k log k · log n) key
//! comparisons, each reading at most the shorter key, whatever the keys
//! are. Measured (`cargo bench --bench wire`, release build): 100,000 keys
//! in one object filling a 1 MiB buffer exactly, about 60 ms; in the
//! agent's 1 MiB buffer with 100 KB to spare, about 30 ms; 1024 nested
//! objects, well under a millisecond.

use super::*;
use core::cmp::Ordering;

/// Tags a segment's header, its oldest word: the level of its object (bits
/// 0..11) and that of the segment below it (bits 11..22), as in `top`.
const HDR: u32 = 1 << 31;
/// The largest key offset a word holds.
const OFF: u32 = HDR - 1;

/// Segments up to this many keys are sorted by insertion.
const SMALL: usize = 12;

impl<B: AsRef<[u8]> + AsMut<[u8]>> Framer<B> {
    /// Whether duplicate keys are checked: set for this framer, and compiled
    /// in (feature `duplicate-keys`; without it, a constant `false` that
    /// takes every path into this file out of the image).
    #[inline(always)]
    pub(super) fn dups_on(&self) -> bool {
        cfg!(feature = "duplicate-keys") && self.dups
    }

    /// Whether keys are being tracked for the current message.
    #[inline(always)]
    pub(super) fn dup_active(&self) -> bool {
        self.dups_on() && self.st.skip == Skip::No && self.st.err.is_none()
    }

    /// The lowest byte of the stack (the buffer's length when it is empty).
    fn stack_lo(&self) -> usize {
        self.buf.as_ref().len().saturating_sub(self.st.stack_len)
    }

    #[inline(always)]
    fn push_word(&mut self, word: u32) {
        let lo = self.stack_lo();
        let slot = lo
            .checked_sub(4)
            .and_then(|a| self.buf.as_mut().get_mut(a..lo));
        if let Some(w) = slot.and_then(|w| <&mut [u8; 4]>::try_from(w).ok()) {
            *w = word.to_le_bytes();
            self.st.stack_len += 4;
        }
    }

    /// A key whose opening quote is at message offset `key` was read in the
    /// object at `level`. `input`, `seg` and `i` are the state machine's
    /// pending copy (see [`Framer::flush`]), in case the stack must spill.
    pub(super) fn dup_key(
        &mut self,
        level: u16,
        key: usize,
        input: &[u8],
        seg: &mut usize,
        i: usize,
    ) {
        if !self.dup_active() {
            return;
        }
        let mut flushed = false;
        loop {
            let new = self.st.top != level + 1;
            let need = if new { 8 } else { 4 };
            if key <= OFF as usize && self.stack_lo() >= self.st.pos.saturating_add(need) {
                if new {
                    self.push_word(HDR | u32::from(self.st.top) << 11 | u32::from(level + 1));
                    self.st.top = level + 1;
                }
                self.push_word(key as u32);
                return;
            }
            // No room: bytes to the buffer (which may spill), then spill
            // and try again; with an empty stack, check this key at once.
            if !flushed {
                self.flush(input, seg, i);
                flushed = true;
                if !self.dup_active() {
                    return;
                }
                continue;
            }
            if self.st.stack_len == 0 || key > OFF as usize {
                if self.repeats_earlier(key) {
                    self.st.dup_at = self.st.dup_at.max(level + 1);
                }
                self.st.spilled = true;
                return;
            }
            self.dup_spill(false);
        }
    }

    /// A member of the object at `level` is complete: a duplicate if its
    /// key was found to repeat an earlier one while it was being read.
    #[inline(always)]
    pub(super) fn dup_member_done(&mut self, level: u16) {
        if self.st.dup_at == level + 1 {
            self.st.dup_at = 0;
            if self.dup_active() {
                self.dup_found();
            }
        }
    }

    /// The object at `level` (the innermost container) closes: checks and
    /// pops its segment.
    pub(super) fn dup_close(&mut self, level: u16, input: &[u8], seg: &mut usize, i: usize) {
        if !self.dup_active() || self.st.top != level + 1 {
            return;
        }
        let lo = self.stack_lo();
        let hi = self.segment_end(lo);
        if hi - lo == 8 && !self.st.spilled && level > 0 {
            // One key and nothing before it: nothing to compare.
            self.st.top = (self.word(hi - 4) >> 11 & 0x7FF) as u16;
            self.st.stack_len -= 8;
            return;
        }
        self.flush(input, seg, i);
        if !self.dup_active() || self.st.top != level + 1 {
            return;
        }
        let lo = self.stack_lo();
        let hi = self.segment_end(lo);
        let header = self.word(hi - 4);
        self.st.top = (header >> 11 & 0x7FF) as u16;
        // The top level's first members are checked as they complete
        // (`member`), not kept here: they are its segment's prefix.
        let prefix = self.st.spilled || level == 0;
        let dup = self.check_segment(lo, hi - 4, false, prefix).0;
        self.st.stack_len -= hi - lo;
        if dup {
            self.dup_found();
        }
    }

    /// The message needs the stack's room (or a word does): checks every
    /// segment and empties the stack. `last` is set at the first grammar
    /// error: members still being read are left out.
    pub(super) fn dup_spill(&mut self, last: bool) {
        if !self.dups_on() {
            return;
        }
        let cap = self.buf.as_ref().len();
        let mut lo = self.stack_lo();
        let mut dup = false;
        while lo < cap && !dup {
            let hi = self.segment_end(lo);
            let level = (self.word(hi - 4) & 0x7FF) as u16;
            let Some(l) = level.checked_sub(1) else { break };
            let open = self.reading_member(l);
            if open && last {
                // Not completed: QEMU never compares its key.
                dup = self.check_segment(lo + 4, hi - 4, false, true).0;
            } else {
                let (d, repeats) = self.check_segment(lo, hi - 4, open, true);
                dup = d;
                if repeats {
                    self.st.dup_at = self.st.dup_at.max(level);
                }
            }
            lo = hi;
        }
        self.st.stack_len = 0;
        self.st.top = 0;
        self.st.spilled = true;
        if dup {
            self.dup_found();
        }
    }

    /// Whether the member being read in the object at `level` is still
    /// incomplete (its key is the newest word of the level's segment).
    fn reading_member(&self, level: u16) -> bool {
        if level + 1 < self.st.depth {
            // A container inside the object: it is that member's value,
            // unless it stands where a key belongs.
            !bit(&self.keys, level + 1)
        } else {
            let gram = if self.st.err.is_some() {
                self.st.err_gram
            } else {
                self.st.gram
            };
            matches!(gram, Gram::Colon | Gram::Value)
        }
    }

    /// The address just past the segment whose newest word is at `lo`.
    fn segment_end(&self, lo: usize) -> usize {
        let cap = self.buf.as_ref().len();
        let mut a = lo;
        while a < cap {
            let w = self.word(a);
            a += 4;
            if w & HDR != 0 {
                break;
            }
        }
        a
    }

    fn word(&self, a: usize) -> u32 {
        self.buf
            .as_ref()
            .get(a..a + 4)
            .and_then(|w| <[u8; 4]>::try_from(w).ok())
            .map_or(0, u32::from_le_bytes)
    }

    fn set_word(&mut self, a: usize, v: u32) {
        if let Some(w) = self.buf.as_mut().get_mut(a..a + 4) {
            w.iter_mut().zip(v.to_le_bytes()).for_each(|(d, s)| *d = s);
        }
    }

    /// The key offset of the word at address `a`.
    fn key_at(&self, a: usize) -> usize {
        self.word(a) as usize
    }

    /// Checks the keys of a segment, `[lo, hi)` (newest at `lo`, oldest at
    /// `hi - 4`). With `open`, the newest word is the key of a
    /// member still being read: the others are checked among themselves and
    /// against the object's earlier members, and that key against all of
    /// them. Returns (a duplicate among completed members, the open key
    /// repeats an earlier one).
    fn check_segment(&mut self, lo: usize, hi: usize, open: bool, prefix: bool) -> (bool, bool) {
        if hi <= lo {
            return (false, false);
        }
        let first = self.key_at(hi - 4);
        let pending = open.then(|| self.key_at(lo));
        let done_lo = if open { lo + 4 } else { lo };
        let done = hi.saturating_sub(done_lo) / 4;
        if pending.is_none() && done <= SMALL {
            return (self.check_small(done_lo, hi, prefix), false);
        }
        if done >= 2 && self.sort_words(done_lo, hi) {
            return (true, false);
        }
        let sorted = (done_lo, hi);
        // The members before the segment, newest first.
        let buf = self.buf.as_ref();
        let mut repeats = false;
        let mut at = first;
        if pending == Some(first) {
            // The open member is the segment's only word.
            return (false, self.repeats_earlier(first));
        }
        while let Some(prev) = prev_key(buf, at) {
            if done > 0 && self.find(sorted, prev) {
                return (true, false);
            }
            if let Some(p) = pending {
                repeats = repeats || cmp_keys(buf, prev, p) == Ordering::Equal;
            }
            at = prev;
        }
        if let Some(p) = pending {
            repeats = repeats || (done > 0 && self.find(sorted, p));
        }
        (false, repeats)
    }

    /// [`Framer::check_segment`] for a few completed keys: compared pair by
    /// pair, and with the object's earlier members.
    fn check_small(&self, lo: usize, hi: usize, prefix: bool) -> bool {
        let buf = self.buf.as_ref();
        let mut keys = [0usize; SMALL];
        let mut n = 0;
        let mut a = hi;
        while a > lo && n < SMALL {
            a -= 4;
            if let Some(slot) = keys.get_mut(n) {
                *slot = self.key_at(a);
            }
            n += 1;
        }
        let keys = keys.get(..n).unwrap_or(&[]);
        for (j, &x) in keys.iter().enumerate() {
            let later = keys.get(j + 1..).unwrap_or(&[]);
            if later
                .iter()
                .any(|&y| cmp_keys(buf, x, y) == Ordering::Equal)
            {
                return true;
            }
        }
        if prefix {
            let mut at = keys.first().copied().unwrap_or(0);
            while let Some(prev) = prev_key(buf, at) {
                if keys
                    .iter()
                    .any(|&k| cmp_keys(buf, k, prev) == Ordering::Equal)
                {
                    return true;
                }
                at = prev;
            }
        }
        false
    }

    /// Whether the key at `key` repeats one of the keys before it in its
    /// object (walked backwards in the message).
    fn repeats_earlier(&self, key: usize) -> bool {
        let buf = self.buf.as_ref();
        let mut at = key;
        while let Some(prev) = prev_key(buf, at) {
            if cmp_keys(buf, prev, key) == Ordering::Equal {
                return true;
            }
            at = prev;
        }
        false
    }

    /// Whether the key at message offset `key` is among the sorted words of
    /// `[lo, hi)` (ascending from `hi - 4` down to `lo`).
    fn find(&self, (lo, hi): (usize, usize), key: usize) -> bool {
        let buf = self.buf.as_ref();
        // Index j (0 = smallest) lives at address hi - 4 - 4j.
        let (mut a, mut b) = (0usize, (hi - lo) / 4);
        while a < b {
            let mid = a + (b - a) / 2;
            match cmp_keys(buf, self.key_at(hi - 4 - 4 * mid), key) {
                Ordering::Less => a = mid + 1,
                Ordering::Greater => b = mid,
                Ordering::Equal => return true,
            }
        }
        false
    }

    /// Sorts the words of `[lo, hi)` by key, ascending from `hi - 4` down to
    /// `lo`.
    /// Returns whether two keys are equal.
    fn sort_words(&mut self, lo: usize, hi: usize) -> bool {
        let n = (hi - lo) / 4;
        let addr = |j: usize| hi - 4 - 4 * j;
        if n <= SMALL {
            for j in 1..n {
                let x = self.word(addr(j));
                let mut m = j;
                while m > 0 {
                    let y = self.word(addr(m - 1));
                    match cmp_keys(self.buf.as_ref(), y as usize, x as usize) {
                        Ordering::Equal => return true,
                        Ordering::Less => break,
                        Ordering::Greater => {
                            self.set_word(addr(m), y);
                            m -= 1;
                        }
                    }
                }
                self.set_word(addr(m), x);
            }
            return false;
        }
        // Heapsort: no recursion, no extra memory.
        let less = |s: &Self, p: usize, q: usize| {
            cmp_keys(
                s.buf.as_ref(),
                s.word(addr(p)) as usize,
                s.word(addr(q)) as usize,
            )
        };
        let sift = |s: &mut Self, mut root: usize, end: usize| -> bool {
            loop {
                let mut child = 2 * root + 1;
                if child >= end {
                    return false;
                }
                if child + 1 < end {
                    match less(s, child, child + 1) {
                        Ordering::Less => child += 1,
                        Ordering::Equal => return true,
                        Ordering::Greater => {}
                    }
                }
                match less(s, root, child) {
                    Ordering::Less => {
                        let (r, c) = (s.word(addr(root)), s.word(addr(child)));
                        s.set_word(addr(root), c);
                        s.set_word(addr(child), r);
                        root = child;
                    }
                    Ordering::Equal => return true,
                    Ordering::Greater => return false,
                }
            }
        };
        for start in (0..n / 2).rev() {
            if sift(self, start, n) {
                return true;
            }
        }
        for end in (1..n).rev() {
            let (r, e) = (self.word(addr(0)), self.word(addr(end)));
            self.set_word(addr(0), e);
            self.set_word(addr(end), r);
            if sift(self, 0, end) {
                return true;
            }
        }
        (1..n).any(|j| less(self, j - 1, j) == Ordering::Equal)
    }

    /// A duplicate key: QEMU's error for this message.
    pub(super) fn dup_found(&mut self) {
        self.st.err = Some(SynErr {
            kind: SynKind::DuplicateKey,
            start: 0,
            end: 0,
        });
        self.st.gram = Gram::Errored;
        self.st.stack_len = 0;
        self.st.top = 0;
    }
}

/// The key (body and quote) whose opening quote is at `at`.
fn key_str(buf: &[u8], at: usize) -> JsonStr<'_> {
    let quote = buf.get(at).copied().unwrap_or(b'"');
    let end = string_end(buf, at + 1, quote).unwrap_or(at + 1);
    JsonStr::from_validated(buf.get(at + 1..end).unwrap_or(&[]), quote)
}

/// Compares two keys by their value as QEMU stores it: byte by byte while
/// neither has an escape (the common case needs no setup), else decoded.
fn cmp_keys(buf: &[u8], a: usize, b: usize) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (Some(&qa), Some(&qb)) = (buf.get(a), buf.get(b)) else {
        return a.cmp(&b);
    };
    let (mut i, mut j) = (a + 1, b + 1);
    loop {
        let (Some(&x), Some(&y)) = (buf.get(i), buf.get(j)) else {
            return a.cmp(&b);
        };
        if x == b'\\' || y == b'\\' {
            break;
        }
        match (x == qa, y == qb) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            (false, false) if x != y => return x.cmp(&y),
            _ => {}
        }
        i += 1;
        j += 1;
    }
    let (x, y) = (key_str(buf, a), key_str(buf, b));
    x.qemu_bytes().cmp(y.qemu_bytes())
}

/// The index of the closing quote of the validated string whose body
/// starts at `i`.
fn string_end(buf: &[u8], mut i: usize, quote: u8) -> Option<usize> {
    loop {
        let k = crate::find::find2(quote, b'\\', buf.get(i..)?)?;
        i += k;
        if buf.get(i) == Some(&quote) {
            return Some(i);
        }
        i += 2;
    }
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// The index just past the last non-whitespace byte before `i`.
fn back_ws(buf: &[u8], mut i: usize) -> usize {
    while i > 0 && buf.get(i - 1).copied().is_some_and(is_ws) {
        i -= 1;
    }
    i
}

/// The opening quote of the validated string whose closing quote is at
/// `close`: the nearest same quote before it that no odd run of
/// backslashes escapes (outside strings there are no backslashes).
fn string_start(buf: &[u8], close: usize) -> Option<usize> {
    let quote = *buf.get(close)?;
    let mut end = close;
    loop {
        let j = buf.get(..end)?.iter().rposition(|&b| b == quote)?;
        let mut k = j;
        while k > 0 && buf.get(k - 1) == Some(&b'\\') {
            k -= 1;
        }
        if (j - k) % 2 == 0 {
            return Some(j);
        }
        end = j;
    }
}

/// The first byte of the validated value whose last byte is at `end - 1`.
fn value_start(buf: &[u8], end: usize) -> Option<usize> {
    let last = end.checked_sub(1)?;
    match *buf.get(last)? {
        b'"' | b'\'' => string_start(buf, last),
        b'}' | b']' => {
            let mut depth = 0usize;
            let mut i = end;
            while i > 0 {
                i -= 1;
                match *buf.get(i)? {
                    b'}' | b']' => depth += 1,
                    b'{' | b'[' => {
                        depth = depth.checked_sub(1)?;
                        if depth == 0 {
                            return Some(i);
                        }
                    }
                    b'"' | b'\'' => i = string_start(buf, i)?,
                    _ => {}
                }
            }
            None
        }
        _ => {
            let mut i = last;
            while i > 0
                && buf
                    .get(i - 1)
                    .is_some_and(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
            {
                i -= 1;
            }
            Some(i)
        }
    }
}

/// The opening quote of the key of the member before the one whose key
/// opens at `key`, in the same (validated) object; `None` for the first.
fn prev_key(buf: &[u8], key: usize) -> Option<usize> {
    let i = back_ws(buf, key);
    if buf.get(i.checked_sub(1)?) != Some(&b',') {
        return None;
    }
    let i = back_ws(buf, i - 1);
    let i = back_ws(buf, value_start(buf, i)?);
    if buf.get(i.checked_sub(1)?) != Some(&b':') {
        return None;
    }
    let i = back_ws(buf, i - 1);
    string_start(buf, i.checked_sub(1)?)
}
