//! What a rejected message looked like: [`Framer::rejected`], for a client
//! that must tell whether a bad message stood where a reply belongs.

use super::*;
use crate::json::RawJson;

/// The first top-level key of a rejected message, as far as it tells what
/// the message was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum FirstKey {
    /// `return`: a success reply.
    Return,
    /// `error`: an error reply.
    Error,
    /// `event`.
    Event,
    /// `QMP`: a greeting.
    Qmp,
    /// Any other key.
    Other,
}

/// What the message rejected by the last [`Framer::feed`] looked like,
/// from what was read of it before the error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rejected<'a> {
    /// The first top-level key, if the message was an object whose first
    /// key had been read (and stored: it lies within the buffer).
    pub first_key: Option<FirstKey>,
    /// The value of the top-level `id` member, if that member was read to
    /// its end and stored before the error: a validated value (the first
    /// `id` when there are several).
    pub id: Option<RawJson<'a>>,
}

/// Where the parts of a rejected message are in the buffer.
#[derive(Clone, Copy, Debug)]
pub(super) struct RejInfo {
    first: Option<(u32, u32, u8)>,
    id: Option<(u32, u32)>,
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> Framer<B> {
    /// For the message the last [`Framer::feed`] rejected (its frame was a
    /// [`FrameError`] of any kind), what it looked like; `None` after a feed
    /// that returned a message or nothing. Valid until the next feed, which
    /// may overwrite the buffer.
    ///
    /// A client uses it to end the call a bad reply belongs to: a rejected
    /// message whose first key was `return` or `error` stood where a reply
    /// must be, and its `id`, when it was read before the error, names the
    /// call. A lexical error outside any message (a stray `0xFF`) has
    /// neither.
    ///
    /// ```
    /// use qmp_core::scan::{FirstKey, Frame, Framer};
    ///
    /// let mut buf = [0u8; 64];
    /// let mut framer = Framer::new(&mut buf[..]);
    /// let fed = framer.feed(b"{\"return\": \"a\xff\xfeb\", \"id\": 7}");
    /// assert!(matches!(fed.frame, Some(Frame::Error(_))));
    /// let r = framer.rejected().unwrap();
    /// assert_eq!(r.first_key, Some(FirstKey::Return));
    /// assert_eq!(r.id, None); // the error came before `id`
    ///
    /// let mut framer = Framer::new(&mut buf[..]);
    /// let fed = framer.feed(b"{\"id\": 7, \"return\": \"\\ud800\"}");
    /// assert!(matches!(fed.frame, Some(Frame::Error(_))));
    /// let r = framer.rejected().unwrap();
    /// assert_eq!(r.first_key, Some(FirstKey::Other));
    /// assert_eq!(r.id.and_then(|id| id.as_i64()), Some(7));
    /// ```
    pub fn rejected(&self) -> Option<Rejected<'_>> {
        let info = self.rej?;
        let buf = self.buf.as_ref();
        let first_key = info.first.and_then(|(a, b, quote)| {
            let key = JsonStr::from_validated(buf.get(a as usize..b as usize)?, quote);
            Some(if key.eq_str("return") {
                FirstKey::Return
            } else if key.eq_str("error") {
                FirstKey::Error
            } else if key.eq_str("event") {
                FirstKey::Event
            } else if key.eq_str("QMP") {
                FirstKey::Qmp
            } else {
                FirstKey::Other
            })
        });
        let id = info
            .id
            .and_then(|(a, b)| buf.get(a as usize..b as usize))
            .map(RawJson::from_validated);
        Some(Rejected { first_key, id })
    }

    /// Keeps where the current message's first key and `id` are, for
    /// [`Framer::rejected`], before the state is reset.
    pub(super) fn note_rejected(&mut self) {
        let cap = self.buf.as_ref().len() as u64;
        let stored = |end: u32| u64::from(end) <= cap && self.keep;
        self.rej = Some(RejInfo {
            first: self.st.first.filter(|&(_, b, _)| stored(b)),
            id: self.st.id.filter(|&(_, b)| stored(b)),
        });
    }

    /// The first top-level key was read (its span is in `key_start..`).
    #[inline(always)]
    pub(super) fn note_first_key(&mut self) {
        if self.st.first.is_none() {
            self.st.first = Some((
                self.st.key_start as u32,
                self.st.key_end as u32,
                self.st.key_quote,
            ));
        }
    }

    /// A top-level member is complete: keeps the first `id`'s value.
    pub(super) fn note_id(&mut self, span: &MemberSpan) {
        if self.st.id.is_some() {
            return;
        }
        // Usually a plain key of another length: one compare.
        if span.plain && span.key_end - span.key_start != 2 {
            return;
        }
        let buf = self.buf.as_ref();
        let key = buf.get(span.key_start as usize..span.key_end as usize);
        if key.is_some_and(|k| k == b"id" || JsonStr::from_validated(k, span.quote).eq_str("id")) {
            self.st.id = Some((span.val_start, span.val_end));
        }
    }
}
