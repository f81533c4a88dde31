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
    #[cfg(feature = "qga")] // used by the guest-agent client only
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
    /// The wire id of the next command: 1, 2, 3, … (never with the top bit,
    /// which marks guest-agent sync tokens).
    next_id: u64,
}

impl<B: AsRef<[u8]> + AsMut<[u8]>, const N: usize> Core<B, N> {
    pub(crate) fn new(buf: B, framer: FramerConfig) -> Self {
        Core {
            framer: Framer::with_config(buf, framer),
            table: Table::new(),
            held: None,
            closed: false,
            next_id: 1,
        }
    }

    #[cfg(feature = "qga")] // used by the guest-agent client only
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

    #[cfg(feature = "qga")] // used by the guest-agent client only
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

    #[cfg(feature = "qga")] // used by the guest-agent client only
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

    /// Writes `name` (with `args`, `exec-oob` if asked) with the next
    /// integer id into `out` after `prefix` bytes already written there, and
    /// registers it (unless no reply is awaited: then it is only owed).
    /// Returns the token and the total length.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn submit(
        &mut self,
        now: Instant,
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
        let id = self.next_id;
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
        self.next_id = (id + 1) & !super::outcome::SYNC_BIT;
        Ok((Token(id), prefix + n))
    }
}

/// What a client dialect (QMP, the guest agent) decides around the shared
/// engine: whether a command may go out, what goes in front of it, and what
/// sending it or giving a request up changes in the dialect's state.
pub(crate) trait Dialect {
    /// Whether a command may be sent now; writes what must precede it into
    /// `to.out` (QMP: the queued automatic `qmp_capabilities`) and returns
    /// its length — or the length it needs when it did not fit, then
    /// `false`.
    fn admit(&mut self, to: Admit<'_>) -> Result<(usize, bool), ExecuteError>;

    /// A command was written (`command`: its bytes) and registered as
    /// `token`, behind a prefix `admit` wrote when `prefixed`. `Some(oob)`:
    /// it is a manual `qmp_capabilities` (enabling OOB or not), which the
    /// table remembers until its reply.
    fn sent(&mut self, token: Token, command: &[u8], prefixed: bool) -> Option<bool>;

    /// A request was given up on (timed out or cancelled).
    fn forget(&mut self, slot: &Slot, ended: Ended);
}

/// What a dialect sees of a command about to be sent.
pub(crate) struct Admit<'a> {
    pub(crate) options: &'a ExecuteOptions,
    /// In-band requests owed a reply (not counted for an OOB command).
    pub(crate) in_band_owed: usize,
    pub(crate) out: &'a mut [u8],
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
        #[cfg(feature = "qga")]
        (Route::Discarded, _) => ClientEvent::Discarded(raw),
        _ => ClientEvent::Unknown(raw),
    }
}

/// The QMP and guest-agent client types and the calls they share, written
/// once for each: `$ty` is the engine's `Core` and a `$dialect`
/// ([`Dialect`], with a `state` field saying where the session is, made by
/// `$dialect::new($config)`); `$n` is the default number of slots.
macro_rules! client_calls {
    (
        $(#[$meta:meta])*
        pub struct $ty:ident(dialect: $dialect:ident, config: $config:ident, state: $state:ty, slots: $n:literal);
    ) => {
        $(#[$meta])*
        pub struct $ty<B, const N: usize = $n> {
            core: $crate::client::engine::Core<B, N>,
            dialect: $dialect,
        }

        impl<B: AsRef<[u8]> + AsMut<[u8]>, const N: usize> core::fmt::Debug for $ty<B, N> {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("state", &self.dialect.state)
                    .field("in_flight", &self.in_flight())
                    .finish_non_exhaustive()
            }
        }

        impl<B: AsRef<[u8]> + AsMut<[u8]>, const N: usize> $crate::pump::Session for $ty<B, N> {
            fn handle_input(&mut self, now: $crate::Instant, input: &[u8]) -> usize {
                $ty::handle_input(self, now, input)
            }
            fn wants_input(&self) -> bool {
                !self.has_event() && !self.core.closed
            }
            fn poll_transmit(
                &mut self,
                out: &mut [u8],
            ) -> Result<Option<usize>, $crate::InsufficientSize> {
                $ty::poll_transmit(self, out).map_err($crate::pump::encode_size)
            }
            fn poll_timeout(&self) -> Option<$crate::Instant> {
                $ty::poll_timeout(self)
            }
            fn handle_timeout(&mut self, now: $crate::Instant) {
                $ty::handle_timeout(self, now);
            }
            fn handle_eof(&mut self) {
                $ty::handle_eof(self);
            }
            fn wants_app(&self) -> bool {
                self.has_event()
            }
            fn is_idle(&self) -> bool {
                true
            }
        }

        #[cfg(any(feature = "embedded-io", feature = "embedded-io-async"))]
        impl<B: AsRef<[u8]> + AsMut<[u8]>, const N: usize> $crate::drive::ClientSession
            for $ty<B, N>
        {
            fn execute<C: $crate::client::Command>(
                &mut self,
                now: $crate::Instant,
                command: &C,
                options: $crate::client::ExecuteOptions,
                out: &mut [u8],
            ) -> Result<($crate::client::Token, usize), $crate::client::ExecuteError> {
                $ty::execute(self, now, command, options, out)
            }
            fn execute_raw(
                &mut self,
                now: $crate::Instant,
                name: &str,
                arguments: Option<$crate::RawJson<'_>>,
                options: $crate::client::ExecuteOptions,
                out: &mut [u8],
            ) -> Result<($crate::client::Token, usize), $crate::client::ExecuteError> {
                $ty::execute_raw(self, now, name, arguments, options, out)
            }
            fn poll_event(&mut self) -> Option<$crate::client::ClientEvent<'_>> {
                $ty::poll_event(self)
            }
            fn next_event_resolves(&self, token: $crate::client::Token) -> bool {
                $ty::next_event_resolves(self, token)
            }
            fn knows(&self, token: $crate::client::Token) -> bool {
                $ty::knows(self, token)
            }
        }

        impl<B: AsRef<[u8]> + AsMut<[u8]>> $ty<B> {
            #[doc = concat!("A client with [`", stringify!($config), "::new`] and room for ", stringify!($n), " pending requests.")]
            pub fn new(buf: B) -> Self {
                Self::with_config(buf, $config::new())
            }
        }

        impl<B: AsRef<[u8]> + AsMut<[u8]>, const N: usize> $ty<B, N> {
            /// A client with the given settings.
            pub fn with_config(buf: B, cfg: $config) -> Self {
                $ty {
                    core: $crate::client::engine::Core::new(buf, cfg.framer()),
                    dialect: $dialect::new(cfg),
                }
            }

            /// Where the session is.
            pub fn state(&self) -> $state {
                self.dialect.state
            }

            /// Requests waiting for a reply (a guest-agent sync not counted).
            pub fn in_flight(&self) -> usize {
                self.core
                    .table
                    .waiting(|s| s.kind != $crate::client::pending::Kind::Sync)
            }

            /// Whether `token` is waiting for its outcome.
            pub fn is_pending(&self, token: $crate::client::Token) -> bool {
                self.core.table.find_waiting(token.0).is_some()
            }

            /// Whether [`poll_event`](Self::poll_event) has something.
            pub fn has_event(&self) -> bool {
                self.core.has_event()
            }

            /// Whether the next [`poll_event`](Self::poll_event) is the
            /// resolution of `token` (lets a driver return that event
            /// without borrowing in a loop).
            pub fn next_event_resolves(&self, token: $crate::client::Token) -> bool {
                self.core.next_event_resolves(token)
            }

            /// Whether `token` is pending or its resolution is still to be
            /// polled.
            #[cfg_attr(
                not(any(feature = "embedded-io", feature = "embedded-io-async")),
                allow(dead_code)
            )]
            pub(crate) fn knows(&self, token: $crate::client::Token) -> bool {
                self.core.knows(token)
            }

            /// Resolves every request whose deadline is at or before `now`
            /// as [`Outcome::Timeout`](crate::client::Outcome::Timeout), in
            /// request order; poll events afterwards.
            pub fn handle_timeout(&mut self, now: $crate::Instant) {
                self.expire(now);
            }

            /// Writes a typed command into `out` and registers it. Returns
            /// its token and the number of bytes to send (`out[..n]`).
            ///
            /// # Errors
            /// See [`ExecuteError`](crate::client::ExecuteError); on error
            /// nothing is registered.
            pub fn execute<C: $crate::client::Command>(
                &mut self,
                now: $crate::Instant,
                command: &C,
                options: $crate::client::ExecuteOptions,
                out: &mut [u8],
            ) -> Result<($crate::client::Token, usize), $crate::client::ExecuteError> {
                if options.is_oob() && !C::ALLOW_OOB {
                    return Err($crate::client::ExecuteError::OobNotAllowed);
                }
                let args = $crate::encode::Ser(command);
                let args = if C::HAS_ARGUMENTS {
                    Some(&args as &dyn $crate::encode::WriteJson)
                } else {
                    None
                };
                self.submit(now, C::NAME, args, options, out)
            }

            /// Writes a command given by name and optional `arguments` (an
            /// object, copied verbatim) into `out` and registers it. With
            /// `exec-oob` the caller asserts the command allows it.
            ///
            /// # Errors
            /// See [`ExecuteError`](crate::client::ExecuteError); on error
            /// nothing is registered.
            pub fn execute_raw(
                &mut self,
                now: $crate::Instant,
                name: &str,
                arguments: Option<$crate::RawJson<'_>>,
                options: $crate::client::ExecuteOptions,
                out: &mut [u8],
            ) -> Result<($crate::client::Token, usize), $crate::client::ExecuteError> {
                let args = arguments.map($crate::encode::Verbatim);
                let args = args.as_ref().map(|a| a as &dyn $crate::encode::WriteJson);
                self.submit(now, name, args, options, out)
            }

            /// Resolves a pending request as
            /// [`Outcome::Cancelled`](crate::client::Outcome::Cancelled);
            /// returns whether it was pending. Its reply, when it comes, is
            /// [`ClientEvent::Unmatched`](crate::client::ClientEvent::Unmatched).
            /// Poll events afterwards.
            pub fn cancel(&mut self, token: $crate::client::Token) -> bool {
                use $crate::client::engine::Dialect as _;
                use $crate::client::pending::Ended;
                let Some(i) = self.core.table.find_waiting(token.0) else {
                    return false;
                };
                if let Some(slot) = self.core.table.abandon(i, Ended::Cancelled) {
                    self.dialect.forget(&slot, Ended::Cancelled);
                }
                true
            }

            /// The next event. Call after every `handle_*`, `execute*`,
            /// `cancel` (and guest-agent `sync*`) until it returns `None`.
            /// Events come in the order they happened.
            pub fn poll_event(&mut self) -> Option<$crate::client::ClientEvent<'_>> {
                self.core.poll_event()
            }

            /// The earliest deadline of a pending request: call
            /// [`handle_timeout`](Self::handle_timeout) then (ask again after
            /// each call that may add a deadline or resolve a request).
            pub fn poll_timeout(&self) -> Option<$crate::Instant> {
                self.core.table.next_deadline()
            }

            /// Writes and registers a command, as the dialect allows.
            fn submit(
                &mut self,
                now: $crate::Instant,
                name: &str,
                args: Option<&dyn $crate::encode::WriteJson>,
                options: $crate::client::ExecuteOptions,
                out: &mut [u8],
            ) -> Result<($crate::client::Token, usize), $crate::client::ExecuteError> {
                use $crate::client::engine::{Admit, Dialect as _};
                self.expire(now);
                let in_band_owed = match options.is_oob() {
                    true => 0,
                    false => self.core.table.in_band_owed(),
                };
                let to = Admit { options: &options, in_band_owed, out: &mut *out };
                let (prefix, prefixed) = self.dialect.admit(to)?;
                let (token, n) = self.core.submit(now, name, args, options, None, out, prefix)?;
                let command = out.get(prefix..n).unwrap_or(&[]);
                if let Some(oob) = self.dialect.sent(token, command, prefixed) {
                    self.core.table.set_caps(token.id(), oob);
                }
                Ok((token, n))
            }

            /// Applies the deadlines due by `now`.
            fn expire(&mut self, now: $crate::Instant) {
                use $crate::client::engine::Dialect as _;
                use $crate::client::pending::Ended;
                let dialect = &mut self.dialect;
                self.core
                    .table
                    .expire(now, |slot| dialect.forget(slot, Ended::Timeout));
            }
        }
    };
}
pub(crate) use client_calls;
