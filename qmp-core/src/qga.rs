//! The guest-agent (QGA) dialect, client side, sans-IO.
//!
//! `qemu-ga` sends no greeting and needs no negotiation, but its channel
//! (virtio-serial) has no connection semantics: output an earlier client did
//! not read, and input an earlier client left half-written, are normal. The
//! documented cure is the *sync* procedure, which [`QgaClient::sync`] runs:
//!
//! 1. send a raw 0xFF byte (the agent's parser drops any half-read input, and
//!    complains with an id-less error);
//! 2. send `guest-sync-delimited` with a random id (the caller supplies it);
//! 3. discard every received byte up to and including the 0xFF the agent puts
//!    in front of that command's reply (valid-looking stale replies too);
//! 4. skip id-less errors and replies that do not `return` our id;
//! 5. complete when `{"return": ID}` arrives (compared as a 64-bit integer,
//!    exactly), or resolve [`Outcome::Timeout`] at the deadline; the caller
//!    then syncs again with a new id.
//!
//! A new sync also resets the client's own framer, so half-read stale input
//! cannot merge with new replies. [`QgaClient::sync_plain`] runs the same
//! procedure with `guest-sync` (no 0xFF either way; replies are skipped until
//! the id comes back).
//!
//! Sessions start [`QgaState::Unsynced`]. Sync on connect and after every
//! timeout: a request that times out makes the session unsynced again.
//! **Commands are refused with [`QgaError::NotSynced`] unless the session is
//! synced** (no queueing: the caller syncs, waits for it, then sends). A new
//! sync abandons requests still waiting (they resolve
//! [`Outcome::Cancelled`]: their replies come before the sync reply and are
//! discarded with everything else).
//!
//! Routing while synced (`qemu-ga` runs one command at a time, in order, and
//! echoes `id` when given; this client sends integer ids 1, 2, 3, …):
//!
//! * a reply whose `id` is an integer resolves the waiting request with that
//!   id; if none waits (a late reply of a timed-out or cancelled request) it
//!   is [`QgaEvent::Unmatched`];
//! * a `return` without `id`, or any reply whose `id` is not an integer (we
//!   never send such ids), answers the oldest waiting request (lock-step);
//!   [`QgaEvent::Unmatched`] if nothing waits;
//! * an error without `id` is the agent complaining about bytes that were
//!   not a request of ours (a JSON parse error): [`QgaEvent::OrphanError`];
//! * a reply too large for the buffer resolves the oldest waiting request as
//!   [`Outcome::Oversized`];
//! * any other framing error is a [`QgaEvent::FramingError`].
//!
//! ```
//! use qmp_core::client::Outcome;
//! use qmp_core::qga::{QgaClient, QgaEvent, QgaOptions, QgaState};
//!
//! let mut buf = [0u8; 512];
//! let mut qga: QgaClient<_, 4> = QgaClient::new(&mut buf[..]);
//! let mut out = [0u8; 128];
//!
//! let sync = qga.sync(0, 1234, 5_000).unwrap();
//! let n = qga.poll_transmit(&mut out).unwrap().unwrap();
//! assert_eq!(&out[..n], b"\xff{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":1234}}");
//!
//! // Stale output, the agent's complaint about our 0xFF, then the delimited reply.
//! let input = b"{\"return\": 1234}\n{\"error\": {\"class\": \"GenericError\", \
//!     \"desc\": \"JSON parse error, stray '\\uFFFD'\"}}\n\xff{\"return\": 1234}\n";
//! let mut rest = &input[..];
//! let mut synced = false;
//! while !rest.is_empty() {
//!     rest = &rest[qga.handle_input(0, rest)..];
//!     while let Some(ev) = qga.poll_event() {
//!         if let QgaEvent::Resolved { token, outcome: Outcome::Return(v) } = ev {
//!             assert_eq!((token, v.as_u64()), (sync, Some(1234)));
//!             synced = true;
//!         }
//!     }
//! }
//! assert!(synced);
//! assert_eq!(qga.state(), QgaState::Synced);
//!
//! let (ping, n) = qga.execute_raw(0, "guest-ping", None, QgaOptions::new(), &mut out).unwrap();
//! assert_eq!(&out[..n], b"{\"execute\":\"guest-ping\",\"id\":1}");
//! // Stops right after the message (the `\n` is left for the next call).
//! assert_eq!(qga.handle_input(0, b"{\"return\": {}, \"id\": 1}\n"), 23);
//! assert!(matches!(qga.poll_event(),
//!     Some(QgaEvent::Resolved { token, outcome: Outcome::Return(_) }) if token == ping));
//! ```

use crate::InsufficientSize;
use core::fmt;

use crate::client::{Command, DecodeError, Instant, Outcome};
use crate::encode::{self, EncodeError, Ser, Style, Verbatim, WriteJson};
use crate::json::{JsonKind, JsonStr, RawJson};
use crate::message::{ErrorClass, Inbound};
use crate::scan::{Frame, FrameError, Framer, FramerConfig, Message, SyntaxError};

/// The byte `qemu-ga` puts in front of the `guest-sync-delimited` reply (and
/// the byte a client sends to flush the agent's parser).
pub const DELIMITER: u8 = 0xFF;

const SYNC_BIT: u64 = 1 << 63;
const TEXT_CAP: usize = 16;

// ---------------------------------------------------------------------------
// Public types

/// Identifies one request (a command or a sync).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Token(u64);

impl Token {
    /// For a command, the integer `id` it was sent with; for a sync, an
    /// opaque number with the top bit set (not the sync's id).
    pub const fn id(self) -> u64 {
        self.0
    }

    /// Whether this is the token of a sync.
    pub const fn is_sync(self) -> bool {
        self.0 & SYNC_BIT != 0
    }
}

/// Where the session is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum QgaState {
    /// No sync yet, or a request or sync timed out: call
    /// [`QgaClient::sync`].
    Unsynced,
    /// A sync is in progress.
    Syncing,
    /// Synced: commands may be sent.
    Synced,
    /// End of stream seen.
    Closed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
enum Deadline {
    At(Instant),
    After(u64),
}

/// How to run one command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct QgaOptions {
    deadline: Option<Deadline>,
    response: bool,
}

impl Default for QgaOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl QgaOptions {
    /// No deadline; a reply is expected.
    pub const fn new() -> Self {
        QgaOptions {
            deadline: None,
            response: true,
        }
    }

    /// Resolve as [`Outcome::Timeout`] `ms` milliseconds after `now` (the
    /// session then needs a new sync).
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

    /// The command sends no reply on success (`'success-response': 'no'`,
    /// e.g. `guest-shutdown`, `guest-suspend-*`): it is written but not
    /// registered, and no event will resolve its token. An error reply to it
    /// is [`QgaEvent::Unmatched`].
    #[must_use]
    pub const fn no_response(mut self) -> Self {
        self.response = false;
        self
    }
}

/// Why a command or sync was refused. Nothing was registered or written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum QgaError {
    /// `out` is too small; the message needs `required` bytes.
    BufferTooSmall {
        /// The exact size needed.
        required: usize,
    },
    /// The pending table (`N`) is full; poll events or wait for replies.
    TooManyInFlight,
    /// The session is not synced: run [`QgaClient::sync`] first.
    NotSynced,
    /// A sync is in progress, or its outcome has not been polled yet.
    SyncInProgress,
    /// A sync id above `i64::MAX` (`qemu-ga` takes an `int`, which is
    /// signed 64-bit).
    IdOutOfRange,
    /// The session has ended.
    Closed,
    /// The arguments could not be encoded.
    Encode(EncodeError),
}

impl fmt::Display for QgaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QgaError::BufferTooSmall { required } => {
                write!(f, "output buffer too small: {required} bytes required")
            }
            QgaError::TooManyInFlight => f.write_str("too many requests in flight"),
            QgaError::NotSynced => f.write_str("guest agent session not synced"),
            QgaError::SyncInProgress => f.write_str("a sync is already in progress"),
            QgaError::IdOutOfRange => f.write_str("sync id above i64::MAX"),
            QgaError::Closed => f.write_str("session closed"),
            QgaError::Encode(e) => write!(f, "cannot encode command: {e}"),
        }
    }
}

impl core::error::Error for QgaError {}

fn encode_error(e: EncodeError) -> QgaError {
    match e {
        EncodeError::InsufficientSize(InsufficientSize { required }) => {
            QgaError::BufferTooSmall { required }
        }
        e => QgaError::Encode(e),
    }
}

/// Something that happened, from [`QgaClient::poll_event`].
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum QgaEvent<'a> {
    /// A request or sync ended (exactly once each). A sync resolves with
    /// [`Outcome::Return`] (its id), [`Outcome::Timeout`],
    /// [`Outcome::Cancelled`] or [`Outcome::Disconnected`]; a command
    /// resolves [`Outcome::Cancelled`] when a sync abandons it.
    Resolved {
        /// The request.
        token: Token,
        /// How.
        outcome: Outcome<'a>,
    },
    /// A reply nobody is waiting for (a late reply of a timed-out or
    /// cancelled request, or an error for a command sent with
    /// [`QgaOptions::no_response`]); dropped.
    Unmatched {
        /// The reply's id.
        id: Option<RawJson<'a>>,
        /// The whole reply.
        message: RawJson<'a>,
    },
    /// An id-less error outside a sync: the agent complains about bytes that
    /// were not a request (usually a JSON parse error).
    OrphanError {
        /// The error class.
        class: ErrorClass<'a>,
        /// The description (escaped; `Display` unescapes).
        desc: JsonStr<'a>,
    },
    /// A message skipped by a sync in progress (stale output, the agent's
    /// complaint about our 0xFF, a reply with another id).
    Discarded(RawJson<'a>),
    /// A valid JSON value that is no reply; ignored.
    Unknown(RawJson<'a>),
    /// Bytes that do not frame (stale half-messages); the session continues.
    /// The 0xFF that delimits a sync reply is not reported. Token texts are
    /// truncated to 16 bytes.
    FramingError(FrameError<'a>),
}

// ---------------------------------------------------------------------------
// Typed commands

/// `guest-ping`: returns nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuestPing;

impl serde::Serialize for GuestPing {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_unit()
    }
}

impl Command for GuestPing {
    const NAME: &'static str = "guest-ping";
    const HAS_ARGUMENTS: bool = false;
    type Returns<'a> = ();
    fn decode_returns(value: RawJson<'_>) -> Result<(), DecodeError> {
        match value.kind() {
            JsonKind::Object => Ok(()),
            _ => Err(DecodeError::Type("")),
        }
    }
}

/// `guest-get-time`: the guest's time in nanoseconds since the epoch (above
/// 2^53: kept as an exact `i64`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuestGetTime;

impl serde::Serialize for GuestGetTime {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_unit()
    }
}

impl Command for GuestGetTime {
    const NAME: &'static str = "guest-get-time";
    const HAS_ARGUMENTS: bool = false;
    type Returns<'a> = i64;
    fn decode_returns(value: RawJson<'_>) -> Result<i64, DecodeError> {
        value.as_i64().ok_or(DecodeError::Type(""))
    }
}

/// `guest-info`: returns the agent's `version` (the command list is in the
/// raw value: use [`QgaClient::execute_raw`] for it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuestInfo;

impl serde::Serialize for GuestInfo {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_unit()
    }
}

impl Command for GuestInfo {
    const NAME: &'static str = "guest-info";
    const HAS_ARGUMENTS: bool = false;
    type Returns<'a> = JsonStr<'a>;
    fn decode_returns(value: RawJson<'_>) -> Result<JsonStr<'_>, DecodeError> {
        if value.kind() != JsonKind::Object {
            return Err(DecodeError::Type(""));
        }
        value
            .get("version")
            .ok_or(DecodeError::Missing("version"))?
            .as_json_str()
            .ok_or(DecodeError::Type("version"))
    }
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
enum St {
    Waiting,
    Resolved { seq: u64, outcome: Owned },
}

#[derive(Clone, Copy)]
struct Slot {
    id: u64,
    deadline: Option<Instant>,
    st: St,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Everything is discarded until the 0xFF.
    Delimiter,
    /// Replies are skipped until `{"return": ID}`.
    Reply,
}

#[derive(Clone, Copy)]
struct SyncSlot {
    token: u64,
    value: u64,
    delimited: bool,
    deadline: Instant,
    phase: Phase,
    /// Its bytes wait in `poll_transmit`.
    queued: bool,
    st: St,
}

/// What the held message is (re-classified from the framer buffer when
/// polled).
#[derive(Clone, Copy)]
enum Route {
    Resolved(Token),
    Unmatched,
    Orphan,
    Discarded,
    Unknown,
}

#[derive(Clone, Copy)]
enum HeldFrame {
    Stray,
    Keyword,
    Unicode,
    Other(FrameError<'static>),
}

#[derive(Clone, Copy)]
enum Held {
    Message(Route),
    Frame(HeldFrame),
}

struct Session<const N: usize> {
    state: QgaState,
    next_id: u64,
    next_sync: u64,
    seq: u64,
    slots: [Option<Slot>; N],
    sync: Option<SyncSlot>,
    reset_pending: bool,
    held: Option<Held>,
    held_seq: u64,
    text: [u8; TEXT_CAP],
    text_len: usize,
}

/// The guest-agent client session. `B` is the framer buffer (its length is
/// the largest reply that can be received); `N` is the number of commands
/// that may be pending (including resolutions not yet polled).
///
/// See the [module docs](self) for the sync procedure and routing.
pub struct QgaClient<B, const N: usize = 4> {
    framer: Framer<B>,
    s: Session<N>,
}

impl<B: AsRef<[u8]> + AsMut<[u8]>, const N: usize> fmt::Debug for QgaClient<B, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QgaClient")
            .field("state", &self.s.state)
            .field("in_flight", &self.in_flight())
            .finish_non_exhaustive()
    }
}

impl<B: AsRef<[u8]> + AsMut<[u8]>, const N: usize> QgaClient<B, N> {
    /// A client with QEMU's framing rules.
    pub fn new(buf: B) -> Self {
        Self::with_config(buf, FramerConfig::new())
    }

    /// A client with the given framer settings.
    pub fn with_config(buf: B, cfg: FramerConfig) -> Self {
        QgaClient {
            framer: Framer::with_config(buf, cfg),
            s: Session {
                state: QgaState::Unsynced,
                next_id: 1,
                next_sync: 1,
                seq: 0,
                slots: [None; N],
                sync: None,
                reset_pending: false,
                held: None,
                held_seq: 0,
                text: [0; TEXT_CAP],
                text_len: 0,
            },
        }
    }

    /// The session state.
    pub fn state(&self) -> QgaState {
        self.s.state
    }

    /// Commands waiting for a reply (a sync not counted).
    pub fn in_flight(&self) -> usize {
        self.s
            .slots
            .iter()
            .flatten()
            .filter(|s| matches!(s.st, St::Waiting))
            .count()
    }

    /// Whether `token` (a command or a sync) is waiting for its outcome.
    pub fn is_pending(&self, token: Token) -> bool {
        if token.is_sync() {
            return self.s.waiting_sync().is_some_and(|s| s.token == token.0);
        }
        self.s.find_waiting(token.0).is_some()
    }

    /// Whether [`QgaClient::poll_event`] has something.
    pub fn has_event(&self) -> bool {
        self.s.held.is_some() || self.s.oldest_resolved().is_some()
    }

    /// Starts a sync with `guest-sync-delimited`: a 0xFF byte then the
    /// command with `id` (the caller's random number, at most `i64::MAX`)
    /// wait in [`QgaClient::poll_transmit`]. Requests still waiting resolve
    /// [`Outcome::Cancelled`]. The sync resolves with `{"return": id}`, or
    /// [`Outcome::Timeout`] at `deadline` (sync again with a new id).
    ///
    /// # Errors
    /// [`QgaError::SyncInProgress`] (cancel it or wait for its outcome),
    /// [`QgaError::IdOutOfRange`], [`QgaError::Closed`].
    pub fn sync(&mut self, now: Instant, id: u64, deadline: Instant) -> Result<Token, QgaError> {
        self.s.start_sync(now, id, deadline, true)
    }

    /// Like [`QgaClient::sync`] with plain `guest-sync`: no 0xFF is sent or
    /// expected; replies are skipped until `{"return": id}`. It cannot flush
    /// a half-read request in the agent: prefer [`QgaClient::sync`].
    ///
    /// # Errors
    /// As [`QgaClient::sync`].
    pub fn sync_plain(
        &mut self,
        now: Instant,
        id: u64,
        deadline: Instant,
    ) -> Result<Token, QgaError> {
        self.s.start_sync(now, id, deadline, false)
    }

    /// The bytes the client wants sent (a sync's 0xFF and command), written
    /// into `out`. Call after [`QgaClient::sync`] / [`QgaClient::sync_plain`]
    /// (and whenever convenient: it returns `None` when nothing waits).
    ///
    /// # Errors
    /// [`EncodeError::InsufficientSize`] with the size needed; the bytes stay
    /// queued.
    pub fn poll_transmit(&mut self, out: &mut [u8]) -> Result<Option<usize>, EncodeError> {
        let Some(sync) = self
            .s
            .sync
            .as_mut()
            .filter(|s| s.queued && matches!(s.st, St::Waiting))
        else {
            return Ok(None);
        };
        let n = write_sync(out, sync.value, sync.delimited)?;
        sync.queued = false;
        Ok(Some(n))
    }

    /// Writes a typed command into `out` and registers it. Returns its token
    /// and the number of bytes to send (`out[..n]`).
    ///
    /// # Errors
    /// See [`QgaError`]; on error nothing is registered.
    pub fn execute<C: Command>(
        &mut self,
        now: Instant,
        command: &C,
        options: QgaOptions,
        out: &mut [u8],
    ) -> Result<(Token, usize), QgaError> {
        let args = Ser(command);
        let args = if C::HAS_ARGUMENTS {
            Some(&args as &dyn WriteJson)
        } else {
            None
        };
        self.s.submit(now, C::NAME, args, options, out)
    }

    /// Writes a command given by name and optional `arguments` (an object,
    /// copied verbatim) into `out` and registers it.
    ///
    /// # Errors
    /// See [`QgaError`]; on error nothing is registered.
    pub fn execute_raw(
        &mut self,
        now: Instant,
        name: &str,
        arguments: Option<RawJson<'_>>,
        options: QgaOptions,
        out: &mut [u8],
    ) -> Result<(Token, usize), QgaError> {
        let args = arguments.map(Verbatim);
        let args = args.as_ref().map(|a| a as &dyn WriteJson);
        self.s.submit(now, name, args, options, out)
    }

    /// Feeds bytes from the agent; returns how many were consumed.
    ///
    /// Stops early after each message (or framing error) that produced an
    /// event: call [`QgaClient::poll_event`] until `None`, then feed the
    /// rest. While an event is waiting to be polled it consumes nothing
    /// (returns 0). Deadlines up to `now` are applied first. After
    /// [`QgaClient::handle_eof`] input is discarded (reported consumed).
    pub fn handle_input(&mut self, now: Instant, input: &[u8]) -> usize {
        if self.s.held.is_some() {
            return 0;
        }
        if self.s.state == QgaState::Closed {
            return input.len();
        }
        self.s.expire(now);
        if self.s.reset_pending {
            self.framer.reset();
            self.s.reset_pending = false;
        }
        let mut consumed = 0;
        while let Some(rest) = input.get(consumed..).filter(|r| !r.is_empty()) {
            // While a delimited sync waits for its 0xFF, the raw stream is
            // searched for it: whatever state stale bytes left the framer in
            // (an open string, an oversized message), the 0xFF is seen.
            // Bytes before it are still framed, for diagnostics.
            let mut rest = rest;
            if self.s.awaiting_delimiter() {
                if let Some(k) = memchr::memchr(DELIMITER, rest) {
                    if k == 0 {
                        consumed += 1;
                        self.s.delimiter_seen();
                        self.framer.reset();
                        continue;
                    }
                    rest = rest.get(..k).unwrap_or(&[]);
                }
            }
            let fed = self.framer.feed(rest);
            consumed += fed.consumed;
            match fed.frame {
                None if fed.consumed == 0 => break,
                None => {}
                Some(Frame::Message(m)) => {
                    let route = self.s.route(m.classify());
                    self.s.hold(Held::Message(route));
                    break;
                }
                // `frame_error` records the error; it says whether an event
                // now waits (the sync delimiter is consumed silently).
                Some(Frame::Error(e)) if self.s.frame_error(e) => break,
                Some(Frame::Error(_)) => {}
            }
        }
        consumed
    }

    /// The next event. Call after [`QgaClient::handle_input`],
    /// [`QgaClient::handle_timeout`], [`QgaClient::handle_eof`],
    /// [`QgaClient::sync`] and [`QgaClient::cancel`] until it returns
    /// `None`. Events come in the order they happened.
    pub fn poll_event(&mut self) -> Option<QgaEvent<'_>> {
        if self.s.held_first() {
            let held = self.s.held.take()?;
            return Some(self.view(held));
        }
        let (token, outcome) = self.s.take_resolved()?;
        let outcome = match outcome {
            Owned::Timeout => Outcome::Timeout,
            Owned::Cancelled => Outcome::Cancelled,
            Owned::Disconnected => Outcome::Disconnected,
            Owned::Oversized(len) => Outcome::Oversized { len },
        };
        Some(QgaEvent::Resolved { token, outcome })
    }

    /// The earliest deadline of a command or sync: call
    /// [`QgaClient::handle_timeout`] then (and ask again after each
    /// `sync`, `execute`, `handle_input` or `handle_timeout`).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let cmds = self
            .s
            .slots
            .iter()
            .flatten()
            .filter(|s| matches!(s.st, St::Waiting))
            .filter_map(|s| s.deadline)
            .min();
        let sync = self.s.waiting_sync().map(|s| s.deadline);
        match (cmds, sync) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Resolves every command and sync whose deadline is at or before `now`
    /// as [`Outcome::Timeout`]; the session becomes
    /// [`QgaState::Unsynced`]. Poll events afterwards.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.s.expire(now);
    }

    /// End of stream: every waiting command and sync resolves
    /// [`Outcome::Disconnected`] and the session is [`QgaState::Closed`].
    /// Idempotent.
    pub fn handle_eof(&mut self) {
        while let Some(i) = self.s.oldest_waiting(|_| true) {
            self.s.resolve(i, Owned::Disconnected);
        }
        self.s.resolve_sync(Owned::Disconnected);
        self.s.state = QgaState::Closed;
    }

    /// Resolves a waiting command or sync as [`Outcome::Cancelled`]; returns
    /// whether it was waiting. A cancelled command's late reply is
    /// [`QgaEvent::Unmatched`]; a cancelled sync leaves the session
    /// [`QgaState::Unsynced`].
    pub fn cancel(&mut self, token: Token) -> bool {
        if token.is_sync() {
            if self.s.waiting_sync().is_some_and(|s| s.token == token.0) {
                self.s.resolve_sync(Owned::Cancelled);
                return true;
            }
            return false;
        }
        match self.s.find_waiting(token.0) {
            Some(i) => {
                self.s.resolve(i, Owned::Cancelled);
                true
            }
            None => false,
        }
    }

    fn view(&self, held: Held) -> QgaEvent<'_> {
        match held {
            Held::Message(route) => {
                let msg = Message::from_validated(self.framer.last_message());
                let raw = msg.raw();
                let inbound = msg.classify();
                match (route, inbound) {
                    (Route::Resolved(token), Inbound::Return { value, .. }) => QgaEvent::Resolved {
                        token,
                        outcome: Outcome::Return(value),
                    },
                    (Route::Resolved(token), Inbound::Error { class, desc, .. }) => {
                        QgaEvent::Resolved {
                            token,
                            outcome: Outcome::Error { class, desc },
                        }
                    }
                    (Route::Unmatched, Inbound::Return { id, .. } | Inbound::Error { id, .. }) => {
                        QgaEvent::Unmatched { id, message: raw }
                    }
                    (Route::Orphan, Inbound::Error { class, desc, .. }) => {
                        QgaEvent::OrphanError { class, desc }
                    }
                    (Route::Discarded, _) => QgaEvent::Discarded(raw),
                    _ => QgaEvent::Unknown(raw),
                }
            }
            Held::Frame(kind) => {
                let text = self.s.text.get(..self.s.text_len).unwrap_or(&[]);
                QgaEvent::FramingError(match kind {
                    HeldFrame::Stray => FrameError::Stray { token: text },
                    HeldFrame::Keyword => FrameError::Syntax(SyntaxError::InvalidKeyword(text)),
                    HeldFrame::Unicode => FrameError::Syntax(SyntaxError::InvalidUnicode(text)),
                    HeldFrame::Other(e) => e,
                })
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Session logic

/// Writes `{"id":N}` into `buf`; returns the bytes.
fn id_object(buf: &mut [u8; 32], mut n: u64) -> &[u8] {
    let mut digits = [0u8; 20];
    let mut len = 0;
    loop {
        if let Some(d) = digits.get_mut(len) {
            *d = b'0' + (n % 10) as u8;
        }
        len += 1;
        n /= 10;
        if n == 0 || len >= digits.len() {
            break;
        }
    }
    let mut at = 0;
    let mut put = |b: u8| {
        if let Some(slot) = buf.get_mut(at) {
            *slot = b;
        }
        at += 1;
    };
    b"{\"id\":".iter().for_each(|&b| put(b));
    digits.iter().take(len).rev().for_each(|&b| put(b));
    put(b'}');
    buf.get(..at).unwrap_or(b"{}")
}

/// Writes a sync request (with the 0xFF in front when `delimited`).
fn write_sync(out: &mut [u8], value: u64, delimited: bool) -> Result<usize, EncodeError> {
    let mut args = [0u8; 32];
    let args = RawJson::from_validated(id_object(&mut args, value));
    let (prefix, name) = if delimited {
        (1, "guest-sync-delimited")
    } else {
        (0, "guest-sync")
    };
    let rest = out.get_mut(prefix..).unwrap_or(&mut []);
    match encode::write_command(
        rest,
        Style::CLIENT,
        false,
        name,
        Some(&Verbatim(args)),
        None,
    ) {
        Ok(n) => {
            if delimited {
                if let Some(first) = out.first_mut() {
                    *first = DELIMITER;
                }
            }
            Ok(n + prefix)
        }
        Err(EncodeError::InsufficientSize(InsufficientSize { required })) => {
            Err(EncodeError::InsufficientSize(InsufficientSize {
                required: required + prefix,
            }))
        }
        Err(e) => Err(e),
    }
}

fn static_syntax(s: SyntaxError<'_>) -> SyntaxError<'static> {
    match s {
        SyntaxError::ExpectingValue => SyntaxError::ExpectingValue,
        SyntaxError::KeyNotString => SyntaxError::KeyNotString,
        SyntaxError::MissingColon => SyntaxError::MissingColon,
        SyntaxError::DuplicateKey => SyntaxError::DuplicateKey,
        SyntaxError::ExpectedDictSeparator => SyntaxError::ExpectedDictSeparator,
        SyntaxError::ExpectedListSeparator => SyntaxError::ExpectedListSeparator,
        SyntaxError::InvalidEscape => SyntaxError::InvalidEscape,
        SyntaxError::InvalidUtf8 => SyntaxError::InvalidUtf8,
        _ => SyntaxError::PrematureEoi,
    }
}

impl<const N: usize> Session<N> {
    fn waiting_sync(&self) -> Option<&SyncSlot> {
        self.sync.as_ref().filter(|s| matches!(s.st, St::Waiting))
    }

    fn find_waiting(&self, id: u64) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| matches!(s, Some(s) if s.id == id && matches!(s.st, St::Waiting)))
    }

    fn oldest_waiting(&self, pred: impl Fn(&Slot) -> bool) -> Option<usize> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|s| (i, s)))
            .filter(|(_, s)| matches!(s.st, St::Waiting) && pred(s))
            .min_by_key(|(_, s)| s.id)
            .map(|(i, _)| i)
    }

    /// The oldest unpolled resolution: `Some(Some(i))` a command slot,
    /// `Some(None)` the sync.
    fn oldest_resolved(&self) -> Option<(Option<usize>, u64)> {
        let cmd = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s {
                Some(Slot {
                    st: St::Resolved { seq, .. },
                    ..
                }) => Some((Some(i), *seq)),
                _ => None,
            })
            .min_by_key(|(_, seq)| *seq);
        let sync = match self.sync {
            Some(SyncSlot {
                st: St::Resolved { seq, .. },
                ..
            }) => Some((None, seq)),
            _ => None,
        };
        match (cmd, sync) {
            (Some(c), Some(s)) => Some(if c.1 < s.1 { c } else { s }),
            (c, s) => c.or(s),
        }
    }

    fn take_resolved(&mut self) -> Option<(Token, Owned)> {
        let (which, _) = self.oldest_resolved()?;
        match which {
            Some(i) => {
                let slot = self.slots.get_mut(i)?.take()?;
                match slot.st {
                    St::Resolved { outcome, .. } => Some((Token(slot.id), outcome)),
                    St::Waiting => None,
                }
            }
            None => {
                let sync = self.sync.take()?;
                match sync.st {
                    St::Resolved { outcome, .. } => Some((Token(sync.token), outcome)),
                    St::Waiting => None,
                }
            }
        }
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Resolves command slot `i` without a message; freed when polled.
    fn resolve(&mut self, i: usize, outcome: Owned) {
        let seq = self.next_seq();
        if let Some(Some(slot)) = self.slots.get_mut(i) {
            slot.st = St::Resolved { seq, outcome };
        }
    }

    /// Resolves the waiting sync without a message (the session is then
    /// unsynced).
    fn resolve_sync(&mut self, outcome: Owned) {
        if self.waiting_sync().is_none() {
            return;
        }
        let seq = self.next_seq();
        if let Some(sync) = self.sync.as_mut() {
            sync.st = St::Resolved { seq, outcome };
            sync.queued = false;
        }
        if self.state == QgaState::Syncing {
            self.state = QgaState::Unsynced;
        }
    }

    fn expire(&mut self, now: Instant) {
        while let Some(i) = self.oldest_waiting(|s| s.deadline.is_some_and(|d| d <= now)) {
            self.resolve(i, Owned::Timeout);
            if self.state == QgaState::Synced {
                self.state = QgaState::Unsynced;
            }
        }
        if self.waiting_sync().is_some_and(|s| s.deadline <= now) {
            self.resolve_sync(Owned::Timeout);
        }
    }

    fn start_sync(
        &mut self,
        now: Instant,
        value: u64,
        deadline: Instant,
        delimited: bool,
    ) -> Result<Token, QgaError> {
        if self.state == QgaState::Closed {
            return Err(QgaError::Closed);
        }
        if i64::try_from(value).is_err() {
            return Err(QgaError::IdOutOfRange);
        }
        self.expire(now);
        if self.sync.is_some() {
            return Err(QgaError::SyncInProgress);
        }
        // Replies to waiting commands come before the sync reply: discarded.
        while let Some(i) = self.oldest_waiting(|_| true) {
            self.resolve(i, Owned::Cancelled);
        }
        let token = SYNC_BIT | self.next_sync;
        self.next_sync = (self.next_sync + 1) & !SYNC_BIT;
        self.sync = Some(SyncSlot {
            token,
            value,
            delimited,
            deadline,
            phase: if delimited {
                Phase::Delimiter
            } else {
                Phase::Reply
            },
            queued: true,
            st: St::Waiting,
        });
        self.state = QgaState::Syncing;
        self.reset_pending = true;
        Ok(Token(token))
    }

    fn submit(
        &mut self,
        now: Instant,
        name: &str,
        args: Option<&dyn WriteJson>,
        opts: QgaOptions,
        out: &mut [u8],
    ) -> Result<(Token, usize), QgaError> {
        self.expire(now);
        match self.state {
            QgaState::Synced => {}
            QgaState::Closed => return Err(QgaError::Closed),
            _ => return Err(QgaError::NotSynced),
        }
        let free = if opts.response {
            Some(
                self.slots
                    .iter()
                    .position(Option::is_none)
                    .ok_or(QgaError::TooManyInFlight)?,
            )
        } else {
            None
        };
        let id = self.next_id;
        let n = encode::write_command(out, Style::CLIENT, false, name, args, Some(&id))
            .map_err(encode_error)?;
        let deadline = opts.deadline.map(|d| match d {
            Deadline::At(t) => t,
            Deadline::After(ms) => now.saturating_add(ms),
        });
        if let Some(slot) = free.and_then(|i| self.slots.get_mut(i)) {
            *slot = Some(Slot {
                id,
                deadline,
                st: St::Waiting,
            });
        }
        self.next_id = (self.next_id + 1) & !SYNC_BIT;
        Ok((Token(id), n))
    }

    /// Routes one message; returns what it is.
    fn route(&mut self, inbound: Inbound<'_>) -> Route {
        if let Some(sync) = self.sync.as_mut().filter(|s| matches!(s.st, St::Waiting)) {
            if sync.phase == Phase::Delimiter {
                return Route::Discarded;
            }
            if let Inbound::Return { value, .. } = inbound {
                if value.as_u64() == Some(sync.value) {
                    let token = Token(sync.token);
                    self.sync = None;
                    self.state = QgaState::Synced;
                    return Route::Resolved(token);
                }
            }
            return Route::Discarded;
        }
        match inbound {
            Inbound::Return { id, .. }
            | Inbound::Error {
                id: id @ Some(_), ..
            } => {
                let by_id = match id.map(|id| id.as_u64()) {
                    Some(Some(n)) => self.find_waiting(n),
                    _ => self.oldest_waiting(|_| true),
                };
                match by_id
                    .and_then(|i| self.slots.get_mut(i))
                    .and_then(Option::take)
                {
                    Some(slot) => Route::Resolved(Token(slot.id)),
                    None => Route::Unmatched,
                }
            }
            Inbound::Error { id: None, .. } => Route::Orphan,
            _ => Route::Unknown,
        }
    }

    /// Handles a framing error; returns whether an event is to be polled.
    /// A delimited sync waits for its 0xFF.
    fn awaiting_delimiter(&self) -> bool {
        self.sync.as_ref().is_some_and(|s| {
            s.delimited && s.phase == Phase::Delimiter && matches!(s.st, St::Waiting)
        })
    }

    /// The 0xFF of the waiting sync arrived.
    fn delimiter_seen(&mut self) {
        if let Some(sync) = self.sync.as_mut() {
            sync.phase = Phase::Reply;
        }
    }

    fn frame_error(&mut self, e: FrameError<'_>) -> bool {
        if let FrameError::Stray { token } = e {
            if token.last() == Some(&DELIMITER) {
                if let Some(sync) = self
                    .sync
                    .as_mut()
                    .filter(|s| s.delimited && matches!(s.st, St::Waiting))
                {
                    sync.phase = Phase::Reply;
                    return false;
                }
            }
        }
        if let FrameError::Oversized { len } = e {
            if self.waiting_sync().is_none() {
                if let Some(i) = self.oldest_waiting(|_| true) {
                    self.resolve(i, Owned::Oversized(len));
                    return true;
                }
            }
        }
        let (kind, text): (HeldFrame, &[u8]) = match e {
            FrameError::Stray { token } => (HeldFrame::Stray, token),
            FrameError::Syntax(SyntaxError::InvalidKeyword(t)) => (HeldFrame::Keyword, t),
            FrameError::Syntax(SyntaxError::InvalidUnicode(t)) => (HeldFrame::Unicode, t),
            FrameError::Syntax(s) => (HeldFrame::Other(FrameError::Syntax(static_syntax(s))), &[]),
            FrameError::DepthLimit => (HeldFrame::Other(FrameError::DepthLimit), &[]),
            FrameError::Oversized { len } => (HeldFrame::Other(FrameError::Oversized { len }), &[]),
        };
        let n = text.len().min(TEXT_CAP);
        if let (Some(dst), Some(src)) = (self.text.get_mut(..n), text.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.text_len = n;
        self.hold(Held::Frame(kind));
        true
    }

    fn hold(&mut self, held: Held) {
        self.held_seq = self.next_seq();
        self.held = Some(held);
    }

    /// Whether the held event comes before any queued resolution.
    fn held_first(&self) -> bool {
        self.held.is_some()
            && self
                .oldest_resolved()
                .is_none_or(|(_, seq)| seq > self.held_seq)
    }
}
