//! A tiny blocking driver over any [`embedded_io::Read`] + [`embedded_io::Write`]
//! transport (feature `embedded-io`).
//!
//! [`Driver`] keeps the receive buffer between calls (a read may hold the
//! beginning of the next message), writes what the client wants sent with a
//! short-write loop, and pumps events to a callback until a request resolves.
//! Deadlines are checked between reads; a read that fails with
//! [`ErrorKind::TimedOut`] (a transport with a read timeout) or
//! [`ErrorKind::Interrupted`] is retried after applying them.
//!
//! ```
//! use qmp_core::client::{Client, ClientEvent, ExecuteOptions, Outcome};
//! use qmp_core::client::commands::Stop;
//! use qmp_core::client::driver::Driver;
//! use qmp_core::Instant;
//!
//! /// Replays canned server bytes; swallows what the client writes.
//! struct Canned(&'static [u8]);
//! impl embedded_io::ErrorType for Canned { type Error = core::convert::Infallible; }
//! impl embedded_io::Read for Canned {
//!     fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
//!         let n = buf.len().min(self.0.len());
//!         buf[..n].copy_from_slice(&self.0[..n]);
//!         self.0 = &self.0[n..];
//!         Ok(n)
//!     }
//! }
//! impl embedded_io::Write for Canned {
//!     fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> { Ok(buf.len()) }
//!     fn flush(&mut self) -> Result<(), Self::Error> { Ok(()) }
//! }
//!
//! let mut io = Canned(b"{\"QMP\": {\"version\": {}, \"capabilities\": []}}\r\n{\"return\": {}}\r\n\
//!                      {\"timestamp\": {\"seconds\": 1, \"microseconds\": 0}, \"event\": \"STOP\"}\r\n\
//!                      {\"return\": {}, \"id\": 1}\r\n");
//! let (mut fb, mut rx, mut tx) = ([0u8; 512], [0u8; 64], [0u8; 128]);
//! let mut client = Client::new(&mut fb[..]);
//! let mut driver = Driver::new(&mut rx, &mut tx);
//! let now = || Instant::ZERO;
//! driver.negotiate(&mut client, &mut io, now, |_| {}).unwrap();
//! let token = driver.execute(&mut client, &mut io, now(), &Stop, ExecuteOptions::new()).unwrap();
//! let mut events = 0;
//! let outcome = driver
//!     .run_until(&mut client, &mut io, token, now, |ev| {
//!         if matches!(ev, ClientEvent::Event(_)) { events += 1 }
//!     })
//!     .unwrap();
//! assert!(matches!(outcome, Outcome::Return(_)));
//! assert_eq!(events, 1);
//! ```

use core::fmt;

use embedded_io::{Error as _, ErrorKind, Read, Write};

use super::{
    Client, ClientEvent, Command, ExecuteError, ExecuteOptions, Instant, Negotiation, Outcome,
    State, Token,
};
use crate::encode::EncodeError;
use crate::json::RawJson;

/// Why the driver stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum DriverError<E> {
    /// The transport failed.
    Io(E),
    /// The transport accepted no bytes (`write` returned 0).
    WriteZero,
    /// End of stream (the awaited request, if any, was not pending).
    Eof,
    /// The token is neither pending nor resolved-but-unpolled.
    UnknownToken,
    /// The automatic `qmp_capabilities` failed.
    NegotiationFailed,
    /// [`Client::execute`] refused.
    Execute(ExecuteError),
    /// The transmit buffer is too small for the client's own message.
    Transmit(EncodeError),
}

impl<E: fmt::Debug> fmt::Display for DriverError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DriverError::Io(e) => write!(f, "I/O error: {e:?}"),
            DriverError::WriteZero => f.write_str("transport accepted no bytes"),
            DriverError::Eof => f.write_str("end of stream"),
            DriverError::UnknownToken => f.write_str("unknown request token"),
            DriverError::NegotiationFailed => f.write_str("capabilities negotiation failed"),
            DriverError::Execute(e) => write!(f, "{e}"),
            DriverError::Transmit(e) => write!(f, "{e}"),
        }
    }
}

impl<E: fmt::Debug> core::error::Error for DriverError<E> {}

/// The blocking loop's buffers: `rx` receives from the transport (any size;
/// bytes not yet consumed are kept for the next call), `tx` holds one
/// outgoing command.
#[derive(Debug)]
pub struct Driver<'b> {
    rx: &'b mut [u8],
    start: usize,
    end: usize,
    tx: &'b mut [u8],
}

/// What one pump step found.
enum Step {
    Continue,
    Eof,
}

impl<'b> Driver<'b> {
    /// A driver with the given receive and transmit buffers.
    pub fn new(rx: &'b mut [u8], tx: &'b mut [u8]) -> Self {
        Driver {
            rx,
            start: 0,
            end: 0,
            tx,
        }
    }

    /// Writes the client's own pending bytes (the automatic
    /// `qmp_capabilities`).
    ///
    /// # Errors
    /// Transport errors; [`DriverError::Transmit`] if `tx` is too small.
    pub fn flush_transmit<B, const N: usize, T>(
        &mut self,
        client: &mut Client<B, N>,
        io: &mut T,
    ) -> Result<(), DriverError<T::Error>>
    where
        B: AsRef<[u8]> + AsMut<[u8]>,
        T: Write,
    {
        while let Some(n) = client
            .poll_transmit(self.tx)
            .map_err(DriverError::Transmit)?
        {
            write_all(io, self.tx.get(..n).unwrap_or(&[]))?;
        }
        Ok(())
    }

    /// Executes a typed command: writes it and returns its token (use
    /// [`Driver::run_until`] to wait for it).
    ///
    /// # Errors
    /// [`DriverError::Execute`] or a transport error.
    pub fn execute<B, const N: usize, T, C>(
        &mut self,
        client: &mut Client<B, N>,
        io: &mut T,
        now: Instant,
        command: &C,
        options: ExecuteOptions,
    ) -> Result<Token, DriverError<T::Error>>
    where
        B: AsRef<[u8]> + AsMut<[u8]>,
        T: Write,
        C: Command,
    {
        self.flush_transmit(client, io)?;
        let (token, n) = client
            .execute(now, command, options, self.tx)
            .map_err(DriverError::Execute)?;
        write_all(io, self.tx.get(..n).unwrap_or(&[]))?;
        Ok(token)
    }

    /// Executes a raw command (see [`Client::execute_raw`]).
    ///
    /// # Errors
    /// [`DriverError::Execute`] or a transport error.
    pub fn execute_raw<B, const N: usize, T>(
        &mut self,
        client: &mut Client<B, N>,
        io: &mut T,
        now: Instant,
        name: &str,
        arguments: Option<RawJson<'_>>,
        options: ExecuteOptions,
    ) -> Result<Token, DriverError<T::Error>>
    where
        B: AsRef<[u8]> + AsMut<[u8]>,
        T: Write,
    {
        self.flush_transmit(client, io)?;
        let (token, n) = client
            .execute_raw(now, name, arguments, options, self.tx)
            .map_err(DriverError::Execute)?;
        write_all(io, self.tx.get(..n).unwrap_or(&[]))?;
        Ok(token)
    }

    /// Runs until `token` resolves and returns its outcome (borrowed from
    /// the client). Every other event goes to `on_event`. End of stream
    /// resolves the request as [`Outcome::Disconnected`].
    ///
    /// # Errors
    /// [`DriverError::UnknownToken`] if `token` is not pending; transport
    /// errors.
    pub fn run_until<'c, B, const N: usize, T>(
        &mut self,
        client: &'c mut Client<B, N>,
        io: &mut T,
        token: Token,
        mut now: impl FnMut() -> Instant,
        mut on_event: impl FnMut(&ClientEvent<'_>),
    ) -> Result<Outcome<'c>, DriverError<T::Error>>
    where
        B: AsRef<[u8]> + AsMut<[u8]>,
        T: Read + Write,
    {
        if !client.knows(token) {
            return Err(DriverError::UnknownToken);
        }
        loop {
            if client.next_event_resolves(token) {
                return match client.poll_event() {
                    Some(ClientEvent::Resolved { outcome, .. }) => Ok(outcome),
                    _ => Err(DriverError::UnknownToken),
                };
            }
            if let Some(ev) = client.poll_event() {
                on_event(&ev);
                continue;
            }
            if let Step::Eof = self.step(client, io, &mut now)? {
                if !client.knows(token) {
                    return Err(DriverError::Eof);
                }
            }
        }
    }

    /// Runs until negotiation is done ([`State::Ready`]; with
    /// [`Negotiation::Manual`], until the greeting is in); every event goes
    /// to `on_event` (the greeting, [`ClientEvent::Negotiated`], …).
    ///
    /// # Errors
    /// [`DriverError::NegotiationFailed`], [`DriverError::Eof`], transport
    /// errors.
    pub fn negotiate<B, const N: usize, T>(
        &mut self,
        client: &mut Client<B, N>,
        io: &mut T,
        mut now: impl FnMut() -> Instant,
        mut on_event: impl FnMut(&ClientEvent<'_>),
    ) -> Result<(), DriverError<T::Error>>
    where
        B: AsRef<[u8]> + AsMut<[u8]>,
        T: Read + Write,
    {
        loop {
            let mut failed = false;
            while let Some(ev) = client.poll_event() {
                failed = matches!(ev, ClientEvent::NegotiationFailed { .. });
                on_event(&ev);
                if failed {
                    break;
                }
            }
            if failed {
                return Err(DriverError::NegotiationFailed);
            }
            match (client.state(), client.config().negotiation()) {
                (State::Ready, _) | (State::Negotiating, Negotiation::Manual) => {
                    return self.flush_transmit(client, io)
                }
                (State::Closed, _) => return Err(DriverError::Eof),
                _ => {}
            }
            self.step(client, io, &mut now)?;
        }
    }

    /// One step: send, feed buffered input, apply deadlines, or read.
    /// Called only when no event is waiting.
    fn step<B, const N: usize, T>(
        &mut self,
        client: &mut Client<B, N>,
        io: &mut T,
        now: &mut impl FnMut() -> Instant,
    ) -> Result<Step, DriverError<T::Error>>
    where
        B: AsRef<[u8]> + AsMut<[u8]>,
        T: Read + Write,
    {
        self.flush_transmit(client, io)?;
        if let Some(input) = self.rx.get(self.start..self.end).filter(|i| !i.is_empty()) {
            let n = client.handle_input(now(), input);
            self.start += n;
            return Ok(Step::Continue);
        }
        if client.state() == State::Closed {
            return Ok(Step::Eof);
        }
        client.handle_timeout(now());
        if client.has_event() {
            return Ok(Step::Continue);
        }
        match io.read(self.rx) {
            Ok(0) => {
                client.handle_eof();
                Ok(Step::Eof)
            }
            Ok(n) => {
                self.start = 0;
                self.end = n.min(self.rx.len());
                Ok(Step::Continue)
            }
            Err(e) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::Interrupted) => {
                client.handle_timeout(now());
                Ok(Step::Continue)
            }
            Err(e) => Err(DriverError::Io(e)),
        }
    }
}

/// `write_all` without the panic on `Ok(0)`.
fn write_all<T: Write>(io: &mut T, mut bytes: &[u8]) -> Result<(), DriverError<T::Error>> {
    while !bytes.is_empty() {
        match io.write(bytes) {
            Ok(0) => return Err(DriverError::WriteZero),
            Ok(n) => bytes = bytes.get(n..).unwrap_or(&[]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(DriverError::Io(e)),
        }
    }
    io.flush().map_err(DriverError::Io)
}
