//! Drivers: the sessions run over a transport, on the [`Pump`](crate::pump::Pump).
//!
//! * [`blocking`] (feature `embedded-io`): over `embedded_io::{Read, Write,
//!   ReadReady}` — [`blocking::serve`] for an agent, [`blocking::BlockingDriver`]
//!   for the QMP and guest-agent clients;
//! * [`asynch`] (feature `embedded-io-async`): over
//!   `embedded_io_async::{Read, Write}` (separate reader and writer, so
//!   split UART or socket halves work), runtime-free — [`asynch::serve`]
//!   for an agent, [`asynch::AsyncDriver`] for the clients.
//!
//! Every driver runs the same pump and the same error policy
//! (one policy, in one place): `Interrupted` is retried, `TimedOut` means "no data
//! yet", any other error ends the call and is returned with the session's
//! state intact (nothing staged or received is lost: call again, or drop
//! the connection). Written bytes are flushed before a driver waits.

use core::fmt;

use crate::client::{
    Client, ClientEvent, Command, ExecuteError, ExecuteOptions, Negotiation, Outcome, State, Token,
};
use crate::json::RawJson;
use crate::pump::Session;
use crate::{Instant, InsufficientSize};

#[cfg(feature = "embedded-io-async")]
pub mod asynch;
#[cfg(feature = "embedded-io")]
pub mod blocking;

/// Why a driver stopped with an error. The session keeps its state.
#[derive(Debug)]
#[non_exhaustive]
pub enum DriveError<E> {
    /// The transport failed (not `Interrupted`, not `TimedOut`).
    Io(E),
    /// The transport accepted no bytes (`write` returned 0).
    WriteZero,
    /// The client refused the command.
    Execute(ExecuteError),
    /// The transmit buffer cannot hold a message the session sends itself.
    Transmit(InsufficientSize),
    /// The automatic `qmp_capabilities` failed.
    NegotiationFailed,
    /// The guest-agent sync did not complete (timed out, cancelled or
    /// disconnected).
    SyncFailed,
    /// The token is not pending.
    UnknownToken,
    /// End of stream before the call could finish.
    Eof,
}

impl<E: fmt::Debug> fmt::Display for DriveError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DriveError::Io(e) => write!(f, "transport error: {e:?}"),
            DriveError::WriteZero => f.write_str("transport accepted no bytes"),
            DriveError::Execute(e) => write!(f, "{e}"),
            DriveError::Transmit(s) => write!(f, "transmit {s}"),
            DriveError::NegotiationFailed => f.write_str("capability negotiation failed"),
            DriveError::SyncFailed => f.write_str("guest agent sync failed"),
            DriveError::UnknownToken => f.write_str("no pending request has this token"),
            DriveError::Eof => f.write_str("end of stream"),
        }
    }
}

impl<E: fmt::Debug> core::error::Error for DriveError<E> {}

#[cfg(feature = "defmt")]
impl<E> defmt::Format for DriveError<E> {
    fn format(&self, f: defmt::Formatter<'_>) {
        match self {
            DriveError::Io(_) => defmt::write!(f, "transport error"),
            DriveError::WriteZero => defmt::write!(f, "transport accepted no bytes"),
            DriveError::Execute(e) => defmt::write!(f, "{}", e),
            DriveError::Transmit(s) => defmt::write!(f, "transmit {}", s),
            DriveError::NegotiationFailed => defmt::write!(f, "capability negotiation failed"),
            DriveError::SyncFailed => defmt::write!(f, "guest agent sync failed"),
            DriveError::UnknownToken => defmt::write!(f, "no pending request has this token"),
            DriveError::Eof => defmt::write!(f, "end of stream"),
        }
    }
}

/// How a serving loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Served {
    /// The peer closed the connection after everything it sent was
    /// answered; the agent is reset (its greeting queued) and the pump
    /// cleared, ready for the next connection.
    Eof,
    /// The application asked to stop; the output staged so far was written.
    Stopped,
}

/// Settings of a serving loop. Default: no tick (the application runs when a
/// request waits).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct ServeOptions {
    tick_ms: Option<u64>,
}

impl ServeOptions {
    /// The defaults.
    pub const fn new() -> Self {
        ServeOptions { tick_ms: None }
    }

    /// Runs the application at least every `ms` milliseconds, even while
    /// the peer is silent (to emit events from a timer, a button, a
    /// sensor).
    #[must_use]
    pub const fn with_tick_ms(mut self, ms: u64) -> Self {
        self.tick_ms = Some(if ms == 0 { 1 } else { ms });
        self
    }

    /// The tick.
    pub const fn tick_ms(&self) -> Option<u64> {
        self.tick_ms
    }

    /// The next tick after `now`.
    pub(crate) fn next_tick(&self, now: Instant) -> Option<Instant> {
        self.tick_ms.map(|ms| now.saturating_add_millis(ms))
    }
}

/// What the error policy makes of a transport error.
pub(crate) enum Transport {
    /// `Interrupted`: try again at once.
    Retry,
    /// `TimedOut`: nothing yet; go on with other work.
    NotYet,
    /// Anything else: the call ends with this error.
    Fatal,
}

impl Transport {
    /// The one error policy of every driver.
    pub(crate) fn of(kind: embedded_io::ErrorKind) -> Transport {
        match kind {
            embedded_io::ErrorKind::Interrupted => Transport::Retry,
            embedded_io::ErrorKind::TimedOut => Transport::NotYet,
            _ => Transport::Fatal,
        }
    }
}

/// The client sessions a [`blocking::BlockingDriver`] or [`asynch::AsyncDriver`] runs:
/// the QMP [`Client`](crate::client::Client) and the guest-agent
/// [`QgaClient`](crate::qga::QgaClient).
pub trait ClientSession: Session {
    /// See [`Client::execute`](crate::client::Client::execute).
    ///
    /// # Errors
    /// See [`ExecuteError`].
    fn execute<C: Command>(
        &mut self,
        now: Instant,
        command: &C,
        options: ExecuteOptions,
        out: &mut [u8],
    ) -> Result<(Token, usize), ExecuteError>;
    /// See [`Client::execute_raw`](crate::client::Client::execute_raw).
    ///
    /// # Errors
    /// See [`ExecuteError`].
    fn execute_raw(
        &mut self,
        now: Instant,
        name: &str,
        arguments: Option<RawJson<'_>>,
        options: ExecuteOptions,
        out: &mut [u8],
    ) -> Result<(Token, usize), ExecuteError>;
    /// The next event.
    fn poll_event(&mut self) -> Option<ClientEvent<'_>>;
    /// Whether the next event resolves `token`.
    fn next_event_resolves(&self, token: Token) -> bool;
    /// Whether `token` is pending or its resolution is still to be polled.
    fn knows(&self, token: Token) -> bool;
}

/// A client driver: the caller's [`Pump`](crate::pump::Pump) (what is
/// staged and held stays across calls), and how it waits, `M` — used as
/// [`blocking::BlockingDriver`] or [`asynch::AsyncDriver`], whose docs list the calls.
#[derive(Debug)]
pub struct ClientDriver<'b, M> {
    pump: crate::pump::Pump<'b>,
    mode: core::marker::PhantomData<M>,
}

/// [`ClientDriver`]'s mode for [`blocking::BlockingDriver`].
#[derive(Debug)]
pub enum Blocking {}

/// [`ClientDriver`]'s mode for [`asynch::AsyncDriver`].
#[derive(Debug)]
pub enum Async {}

impl<'b, M> ClientDriver<'b, M> {
    /// A driver on `pump` (its transmit buffer holds one outgoing command).
    pub fn new(pump: crate::pump::Pump<'b>) -> Self {
        ClientDriver {
            pump,
            mode: core::marker::PhantomData,
        }
    }

    /// The pump.
    pub fn pump(&mut self) -> &mut crate::pump::Pump<'b> {
        &mut self.pump
    }
}

/// For a driver negotiating a QMP client: reports its events and says
/// whether negotiation is over (`Some`: done or failed).
pub(crate) fn negotiated<B: AsRef<[u8]> + AsMut<[u8]>, const N: usize, E>(
    client: &mut Client<B, N>,
    on_event: &mut impl FnMut(&ClientEvent<'_>),
) -> Option<Result<(), DriveError<E>>> {
    while let Some(ev) = client.poll_event() {
        let failed = matches!(ev, ClientEvent::NegotiationFailed { .. });
        on_event(&ev);
        if failed {
            return Some(Err(DriveError::NegotiationFailed));
        }
    }
    match (client.state(), client.config().negotiation()) {
        (State::Ready, _) | (State::Negotiating, Negotiation::Manual) => Some(Ok(())),
        (State::Closed, _) => Some(Err(DriveError::Eof)),
        _ => None,
    }
}

/// For a driver waiting for `token`: reports other events and says whether
/// the wait is over (`Some(Ok)`: its resolution is the next event).
pub(crate) fn resolved<S: ClientSession, E>(
    session: &mut S,
    token: Token,
    on_event: &mut impl FnMut(&ClientEvent<'_>),
) -> Option<Result<(), DriveError<E>>> {
    loop {
        match next_for(session, token, on_event) {
            Next::Mine => return Some(Ok(())),
            Next::Other => {}
            // Not known any more and not next: its resolution went by.
            Next::None => return (!session.knows(token)).then_some(Err(DriveError::Eof)),
        }
    }
}

#[cfg(feature = "qga")]
/// Whether a guest-agent sync that resolved (`returned`: with its id) left
/// `qga` synced.
pub(crate) fn synced<B: AsRef<[u8]> + AsMut<[u8]>, const N: usize, E>(
    returned: bool,
    qga: &crate::qga::QgaClient<B, N>,
) -> Result<(), DriveError<E>> {
    match (returned, qga.state()) {
        (true, crate::qga::QgaState::Synced) => Ok(()),
        _ => Err(DriveError::SyncFailed),
    }
}

/// Writes the request `write` makes into the pump's transmit buffer,
/// behind what is staged; the token of the request.
pub(crate) fn queue<S>(
    pump: &mut crate::pump::Pump<'_>,
    session: &mut S,
    write: impl FnOnce(&mut S, &mut [u8]) -> Result<(Token, usize), ExecuteError>,
) -> Result<Token, ExecuteError> {
    let (token, n) = write(session, pump.queue_buf())?;
    pump.queued(n);
    Ok(token)
}

/// What a driver makes of the next event while it waits for `token`.
pub(crate) enum Next {
    /// The next event is `token`'s resolution.
    Mine,
    /// Another event: report it and go on.
    Other,
    /// No event waits.
    None,
}

/// Looks at the next event for a driver waiting for `token`.
pub(crate) fn next_for<S: ClientSession>(
    session: &mut S,
    token: Token,
    on_event: &mut impl FnMut(&ClientEvent<'_>),
) -> Next {
    if session.next_event_resolves(token) {
        return Next::Mine;
    }
    match session.poll_event() {
        Some(ev) => {
            on_event(&ev);
            Next::Other
        }
        None => Next::None,
    }
}

/// The resolution of `token`, which [`next_for`] said is next.
pub(crate) fn take_outcome<S: ClientSession>(session: &mut S) -> Option<Outcome<'_>> {
    match session.poll_event() {
        Some(ClientEvent::Resolved { outcome, .. }) => Some(outcome),
        _ => None,
    }
}
