//! The QMP client session, sans-IO: negotiation, ids, the pending table,
//! routing, deadlines and OOB.
//!
//! The pieces shared with the guest-agent client
//! ([`QgaClient`](crate::qga::QgaClient)) live here too: [`Token`],
//! [`Outcome`], [`ClientEvent`], [`ExecuteOptions`], [`ExecuteError`], the
//! [`Command`] trait and the table and framer core both sessions run on.
//!
//! Routing rules:
//!
//! * events are accepted in every state (before the greeting, during
//!   negotiation) and are never taken as replies;
//! * replies match by `id` (the client's ids are integers 1, 2, 3, …); a
//!   reply with an unknown or foreign-shaped id is reported as
//!   [`ClientEvent::Unmatched`] and dropped;
//! * an id-less error answers the oldest in-band request still owed a
//!   reply, with or without OOB: QEMU queues JSON parse and validation
//!   errors in order with in-band requests (an id-less error when nothing
//!   in-band is owed is a [`ClientEvent::OrphanError`]);
//! * a reply too large for the buffer resolves the oldest owed in-band
//!   request as [`Outcome::Oversized`] when no OOB request is owed a reply
//!   (a [`ClientEvent::FramingError`] otherwise);
//! * a malformed message resolves the request it stands for as
//!   [`Outcome::Malformed`] when it is the reply in-band order expects (no
//!   OOB request owed a reply); otherwise it is a
//!   [`ClientEvent::FramingError`]. The session goes on either way.
//!
//! Every request resolves exactly once: with its reply, or
//! [`Outcome::Timeout`], [`Outcome::Cancelled`], [`Outcome::Disconnected`],
//! [`Outcome::Oversized`] or [`Outcome::Malformed`]. A request that timed
//! out or was cancelled is still remembered as owed a reply (so its late
//! reply, even an oversized, malformed or id-less one, is not blamed on
//! another request) until that reply arrives.
//!
//! ```
//! use qmp_core::client::{Client, ClientEvent, ExecuteOptions};
//! use qmp_core::client::commands::QueryStatus;
//! use qmp_core::Instant;
//!
//! let mut buf = [0u8; 1024];
//! let mut client = Client::new(&mut buf[..]);
//! let mut out = [0u8; 128];
//! let now = Instant::ZERO;
//!
//! let greeting = br#"{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": ""}, "capabilities": ["oob"]}}"#;
//! let mut input = &greeting[..];
//! while !input.is_empty() {
//!     input = &input[client.handle_input(now, input)..];
//!     while let Some(ev) = client.poll_event() {
//!         assert!(matches!(ev, ClientEvent::Greeting(_)));
//!     }
//! }
//! // The automatic negotiation.
//! let n = client.poll_transmit(&mut out).unwrap().unwrap();
//! assert_eq!(&out[..n], br#"{"execute":"qmp_capabilities","arguments":{"enable":["oob"]}}"#);
//! // Pipelined right behind it.
//! let (token, n) = client.execute(now, &QueryStatus, ExecuteOptions::new(), &mut out).unwrap();
//! assert_eq!(&out[..n], br#"{"execute":"query-status","id":1}"#);
//!
//! let replies = b"{\"return\": {}}\r\n{\"return\": {\"status\": \"running\", \"running\": true}, \"id\": 1}\r\n";
//! let mut input = &replies[..];
//! let mut running = None;
//! while !input.is_empty() {
//!     input = &input[client.handle_input(now, input)..];
//!     while let Some(ev) = client.poll_event() {
//!         if let ClientEvent::Resolved { token: t, outcome } = ev {
//!             assert_eq!(t, token);
//!             running = Some(outcome.decode::<QueryStatus>().unwrap().running);
//!         }
//!     }
//! }
//! assert_eq!(running, Some(true));
//! assert!(client.oob_enabled());
//! ```

use crate::encode::{self, EncodeError, Style, Verbatim};
use crate::json::RawJson;
use crate::message::Inbound;
use crate::scan::{Frame, Framer, FramerConfig};
use crate::{Instant, InsufficientSize};

mod command;
pub mod commands;
pub(crate) mod engine;
mod event;
pub mod events;
mod options;
pub(crate) mod outcome;
pub(crate) mod pending;

pub use command::Command;
pub use event::ClientEvent;
pub use options::{ExecuteError, ExecuteOptions};
pub use outcome::{CallError, DecodeError, Outcome, Token};

use engine::{Admit, Blame, Dialect, Route};
use pending::{InBand, Table};

/// Who sends `qmp_capabilities`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Negotiation {
    /// On the greeting the client queues `qmp_capabilities` (without id, like
    /// python `qemu.qmp`), enabling `oob` iff offered and wanted.
    Auto,
    /// The caller executes `qmp_capabilities` itself (any state); the session
    /// becomes [`State::Ready`] when it succeeds. Other commands may be sent
    /// in any state (the server answers them with `CommandNotFound`).
    Manual,
}

/// QMP client settings. Defaults ([`ClientConfig::new`]): automatic
/// negotiation, OOB wanted, at most 8 in-band requests owed a reply while
/// OOB is enabled, QEMU's framing rules except the duplicate-key check
/// (a liberal client: QEMU never sends duplicate keys, and the check would
/// halve the speed on large replies).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct ClientConfig {
    negotiation: Negotiation,
    oob: bool,
    max_in_band: usize,
    framer: FramerConfig,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientConfig {
    /// The defaults.
    pub const fn new() -> Self {
        ClientConfig {
            negotiation: Negotiation::Auto,
            oob: true,
            max_in_band: 8,
            framer: FramerConfig::new().without_duplicate_keys(),
        }
    }

    /// Sets the negotiation mode (default [`Negotiation::Auto`]).
    #[must_use]
    pub const fn with_negotiation(mut self, negotiation: Negotiation) -> Self {
        self.negotiation = negotiation;
        self
    }

    /// Whether automatic negotiation enables `oob` when offered (default
    /// yes).
    #[must_use]
    pub const fn with_oob(mut self, oob: bool) -> Self {
        self.oob = oob;
        self
    }

    /// How many in-band requests may be owed a reply while OOB is enabled
    /// (default 8: QEMU stops reading beyond its queue of 8, which would
    /// delay OOB commands). Timed-out and cancelled requests count until
    /// their reply arrives.
    #[must_use]
    pub const fn with_max_in_band(mut self, max: usize) -> Self {
        self.max_in_band = max;
        self
    }

    /// Sets the framer settings (default [`FramerConfig::new`] without the
    /// duplicate-key check).
    #[must_use]
    pub const fn with_framer(mut self, framer: FramerConfig) -> Self {
        self.framer = framer;
        self
    }

    /// The negotiation mode.
    pub const fn negotiation(&self) -> Negotiation {
        self.negotiation
    }

    /// Whether automatic negotiation enables `oob` when offered.
    pub const fn oob(&self) -> bool {
        self.oob
    }

    /// The in-band limit with OOB.
    pub const fn max_in_band(&self) -> usize {
        self.max_in_band
    }

    /// The framer settings.
    pub const fn framer(&self) -> FramerConfig {
        self.framer
    }
}

/// Where the session is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum State {
    /// No greeting yet.
    AwaitingGreeting,
    /// Greeting received; `qmp_capabilities` not yet answered.
    Negotiating,
    /// Negotiation done.
    Ready,
    /// End of stream seen.
    Closed,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Caps {
    /// Nothing sent by the client itself.
    None,
    /// The automatic `qmp_capabilities` waits in `poll_transmit`.
    Queued,
    /// It was handed out; its id-less reply is expected.
    Sent,
}

const CAPS_OOB: RawJson<'static> = RawJson::from_validated(b"{\"enable\":[\"oob\"]}");
const CAPS_NONE: RawJson<'static> = RawJson::from_validated(b"{}");

engine::client_calls!(
    /// The QMP client session, over `B`, its framer buffer (whose length is
    /// the largest message it can receive), with `N` slots for requests
    /// pending or resolved and not yet polled — 8 with [`Client::new`], any
    /// other with `Client::<_, 4>::with_config(buf, ClientConfig::new())`.
    ///
    /// # Method contract
    ///
    /// The client never reads, writes, sleeps or asks for the time; the caller
    /// moves bytes and passes its monotonic clock ([`Instant`]).
    ///
    /// * **Getters** (no effect): [`state`](Client::state),
    ///   [`config`](Client::config), [`oob_enabled`](Client::oob_enabled),
    ///   [`in_flight`](Client::in_flight), [`is_pending`](Client::is_pending),
    ///   [`has_event`](Client::has_event),
    ///   [`next_event_resolves`](Client::next_event_resolves).
    /// * **Input**: [`handle_input`](Client::handle_input) (bytes from the
    ///   server), [`handle_timeout`](Client::handle_timeout) (the clock reached
    ///   [`poll_timeout`](Client::poll_timeout)),
    ///   [`handle_eof`](Client::handle_eof) (end of stream).
    /// * **Commands**: [`execute`](Client::execute) /
    ///   [`execute_raw`](Client::execute_raw) write a request into the caller's
    ///   buffer, which the caller sends (after whatever
    ///   [`poll_transmit`](Client::poll_transmit) gave); [`cancel`](Client::cancel).
    /// * **Output**: [`poll_transmit`](Client::poll_transmit) (bytes the
    ///   client wants sent on its own: the automatic `qmp_capabilities`),
    ///   [`poll_event`](Client::poll_event) (what happened),
    ///   [`poll_timeout`](Client::poll_timeout) (when to call `handle_timeout`).
    ///
    /// Polling order after any `handle_*`, `execute*` or `cancel` call:
    /// 1. [`poll_event`](Client::poll_event) until `None` — **`handle_input`
    ///    takes no input while an event waits**, so it must be drained before
    ///    feeding the rest of the input;
    /// 2. [`poll_transmit`](Client::poll_transmit) until `None`, sending the
    ///    bytes before any later `execute` output;
    /// 3. [`poll_timeout`](Client::poll_timeout): call `handle_timeout` when the
    ///    clock reaches it; ask again after every `handle_*` and `execute*`
    ///    (a new deadline may be earlier).
    pub struct Client(dialect: Qmp, config: ClientConfig, state: State, slots: 8);
);

impl<B: AsRef<[u8]> + AsMut<[u8]>, const N: usize> Client<B, N> {
    // --- getters

    /// The settings.
    pub fn config(&self) -> ClientConfig {
        self.dialect.cfg
    }

    /// Whether `exec-oob` may be used: `oob` negotiated (or requested by a
    /// `qmp_capabilities` already sent).
    pub fn oob_enabled(&self) -> bool {
        self.dialect.oob
    }

    // --- input

    /// Feeds bytes from the server; returns how many were consumed.
    ///
    /// Stops right after each message (or framing error) that produced an
    /// event: call [`Client::poll_event`] until `None`, then feed the rest.
    /// While an event waits to be polled it consumes nothing (returns 0).
    /// Deadlines up to `now` are applied first (a reply that arrives after
    /// its deadline is [`ClientEvent::Unmatched`]). After
    /// [`Client::handle_eof`] input is discarded (all of it is reported
    /// consumed).
    pub fn handle_input(&mut self, now: Instant, input: &[u8]) -> usize {
        self.expire(now);
        let qmp = &mut self.dialect;
        self.core
            .feed(input, |table, framer| Some(qmp.route(table, framer)))
    }

    /// End of stream: every pending request resolves
    /// [`Outcome::Disconnected`] (in request order) and the session is
    /// [`State::Closed`]; poll events afterwards. Idempotent. A closed
    /// client stays closed: use a new one for the next connection.
    pub fn handle_eof(&mut self) {
        self.core.eof();
        self.dialect.state = State::Closed;
        self.dialect.caps = Caps::None;
        self.dialect.oob = false;
    }

    // --- commands

    // --- output

    /// The bytes the client itself wants sent (the automatic
    /// `qmp_capabilities`), written into `out`. Call after every
    /// [`Client::handle_input`] and send them before any later
    /// [`Client::execute`] output ([`Client::execute`] puts them in front of
    /// its own message if they are still queued).
    ///
    /// # Errors
    /// [`EncodeError::InsufficientSize`]; the message stays queued.
    pub fn poll_transmit(&mut self, out: &mut [u8]) -> Result<Option<usize>, EncodeError> {
        if self.dialect.caps != Caps::Queued {
            return Ok(None);
        }
        let n = self.dialect.write_caps(out)?;
        self.dialect.caps = Caps::Sent;
        Ok(Some(n))
    }
}

/// The QMP-specific state: negotiation and OOB.
struct Qmp {
    cfg: ClientConfig,
    state: State,
    caps: Caps,
    /// OOB requested (auto: with the queued/sent capabilities) or enabled.
    oob: bool,
}

impl Dialect for Qmp {
    fn admit(&mut self, to: Admit<'_>) -> Result<(usize, bool), ExecuteError> {
        match (self.state, self.cfg.negotiation) {
            (State::Closed, _) => return Err(ExecuteError::Closed),
            (State::AwaitingGreeting, Negotiation::Auto) => return Err(ExecuteError::NotReady),
            _ => {}
        }
        let oob = to.options.is_oob();
        if oob && !self.oob {
            return Err(ExecuteError::OobNotNegotiated);
        }
        if !oob && self.oob && to.in_band_owed >= self.cfg.max_in_band {
            return Err(ExecuteError::TooManyInBand);
        }
        if self.caps != Caps::Queued {
            return Ok((0, false));
        }
        // The queued automatic qmp_capabilities goes first; when it does
        // not fit, its size still counts in the size reported.
        match self.write_caps(to.out) {
            Ok(n) => Ok((n, true)),
            Err(EncodeError::InsufficientSize(InsufficientSize { required })) => {
                Ok((required, false))
            }
            Err(e) => Err(ExecuteError::Encode(e)),
        }
    }

    fn sent(&mut self, _: Token, command: &[u8], prefixed: bool) -> Option<bool> {
        if prefixed {
            self.caps = Caps::Sent;
        }
        if self.cfg.negotiation != Negotiation::Manual {
            return None;
        }
        let m = crate::scan::validate(command, FramerConfig::new()).ok()?;
        if !m.get("execute")?.as_json_str()?.eq_str("qmp_capabilities") {
            return None;
        }
        // A manual qmp_capabilities: whether it enables OOB, read back from
        // what was written.
        let oob = m
            .get("arguments")
            .and_then(|a| a.get("enable"))
            .is_some_and(|e| {
                e.elements()
                    .any(|c| c.as_json_str().is_some_and(|c| c.eq_str("oob")))
            });
        self.oob = oob;
        Some(oob)
    }

    fn forget(&mut self, slot: &pending::Slot, _: pending::Ended) {
        if slot.caps.is_some() {
            // A manual qmp_capabilities we no longer track: assume it fails
            // unless the server proves otherwise.
            self.oob = false;
        }
    }
}

impl Qmp {
    fn new(cfg: ClientConfig) -> Self {
        Qmp {
            cfg,
            state: State::AwaitingGreeting,
            caps: Caps::None,
            oob: false,
        }
    }

    fn write_caps(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let args = if self.oob { CAPS_OOB } else { CAPS_NONE };
        encode::write_command(
            out,
            Style::CLIENT,
            false,
            "qmp_capabilities",
            Some(&Verbatim(args)),
            None,
        )
    }

    /// Routes the frame the framer just produced.
    fn route<B: AsRef<[u8]> + AsMut<[u8]>, const N: usize>(
        &mut self,
        table: &mut Table<N>,
        framer: &Framer<B>,
    ) -> Route {
        match framer.last_frame() {
            Some(Frame::Message(m)) => self.route_message(table, m.classify()),
            Some(Frame::Error(e)) => self.route_error(table, engine::blame(framer, &e)),
            None => Route::Unknown,
        }
    }

    fn route_message<const N: usize>(&mut self, table: &mut Table<N>, msg: Inbound<'_>) -> Route {
        match msg {
            Inbound::Greeting(g) => {
                if self.state == State::AwaitingGreeting {
                    self.state = State::Negotiating;
                    if self.cfg.negotiation == Negotiation::Auto {
                        self.oob = self.cfg.oob && g.offers("oob");
                        self.caps = Caps::Queued;
                    }
                }
                Route::Greeting
            }
            Inbound::Event(_) => Route::Event,
            Inbound::Return { id: None, .. } if self.caps == Caps::Sent => {
                self.caps = Caps::None;
                self.state = State::Ready;
                Route::Negotiated { oob: self.oob }
            }
            Inbound::Error { id: None, .. } if self.caps == Caps::Sent => {
                self.caps = Caps::None;
                self.oob = false;
                Route::NegotiationFailed
            }
            // QEMU queues parse and validation errors in order with in-band
            // requests: an id-less error is the oldest in-band one's.
            Inbound::Error { id: None, .. } => match table.next_in_band() {
                InBand::Waiting(i) => self.replied(table, i, true),
                InBand::Owed => Route::Unmatched,
                InBand::Nothing => Route::Orphan,
            },
            Inbound::Return { id: Some(id), .. } => self.by_id(table, id, true),
            Inbound::Error { id: Some(id), .. } => self.by_id(table, id, false),
            Inbound::Return { id: None, .. } => Route::Unmatched,
            Inbound::Unknown(_) => Route::Unknown,
        }
    }

    /// A malformed message: the reply of the request its own id names, or
    /// the reply in-band order expects when it stood where a reply must be
    /// and no OOB reply could stand there instead; otherwise nobody's.
    fn route_error<const N: usize>(&mut self, table: &mut Table<N>, blame: Blame) -> Route {
        match blame {
            Blame::Id(Some(id)) => match table.find_waiting(id) {
                Some(i) => self.replied(table, i, false),
                None => {
                    table.settle_owed(id);
                    Route::Framing
                }
            },
            Blame::Reply if self.caps != Caps::Sent && !table.oob_owed() => {
                match table.next_in_band() {
                    InBand::Waiting(i) => self.replied(table, i, false),
                    InBand::Owed | InBand::Nothing => Route::Framing,
                }
            }
            _ => Route::Framing,
        }
    }

    /// Matches a reply by id: resolves the waiting request, or forgets an
    /// owed one (unmatched).
    fn by_id<const N: usize>(&mut self, table: &mut Table<N>, id: RawJson<'_>, ok: bool) -> Route {
        let Some(id) = id.as_u64() else {
            return Route::Unmatched;
        };
        match table.find_waiting(id) {
            Some(i) => self.replied(table, i, ok),
            None => {
                table.settle_owed(id);
                Route::Unmatched
            }
        }
    }

    /// Waiting slot `i` got its reply (`ok`: a `return`).
    fn replied<const N: usize>(&mut self, table: &mut Table<N>, i: usize, ok: bool) -> Route {
        let Some(slot) = table.take_replied(i) else {
            return Route::Unknown;
        };
        if let Some(oob) = slot.caps {
            if ok {
                self.oob = oob;
                if self.state != State::Closed {
                    self.state = State::Ready;
                }
            } else {
                self.oob = false;
            }
        }
        Route::Resolved(Token(slot.id))
    }
}
