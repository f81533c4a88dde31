//! The agent runner: serves QMP (or the guest-agent dialect) on a Unix or
//! TCP listener with qmp-core's [`Agent`], one session per connection.
//!
//! * [`Server::bind`] takes an owned [`ServerConfig`] and a [`Handler`];
//!   [`Server::run`] accepts connections until [`StopHandle::stop`] (or a
//!   handler's [`Ctx::stop_server_after_reply`], e.g. for `quit`).
//! * Each connection gets its own thread, which reads and writes the socket
//!   itself (poll(2) on the socket and a wake-up socket pair for events and
//!   deferred completions), its own buffers, and QEMU's session rules from
//!   the core: greeting, negotiation, in-order in-band replies, OOB,
//!   backpressure.
//! * [`Handler::handle`] answers at once ([`Outcome::Reply`]), later from
//!   any thread ([`Ctx::defer`] → [`Completer`], then [`Outcome::Deferred`]),
//!   or not at all ([`Response::NoResponse`]).
//! * [`EventSender`] broadcasts an event to every connection; the core
//!   delivers it to negotiated sessions only (QEMU drops events for sessions
//!   still negotiating). An event emitted by a handler before it returns goes
//!   out before that request's reply (QEMU's order, e.g. `STOP` then
//!   `{"return": {}}`).
//!
//! # Bounds
//!
//! What a hostile or broken peer can make the runner hold is bounded; past
//! each bound the runner does one explicit, documented thing and counts it
//! ([`ServerStats`], from [`Server::stats`] or [`EventSender::stats`]; and
//! a line on stderr).
//!
//! * **Requests and replies**: at most [`ServerConfig::framer_size`] per
//!   request and [`ServerConfig::out_size`] per reply or event (1 MiB
//!   each by default); 8 queued in-band requests per session (QEMU's
//!   `QMP_REQ_QUEUE_LEN_MAX`), after which input is not read.
//! * **Writes never block**: a session whose peer does not read waits for
//!   the socket to be writable while it goes on taking its mailbox, so it
//!   can account for — and act on — what piles up. After a stop, a session
//!   writes what it still has for at most 2 s.
//! * **Events a peer does not read**: each session may have
//!   [`ServerConfig::event_backlog`] bytes of events waiting beyond its
//!   output buffer and the socket's buffers while its socket is full (1 MiB
//!   by default; an event is charged its name, data and throttle key plus
//!   [`EVENT_OVERHEAD`] bytes, about what it costs in memory), and
//!   [`BUSY_BACKLOG_FACTOR`] times as much while its socket takes output
//!   but its thread has not taken them yet (a burst faster than the thread
//!   is scheduled, or a handler running long on it). The event that would
//!   go past it **closes the session** (counted in
//!   [`ServerStats::closed_behind`]):
//!   nothing more is written (its peer does not read), and its peer reads
//!   what the socket still held, then end of stream. QEMU has no such bound
//!   — its monitor appends every reply and event to an output string that
//!   grows without limit while the chardev is not writable
//!   (`monitor_flush_locked` keeps the unwritten rest and waits for
//!   `G_IO_OUT`) — so a monitor client that stops reading makes QEMU grow
//!   (a million unread events cost our runner 207 MB before this bound,
//!   about 6 MB now). Closing rather than dropping events: QMP has no way
//!   to tell a peer that events were lost, and a client that misses, say,
//!   `BLOCK_JOB_COMPLETED` or `SHUTDOWN` waits forever or acts on stale
//!   state; a closed connection is something every client handles
//!   (reconnect, query the state again). A peer that reads, however
//!   slowly, is never closed for the replies to its own requests: those
//!   are bounded by its queue, not by the backlog.
//! * **Sessions**: at most [`ServerConfig::max_sessions`] at once (64 by
//!   default: three descriptors and one thread each, well within the
//!   common soft limit of 1024 descriptors). With the default buffers an
//!   idle session holds 50–80 KiB (its buffers are allocated zeroed, so
//!   the kernel backs their pages only once they are used), one that has
//!   taken a near-1 MiB request and filled its output about 3 MiB, plus
//!   its event backlog. A connection beyond is **refused**
//!   (counted in [`ServerStats::refused`]): it gets one line, `{"error":
//!   {"class": "GenericError", "desc": "too many sessions (at most N); try
//!   again later"}}` (the dialect's line end), and is closed at once;
//!   admitted sessions go on unaffected. An error line rather than a bare
//!   close, because end of stream alone looks like a crash or a wrong
//!   address, while the error names the cause in QMP's own vocabulary
//!   (QEMU sends id-less `GenericError`s for input it cannot attribute): a
//!   QMP client waiting for the greeting fails at once on it (ours prints
//!   it; python's `qemu.qmp` raises a greeting error). A guest-agent
//!   client that writes its sync first may find the socket closed before
//!   it reads the line (ours then reports a broken pipe); either way it
//!   ends at once, never on a timeout. What the peer sent before the close
//!   is read and dropped, so the close does not reset the connection.
//!   QEMU instead serves one client per chardev and leaves the others
//!   waiting, unanswered, in the listen backlog.
//!
//! ```no_run
//! use qmp_std::agent::{CommandDef, Outcome, Server, ServerConfig};
//! use qmp_std::{Address, Json};
//! use std::sync::Arc;
//!
//! let cfg = ServerConfig::qmp((10, 0, 0), "", vec![CommandDef::new("query-name")]);
//! let handler = Arc::new(|_: &mut qmp_std::agent::Ctx<'_>, _: &qmp_std::agent::Request<'_>| {
//!     Outcome::ret(Json::empty_object())
//! });
//! let server = Server::bind(&Address::unix("/tmp/qmp.sock"), cfg, handler).unwrap();
//! server.run().unwrap();
//! ```

use crate::addr::{Address, Stream};
use crate::buf::Buf;
use crate::json::Json;
use qmp_core::agent::{
    Agent, AgentBuffers, AgentConfig, CommandSpec, CompleteError, EmitError,
    EventOut as CoreEventOut, Reply as CoreReply, ReplyToken, Throttle,
};
use qmp_core::encode::Style;
use qmp_core::json::RawJson;
use qmp_core::message::Exec;
use qmp_core::pump::Pump;
use qmp_core::Instant as Clock;
use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::AsFd;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Default framer buffer (the largest request): 1 MiB.
pub const DEFAULT_FRAMER_SIZE: usize = 1 << 20;
/// Default output buffer (the largest single reply or event): 1 MiB.
pub const DEFAULT_OUT_SIZE: usize = 1 << 20;
/// Extra queue room beyond [`AgentBuffers::queue_required`], so requests can
/// still be read (an `exec-oob` among them) while an in-band one runs.
pub const QUEUE_SLACK: usize = 64 << 10;
/// Throttle storage per throttled-event slot.
const THROTTLE_SLOT_SIZE: usize = 16 << 10;
/// Bytes read from the socket at a time.
pub(crate) const READ_CHUNK: usize = 64 << 10;
/// Default [`ServerConfig::max_sessions`]: 64 sessions at once.
pub const DEFAULT_MAX_SESSIONS: usize = 64;
/// Default [`ServerConfig::event_backlog`]: 1 MiB of events per session.
pub const DEFAULT_EVENT_BACKLOG: usize = 1 << 20;
/// What one event waiting for a session is charged against
/// [`ServerConfig::event_backlog`] besides its name, data and key: about
/// what it costs in memory (the shared event, its place in the mailbox
/// and in the session's queue).
pub const EVENT_OVERHEAD: usize = 128;

// ---------------------------------------------------------------------------
// Configuration

/// A command the server serves (owned form of qmp-core's [`CommandSpec`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandDef {
    /// The command name.
    pub name: String,
    /// Whether `exec-oob` may run it.
    pub allow_oob: bool,
    /// Whether success sends a reply (QGA's `success-response`).
    pub success_response: bool,
}

impl CommandDef {
    /// An in-band command that replies on success.
    pub fn new(name: impl Into<String>) -> Self {
        CommandDef {
            name: name.into(),
            allow_oob: false,
            success_response: true,
        }
    }

    /// Allows `exec-oob`.
    #[must_use]
    pub fn oob(mut self) -> Self {
        self.allow_oob = true;
        self
    }

    /// No reply on success (QGA's `'success-response': false`).
    #[must_use]
    pub fn no_success_response(mut self) -> Self {
        self.success_response = false;
        self
    }
}

/// Server settings (owned form of qmp-core's [`AgentConfig`], plus buffer
/// sizes and the runner's bounds). Build with [`ServerConfig::qmp`] or
/// [`ServerConfig::qga`], then set fields or use the builder methods.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Greeting version `(major, minor, micro)` (QMP).
    pub version: (u64, u64, u64),
    /// Greeting `package` (QMP).
    pub package: String,
    /// Whether `oob` is offered (QMP).
    pub offer_oob: bool,
    /// Pretty output (QEMU's `pretty=on`).
    pub pretty: bool,
    /// The guest-agent dialect instead of QMP.
    pub qga: bool,
    /// Commands served besides `qmp_capabilities`; `query-commands` (and,
    /// for QGA, `guest-sync`/`guest-sync-delimited`) listed here are
    /// answered by the core.
    pub commands: Vec<CommandDef>,
    /// Throttled events: `(name, window_ms)` (at most 4 in a window at once).
    pub throttle: Vec<(String, u64)>,
    /// Framer buffer size: the largest request accepted.
    pub framer_size: usize,
    /// Queue buffer size; `None`: [`AgentBuffers::queue_required`] of the
    /// framer size plus [`QUEUE_SLACK`]. Raised to the required minimum.
    pub queue_size: Option<usize>,
    /// Output buffer size: the largest single reply or event.
    pub out_size: usize,
    /// Sessions served at once (default [`DEFAULT_MAX_SESSIONS`]); a
    /// connection beyond is refused: one error line, then closed (see the
    /// [module docs](self#bounds)). At least 1.
    pub max_sessions: usize,
    /// Bytes of events a session may have waiting beyond its output buffer
    /// while its socket is full (default [`DEFAULT_EVENT_BACKLOG`]; while
    /// the socket takes output, [`BUSY_BACKLOG_FACTOR`] times as much),
    /// each event charged its name, data and key plus [`EVENT_OVERHEAD`]; a
    /// session that falls further behind is closed (see the
    /// [module docs](self#bounds)). An event is always taken by a session
    /// with nothing waiting, whatever its size.
    pub event_backlog: usize,
}

impl ServerConfig {
    /// QMP with `oob` offered, compact output, 1 MiB buffers, at most
    /// [`DEFAULT_MAX_SESSIONS`] sessions with [`DEFAULT_EVENT_BACKLOG`]
    /// each.
    pub fn qmp(
        version: (u64, u64, u64),
        package: impl Into<String>,
        commands: Vec<CommandDef>,
    ) -> Self {
        ServerConfig {
            version,
            package: package.into(),
            offer_oob: true,
            pretty: false,
            qga: false,
            commands,
            throttle: Vec::new(),
            framer_size: DEFAULT_FRAMER_SIZE,
            queue_size: None,
            out_size: DEFAULT_OUT_SIZE,
            max_sessions: DEFAULT_MAX_SESSIONS,
            event_backlog: DEFAULT_EVENT_BACKLOG,
        }
    }

    /// The guest-agent dialect; the defaults of [`ServerConfig::qmp`].
    pub fn qga(commands: Vec<CommandDef>) -> Self {
        ServerConfig {
            offer_oob: false,
            qga: true,
            ..ServerConfig::qmp((0, 0, 0), "", commands)
        }
    }

    /// Sets [`ServerConfig::max_sessions`] (at least 1).
    #[must_use]
    pub fn max_sessions(mut self, sessions: usize) -> Self {
        self.max_sessions = sessions.max(1);
        self
    }

    /// Sets [`ServerConfig::event_backlog`] in bytes.
    #[must_use]
    pub fn event_backlog(mut self, bytes: usize) -> Self {
        self.event_backlog = bytes;
        self
    }

    fn queue_len(&self) -> usize {
        let min = AgentBuffers::queue_required(self.framer_size.max(1));
        self.queue_size.unwrap_or(min + QUEUE_SLACK).max(min)
    }
}

// ---------------------------------------------------------------------------
// Handler model

/// A request handed to the [`Handler`]. It borrows the session's buffers.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The command name (one of [`ServerConfig::commands`]).
    pub name: &'a str,
    /// Whether it came as `exec-oob`.
    pub oob: bool,
    /// The arguments object, if present (QEMU treats absent as `{}`).
    pub arguments: Option<RawJson<'a>>,
    /// The request id, if any (the runner echoes it; for information).
    pub id: Option<RawJson<'a>>,
}

impl<'a> Request<'a> {
    /// One argument by name.
    pub fn arg(&self, key: &str) -> Option<RawJson<'a>> {
        self.arguments.and_then(|a| a.get(key))
    }
}

/// The answer to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// `{"return": value}`.
    Return(Json),
    /// `{"error": {"class": class, "desc": desc}}`.
    Error {
        /// Error class, e.g. `GenericError`.
        class: String,
        /// Description.
        desc: String,
    },
    /// No reply (QGA commands without `success-response`).
    NoResponse,
}

impl Response {
    /// A `GenericError`.
    pub fn generic_error(desc: impl Into<String>) -> Self {
        Response::Error {
            class: "GenericError".to_owned(),
            desc: desc.into(),
        }
    }
}

/// What [`Handler::handle`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Answer now.
    Reply(Response),
    /// Answer later through the [`Completer`] taken with [`Ctx::defer`].
    Deferred,
}

impl Outcome {
    /// `Outcome::Reply(Response::Return(value))`.
    pub fn ret(value: Json) -> Self {
        Outcome::Reply(Response::Return(value))
    }

    /// `Outcome::Reply(Response::Error { .. })`.
    pub fn error(class: impl Into<String>, desc: impl Into<String>) -> Self {
        Outcome::Reply(Response::Error {
            class: class.into(),
            desc: desc.into(),
        })
    }

    /// A `GenericError` reply.
    pub fn generic_error(desc: impl Into<String>) -> Self {
        Outcome::Reply(Response::generic_error(desc))
    }
}

impl From<Response> for Outcome {
    fn from(r: Response) -> Self {
        Outcome::Reply(r)
    }
}

/// Serves the commands of a [`Server`]. Called on the connection's thread;
/// in-band requests of one session arrive one at a time, in order, but
/// different sessions (and an `exec-oob` request) may call concurrently.
pub trait Handler: Send + Sync {
    /// Handles one request. Events emitted (through [`Ctx::events`]) before
    /// returning go out before this request's reply.
    fn handle(&self, ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome;
}

impl<F> Handler for F
where
    F: Fn(&mut Ctx<'_>, &Request<'_>) -> Outcome + Send + Sync,
{
    fn handle(&self, ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
        self(ctx, req)
    }
}

/// Per-request context given to [`Handler::handle`].
pub struct Ctx<'c> {
    events: &'c EventSender,
    tx: &'c ConnTx,
    request: u32,
    conn_id: u64,
    deferred: bool,
    stop: bool,
}

impl Ctx<'_> {
    /// The server's event broadcaster.
    pub fn events(&self) -> &EventSender {
        self.events
    }

    /// Takes the completer for this request; return [`Outcome::Deferred`]
    /// and call [`Completer::complete`] later (from any thread).
    pub fn defer(&mut self) -> Completer {
        self.deferred = true;
        Completer {
            tx: self.tx.clone(),
            request: self.request,
            done: false,
        }
    }

    /// Stops the whole server once this request's reply has been sent
    /// (QEMU's `quit`).
    pub fn stop_server_after_reply(&mut self) {
        self.stop = true;
    }

    /// A number identifying the connection (unique per server).
    pub fn connection_id(&self) -> u64 {
        self.conn_id
    }
}

/// Answers a deferred request. Dropping it unanswered sends a
/// `GenericError` so the session does not stall.
pub struct Completer {
    tx: ConnTx,
    /// The request's [`ReplyToken::id`]: the token itself stays with the
    /// session thread.
    request: u32,
    done: bool,
}

impl Completer {
    /// Sends the answer (ignored if the connection has closed).
    pub fn complete(mut self, response: Response) {
        self.done = true;
        let _ = self.tx.send(ConnMsg::Complete(self.request, response));
    }
}

impl Drop for Completer {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.tx.send(ConnMsg::Complete(
                self.request,
                Response::generic_error("command was dropped without a reply"),
            ));
        }
    }
}

impl std::fmt::Debug for Completer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Completer")
            .field("request", &self.request)
            .finish()
    }
}

// ---------------------------------------------------------------------------
// Events and stopping

/// An event to broadcast ([`EventSender::send`]; the owned form of
/// qmp-core's [`CoreEventOut`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventOut {
    /// The event name.
    pub name: String,
    /// `data`, if any.
    pub data: Option<Json>,
    /// Wall-clock seconds.
    pub seconds: i64,
    /// Microseconds within the second.
    pub microseconds: i64,
    /// Key for per-key throttling (QEMU keys some events by `data.id` etc.).
    pub throttle_key: Option<String>,
}

impl EventOut {
    /// An event stamped with the current wall-clock time.
    pub fn now(name: impl Into<String>, data: Option<Json>) -> Self {
        let (seconds, microseconds) = wall_clock();
        EventOut {
            name: name.into(),
            data,
            seconds,
            microseconds,
            throttle_key: None,
        }
    }
}

/// The current wall-clock time as QMP timestamps `(seconds, microseconds)`.
pub fn wall_clock() -> (i64, i64) {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => (
            i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            i64::from(d.subsec_micros()),
        ),
        // QEMU documents -1 for an unavailable clock.
        Err(_) => (-1, -1),
    }
}

/// Broadcasts events to every session of a server. Cheap to clone.
#[derive(Clone)]
pub struct EventSender {
    shared: Arc<Shared>,
}

impl EventSender {
    pub(crate) fn of(shared: &Arc<Shared>) -> Self {
        EventSender {
            shared: Arc::clone(shared),
        }
    }

    /// Broadcasts `name` (with `data`) stamped now. Returns how many
    /// connections it was handed to (sessions still negotiating drop it).
    pub fn emit(&self, name: &str, data: Option<Json>) -> usize {
        self.send(EventOut::now(name, data))
    }

    /// Broadcasts an event as given. Returns how many connections it was
    /// handed to: not those whose session is closing because it fell
    /// further behind than [`ServerConfig::event_backlog`].
    pub fn send(&self, event: EventOut) -> usize {
        let cost = event_cost(&event);
        let event = Arc::new(event);
        let conns = self.shared.conns();
        conns.values().filter(|tx| tx.offer(&event, cost)).count()
    }

    /// How many connections are open.
    pub fn connections(&self) -> usize {
        self.shared.conns().len()
    }

    /// The server's counters.
    pub fn stats(&self) -> ServerStats {
        self.shared.stats()
    }
}

/// What a server counted since it was bound ([`Server::stats`],
/// [`EventSender::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerStats {
    /// Sessions open now.
    pub sessions: usize,
    /// Connections admitted as sessions.
    pub admitted: u64,
    /// Connections refused because [`ServerConfig::max_sessions`] were
    /// open.
    pub refused: u64,
    /// Sessions closed because more than [`ServerConfig::event_backlog`]
    /// of events waited for a peer that did not read them.
    pub closed_behind: u64,
}

/// What an event is charged against a session's backlog.
fn event_cost(ev: &EventOut) -> usize {
    EVENT_OVERHEAD
        + ev.name.len()
        + ev.data.as_ref().map_or(0, |d| d.as_bytes().len())
        + ev.throttle_key.as_ref().map_or(0, String::len)
}

impl std::fmt::Debug for EventSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSender").finish_non_exhaustive()
    }
}

/// Stops a server: no new connections, open sessions flush and close, and
/// [`Server::run`] returns. Cheap to clone.
#[derive(Clone)]
pub struct StopHandle {
    shared: Arc<Shared>,
}

impl StopHandle {
    pub(crate) fn of(shared: &Arc<Shared>) -> Self {
        StopHandle {
            shared: Arc::clone(shared),
        }
    }

    /// Asks the server to stop (idempotent).
    pub fn stop(&self) {
        self.shared.stop();
    }

    /// Whether a stop was requested.
    pub fn is_stopped(&self) -> bool {
        self.shared.stopping.load(Ordering::SeqCst)
    }
}

impl std::fmt::Debug for StopHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StopHandle")
            .field("stopped", &self.is_stopped())
            .finish()
    }
}

pub(crate) enum ConnMsg {
    /// An event and what it is charged against the backlog.
    Event(Arc<EventOut>, usize),
    Complete(u32, Response),
    Stop,
}

/// Wakes a session: a thread sleeping in poll(2), or a tokio task.
pub(crate) enum Waker {
    /// One byte on a socket pair, written only when none is waiting
    /// already.
    Pair {
        /// The writing end (non-blocking).
        tx: UnixStream,
        /// A byte was written that the session has not drained yet.
        notified: AtomicBool,
    },
    /// A permit for the task's next wait.
    #[cfg(feature = "tokio")]
    Task(tokio::sync::Notify),
}

impl Waker {
    fn wake(&self) {
        match self {
            Waker::Pair { tx, notified } => {
                if !notified.swap(true, Ordering::SeqCst) {
                    // Non-blocking: a full pair already holds a wake-up.
                    let _ = (&*tx).write(&[1]);
                }
            }
            #[cfg(feature = "tokio")]
            Waker::Task(n) => n.notify_one(),
        }
    }
}

/// How many times [`ServerConfig::event_backlog`] a session may have
/// waiting while its socket takes output (its thread is busy, e.g. in a
/// handler, or not yet scheduled): a hard ceiling, for memory.
pub const BUSY_BACKLOG_FACTOR: usize = 8;

/// The events a session has not handed to its agent yet (in its mailbox,
/// or owed for want of output room), in bytes as [`event_cost`] charges
/// them. Past the limit while the session's socket is full (its peer does
/// not read), or past [`BUSY_BACKLOG_FACTOR`] times the limit in any case,
/// the session is over ([`Backlog::is_over`]) and takes no more. Shared by
/// the senders and the session; no I/O (an async runner keeps the same
/// books: it reports [`Backlog::set_blocked`] as its writes find the
/// socket full or drain it).
#[derive(Debug)]
pub(crate) struct Backlog {
    bytes: AtomicUsize,
    limit: usize,
    /// The session's socket was full at its last write.
    blocked: AtomicBool,
    /// The limit that the session went past (0: none).
    over: AtomicUsize,
}

impl Backlog {
    pub(crate) fn new(limit: usize) -> Self {
        Backlog {
            bytes: AtomicUsize::new(0),
            limit,
            blocked: AtomicBool::new(false),
            over: AtomicUsize::new(0),
        }
    }

    /// The session's socket is full (`true`: its peer is not reading what
    /// was written), or took everything staged (`false`).
    pub(crate) fn set_blocked(&self, blocked: bool) {
        self.blocked.store(blocked, Ordering::SeqCst);
    }

    /// Charges an event of `cost` bytes; `false` (nothing charged) when it
    /// would go past the limit — the backlog is then over — or is already.
    /// An event is always taken while nothing is charged.
    pub(crate) fn charge(&self, cost: usize) -> bool {
        if self.is_over() {
            return false;
        }
        let limit = if self.blocked.load(Ordering::SeqCst) {
            self.limit
        } else {
            self.limit.saturating_mul(BUSY_BACKLOG_FACTOR)
        };
        let before = self.bytes.fetch_add(cost, Ordering::SeqCst);
        if before > 0 && before.saturating_add(cost) > limit {
            self.bytes.fetch_sub(cost, Ordering::SeqCst);
            self.over.store(limit.max(1), Ordering::SeqCst);
            return false;
        }
        true
    }

    /// An event of `cost` bytes was handed to the agent (or dropped).
    pub(crate) fn discharge(&self, cost: usize) {
        self.bytes.fetch_sub(cost, Ordering::SeqCst);
    }

    /// Whether the session fell further behind than the limit.
    pub(crate) fn is_over(&self) -> bool {
        self.over() != 0
    }

    /// The limit the session went past (0: none): the backlog, or
    /// [`BUSY_BACKLOG_FACTOR`] times it.
    pub(crate) fn over(&self) -> usize {
        self.over.load(Ordering::SeqCst)
    }
}

/// A connection's mailbox: messages for its session, which is woken up.
#[derive(Clone)]
pub(crate) struct ConnTx {
    tx: Sender<ConnMsg>,
    pub(crate) waker: Arc<Waker>,
    pub(crate) backlog: Arc<Backlog>,
}

impl ConnTx {
    /// Sends `msg`; `Err` once the session has ended.
    fn send(&self, msg: ConnMsg) -> Result<(), ()> {
        self.tx.send(msg).map_err(|_| ())?;
        self.waker.wake();
        Ok(())
    }

    /// Sends an event if the session's backlog takes it; whether it was
    /// sent. A backlog that goes over wakes the session (which closes).
    fn offer(&self, event: &Arc<EventOut>, cost: usize) -> bool {
        let was_over = self.backlog.is_over();
        if !self.backlog.charge(cost) {
            if !was_over {
                self.waker.wake();
            }
            return false;
        }
        if self.send(ConnMsg::Event(Arc::clone(event), cost)).is_err() {
            self.backlog.discharge(cost);
            return false;
        }
        true
    }
}

/// How a stop reaches the accept loop.
pub(crate) enum Wake {
    /// A blocking `accept` on this socket: connect to it.
    Unix(PathBuf),
    /// The same on TCP.
    Tcp(SocketAddr),
    /// An async accept loop waiting on this as well.
    #[cfg(feature = "tokio")]
    Task(Arc<tokio::sync::Notify>),
}

/// What a server's accept loop, its sessions, its event senders and stop
/// handles share (the blocking runner's and the tokio runner's alike).
pub(crate) struct Shared {
    conns: Mutex<HashMap<u64, ConnTx>>,
    pub(crate) stopping: AtomicBool,
    next_id: AtomicU64,
    wake: Wake,
    admitted: AtomicU64,
    refused: AtomicU64,
    closed_behind: AtomicU64,
    /// Refusing since the last admission (logged once per spell).
    refusing: AtomicBool,
}

impl Shared {
    pub(crate) fn new(wake: Wake) -> Self {
        Shared {
            conns: Mutex::new(HashMap::new()),
            stopping: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            wake,
            admitted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            closed_behind: AtomicU64::new(0),
            refusing: AtomicBool::new(false),
        }
    }

    /// Whether a new connection is admitted as a session (at most
    /// [`ServerConfig::max_sessions`]); a refused one is counted, logged
    /// once per spell of refusals, and sent the refusal line.
    pub(crate) fn admit(&self, cfg: &ServerConfig, stream: impl AsFd) -> bool {
        let max = cfg.max_sessions.max(1);
        if self.conns().len() < max {
            self.refusing.store(false, Ordering::SeqCst);
            return true;
        }
        self.refused.fetch_add(1, Ordering::SeqCst);
        if !self.refusing.swap(true, Ordering::SeqCst) {
            eprintln!("qmp agent: {max} sessions open (the limit): refusing new connections");
        }
        refuse(stream, cfg.qga, max);
        false
    }

    /// Opens a session's mailbox (woken by `waker`); its id.
    pub(crate) fn open(
        &self,
        cfg: &ServerConfig,
        waker: Waker,
    ) -> (u64, ConnTx, Receiver<ConnMsg>) {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let (tx, rx) = mpsc::channel();
        let tx = ConnTx {
            tx,
            waker: Arc::new(waker),
            backlog: Arc::new(Backlog::new(cfg.event_backlog)),
        };
        self.conns().insert(id, tx.clone());
        (id, tx, rx)
    }

    /// Counts a session admitted (its thread or task started).
    pub(crate) fn admitted(&self) {
        self.admitted.fetch_add(1, Ordering::SeqCst);
    }

    /// A session is over.
    pub(crate) fn close(&self, id: u64) {
        self.conns().remove(&id);
    }

    /// Whether sessions are still open.
    pub(crate) fn has_sessions(&self) -> bool {
        !self.conns().is_empty()
    }

    fn conns(&self) -> MutexGuard<'_, HashMap<u64, ConnTx>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn stats(&self) -> ServerStats {
        ServerStats {
            sessions: self.conns().len(),
            admitted: self.admitted.load(Ordering::SeqCst),
            refused: self.refused.load(Ordering::SeqCst),
            closed_behind: self.closed_behind.load(Ordering::SeqCst),
        }
    }

    pub(crate) fn stop(&self) {
        if self.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        for tx in self.conns().values() {
            let _ = tx.send(ConnMsg::Stop);
        }
        // Wake the accept loop.
        match &self.wake {
            Wake::Unix(p) => drop(UnixStream::connect(p)),
            Wake::Tcp(a) => drop(TcpStream::connect_timeout(a, Duration::from_secs(1))),
            #[cfg(feature = "tokio")]
            Wake::Task(n) => n.notify_one(),
        }
    }
}

// ---------------------------------------------------------------------------
// Sockets

/// A bound listener (the blocking runner's, or the tokio runner's before
/// it hands it to tokio).
pub(crate) enum Listener {
    Unix(UnixListener, PathBuf),
    Tcp(TcpListener),
}

impl Listener {
    /// Binds `addr` (a stale Unix socket file is replaced).
    pub(crate) fn bind(addr: &Address) -> io::Result<Listener> {
        Ok(match addr {
            Address::Unix(path) => Listener::Unix(bind_unix(path)?, path.clone()),
            Address::Tcp(hp) => Listener::Tcp(TcpListener::bind(hp.as_str())?),
        })
    }

    /// How a stop wakes a blocking `accept` on it: a connection.
    fn wake(&self) -> io::Result<Wake> {
        Ok(match self {
            Listener::Unix(_, path) => Wake::Unix(path.clone()),
            Listener::Tcp(l) => {
                let mut a = l.local_addr()?;
                if a.ip().is_unspecified() {
                    a.set_ip(match a {
                        SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                        SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                    });
                }
                Wake::Tcp(a)
            }
        })
    }

    /// The address actually bound (the real port for `HOST:0`).
    pub(crate) fn local_addr(&self) -> Address {
        match self {
            Listener::Unix(_, p) => Address::Unix(p.clone()),
            Listener::Tcp(l) => match l.local_addr() {
                Ok(a) => Address::Tcp(a.to_string()),
                Err(_) => Address::Tcp(String::new()),
            },
        }
    }

    /// Removes the Unix socket file (once the server is done).
    pub(crate) fn remove_socket_file(&self) {
        if let Listener::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn bind_unix(path: &std::path::Path) -> io::Result<UnixListener> {
    match UnixListener::bind(path) {
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
            // A stale socket file (nobody accepting) is replaced; a live one
            // or any other file is left alone.
            let is_socket = std::fs::symlink_metadata(path)
                .map(|m| m.file_type().is_socket())
                .unwrap_or(false);
            if is_socket && UnixStream::connect(path).is_err() {
                std::fs::remove_file(path)?;
                UnixListener::bind(path)
            } else {
                Err(e)
            }
        }
        r => r,
    }
}

// ---------------------------------------------------------------------------
// The server

/// The accessors the blocking and the tokio servers share (on their
/// `listener` and `shared`).
macro_rules! server_accessors {
    () => {
        /// The address actually bound (the real port for `HOST:0`).
        pub fn local_addr(&self) -> Address {
            self.listener.local_addr()
        }

        /// The event broadcaster.
        pub fn events(&self) -> EventSender {
            EventSender::of(&self.shared)
        }

        /// The server's counters.
        pub fn stats(&self) -> ServerStats {
            self.shared.stats()
        }

        /// A handle to stop the server.
        pub fn stop_handle(&self) -> StopHandle {
            StopHandle::of(&self.shared)
        }
    };
}

/// A bound listener serving one [`Handler`]. See the [module docs](self).
pub struct Server {
    listener: Listener,
    cfg: Arc<ServerConfig>,
    handler: Arc<dyn Handler>,
    shared: Arc<Shared>,
}

impl Server {
    /// Binds the listener (a stale Unix socket file is replaced).
    ///
    /// # Errors
    /// Binding or address resolution failed.
    pub fn bind(
        addr: &Address,
        cfg: ServerConfig,
        handler: Arc<dyn Handler>,
    ) -> io::Result<Server> {
        let listener = Listener::bind(addr)?;
        let wake = listener.wake()?;
        Ok(Server {
            listener,
            cfg: Arc::new(cfg),
            handler,
            shared: Arc::new(Shared::new(wake)),
        })
    }

    server_accessors!();

    /// Accepts and serves connections until stopped. After a stop it waits
    /// up to two seconds for open sessions to flush and close, and removes
    /// its Unix socket file.
    ///
    /// # Errors
    /// A fatal `accept` error.
    pub fn run(self) -> io::Result<()> {
        let result = self.accept_loop();
        self.shared.stop();
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.shared.has_sessions() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        self.listener.remove_socket_file();
        result
    }

    /// Runs the server on a new thread.
    pub fn spawn(self) -> thread::JoinHandle<io::Result<()>> {
        thread::spawn(move || self.run())
    }

    fn accept_loop(&self) -> io::Result<()> {
        loop {
            let accepted = match &self.listener {
                Listener::Unix(l, _) => l.accept().map(|(s, _)| Stream::Unix(s)),
                Listener::Tcp(l) => l.accept().map(|(s, _)| {
                    let _ = s.set_nodelay(true);
                    Stream::Tcp(s)
                }),
            };
            if self.shared.stopping.load(Ordering::SeqCst) {
                return Ok(());
            }
            let stream = match accepted {
                Ok(s) => s,
                Err(e) => match accept_failed(e)? {
                    Some(pause) => {
                        thread::sleep(pause);
                        continue;
                    }
                    None => continue,
                },
            };
            if self.shared.admit(&self.cfg, &stream) {
                self.start_connection(stream);
            }
        }
    }

    fn start_connection(&self, stream: Stream) {
        // Out of descriptors: the connection is dropped (closed).
        let Ok((wake_tx, wake_rx)) = UnixStream::pair() else {
            return;
        };
        if wake_tx.set_nonblocking(true).is_err() || wake_rx.set_nonblocking(true).is_err() {
            return;
        }
        let waker = Waker::Pair {
            tx: wake_tx,
            notified: AtomicBool::new(false),
        };
        let (id, tx, rx) = self.shared.open(&self.cfg, waker);
        let cfg = Arc::clone(&self.cfg);
        let handler = Arc::clone(&self.handler);
        let shared = Arc::clone(&self.shared);
        let spawned = thread::Builder::new()
            .name(format!("qmp-conn-{id}"))
            .spawn(move || {
                let events = EventSender {
                    shared: Arc::clone(&shared),
                };
                let mut conn = Conn {
                    mb: Mailbox {
                        id,
                        cfg: &cfg,
                        events: &events,
                        tx,
                        rx,
                    },
                    handler: &*handler,
                    wake_rx,
                };
                if let Err(e) = conn.serve(stream) {
                    report(id, &e);
                }
                shared.close(id);
            });
        if spawned.is_err() {
            self.shared.close(id);
        } else {
            self.shared.admitted();
        }
    }
}

/// Logs a session's I/O error (not the peer going away).
pub(crate) fn report(id: u64, e: &io::Error) {
    if !matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
    ) {
        eprintln!("qmp agent: connection {id}: {e}");
    }
}

/// What a failed `accept` means for the accept loop: try again (after a
/// pause: out of descriptors and the like), or stop with the error.
pub(crate) fn accept_failed(e: io::Error) -> io::Result<Option<Duration>> {
    match e.kind() {
        io::ErrorKind::Interrupted
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::WouldBlock => Ok(None),
        _ if e.raw_os_error().is_some_and(|c| c == 23 || c == 24) => {
            Ok(Some(Duration::from_millis(100)))
        }
        _ => Err(e),
    }
}

/// The text a refused connection gets (see the [module docs](self#bounds)).
pub(crate) fn refusal_line(qga: bool, max_sessions: usize) -> String {
    format!(
        "{{\"error\": {{\"class\": \"GenericError\", \"desc\": \"too many sessions (at most {max_sessions}); try again later\"}}}}{}",
        if qga { "\n" } else { "\r\n" }
    )
}

/// Refuses a connection: the error line (without blocking: it fits the
/// socket's empty send buffer), what the peer already sent is read and
/// dropped (so that closing does not reset the connection and lose the
/// line), then the socket is closed.
fn refuse(stream: impl AsFd, qga: bool, max_sessions: usize) {
    use rustix::net::{recv, send, RecvFlags, SendFlags};
    let line = refusal_line(qga, max_sessions);
    let _ = send(
        &stream,
        line.as_bytes(),
        SendFlags::DONTWAIT | SendFlags::NOSIGNAL,
    );
    let _ = rustix::net::shutdown(&stream, rustix::net::Shutdown::Write);
    let mut buf = [0u8; 4096];
    // Bounded: a peer that keeps sending does not hold the accept loop.
    for _ in 0..16 {
        match recv(&stream, &mut buf, RecvFlags::DONTWAIT) {
            Ok((n, _)) if n > 0 => {}
            _ => break,
        }
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.local_addr())
            .finish_non_exhaustive()
    }
}

/// Resolves `HOST:PORT` (helper for clients and tests).
///
/// # Errors
/// Resolution failed or gave nothing.
pub fn resolve(host_port: &str) -> io::Result<SocketAddr> {
    host_port
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "address resolved to nothing"))
}

// ---------------------------------------------------------------------------
// One connection

/// A blocking session: its mailbox, the handler, and the thread's wake-up
/// socket.
struct Conn<'s> {
    mb: Mailbox<'s>,
    handler: &'s dyn Handler,
    /// The reading end of the wake-up pair (non-blocking).
    wake_rx: UnixStream,
}

/// A session's side of its mailbox, and what the handler is given
/// ([`Ctx`]): no I/O, shared by the blocking and the tokio runner.
pub(crate) struct Mailbox<'s> {
    pub(crate) id: u64,
    pub(crate) cfg: &'s ServerConfig,
    pub(crate) events: &'s EventSender,
    pub(crate) tx: ConnTx,
    pub(crate) rx: Receiver<ConnMsg>,
}

/// What a handler made of a request: an [`Outcome`] now, or (the tokio
/// runner's async handlers) `L`, a future of the response.
pub(crate) enum Handled<L> {
    Now(Outcome),
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    Later(L),
}

/// The agent's command table and throttles, borrowed from the
/// [`ServerConfig`] for a session's [`AgentConfig`].
pub(crate) struct Specs<'c> {
    cfg: &'c ServerConfig,
    specs: Vec<CommandSpec<'c>>,
    throttles: Vec<Throttle<'c>>,
}

impl<'c> Specs<'c> {
    pub(crate) fn new(cfg: &'c ServerConfig) -> Self {
        let specs = cfg
            .commands
            .iter()
            .map(|c| {
                let spec = CommandSpec::new(&c.name);
                let spec = if c.allow_oob { spec.oob() } else { spec };
                if c.success_response {
                    spec
                } else {
                    spec.no_success_response()
                }
            })
            .collect();
        let throttles = cfg
            .throttle
            .iter()
            .map(|(event, window_ms)| Throttle::new(event, *window_ms))
            .collect();
        Specs {
            cfg,
            specs,
            throttles,
        }
    }

    /// The agent's configuration.
    pub(crate) fn agent_config(&self) -> AgentConfig<'_> {
        let cfg = self.cfg;
        if cfg.qga {
            AgentConfig::qga(&self.specs)
        } else {
            let a =
                AgentConfig::new(cfg.version, &cfg.package, &self.specs).with_oob(cfg.offer_oob);
            if cfg.pretty {
                a.with_style(Style::QMP_PRETTY)
            } else {
                a
            }
        }
        .with_throttle(&self.throttles)
    }
}

/// A session's buffers, lazily backed (an idle session holds a few pages
/// of them: see [`crate::buf`]).
pub(crate) struct SessionBufs {
    framer: Buf,
    queue: Buf,
    out: Buf,
    throttle: Buf,
    rx: Buf,
    tx: Buf,
}

impl SessionBufs {
    pub(crate) fn new(cfg: &ServerConfig) -> Self {
        SessionBufs {
            framer: Buf::zeroed(cfg.framer_size.max(1)),
            queue: Buf::zeroed(cfg.queue_len()),
            out: Buf::zeroed(cfg.out_size),
            throttle: Buf::zeroed(if cfg.throttle.is_empty() {
                0
            } else {
                4 * THROTTLE_SLOT_SIZE
            }),
            rx: Buf::zeroed(READ_CHUNK),
            tx: Buf::zeroed(FLUSH_AT),
        }
    }

    /// The session's agent (greeting queued) and pump, over these buffers.
    ///
    /// # Errors
    /// The configuration does not make an agent (`InvalidInput`).
    pub(crate) fn session<'a>(
        &'a mut self,
        specs: &'a Specs<'_>,
    ) -> io::Result<(Agent<'a, 'a>, Pump<'a>)> {
        let bufs = AgentBuffers::new(self.framer.as_mut(), self.queue.as_mut(), self.out.as_mut())
            .with_throttle(self.throttle.as_mut());
        let agent = Agent::new(specs.agent_config(), bufs)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Ok((agent, Pump::new(self.rx.as_mut(), self.tx.as_mut())))
    }
}

/// Output the session owes its peer that found the agent's output buffer
/// full: sent, in order, once there is room.
pub(crate) enum Owed {
    Reply(ReplyToken, Response),
    /// An event and what it is charged against the backlog.
    Event(Arc<EventOut>, usize),
}

/// The session besides the agent and the pump — none of it does I/O.
pub(crate) struct Books {
    /// Replies and events waiting for output room, in order.
    pub(crate) owed: VecDeque<Owed>,
    /// Deferred requests not answered yet, by token id.
    pub(crate) outstanding: HashMap<u32, ReplyToken>,
    /// The server stops this session (flush, then close).
    pub(crate) stop: bool,
    /// Stop the server once output is flushed.
    pub(crate) stop_server: bool,
    /// Time zero of the agent's millisecond clock.
    epoch: Instant,
    /// The events charged to this session and not yet handed to its
    /// agent (in the mailbox and in [`Books::owed`]).
    pub(crate) backlog: Arc<Backlog>,
}

/// Output is written once no more input can be taken at once (one write
/// for many pipelined requests), or when this much is staged: the pump's
/// transmit buffer.
pub(crate) const FLUSH_AT: usize = 64 * 1024;

impl Books {
    pub(crate) fn new(backlog: &Arc<Backlog>) -> Self {
        Books {
            owed: VecDeque::new(),
            outstanding: HashMap::new(),
            stop: false,
            stop_server: false,
            epoch: Instant::now(),
            backlog: Arc::clone(backlog),
        }
    }

    /// Milliseconds since [`Books::epoch`] (the agent's clock).
    pub(crate) fn now(&self) -> Clock {
        Clock::from_millis(u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    /// Answers a request, or owes the answer while output is full (or
    /// something owed earlier waits: order is kept).
    pub(crate) fn answer(
        &mut self,
        agent: &mut Agent<'_, '_>,
        token: ReplyToken,
        response: Response,
    ) {
        if !self.owed.is_empty() {
            self.owed.push_back(Owed::Reply(token, response));
            return;
        }
        if let Some(token) = complete(agent, token, &response) {
            self.owed.push_back(Owed::Reply(token, response));
        }
    }

    /// Emits an event, or owes it while output is full (it stays charged
    /// to the backlog until it is emitted).
    pub(crate) fn emit(&mut self, agent: &mut Agent<'_, '_>, event: Arc<EventOut>, cost: usize) {
        let now = self.now();
        if !self.owed.is_empty() || !emit(agent, &event, now) {
            self.owed.push_back(Owed::Event(event, cost));
        } else {
            self.backlog.discharge(cost);
        }
    }

    /// Whether the session fell further behind than its backlog allows:
    /// it is closed without flushing (its peer does not read).
    pub(crate) fn behind(&self) -> bool {
        self.backlog.is_over()
    }

    /// Sends what is owed as far as output room allows; whether all of it
    /// went.
    pub(crate) fn retry(&mut self, agent: &mut Agent<'_, '_>) -> bool {
        if self.owed.is_empty() {
            return true;
        }
        let now = self.now();
        while let Some(owed) = self.owed.pop_front() {
            let blocked = match owed {
                Owed::Reply(token, response) => {
                    complete(agent, token, &response).map(|t| Owed::Reply(t, response))
                }
                Owed::Event(event, cost) => {
                    if emit(agent, &event, now) {
                        self.backlog.discharge(cost);
                        None
                    } else {
                        Some(Owed::Event(event, cost))
                    }
                }
            };
            if let Some(owed) = blocked {
                self.owed.push_front(owed);
                return false;
            }
        }
        true
    }

    /// Output is full with nothing left to send (cannot happen: the pump
    /// stages whatever the agent holds): answer with a short error rather
    /// than spin, and drop owed events.
    pub(crate) fn give_up(&mut self, agent: &mut Agent<'_, '_>) {
        for owed in self.owed.drain(..) {
            match owed {
                Owed::Reply(token, _) => {
                    let stuck = CoreReply::Error {
                        class: "GenericError",
                        desc: "internal error: output buffer stuck",
                    };
                    let _ = agent.complete(token, stuck);
                }
                Owed::Event(_, cost) => self.backlog.discharge(cost),
            }
        }
    }
}

/// Answers a request; gives the token back when the output is full. (A
/// reply that can never be sent is answered by the core with an error in
/// its place.)
pub(crate) fn complete(
    agent: &mut Agent<'_, '_>,
    token: ReplyToken,
    response: &Response,
) -> Option<ReplyToken> {
    let result = match response {
        Response::Return(v) => agent.complete(token, CoreReply::Return(v)),
        Response::Error { class, desc } => agent.complete(token, CoreReply::Error { class, desc }),
        Response::NoResponse => agent.complete(token, CoreReply::NoResponse),
    };
    match result {
        Err(CompleteError::OutputFull { token, .. }) => Some(token),
        _ => None,
    }
}

/// Emits an event; `false` when the output is full. (Throttled, dropped
/// before negotiation, or one that can never be sent: done.)
pub(crate) fn emit(agent: &mut Agent<'_, '_>, ev: &EventOut, now: Clock) -> bool {
    let data = ev
        .data
        .as_ref()
        .map(|d| d as &dyn qmp_core::encode::WriteJson);
    let mut e = CoreEventOut::new(&ev.name).timestamp(ev.seconds, ev.microseconds);
    if let Some(d) = data {
        e = e.data(d);
    }
    if let Some(k) = ev.throttle_key.as_deref() {
        e = e.throttle_key(k);
    }
    !matches!(agent.emit(now, &e), Err(EmitError::OutputFull { .. }))
}

/// Reads what the socket holds into the pump with `recv` (which does not
/// block: `WouldBlock` when nothing is there). Returns whether anything
/// happened (input or end of stream).
pub(crate) fn read_with(
    pump: &mut Pump<'_>,
    mut recv: impl FnMut(&mut [u8]) -> io::Result<usize>,
) -> bool {
    loop {
        match recv(pump.read_buf()) {
            Ok(n) => {
                pump.received(n);
                return true;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            // A reset connection and the like: the peer is gone.
            Err(_) => {
                pump.received(0);
                return true;
            }
        }
    }
}

/// Writes what the pump staged with `send`, as far as the socket takes it
/// (`send` does not block: `WouldBlock` when the socket is full). Returns
/// whether anything was written (`false`: full; wait until it is
/// writable).
pub(crate) fn write_with(
    pump: &mut Pump<'_>,
    mut send: impl FnMut(&[u8]) -> io::Result<usize>,
) -> io::Result<bool> {
    let mut wrote = false;
    while !pump.transmit().is_empty() {
        match send(pump.transmit()) {
            Ok(n) => {
                pump.sent(n);
                wrote = true;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    Ok(wrote)
}

/// `recv(2)` without blocking.
fn recv_now(stream: &Stream, buf: &mut [u8]) -> io::Result<usize> {
    Ok(rustix::net::recv(stream, buf, rustix::net::RecvFlags::DONTWAIT)?.0)
}

/// `send(2)` without blocking (nor `SIGPIPE`).
fn send_now(stream: &Stream, bytes: &[u8]) -> io::Result<usize> {
    use rustix::net::SendFlags;
    Ok(rustix::net::send(
        stream,
        bytes,
        SendFlags::DONTWAIT | SendFlags::NOSIGNAL,
    )?)
}

/// What a session runs on between the pump's turns: its handler and its
/// socket, without blocking — a thread's ([`Thread`]) or a tokio task's.
pub(crate) trait SessionIo {
    /// What a handler hands back for a response to come later (never, for
    /// a thread's handler).
    type Later;
    /// Runs the handler on a request.
    fn dispatch(&mut self, ctx: &mut Ctx<'_>, req: &Request<'_>) -> Handled<Self::Later>;
    /// Starts a response to come later for request number `request`.
    fn later(&mut self, request: u32, later: Self::Later);
    /// A response that came (request number, response), if any.
    fn done(&mut self) -> Option<(u32, Response)>;
    /// Sends without blocking (`WouldBlock` when the socket is full).
    ///
    /// # Errors
    /// The socket's.
    fn send(&mut self, bytes: &[u8]) -> io::Result<usize>;
    /// Receives without blocking (`WouldBlock` when nothing is there).
    ///
    /// # Errors
    /// The socket's.
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize>;
}

/// What a session waits for after a [`Mailbox::turn`].
pub(crate) enum Next {
    /// The peer is gone and answered, or the session fell behind.
    Done,
    /// Stopped: write what is left, then close.
    Flush,
    /// Input (when `read`), room to write (when `write`), a message, or
    /// `timeout_ms`.
    Wait {
        read: bool,
        write: bool,
        timeout_ms: Option<u64>,
    },
}

/// A session thread: a blocking [`Handler`] on a socket.
struct Thread<'a> {
    handler: &'a dyn Handler,
    stream: &'a Stream,
}

impl SessionIo for Thread<'_> {
    type Later = std::convert::Infallible;
    fn dispatch(&mut self, ctx: &mut Ctx<'_>, req: &Request<'_>) -> Handled<Self::Later> {
        Handled::Now(handle(self.handler, ctx, req))
    }
    fn later(&mut self, _: u32, never: Self::Later) {
        match never {}
    }
    fn done(&mut self) -> Option<(u32, Response)> {
        None
    }
    fn send(&mut self, bytes: &[u8]) -> io::Result<usize> {
        send_now(self.stream, bytes)
    }
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        recv_now(self.stream, buf)
    }
}

impl Conn<'_> {
    fn serve(&mut self, stream: Stream) -> io::Result<()> {
        let cfg = self.mb.cfg;
        let specs = Specs::new(cfg);
        let mut bufs = SessionBufs::new(cfg);
        let (mut agent, mut pump) = bufs.session(&specs)?;
        let mut books = Books::new(&self.mb.tx.backlog);
        let result = self.session(&mut agent, &mut pump, &stream, &mut books);
        stream.shutdown();
        self.mb.finish(&books);
        result
    }

    /// The session: the pump's turns ([`Mailbox::turn`]), sleeping in
    /// poll(2) between them. Returns when the peer is gone and answered,
    /// or the session is stopped.
    fn session(
        &mut self,
        agent: &mut Agent<'_, '_>,
        pump: &mut Pump<'_>,
        stream: &Stream,
        books: &mut Books,
    ) -> io::Result<()> {
        let mut io = Thread {
            handler: self.handler,
            stream,
        };
        loop {
            match self.mb.turn(agent, pump, books, &mut io)? {
                Next::Done => return Ok(()),
                Next::Flush => return flush(agent, pump, stream, books),
                Next::Wait {
                    read,
                    write,
                    timeout_ms,
                } => self.sleep(read, write, stream, timeout_ms)?,
            }
        }
    }

    /// Waits (poll(2)) until the socket is readable (when `read`) or
    /// writable (when `write`), a message is sent to this connection, or
    /// `timeout_ms` passed.
    fn sleep(
        &self,
        read: bool,
        write: bool,
        stream: &Stream,
        timeout_ms: Option<u64>,
    ) -> io::Result<()> {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        let timeout = timeout_ms.map(|ms| Timespec {
            tv_sec: i64::try_from(ms / 1000).unwrap_or(i64::MAX),
            tv_nsec: i64::try_from(ms % 1000 * 1_000_000).unwrap_or(0),
        });
        let mut socket_flags = PollFlags::empty();
        if read {
            socket_flags |= PollFlags::IN;
        }
        if write {
            socket_flags |= PollFlags::OUT;
        }
        let mut fds = [
            PollFd::new(&self.wake_rx, PollFlags::IN),
            PollFd::new(stream, socket_flags),
        ];
        match poll(&mut fds, timeout.as_ref()) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        if !fds[0].revents().is_empty() {
            // Drain the wake-up bytes, then allow the next wake-up: the
            // messages sent before it are taken after this.
            let mut buf = [0u8; 64];
            while matches!((&self.wake_rx).read(&mut buf), Ok(n) if n > 0) {}
            #[allow(irrefutable_let_patterns)] // with the `tokio` feature, not
            if let Waker::Pair { notified, .. } = &*self.mb.tx.waker {
                notified.store(false, Ordering::SeqCst);
            }
        }
        Ok(())
    }
}

/// Runs a blocking handler, a panic answered as an error.
pub(crate) fn handle(handler: &dyn Handler, ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    catch_unwind(AssertUnwindSafe(|| handler.handle(ctx, req)))
        .unwrap_or_else(|_| Outcome::generic_error("internal error: command handler panicked"))
}

impl Mailbox<'_> {
    /// The pump's turns until the session must wait: input fed, requests
    /// handed to the handler, messages (events, completions) taken,
    /// output written as far as the socket takes it — in the order the
    /// blocking runner always had (QEMU's: see the comments).
    ///
    /// # Errors
    /// A write failed (the connection is over).
    pub(crate) fn turn<I: SessionIo>(
        &mut self,
        agent: &mut Agent<'_, '_>,
        pump: &mut Pump<'_>,
        books: &mut Books,
        io: &mut I,
    ) -> io::Result<Next> {
        loop {
            let wants = pump.step(agent, books.now());
            if wants.closed || books.behind() {
                return Ok(Next::Done);
            }
            let clear = books.retry(agent);
            if books.stop || books.stop_server {
                return Ok(Next::Flush);
            }
            if clear && wants.app {
                self.requests(agent, books, io);
                // Take more input before writing, unless much is staged.
                if pump.transmit().len() < FLUSH_AT && !books.stop_server {
                    continue;
                }
            }
            // The socket is full: wait until it is writable (taking the
            // mailbox and input meanwhile, as far as the agent takes it).
            let mut blocked = false;
            if !pump.transmit().is_empty() {
                let wrote = write_with(pump, |b| io.send(b))?;
                books.backlog.set_blocked(!pump.transmit().is_empty());
                if wrote {
                    continue;
                }
                blocked = true;
            }
            if !clear && !blocked {
                books.give_up(agent);
                continue;
            }
            // Messages already waiting, or input already in the socket:
            // take them without sleeping. Messages first: an event
            // broadcast before the input arrived goes out before what the
            // input causes (QEMU emits to every monitor as it happens: a
            // STOP sent while this session was still negotiating is not
            // delivered once its `qmp_capabilities` has been read).
            if self.take(agent, books) {
                continue;
            }
            if let Some((request, response)) = io.done() {
                if let Some(token) = books.outstanding.remove(&request) {
                    // Events it emitted go out before its reply.
                    self.take(agent, books);
                    books.answer(agent, token, response);
                }
                continue;
            }
            if wants.read && read_with(pump, |b| io.recv(b)) {
                continue;
            }
            let timeout_ms = wants
                .timeout
                .map(|due| due.saturating_millis_since(books.now()));
            return Ok(Next::Wait {
                read: wants.read,
                write: blocked,
                timeout_ms,
            });
        }
    }

    /// Hands the requests waiting in the agent to the handler (`io`), while
    /// nothing is owed; a response to come later (`Handled::Later`) is
    /// started with the request's number, its token kept in
    /// [`Books::outstanding`] until [`SessionIo::done`] gives it.
    pub(crate) fn requests<I: SessionIo>(
        &mut self,
        agent: &mut Agent<'_, '_>,
        books: &mut Books,
        io: &mut I,
    ) {
        while books.owed.is_empty() && !books.stop_server {
            let Some(inc) = agent.poll_request() else {
                return;
            };
            let name = self
                .cfg
                .commands
                .iter()
                .find(|c| inc.name.eq_str(&c.name))
                .map_or("", |c| c.name.as_str());
            let req = Request {
                name,
                oob: inc.exec == Exec::ExecOob,
                arguments: inc.arguments,
                id: inc.id,
            };
            let mut ctx = Ctx {
                events: self.events,
                tx: &self.tx,
                request: inc.token.id(),
                conn_id: self.id,
                deferred: false,
                stop: false,
            };
            let handled = io.dispatch(&mut ctx, &req);
            let (token, deferred) = (inc.token, ctx.deferred);
            books.stop_server |= ctx.stop;
            let reply = match handled {
                Handled::Now(Outcome::Reply(r)) => Some(r),
                Handled::Now(Outcome::Deferred) if deferred => None,
                Handled::Later(l) => {
                    io.later(token.id(), l);
                    None
                }
                Handled::Now(Outcome::Deferred) => Some(Response::generic_error(
                    "internal error: deferred without taking a completer",
                )),
            };
            match reply {
                // Events the handler emitted go out before its reply.
                Some(r) => {
                    self.take(agent, books);
                    books.answer(agent, token, r);
                }
                None => {
                    // Before the mailbox: the completion may already wait
                    // there.
                    books.outstanding.insert(token.id(), token);
                    self.take(agent, books);
                }
            }
        }
    }

    /// Takes every message already sent to this connection (events,
    /// deferred completions, stop), without blocking. Returns whether there
    /// was any.
    pub(crate) fn take(&mut self, agent: &mut Agent<'_, '_>, books: &mut Books) -> bool {
        let mut any = false;
        while let Ok(msg) = self.rx.try_recv() {
            any = true;
            match msg {
                ConnMsg::Stop => books.stop = true,
                ConnMsg::Event(ev, cost) => books.emit(agent, ev, cost),
                ConnMsg::Complete(request, r) => {
                    if let Some(token) = books.outstanding.remove(&request) {
                        books.answer(agent, token, r);
                    }
                }
            }
        }
        any
    }

    /// The session is over: a close for falling behind is counted and
    /// logged; a `quit` stops the server.
    pub(crate) fn finish(&self, books: &Books) {
        let shared = &self.events.shared;
        if books.behind() {
            shared.closed_behind.fetch_add(1, Ordering::SeqCst);
            let limit = books.backlog.over();
            let why = if limit > self.cfg.event_backlog {
                "its thread did not take them"
            } else {
                "its peer does not read"
            };
            eprintln!(
                "qmp agent: connection {}: closed: more than {limit} bytes of events waited for it ({why})",
                self.id
            );
        }
        if books.stop_server {
            shared.stop();
        }
    }
}

/// How long a stopped session keeps writing to a peer that does not read
/// (what [`Server::run`] waits for its sessions).
pub(crate) const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// Writes everything the session has for its peer (once it is stopped), for
/// at most [`FLUSH_TIMEOUT`].
fn flush(
    agent: &mut Agent<'_, '_>,
    pump: &mut Pump<'_>,
    stream: &Stream,
    books: &mut Books,
) -> io::Result<()> {
    let deadline = Instant::now() + FLUSH_TIMEOUT;
    while !flushed(agent, pump, books) {
        if !write_with(pump, |b| send_now(stream, b))? {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            wait_writable(stream, left)?;
        }
    }
    Ok(())
}

/// One step of flushing a stopped session: `true` once everything went
/// (or the session ended); otherwise the pump has output to write.
pub(crate) fn flushed(agent: &mut Agent<'_, '_>, pump: &mut Pump<'_>, books: &mut Books) -> bool {
    loop {
        let clear = books.retry(agent);
        let wants = pump.step(agent, books.now());
        if wants.closed {
            return true;
        }
        if !pump.transmit().is_empty() {
            return false;
        }
        if clear {
            return true;
        }
        books.give_up(agent);
    }
}

/// Waits (poll(2)) until `stream` is writable or `timeout` passed.
fn wait_writable(stream: &Stream, timeout: Duration) -> io::Result<()> {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let timeout = Timespec {
        tv_sec: i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(timeout.subsec_nanos()),
    };
    let mut fds = [PollFd::new(stream, PollFlags::OUT)];
    match poll(&mut fds, Some(&timeout)) {
        Ok(_) | Err(rustix::io::Errno::INTR) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
