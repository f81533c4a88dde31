//! The I/O-free half of a client connection, which the blocking driver
//! ([`crate::link`]) and the tokio driver (`crate::tokio`) both run: the
//! client session (qmp-core's QMP or guest-agent client), qmp-core's
//! [`Pump`] in front of it, the [`Inbox`] its reports are filed in, the
//! settings and the session's clock. A driver adds only the transport:
//! it calls [`Machine::step`], writes [`Pump::transmit`], reads into
//! [`Pump::read_buf`], and waits — by blocking, or by awaiting readiness.
//!
//! Commands are queued here too ([`Machine::queue`]): the request is
//! written into the pump's transmit buffer behind what is staged (grown
//! for a command larger than it while nothing is staged) and registered
//! with the inbox ([`Machine::register`]); a driver writes it with the
//! next staged bytes.

use crate::buf::Buf;
use crate::client::{Call, Greeting};
use crate::config::Config;
use crate::error::{Error, Handshake};
use crate::inbox::{own, Happened, Inbox, Setup};
use qmp_core::client::{ExecuteError, ExecuteOptions, Token};
use qmp_core::drive::ClientSession;
use qmp_core::json::{JsonKind, RawJson};
use qmp_core::pump::{Pump, Wants};
use qmp_core::scan::{validate, FramerConfig};
use qmp_core::{Instant as Clock, InsufficientSize};
use serde::de::DeserializeOwned;
use std::time::{Duration, Instant};

/// Bytes read from the transport at a time (a lazily backed buffer: an
/// idle session's reads touch its first page only).
pub(crate) const READ_CHUNK: usize = 64 << 10;
/// The transmit buffer to start with (grown for larger commands).
const TX_START: usize = 512;

/// The client sessions a [`Machine`] runs: qmp-core's QMP client and
/// guest-agent client, with what the std drivers need beyond qmp-core's
/// [`ClientSession`].
pub(crate) trait Session: ClientSession {
    /// Gives up on a pending request (see qmp-core's `Client::cancel`).
    fn cancel(&mut self, token: Token) -> bool;
}

impl<const N: usize> Session for qmp_core::client::Client<Buf, N> {
    fn cancel(&mut self, token: Token) -> bool {
        qmp_core::client::Client::cancel(self, token)
    }
}

impl<const N: usize> Session for qmp_core::qga::QgaClient<Buf, N> {
    fn cancel(&mut self, token: Token) -> bool {
        qmp_core::qga::QgaClient::cancel(self, token)
    }
}

/// Why [`Machine::queue`] did not queue a command.
pub(crate) enum Refused {
    /// The session refused it (nothing registered).
    Session(ExecuteError),
    /// The transmit buffer holds staged bytes and has no room for it:
    /// write them first, then queue again.
    Full,
}

/// What [`Machine::file_events`] filed, for a driver that wakes whoever
/// waits for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Filed {
    /// The call with this id resolved.
    Resolved(u64),
    /// An event was queued.
    Event,
    /// Something that opens the session (greeting, negotiation, what a
    /// guest-agent sync skipped).
    Setup,
    /// A notice (a late reply among them: room for a new request).
    Notice,
}

/// One client connection without its transport. See the
/// [module docs](self).
pub(crate) struct Machine<S> {
    pub(crate) session: S,
    pub(crate) inbox: Inbox,
    pub(crate) cfg: Config,
    pub(crate) pump: Pump<'static, Buf>,
    epoch: Instant,
    /// The transport failed.
    broken: bool,
    /// The pump delivered end of stream: the session is over.
    ended: bool,
}

impl<S: Session> Machine<S> {
    pub(crate) fn new(session: S, cfg: Config) -> Self {
        Machine {
            session,
            inbox: Inbox::new(&cfg),
            cfg,
            pump: Pump::with_buffers(Buf::zeroed(READ_CHUNK), Buf::zeroed(TX_START)),
            epoch: Instant::now(),
            broken: false,
            ended: false,
        }
    }

    /// The session's clock: milliseconds since the machine was made.
    pub(crate) fn now(&self) -> Clock {
        self.clock(Instant::now())
    }

    /// `at` on the session's clock.
    pub(crate) fn clock(&self, at: Instant) -> Clock {
        let ms = at.saturating_duration_since(self.epoch).as_millis();
        Clock::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
    }

    /// A time on the session's clock as an [`Instant`].
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn instant(&self, at: Clock) -> Instant {
        self.epoch + Duration::from_millis(at.as_millis())
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

    /// The transport failed: the session ends (its waiting calls resolve
    /// `Disconnected` at the next step).
    pub(crate) fn break_off(&mut self) {
        self.broken = true;
        self.pump.abort();
    }

    /// One step of the pump (see [`Pump::step`]).
    pub(crate) fn step(&mut self) -> Wants {
        let now = self.now();
        let wants = self.pump.step(&mut self.session, now);
        self.ended |= wants.closed;
        wants
    }

    /// Files the events the session has, telling `filed` what each was.
    pub(crate) fn file_events(&mut self, mut filed: impl FnMut(Filed)) {
        while let Some(h) = self.session.poll_event().map(own) {
            let what = match &h {
                Happened::Resolved(id, _) => Filed::Resolved(*id),
                Happened::Event(_) => Filed::Event,
                Happened::Setup(_) => Filed::Setup,
                Happened::Notice(_) => Filed::Notice,
            };
            self.inbox.file(h);
            filed(what);
        }
    }

    /// The timeout of `call`: its own, or the configured default.
    pub(crate) fn timeout_of(&self, call: &Call<'_>) -> Option<Duration> {
        call.timeout.unwrap_or(self.cfg.timeout)
    }

    /// Writes `call` into the pump's transmit buffer, behind what is staged
    /// (the automatic `qmp_capabilities` goes first if still queued), with
    /// the deadline `timeout`; not yet registered with the inbox (see
    /// [`Machine::register`]).
    pub(crate) fn queue(
        &mut self,
        call: &Call<'_>,
        args: Option<RawJson<'_>>,
        timeout: Option<Duration>,
    ) -> Result<Token, Refused> {
        let mut opts = ExecuteOptions::new().oob(call.oob);
        if let Some(t) = timeout {
            opts = opts.timeout_ms(u64::try_from(t.as_millis()).unwrap_or(u64::MAX));
        }
        let now = self.now();
        loop {
            let out = self.pump.queue_buf();
            match self.session.execute_raw(now, call.name, args, opts, out) {
                Ok((token, n)) => {
                    self.pump.queued(n);
                    return Ok(token);
                }
                Err(ExecuteError::InsufficientSize(size)) => match self.pump.transmit_storage() {
                    Some(tx) if tx.len() < size.required => tx.resize(size.required),
                    // Nothing staged, and still no room: cannot happen (the
                    // size required is what the buffer needs).
                    Some(_) => {
                        return Err(Refused::Session(ExecuteError::InsufficientSize(
                            InsufficientSize {
                                required: size.required,
                            },
                        )))
                    }
                    None => return Err(Refused::Full),
                },
                Err(e) => return Err(Refused::Session(e)),
            }
        }
    }

    /// A call was queued: its result will be filed under its token.
    pub(crate) fn register(&mut self, token: Token, call: &Call<'_>, timeout: Option<Duration>) {
        self.inbox.register(token.id(), call.name, timeout);
    }

    /// Gives up on call `id` (its `token`): the session cancels it (its
    /// late reply is dropped by id) and its result is not filed.
    pub(crate) fn cancel(&mut self, token: Token) {
        self.session.cancel(token);
        self.inbox.forget(token.id());
    }

    /// The result of call `id` once filed; [`Error::Closed`] for a call
    /// nobody waits for.
    pub(crate) fn result(&mut self, id: u64) -> Option<Result<Vec<u8>, Error>> {
        match self.inbox.take(id) {
            Some(r) => Some(r),
            None if !self.inbox.is_waiting(id) => Some(Err(Error::Closed)),
            None => None,
        }
    }

    /// QMP: takes what the greeting and the negotiation brought; `Some`
    /// once the handshake is over (negotiated, or failed).
    pub(crate) fn negotiation(
        &mut self,
        greeting: &mut Option<Greeting>,
    ) -> Option<Result<(), Error>> {
        while let Some(s) = self.inbox.setup.pop_front() {
            match s {
                Setup::Greeting(g) => *greeting = Some(g),
                Setup::Negotiated => {
                    self.inbox.set_up = true;
                    return Some(Ok(()));
                }
                Setup::NegotiationFailed(error) => {
                    return Some(Err(Error::HandshakeRefused {
                        step: Handshake::Capabilities,
                        error,
                    }))
                }
                Setup::Stray(n) => {
                    return Some(Err(Error::Protocol(format!(
                        "expected the QMP greeting, got {}",
                        n.what()
                    ))))
                }
                Setup::Skipped(_) => {}
            }
        }
        if self.is_finished() {
            return Some(Err(match greeting {
                None => Error::Protocol("connection closed before the QMP greeting".into()),
                Some(_) => Error::Disconnected {
                    command: Some("qmp_capabilities".into()),
                },
            }));
        }
        None
    }
}

/// Why the QMP handshake did not finish in `allowed`.
pub(crate) fn handshake_timeout(greeting: &Option<Greeting>, allowed: Duration) -> Error {
    Error::HandshakeTimeout {
        step: match greeting {
            None => Handshake::Greeting,
            Some(_) => Handshake::Capabilities,
        },
        after: allowed,
    }
}

/// What a refusal of the session means for the call `name` (other than
/// having no room yet: [`ExecuteError::TooManyInBand`],
/// [`ExecuteError::TooManyInFlight`]).
pub(crate) fn refusal(e: ExecuteError, name: &str) -> Error {
    match e {
        ExecuteError::Closed => Error::Closed,
        ExecuteError::OobNotNegotiated => Error::Unsupported(format!(
            "cannot send '{name}' with exec-oob: oob is not negotiated"
        )),
        e => Error::Unsupported(format!("cannot send '{name}': {e}")),
    }
}

/// Whether the session refused a command only for want of room (a reply
/// will make some).
pub(crate) fn no_room(e: &ExecuteError) -> bool {
    matches!(
        e,
        ExecuteError::TooManyInBand | ExecuteError::TooManyInFlight
    )
}

/// The return value of `command`, deserialized.
pub(crate) fn decode<R: DeserializeOwned>(command: String, bytes: &[u8]) -> Result<R, Error> {
    serde_json::from_slice(bytes).map_err(|source| Error::Decode { command, source })
}

/// The return value as text.
pub(crate) fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
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
