//! The blocking QMP client: qmp-core's sans-IO [`qmp_core::client::Client`]
//! driven over a Unix socket, a TCP socket, or any [`Transport`] (a pty or a
//! serial port through [`FdTransport`]).
//!
//! * [`Client::connect`] retries while the socket does not accept yet (QEMU
//!   creates the socket file before it listens), reads the greeting and
//!   negotiates (enabling `oob` when offered, see [`Config::oob`]), all
//!   within [`Config::connect_timeout`].
//! * [`Client::execute`] (typed, through serde) and [`Client::execute_raw`]
//!   (JSON text in, JSON text out) run one command. A QMP error reply is
//!   [`Error::Qmp`]; everything else ([`Error::Timeout`],
//!   [`Error::Disconnected`], …) is a failure of the connection or the
//!   peer. [`Error::is_qmp`] tells them apart.
//! * [`Request`] adds per-call options: a timeout that pre-empts a hung
//!   peer, `exec-oob`, file descriptors (`SCM_RIGHTS`, Unix only).
//!   [`Client::send`] + [`Client::wait`] pipeline requests (at most eight
//!   in-band requests are in flight with OOB, as QEMU wants; `send` waits
//!   for room).
//! * Events go to a bounded queue ([`Client::next_event`],
//!   [`Client::dropped_events`]) and to every matching [`Subscription`].
//!   Subscribe *before* sending the command that causes the event, so the
//!   event cannot slip past:
//!
//! ```no_run
//! use qmp_std::client::{Client, Config};
//! use std::time::Duration;
//!
//! let mut qmp = Client::connect_unix("/tmp/qsd.sock", Config::new())?;
//! let jobs = qmp.subscribe(&["JOB_STATUS_CHANGE"]);
//! qmp.execute_raw("blockdev-create", Some(r#"{"job-id": "j1", "options": {"driver": "qcow2", "file": "n0", "size": 1048576}}"#))?;
//! let concluded = qmp.wait_event_for(
//!     &jobs,
//!     |e| e.data_json().is_some_and(|d| d.contains(r#""concluded""#)),
//!     Some(Duration::from_secs(5)),
//! )?;
//! assert!(concluded.is_some());
//! # Ok::<(), qmp_std::client::Error>(())
//! ```
//!
//! Replies are framed in one buffer of [`Config::max_message`] bytes
//! (16 MiB by default) allocated once per client; a larger reply fails
//! its request with [`Error::Oversized`] and the session goes on. Replies
//! and messages that belong to nobody (unknown ids, id-less errors with
//! OOB, framing errors) are kept as [`Notice`]s, never silently dropped.

use crate::addr::Address;
use qmp_core::client::{
    Client as Core, ClientConfig, ClientEvent, ExecuteError, ExecuteOptions, Outcome, State,
};
use qmp_core::json::{JsonKind, RawJson};
use qmp_core::message::Timestamp;
use qmp_core::scan::{validate, FramerConfig};
use qmp_core::Instant as Clock;
use qmp_core::InsufficientSize;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// Default largest message: 16 MiB.
pub const DEFAULT_MAX_MESSAGE: usize = 16 << 20;
/// Default event queue length (per queue).
pub const DEFAULT_EVENT_QUEUE: usize = 1024;
/// Default time to connect, read the greeting and negotiate.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Requests the core tracks at once (pipelined plus timed-out ones whose
/// reply is still owed).
const PENDING: usize = 64;
/// Bytes read from the transport at a time.
const READ_CHUNK: usize = 64 << 10;
/// Notices kept before the oldest is dropped (and counted).
const NOTICE_QUEUE: usize = 256;

// ---------------------------------------------------------------------------
// Configuration

/// Client settings (builder style).
#[derive(Debug, Clone)]
pub struct Config {
    connect_timeout: Duration,
    retry_connect: bool,
    timeout: Option<Duration>,
    max_message: usize,
    oob: bool,
    event_queue: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self::new()
    }
}

impl Config {
    /// Connect (retrying) + greeting + negotiation within 5 s; no default
    /// per-call timeout; 16 MiB messages; `oob` enabled when offered; 1024
    /// queued events per queue.
    pub fn new() -> Self {
        Config {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            retry_connect: true,
            timeout: None,
            max_message: DEFAULT_MAX_MESSAGE,
            oob: true,
            event_queue: DEFAULT_EVENT_QUEUE,
        }
    }

    /// Time allowed for connecting (with retries), the greeting and the
    /// negotiation together.
    #[must_use]
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t;
        self
    }

    /// Whether to retry while the socket is missing (`ENOENT`) or refuses
    /// (`ECONNREFUSED`), until the connect timeout (default: yes).
    #[must_use]
    pub fn retry_connect(mut self, retry: bool) -> Self {
        self.retry_connect = retry;
        self
    }

    /// The timeout of every call that does not set its own
    /// ([`Request::timeout`]); `None` waits forever.
    #[must_use]
    pub fn timeout(mut self, t: Option<Duration>) -> Self {
        self.timeout = t;
        self
    }

    /// The largest message that can be received (the framer buffer).
    #[must_use]
    pub fn max_message(mut self, bytes: usize) -> Self {
        self.max_message = bytes.max(64);
        self
    }

    /// Whether to enable `oob` when the server offers it (default: yes).
    #[must_use]
    pub fn oob(mut self, oob: bool) -> Self {
        self.oob = oob;
        self
    }

    /// How many events each queue (the general one and each subscription)
    /// holds before the oldest is dropped and counted; 0 disables the
    /// general queue (events then go to subscriptions only).
    #[must_use]
    pub fn event_queue(mut self, len: usize) -> Self {
        self.event_queue = len;
        self
    }
}

// ---------------------------------------------------------------------------
// Errors

pub use crate::QmpError;

/// Why a call failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with an error.
    Qmp(QmpError),
    /// Could not connect.
    Connect {
        /// Where to.
        address: String,
        /// Why.
        source: io::Error,
    },
    /// No greeting, or no negotiation reply, within the connect timeout.
    HandshakeTimeout {
        /// The time allowed.
        after: Duration,
    },
    /// `qmp_capabilities` failed.
    Negotiation(QmpError),
    /// No reply within the call's timeout. The connection stays usable; a
    /// late reply is reported as a [`Notice::Unmatched`].
    Timeout {
        /// The command.
        command: String,
        /// The timeout.
        after: Duration,
    },
    /// The peer closed the connection (before answering `command`).
    Disconnected {
        /// The command waiting for a reply, if any.
        command: Option<String>,
    },
    /// The connection was closed earlier; nothing more can be sent.
    Closed,
    /// The transport failed; the connection is unusable.
    Io(io::Error),
    /// The reply was larger than [`Config::max_message`]; it was skipped.
    Oversized {
        /// The command.
        command: String,
        /// The reply's size in bytes.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The return value did not deserialize into the requested type.
    Decode {
        /// The command.
        command: String,
        /// serde_json's error.
        source: serde_json::Error,
    },
    /// The arguments are not one JSON object.
    Arguments(String),
    /// The request cannot be sent this way (e.g. `exec-oob` without `oob`
    /// negotiated, or file descriptors over TCP).
    Unsupported(String),
    /// The peer does not speak QMP (e.g. no valid greeting).
    Protocol(String),
}

impl Error {
    /// Whether this is a QMP error reply ([`Error::Qmp`]).
    pub fn is_qmp(&self) -> bool {
        matches!(self, Error::Qmp(_))
    }

    /// The QMP error reply, if this is one.
    pub fn qmp(&self) -> Option<&QmpError> {
        match self {
            Error::Qmp(e) => Some(e),
            _ => None,
        }
    }
}

fn secs(d: Duration) -> String {
    let s = format!("{:.3}", d.as_secs_f64());
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s} s")
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Qmp(e) => write!(f, "{e}"),
            Error::Connect { address, source } => {
                write!(f, "cannot connect to {address}: {source}")
            }
            Error::HandshakeTimeout { after } => write!(
                f,
                "no QMP greeting and negotiation within {} (is this a QMP monitor?)",
                secs(*after)
            ),
            Error::Negotiation(e) => write!(f, "capabilities negotiation failed: {e}"),
            Error::Timeout { command, after } => write!(
                f,
                "timed out after {} waiting for the reply to '{command}'",
                secs(*after)
            ),
            Error::Disconnected { command: Some(c) } => {
                write!(f, "connection closed by the peer before the reply to '{c}'")
            }
            Error::Disconnected { command: None } => f.write_str("connection closed by the peer"),
            Error::Closed => f.write_str("the connection is closed"),
            Error::Io(e) => write!(f, "connection failed: {e}"),
            Error::Oversized {
                command,
                len,
                limit,
            } => write!(
                f,
                "the reply to '{command}' is {len} bytes, over the {limit}-byte limit"
            ),
            Error::Decode { command, source } => {
                write!(f, "unexpected return value of '{command}': {source}")
            }
            Error::Arguments(e) => write!(f, "bad arguments: {e}"),
            Error::Unsupported(e) => f.write_str(e),
            Error::Protocol(e) => write!(f, "protocol error: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Qmp(e) | Error::Negotiation(e) => Some(e),
            Error::Connect { source, .. } | Error::Io(source) => Some(source),
            Error::Decode { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<QmpError> for Error {
    fn from(e: QmpError) -> Self {
        Error::Qmp(e)
    }
}

// ---------------------------------------------------------------------------
// Transports

/// A byte stream the client can run over.
///
/// `set_read_timeout` must make a blocked `read` return
/// [`io::ErrorKind::WouldBlock`] or [`io::ErrorKind::TimedOut`] after the
/// given time: that is how per-call timeouts pre-empt a hung peer.
pub trait Transport: Read + Write {
    /// Limits how long one `read` blocks (`None`: forever).
    ///
    /// # Errors
    /// The transport's error.
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()>;

    /// Limits how long one `write` blocks (`None`: forever).
    ///
    /// # Errors
    /// The transport's error.
    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let _ = timeout;
        Ok(())
    }

    /// Whether [`Transport::send_with_fds`] works (Unix sockets).
    fn supports_fds(&self) -> bool {
        false
    }

    /// Sends `bytes` with `fds` attached; returns the bytes sent (the rest
    /// goes out with `write`).
    ///
    /// # Errors
    /// `Unsupported` unless the transport is a Unix socket.
    fn send_with_fds(&mut self, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<usize> {
        let _ = (bytes, fds);
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "file descriptor passing needs a Unix socket",
        ))
    }
}

impl Transport for UnixStream {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        UnixStream::set_read_timeout(self, timeout)
    }
    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        UnixStream::set_write_timeout(self, timeout)
    }
    fn supports_fds(&self) -> bool {
        true
    }
    fn send_with_fds(&mut self, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<usize> {
        crate::fd::send_with_fds(&*self, bytes, fds)
    }
}

impl Transport for TcpStream {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }
    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_write_timeout(self, timeout)
    }
}

/// A Unix or TCP connection (what [`Client::connect`] opens).
pub use crate::addr::Stream;

impl Transport for Stream {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Unix(s) => UnixStream::set_read_timeout(s, timeout),
            Stream::Tcp(s) => TcpStream::set_read_timeout(s, timeout),
        }
    }
    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Unix(s) => UnixStream::set_write_timeout(s, timeout),
            Stream::Tcp(s) => TcpStream::set_write_timeout(s, timeout),
        }
    }
    fn supports_fds(&self) -> bool {
        matches!(self, Stream::Unix(_))
    }
    fn send_with_fds(&mut self, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => crate::fd::send_with_fds(&*s, bytes, fds),
            Stream::Tcp(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "file descriptor passing needs a Unix socket",
            )),
        }
    }
}

/// Any readable, writable file descriptor (a pty, a serial port, a pipe
/// pair's fd…) with timeouts implemented by `poll(2)`.
#[derive(Debug)]
pub struct FdTransport<T> {
    inner: T,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
}

impl<T> FdTransport<T> {
    /// Wraps `inner`.
    pub fn new(inner: T) -> Self {
        FdTransport {
            inner,
            read_timeout: None,
            write_timeout: None,
        }
    }

    /// Gives `inner` back.
    pub fn into_inner(self) -> T {
        self.inner
    }
}

fn wait_fd(
    fd: BorrowedFd<'_>,
    flags: rustix::event::PollFlags,
    t: Option<Duration>,
) -> io::Result<()> {
    let Some(t) = t else { return Ok(()) };
    let ts = rustix::event::Timespec {
        tv_sec: i64::try_from(t.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: t.subsec_nanos().into(),
    };
    loop {
        let mut fds = [rustix::event::PollFd::new(&fd, flags)];
        match rustix::event::poll(&mut fds, Some(&ts)) {
            Ok(0) => return Err(io::ErrorKind::TimedOut.into()),
            Ok(_) => return Ok(()),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

impl<T: Read + AsFd> Read for FdTransport<T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        wait_fd(
            self.inner.as_fd(),
            rustix::event::PollFlags::IN,
            self.read_timeout,
        )?;
        self.inner.read(buf)
    }
}

impl<T: Write + AsFd> Write for FdTransport<T> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        wait_fd(
            self.inner.as_fd(),
            rustix::event::PollFlags::OUT,
            self.write_timeout,
        )?;
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<T: Read + Write + AsFd> Transport for FdTransport<T> {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.read_timeout = timeout;
        Ok(())
    }
    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.write_timeout = timeout;
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Owned messages

/// The server greeting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Greeting {
    /// `QMP.version.qemu`: `(major, minor, micro)`.
    pub version: (u64, u64, u64),
    /// `QMP.version.package` (empty if absent).
    pub package: String,
    /// The offered capabilities.
    pub capabilities: Vec<String>,
    /// The whole `QMP` member, as received.
    pub json: String,
}

/// An event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The event name.
    pub name: String,
    /// `data` as received (JSON text), if present.
    pub data: Option<String>,
    /// `timestamp`, if well-formed (may be `-1`/`-1`).
    pub timestamp: Option<Timestamp>,
}

impl Event {
    /// `data` as JSON text.
    pub fn data_json(&self) -> Option<&str> {
        self.data.as_deref()
    }

    /// `data` deserialized (`null` when absent).
    ///
    /// # Errors
    /// serde_json's error.
    pub fn data<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.data.as_deref().unwrap_or("null"))
    }

    /// The event as one compact JSON object, members in QEMU's order
    /// (`timestamp`, `event`, `data`) and formatted like Python's
    /// `json.dumps(v, separators=(',', ':'))`.
    ///
    /// # Errors
    /// `data` that serde_json cannot read (QEMU's single-quoted strings).
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        let mut map = serde_json::Map::new();
        if let Some(t) = self.timestamp {
            map.insert(
                "timestamp".into(),
                serde_json::json!({"seconds": t.seconds, "microseconds": t.microseconds}),
            );
        }
        map.insert("event".into(), self.name.clone().into());
        if let Some(d) = &self.data {
            map.insert("data".into(), serde_json::from_str(d)?);
        }
        to_compact(&serde_json::Value::Object(map))
    }
}

/// Something the server sent that belongs to no call; kept so that nothing
/// is dropped silently ([`Client::take_notices`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notice {
    /// A reply nobody waits for (unknown id, or the late reply of a call
    /// that timed out).
    Unmatched {
        /// Its id, as JSON text.
        id: Option<String>,
        /// The whole reply.
        message: String,
    },
    /// An error reply without id that cannot be attributed (with OOB
    /// enabled; usually the server could not parse something).
    OrphanError(QmpError),
    /// A JSON value that is not a QMP message.
    Unknown(String),
    /// Bytes that do not frame as JSON (the session continues), or a
    /// message over the size limit that no call was waiting for.
    Framing(String),
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Notice::Unmatched {
                id: Some(id),
                message,
            } => {
                write!(f, "reply with id {id} matches no pending call: {message}")
            }
            Notice::Unmatched { id: None, message } => {
                write!(f, "reply matches no pending call: {message}")
            }
            Notice::OrphanError(e) => write!(f, "error reply without id: {e}"),
            Notice::Unknown(m) => write!(f, "not a QMP message: {m}"),
            Notice::Framing(e) => write!(f, "bad input from the server: {e}"),
        }
    }
}

/// A registered event filter; see [`Client::subscribe`].
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Subscription {
    id: u64,
}

/// A request sent with [`Client::send`], to collect with [`Client::wait`].
#[derive(Debug, PartialEq, Eq, Hash)]
#[must_use = "collect the reply with Client::wait"]
pub struct Pending {
    id: u64,
}

/// One command with its options.
#[derive(Debug)]
pub struct Request<'a> {
    name: &'a str,
    args: Option<Cow<'a, [u8]>>,
    oob: bool,
    timeout: Option<Option<Duration>>,
    fds: Vec<BorrowedFd<'a>>,
}

impl<'a> Request<'a> {
    /// The command `name`, without arguments, in-band, with the client's
    /// default timeout.
    pub fn new(name: &'a str) -> Self {
        Request {
            name,
            args: None,
            oob: false,
            timeout: None,
            fds: Vec::new(),
        }
    }

    /// Arguments as JSON text (one object; checked when sent).
    #[must_use]
    pub fn args_json(mut self, json: &'a str) -> Self {
        self.args = Some(Cow::Borrowed(json.as_bytes()));
        self
    }

    /// Arguments from any `Serialize` that gives a JSON object (`()` or
    /// `None` give no arguments).
    ///
    /// # Errors
    /// [`Error::Arguments`] when it does not serialize.
    pub fn args<A: Serialize + ?Sized>(mut self, args: &A) -> Result<Self, Error> {
        let bytes = serde_json::to_vec(args).map_err(|e| Error::Arguments(e.to_string()))?;
        self.args = (bytes != b"null").then_some(Cow::Owned(bytes));
        Ok(self)
    }

    /// Sends with `exec-oob` (needs `oob` negotiated and a command that
    /// allows it).
    #[must_use]
    pub fn oob(mut self) -> Self {
        self.oob = true;
        self
    }

    /// Gives up waiting for the reply after `t` ([`Error::Timeout`]).
    #[must_use]
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = Some(Some(t));
        self
    }

    /// Waits forever, whatever the client's default.
    #[must_use]
    pub fn no_timeout(mut self) -> Self {
        self.timeout = Some(None);
        self
    }

    /// Attaches a file descriptor (`SCM_RIGHTS`, same `sendmsg` as the
    /// command), e.g. for `getfd` or `add-fd`. Unix sockets only.
    #[must_use]
    pub fn fd(mut self, fd: BorrowedFd<'a>) -> Self {
        self.fds.push(fd);
        self
    }
}

// ---------------------------------------------------------------------------
// The client

struct Call {
    command: String,
    timeout: Option<Duration>,
}

struct Sub {
    id: u64,
    names: Vec<String>,
    queue: VecDeque<Event>,
    dropped: u64,
}

/// An event of the core, made owned (so the core can be used again).
enum Happened {
    Greeting(Greeting),
    Negotiated,
    NegotiationFailed(QmpError),
    Resolved(u64, Result<Vec<u8>, Resolution>),
    Event(Event),
    Notice(Notice),
}

enum Resolution {
    Qmp(QmpError),
    Timeout,
    Disconnected,
    Oversized(usize),
    Cancelled,
}

/// A blocking QMP client over the transport `T`.
pub struct Client<T: Transport = Stream> {
    io: T,
    core: Core<Box<[u8]>, PENDING>,
    rx: Box<[u8]>,
    start: usize,
    end: usize,
    tx: Vec<u8>,
    epoch: Instant,
    cfg: Config,
    greeting: Option<Greeting>,
    negotiation: Option<Result<(), QmpError>>,
    calls: HashMap<u64, Call>,
    done: HashMap<u64, Result<Vec<u8>, Error>>,
    events: VecDeque<Event>,
    events_dropped: u64,
    subs: Vec<Sub>,
    next_sub: u64,
    notices: VecDeque<Notice>,
    notices_dropped: u64,
    broken: bool,
    read_timeout: Option<Option<Duration>>,
    write_timeout: Option<Option<Duration>>,
}

impl<T: Transport> fmt::Debug for Client<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("greeting", &self.greeting)
            .field("oob", &self.core.oob_enabled())
            .field("in_flight", &self.calls.len())
            .field("queued_events", &self.events.len())
            .finish_non_exhaustive()
    }
}

fn is_retryable(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
    )
}

fn connect_with_retry<S>(
    address: &str,
    cfg: &Config,
    deadline: Instant,
    mut attempt: impl FnMut(Duration) -> io::Result<S>,
) -> Result<S, Error> {
    let mut backoff = Duration::from_millis(5);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match attempt(left.max(Duration::from_millis(1))) {
            Ok(s) => return Ok(s),
            Err(e) if cfg.retry_connect && is_retryable(&e) && !left.is_zero() => {
                std::thread::sleep(backoff.min(left));
                backoff = (backoff * 2).min(Duration::from_millis(100));
            }
            Err(source) => {
                return Err(Error::Connect {
                    address: address.to_owned(),
                    source,
                })
            }
        }
    }
}

impl Client<Stream> {
    /// Connects to `address` (see [`Client::connect_unix`],
    /// [`Client::connect_tcp`]).
    ///
    /// # Errors
    /// [`Error::Connect`], [`Error::HandshakeTimeout`],
    /// [`Error::Negotiation`], [`Error::Protocol`], …
    pub fn connect(address: &Address, cfg: Config) -> Result<Self, Error> {
        match address {
            Address::Unix(p) => Client::connect_unix(p, cfg),
            Address::Tcp(hp) => Client::connect_tcp(hp, cfg),
        }
    }

    /// Connects to a Unix socket, retrying while it is missing or refuses
    /// (see [`Config::retry_connect`]), then reads the greeting and
    /// negotiates.
    ///
    /// # Errors
    /// As [`Client::connect`].
    pub fn connect_unix(path: impl AsRef<Path>, cfg: Config) -> Result<Self, Error> {
        let path = path.as_ref();
        let deadline = Instant::now() + cfg.connect_timeout;
        let name = format!("unix:{}", path.display());
        let s = connect_with_retry(&name, &cfg, deadline, |_| UnixStream::connect(path))?;
        Client::handshake_until(Stream::Unix(s), cfg, deadline)
    }

    /// Connects to TCP `HOST:PORT`, retrying while refused.
    ///
    /// # Errors
    /// As [`Client::connect`].
    pub fn connect_tcp(host_port: &str, cfg: Config) -> Result<Self, Error> {
        let deadline = Instant::now() + cfg.connect_timeout;
        let name = format!("tcp:{host_port}");
        let addr = crate::agent::resolve(host_port).map_err(|source| Error::Connect {
            address: name.clone(),
            source,
        })?;
        let s = connect_with_retry(&name, &cfg, deadline, |left| {
            TcpStream::connect_timeout(&addr, left)
        })?;
        let _ = s.set_nodelay(true);
        Client::handshake_until(Stream::Tcp(s), cfg, deadline)
    }
}

impl<T: Transport> Client<T> {
    /// Runs the greeting and negotiation over an already open transport,
    /// within [`Config::connect_timeout`].
    ///
    /// # Errors
    /// [`Error::HandshakeTimeout`], [`Error::Negotiation`],
    /// [`Error::Disconnected`], [`Error::Io`].
    pub fn handshake(io: T, cfg: Config) -> Result<Self, Error> {
        let deadline = Instant::now() + cfg.connect_timeout;
        Client::handshake_until(io, cfg, deadline)
    }

    fn handshake_until(io: T, cfg: Config, deadline: Instant) -> Result<Self, Error> {
        let core_cfg = ClientConfig::new().with_oob(cfg.oob);
        let buf = vec![0u8; cfg.max_message].into_boxed_slice();
        let mut c = Client {
            io,
            core: Core::with_config(buf, core_cfg),
            rx: vec![0u8; READ_CHUNK].into_boxed_slice(),
            start: 0,
            end: 0,
            tx: vec![0u8; 512],
            epoch: Instant::now(),
            cfg,
            greeting: None,
            negotiation: None,
            calls: HashMap::new(),
            done: HashMap::new(),
            events: VecDeque::new(),
            events_dropped: 0,
            subs: Vec::new(),
            next_sub: 1,
            notices: VecDeque::new(),
            notices_dropped: 0,
            broken: false,
            read_timeout: None,
            write_timeout: None,
        };
        let allowed = c.cfg.connect_timeout;
        c.set_write_timeout(Some(deadline.saturating_duration_since(Instant::now())))?;
        loop {
            c.flush_transmit()?;
            match c.negotiation.take() {
                Some(Ok(())) => break,
                Some(Err(e)) => return Err(Error::Negotiation(e)),
                None => {}
            }
            if c.core.state() == State::Closed {
                return Err(if c.greeting.is_none() {
                    Error::Protocol("connection closed before the QMP greeting".into())
                } else {
                    Error::Disconnected {
                        command: Some("qmp_capabilities".into()),
                    }
                });
            }
            if Instant::now() >= deadline {
                return Err(Error::HandshakeTimeout { after: allowed });
            }
            c.step(Some(deadline))?;
        }
        c.set_write_timeout(None)?;
        Ok(c)
    }

    /// The server greeting.
    pub fn greeting(&self) -> &Greeting {
        static EMPTY: Greeting = Greeting {
            version: (0, 0, 0),
            package: String::new(),
            capabilities: Vec::new(),
            json: String::new(),
        };
        self.greeting.as_ref().unwrap_or(&EMPTY)
    }

    /// Whether `oob` was negotiated (`exec-oob` may be used).
    pub fn oob_enabled(&self) -> bool {
        self.core.oob_enabled()
    }

    /// The transport.
    pub fn transport(&self) -> &T {
        &self.io
    }

    /// Whether the connection is closed (by the peer or after an error).
    pub fn is_closed(&self) -> bool {
        self.broken || self.core.state() == State::Closed
    }

    // -- commands ------------------------------------------------------

    /// Runs `name` with `args` (any `Serialize` giving a JSON object; `&()`
    /// for none) and deserializes the return value.
    ///
    /// # Errors
    /// [`Error::Qmp`] for an error reply; see [`Error`] for the rest.
    pub fn execute<R: DeserializeOwned, A: Serialize + ?Sized>(
        &mut self,
        name: &str,
        args: &A,
    ) -> Result<R, Error> {
        self.call_typed(Request::new(name).args(args)?)
    }

    /// Runs `name` with optional arguments as JSON text (one object) and
    /// returns the `return` value as JSON text, as received.
    ///
    /// # Errors
    /// As [`Client::execute`].
    pub fn execute_raw(&mut self, name: &str, args_json: Option<&str>) -> Result<String, Error> {
        let mut req = Request::new(name);
        if let Some(a) = args_json {
            req = req.args_json(a);
        }
        self.call(req)
    }

    /// Runs one request; returns the `return` value as JSON text.
    ///
    /// # Errors
    /// As [`Client::execute`].
    pub fn call(&mut self, req: Request<'_>) -> Result<String, Error> {
        let p = self.send(req)?;
        self.wait(p)
    }

    /// Runs one request and deserializes the return value.
    ///
    /// # Errors
    /// As [`Client::execute`].
    pub fn call_typed<R: DeserializeOwned>(&mut self, req: Request<'_>) -> Result<R, Error> {
        let command = req.name.to_owned();
        let p = self.send(req)?;
        let bytes = self.wait_bytes(p)?;
        serde_json::from_slice(&bytes).map_err(|source| Error::Decode { command, source })
    }

    /// Sends a request without waiting for its reply. With `oob` enabled at
    /// most eight in-band requests are in flight (QEMU's queue); `send`
    /// reads replies until there is room (within the request's timeout).
    ///
    /// # Errors
    /// [`Error::Arguments`], [`Error::Unsupported`], [`Error::Timeout`]
    /// (no room in time), transport errors.
    pub fn send(&mut self, req: Request<'_>) -> Result<Pending, Error> {
        if self.broken {
            return Err(Error::Closed);
        }
        if !req.fds.is_empty() && !self.io.supports_fds() {
            return Err(Error::Unsupported(
                "file descriptor passing needs a Unix socket".into(),
            ));
        }
        let args = match &req.args {
            None => None,
            Some(bytes) => {
                let v = validate(bytes, FramerConfig::new()).map_err(|_| {
                    Error::Arguments(format!(
                        "'{}' is not valid JSON",
                        String::from_utf8_lossy(bytes)
                    ))
                })?;
                if v.kind() != JsonKind::Object {
                    return Err(Error::Arguments("arguments must be a JSON object".into()));
                }
                Some(v)
            }
        };
        let timeout = req.timeout.unwrap_or(self.cfg.timeout);
        let room_deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let now = self.now_ms();
            let mut opts = ExecuteOptions::new().oob(req.oob);
            if let Some(t) = timeout {
                opts = opts.timeout_ms(u64::try_from(t.as_millis()).unwrap_or(u64::MAX));
            }
            match self
                .core
                .execute_raw(now, req.name, args, opts, &mut self.tx)
            {
                Ok((token, n)) => {
                    let id = token.id();
                    self.calls.insert(
                        id,
                        Call {
                            command: req.name.to_owned(),
                            timeout,
                        },
                    );
                    self.set_write_timeout(timeout)?;
                    let res = write_message(&mut self.io, &self.tx[..n], &req.fds);
                    if let Err(e) = res {
                        self.calls.remove(&id);
                        self.fail_io();
                        return Err(match e.kind() {
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error::Timeout {
                                command: req.name.to_owned(),
                                after: timeout.unwrap_or_default(),
                            },
                            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => {
                                Error::Disconnected {
                                    command: Some(req.name.to_owned()),
                                }
                            }
                            _ => Error::Io(e),
                        });
                    }
                    return Ok(Pending { id });
                }
                Err(ExecuteError::InsufficientSize(InsufficientSize { required })) => {
                    self.tx.resize(required, 0);
                }
                Err(ExecuteError::TooManyInBand | ExecuteError::TooManyInFlight) => {
                    if room_deadline.is_some_and(|d| Instant::now() >= d) {
                        return Err(Error::Timeout {
                            command: req.name.to_owned(),
                            after: timeout.unwrap_or_default(),
                        });
                    }
                    if self.core.state() == State::Closed {
                        return Err(Error::Closed);
                    }
                    self.step(room_deadline)?;
                }
                Err(ExecuteError::Closed) => return Err(Error::Closed),
                Err(ExecuteError::OobNotNegotiated) => {
                    return Err(Error::Unsupported(format!(
                        "cannot send '{}' with exec-oob: oob is not negotiated",
                        req.name
                    )))
                }
                Err(e) => {
                    return Err(Error::Unsupported(format!(
                        "cannot send '{}': {e}",
                        req.name
                    )))
                }
            }
        }
    }

    /// Waits for the reply to a request from [`Client::send`]; returns the
    /// `return` value as JSON text.
    ///
    /// # Errors
    /// As [`Client::execute`].
    pub fn wait(&mut self, pending: Pending) -> Result<String, Error> {
        let bytes = self.wait_bytes(pending)?;
        Ok(String::from_utf8(bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
    }

    /// Like [`Client::wait`], deserializing the return value.
    ///
    /// # Errors
    /// As [`Client::execute`].
    pub fn wait_typed<R: DeserializeOwned>(&mut self, pending: Pending) -> Result<R, Error> {
        let command = self
            .calls
            .get(&pending.id)
            .map(|c| c.command.clone())
            .unwrap_or_default();
        let bytes = self.wait_bytes(pending)?;
        serde_json::from_slice(&bytes).map_err(|source| Error::Decode { command, source })
    }

    /// Whether the reply to `pending` has arrived (reads what is already
    /// buffered, does not block).
    pub fn is_ready(&self, pending: &Pending) -> bool {
        self.done.contains_key(&pending.id)
    }

    fn wait_bytes(&mut self, pending: Pending) -> Result<Vec<u8>, Error> {
        loop {
            if let Some(r) = self.done.remove(&pending.id) {
                return r;
            }
            if !self.calls.contains_key(&pending.id) {
                return Err(Error::Closed);
            }
            self.step(None)?;
        }
    }

    // -- events --------------------------------------------------------

    /// Registers an event filter: from now on, events named in `names` (any
    /// event if empty) are also queued for this subscription. Take it
    /// *before* sending the command that causes the events.
    pub fn subscribe(&mut self, names: &[&str]) -> Subscription {
        let id = self.next_sub;
        self.next_sub += 1;
        self.subs.push(Sub {
            id,
            names: names.iter().map(|&n| n.to_owned()).collect(),
            queue: VecDeque::new(),
            dropped: 0,
        });
        Subscription { id }
    }

    /// Removes a subscription; returns the events it still held.
    pub fn unsubscribe(&mut self, sub: Subscription) -> Vec<Event> {
        match self.subs.iter().position(|s| s.id == sub.id) {
            Some(i) => self.subs.remove(i).queue.into(),
            None => Vec::new(),
        }
    }

    /// The next event of the general queue, reading the connection for up
    /// to `timeout` (`None`: forever). `Ok(None)`: nothing in time.
    ///
    /// # Errors
    /// [`Error::Disconnected`] once the peer closed and the queue is empty;
    /// transport errors.
    pub fn next_event(&mut self, timeout: Option<Duration>) -> Result<Option<Event>, Error> {
        self.wait_event_in(None, |_| true, timeout)
    }

    /// The next event of a subscription (see [`Client::next_event`]).
    ///
    /// # Errors
    /// As [`Client::next_event`].
    pub fn next_event_for(
        &mut self,
        sub: &Subscription,
        timeout: Option<Duration>,
    ) -> Result<Option<Event>, Error> {
        self.wait_event_in(Some(sub.id), |_| true, timeout)
    }

    /// The first event of a subscription for which `pred` holds, reading
    /// the connection for up to `timeout`. Only that event is taken from
    /// the subscription's queue; the others stay.
    ///
    /// # Errors
    /// As [`Client::next_event`].
    pub fn wait_event_for(
        &mut self,
        sub: &Subscription,
        pred: impl FnMut(&Event) -> bool,
        timeout: Option<Duration>,
    ) -> Result<Option<Event>, Error> {
        self.wait_event_in(Some(sub.id), pred, timeout)
    }

    /// Events dropped from the general queue because it was full.
    pub fn dropped_events(&self) -> u64 {
        self.events_dropped
    }

    /// Events dropped from a subscription's queue because it was full.
    pub fn dropped_events_for(&self, sub: &Subscription) -> u64 {
        self.subs
            .iter()
            .find(|s| s.id == sub.id)
            .map_or(0, |s| s.dropped)
    }

    /// Reads what the connection has, for up to `timeout`, queueing events
    /// and replies (useful to watch for events between commands).
    ///
    /// # Errors
    /// Transport errors ([`Error::Disconnected`] when the peer closed).
    pub fn poll(&mut self, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.core.state() == State::Closed {
                return Err(Error::Disconnected { command: None });
            }
            self.step(Some(deadline))?;
            if Instant::now() >= deadline && self.start >= self.end {
                return Ok(());
            }
        }
    }

    /// Everything the server sent that belonged to no call (see [`Notice`]).
    pub fn take_notices(&mut self) -> Vec<Notice> {
        self.notices.drain(..).collect()
    }

    /// Notices dropped because more than 256 were waiting.
    pub fn dropped_notices(&self) -> u64 {
        self.notices_dropped
    }

    fn wait_event_in(
        &mut self,
        sub: Option<u64>,
        mut pred: impl FnMut(&Event) -> bool,
        timeout: Option<Duration>,
    ) -> Result<Option<Event>, Error> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let queue = match sub {
                None => Some(&mut self.events),
                Some(id) => self
                    .subs
                    .iter_mut()
                    .find(|s| s.id == id)
                    .map(|s| &mut s.queue),
            };
            let Some(queue) = queue else {
                return Err(Error::Unsupported("unknown subscription".into()));
            };
            if let Some(i) = queue.iter().position(&mut pred) {
                return Ok(queue.remove(i));
            }
            if self.core.state() == State::Closed && self.start >= self.end {
                return Err(Error::Disconnected { command: None });
            }
            if deadline.is_some_and(|d| Instant::now() >= d) && self.start >= self.end {
                return Ok(None);
            }
            self.step(deadline)?;
        }
    }

    // -- the pump ------------------------------------------------------

    /// The core's clock: milliseconds since the client was created.
    fn now_ms(&self) -> Clock {
        Clock::from_millis(u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    fn set_write_timeout(&mut self, t: Option<Duration>) -> Result<(), Error> {
        let t = t.map(|t| t.max(Duration::from_millis(1)));
        if self.write_timeout != Some(t) {
            self.io.set_write_timeout(t).map_err(Error::Io)?;
            self.write_timeout = Some(t);
        }
        Ok(())
    }

    fn fail_io(&mut self) {
        self.broken = true;
        self.core.handle_eof();
        self.drain();
    }

    fn flush_transmit(&mut self) -> Result<(), Error> {
        loop {
            match self.core.poll_transmit(&mut self.tx) {
                Ok(None) => return Ok(()),
                Ok(Some(n)) => {
                    if let Err(e) = write_message(&mut self.io, &self.tx[..n], &[]) {
                        self.fail_io();
                        return Err(Error::Io(e));
                    }
                }
                Err(qmp_core::encode::EncodeError::InsufficientSize(InsufficientSize {
                    required,
                })) => {
                    self.tx.resize(required, 0);
                }
                Err(e) => return Err(Error::Protocol(e.to_string())),
            }
        }
    }

    /// One step: feed buffered input, or apply deadlines, or read once
    /// (blocking until the earliest call deadline or `until`).
    fn step(&mut self, until: Option<Instant>) -> Result<(), Error> {
        if self.start < self.end {
            let now = self.now_ms();
            let n = self.core.handle_input(now, &self.rx[self.start..self.end]);
            self.start += n;
            self.drain();
            return Ok(());
        }
        if self.broken {
            return Err(Error::Closed);
        }
        if self.core.state() == State::Closed {
            return Ok(());
        }
        let now_ms = self.now_ms();
        self.core.handle_timeout(now_ms);
        self.drain();
        let mut wait = self
            .core
            .poll_timeout()
            .map(|at| Duration::from_millis(at.saturating_millis_since(now_ms)));
        if let Some(until) = until {
            let left = until.saturating_duration_since(Instant::now());
            wait = Some(wait.map_or(left, |w| w.min(left)));
        }
        if wait.is_some_and(|w| w.is_zero()) {
            return Ok(());
        }
        if self.read_timeout != Some(wait) {
            if let Err(e) = self.io.set_read_timeout(wait) {
                self.fail_io();
                return Err(Error::Io(e));
            }
            self.read_timeout = Some(wait);
        }
        match self.io.read(&mut self.rx) {
            Ok(0) => {
                self.core.handle_eof();
                self.drain();
            }
            Ok(n) => {
                self.start = 0;
                self.end = n.min(self.rx.len());
            }
            Err(e) => match e.kind() {
                io::ErrorKind::WouldBlock
                | io::ErrorKind::TimedOut
                | io::ErrorKind::Interrupted => {
                    let now = self.now_ms();
                    self.core.handle_timeout(now);
                    self.drain();
                }
                io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => {
                    self.core.handle_eof();
                    self.drain();
                }
                _ => {
                    self.fail_io();
                    return Err(Error::Io(e));
                }
            },
        }
        Ok(())
    }

    /// Polls the core's events into owned form and files them.
    fn drain(&mut self) {
        while let Some(h) = self.core.poll_event().map(own) {
            match h {
                Happened::Greeting(g) => self.greeting = Some(g),
                Happened::Negotiated => self.negotiation = Some(Ok(())),
                Happened::NegotiationFailed(e) => self.negotiation = Some(Err(e)),
                Happened::Resolved(id, r) => {
                    let call = self.calls.remove(&id);
                    let command = call.as_ref().map(|c| c.command.clone()).unwrap_or_default();
                    let r = r.map_err(|e| match e {
                        Resolution::Qmp(e) => Error::Qmp(e),
                        Resolution::Timeout => Error::Timeout {
                            command,
                            after: call.and_then(|c| c.timeout).unwrap_or_default(),
                        },
                        Resolution::Disconnected => Error::Disconnected {
                            command: Some(command),
                        },
                        Resolution::Oversized(len) => Error::Oversized {
                            command,
                            len,
                            limit: self.cfg.max_message,
                        },
                        Resolution::Cancelled => Error::Closed,
                    });
                    self.done.insert(id, r);
                }
                Happened::Event(e) => self.deliver(e),
                Happened::Notice(n) => {
                    if self.notices.len() >= NOTICE_QUEUE {
                        self.notices.pop_front();
                        self.notices_dropped += 1;
                    }
                    self.notices.push_back(n);
                }
            }
        }
    }

    fn deliver(&mut self, e: Event) {
        let cap = self.cfg.event_queue;
        for s in &mut self.subs {
            if s.names.is_empty() || s.names.contains(&e.name) {
                if s.queue.len() >= cap.max(1) {
                    s.queue.pop_front();
                    s.dropped += 1;
                }
                s.queue.push_back(e.clone());
            }
        }
        if cap > 0 {
            if self.events.len() >= cap {
                self.events.pop_front();
                self.events_dropped += 1;
            }
            self.events.push_back(e);
        }
    }
}

/// Writes one message, the descriptors (if any) on its first bytes.
fn write_message<T: Transport>(
    io: &mut T,
    mut bytes: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<()> {
    if !fds.is_empty() {
        let n = io.send_with_fds(bytes, fds)?;
        bytes = bytes.get(n..).unwrap_or(&[]);
    }
    while !bytes.is_empty() {
        match io.write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = bytes.get(n..).unwrap_or(&[]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    io.flush()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn qmp_error(class: impl fmt::Display, desc: impl fmt::Display) -> QmpError {
    QmpError {
        class: class.to_string(),
        desc: desc.to_string(),
    }
}

fn own(ev: ClientEvent<'_>) -> Happened {
    match ev {
        ClientEvent::Greeting(g) => Happened::Greeting(Greeting {
            version: g.version,
            package: g.package.map(|p| p.to_string()).unwrap_or_default(),
            capabilities: g.capabilities().map(|c| c.to_string()).collect(),
            json: text(g.raw.as_bytes()),
        }),
        ClientEvent::Negotiated { .. } => Happened::Negotiated,
        ClientEvent::NegotiationFailed { class, desc } => {
            Happened::NegotiationFailed(qmp_error(class, desc))
        }
        ClientEvent::Resolved { token, outcome } => Happened::Resolved(
            token.id(),
            match outcome {
                Outcome::Return(v) => Ok(v.as_bytes().to_vec()),
                Outcome::Error { class, desc } => Err(Resolution::Qmp(qmp_error(class, desc))),
                Outcome::Timeout => Err(Resolution::Timeout),
                Outcome::Disconnected => Err(Resolution::Disconnected),
                Outcome::Oversized { len } => Err(Resolution::Oversized(len)),
                _ => Err(Resolution::Cancelled),
            },
        ),
        ClientEvent::Event(e) => Happened::Event(Event {
            name: e.name.to_string(),
            data: e.data.map(|d| text(d.as_bytes())),
            timestamp: e.timestamp,
        }),
        ClientEvent::Unmatched { id, message } => Happened::Notice(Notice::Unmatched {
            id: id.map(|i| text(i.as_bytes())),
            message: text(message.as_bytes()),
        }),
        ClientEvent::OrphanError { class, desc } => {
            Happened::Notice(Notice::OrphanError(qmp_error(class, desc)))
        }
        ClientEvent::Unknown(v) => Happened::Notice(Notice::Unknown(text(v.as_bytes()))),
        ClientEvent::FramingError(e) => Happened::Notice(Notice::Framing(e.to_string())),
        _ => Happened::Notice(Notice::Framing("unrecognised client event".into())),
    }
}

// ---------------------------------------------------------------------------
// Python-compatible compact JSON

/// Re-serialises JSON text compactly, exactly as Python's
/// `json.dumps(json.loads(text), separators=(',', ':'))` does: members in
/// input order, non-ASCII escaped as lowercase `\uXXXX`, floats in Python's
/// `repr` style.
///
/// # Errors
/// Text serde_json cannot read (e.g. QEMU's single-quoted strings).
pub fn compact_json(text: &str) -> Result<String, serde_json::Error> {
    let v: serde_json::Value = serde_json::from_str(text)?;
    to_compact(&v)
}

/// A JSON value as Python's `json.dumps(v, separators=(',', ':'))` writes
/// it (see [`compact_json`]).
///
/// # Errors
/// serde_json's error (not expected for a `Value`).
pub fn to_compact(v: &serde_json::Value) -> Result<String, serde_json::Error> {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PyCompact);
    v.serialize(&mut ser)?;
    Ok(String::from_utf8(out)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

/// Validates that `text` is one JSON value (QEMU's grammar, as the client
/// sends it) and returns its kind.
pub fn json_kind(text: &str) -> Option<JsonKind> {
    validate(text.as_bytes(), FramerConfig::new())
        .ok()
        .map(|v: RawJson<'_>| v.kind())
}

struct PyCompact;

impl serde_json::ser::Formatter for PyCompact {
    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if (c as u32) < 0x7f {
                continue;
            }
            w.write_all(&fragment.as_bytes()[start..i])?;
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                write!(w, "\\u{u:04x}")?;
            }
            start = i + c.len_utf8();
        }
        w.write_all(&fragment.as_bytes()[start..])
    }

    fn write_f64<W: ?Sized + Write>(&mut self, w: &mut W, v: f64) -> io::Result<()> {
        w.write_all(py_float(v).as_bytes())
    }
}

/// Python's `repr(float)`.
fn py_float(v: f64) -> String {
    if !v.is_finite() {
        return if v.is_nan() {
            "NaN".into()
        } else if v > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    let sci = format!("{:e}", v.abs());
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let digits: String = mant.chars().filter(char::is_ascii_digit).collect();
    let exp: i64 = exp.parse().unwrap_or(0);
    let decpt = exp + 1;
    let sign = if v.is_sign_negative() { "-" } else { "" };
    let n = digits.len() as i64;
    if decpt <= -4 || decpt > 16 {
        let m = if digits.len() > 1 {
            format!("{}.{}", &digits[..1], &digits[1..])
        } else {
            digits.clone()
        };
        let e = decpt - 1;
        format!("{sign}{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
    } else if decpt <= 0 {
        format!("{sign}0.{}{digits}", "0".repeat((-decpt) as usize))
    } else if decpt < n {
        let d = decpt as usize;
        format!("{sign}{}.{}", &digits[..d], &digits[d..])
    } else {
        format!("{sign}{digits}{}.0", "0".repeat((decpt - n) as usize))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_floats() {
        for (v, s) in [
            (0.1, "0.1"),
            (1.0, "1.0"),
            (-0.0, "-0.0"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (123.456, "123.456"),
            (1.5e-300, "1.5e-300"),
            (-2.5e20, "-2.5e+20"),
        ] {
            assert_eq!(py_float(v), s, "{v}");
        }
    }

    #[test]
    fn python_compact() {
        assert_eq!(
            compact_json(r#"{"b": 1, "a": [true, null, "é\u00e9\ud83d\ude00/\u007f"], "f": 0.10000000000000001}"#)
                .unwrap(),
            r#"{"b":1,"a":[true,null,"\u00e9\u00e9\ud83d\ude00/\u007f"],"f":0.1}"#
        );
        assert_eq!(compact_json("\"\\n\\u0001\"").unwrap(), r#""\n\u0001""#);
    }
}
