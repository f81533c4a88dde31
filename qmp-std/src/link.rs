//! The blocking client driver shared by the QMP client and the guest-agent
//! client: qmp-core's [`Pump`] between a [`Transport`] and a client session
//! (qmp-core's [`ClientSession`]: the QMP client or the guest-agent
//! client), with what only std adds — blocking reads that time out
//! at the session's next deadline, write timeouts, file descriptors on a
//! command's own write — and the calls built on it (send, wait, call).
//!
//! Everything that is not I/O (making events owned, matching results to
//! calls, events, notices) is the [`Inbox`]'s.

use crate::client::{Call, Pending};
use crate::config::Config;
use crate::error::Error;
use crate::inbox::{own, Inbox};
use crate::transport::Transport;
use qmp_core::client::{ExecuteError, ExecuteOptions, Token};
use qmp_core::drive::ClientSession;
use qmp_core::json::{JsonKind, RawJson};
use qmp_core::pump::Pump;
use qmp_core::scan::{validate, FramerConfig};
use qmp_core::{Instant as Clock, InsufficientSize};
use serde::de::DeserializeOwned;
use std::io;
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

/// Bytes read from the transport at a time.
const READ_CHUNK: usize = 64 << 10;
/// The transmit buffer to start with (grown for larger commands).
const TX_START: usize = 512;

/// Why [`Link::submit`] did not send a command.
enum Refused {
    /// The session refused it (nothing registered).
    Session(ExecuteError),
    /// The write failed (the connection is over).
    Write(io::Error),
}

/// One connection: the transport, the session, the pump between them, and
/// the inbox. See the [module docs](self).
pub(crate) struct Link<T, S> {
    pub(crate) io: T,
    pub(crate) session: S,
    pub(crate) inbox: Inbox,
    pub(crate) cfg: Config,
    pump: Pump<'static, Vec<u8>>,
    epoch: Instant,
    read_timeout: Option<Option<Duration>>,
    write_timeout: Option<Option<Duration>>,
    /// The transport failed.
    broken: bool,
    /// The pump delivered end of stream: the session is over.
    ended: bool,
}

impl<T: Transport, S: ClientSession> Link<T, S> {
    pub(crate) fn new(io: T, session: S, cfg: Config) -> Self {
        Link {
            io,
            session,
            inbox: Inbox::new(&cfg),
            cfg,
            pump: Pump::with_buffers(vec![0u8; READ_CHUNK], vec![0u8; TX_START]),
            epoch: Instant::now(),
            read_timeout: None,
            write_timeout: None,
            broken: false,
            ended: false,
        }
    }

    /// The session's clock: milliseconds since the link was made.
    pub(crate) fn now(&self) -> Clock {
        self.clock(Instant::now())
    }

    /// `at` on the session's clock.
    pub(crate) fn clock(&self, at: Instant) -> Clock {
        let ms = at.saturating_duration_since(self.epoch).as_millis();
        Clock::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
    }

    /// Whether the connection is over (closed by the peer or broken).
    pub(crate) fn is_closed(&self) -> bool {
        self.broken || self.ended
    }

    /// Whether nothing more will be reported: closed, and every event
    /// polled.
    pub(crate) fn is_finished(&self) -> bool {
        self.is_closed() && !self.session.wants_app()
    }

    /// Whether received bytes or events still wait to be filed.
    pub(crate) fn is_settled(&self) -> bool {
        self.pump.held_input() == 0 && !self.session.wants_app()
    }

    /// Limits how long the next writes may block (at least 1 ms).
    pub(crate) fn set_write_timeout(&mut self, t: Option<Duration>) -> Result<(), Error> {
        let t = t.map(|t| t.max(Duration::from_millis(1)));
        if self.write_timeout != Some(t) {
            if let Err(e) = self.io.set_write_timeout(t) {
                self.break_off();
                return Err(Error::Io(e));
            }
            self.write_timeout = Some(t);
        }
        Ok(())
    }

    /// The transport failed: the session ends (its waiting calls resolve
    /// `Disconnected` at the next turn).
    fn break_off(&mut self) {
        self.broken = true;
        self.pump.abort();
    }

    /// [`Link::break_off`], for an error of the transport.
    fn fail(&mut self, e: io::Error) -> Error {
        self.break_off();
        Error::Io(e)
    }

    /// One turn of the pump: files the session's events, or writes what it
    /// staged, or reads once — blocking until input, the session's next
    /// deadline, or `until`.
    ///
    /// # Errors
    /// A transport failure (the connection is over).
    pub(crate) fn turn(&mut self, until: Option<Instant>) -> Result<(), Error> {
        let now = self.now();
        let wants = self.pump.step(&mut self.session, now);
        self.ended |= wants.closed;
        if wants.app {
            self.file_events();
            return Ok(());
        }
        if wants.transmit {
            return self.write_staged(&[]).map_err(|e| self.fail(e));
        }
        if !wants.read {
            return Ok(());
        }
        let mut wait = wants
            .timeout
            .map(|at| Duration::from_millis(at.saturating_millis_since(now).max(1)));
        if let Some(until) = until {
            let left = until.saturating_duration_since(Instant::now());
            wait = Some(wait.map_or(left, |w| w.min(left)));
        }
        if wait.is_some_and(|w| w.is_zero()) {
            return Ok(());
        }
        if self.read_timeout != Some(wait) {
            self.io.set_read_timeout(wait).map_err(|e| self.fail(e))?;
            self.read_timeout = Some(wait);
        }
        match self.io.read(self.pump.read_buf()) {
            Ok(n) => self.pump.received(n),
            Err(e) => match e.kind() {
                io::ErrorKind::WouldBlock
                | io::ErrorKind::TimedOut
                | io::ErrorKind::Interrupted => {}
                io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => {
                    self.pump.received(0);
                }
                _ => return Err(self.fail(e)),
            },
        }
        Ok(())
    }

    /// Files the events the session has.
    pub(crate) fn file_events(&mut self) {
        while let Some(h) = self.session.poll_event().map(own) {
            self.inbox.file(h);
        }
    }

    /// Writes everything staged, the descriptors (if any) on its first
    /// bytes.
    fn write_staged(&mut self, mut fds: &[BorrowedFd<'_>]) -> io::Result<()> {
        while !self.pump.transmit().is_empty() {
            let bytes = self.pump.transmit();
            let n = if fds.is_empty() {
                self.io.write(bytes)
            } else {
                self.io.send_with_fds(bytes, fds)
            };
            match n {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    fds = &[];
                    self.pump.sent(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.io.flush()
    }

    /// Registers a command with the session and writes it (behind what the
    /// session staged itself; alone, when descriptors ride on it).
    fn submit(
        &mut self,
        name: &str,
        args: Option<RawJson<'_>>,
        opts: ExecuteOptions,
        fds: &[BorrowedFd<'_>],
    ) -> Result<Token, Refused> {
        if !fds.is_empty() {
            self.write_staged(&[]).map_err(Refused::Write)?;
        }
        let now = self.now();
        let token = loop {
            let out = self.pump.queue_buf();
            match self.session.execute_raw(now, name, args, opts, out) {
                Ok((token, n)) => {
                    self.pump.queued(n);
                    break token;
                }
                Err(ExecuteError::InsufficientSize(InsufficientSize { required })) => {
                    match self.pump.transmit_storage() {
                        Some(tx) if tx.len() < required => tx.resize(required, 0),
                        _ => self.write_staged(&[]).map_err(Refused::Write)?,
                    }
                }
                Err(e) => return Err(Refused::Session(e)),
            }
        };
        self.write_staged(fds).map_err(Refused::Write)?;
        Ok(token)
    }

    // -- calls ---------------------------------------------------------

    /// Sends a call without waiting for its reply; while the session has no
    /// room (QMP's eight in-band requests with OOB), reads replies until it
    /// has (within the call's timeout).
    ///
    /// # Errors
    /// [`Error::Arguments`], [`Error::Unsupported`], [`Error::Timeout`] (no
    /// room, or the write, in time), [`Error::Closed`], transport errors.
    pub(crate) fn send(&mut self, call: &Call<'_>) -> Result<Pending, Error> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        if !call.fds.is_empty() && !self.io.supports_fds() {
            return Err(Error::Unsupported(
                "file descriptor passing needs a Unix socket".into(),
            ));
        }
        let args = call.arguments()?;
        let timeout = call.timeout.unwrap_or(self.cfg.timeout);
        let room_deadline = timeout.map(|t| Instant::now() + t);
        let timed_out = || Error::Timeout {
            command: call.name.to_owned(),
            after: timeout.unwrap_or_default(),
        };
        loop {
            let mut opts = ExecuteOptions::new().oob(call.oob);
            if let Some(t) = timeout {
                opts = opts.timeout_ms(u64::try_from(t.as_millis()).unwrap_or(u64::MAX));
            }
            self.set_write_timeout(timeout)?;
            match self.submit(call.name, args, opts, &call.fds) {
                Ok(token) => {
                    self.inbox.register(token.id(), call.name, timeout);
                    return Ok(Pending { id: token.id() });
                }
                Err(Refused::Write(e)) => {
                    self.break_off();
                    return Err(match e.kind() {
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => timed_out(),
                        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => {
                            Error::Disconnected {
                                command: Some(call.name.to_owned()),
                            }
                        }
                        _ => Error::Io(e),
                    });
                }
                Err(Refused::Session(
                    ExecuteError::TooManyInBand | ExecuteError::TooManyInFlight,
                )) => {
                    if room_deadline.is_some_and(|d| Instant::now() >= d) {
                        return Err(timed_out());
                    }
                    if self.is_closed() {
                        return Err(Error::Closed);
                    }
                    self.turn(room_deadline)?;
                }
                Err(Refused::Session(ExecuteError::Closed)) => return Err(Error::Closed),
                Err(Refused::Session(ExecuteError::OobNotNegotiated)) => {
                    return Err(Error::Unsupported(format!(
                        "cannot send '{}' with exec-oob: oob is not negotiated",
                        call.name
                    )))
                }
                Err(Refused::Session(e)) => {
                    return Err(Error::Unsupported(format!(
                        "cannot send '{}': {e}",
                        call.name
                    )))
                }
            }
        }
    }

    /// Waits for the result of a call from [`Link::send`]: the `return`
    /// value as JSON text, as received.
    ///
    /// # Errors
    /// [`Error::Qmp`] for an error reply; see [`Error`].
    pub(crate) fn wait_bytes(&mut self, pending: Pending) -> Result<Vec<u8>, Error> {
        loop {
            if let Some(r) = self.inbox.take(pending.id) {
                return r;
            }
            if !self.inbox.is_waiting(pending.id) {
                return Err(Error::Closed);
            }
            self.turn(None)?;
        }
    }

    /// [`Link::wait_bytes`] as text.
    pub(crate) fn wait(&mut self, pending: Pending) -> Result<String, Error> {
        let bytes = self.wait_bytes(pending)?;
        Ok(String::from_utf8(bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
    }

    /// [`Link::wait_bytes`], deserialized.
    pub(crate) fn wait_typed<R: DeserializeOwned>(&mut self, pending: Pending) -> Result<R, Error> {
        let command = self
            .inbox
            .command(pending.id)
            .unwrap_or_default()
            .to_owned();
        let bytes = self.wait_bytes(pending)?;
        serde_json::from_slice(&bytes).map_err(|source| Error::Decode { command, source })
    }
}

impl Call<'_> {
    /// The arguments, checked to be one JSON object.
    pub(crate) fn arguments(&self) -> Result<Option<RawJson<'_>>, Error> {
        match &self.args {
            None => Ok(None),
            Some(bytes) => json_object(bytes).map(Some),
        }
    }
}

/// `bytes` validated as one JSON object ([`Error::Arguments`] if not).
pub(crate) fn json_object(bytes: &[u8]) -> Result<RawJson<'_>, Error> {
    let v = validate(bytes, FramerConfig::new()).map_err(|_| {
        Error::Arguments(format!(
            "'{}' is not valid JSON",
            String::from_utf8_lossy(bytes)
        ))
    })?;
    if v.kind() != JsonKind::Object {
        return Err(Error::Arguments("arguments must be a JSON object".into()));
    }
    Ok(v)
}
