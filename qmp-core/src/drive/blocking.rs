//! The blocking drivers over `embedded-io` (feature `embedded-io`):
//! [`serve`] runs an [`Agent`], [`BlockingDriver`] runs the QMP and guest-agent
//! clients. No allocation; the caller's [`Pump`] holds the staging buffers.
//!
//! They never block in `read` while there is something to do: a read
//! happens only when [`ReadReady::read_ready`] says it will not block.
//! While nothing is due, the loop polls `read_ready` and the clock (put the
//! core to sleep in `read_ready`, e.g. `WFI` until the UART interrupt, if
//! you want). A transport that cannot tell readiness goes in [`AlwaysReady`]:
//! its reads then block, and the loop wakes only when input comes or a read
//! times out (`TimedOut`).
//!
//! ```
//! use core::ops::ControlFlow;
//! use qmp_core::agent::{Agent, AgentBuffers, AgentConfig, CommandSpec, Reply};
//! use qmp_core::drive::blocking::{serve, AlwaysReady};
//! use qmp_core::drive::{ServeOptions, Served};
//! use qmp_core::pump::Pump;
//! use qmp_core::Instant;
//!
//! /// A canned peer: a negotiation and one command, then end of stream.
//! struct Canned(&'static [u8], Vec<u8>);
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
//!     fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
//!         self.1.extend_from_slice(buf);
//!         Ok(buf.len())
//!     }
//!     fn flush(&mut self) -> Result<(), Self::Error> { Ok(()) }
//! }
//!
//! const COMMANDS: &[CommandSpec<'static>] = &[CommandSpec::new("stop")];
//! let (mut f, mut q, mut o) = ([0u8; 256], [0u8; 512], [0u8; 512]);
//! let cfg = AgentConfig::new((10, 0, 0), "", COMMANDS);
//! let mut agent = Agent::new(cfg, AgentBuffers::new(&mut f, &mut q, &mut o)).unwrap();
//! let (mut rx, mut tx) = ([0u8; 64], [0u8; 64]);
//! let mut pump = Pump::new(&mut rx, &mut tx);
//! let mut io = AlwaysReady(Canned(br#"{"execute":"qmp_capabilities"}{"execute":"stop","id":1}"#, Vec::new()));
//! let empty = qmp_core::scan::validate(b"{}", Default::default()).unwrap();
//! let served = serve(&mut agent, &mut io, &mut pump, ServeOptions::new(), || Instant::ZERO, |agent, _now| {
//!     while let Some(req) = agent.poll_request() {
//!         let token = req.token;
//!         // Tiny replies into a 512-byte output: they always fit here.
//!         let _ = agent.complete(token, Reply::Return(&empty));
//!     }
//!     ControlFlow::Continue(())
//! });
//! assert_eq!(served.unwrap(), Served::Eof);
//! assert!(io.0.1.ends_with(b"{\"return\": {}}\r\n{\"return\": {}, \"id\": 1}\r\n"));
//! ```

use core::ops::ControlFlow;

use embedded_io::{Error as _, ErrorType, Read, ReadReady, Write};

use super::{
    negotiated, queue, resolved, take_outcome, ClientSession, DriveError, ServeOptions, Served,
    Transport,
};
use crate::agent::Agent;
use crate::client::{Client, ClientEvent, Command, ExecuteOptions, Outcome, Token};
use crate::json::RawJson;
use crate::pump::{Pump, Session, Wants};
#[cfg(feature = "qga")]
use crate::qga::QgaClient;
use crate::Instant;

/// A transport without readiness: `read_ready` always says yes, so reads
/// block (the loop then wakes only when input comes or a read times out).
#[derive(Debug)]
pub struct AlwaysReady<T>(pub T);

impl<T: ErrorType> ErrorType for AlwaysReady<T> {
    type Error = T::Error;
}

impl<T: Read> Read for AlwaysReady<T> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        self.0.read(buf)
    }
}

impl<T: Write> Write for AlwaysReady<T> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> Result<(), Self::Error> {
        self.0.flush()
    }
}

impl<T: ErrorType> ReadReady for AlwaysReady<T> {
    fn read_ready(&mut self) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

/// Writes what the pump staged, retrying `Interrupted`; flushes once it is
/// all out. `TimedOut` leaves the rest staged for the next turn.
fn write_staged<T: Write>(io: &mut T, pump: &mut Pump<'_>) -> Result<(), DriveError<T::Error>> {
    while !pump.transmit().is_empty() {
        match io.write(pump.transmit()) {
            Ok(0) => return Err(DriveError::WriteZero),
            Ok(n) => pump.sent(n),
            Err(e) => match Transport::of(e.kind()) {
                Transport::Retry => {}
                Transport::NotYet => return Ok(()),
                Transport::Fatal => return Err(DriveError::Io(e)),
            },
        }
    }
    loop {
        match io.flush() {
            Ok(()) => return Ok(()),
            Err(e) => match Transport::of(e.kind()) {
                Transport::Retry => {}
                Transport::NotYet => return Ok(()),
                Transport::Fatal => return Err(DriveError::Io(e)),
            },
        }
    }
}

/// Reads once if the transport is ready; whether anything happened.
fn read_ready<T: Read + ReadReady>(
    io: &mut T,
    pump: &mut Pump<'_>,
) -> Result<bool, DriveError<T::Error>> {
    match io.read_ready() {
        Ok(true) => {}
        Ok(false) => return Ok(false),
        Err(e) => {
            return match Transport::of(e.kind()) {
                Transport::Retry | Transport::NotYet => Ok(false),
                Transport::Fatal => Err(DriveError::Io(e)),
            }
        }
    }
    match io.read(pump.read_buf()) {
        Ok(n) => {
            pump.received(n);
            Ok(true)
        }
        Err(e) => match Transport::of(e.kind()) {
            Transport::Retry | Transport::NotYet => Ok(false),
            Transport::Fatal => Err(DriveError::Io(e)),
        },
    }
}

/// One turn of a driver's loop: step, write, or read when ready. Returns
/// the pump's wants after the step, and whether the turn read anything.
fn turn<T, S>(
    io: &mut T,
    pump: &mut Pump<'_>,
    session: &mut S,
    now: Instant,
) -> Result<Wants, DriveError<T::Error>>
where
    T: Read + Write + ReadReady,
    S: Session + ?Sized,
{
    let wants = pump.step(session, now);
    if wants.transmit {
        write_staged(io, pump)?;
    } else if wants.read && !wants.app {
        read_ready(io, pump)?;
    }
    Ok(wants)
}

/// Serves one connection with `agent` until the peer closes it (after every
/// reply is out: [`Served::Eof`]) or the application breaks
/// ([`Served::Stopped`]).
///
/// `app(agent, now)` runs whenever a request waits, when the output has
/// all been written (so that a reply that found it full,
/// [`CompleteError::OutputFull`](crate::agent::CompleteError::OutputFull),
/// is retried at once) and, with [`ServeOptions::with_tick_ms`], at least
/// every tick while the peer is silent: it polls requests, completes them,
/// emits events. Throttled
/// events go out when their window ends, input or not. `now` is the
/// caller's monotonic clock.
///
/// # Errors
/// A transport error ([`DriveError::Io`], [`DriveError::WriteZero`]): the
/// agent and the pump keep their state; call again to go on, or
/// [`Agent::handle_eof`] and [`Pump::reset`] to drop the connection.
pub fn serve<T, C, A>(
    agent: &mut Agent<'_, '_>,
    io: &mut T,
    pump: &mut Pump<'_>,
    options: ServeOptions,
    mut now: C,
    mut app: A,
) -> Result<Served, DriveError<T::Error>>
where
    T: Read + Write + ReadReady,
    C: FnMut() -> Instant,
    A: FnMut(&mut Agent<'_, '_>, Instant) -> ControlFlow<()>,
{
    let mut tick = options.next_tick(now());
    loop {
        let t = now();
        let wants = turn(io, pump, agent, t)?;
        let ticked = tick.is_some_and(|at| at <= t);
        // Output went out and none is left: a reply the application could
        // not complete for want of room (`CompleteError::OutputFull`) fits
        // now, so it runs again rather than at the next tick.
        let drained = wants.transmit && pump.transmit().is_empty() && agent.pending_output() == 0;
        if wants.app || ticked || drained {
            if ticked {
                tick = options.next_tick(t);
            }
            if app(agent, t).is_break() {
                // What the application queued goes out before it stops.
                pump.step(agent, t);
                write_staged(io, pump)?;
                return Ok(Served::Stopped);
            }
            continue;
        }
        if wants.closed {
            pump.reset();
            return Ok(Served::Eof);
        }
    }
}

/// The blocking client driver: runs a QMP [`Client`] or a guest-agent
/// [`QgaClient`] over a transport, on the caller's [`Pump`].
///
/// ```
/// use qmp_core::client::{Client, ClientEvent, ExecuteOptions, Outcome};
/// use qmp_core::client::commands::Stop;
/// use qmp_core::drive::blocking::{AlwaysReady, BlockingDriver};
/// use qmp_core::pump::Pump;
/// use qmp_core::Instant;
///
/// /// Replays canned server bytes; swallows what the client writes.
/// struct Canned(&'static [u8]);
/// impl embedded_io::ErrorType for Canned { type Error = core::convert::Infallible; }
/// impl embedded_io::Read for Canned {
///     fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
///         let n = buf.len().min(self.0.len());
///         buf[..n].copy_from_slice(&self.0[..n]);
///         self.0 = &self.0[n..];
///         Ok(n)
///     }
/// }
/// impl embedded_io::Write for Canned {
///     fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> { Ok(buf.len()) }
///     fn flush(&mut self) -> Result<(), Self::Error> { Ok(()) }
/// }
///
/// let mut io = AlwaysReady(Canned(b"{\"QMP\": {\"version\": {}, \"capabilities\": []}}\r\n{\"return\": {}}\r\n\
///                      {\"timestamp\": {\"seconds\": 1, \"microseconds\": 0}, \"event\": \"STOP\"}\r\n\
///                      {\"return\": {}, \"id\": 1}\r\n"));
/// let (mut fb, mut rx, mut tx) = ([0u8; 512], [0u8; 64], [0u8; 128]);
/// let mut client = Client::new(&mut fb[..]);
/// let mut driver = BlockingDriver::new(Pump::new(&mut rx, &mut tx));
/// let now = || Instant::ZERO;
/// driver.negotiate(&mut client, &mut io, now, |_| {}).unwrap();
/// let token = driver.execute(&mut client, &mut io, now(), &Stop, ExecuteOptions::new()).unwrap();
/// let mut events = 0;
/// let outcome = driver
///     .run_until(&mut client, &mut io, token, now, |ev| {
///         if matches!(ev, ClientEvent::Event(_)) { events += 1 }
///     })
///     .unwrap();
/// assert!(matches!(outcome, Outcome::Return(_)));
/// assert_eq!(events, 1);
/// ```
pub type BlockingDriver<'b> = super::ClientDriver<'b, super::Blocking>;

impl<'b> BlockingDriver<'b> {
    /// Writes what the session wants sent on its own (the automatic
    /// `qmp_capabilities`, a sync).
    ///
    /// # Errors
    /// Transport errors.
    pub fn flush<S, T>(&mut self, session: &mut S, io: &mut T) -> Result<(), DriveError<T::Error>>
    where
        S: Session,
        T: Write,
    {
        while {
            self.pump.stage(session);
            !self.pump.transmit().is_empty()
        } {
            write_staged(io, &mut self.pump)?;
        }
        Ok(())
    }

    /// Executes a typed command: writes it and returns its token (wait for
    /// it with [`BlockingDriver::run_until`]).
    ///
    /// # Errors
    /// [`DriveError::Execute`] or a transport error.
    pub fn execute<S, T, C>(
        &mut self,
        session: &mut S,
        io: &mut T,
        now: Instant,
        command: &C,
        options: ExecuteOptions,
    ) -> Result<Token, DriveError<T::Error>>
    where
        S: ClientSession,
        T: Write,
        C: Command,
    {
        self.flush(session, io)?;
        let token = queue(&mut self.pump, session, |s, out| {
            s.execute(now, command, options, out)
        })
        .map_err(DriveError::Execute)?;
        write_staged(io, &mut self.pump)?;
        Ok(token)
    }

    /// Executes a command by name (see
    /// [`Client::execute_raw`](crate::client::Client::execute_raw)).
    ///
    /// # Errors
    /// [`DriveError::Execute`] or a transport error.
    pub fn execute_raw<S, T>(
        &mut self,
        session: &mut S,
        io: &mut T,
        now: Instant,
        name: &str,
        arguments: Option<RawJson<'_>>,
        options: ExecuteOptions,
    ) -> Result<Token, DriveError<T::Error>>
    where
        S: ClientSession,
        T: Write,
    {
        self.flush(session, io)?;
        let token = queue(&mut self.pump, session, |s, out| {
            s.execute_raw(now, name, arguments, options, out)
        })
        .map_err(DriveError::Execute)?;
        write_staged(io, &mut self.pump)?;
        Ok(token)
    }

    /// Runs until `token` resolves and returns its outcome (borrowed from
    /// the session). Every other event goes to `on_event`. End of stream
    /// resolves the request as [`Outcome::Disconnected`].
    ///
    /// # Errors
    /// [`DriveError::UnknownToken`] if `token` is not pending; transport
    /// errors.
    pub fn run_until<'c, S, T>(
        &mut self,
        session: &'c mut S,
        io: &mut T,
        token: Token,
        mut now: impl FnMut() -> Instant,
        mut on_event: impl FnMut(&ClientEvent<'_>),
    ) -> Result<Outcome<'c>, DriveError<T::Error>>
    where
        S: ClientSession,
        T: Read + Write + ReadReady,
    {
        if !session.knows(token) {
            return Err(DriveError::UnknownToken);
        }
        self.drive_until(session, io, &mut now, |s| resolved(s, token, &mut on_event))?;
        take_outcome(session).ok_or(DriveError::UnknownToken)
    }

    /// Runs until a QMP client is negotiated ([`State::Ready`]; with
    /// [`Negotiation::Manual`], until the greeting is in); every event goes
    /// to `on_event` (the greeting, [`ClientEvent::Negotiated`], …).
    ///
    /// # Errors
    /// [`DriveError::NegotiationFailed`], [`DriveError::Eof`], transport
    /// errors.
    pub fn negotiate<B, const N: usize, T>(
        &mut self,
        client: &mut Client<B, N>,
        io: &mut T,
        mut now: impl FnMut() -> Instant,
        mut on_event: impl FnMut(&ClientEvent<'_>),
    ) -> Result<(), DriveError<T::Error>>
    where
        B: AsRef<[u8]> + AsMut<[u8]>,
        T: Read + Write + ReadReady,
    {
        self.drive_until(client, io, &mut now, |c| negotiated(c, &mut on_event))?;
        self.flush(client, io)
    }

    /// Runs the session until `done` (which polls its events) says stop.
    fn drive_until<S, T>(
        &mut self,
        session: &mut S,
        io: &mut T,
        now: &mut impl FnMut() -> Instant,
        mut done: impl FnMut(&mut S) -> Option<Result<(), DriveError<T::Error>>>,
    ) -> Result<(), DriveError<T::Error>>
    where
        S: Session,
        T: Read + Write + ReadReady,
    {
        loop {
            if let Some(r) = done(session) {
                return r;
            }
            turn(io, &mut self.pump, session, now())?;
        }
    }

    #[cfg(feature = "qga")]
    /// Syncs a guest-agent client ([`QgaClient::sync`] with `id`, due at
    /// `deadline`) and runs until the sync resolves; other events go to
    /// `on_event`.
    ///
    /// # Errors
    /// [`DriveError::SyncFailed`] (timed out: sync again with a new id),
    /// [`DriveError::Execute`], [`DriveError::Eof`], transport errors.
    pub fn sync<B, const N: usize, T>(
        &mut self,
        qga: &mut QgaClient<B, N>,
        io: &mut T,
        id: u64,
        deadline: Instant,
        mut now: impl FnMut() -> Instant,
        on_event: impl FnMut(&ClientEvent<'_>),
    ) -> Result<(), DriveError<T::Error>>
    where
        B: AsRef<[u8]> + AsMut<[u8]>,
        T: Read + Write + ReadReady,
    {
        let token = qga.sync(now(), id, deadline).map_err(DriveError::Execute)?;
        let outcome = self.run_until(qga, io, token, &mut now, on_event)?;
        let ok = matches!(outcome, Outcome::Return(_));
        super::synced::<B, N, T::Error>(ok, qga)
    }
}
