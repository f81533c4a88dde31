//! The agent's in-band queue: a byte FIFO of requests (and JSON errors)
//! waiting their turn, in the caller's queue buffer.

use super::config::ENTRY_HEADER;

/// What a queue entry holds.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryKind {
    /// A request message (validated JSON).
    Message = 0,
    /// A JSON error: the payload is its `desc` text.
    JsonError = 1,
}

/// The FIFO: entries of a 9-byte header (kind, token, length) and a body.
pub(crate) struct Queue<'b> {
    buf: &'b mut [u8],
    start: usize,
    end: usize,
    pub(crate) count: usize,
}

impl<'b> Queue<'b> {
    pub(crate) fn new(buf: &'b mut [u8]) -> Self {
        Queue {
            buf,
            start: 0,
            end: 0,
            count: 0,
        }
    }

    pub(crate) fn free(&self) -> usize {
        self.buf.len() - (self.end - self.start)
    }

    /// Appends an entry made of `pieces`; false if it does not fit.
    pub(crate) fn push(&mut self, kind: EntryKind, token: u32, pieces: &[&[u8]]) -> bool {
        let len: usize = pieces.iter().map(|p| p.len()).sum();
        let total = ENTRY_HEADER + len;
        if self.buf.len() - self.end < total {
            // Compact to the front.
            super::output::move_to_front(self.buf, self.start, self.end);
            self.end -= self.start;
            self.start = 0;
        }
        let Some(dst) = self.buf.get_mut(self.end..self.end + total) else {
            return false;
        };
        let Some((head, mut body)) = dst.split_at_mut_checked(ENTRY_HEADER) else {
            return false;
        };
        crate::bytes::copy_prefix(head, &header(kind, token, len));
        for p in pieces {
            // (`total` made room for every piece.)
            let Some((now, rest)) = body.split_at_mut_checked(p.len()) else {
                return false;
            };
            crate::bytes::copy_prefix(now, p);
            body = rest;
        }
        self.end += total;
        self.count += 1;
        true
    }

    /// The oldest entry.
    pub(crate) fn front(&self) -> Option<(EntryKind, u32, &[u8])> {
        if self.count == 0 {
            return None;
        }
        let h = self.buf.get(self.start..self.start + ENTRY_HEADER)?;
        let kind = if h.first() == Some(&0) {
            EntryKind::Message
        } else {
            EntryKind::JsonError
        };
        let token = u32::from_le_bytes([*h.get(1)?, *h.get(2)?, *h.get(3)?, *h.get(4)?]);
        let len = u32::from_le_bytes([*h.get(5)?, *h.get(6)?, *h.get(7)?, *h.get(8)?]) as usize;
        let body_start = self.start + ENTRY_HEADER;
        Some((kind, token, self.buf.get(body_start..body_start + len)?))
    }

    /// Drops the oldest entry.
    pub(crate) fn pop(&mut self) {
        if let Some((_, _, body)) = self.front() {
            let total = ENTRY_HEADER + body.len();
            self.start += total;
            self.count -= 1;
            if self.count == 0 {
                self.start = 0;
                self.end = 0;
            }
        }
    }

    pub(crate) fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
        self.count = 0;
    }
}

fn header(kind: EntryKind, token: u32, len: usize) -> [u8; ENTRY_HEADER] {
    let t = token.to_le_bytes();
    let l = (len as u32).to_le_bytes();
    [kind as u8, t[0], t[1], t[2], t[3], l[0], l[1], l[2], l[3]]
}
