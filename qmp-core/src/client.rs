//! The client session: negotiation, ids, the pending table, routing,
//! deadlines and OOB, sans-IO.
//!
//! [`Client`] owns the framer buffer and a fixed table of `N` pending
//! requests. It never reads, writes, sleeps or asks for the time:
//!
//! * bytes from the server go to [`Client::handle_input`];
//! * bytes the client wants sent on its own (the automatic
//!   `qmp_capabilities`) come from [`Client::poll_transmit`];
//! * commands are written by [`Client::execute`] / [`Client::execute_raw`]
//!   into the caller's buffer, which the caller sends;
//! * everything that happened comes out of [`Client::poll_event`];
//! * time is the caller's monotonic milliseconds ([`Instant`]):
//!   [`Client::poll_timeout`] says when to call [`Client::handle_timeout`];
//! * end of stream is [`Client::handle_eof`].
//!
//! Routing rules:
//!
//! * events are accepted in every state (before the greeting, during
//!   negotiation) and are never taken as replies;
//! * replies match by `id` (the client's ids are integers 1, 2, 3, …); a reply
//!   with an unknown or foreign-shaped id is reported as
//!   [`ClientEvent::Unmatched`] and dropped;
//! * an id-less error without OOB (lock-step) answers the oldest in-band
//!   request still owed a reply; with OOB it is a
//!   [`ClientEvent::OrphanError`];
//! * a reply too large for the buffer ([`FrameError::Oversized`]) resolves
//!   the oldest owed in-band request as [`Outcome::Oversized`] when no OOB
//!   request is owed a reply, and is a [`ClientEvent::FramingError`]
//!   otherwise;
//! * a framing error is a [`ClientEvent::FramingError`]; the session goes on.
//!
//! Every request resolves exactly once: with its reply, or
//! [`Outcome::Timeout`], [`Outcome::Cancelled`], [`Outcome::Disconnected`] or
//! [`Outcome::Oversized`]. A request that timed out or was cancelled is still
//! remembered as owed a reply (so its late reply, even an oversized or id-less
//! one, is not blamed on another request) until that reply arrives.
//!
//! ```
//! use qmp_core::client::{Client, ClientEvent, ExecuteOptions, Outcome};
//! use qmp_core::client::commands::QueryStatus;
//!
//! let mut buf = [0u8; 1024];
//! let mut client: Client<_, 4> = Client::new(&mut buf[..]);
//! let mut out = [0u8; 128];
//!
//! let greeting = br#"{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": ""}, "capabilities": ["oob"]}}"#;
//! let mut input = &greeting[..];
//! while !input.is_empty() {
//!     input = &input[client.handle_input(0, input)..];
//!     while let Some(ev) = client.poll_event() {
//!         assert!(matches!(ev, ClientEvent::Greeting(_)));
//!     }
//! }
//! // The automatic negotiation.
//! let n = client.poll_transmit(&mut out).unwrap().unwrap();
//! assert_eq!(&out[..n], br#"{"execute":"qmp_capabilities","arguments":{"enable":["oob"]}}"#);
//! // Pipelined right behind it.
//! let (token, n) = client.execute(0, &QueryStatus, ExecuteOptions::new(), &mut out).unwrap();
//! assert_eq!(&out[..n], br#"{"execute":"query-status","id":1}"#);
//!
//! let replies = b"{\"return\": {}}\r\n{\"return\": {\"status\": \"running\", \"running\": true}, \"id\": 1}\r\n";
//! let mut input = &replies[..];
//! let mut running = None;
//! while !input.is_empty() {
//!     input = &input[client.handle_input(0, input)..];
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

use crate::InsufficientSize;
use core::fmt;

use serde::Serialize;

use crate::encode::{self, EncodeError, Ser, Style, Verbatim, WriteJson};
use crate::json::{JsonStr, RawJson};
use crate::message::{ErrorClass, Event, Greeting, Inbound, Timestamp};
use crate::scan::{Frame, FrameError, Framer, FramerConfig, SyntaxError};

pub mod commands;
#[cfg(feature = "embedded-io")]
pub mod driver;
pub mod events;

/// The caller's monotonic clock, in milliseconds (any epoch).
pub type Instant = u64;

// ---------------------------------------------------------------------------
// Public types

/// Identifies one request: its `id` on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Token(u64);

impl Token {
    /// The integer `id` the request was sent with.
    pub const fn id(self) -> u64 {
        self.0
    }
}

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

/// Client settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
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
    /// Automatic negotiation, OOB wanted, at most 8 in-band commands in
    /// flight with OOB (QEMU's queue length), QEMU framing rules.
    pub const fn new() -> Self {
        ClientConfig {
            negotiation: Negotiation::Auto,
            oob: true,
            max_in_band: 8,
            framer: FramerConfig::new(),
        }
    }

    /// Sets the negotiation mode.
    #[must_use]
    pub const fn with_negotiation(mut self, negotiation: Negotiation) -> Self {
        self.negotiation = negotiation;
        self
    }

    /// Whether automatic negotiation enables `oob` when offered.
    #[must_use]
    pub const fn with_oob(mut self, oob: bool) -> Self {
        self.oob = oob;
        self
    }

    /// How many in-band requests may be owed a reply while OOB is enabled
    /// (QEMU stops reading beyond 8, which would delay OOB commands).
    /// Timed-out and cancelled requests count until their reply arrives.
    #[must_use]
    pub const fn with_max_in_band(mut self, max: usize) -> Self {
        self.max_in_band = max;
        self
    }

    /// Sets the framer settings.
    #[must_use]
    pub const fn with_framer(mut self, framer: FramerConfig) -> Self {
        self.framer = framer;
        self
    }

    /// The negotiation mode.
    pub const fn negotiation(&self) -> Negotiation {
        self.negotiation
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

/// How to run one request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ExecuteOptions {
    deadline: Option<Deadline>,
    oob: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
enum Deadline {
    At(Instant),
    After(u64),
}

impl ExecuteOptions {
    /// In-band, no deadline.
    pub const fn new() -> Self {
        ExecuteOptions {
            deadline: None,
            oob: false,
        }
    }

    /// Resolve as [`Outcome::Timeout`] `ms` milliseconds after `now`.
    #[must_use]
    pub const fn timeout_ms(mut self, ms: u64) -> Self {
        self.deadline = Some(Deadline::After(ms));
        self
    }

    /// Resolve as [`Outcome::Timeout`] at the absolute instant `at`.
    #[must_use]
    pub const fn deadline(mut self, at: Instant) -> Self {
        self.deadline = Some(Deadline::At(at));
        self
    }

    /// Send with `exec-oob` (needs `oob` negotiated and a command that
    /// allows it).
    #[must_use]
    pub const fn oob(mut self, oob: bool) -> Self {
        self.oob = oob;
        self
    }
}

/// Why [`Client::execute`] refused. Nothing was registered or written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ExecuteError {
    /// `out` is too small; the message (with the queued `qmp_capabilities`
    /// in front, if any) needs `required` bytes.
    BufferTooSmall {
        /// The exact size needed.
        required: usize,
    },
    /// The pending table (`N`) is full; poll events or wait for replies.
    TooManyInFlight,
    /// OOB is enabled and the in-band limit ([`ClientConfig::with_max_in_band`])
    /// is reached.
    TooManyInBand,
    /// `exec-oob` asked for but `oob` is not negotiated.
    OobNotNegotiated,
    /// `exec-oob` asked for a typed command that does not allow it.
    OobNotAllowed,
    /// Automatic negotiation: no greeting yet.
    NotReady,
    /// The session has ended.
    Closed,
    /// The arguments could not be encoded.
    Encode(EncodeError),
}

impl fmt::Display for ExecuteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExecuteError::BufferTooSmall { required } => {
                write!(f, "output buffer too small: {required} bytes required")
            }
            ExecuteError::TooManyInFlight => f.write_str("too many requests in flight"),
            ExecuteError::TooManyInBand => f.write_str("too many in-band requests in flight"),
            ExecuteError::OobNotNegotiated => f.write_str("OOB is not negotiated"),
            ExecuteError::OobNotAllowed => f.write_str("command does not allow OOB"),
            ExecuteError::NotReady => f.write_str("no greeting received yet"),
            ExecuteError::Closed => f.write_str("session closed"),
            ExecuteError::Encode(e) => write!(f, "cannot encode command: {e}"),
        }
    }
}

impl core::error::Error for ExecuteError {}

/// How a request ended.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Outcome<'a> {
    /// `{"return": value}`.
    Return(RawJson<'a>),
    /// `{"error": {"class", "desc"}}`.
    Error {
        /// The error class.
        class: ErrorClass<'a>,
        /// The description (escaped; `Display` unescapes).
        desc: JsonStr<'a>,
    },
    /// The deadline passed first. A late reply is reported as
    /// [`ClientEvent::Unmatched`].
    Timeout,
    /// [`Client::cancel`] was called. A late reply is reported as
    /// [`ClientEvent::Unmatched`].
    Cancelled,
    /// End of stream before a reply.
    Disconnected,
    /// The reply did not fit the framer buffer; it was skipped.
    Oversized {
        /// Its size in bytes.
        len: usize,
    },
}

impl<'a> Outcome<'a> {
    /// Whether this is a `return`.
    pub fn is_return(&self) -> bool {
        matches!(self, Outcome::Return(_))
    }

    /// The `return` value of a [`Command`], decoded.
    ///
    /// # Errors
    /// Every other outcome, or a return value of the wrong shape.
    pub fn decode<C: Command>(&self) -> Result<C::Returns<'a>, CallError<'a>> {
        match *self {
            Outcome::Return(v) => C::decode_returns(v).map_err(CallError::Decode),
            Outcome::Error { class, desc } => Err(CallError::Error { class, desc }),
            Outcome::Timeout => Err(CallError::Timeout),
            Outcome::Cancelled => Err(CallError::Cancelled),
            Outcome::Disconnected => Err(CallError::Disconnected),
            Outcome::Oversized { len } => Err(CallError::Oversized { len }),
        }
    }
}

/// Why a typed call did not give its return value ([`Outcome::decode`]).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum CallError<'a> {
    /// The server answered with an error.
    Error {
        /// The error class.
        class: ErrorClass<'a>,
        /// The description.
        desc: JsonStr<'a>,
    },
    /// See [`Outcome::Timeout`].
    Timeout,
    /// See [`Outcome::Cancelled`].
    Cancelled,
    /// See [`Outcome::Disconnected`].
    Disconnected,
    /// See [`Outcome::Oversized`].
    Oversized {
        /// The reply's size.
        len: usize,
    },
    /// The return value has an unexpected shape.
    Decode(DecodeError),
}

impl fmt::Display for CallError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Error { class, desc } => write!(f, "{class}: {desc}"),
            CallError::Timeout => f.write_str("timed out"),
            CallError::Cancelled => f.write_str("cancelled"),
            CallError::Disconnected => f.write_str("disconnected"),
            CallError::Oversized { len } => write!(f, "reply too large ({len} bytes)"),
            CallError::Decode(e) => write!(f, "bad return value: {e}"),
        }
    }
}

impl core::error::Error for CallError<'_> {}

/// Why a return value or event data could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum DecodeError {
    /// A required member is missing.
    Missing(&'static str),
    /// A member (or the value itself, `""`) has the wrong type.
    Type(&'static str),
    /// serde-json-core rejected the value.
    Parse(crate::json::ParseError),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Missing(m) => write!(f, "member '{m}' is missing"),
            DecodeError::Type(m) => write!(f, "member '{m}' has the wrong type"),
            DecodeError::Parse(e) => write!(f, "{e}"),
        }
    }
}

impl core::error::Error for DecodeError {}

impl From<crate::json::ParseError> for DecodeError {
    fn from(e: crate::json::ParseError) -> Self {
        DecodeError::Parse(e)
    }
}

/// A typed command. The value itself is serialised as `arguments` (when
/// [`Command::HAS_ARGUMENTS`]); the return value is decoded from the
/// validated [`RawJson`] (strings stay borrowed and escaped as [`JsonStr`],
/// or use [`RawJson::parse`] with serde).
///
/// ```
/// use qmp_core::client::{Command, DecodeError};
/// use qmp_core::RawJson;
///
/// /// `query-kvm`
/// struct QueryKvm;
/// impl serde::Serialize for QueryKvm {
///     fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
///         s.serialize_unit()
///     }
/// }
/// impl Command for QueryKvm {
///     const NAME: &'static str = "query-kvm";
///     const HAS_ARGUMENTS: bool = false;
///     type Returns<'a> = (bool, bool);
///     fn decode_returns(v: RawJson<'_>) -> Result<(bool, bool), DecodeError> {
///         let b = |k| v.get(k).and_then(|x| x.as_bool()).ok_or(DecodeError::Missing(k));
///         Ok((b("enabled")?, b("present")?))
///     }
/// }
/// ```
pub trait Command: Serialize {
    /// The command name.
    const NAME: &'static str;
    /// Whether the command may be sent with `exec-oob`.
    const ALLOW_OOB: bool = false;
    /// Whether `arguments` is sent (false: the member is omitted).
    const HAS_ARGUMENTS: bool = true;
    /// The decoded return value.
    type Returns<'a>;
    /// Decodes the `return` value.
    ///
    /// # Errors
    /// A value of the wrong shape.
    fn decode_returns(value: RawJson<'_>) -> Result<Self::Returns<'_>, DecodeError>;
}

/// Something that happened, from [`Client::poll_event`].
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum ClientEvent<'a> {
    /// The server greeting.
    Greeting(Greeting<'a>),
    /// Automatic negotiation succeeded; `oob` says whether OOB is enabled.
    Negotiated {
        /// OOB enabled.
        oob: bool,
    },
    /// The automatic `qmp_capabilities` failed. The session stays in
    /// [`State::Negotiating`]; the caller may execute `qmp_capabilities`.
    NegotiationFailed {
        /// The error class.
        class: ErrorClass<'a>,
        /// The description.
        desc: JsonStr<'a>,
    },
    /// A request ended (exactly once per request).
    Resolved {
        /// The request.
        token: Token,
        /// How.
        outcome: Outcome<'a>,
    },
    /// An asynchronous event.
    Event(Event<'a>),
    /// A reply nobody is waiting for (unknown, foreign-shaped or absent id,
    /// or the late reply of a timed-out or cancelled request); dropped.
    Unmatched {
        /// The reply's id.
        id: Option<RawJson<'a>>,
        /// The whole reply.
        message: RawJson<'a>,
    },
    /// An id-less error with OOB enabled (or with nothing owed a reply): it
    /// cannot be attributed (usually a server-side JSON parse error).
    OrphanError {
        /// The error class.
        class: ErrorClass<'a>,
        /// The description.
        desc: JsonStr<'a>,
    },
    /// A valid JSON value that is no QMP message; ignored.
    Unknown(RawJson<'a>),
    /// The server sent bytes that do not frame (or a message too large that
    /// could not be attributed to a request); the session continues.
    /// Token texts are truncated to 16 bytes.
    FramingError(FrameError<'a>),
}

// ---------------------------------------------------------------------------
// Internal state

#[derive(Clone, Copy)]
enum Owned {
    Timeout,
    Cancelled,
    Disconnected,
    Oversized(usize),
}

#[derive(Clone, Copy)]
enum SlotState {
    Waiting,
    Resolved { seq: u64, outcome: Owned },
}

#[derive(Clone, Copy)]
struct Slot {
    id: u64,
    oob: bool,
    deadline: Option<Instant>,
    /// A manual `qmp_capabilities`: whether it enables OOB.
    caps: Option<bool>,
    st: SlotState,
}

/// A request whose outcome was given up on but whose reply is still owed.
#[derive(Clone, Copy)]
struct Owed {
    id: u64,
    oob: bool,
}

/// A span of the held message (offsets from its start).
#[derive(Clone, Copy)]
struct Span {
    off: usize,
    len: usize,
}

#[derive(Clone, Copy)]
struct StrSpan {
    span: Span,
    quote: u8,
}

#[derive(Clone, Copy)]
enum HeldStr {
    Found(StrSpan),
    Empty,
}

#[derive(Clone, Copy)]
enum HeldClass {
    Known(ErrorClass<'static>),
    Other(HeldStr),
}

#[derive(Clone, Copy)]
enum Held {
    Greeting {
        version: (u64, u64, u64),
        package: Option<HeldStr>,
        capabilities: Option<Span>,
        raw: Span,
    },
    Negotiated {
        oob: bool,
    },
    NegotiationFailed {
        class: HeldClass,
        desc: HeldStr,
    },
    Return {
        token: Token,
        value: Span,
    },
    Error {
        token: Token,
        class: HeldClass,
        desc: HeldStr,
    },
    Event {
        name: HeldStr,
        data: Option<Span>,
        timestamp: Option<Timestamp>,
    },
    Unmatched {
        id: Option<Span>,
    },
    OrphanError {
        class: HeldClass,
        desc: HeldStr,
    },
    Unknown,
    Frame(FrameKind),
}

/// A framing error with its token text copied (the framer may still be
/// recovering, so its buffer cannot be lent out).
#[derive(Clone, Copy)]
enum FrameKind {
    Stray,
    Syntax(SyntaxError<'static>),
    Keyword,
    Unicode,
    Depth,
    Oversized(usize),
}

const TEXT_CAP: usize = 16;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Caps {
    /// Nothing sent by the client itself.
    None,
    /// The automatic `qmp_capabilities` waits in `poll_transmit`.
    Queued,
    /// It was handed out; its id-less reply is expected.
    Sent,
}

/// The framer, or its buffer while a message is lent out by `poll_event`.
/// (Unequal variant sizes are fine: it is never moved around.)
#[allow(clippy::large_enum_variant)]
enum Io<B> {
    Framer(Framer<B>),
    Held(B),
    Gone,
}

/// Everything but the framer (so routing can borrow it next to a frame).
struct Session<const N: usize> {
    cfg: ClientConfig,
    state: State,
    caps: Caps,
    /// OOB requested (auto: with the queued/sent capabilities) or enabled.
    oob: bool,
    next_id: u64,
    seq: u64,
    slots: [Option<Slot>; N],
    owed: [Option<Owed>; N],
    held: Option<Held>,
    held_seq: u64,
    held_len: usize,
    text: [u8; TEXT_CAP],
    text_len: usize,
}

/// The QMP client session. `B` is the framer buffer (its length is the
/// largest message that can be received); `N` is the number of requests
/// that may be pending (including resolutions not yet polled).
pub struct Client<B, const N: usize = 8> {
    io: Io<B>,
    s: Session<N>,
}

impl<B: AsRef<[u8]> + AsMut<[u8]>, const N: usize> fmt::Debug for Client<B, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("state", &self.s.state)
            .field("oob", &self.s.oob)
            .field("in_flight", &self.in_flight())
            .finish_non_exhaustive()
    }
}

impl<B: AsRef<[u8]> + AsMut<[u8]>, const N: usize> Client<B, N> {
    /// A client with [`ClientConfig::new`].
    pub fn new(buf: B) -> Self {
        Self::with_config(buf, ClientConfig::new())
    }

    /// A client with the given settings.
    pub fn with_config(buf: B, cfg: ClientConfig) -> Self {
        Client {
            io: Io::Framer(Framer::with_config(buf, cfg.framer)),
            s: Session {
                cfg,
                state: State::AwaitingGreeting,
                caps: Caps::None,
                oob: false,
                next_id: 1,
                seq: 0,
                slots: [None; N],
                owed: [None; N],
                held: None,
                held_seq: 0,
                held_len: 0,
                text: [0; TEXT_CAP],
                text_len: 0,
            },
        }
    }

    /// The settings.
    pub fn config(&self) -> ClientConfig {
        self.s.cfg
    }

    /// The session state.
    pub fn state(&self) -> State {
        self.s.state
    }

    /// Whether `exec-oob` may be used: `oob` negotiated (or requested by a
    /// `qmp_capabilities` already sent).
    pub fn oob_enabled(&self) -> bool {
        self.s.oob
    }

    /// Requests waiting for a reply.
    pub fn in_flight(&self) -> usize {
        self.s
            .slots
            .iter()
            .flatten()
            .filter(|s| matches!(s.st, SlotState::Waiting))
            .count()
    }

    /// Whether `token` is waiting for a reply.
    pub fn is_pending(&self, token: Token) -> bool {
        self.s.find_waiting(token.0).is_some()
    }

    /// Feeds bytes from the server; returns how many were consumed.
    ///
    /// Stops early after each message (or framing error) that produced an
    /// event: call
    /// [`Client::poll_event`] until `None`, then feed the rest. While an event
    /// is waiting to be polled it consumes nothing (returns 0). Deadlines up
    /// to `now` are applied first (a reply that arrives after its deadline is
    /// [`ClientEvent::Unmatched`]). After [`Client::handle_eof`] input is
    /// discarded (all of it is reported consumed).
    pub fn handle_input(&mut self, now: Instant, input: &[u8]) -> usize {
        if self.s.held.is_some() {
            return 0;
        }
        if self.s.state == State::Closed {
            return input.len();
        }
        self.s.expire(now);
        self.restore_framer();
        let Io::Framer(framer) = &mut self.io else {
            return 0;
        };
        let mut consumed = 0;
        let mut lend = false;
        while let Some(rest) = input.get(consumed..).filter(|r| !r.is_empty()) {
            let fed = framer.feed(rest);
            consumed += fed.consumed;
            match fed.frame {
                None if fed.consumed == 0 => break,
                None => {}
                Some(Frame::Message(m)) => {
                    let held = self.s.route(m.as_bytes(), m.classify());
                    self.s.held_len = m.as_bytes().len();
                    self.s.hold(held);
                    lend = true;
                    break;
                }
                Some(Frame::Error(e)) => {
                    // Stop here too when it only resolved a request, so the
                    // caller sees that before the next message.
                    self.s.frame_error(e);
                    break;
                }
            }
        }
        if lend {
            // The message sits at the start of the buffer; the framer is
            // idle (its next feed would start afresh), so take its buffer to
            // lend the message out.
            if let Io::Framer(f) = core::mem::replace(&mut self.io, Io::Gone) {
                self.io = Io::Held(f.into_inner());
            }
        }
        consumed
    }

    fn restore_framer(&mut self) {
        if matches!(self.io, Io::Held(_)) {
            if let Io::Held(buf) = core::mem::replace(&mut self.io, Io::Gone) {
                self.io = Io::Framer(Framer::with_config(buf, self.s.cfg.framer));
            }
        }
    }

    /// The bytes the client itself wants sent (the automatic
    /// `qmp_capabilities`), written into `out`. Call after every
    /// [`Client::handle_input`] and send them before any later
    /// [`Client::execute`] output ([`Client::execute`] puts them in front of
    /// its own message if they are still queued).
    ///
    /// # Errors
    /// [`EncodeError::InsufficientSize`]; the message stays queued.
    pub fn poll_transmit(&mut self, out: &mut [u8]) -> Result<Option<usize>, EncodeError> {
        if self.s.caps != Caps::Queued {
            return Ok(None);
        }
        let n = self.s.write_caps(out)?;
        self.s.caps = Caps::Sent;
        Ok(Some(n))
    }

    /// The next event. Call after [`Client::handle_input`],
    /// [`Client::handle_timeout`], [`Client::handle_eof`] and
    /// [`Client::cancel`] until it returns `None`. Events come in the order
    /// they happened: resolutions without a message (timeout, cancel,
    /// disconnect, oversized) are queued in their slots, the event of the
    /// last message waits in the framer buffer.
    pub fn poll_event(&mut self) -> Option<ClientEvent<'_>> {
        if self.s.held_first() {
            return self.poll_held();
        }
        if let Some((token, outcome)) = self.s.take_resolved() {
            let outcome = match outcome {
                Owned::Timeout => Outcome::Timeout,
                Owned::Cancelled => Outcome::Cancelled,
                Owned::Disconnected => Outcome::Disconnected,
                Owned::Oversized(len) => Outcome::Oversized { len },
            };
            return Some(ClientEvent::Resolved { token, outcome });
        }
        None
    }

    fn poll_held(&mut self) -> Option<ClientEvent<'_>> {
        let held = self.s.held.take()?;
        let msg: &[u8] = match (&self.io, held) {
            (_, Held::Frame(_) | Held::Negotiated { .. }) => &[],
            (Io::Held(buf), _) => buf.as_ref().get(..self.s.held_len).unwrap_or(&[]),
            _ => &[],
        };
        Some(self.s.view(held, msg))
    }

    /// The earliest deadline of a pending request: call
    /// [`Client::handle_timeout`] then (and again whenever it changes, after
    /// each `execute`, `handle_input` or `handle_timeout`).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.s
            .slots
            .iter()
            .flatten()
            .filter(|s| matches!(s.st, SlotState::Waiting))
            .filter_map(|s| s.deadline)
            .min()
    }

    /// Resolves every request whose deadline is at or before `now` as
    /// [`Outcome::Timeout`] (in request order); poll events afterwards.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.s.expire(now);
    }

    /// End of stream: every pending request resolves
    /// [`Outcome::Disconnected`] (in request order) and the session is
    /// [`State::Closed`]. Idempotent.
    pub fn handle_eof(&mut self) {
        while let Some(i) = self.s.oldest_waiting(|_| true) {
            self.s.resolve(i, Owned::Disconnected);
        }
        self.s.owed = [None; N];
        self.s.state = State::Closed;
        self.s.caps = Caps::None;
        self.s.oob = false;
    }

    /// Resolves a pending request as [`Outcome::Cancelled`]; returns whether
    /// it was pending. Its reply, when it comes, is [`ClientEvent::Unmatched`].
    pub fn cancel(&mut self, token: Token) -> bool {
        match self.s.find_waiting(token.0) {
            Some(i) => {
                self.s.abandon(i, Owned::Cancelled);
                true
            }
            None => false,
        }
    }

    /// Writes a typed command into `out` and registers it. Returns its token
    /// and the number of bytes to send (`out[..n]`).
    ///
    /// # Errors
    /// See [`ExecuteError`]; on error nothing is registered.
    pub fn execute<C: Command>(
        &mut self,
        now: Instant,
        command: &C,
        options: ExecuteOptions,
        out: &mut [u8],
    ) -> Result<(Token, usize), ExecuteError> {
        if options.oob && !C::ALLOW_OOB {
            return Err(ExecuteError::OobNotAllowed);
        }
        let args = Ser(command);
        let args = if C::HAS_ARGUMENTS {
            Some(&args as &dyn WriteJson)
        } else {
            None
        };
        self.s.submit(now, C::NAME, args, options, out)
    }

    /// Writes a command given by name and optional `arguments` (an object,
    /// copied verbatim) into `out` and registers it. With
    /// [`ExecuteOptions::oob`] the caller asserts the command allows OOB.
    ///
    /// # Errors
    /// See [`ExecuteError`]; on error nothing is registered.
    pub fn execute_raw(
        &mut self,
        now: Instant,
        name: &str,
        arguments: Option<RawJson<'_>>,
        options: ExecuteOptions,
        out: &mut [u8],
    ) -> Result<(Token, usize), ExecuteError> {
        let args = arguments.map(Verbatim);
        let args = args.as_ref().map(|a| a as &dyn WriteJson);
        self.s.submit(now, name, args, options, out)
    }

    /// Whether the next [`Client::poll_event`] is the resolution of `token`
    /// (lets a driver return that event without borrowing in a loop).
    pub fn next_event_resolves(&self, token: Token) -> bool {
        if !self.s.held_first() {
            return self
                .s
                .oldest_resolved()
                .and_then(|i| self.s.slots.get(i))
                .and_then(|s| s.as_ref())
                .is_some_and(|s| s.id == token.0);
        }
        matches!(self.s.held, Some(Held::Return { token: t, .. } | Held::Error { token: t, .. }) if t == token)
    }

    /// Whether `token` is pending or its resolution is still to be polled.
    #[cfg_attr(not(feature = "embedded-io"), allow(dead_code))]
    pub(crate) fn knows(&self, token: Token) -> bool {
        self.s.slots.iter().flatten().any(|s| s.id == token.0)
            || matches!(self.s.held, Some(Held::Return { token: t, .. } | Held::Error { token: t, .. }) if t == token)
    }

    /// Whether [`Client::poll_event`] has something.
    pub fn has_event(&self) -> bool {
        self.s.held.is_some() || self.s.oldest_resolved().is_some()
    }
}

// ---------------------------------------------------------------------------
// Session logic

const CAPS_OOB: RawJson<'static> = RawJson::from_validated(b"{\"enable\":[\"oob\"]}");
const CAPS_NONE: RawJson<'static> = RawJson::from_validated(b"{}");
const EMPTY: JsonStr<'static> = JsonStr::from_validated(b"", b'"');

/// Locates `part` inside `base` (both from the same buffer).
fn locate(base: &[u8], part: &[u8]) -> Option<Span> {
    let off = (part.as_ptr() as usize).checked_sub(base.as_ptr() as usize)?;
    (off.checked_add(part.len())? <= base.len()).then_some(Span {
        off,
        len: part.len(),
    })
}

fn locate_str(base: &[u8], s: JsonStr<'_>) -> HeldStr {
    if s.raw().is_empty() && s.quote() == b'"' {
        // Possibly the EMPTY placeholder; an empty string reads the same.
        return HeldStr::Empty;
    }
    match locate(base, s.raw()) {
        Some(span) => HeldStr::Found(StrSpan {
            span,
            quote: s.quote(),
        }),
        None => HeldStr::Empty,
    }
}

fn raw_at(msg: &[u8], span: Span) -> RawJson<'_> {
    RawJson::from_validated(
        msg.get(span.off..span.off.saturating_add(span.len))
            .unwrap_or(b"null"),
    )
}

fn str_at(msg: &[u8], s: HeldStr) -> JsonStr<'_> {
    match s {
        HeldStr::Found(f) => JsonStr::from_validated(
            msg.get(f.span.off..f.span.off.saturating_add(f.span.len))
                .unwrap_or(b""),
            f.quote,
        ),
        HeldStr::Empty => EMPTY,
    }
}

fn hold_class(base: &[u8], class: ErrorClass<'_>) -> HeldClass {
    HeldClass::Known(match class {
        ErrorClass::GenericError => ErrorClass::GenericError,
        ErrorClass::CommandNotFound => ErrorClass::CommandNotFound,
        ErrorClass::DeviceNotActive => ErrorClass::DeviceNotActive,
        ErrorClass::DeviceNotFound => ErrorClass::DeviceNotFound,
        ErrorClass::KvmMissingCap => ErrorClass::KvmMissingCap,
        ErrorClass::Other(s) => return HeldClass::Other(locate_str(base, s)),
    })
}

fn class_at(msg: &[u8], class: HeldClass) -> ErrorClass<'_> {
    match class {
        HeldClass::Known(c) => c,
        HeldClass::Other(s) => ErrorClass::Other(str_at(msg, s)),
    }
}

impl<const N: usize> Session<N> {
    fn find_waiting(&self, id: u64) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| matches!(s, Some(s) if s.id == id && matches!(s.st, SlotState::Waiting)))
    }

    fn oldest_waiting(&self, pred: impl Fn(&Slot) -> bool) -> Option<usize> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|s| (i, s)))
            .filter(|(_, s)| matches!(s.st, SlotState::Waiting) && pred(s))
            .min_by_key(|(_, s)| s.id)
            .map(|(i, _)| i)
    }

    fn oldest_resolved(&self) -> Option<usize> {
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
            .map(|(i, _)| i)
    }

    fn take_resolved(&mut self) -> Option<(Token, Owned)> {
        let i = self.oldest_resolved()?;
        let slot = self.slots.get_mut(i)?.take()?;
        match slot.st {
            SlotState::Resolved { outcome, .. } => Some((Token(slot.id), outcome)),
            SlotState::Waiting => None,
        }
    }

    /// Resolves slot `i` with an outcome that has no message; the slot is
    /// freed when the event is polled.
    fn resolve(&mut self, i: usize, outcome: Owned) {
        self.seq += 1;
        let seq = self.seq;
        if let Some(Some(slot)) = self.slots.get_mut(i) {
            slot.st = SlotState::Resolved { seq, outcome };
        }
    }

    /// Resolves slot `i` without its reply; the reply stays owed.
    fn abandon(&mut self, i: usize, outcome: Owned) {
        if let Some(Some(slot)) = self.slots.get(i) {
            let owed = Owed {
                id: slot.id,
                oob: slot.oob,
            };
            if slot.caps.is_some() {
                // A manual qmp_capabilities we no longer track: assume it
                // fails unless the server proves otherwise.
                self.oob = false;
            }
            self.push_owed(owed);
        }
        self.resolve(i, outcome);
    }

    fn push_owed(&mut self, owed: Owed) {
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
            *o = Some(owed);
        }
    }

    fn expire(&mut self, now: Instant) {
        while let Some(i) = self.oldest_waiting(|s| s.deadline.is_some_and(|d| d <= now)) {
            self.abandon(i, Owned::Timeout);
        }
    }

    /// Forgets owed in-band replies older than `id` (in-band replies come in
    /// order, so they will never come).
    fn settle_in_band_before(&mut self, id: u64) {
        for o in self.owed.iter_mut() {
            if matches!(o, Some(x) if !x.oob && x.id < id) {
                *o = None;
            }
        }
    }

    fn owed_oob(&self) -> bool {
        self.owed.iter().flatten().any(|o| o.oob)
            || self
                .slots
                .iter()
                .flatten()
                .any(|s| s.oob && matches!(s.st, SlotState::Waiting))
    }

    fn in_band_owed(&self) -> usize {
        self.owed.iter().flatten().filter(|o| !o.oob).count()
            + self
                .slots
                .iter()
                .flatten()
                .filter(|s| !s.oob && matches!(s.st, SlotState::Waiting))
                .count()
    }

    /// The oldest in-band request owed a reply: `Ok(slot)` if waiting,
    /// `Err(Some(owed index))` if abandoned, `Err(None)` if none.
    fn oldest_in_band(&self) -> Result<usize, Option<usize>> {
        let waiting = self.oldest_waiting(|s| !s.oob);
        let waiting_id = waiting
            .and_then(|i| self.slots.get(i))
            .and_then(|s| s.as_ref())
            .map(|s| s.id);
        let owed = self
            .owed
            .iter()
            .enumerate()
            .filter_map(|(i, o)| o.filter(|o| !o.oob).map(|o| (i, o.id)))
            .min_by_key(|(_, id)| *id);
        match (waiting, waiting_id, owed) {
            (_, Some(w), Some((oi, o))) if o < w => Err(Some(oi)),
            (Some(i), Some(_), _) => Ok(i),
            (_, _, Some((oi, _))) => Err(Some(oi)),
            _ => Err(None),
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

    fn submit(
        &mut self,
        now: Instant,
        name: &str,
        args: Option<&dyn WriteJson>,
        opts: ExecuteOptions,
        out: &mut [u8],
    ) -> Result<(Token, usize), ExecuteError> {
        match (self.state, self.cfg.negotiation) {
            (State::Closed, _) => return Err(ExecuteError::Closed),
            (State::AwaitingGreeting, Negotiation::Auto) => return Err(ExecuteError::NotReady),
            _ => {}
        }
        if opts.oob && !self.oob {
            return Err(ExecuteError::OobNotNegotiated);
        }
        let free = self
            .slots
            .iter()
            .position(Option::is_none)
            .ok_or(ExecuteError::TooManyInFlight)?;
        if !opts.oob && self.oob && self.in_band_owed() >= self.cfg.max_in_band {
            return Err(ExecuteError::TooManyInBand);
        }
        let id = self.next_id;
        let prefix = if self.caps == Caps::Queued {
            match self.write_caps(out) {
                Ok(n) => Ok(n),
                Err(EncodeError::InsufficientSize(InsufficientSize { required })) => Err(required),
                Err(e) => return Err(ExecuteError::Encode(e)),
            }
        } else {
            Ok(0)
        };
        let start = match prefix {
            Ok(n) => n,
            Err(required) => required,
        };
        let rest = out.get_mut(start..).unwrap_or(&mut []);
        let written = encode::write_command(rest, Style::CLIENT, opts.oob, name, args, Some(&id));
        let n = match (prefix, written) {
            (Ok(p), Ok(n)) => p + n,
            (Err(p), Ok(n)) => return Err(ExecuteError::BufferTooSmall { required: p + n }),
            (_, Err(EncodeError::InsufficientSize(InsufficientSize { required }))) => {
                return Err(ExecuteError::BufferTooSmall {
                    required: start + required,
                })
            }
            (_, Err(e)) => return Err(ExecuteError::Encode(e)),
        };
        if start > 0 {
            self.caps = Caps::Sent;
        }
        let caps = (self.cfg.negotiation == Negotiation::Manual && name == "qmp_capabilities")
            .then(|| {
                let oob = out
                    .get(start..n)
                    .and_then(|b| crate::scan::validate(b, FramerConfig::new()).ok())
                    .and_then(|m| m.get("arguments"))
                    .and_then(|a| a.get("enable"))
                    .is_some_and(|e| {
                        e.elements()
                            .any(|c| c.as_json_str().is_some_and(|c| c.eq_str("oob")))
                    });
                self.oob = oob;
                oob
            });
        let deadline = opts.deadline.map(|d| match d {
            Deadline::At(t) => t,
            Deadline::After(ms) => now.saturating_add(ms),
        });
        if let Some(slot) = self.slots.get_mut(free) {
            *slot = Some(Slot {
                id,
                oob: opts.oob,
                deadline,
                caps,
                st: SlotState::Waiting,
            });
        }
        self.next_id += 1;
        Ok((Token(id), n))
    }

    /// Routes one message; returns the event to lend out.
    fn route(&mut self, msg: &[u8], inbound: Inbound<'_>) -> Held {
        let unmatched = |id: Option<RawJson<'_>>| Held::Unmatched {
            id: id.and_then(|id| locate(msg, id.as_bytes())),
        };
        match inbound {
            Inbound::Greeting(g) => {
                if self.state == State::AwaitingGreeting {
                    self.state = State::Negotiating;
                    if self.cfg.negotiation == Negotiation::Auto {
                        self.oob = self.cfg.oob && g.offers("oob");
                        self.caps = Caps::Queued;
                    }
                }
                Held::Greeting {
                    version: g.version,
                    package: g.package.map(|p| locate_str(msg, p)),
                    capabilities: g.capabilities.and_then(|c| locate(msg, c.as_bytes())),
                    raw: locate(msg, g.raw.as_bytes()).unwrap_or(Span { off: 0, len: 0 }),
                }
            }
            Inbound::Event(e) => Held::Event {
                name: locate_str(msg, e.name),
                data: e.data.and_then(|d| locate(msg, d.as_bytes())),
                timestamp: e.timestamp,
            },
            Inbound::Return { value, id: None } if self.caps == Caps::Sent => {
                self.caps = Caps::None;
                self.state = State::Ready;
                let _ = value;
                Held::Negotiated { oob: self.oob }
            }
            Inbound::Error {
                class,
                desc,
                id: None,
            } if self.caps == Caps::Sent => {
                self.caps = Caps::None;
                self.oob = false;
                Held::NegotiationFailed {
                    class: hold_class(msg, class),
                    desc: locate_str(msg, desc),
                }
            }
            Inbound::Error {
                class,
                desc,
                id: None,
            } => {
                let class = hold_class(msg, class);
                let desc = locate_str(msg, desc);
                if self.oob {
                    return Held::OrphanError { class, desc };
                }
                match self.oldest_in_band() {
                    Ok(i) => self.reply(i, |token| Held::Error { token, class, desc }),
                    Err(Some(o)) => {
                        if let Some(o) = self.owed.get_mut(o) {
                            let id = o.map_or(0, |o| o.id);
                            *o = None;
                            self.settle_in_band_before(id);
                        }
                        Held::Unmatched { id: None }
                    }
                    Err(None) => Held::OrphanError { class, desc },
                }
            }
            Inbound::Return {
                value,
                id: Some(id),
            } => {
                let value = locate(msg, value.as_bytes()).unwrap_or(Span { off: 0, len: 0 });
                self.by_id(id, |token| Held::Return { token, value })
                    .unwrap_or_else(|| unmatched(Some(id)))
            }
            Inbound::Error {
                class,
                desc,
                id: Some(id),
            } => {
                let class = hold_class(msg, class);
                let desc = locate_str(msg, desc);
                self.by_id(id, |token| Held::Error { token, class, desc })
                    .unwrap_or_else(|| unmatched(Some(id)))
            }
            Inbound::Return { id: None, .. } => unmatched(None),
            Inbound::Unknown(_) => Held::Unknown,
        }
    }

    /// Matches a reply by id: resolves the waiting request, or forgets an
    /// owed one (then `None`: unmatched).
    fn by_id(&mut self, id: RawJson<'_>, held: impl FnOnce(Token) -> Held) -> Option<Held> {
        let id = id.as_u64()?;
        if let Some(i) = self.find_waiting(id) {
            return Some(self.reply(i, held));
        }
        if let Some(o) = self
            .owed
            .iter_mut()
            .find(|o| matches!(o, Some(o) if o.id == id))
        {
            let in_band = o.is_some_and(|o| !o.oob);
            *o = None;
            if in_band {
                self.settle_in_band_before(id);
            }
        }
        None
    }

    /// Resolves waiting slot `i` with the reply being routed.
    fn reply(&mut self, i: usize, held: impl FnOnce(Token) -> Held) -> Held {
        let slot = self.slots.get_mut(i).and_then(Option::take);
        let Some(slot) = slot else {
            return Held::Unknown;
        };
        let held = held(Token(slot.id));
        if !slot.oob {
            self.settle_in_band_before(slot.id);
        }
        if let Some(oob) = slot.caps {
            match held {
                Held::Return { .. } => {
                    self.oob = oob;
                    if self.state != State::Closed {
                        self.state = State::Ready;
                    }
                }
                _ => self.oob = false,
            }
        }
        held
    }

    /// Handles a framing error: resolves a request or holds a diagnostic.
    fn frame_error(&mut self, e: FrameError<'_>) {
        let text: &[u8] = match e {
            FrameError::Stray { token } => token,
            FrameError::Syntax(SyntaxError::InvalidKeyword(t) | SyntaxError::InvalidUnicode(t)) => {
                t
            }
            _ => &[],
        };
        let n = text.len().min(TEXT_CAP);
        if let (Some(dst), Some(src)) = (self.text.get_mut(..n), text.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.text_len = n;
        let kind = match e {
            FrameError::Oversized { len } => {
                if !self.owed_oob() {
                    match self.oldest_in_band() {
                        Ok(i) => {
                            if let Some(id) =
                                self.slots.get(i).and_then(|s| s.as_ref()).map(|s| s.id)
                            {
                                self.settle_in_band_before(id);
                            }
                            self.resolve(i, Owned::Oversized(len));
                            return;
                        }
                        Err(Some(o)) => {
                            if let Some(o) = self.owed.get_mut(o) {
                                let id = o.map_or(0, |o| o.id);
                                *o = None;
                                self.settle_in_band_before(id);
                            }
                        }
                        Err(None) => {}
                    }
                }
                FrameKind::Oversized(len)
            }
            FrameError::Stray { .. } => FrameKind::Stray,
            FrameError::Syntax(SyntaxError::InvalidKeyword(_)) => FrameKind::Keyword,
            FrameError::Syntax(SyntaxError::InvalidUnicode(_)) => FrameKind::Unicode,
            FrameError::Syntax(s) => FrameKind::Syntax(match s {
                SyntaxError::ExpectingValue => SyntaxError::ExpectingValue,
                SyntaxError::KeyNotString => SyntaxError::KeyNotString,
                SyntaxError::MissingColon => SyntaxError::MissingColon,
                SyntaxError::DuplicateKey => SyntaxError::DuplicateKey,
                SyntaxError::ExpectedDictSeparator => SyntaxError::ExpectedDictSeparator,
                SyntaxError::ExpectedListSeparator => SyntaxError::ExpectedListSeparator,
                SyntaxError::InvalidEscape => SyntaxError::InvalidEscape,
                SyntaxError::InvalidUtf8 => SyntaxError::InvalidUtf8,
                _ => SyntaxError::PrematureEoi,
            }),
            FrameError::DepthLimit => FrameKind::Depth,
        };
        self.hold(Held::Frame(kind));
    }

    fn hold(&mut self, held: Held) {
        self.seq += 1;
        self.held_seq = self.seq;
        self.held = Some(held);
    }

    /// Whether the held event comes before any queued resolution.
    fn held_first(&self) -> bool {
        self.held.is_some()
            && self
                .oldest_resolved()
                .and_then(|i| self.slots.get(i))
                .and_then(|s| s.as_ref())
                .is_none_or(|s| match s.st {
                    SlotState::Resolved { seq, .. } => seq > self.held_seq,
                    SlotState::Waiting => true,
                })
    }

    /// Builds the public event for a held one; `msg` is the lent message.
    fn view<'a>(&'a self, held: Held, msg: &'a [u8]) -> ClientEvent<'a> {
        match held {
            Held::Greeting {
                version,
                package,
                capabilities,
                raw,
            } => ClientEvent::Greeting(Greeting {
                version,
                package: package.map(|p| str_at(msg, p)),
                capabilities: capabilities.map(|c| raw_at(msg, c)),
                raw: raw_at(msg, raw),
            }),
            Held::Negotiated { oob } => ClientEvent::Negotiated { oob },
            Held::NegotiationFailed { class, desc } => ClientEvent::NegotiationFailed {
                class: class_at(msg, class),
                desc: str_at(msg, desc),
            },
            Held::Return { token, value } => ClientEvent::Resolved {
                token,
                outcome: Outcome::Return(raw_at(msg, value)),
            },
            Held::Error { token, class, desc } => ClientEvent::Resolved {
                token,
                outcome: Outcome::Error {
                    class: class_at(msg, class),
                    desc: str_at(msg, desc),
                },
            },
            Held::Event {
                name,
                data,
                timestamp,
            } => ClientEvent::Event(Event {
                name: str_at(msg, name),
                data: data.map(|d| raw_at(msg, d)),
                timestamp,
            }),
            Held::Unmatched { id } => ClientEvent::Unmatched {
                id: id.map(|i| raw_at(msg, i)),
                message: RawJson::from_validated(msg),
            },
            Held::OrphanError { class, desc } => ClientEvent::OrphanError {
                class: class_at(msg, class),
                desc: str_at(msg, desc),
            },
            Held::Unknown => ClientEvent::Unknown(RawJson::from_validated(msg)),
            Held::Frame(kind) => {
                let text = self.text.get(..self.text_len).unwrap_or(&[]);
                ClientEvent::FramingError(match kind {
                    FrameKind::Stray => FrameError::Stray { token: text },
                    FrameKind::Syntax(s) => FrameError::Syntax(s),
                    FrameKind::Keyword => FrameError::Syntax(SyntaxError::InvalidKeyword(text)),
                    FrameKind::Unicode => FrameError::Syntax(SyntaxError::InvalidUnicode(text)),
                    FrameKind::Depth => FrameError::DepthLimit,
                    FrameKind::Oversized(len) => FrameError::Oversized { len },
                })
            }
        }
    }
}
