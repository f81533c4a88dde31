//! The blocking QMP client: qmp-core's sans-IO [`qmp_core::client::Client`]
//! driven through qmp-core's pump over a Unix socket, a TCP socket, or any
//! [`Transport`] (a pty or a serial port through [`FdTransport`]).
//!
//! * [`Client::connect`] retries while the socket does not accept yet (QEMU
//!   creates the socket file before it listens), reads the greeting and
//!   negotiates (enabling `oob` when offered, see [`Config::oob`]), all
//!   within [`Config::connect_timeout`]. A first message that is not the
//!   greeting (events aside) fails at once ([`Error::Protocol`]).
//! * [`Client::execute`] (typed, through serde) and [`Client::execute_raw`]
//!   (JSON text in, JSON text out) run one command. A QMP error reply is
//!   [`Error::Qmp`]; everything else ([`Error::Timeout`],
//!   [`Error::Disconnected`], …) is a failure of the connection or the
//!   peer. [`Error::is_qmp`] tells them apart. The guest-agent client
//!   ([`crate::qga::Qga`]) has the same calls and the same errors.
//! * [`Call`] adds per-call options: a timeout that pre-empts a hung peer,
//!   `exec-oob`, file descriptors (`SCM_RIGHTS`, Unix only).
//!   [`Client::send`] + [`Client::wait`] pipeline calls (at most eight
//!   in-band requests are in flight with OOB, as QEMU wants; `send` waits
//!   for room).
//! * [`Client::load_schema`] fetches the server's `query-qmp-schema`
//!   ([`LiveSchema`]: lookups, libvirt path queries); with
//!   [`Client::check_with`] every call's arguments are checked against it
//!   before sending, and a call the server would refuse fails at once with
//!   the server's own text ([`Error::Rejected`]).
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
//! # Ok::<(), qmp_std::Error>(())
//! ```
//!
//! Replies are framed in one buffer of [`Config::max_message`] bytes
//! (16 MiB by default) allocated once per client; a larger reply fails
//! its call with [`Error::Oversized`] and the session goes on. Replies
//! and messages that belong to nobody (unknown ids, id-less errors with
//! OOB, framing errors) are kept as [`Notice`]s, never silently dropped
//! (or handed to [`Config::on_notice`] as they arrive).

use crate::addr::Address;
use crate::buf::Buf;
use crate::link::Link;
use crate::machine::{self, Machine};
use crate::schema::LiveSchema;
use qmp_core::client::{Client as Core, ClientConfig};
use qmp_core::json::{JsonKind, RawJson};
use qmp_core::scan::{validate, FramerConfig};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::borrow::Cow;
use std::fmt;
use std::io::{self, Write};
use std::os::fd::BorrowedFd;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use crate::addr::Stream;
pub use crate::config::{
    Config, NoticeHook, DEFAULT_CONNECT_TIMEOUT, DEFAULT_EVENT_QUEUE, DEFAULT_MAX_MESSAGE,
    DEFAULT_SYNC_TIMEOUT,
};
pub use crate::error::{Error, Handshake, QmpError};
pub use crate::inbox::{Event, Greeting, Notice};
pub use crate::transport::{FdTransport, Transport};

/// Requests the core tracks at once (pipelined plus timed-out ones whose
/// reply is still owed).
pub(crate) const PENDING: usize = 64;

/// The QMP session of a client with `cfg` (its framer buffer lazily
/// backed: see [`crate::buf`]).
pub(crate) fn new_session(cfg: &Config) -> Core<Buf, PENDING> {
    let core_cfg = ClientConfig::new().with_oob(cfg.oob);
    Core::with_config(Buf::zeroed(cfg.max_message), core_cfg)
}

/// A registered event filter; see [`Client::subscribe`].
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Subscription {
    id: u64,
}

/// A call sent with [`Client::send`], to collect with [`Client::wait`].
#[derive(Debug, PartialEq, Eq, Hash)]
#[must_use = "collect the reply with Client::wait"]
pub struct Pending {
    pub(crate) id: u64,
}

/// One command with its options, for [`Client::call`], [`Client::send`]
/// and [`Qga::call`](crate::qga::Qga::call).
#[derive(Debug)]
pub struct Call<'a> {
    pub(crate) name: &'a str,
    pub(crate) args: Option<Cow<'a, [u8]>>,
    pub(crate) oob: bool,
    pub(crate) timeout: Option<Option<Duration>>,
    pub(crate) fds: Vec<BorrowedFd<'a>>,
}

impl<'a> Call<'a> {
    /// The command `name`, without arguments, in-band, with the client's
    /// default timeout.
    pub fn new(name: &'a str) -> Self {
        Call {
            name,
            args: None,
            oob: false,
            timeout: None,
            fds: Vec::new(),
        }
    }

    /// The command name.
    pub fn name(&self) -> &str {
        self.name
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
    /// allows it; never to a guest agent).
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

    /// Attaches a file descriptor (`SCM_RIGHTS`, on the command's own
    /// write), e.g. for `getfd` or `add-fd`. Unix sockets only.
    #[must_use]
    pub fn fd(mut self, fd: BorrowedFd<'a>) -> Self {
        self.fds.push(fd);
        self
    }
}

/// A blocking QMP client over the transport `T`.
pub struct Client<T: Transport = Stream> {
    link: Link<T, Core<Buf, PENDING>>,
    greeting: Greeting,
    schema: Option<Arc<LiveSchema>>,
}

impl<T: Transport> fmt::Debug for Client<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("greeting", &self.greeting)
            .field("oob", &self.link.m.session.oob_enabled())
            .field("in_flight", &self.link.m.inbox.in_flight())
            .field("queued_events", &self.link.m.inbox.queued_events())
            .field("checks", &self.schema.is_some())
            .finish_non_exhaustive()
    }
}

impl Client<Stream> {
    /// Connects to `address` (see [`Client::connect_unix`],
    /// [`Client::connect_tcp`]).
    ///
    /// # Errors
    /// [`Error::Connect`], [`Error::HandshakeTimeout`],
    /// [`Error::HandshakeRefused`], [`Error::Protocol`], …
    pub fn connect(address: &Address, cfg: Config) -> Result<Self, Error> {
        crate::transport::open(address, cfg, Client::handshake_until)
    }

    /// Connects to a Unix socket, retrying while it is missing or refuses
    /// (see [`Config::retry_connect`]), then reads the greeting and
    /// negotiates.
    ///
    /// # Errors
    /// As [`Client::connect`].
    pub fn connect_unix(path: impl AsRef<Path>, cfg: Config) -> Result<Self, Error> {
        Client::connect(&Address::unix(path.as_ref()), cfg)
    }

    /// Connects to TCP `HOST:PORT`, retrying while refused.
    ///
    /// # Errors
    /// As [`Client::connect`].
    pub fn connect_tcp(host_port: &str, cfg: Config) -> Result<Self, Error> {
        Client::connect(&Address::Tcp(host_port.to_owned()), cfg)
    }
}

impl<T: Transport> Client<T> {
    /// Runs the greeting and negotiation over an already open transport,
    /// within [`Config::connect_timeout`].
    ///
    /// # Errors
    /// [`Error::HandshakeTimeout`], [`Error::HandshakeRefused`],
    /// [`Error::Protocol`], [`Error::Disconnected`], [`Error::Io`].
    pub fn handshake(io: T, cfg: Config) -> Result<Self, Error> {
        let deadline = Instant::now() + cfg.connect_timeout;
        Client::handshake_until(io, cfg, deadline)
    }

    fn handshake_until(io: T, cfg: Config, deadline: Instant) -> Result<Self, Error> {
        let allowed = cfg.connect_timeout;
        let mut link = Link::new(io, Machine::new(new_session(&cfg), cfg));
        link.m.inbox.expect_greeting = true;
        link.set_write_timeout(Some(deadline.saturating_duration_since(Instant::now())))?;
        let mut greeting = None;
        loop {
            if let Some(done) = link.m.negotiation(&mut greeting) {
                done?;
                link.set_write_timeout(None)?;
                return Ok(Client {
                    link,
                    greeting: greeting.unwrap_or_default(),
                    schema: None,
                });
            }
            if Instant::now() >= deadline {
                return Err(machine::handshake_timeout(&greeting, allowed));
            }
            link.turn(Some(deadline))?;
        }
    }

    /// The server greeting.
    pub fn greeting(&self) -> &Greeting {
        &self.greeting
    }

    /// Whether `oob` was negotiated (`exec-oob` may be used).
    pub fn oob_enabled(&self) -> bool {
        self.link.m.session.oob_enabled()
    }

    // -- commands ------------------------------------------------------

    client_calls!(Client);

    /// Before a QMP command: the argument check, when a schema is set
    /// ([`Client::check_with`]).
    fn prepare(&mut self, call: &Call<'_>) -> Result<(), Error> {
        match &self.schema {
            Some(schema) => schema.check_raw(call.name, call.arguments()?),
            None => Ok(()),
        }
    }

    // -- the live schema -----------------------------------------------

    /// Fetches the server's schema (`query-qmp-schema`) and indexes it
    /// ([`LiveSchema`]). It does not turn checks on: see
    /// [`Client::check_with`].
    ///
    /// # Errors
    /// As [`Client::execute`]; [`Error::Protocol`] when the reply is not a
    /// schema.
    pub fn load_schema(&mut self) -> Result<LiveSchema, Error> {
        LiveSchema::parse(self.execute_raw("query-qmp-schema", None)?)
    }

    /// Checks every later call's arguments against `schema` before sending
    /// ([`Client::execute`], [`Client::execute_raw`], [`Client::call`],
    /// [`Client::send`] alike): a call the server would refuse for its
    /// arguments, or an unknown command, fails with [`Error::Rejected`]
    /// (QEMU's class and text) and nothing is sent. `None` turns checks
    /// off. Share one schema between clients of the same server with the
    /// `Arc`.
    pub fn check_with(&mut self, schema: Option<Arc<LiveSchema>>) {
        self.schema = schema;
    }

    /// The schema calls are checked against, if any.
    pub fn checked_against(&self) -> Option<&Arc<LiveSchema>> {
        self.schema.as_ref()
    }

    /// Sends `call` and waits for its return value.
    fn run(&mut self, call: &Call<'_>) -> Result<Vec<u8>, Error> {
        let p = self.link.send(call)?;
        self.link.wait_bytes(p)
    }

    fn machine(&self) -> &Machine<Core<Buf, PENDING>> {
        &self.link.m
    }

    fn machine_mut(&mut self) -> &mut Machine<Core<Buf, PENDING>> {
        &mut self.link.m
    }

    /// Sends a call without waiting for its reply. With `oob` enabled at
    /// most eight in-band requests are in flight (QEMU's queue); `send`
    /// reads replies until there is room (within the call's timeout).
    ///
    /// # Errors
    /// [`Error::Arguments`], [`Error::Rejected`], [`Error::Unsupported`],
    /// [`Error::Timeout`] (no room in time), transport errors.
    pub fn send(&mut self, call: Call<'_>) -> Result<Pending, Error> {
        self.prepare(&call)?;
        self.link.send(&call)
    }

    /// Waits for the reply to a call from [`Client::send`]; returns the
    /// `return` value as JSON text.
    ///
    /// # Errors
    /// As [`Client::execute`].
    pub fn wait(&mut self, pending: Pending) -> Result<String, Error> {
        self.link.wait(pending)
    }

    /// Like [`Client::wait`], deserializing the return value.
    ///
    /// # Errors
    /// As [`Client::execute`].
    pub fn wait_typed<R: DeserializeOwned>(&mut self, pending: Pending) -> Result<R, Error> {
        self.link.wait_typed(pending)
    }

    /// Whether the reply to `pending` has arrived (does not read).
    pub fn is_ready(&self, pending: &Pending) -> bool {
        self.link.m.inbox.is_done(pending.id)
    }

    // -- events --------------------------------------------------------

    /// Registers an event filter: from now on, events named in `names` (any
    /// event if empty) are also queued for this subscription. Take it
    /// *before* sending the command that causes the events.
    pub fn subscribe(&mut self, names: &[&str]) -> Subscription {
        Subscription {
            id: self.link.m.inbox.subscribe(names),
        }
    }

    /// Removes a subscription; returns the events it still held.
    pub fn unsubscribe(&mut self, sub: Subscription) -> Vec<Event> {
        self.link.m.inbox.unsubscribe(sub.id)
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
        self.link.m.inbox.dropped_events(None)
    }

    /// Events dropped from a subscription's queue because it was full.
    pub fn dropped_events_for(&self, sub: &Subscription) -> u64 {
        self.link.m.inbox.dropped_events(Some(sub.id))
    }

    /// Reads what the connection has, for up to `timeout`, filing events
    /// and replies (useful to watch for events between commands).
    ///
    /// # Errors
    /// Transport errors ([`Error::Disconnected`] when the peer closed).
    pub fn poll(&mut self, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.link.m.is_finished() {
                return Err(Error::Disconnected { command: None });
            }
            self.link.turn(Some(deadline))?;
            if Instant::now() >= deadline && self.link.m.is_settled() {
                return Ok(());
            }
        }
    }

    fn wait_event_in(
        &mut self,
        sub: Option<u64>,
        mut pred: impl FnMut(&Event) -> bool,
        timeout: Option<Duration>,
    ) -> Result<Option<Event>, Error> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if let Some(e) = self.link.m.inbox.take_event(sub, &mut pred)? {
                return Ok(Some(e));
            }
            if self.link.m.is_finished() {
                return Err(Error::Disconnected { command: None });
            }
            if deadline.is_some_and(|d| Instant::now() >= d) && self.link.m.is_settled() {
                return Ok(None);
            }
            self.link.turn(deadline)?;
        }
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
