//! The blocking client driver shared by the QMP client and the guest-agent
//! client: a [`Machine`] (the client session behind qmp-core's pump, with
//! its inbox) over a [`Transport`], with what only blocking std I/O adds —
//! reads that time out at the session's next deadline, write timeouts,
//! file descriptors on a command's own write — and the calls built on it
//! (send, wait).

use crate::client::{Call, Pending};
use crate::error::Error;
use crate::machine::{self, Machine, Refused, Session};
use crate::transport::Transport;
use serde::de::DeserializeOwned;
use std::io;
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

/// One connection: the transport and the machine. See the
/// [module docs](self).
pub(crate) struct Link<T, S> {
    pub(crate) io: T,
    pub(crate) m: Machine<S>,
    read_timeout: Option<Option<Duration>>,
    write_timeout: Option<Option<Duration>>,
}

impl<T: Transport, S: Session> Link<T, S> {
    pub(crate) fn new(io: T, m: Machine<S>) -> Self {
        Link {
            io,
            m,
            read_timeout: None,
            write_timeout: None,
        }
    }

    /// Limits how long the next writes may block (at least 1 ms).
    pub(crate) fn set_write_timeout(&mut self, t: Option<Duration>) -> Result<(), Error> {
        let t = t.map(|t| t.max(Duration::from_millis(1)));
        if self.write_timeout != Some(t) {
            if let Err(e) = self.io.set_write_timeout(t) {
                self.m.break_off();
                return Err(Error::Io(e));
            }
            self.write_timeout = Some(t);
        }
        Ok(())
    }

    /// [`Machine::break_off`], for an error of the transport.
    fn fail(&mut self, e: io::Error) -> Error {
        self.m.break_off();
        Error::Io(e)
    }

    /// One turn of the pump: files the session's events, or writes what it
    /// staged, or reads once — blocking until input, the session's next
    /// deadline, or `until`.
    ///
    /// # Errors
    /// A transport failure (the connection is over).
    pub(crate) fn turn(&mut self, until: Option<Instant>) -> Result<(), Error> {
        let wants = self.m.step();
        if wants.app {
            self.m.file_events(|_| {});
            return Ok(());
        }
        if wants.transmit {
            return self.write_staged(&[]).map_err(|e| self.fail(e));
        }
        if !wants.read {
            return Ok(());
        }
        let now = self.m.now();
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
        match self.io.read(self.m.pump.read_buf()) {
            Ok(n) => self.m.pump.received(n),
            Err(e) => match e.kind() {
                io::ErrorKind::WouldBlock
                | io::ErrorKind::TimedOut
                | io::ErrorKind::Interrupted => {}
                io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => {
                    self.m.pump.received(0);
                }
                _ => return Err(self.fail(e)),
            },
        }
        Ok(())
    }

    /// Writes everything staged, the descriptors (if any) on its first
    /// bytes.
    fn write_staged(&mut self, mut fds: &[BorrowedFd<'_>]) -> io::Result<()> {
        while !self.m.pump.transmit().is_empty() {
            let bytes = self.m.pump.transmit();
            let n = if fds.is_empty() {
                self.io.write(bytes)
            } else {
                self.io.send_with_fds(bytes, fds)
            };
            match n {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    fds = &[];
                    self.m.pump.sent(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.io.flush()
    }

    /// Sends a call without waiting for its reply; while the session has no
    /// room (QMP's eight in-band requests with OOB), reads replies until it
    /// has (within the call's timeout). Descriptors ride on the command's
    /// own first bytes: what was staged before goes out first.
    ///
    /// # Errors
    /// [`Error::Arguments`], [`Error::Unsupported`], [`Error::Timeout`] (no
    /// room, or the write, in time), [`Error::Closed`], transport errors.
    pub(crate) fn send(&mut self, call: &Call<'_>) -> Result<Pending, Error> {
        if self.m.is_closed() {
            return Err(Error::Closed);
        }
        if !call.fds.is_empty() && !self.io.supports_fds() {
            return Err(Error::Unsupported(
                "file descriptor passing needs a Unix socket".into(),
            ));
        }
        let args = call.arguments()?;
        let timeout = self.m.timeout_of(call);
        let room_deadline = timeout.map(|t| Instant::now() + t);
        let timed_out = || Error::Timeout {
            command: call.name.to_owned(),
            after: timeout.unwrap_or_default(),
        };
        let write_failed = |e: io::Error| match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => timed_out(),
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => Error::Disconnected {
                command: Some(call.name.to_owned()),
            },
            _ => Error::Io(e),
        };
        loop {
            self.set_write_timeout(timeout)?;
            if !call.fds.is_empty() {
                if let Err(e) = self.write_staged(&[]) {
                    self.m.break_off();
                    return Err(write_failed(e));
                }
            }
            match self.m.queue(call, args, timeout) {
                Ok(token) => {
                    self.m.register(token, call, timeout);
                    if let Err(e) = self.write_staged(&call.fds) {
                        self.m.break_off();
                        return Err(write_failed(e));
                    }
                    return Ok(Pending { id: token.id() });
                }
                Err(Refused::Full) => {
                    if let Err(e) = self.write_staged(&[]) {
                        self.m.break_off();
                        return Err(write_failed(e));
                    }
                }
                Err(Refused::Session(e)) if machine::no_room(&e) => {
                    if room_deadline.is_some_and(|d| Instant::now() >= d) {
                        return Err(timed_out());
                    }
                    if self.m.is_closed() {
                        return Err(Error::Closed);
                    }
                    self.turn(room_deadline)?;
                }
                Err(Refused::Session(e)) => return Err(machine::refusal(e, call.name)),
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
            if let Some(r) = self.m.result(pending.id) {
                return r;
            }
            self.turn(None)?;
        }
    }

    /// [`Link::wait_bytes`] as text.
    pub(crate) fn wait(&mut self, pending: Pending) -> Result<String, Error> {
        self.wait_bytes(pending).map(machine::text)
    }

    /// [`Link::wait_bytes`], deserialized.
    pub(crate) fn wait_typed<R: DeserializeOwned>(&mut self, pending: Pending) -> Result<R, Error> {
        let command = self
            .m
            .inbox
            .command(pending.id)
            .unwrap_or_default()
            .to_owned();
        let bytes = self.wait_bytes(pending)?;
        machine::decode(command, &bytes)
    }
}
