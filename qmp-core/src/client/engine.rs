//! The client engine shared by the QMP and the guest-agent clients: the
//! framer, the pending table, deadlines, and the one way a received message
//! is lent out of the framer as a [`ClientEvent`].
//!
//! A dialect (QMP in [`super::Client`], the guest agent in
//! [`crate::qga::QgaClient`]) decides only what each frame means — a
//! [`Route`] — and what to send; the core does the rest:
//!
//! * [`Core::feed`] feeds the framer until a frame the dialect routes to an
//!   event, then *holds* it: the message stays in the framer's buffer
//!   (`Framer::last_frame`) and no more input is taken until it is polled;
//! * [`Core::poll_event`] reports resolutions without a message (timeout,
//!   cancel, disconnect) and the held frame in the order they happened,
//!   building the event from the route and the lent frame.

use super::pending::{Ended, Kind, Slot, Table};
use super::{ClientEvent, ExecuteError, ExecuteOptions, Outcome, Token};
use crate::encode::{self, Style, WriteJson};
use crate::message::Inbound;
use crate::scan::{FirstKey, Frame, FrameError, Framer, FramerConfig};
use crate::Instant;

/// What a frame means, as the dialect routed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// The message (or the malformed or oversized frame) answers this
    /// request.
    Resolved(Token),
    /// QMP: the greeting.
    Greeting,
    /// QMP: the automatic negotiation succeeded.
    Negotiated { oob: bool },
    /// QMP: the automatic negotiation failed.
    NegotiationFailed,
    /// QMP: an event.
    Event,
    /// A reply for nobody.
    Unmatched,
    /// An id-less error for nobody.
    Orphan,
    /// Guest agent: skipped by a sync.
    Discarded,
    /// A valid value that is no protocol message.
    Unknown,
    /// A framing error for nobody.
    Framing,
}

/// The framer, the table, and the held frame.
pub(crate) struct Core<B, const N: usize> {
    pub(crate) framer: Framer<B>,
    pub(crate) table: Table<N>,
    /// The route of the frame held in the framer, and its number.
    held: Option<(Route, u64)>,
    /// End of stream seen: input is discarded.
    pub(crate) closed: bool,
}

impl<B: AsRef<[u8]> + AsMut<[u8]>, const N: usize> Core<B, N> {
    pub(crate) fn new(buf: B, framer: FramerConfig) -> Self {
        Core {
            framer: Framer::with_config(buf, framer),
            table: Table::new(),
            held: None,
            closed: false,
        }
    }

    /// Whether a frame waits to be polled.
    pub(crate) fn holds(&self) -> bool {
        self.held.is_some()
    }

    /// Feeds `input` to the framer until a frame is routed to an event
    /// (`route` returns `Some`; it is held) or all input is consumed.
    /// Returns the bytes consumed. Takes nothing while a frame is held;
    /// takes everything once closed.
    pub(crate) fn feed(
        &mut self,
        input: &[u8],
        mut route: impl FnMut(&mut Table<N>, &Framer<B>) -> Option<Route>,
    ) -> usize {
        if self.held.is_some() {
            return 0;
        }
        if self.closed {
            return input.len();
        }
        let mut consumed = 0;
        while let Some(rest) = input.get(consumed..).filter(|r| !r.is_empty()) {
            let fed = self.framer.feed(rest);
            consumed += fed.consumed;
            let framed = fed.frame.is_some();
            if !framed {
                if fed.consumed == 0 {
                    break;
                }
                continue;
            }
            if let Some(r) = route(&mut self.table, &self.framer) {
                let seq = self.table.next_seq();
                self.held = Some((r, seq));
                break;
            }
        }
        consumed
    }

    /// Drops a held frame without reporting it (the framer is about to be
    /// reset).
    pub(crate) fn reset_framer(&mut self) {
        self.held = None;
        self.framer.reset();
    }

    /// Whether the held frame comes before any resolution without message.
    fn held_first(&self) -> bool {
        match (self.held, self.table.oldest_resolved()) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some((_, held)), Some((_, resolved))) => held < resolved,
        }
    }

    /// The next event, in the order things happened.
    pub(crate) fn poll_event(&mut self) -> Option<ClientEvent<'_>> {
        if self.held_first() {
            let (route, _) = self.held.take()?;
            return Some(view(route, self.framer.last_frame()));
        }
        let (token, ended) = self.table.take_resolved()?;
        let outcome = match ended {
            Ended::Timeout => Outcome::Timeout,
            Ended::Cancelled => Outcome::Cancelled,
            Ended::Disconnected => Outcome::Disconnected,
        };
        Some(ClientEvent::Resolved { token, outcome })
    }

    /// Whether [`Core::poll_event`] has something.
    pub(crate) fn has_event(&self) -> bool {
        self.held.is_some() || self.table.oldest_resolved().is_some()
    }

    /// Whether the next event is the resolution of `token`.
    pub(crate) fn next_event_resolves(&self, token: Token) -> bool {
        if self.held_first() {
            return matches!(self.held, Some((Route::Resolved(t), _)) if t == token);
        }
        self.table
            .oldest_resolved()
            .and_then(|(i, _)| self.table.get(i))
            .is_some_and(|s| s.id == token.0)
    }

    /// Whether the held frame resolves a token `pred` accepts.
    pub(crate) fn held_resolves(&self, pred: impl Fn(Token) -> bool) -> bool {
        matches!(self.held, Some((Route::Resolved(t), _)) if pred(t))
    }

    /// Whether `token` is pending or its resolution is still to be polled.
    pub(crate) fn knows(&self, token: Token) -> bool {
        self.table.knows(token.0)
            || matches!(self.held, Some((Route::Resolved(t), _)) if t == token)
    }

    /// End of stream: every waiting request resolves
    /// [`Outcome::Disconnected`]; later input is discarded.
    pub(crate) fn eof(&mut self) {
        self.table.disconnect();
        self.closed = true;
    }

    /// Writes `name` (with `args`, `exec-oob` if asked) with the integer id
    /// `id` into `out` after `prefix` bytes already written there, and
    /// registers it (unless no reply is awaited: then it is only owed).
    /// Returns the token and the total length.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn submit(
        &mut self,
        now: Instant,
        id: u64,
        name: &str,
        args: Option<&dyn WriteJson>,
        opts: ExecuteOptions,
        caps: Option<bool>,
        out: &mut [u8],
        prefix: usize,
    ) -> Result<(Token, usize), ExecuteError> {
        let free = match opts.awaits_reply() {
            true => Some(self.table.free().ok_or(ExecuteError::TooManyInFlight)?),
            false => None,
        };
        let rest = out.get_mut(prefix..).unwrap_or(&mut []);
        let n = match encode::write_command(
            rest,
            Style::CLIENT,
            opts.is_oob(),
            name,
            args,
            Some(&id),
        ) {
            Ok(n) => n,
            Err(encode::EncodeError::InsufficientSize(s)) => {
                return Err(ExecuteError::InsufficientSize(crate::InsufficientSize {
                    required: prefix + s.required,
                }))
            }
            Err(e) => return Err(ExecuteError::Encode(e)),
        };
        let kind = if opts.is_oob() {
            Kind::Oob
        } else {
            Kind::InBand
        };
        match free {
            Some(i) => self
                .table
                .insert(i, Slot::new(id, kind, opts.deadline_from(now), caps)),
            None => self.table.owe(id, kind),
        }
        Ok((Token(id), prefix + n))
    }
}

/// Whom a message the framer rejected stands for.
pub(crate) enum Blame {
    /// Its own `id`, read before the error (`None`: not one of our integer
    /// ids).
    Id(Option<u64>),
    /// No id, but it stood where a reply must be: its first member is
    /// `return` or `error`, or it was too large to tell.
    Reply,
    /// An event, a greeting, or anything else: nobody's reply.
    Nobody,
}

/// What the message just rejected by `framer` stands for.
pub(crate) fn blame<B: AsRef<[u8]> + AsMut<[u8]>>(framer: &Framer<B>, e: &FrameError<'_>) -> Blame {
    let rejected = framer.rejected();
    if let Some(id) = rejected.and_then(|r| r.id) {
        return Blame::Id(id.as_u64());
    }
    match rejected.and_then(|r| r.first_key) {
        Some(FirstKey::Return | FirstKey::Error) => Blame::Reply,
        Some(_) => Blame::Nobody,
        // Its first key was never read: only a message too large to read
        // may still be a reply.
        None if matches!(e, FrameError::Oversized { .. }) => Blame::Reply,
        None => Blame::Nobody,
    }
}

/// Builds the public event for a held frame.
fn view(route: Route, frame: Option<Frame<'_>>) -> ClientEvent<'_> {
    let msg = match frame {
        Some(Frame::Message(m)) => m,
        Some(Frame::Error(e)) => {
            return match route {
                Route::Resolved(token) => ClientEvent::Resolved {
                    token,
                    outcome: match e {
                        FrameError::Oversized { len } => Outcome::Oversized { len },
                        e => Outcome::Malformed(e),
                    },
                },
                _ => ClientEvent::FramingError(e),
            }
        }
        // Not reached: every held route has its frame.
        None => return ClientEvent::Unknown(crate::RawJson::from_validated(b"null")),
    };
    let raw = msg.raw();
    match (route, msg.classify()) {
        (Route::Resolved(token), Inbound::Return { value, .. }) => ClientEvent::Resolved {
            token,
            outcome: Outcome::Return(value),
        },
        (Route::Resolved(token), Inbound::Error { class, desc, .. }) => ClientEvent::Resolved {
            token,
            outcome: Outcome::Error { class, desc },
        },
        (Route::Greeting, Inbound::Greeting(g)) => ClientEvent::Greeting(g),
        (Route::Negotiated { oob }, _) => ClientEvent::Negotiated { oob },
        (Route::NegotiationFailed, Inbound::Error { class, desc, .. }) => {
            ClientEvent::NegotiationFailed { class, desc }
        }
        (Route::Event, Inbound::Event(e)) => ClientEvent::Event(e),
        (Route::Unmatched, Inbound::Return { id, .. } | Inbound::Error { id, .. }) => {
            ClientEvent::Unmatched { id, message: raw }
        }
        (Route::Orphan, Inbound::Error { class, desc, .. }) => {
            ClientEvent::OrphanError { class, desc }
        }
        (Route::Discarded, _) => ClientEvent::Discarded(raw),
        _ => ClientEvent::Unknown(raw),
    }
}
