//! A blocking guest-agent (QGA) client over a Unix socket, TCP, or any
//! `Read + Write` (a virtio-serial port opened as a file).
//!
//! [`Qga`] drives [`qmp_core::qga::QgaClient`]: it syncs on connect (a 0xFF
//! byte, then `guest-sync-delimited` with a random 64-bit id, everything
//! before the delimited reply discarded), and again before the next command
//! after any timeout. Every call has a deadline ([`Qga::set_timeout`]);
//! running out of time is [`Error::Timeout`].
//!
//! ```no_run
//! use std::time::Duration;
//! let mut qga = qmp_std::qga::Qga::connect_unix("/run/qga.sock", Duration::from_secs(5))?;
//! qga.ping()?;
//! match qga.execute_raw("guest-get-time", None)? {
//!     Ok(json) => println!("{json}"),
//!     Err(e) => eprintln!("{e}"),
//! }
//! let info: serde_json::Value = qga.execute("guest-info", None)?;
//! println!("{}", info["version"]);
//! # Ok::<(), qmp_std::qga::Error>(())
//! ```

use qmp_core::InsufficientSize;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use qmp_core::client::Outcome;
use qmp_core::client::{ClientEvent, ExecuteError, ExecuteOptions, Token};
use qmp_core::encode::EncodeError;
use qmp_core::qga::{QgaClient, QgaState};
use qmp_core::scan::{validate, FramerConfig};
use qmp_core::Instant as Clock;
use serde::de::DeserializeOwned;

use crate::Address;

/// The largest reply accepted (larger ones fail the call with
/// [`Error::Protocol`]; the session goes on).
pub const MAX_REPLY: usize = 1 << 20;

/// Sync attempts (each with a fresh id and the full timeout) before giving
/// up with [`Error::Timeout`].
const SYNC_ATTEMPTS: usize = 3;

pub use crate::QmpError;

/// Why a call failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Connecting, reading or writing failed.
    Io(io::Error),
    /// No answer within the timeout (the next call re-syncs first).
    Timeout {
        /// What was waited for (`sync` or the command name).
        waiting_for: String,
    },
    /// The agent closed the connection.
    Disconnected,
    /// The agent answered with an error (typed calls only; see
    /// [`Qga::execute_raw`] for the raw shape).
    Command(QmpError),
    /// The arguments are not valid JSON.
    InvalidArguments(String),
    /// The reply could not be used (too large, wrong shape).
    Protocol(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "guest agent I/O error: {e}"),
            Error::Timeout { waiting_for } => {
                write!(f, "timed out waiting for the guest agent ({waiting_for})")
            }
            Error::Disconnected => f.write_str("the guest agent closed the connection"),
            Error::Command(e) => write!(f, "{e}"),
            Error::InvalidArguments(e) => write!(f, "invalid arguments: {e}"),
            Error::Protocol(e) => write!(f, "guest agent protocol error: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            Error::Command(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

/// A Unix or TCP stream ([`Qga::connect`]).
pub use crate::addr::Stream;

type SetTimeout<S> = fn(&S, Option<Duration>) -> io::Result<()>;

/// How a request ended, owned.
enum Done {
    Return(String),
    Error(QmpError),
    Timeout,
    Disconnected,
    Other(String),
}

/// The blocking guest-agent client. See the [module docs](self).
pub struct Qga<S: Read + Write> {
    stream: S,
    set_timeout: SetTimeout<S>,
    client: QgaClient<Vec<u8>, 4>,
    rx: Vec<u8>,
    rx_start: usize,
    rx_end: usize,
    out: Vec<u8>,
    timeout: Duration,
    epoch: Instant,
    rng: u64,
    /// A sync left waiting by an I/O error.
    pending_sync: Option<Token>,
}

impl<S: Read + Write> fmt::Debug for Qga<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Qga")
            .field("state", &self.client.state())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

fn retry_connect<T>(
    timeout: Duration,
    mut connect: impl FnMut() -> io::Result<T>,
) -> Result<T, Error> {
    let deadline = Instant::now() + timeout;
    loop {
        match connect() {
            Ok(s) => return Ok(s),
            Err(e) if Instant::now() >= deadline => return Err(Error::Io(e)),
            Err(_) => thread::sleep(Duration::from_millis(20)),
        }
    }
}

impl Qga<UnixStream> {
    /// Connects to a Unix socket (retrying until it accepts, within
    /// `timeout`) and syncs. `timeout` is also each call's timeout.
    ///
    /// # Errors
    /// Connecting failed, or the sync timed out.
    pub fn connect_unix(path: impl AsRef<Path>, timeout: Duration) -> Result<Self, Error> {
        let path = path.as_ref();
        let stream = retry_connect(timeout, || UnixStream::connect(path))?;
        let mut qga = Qga::from_unix(stream, timeout);
        qga.sync()?;
        Ok(qga)
    }

    /// Wraps a connected Unix stream (not yet synced; the first call
    /// syncs).
    pub fn from_unix(stream: UnixStream, timeout: Duration) -> Self {
        Qga::with_read_timeout(stream, timeout, UnixStream::set_read_timeout)
    }
}

impl Qga<Stream> {
    /// Connects to `addr` (Unix or TCP; retrying until it accepts, within
    /// `timeout`) and syncs.
    ///
    /// # Errors
    /// Connecting failed, or the sync timed out.
    pub fn connect(addr: &Address, timeout: Duration) -> Result<Self, Error> {
        let stream = match addr {
            Address::Unix(p) => Stream::Unix(retry_connect(timeout, || UnixStream::connect(p))?),
            Address::Tcp(hp) => {
                let s = retry_connect(timeout, || TcpStream::connect(hp.as_str()))?;
                let _ = s.set_nodelay(true);
                Stream::Tcp(s)
            }
        };
        let mut qga = Qga::with_read_timeout(stream, timeout, |s, d| match s {
            Stream::Unix(s) => s.set_read_timeout(d),
            Stream::Tcp(s) => s.set_read_timeout(d),
        });
        qga.sync()?;
        Ok(qga)
    }
}

impl<S: Read + Write> Qga<S> {
    /// Wraps any stream (not yet synced; the first call syncs). Without a
    /// way to time reads out, deadlines are checked only between reads: a
    /// silent agent blocks a read forever. Prefer [`Qga::connect_unix`] or
    /// [`Qga::connect`] for sockets.
    pub fn new(stream: S, timeout: Duration) -> Self {
        Qga::with_read_timeout(stream, timeout, |_, _| Ok(()))
    }

    /// Wraps a stream with a function that sets its read timeout (like
    /// `UnixStream::set_read_timeout`), so calls time out while reading.
    pub fn with_read_timeout(stream: S, timeout: Duration, set_timeout: SetTimeout<S>) -> Self {
        let mut seed = RandomState::new().build_hasher();
        seed.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        seed.write_u32(std::process::id());
        Qga {
            stream,
            set_timeout,
            client: QgaClient::new(vec![0; MAX_REPLY]),
            rx: vec![0; 64 * 1024],
            rx_start: 0,
            rx_end: 0,
            out: vec![0; 1024],
            timeout,
            epoch: Instant::now(),
            rng: seed.finish() | 1,
            pending_sync: None,
        }
    }

    /// The per-call timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sets the per-call timeout.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Whether the session is synced (the next call will not sync first).
    pub fn is_synced(&self) -> bool {
        self.client.state() == QgaState::Synced
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// A random id in `1..=i64::MAX` (xorshift64*, seeded from the time, the
    /// pid and std's per-process random hash keys).
    fn random_id(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) & i64::MAX as u64).max(1)
    }

    /// The core's clock: milliseconds since the client was created.
    fn now_ms(&self) -> Clock {
        Clock::from_millis(u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    fn deadline(&self) -> Clock {
        let ms = u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX);
        self.now_ms().saturating_add_millis(ms.max(1))
    }

    /// Runs the sync procedure (a fresh random id per attempt, up to three
    /// attempts of the full timeout each).
    ///
    /// # Errors
    /// [`Error::Timeout`] when no attempt succeeded, I/O errors,
    /// [`Error::Disconnected`].
    pub fn sync(&mut self) -> Result<(), Error> {
        if let Some(t) = self.pending_sync.take() {
            self.client.cancel(t);
            self.drain_events(None);
        }
        for _ in 0..SYNC_ATTEMPTS {
            let id = self.random_id();
            let now = self.now_ms();
            let deadline = self.deadline();
            let token = match self.client.sync(now, id, deadline) {
                Ok(t) => t,
                Err(ExecuteError::Closed) => return Err(Error::Disconnected),
                Err(e) => return Err(Error::Protocol(e.to_string())),
            };
            self.pending_sync = Some(token);
            self.drain_events(None);
            loop {
                match self.client.poll_transmit(&mut self.out) {
                    Ok(Some(n)) => {
                        let bytes = self.out.get(..n).unwrap_or(&[]);
                        self.stream.write_all(bytes)?;
                    }
                    Ok(None) => break,
                    Err(EncodeError::InsufficientSize(InsufficientSize { required })) => {
                        self.out.resize(required, 0)
                    }
                    Err(e) => return Err(Error::Protocol(e.to_string())),
                }
            }
            self.stream.flush()?;
            let done = self.wait(token)?;
            self.pending_sync = None;
            match done {
                Done::Return(_) => return Ok(()),
                Done::Timeout => continue,
                Done::Disconnected => return Err(Error::Disconnected),
                Done::Error(e) => return Err(Error::Command(e)),
                Done::Other(e) => return Err(Error::Protocol(e)),
            }
        }
        Err(Error::Timeout {
            waiting_for: "sync".into(),
        })
    }

    /// `guest-ping`.
    ///
    /// # Errors
    /// As [`Qga::execute`].
    pub fn ping(&mut self) -> Result<(), Error> {
        self.execute_raw("guest-ping", None)?
            .map(|_| ())
            .map_err(Error::Command)
    }

    /// Runs a command; `args_json` is the `arguments` object as JSON text.
    /// Returns the `return` value as compact JSON text (64-bit integers
    /// exact), or the agent's error. Syncs first when needed.
    ///
    /// # Errors
    /// [`Error::Timeout`] (the next call re-syncs), [`Error::Io`],
    /// [`Error::Disconnected`], [`Error::InvalidArguments`],
    /// [`Error::Protocol`].
    pub fn execute_raw(
        &mut self,
        name: &str,
        args_json: Option<&str>,
    ) -> Result<Result<String, QmpError>, Error> {
        let args = match args_json {
            Some(a) => Some(
                validate(a.as_bytes(), FramerConfig::new())
                    .map_err(|e| Error::InvalidArguments(format!("{e:?}")))?,
            ),
            None => None,
        };
        if !self.is_synced() {
            self.sync()?;
        }
        let now = self.now_ms();
        let options = ExecuteOptions::new().deadline(self.deadline());
        let (token, n) = loop {
            match self
                .client
                .execute_raw(now, name, args, options, &mut self.out)
            {
                Ok(r) => break r,
                Err(ExecuteError::InsufficientSize(InsufficientSize { required })) => {
                    self.out.resize(required, 0)
                }
                Err(ExecuteError::Closed) => return Err(Error::Disconnected),
                Err(e) => return Err(Error::Protocol(e.to_string())),
            }
        };
        let bytes = self.out.get(..n).unwrap_or(&[]);
        self.stream.write_all(bytes)?;
        self.stream.flush()?;
        match self.wait(token)? {
            Done::Return(v) => Ok(Ok(v)),
            Done::Error(e) => Ok(Err(e)),
            Done::Timeout => Err(Error::Timeout {
                waiting_for: name.to_owned(),
            }),
            Done::Disconnected => Err(Error::Disconnected),
            Done::Other(e) => Err(Error::Protocol(e)),
        }
    }

    /// Runs a command and decodes its `return` value with serde (64-bit
    /// integers exact). An error reply is [`Error::Command`].
    ///
    /// # Errors
    /// As [`Qga::execute_raw`], plus [`Error::Command`] and
    /// [`Error::Protocol`] for a value of the wrong shape.
    pub fn execute<T: DeserializeOwned>(
        &mut self,
        name: &str,
        args: Option<&serde_json::Value>,
    ) -> Result<T, Error> {
        let args = args.map(serde_json::Value::to_string);
        let json = self
            .execute_raw(name, args.as_deref())?
            .map_err(Error::Command)?;
        serde_json::from_str(&json).map_err(|e| Error::Protocol(format!("{name}: {e}")))
    }

    /// `guest-get-time`: nanoseconds since the epoch.
    ///
    /// # Errors
    /// As [`Qga::execute`].
    pub fn get_time(&mut self) -> Result<i64, Error> {
        self.execute("guest-get-time", None)
    }

    /// Polls events; returns the outcome of `token` if it is among them.
    fn drain_events(&mut self, token: Option<Token>) -> Option<Done> {
        let mut done = None;
        while let Some(ev) = self.client.poll_event() {
            if let ClientEvent::Resolved { token: t, outcome } = ev {
                if Some(t) == token {
                    done = Some(match outcome {
                        Outcome::Return(v) => Done::Return(compact(v.as_bytes())),
                        Outcome::Error { class, desc } => Done::Error(QmpError {
                            class: class.to_string(),
                            desc: desc.to_string(),
                        }),
                        Outcome::Timeout => Done::Timeout,
                        Outcome::Disconnected => Done::Disconnected,
                        Outcome::Oversized { len } => {
                            Done::Other(format!("reply too large ({len} bytes)"))
                        }
                        other => Done::Other(format!("request ended: {other:?}")),
                    });
                }
            }
            // Stale, discarded and orphan messages are of no interest here.
        }
        done
    }

    /// Reads and feeds until `token` resolves.
    fn wait(&mut self, token: Token) -> Result<Done, Error> {
        loop {
            if let Some(done) = self.drain_events(Some(token)) {
                return Ok(done);
            }
            let now = self.now_ms();
            if self.rx_start < self.rx_end {
                let input = self.rx.get(self.rx_start..self.rx_end).unwrap_or(&[]);
                let n = self.client.handle_input(now, input);
                self.rx_start += n;
                if n == 0 && !self.client.has_event() {
                    return Err(Error::Protocol("input not consumed".into()));
                }
                continue;
            }
            let wait = match self.client.poll_timeout() {
                Some(t) if t <= now => {
                    self.client.handle_timeout(now);
                    continue;
                }
                Some(t) => Some(Duration::from_millis(t.saturating_millis_since(now))),
                None => None,
            };
            (self.set_timeout)(&self.stream, wait)?;
            self.rx_start = 0;
            self.rx_end = 0;
            match self.stream.read(&mut self.rx) {
                Ok(0) => self.client.handle_eof(),
                Ok(n) => self.rx_end = n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) =>
                {
                    let now = self.now_ms();
                    self.client.handle_timeout(now);
                }
                Err(e) => return Err(Error::Io(e)),
            }
        }
    }
}

/// Removes the whitespace between tokens of validated JSON.
fn compact(json: &[u8]) -> String {
    let mut out = Vec::with_capacity(json.len());
    let mut quote: Option<u8> = None;
    let mut escaped = false;
    for &b in json {
        match quote {
            Some(q) => {
                out.push(b);
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == q {
                    quote = None;
                }
            }
            None => match b {
                b' ' | b'\t' | b'\n' | b'\r' => {}
                b'"' | b'\'' => {
                    quote = Some(b);
                    out.push(b);
                }
                _ => out.push(b),
            },
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::compact;

    #[test]
    fn compacts() {
        assert_eq!(
            compact(br#"{"a": [1, "x y\" z"], 'b c': 1795285339653786000}"#),
            r#"{"a":[1,"x y\" z"],'b c':1795285339653786000}"#
        );
    }
}
