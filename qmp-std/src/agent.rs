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
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
const READ_CHUNK: usize = 64 << 10;

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
/// sizes).
#[derive(Debug, Clone)]
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
}

impl ServerConfig {
    /// QMP with `oob` offered, compact output, 1 MiB buffers.
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
        }
    }

    /// The guest-agent dialect, 1 MiB buffers.
    pub fn qga(commands: Vec<CommandDef>) -> Self {
        ServerConfig {
            offer_oob: false,
            qga: true,
            ..ServerConfig::qmp((0, 0, 0), "", commands)
        }
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
    /// Broadcasts `name` (with `data`) stamped now. Returns how many
    /// connections it was handed to (sessions still negotiating drop it).
    pub fn emit(&self, name: &str, data: Option<Json>) -> usize {
        self.send(EventOut::now(name, data))
    }

    /// Broadcasts an event as given.
    pub fn send(&self, event: EventOut) -> usize {
        let event = Arc::new(event);
        let conns = self.shared.conns();
        conns
            .values()
            .filter(|tx| tx.send(ConnMsg::Event(Arc::clone(&event))).is_ok())
            .count()
    }

    /// How many connections are open.
    pub fn connections(&self) -> usize {
        self.shared.conns().len()
    }
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

enum ConnMsg {
    Event(Arc<EventOut>),
    Complete(u32, Response),
    Stop,
}

/// Wakes a session sleeping in poll(2): one byte on a socket pair, written
/// only when none is waiting already.
struct Waker {
    /// The writing end (non-blocking).
    tx: UnixStream,
    /// A byte was written that the session has not drained yet.
    notified: AtomicBool,
}

impl Waker {
    fn wake(&self) {
        if !self.notified.swap(true, Ordering::SeqCst) {
            // Non-blocking: a full pair already holds a wake-up.
            let _ = (&self.tx).write(&[1]);
        }
    }
}

/// A connection's mailbox: messages for its session, which is woken up.
#[derive(Clone)]
struct ConnTx {
    tx: Sender<ConnMsg>,
    waker: Arc<Waker>,
}

impl ConnTx {
    /// Sends `msg`; `Err` once the session has ended.
    fn send(&self, msg: ConnMsg) -> Result<(), ()> {
        self.tx.send(msg).map_err(|_| ())?;
        self.waker.wake();
        Ok(())
    }
}

enum Wake {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

struct Shared {
    conns: Mutex<HashMap<u64, ConnTx>>,
    stopping: AtomicBool,
    next_id: AtomicU64,
    wake: Wake,
}

impl Shared {
    fn conns(&self) -> MutexGuard<'_, HashMap<u64, ConnTx>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn stop(&self) {
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
        }
    }
}

// ---------------------------------------------------------------------------
// Sockets

enum Listener {
    Unix(UnixListener, PathBuf),
    Tcp(TcpListener),
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
        let (listener, wake) = match addr {
            Address::Unix(path) => {
                let l = bind_unix(path)?;
                (Listener::Unix(l, path.clone()), Wake::Unix(path.clone()))
            }
            Address::Tcp(hp) => {
                let l = TcpListener::bind(hp.as_str())?;
                let mut a = l.local_addr()?;
                if a.ip().is_unspecified() {
                    a.set_ip(match a {
                        SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                        SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                    });
                }
                (Listener::Tcp(l), Wake::Tcp(a))
            }
        };
        Ok(Server {
            listener,
            cfg: Arc::new(cfg),
            handler,
            shared: Arc::new(Shared {
                conns: Mutex::new(HashMap::new()),
                stopping: AtomicBool::new(false),
                next_id: AtomicU64::new(1),
                wake,
            }),
        })
    }

    /// The address actually bound (the real port for `HOST:0`).
    pub fn local_addr(&self) -> Address {
        match &self.listener {
            Listener::Unix(_, p) => Address::Unix(p.clone()),
            Listener::Tcp(l) => match l.local_addr() {
                Ok(a) => Address::Tcp(a.to_string()),
                Err(_) => Address::Tcp(String::new()),
            },
        }
    }

    /// The event broadcaster.
    pub fn events(&self) -> EventSender {
        EventSender {
            shared: Arc::clone(&self.shared),
        }
    }

    /// A handle to stop the server.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle {
            shared: Arc::clone(&self.shared),
        }
    }

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
        while !self.shared.conns().is_empty() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        if let Listener::Unix(_, path) = &self.listener {
            let _ = std::fs::remove_file(path);
        }
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
                Err(e) => match e.kind() {
                    io::ErrorKind::Interrupted
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::WouldBlock => continue,
                    // Out of descriptors and the like: wait and retry.
                    _ if e.raw_os_error().is_some_and(|c| c == 23 || c == 24) => {
                        thread::sleep(Duration::from_millis(100));
                        continue;
                    }
                    _ => return Err(e),
                },
            };
            self.start_connection(stream);
        }
    }

    fn start_connection(&self, stream: Stream) {
        let id = self.shared.next_id.fetch_add(1, Ordering::SeqCst);
        // Out of descriptors: the connection is dropped (closed).
        let Ok((wake_tx, wake_rx)) = UnixStream::pair() else {
            return;
        };
        if wake_tx.set_nonblocking(true).is_err() || wake_rx.set_nonblocking(true).is_err() {
            return;
        }
        let (tx, rx) = mpsc::channel();
        let tx = ConnTx {
            tx,
            waker: Arc::new(Waker {
                tx: wake_tx,
                notified: AtomicBool::new(false),
            }),
        };
        self.shared.conns().insert(id, tx.clone());
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
                    id,
                    cfg: &cfg,
                    handler: &*handler,
                    events: &events,
                    tx,
                    rx,
                    wake_rx,
                };
                if let Err(e) = conn.serve(stream) {
                    if !matches!(
                        e.kind(),
                        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                    ) {
                        eprintln!("qmp agent: connection {id}: {e}");
                    }
                }
                shared.conns().remove(&id);
            });
        if spawned.is_err() {
            self.shared.conns().remove(&id);
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

struct Conn<'s> {
    id: u64,
    cfg: &'s ServerConfig,
    handler: &'s dyn Handler,
    events: &'s EventSender,
    tx: ConnTx,
    rx: Receiver<ConnMsg>,
    /// The reading end of the wake-up pair (non-blocking).
    wake_rx: UnixStream,
}

/// Output the session owes its peer that found the agent's output buffer
/// full: sent, in order, once there is room.
enum Owed {
    Reply(ReplyToken, Response),
    Event(Arc<EventOut>),
}

/// The session besides the agent and the pump — none of it does I/O.
struct Books {
    /// Replies and events waiting for output room, in order.
    owed: VecDeque<Owed>,
    /// Deferred requests not answered yet, by token id.
    outstanding: HashMap<u32, ReplyToken>,
    /// The server stops this session (flush, then close).
    stop: bool,
    /// Stop the server once output is flushed.
    stop_server: bool,
    /// Time zero of the agent's millisecond clock.
    epoch: Instant,
}

/// Output is written once no more input can be taken at once (one write
/// for many pipelined requests), or when this much is staged: the pump's
/// transmit buffer.
const FLUSH_AT: usize = 64 * 1024;

impl Books {
    /// Milliseconds since [`Books::epoch`] (the agent's clock).
    fn now(&self) -> Clock {
        Clock::from_millis(u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    /// Answers a request, or owes the answer while output is full (or
    /// something owed earlier waits: order is kept).
    fn answer(&mut self, agent: &mut Agent<'_, '_>, token: ReplyToken, response: Response) {
        if !self.owed.is_empty() {
            self.owed.push_back(Owed::Reply(token, response));
            return;
        }
        if let Some(token) = complete(agent, token, &response) {
            self.owed.push_back(Owed::Reply(token, response));
        }
    }

    /// Emits an event, or owes it while output is full.
    fn emit(&mut self, agent: &mut Agent<'_, '_>, event: Arc<EventOut>) {
        let now = self.now();
        if !self.owed.is_empty() || !emit(agent, &event, now) {
            self.owed.push_back(Owed::Event(event));
        }
    }

    /// Sends what is owed as far as output room allows; whether all of it
    /// went.
    fn retry(&mut self, agent: &mut Agent<'_, '_>) -> bool {
        if self.owed.is_empty() {
            return true;
        }
        let now = self.now();
        while let Some(owed) = self.owed.pop_front() {
            let blocked = match owed {
                Owed::Reply(token, response) => {
                    complete(agent, token, &response).map(|t| Owed::Reply(t, response))
                }
                Owed::Event(event) => (!emit(agent, &event, now)).then_some(Owed::Event(event)),
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
    fn give_up(&mut self, agent: &mut Agent<'_, '_>) {
        for owed in self.owed.drain(..) {
            if let Owed::Reply(token, _) = owed {
                let stuck = CoreReply::Error {
                    class: "GenericError",
                    desc: "internal error: output buffer stuck",
                };
                let _ = agent.complete(token, stuck);
            }
        }
    }
}

/// Answers a request; gives the token back when the output is full. (A
/// reply that can never be sent is answered by the core with an error in
/// its place.)
fn complete(
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
fn emit(agent: &mut Agent<'_, '_>, ev: &EventOut, now: Clock) -> bool {
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

/// Reads what the socket holds into the pump, without blocking. Returns
/// whether anything happened (input or end of stream).
fn read(stream: &Stream, pump: &mut Pump<'_>) -> bool {
    loop {
        match rustix::net::recv(stream, pump.read_buf(), rustix::net::RecvFlags::DONTWAIT) {
            Ok((n, _)) => {
                pump.received(n);
                return true;
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(rustix::io::Errno::AGAIN) => return false,
            // A reset connection and the like: the peer is gone.
            Err(_) => {
                pump.received(0);
                return true;
            }
        }
    }
}

/// Writes what the pump staged.
fn write(stream: &mut Stream, pump: &mut Pump<'_>) -> io::Result<()> {
    let n = pump.transmit().len();
    stream.write_all(pump.transmit())?;
    pump.sent(n);
    Ok(())
}

impl Conn<'_> {
    fn serve(&mut self, mut stream: Stream) -> io::Result<()> {
        let cfg = self.cfg;
        let specs: Vec<CommandSpec<'_>> = cfg
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
        let throttles: Vec<Throttle<'_>> = cfg
            .throttle
            .iter()
            .map(|(event, window_ms)| Throttle::new(event, *window_ms))
            .collect();
        let acfg = if cfg.qga {
            AgentConfig::qga(&specs)
        } else {
            let a = AgentConfig::new(cfg.version, &cfg.package, &specs).with_oob(cfg.offer_oob);
            if cfg.pretty {
                a.with_style(Style::QMP_PRETTY)
            } else {
                a
            }
        }
        .with_throttle(&throttles);
        let mut fb = vec![0u8; cfg.framer_size.max(1)];
        let mut qb = vec![0u8; cfg.queue_len()];
        let mut ob = vec![0u8; cfg.out_size];
        let mut tb = vec![
            0u8;
            if throttles.is_empty() {
                0
            } else {
                4 * THROTTLE_SLOT_SIZE
            }
        ];
        let bufs = AgentBuffers::new(&mut fb, &mut qb, &mut ob).with_throttle(&mut tb);
        let mut agent =
            Agent::new(acfg, bufs).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let (mut rx, mut tx) = (vec![0u8; READ_CHUNK], vec![0u8; FLUSH_AT]);
        let mut pump = Pump::new(&mut rx, &mut tx);
        let mut books = Books {
            owed: VecDeque::new(),
            outstanding: HashMap::new(),
            stop: false,
            stop_server: false,
            epoch: Instant::now(),
        };
        let result = self.session(&mut agent, &mut pump, &mut stream, &mut books);
        stream.shutdown();
        if books.stop_server {
            self.events.shared.stop();
        }
        result
    }

    /// The session: the pump's turns, with the handler, the mailbox and
    /// the socket. Returns when the peer is gone and answered, or the
    /// session is stopped.
    fn session(
        &mut self,
        agent: &mut Agent<'_, '_>,
        pump: &mut Pump<'_>,
        stream: &mut Stream,
        books: &mut Books,
    ) -> io::Result<()> {
        loop {
            let wants = pump.step(agent, books.now());
            if wants.closed {
                return Ok(());
            }
            let clear = books.retry(agent);
            if books.stop || books.stop_server {
                return flush(agent, pump, stream, books);
            }
            if clear && wants.app {
                self.requests(agent, books);
                // Take more input before writing, unless much is staged.
                if pump.transmit().len() < FLUSH_AT && !books.stop_server {
                    continue;
                }
            }
            if !pump.transmit().is_empty() {
                write(stream, pump)?;
                continue;
            }
            if !clear {
                books.give_up(agent);
                continue;
            }
            // Messages already waiting, or input already in the socket:
            // take them without sleeping. Messages first: an event
            // broadcast before the input arrived goes out before what the
            // input causes (QEMU emits to every monitor as it happens: a
            // STOP sent while this session was still negotiating is not
            // delivered once its `qmp_capabilities` has been read).
            if self.mailbox(agent, books) {
                continue;
            }
            if wants.read && read(stream, pump) {
                continue;
            }
            let timeout = wants
                .timeout
                .map(|due| due.saturating_millis_since(books.now()));
            self.sleep(wants.read, stream, timeout)?;
        }
    }

    /// Hands the requests waiting in the agent to the handler, while
    /// nothing is owed.
    fn requests(&mut self, agent: &mut Agent<'_, '_>, books: &mut Books) {
        while books.owed.is_empty() && !books.stop_server {
            let Some((token, outcome, deferred, stop)) = self.next_request(agent) else {
                return;
            };
            books.stop_server |= stop;
            let reply = match outcome {
                Outcome::Reply(r) => Some(r),
                Outcome::Deferred if deferred => {
                    // Before the mailbox: the completion may already wait
                    // there.
                    books.outstanding.insert(token.id(), token);
                    self.mailbox(agent, books);
                    continue;
                }
                Outcome::Deferred => Some(Response::generic_error(
                    "internal error: deferred without taking a completer",
                )),
            };
            // Events the handler emitted go out before its reply.
            self.mailbox(agent, books);
            if let Some(r) = reply {
                books.answer(agent, token, r);
            }
        }
    }

    /// Waits (poll(2)) until the socket is readable (when `read`), a
    /// message is sent to this connection, or `timeout_ms` passed.
    fn sleep(&self, read: bool, stream: &Stream, timeout_ms: Option<u64>) -> io::Result<()> {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        let timeout = timeout_ms.map(|ms| Timespec {
            tv_sec: i64::try_from(ms / 1000).unwrap_or(i64::MAX),
            tv_nsec: i64::try_from(ms % 1000 * 1_000_000).unwrap_or(0),
        });
        let socket_flags = if read {
            PollFlags::IN
        } else {
            PollFlags::empty()
        };
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
            self.tx.waker.notified.store(false, Ordering::SeqCst);
        }
        Ok(())
    }

    /// Hands the next request to the handler.
    fn next_request(
        &mut self,
        agent: &mut Agent<'_, '_>,
    ) -> Option<(ReplyToken, Outcome, bool, bool)> {
        let inc = agent.poll_request()?;
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
        let handler = self.handler;
        let outcome = catch_unwind(AssertUnwindSafe(|| handler.handle(&mut ctx, &req)))
            .unwrap_or_else(|_| Outcome::generic_error("internal error: command handler panicked"));
        Some((inc.token, outcome, ctx.deferred, ctx.stop))
    }

    /// Takes every message already sent to this connection (events,
    /// deferred completions, stop), without blocking. Returns whether there
    /// was any.
    fn mailbox(&mut self, agent: &mut Agent<'_, '_>, books: &mut Books) -> bool {
        let mut any = false;
        while let Ok(msg) = self.rx.try_recv() {
            any = true;
            match msg {
                ConnMsg::Stop => books.stop = true,
                ConnMsg::Event(ev) => books.emit(agent, ev),
                ConnMsg::Complete(request, r) => {
                    if let Some(token) = books.outstanding.remove(&request) {
                        books.answer(agent, token, r);
                    }
                }
            }
        }
        any
    }
}

/// Writes everything the session has for its peer (once it is stopped).
fn flush(
    agent: &mut Agent<'_, '_>,
    pump: &mut Pump<'_>,
    stream: &mut Stream,
    books: &mut Books,
) -> io::Result<()> {
    loop {
        let clear = books.retry(agent);
        let wants = pump.step(agent, books.now());
        if wants.closed {
            return Ok(());
        }
        if !pump.transmit().is_empty() {
            write(stream, pump)?;
        } else if clear {
            return Ok(());
        } else {
            books.give_up(agent);
        }
    }
}
