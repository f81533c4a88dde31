//! The async drivers over `embedded-io-async` (feature
//! `embedded-io-async`): [`serve`] runs an [`Agent`], [`AsyncDriver`] runs the
//! QMP and guest-agent clients. Runtime-free: no executor or time driver in
//! qmp-core, no allocation, no `unsafe`; futures are raced with
//! `core::future::poll_fn`.
//!
//! Time comes from the caller through [`Clock`]: its `now` and a future that
//! completes at an instant. (A trait of our own rather than
//! `embedded-hal-async`'s `DelayNs`: the sessions need absolute deadlines on
//! the caller's clock, and `DelayNs` has no clock to read; an `embassy-time`
//! user implements it in four lines with `Instant::now` and `Timer::at`.)
//!
//! **Cancel safety.** [`serve`] never cancels a read: a read in flight is
//! kept across turns (the pump lends it its buffer), so a reader whose
//! `read` is not cancel-safe (a DMA UART) loses nothing while the agent
//! writes, runs the application or handles a deadline. The clock's `at` and
//! the application's [`App::wake`] are raced and dropped when something
//! else happens first: they must be cancel-safe (timers and signals are).
//! [`AsyncDriver`]'s calls return when their request resolves; a read still in
//! flight then (the request timed out while the peer was silent) is
//! dropped, so give the client driver a cancel-safe reader (most are:
//! embedded-io-async asks for it). Dropping a driver future itself costs the
//! connection: what was staged or read stays in the pump, but a write in
//! progress may have been cut short.
//!
//! ```
//! use core::future::Future;
//! use core::ops::ControlFlow;
//! use qmp_core::agent::{Agent, AgentBuffers, AgentConfig, CommandSpec, EventOut, Reply};
//! use qmp_core::drive::asynch::{serve, App, Clock};
//! use qmp_core::drive::{ServeOptions, Served};
//! use qmp_core::pump::Pump;
//! use qmp_core::Instant;
//!
//! struct Canned(&'static [u8]);
//! impl embedded_io_async::ErrorType for Canned { type Error = core::convert::Infallible; }
//! impl embedded_io_async::Read for Canned {
//!     async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
//!         let n = buf.len().min(self.0.len());
//!         buf[..n].copy_from_slice(&self.0[..n]);
//!         self.0 = &self.0[n..];
//!         Ok(n)
//!     }
//! }
//! struct Sink(Vec<u8>);
//! impl embedded_io_async::ErrorType for Sink { type Error = core::convert::Infallible; }
//! impl embedded_io_async::Write for Sink {
//!     async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
//!         self.0.extend_from_slice(buf);
//!         Ok(buf.len())
//!     }
//!     async fn flush(&mut self) -> Result<(), Self::Error> { Ok(()) }
//! }
//! /// A clock that stands still (this example never waits).
//! struct Frozen;
//! impl Clock for Frozen {
//!     fn now(&self) -> Instant { Instant::ZERO }
//!     fn at(&self, _: Instant) -> impl Future<Output = ()> { core::future::pending() }
//! }
//! /// Answers `stop` with `{}` and a STOP event.
//! struct Monitor;
//! impl App for Monitor {
//!     fn serve(&mut self, agent: &mut Agent<'_, '_>, now: Instant) -> ControlFlow<()> {
//!         while let Some(req) = agent.poll_request() {
//!             let token = req.token;
//!             let _ = agent.emit(now, &EventOut::new("STOP"));
//!             let empty = qmp_core::scan::validate(b"{}", Default::default()).unwrap();
//!             let _ = agent.complete(token, Reply::Return(&empty));
//!         }
//!         ControlFlow::Continue(())
//!     }
//! }
//!
//! const COMMANDS: &[CommandSpec<'static>] = &[CommandSpec::new("stop")];
//! let (mut f, mut q, mut o) = ([0u8; 256], [0u8; 512], [0u8; 512]);
//! let cfg = AgentConfig::new((10, 0, 0), "", COMMANDS);
//! let mut agent = Agent::new(cfg, AgentBuffers::new(&mut f, &mut q, &mut o)).unwrap();
//! let (mut rx, mut tx) = ([0u8; 64], [0u8; 64]);
//! let mut pump = Pump::new(&mut rx, &mut tx);
//! let mut reader = Canned(br#"{"execute":"qmp_capabilities"}{"execute":"stop","id":1}"#);
//! let mut writer = Sink(Vec::new());
//! let served = embassy_futures::block_on(serve(
//!     &mut agent, &mut reader, &mut writer, &mut pump, ServeOptions::new(), &Frozen, &mut Monitor,
//! ));
//! assert_eq!(served.unwrap(), Served::Eof);
//! assert!(writer.0.ends_with(b"\"event\": \"STOP\"}\r\n{\"return\": {}, \"id\": 1}\r\n"));
//! ```

use core::future::{poll_fn, Future};
use core::ops::ControlFlow;
use core::pin::pin;
use core::task::Poll;

use embedded_io::Error as _;
use embedded_io_async::{Read, Write};

use super::{
    negotiated, queue, resolved, take_outcome, ClientSession, DriveError, ServeOptions, Served,
    Transport,
};
use crate::agent::Agent;
use crate::client::{Client, ClientEvent, Command, ExecuteOptions, Outcome, Token};
use crate::json::RawJson;
use crate::pump::{Pump, Session};
#[cfg(feature = "qga")]
use crate::qga::QgaClient;
use crate::Instant;

/// The caller's clock, for the async drivers.
pub trait Clock {
    /// Now, on the caller's monotonic millisecond clock.
    fn now(&self) -> Instant;
    /// Completes at `at` (at once if it has passed). Must be cancel-safe.
    fn at(&self, at: Instant) -> impl Future<Output = ()>;
}

/// The application of an async [`serve`]: it answers requests and emits
/// events.
pub trait App {
    /// Polls requests, completes them, emits events. Called when a request
    /// waits, at every tick ([`ServeOptions::with_tick_ms`]), and when
    /// [`App::wake`] completed. Break to stop serving.
    fn serve(&mut self, agent: &mut Agent<'_, '_>, now: Instant) -> ControlFlow<()>;

    /// Completes when the application has work while the peer is silent:
    /// another task handed it an event to emit, a deferred request is ready
    /// to complete. Raced against input and timers, so it must be
    /// cancel-safe (a signal's `wait` is). The default never completes.
    fn wake(&mut self) -> impl Future<Output = ()> {
        core::future::pending()
    }
}

/// What ended a wait.
enum Woke<T> {
    /// The read in flight completed.
    Read(T),
    /// A deadline or tick passed, or the application woke.
    Other,
}

/// A read that hands back its reader and buffer, so it can be kept in
/// flight across turns.
async fn read_into<'r, 'b, R: Read>(
    reader: &'r mut R,
    buf: &'b mut [u8],
) -> (Result<usize, R::Error>, &'r mut R, &'b mut [u8]) {
    let r = reader.read(buf).await;
    (r, reader, buf)
}

/// Writes what the pump staged; flushes once it is all out.
async fn write_staged<W: Write>(
    w: &mut W,
    pump: &mut Pump<'_>,
) -> Result<(), DriveError<W::Error>> {
    while !pump.transmit().is_empty() {
        match w.write(pump.transmit()).await {
            Ok(0) => return Err(DriveError::WriteZero),
            Ok(n) => pump.sent(n),
            Err(e) => match Transport::of(e.kind()) {
                Transport::Retry | Transport::NotYet => {}
                Transport::Fatal => return Err(DriveError::Io(e)),
            },
        }
    }
    loop {
        match w.flush().await {
            Ok(()) => return Ok(()),
            Err(e) => match Transport::of(e.kind()) {
                Transport::Retry | Transport::NotYet => {}
                Transport::Fatal => return Err(DriveError::Io(e)),
            },
        }
    }
}

/// The earlier of two optional instants.
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Waits for the first of: the read in flight (if any), `wake`, the timer
/// (if any).
async fn first<F: Future, G: Future, H: Future>(
    reading: &mut core::pin::Pin<&mut Option<F>>,
    wake: G,
    timer: Option<H>,
) -> Woke<F::Output> {
    let mut wake = pin!(wake);
    let mut timer = pin!(timer);
    poll_fn(|cx| {
        if let Some(f) = reading.as_mut().as_pin_mut() {
            if let Poll::Ready(out) = f.poll(cx) {
                return Poll::Ready(Woke::Read(out));
            }
        }
        if wake.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Woke::Other);
        }
        if let Some(t) = timer.as_mut().as_pin_mut() {
            if t.poll(cx).is_ready() {
                return Poll::Ready(Woke::Other);
            }
        }
        Poll::Pending
    })
    .await
}

/// The outcome of a read, handed back to the pump; the reader is free
/// again.
fn finish<'r, 'b, R: Read>(
    out: (Result<usize, R::Error>, &'r mut R, &'b mut [u8]),
    pump: &mut Pump<'b>,
    idle: &mut Option<&'r mut R>,
) -> Result<(), DriveError<R::Error>> {
    let (result, reader, buf) = out;
    *idle = Some(reader);
    pump.give_back(buf);
    match result {
        Ok(n) => {
            pump.received(n);
            Ok(())
        }
        Err(e) => match Transport::of(e.kind()) {
            Transport::Retry | Transport::NotYet => Ok(()),
            Transport::Fatal => Err(DriveError::Io(e)),
        },
    }
}

/// Serves one connection with `agent` until the peer closes it (after every
/// reply is out: [`Served::Eof`]) or the application breaks
/// ([`Served::Stopped`]). `app` runs whenever a request waits, at every
/// tick, and when [`App::wake`] completes — so another task can hand it an
/// event that goes out while the peer is silent. See the
/// [module docs](self) for cancel safety.
///
/// # Errors
/// A transport error: the agent and the pump keep their state (a read in
/// flight is lost with the future).
pub async fn serve<'r, 'b, R, W, C, A>(
    agent: &mut Agent<'_, '_>,
    reader: &'r mut R,
    writer: &mut W,
    pump: &mut Pump<'b>,
    options: ServeOptions,
    clock: &C,
    app: &mut A,
) -> Result<Served, DriveError<R::Error>>
where
    R: Read,
    W: Write<Error = R::Error>,
    C: Clock,
    A: App,
{
    let mut tick = options.next_tick(clock.now());
    let mut idle = Some(reader);
    let mut reading = pin!(None);
    loop {
        let t = clock.now();
        let wants = pump.step(agent, t);
        if wants.transmit {
            write_staged(writer, pump).await?;
            continue;
        }
        let ticked = tick.is_some_and(|at| at <= t);
        if wants.app || ticked {
            if ticked {
                tick = options.next_tick(t);
            }
            if app.serve(agent, t).is_break() {
                pump.step(agent, t);
                write_staged(writer, pump).await?;
                return Ok(Served::Stopped);
            }
            continue;
        }
        if wants.closed {
            pump.reset();
            return Ok(Served::Eof);
        }
        // A read into the pump's buffer, when the session takes input and
        // none is in flight; it stays in flight until it completes.
        if reading.is_none() && wants.read {
            if let Some(r) = idle.take() {
                match pump.lend_rx() {
                    Some(buf) => reading.set(Some(read_into(r, buf))),
                    None => idle = Some(r),
                }
            }
        }
        let timer = earliest(wants.timeout, tick).map(|at| clock.at(at));
        if let Woke::Read(out) = first(&mut reading, app.wake(), timer).await {
            reading.set(None);
            finish(out, pump, &mut idle)?;
        }
    }
}

/// The async client driver: runs a QMP [`Client`] or a guest-agent
/// [`QgaClient`] over a reader and a writer, on the caller's [`Pump`]. A
/// call returns when its request resolves (see the [module docs](self) on
/// the read it may leave behind).
///
/// ```
/// use core::future::Future;
/// use qmp_core::client::{Client, ExecuteOptions, Outcome};
/// use qmp_core::client::commands::QueryStatus;
/// use qmp_core::drive::asynch::{Clock, AsyncDriver};
/// use qmp_core::pump::Pump;
/// use qmp_core::Instant;
///
/// struct Canned(&'static [u8]);
/// impl embedded_io_async::ErrorType for Canned { type Error = core::convert::Infallible; }
/// impl embedded_io_async::Read for Canned {
///     async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
///         let n = buf.len().min(self.0.len());
///         buf[..n].copy_from_slice(&self.0[..n]);
///         self.0 = &self.0[n..];
///         Ok(n)
///     }
/// }
/// impl embedded_io_async::Write for Canned {
///     async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> { Ok(buf.len()) }
///     async fn flush(&mut self) -> Result<(), Self::Error> { Ok(()) }
/// }
/// struct Frozen;
/// impl Clock for Frozen {
///     fn now(&self) -> Instant { Instant::ZERO }
///     fn at(&self, _: Instant) -> impl Future<Output = ()> { core::future::pending() }
/// }
///
/// let mut reader = Canned(b"{\"QMP\": {\"version\": {}, \"capabilities\": []}}\r\n{\"return\": {}}\r\n\
///     {\"return\": {\"status\": \"running\", \"running\": true}, \"id\": 1}\r\n");
/// let mut writer = Canned(b"");
/// let (mut fb, mut rx, mut tx) = ([0u8; 512], [0u8; 64], [0u8; 128]);
/// let mut client = Client::new(&mut fb[..]);
/// let mut driver = AsyncDriver::new(Pump::new(&mut rx, &mut tx));
/// embassy_futures::block_on(async {
///     driver.negotiate(&mut client, &mut reader, &mut writer, &Frozen, |_| {}).await.unwrap();
///     let token = driver
///         .execute(&mut client, &mut writer, Instant::ZERO, &QueryStatus, ExecuteOptions::new())
///         .await
///         .unwrap();
///     let outcome = driver
///         .run_until(&mut client, &mut reader, &mut writer, token, &Frozen, |_| {})
///         .await
///         .unwrap();
///     assert!(outcome.decode::<QueryStatus>().unwrap().running);
/// });
/// ```
pub type AsyncDriver<'b> = super::ClientDriver<'b, super::Async>;

impl<'b> AsyncDriver<'b> {
    /// Writes what the session wants sent on its own (the automatic
    /// `qmp_capabilities`, a sync).
    ///
    /// # Errors
    /// Transport errors.
    pub async fn flush<S: Session, W: Write>(
        &mut self,
        session: &mut S,
        writer: &mut W,
    ) -> Result<(), DriveError<W::Error>> {
        loop {
            self.pump.stage(session);
            if self.pump.transmit().is_empty() {
                return Ok(());
            }
            write_staged(writer, &mut self.pump).await?;
        }
    }

    /// Executes a typed command: writes it and returns its token (wait for
    /// it with [`AsyncDriver::run_until`]).
    ///
    /// # Errors
    /// [`DriveError::Execute`] or a transport error.
    pub async fn execute<S: ClientSession, W: Write, C: Command>(
        &mut self,
        session: &mut S,
        writer: &mut W,
        now: Instant,
        command: &C,
        options: ExecuteOptions,
    ) -> Result<Token, DriveError<W::Error>> {
        self.flush(session, writer).await?;
        let token = queue(&mut self.pump, session, |s, out| {
            s.execute(now, command, options, out)
        })
        .map_err(DriveError::Execute)?;
        write_staged(writer, &mut self.pump).await?;
        Ok(token)
    }

    /// Executes a command by name (see
    /// [`Client::execute_raw`](crate::client::Client::execute_raw)).
    ///
    /// # Errors
    /// [`DriveError::Execute`] or a transport error.
    pub async fn execute_raw<S: ClientSession, W: Write>(
        &mut self,
        session: &mut S,
        writer: &mut W,
        now: Instant,
        name: &str,
        arguments: Option<RawJson<'_>>,
        options: ExecuteOptions,
    ) -> Result<Token, DriveError<W::Error>> {
        self.flush(session, writer).await?;
        let token = queue(&mut self.pump, session, |s, out| {
            s.execute_raw(now, name, arguments, options, out)
        })
        .map_err(DriveError::Execute)?;
        write_staged(writer, &mut self.pump).await?;
        Ok(token)
    }

    /// Runs until `token` resolves and returns its outcome (borrowed from
    /// the session). Every other event goes to `on_event`. End of stream
    /// resolves the request as [`Outcome::Disconnected`]; its deadline, as
    /// [`Outcome::Timeout`].
    ///
    /// # Errors
    /// [`DriveError::UnknownToken`] if `token` is not pending; transport
    /// errors.
    pub async fn run_until<'c, S, R, W, C>(
        &mut self,
        session: &'c mut S,
        reader: &mut R,
        writer: &mut W,
        token: Token,
        clock: &C,
        mut on_event: impl FnMut(&ClientEvent<'_>),
    ) -> Result<Outcome<'c>, DriveError<R::Error>>
    where
        S: ClientSession,
        R: Read,
        W: Write<Error = R::Error>,
        C: Clock,
    {
        if !session.knows(token) {
            return Err(DriveError::UnknownToken);
        }
        self.drive_until(session, reader, writer, clock, |s| {
            resolved(s, token, &mut on_event)
        })
        .await?;
        take_outcome(session).ok_or(DriveError::UnknownToken)
    }

    /// Runs until a QMP client is negotiated ([`State::Ready`]; with
    /// [`Negotiation::Manual`], until the greeting is in); every event goes
    /// to `on_event`.
    ///
    /// # Errors
    /// [`DriveError::NegotiationFailed`], [`DriveError::Eof`], transport
    /// errors.
    pub async fn negotiate<B, const N: usize, R, W, C>(
        &mut self,
        client: &mut Client<B, N>,
        reader: &mut R,
        writer: &mut W,
        clock: &C,
        mut on_event: impl FnMut(&ClientEvent<'_>),
    ) -> Result<(), DriveError<R::Error>>
    where
        B: AsRef<[u8]> + AsMut<[u8]>,
        R: Read,
        W: Write<Error = R::Error>,
        C: Clock,
    {
        self.drive_until(client, reader, writer, clock, |c| {
            negotiated(c, &mut on_event)
        })
        .await?;
        self.flush(client, writer).await
    }

    /// Runs the session until `done` (which polls its events) says stop:
    /// staged bytes written, a read kept in flight until it completes, the
    /// session's deadlines waited for.
    async fn drive_until<S, R, W, C>(
        &mut self,
        session: &mut S,
        reader: &mut R,
        writer: &mut W,
        clock: &C,
        mut done: impl FnMut(&mut S) -> Option<Result<(), DriveError<R::Error>>>,
    ) -> Result<(), DriveError<R::Error>>
    where
        S: Session,
        R: Read,
        W: Write<Error = R::Error>,
        C: Clock,
    {
        let mut idle = Some(reader);
        let mut reading = pin!(None);
        loop {
            if let Some(r) = done(session) {
                return r;
            }
            let wants = self.pump.step(session, clock.now());
            if wants.transmit {
                write_staged(writer, &mut self.pump).await?;
                continue;
            }
            if wants.app {
                continue;
            }
            if reading.is_none() && wants.read {
                if let Some(r) = idle.take() {
                    match self.pump.lend_rx() {
                        Some(buf) => reading.set(Some(read_into(r, buf))),
                        None => idle = Some(r),
                    }
                }
            }
            let timer = wants.timeout.map(|at| clock.at(at));
            if let Woke::Read(out) = first(&mut reading, core::future::pending::<()>(), timer).await
            {
                reading.set(None);
                finish(out, &mut self.pump, &mut idle)?;
            }
        }
    }

    #[cfg(feature = "qga")]
    /// Syncs a guest-agent client ([`QgaClient::sync`] with `id`, due at
    /// `deadline`) and runs until the sync resolves.
    ///
    /// # Errors
    /// [`DriveError::SyncFailed`] (sync again with a new id),
    /// [`DriveError::Execute`], [`DriveError::Eof`], transport errors.
    #[allow(clippy::too_many_arguments)]
    pub async fn sync<B, const N: usize, R, W, C>(
        &mut self,
        qga: &mut QgaClient<B, N>,
        reader: &mut R,
        writer: &mut W,
        id: u64,
        deadline: Instant,
        clock: &C,
        on_event: impl FnMut(&ClientEvent<'_>),
    ) -> Result<(), DriveError<R::Error>>
    where
        B: AsRef<[u8]> + AsMut<[u8]>,
        R: Read,
        W: Write<Error = R::Error>,
        C: Clock,
    {
        let token = qga
            .sync(clock.now(), id, deadline)
            .map_err(DriveError::Execute)?;
        let outcome = self
            .run_until(qga, reader, writer, token, clock, on_event)
            .await?;
        let ok = matches!(outcome, Outcome::Return(_));
        super::synced::<B, N, R::Error>(ok, qga)
    }
}
