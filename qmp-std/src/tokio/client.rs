//! [`AsyncClient`], the QMP client on tokio, and [`EventStream`], a
//! subscription as a `Stream`.

use super::conn::{self, Conn, Io};
use crate::addr::Address;
use crate::buf::Buf;
use crate::client::{new_session, Call, Event, Greeting, Notice, PENDING};
use crate::config::Config;
use crate::error::Error;
use crate::machine::{self, Machine};
use crate::schema::LiveSchema;
use qmp_core::client::Client as Core;
use std::fmt;
use std::future::poll_fn;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

type Session = Core<Buf, PENDING>;

/// A QMP client on tokio: a cheap, `Clone + Send + Sync` handle to one
/// connection, whose driver task runs on the runtime it was connected on.
/// See the [module docs](super).
#[derive(Clone)]
pub struct AsyncClient {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Conn<Session>,
    greeting: Greeting,
    /// The schema calls are checked against ([`AsyncClient::check_with`]).
    schema: RwLock<Option<Arc<LiveSchema>>>,
}

impl fmt::Debug for AsyncClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.inner.conn.lock();
        f.debug_struct("AsyncClient")
            .field("greeting", &self.inner.greeting)
            .field("oob", &st.m.session.oob_enabled())
            .field("in_flight", &st.m.inbox.in_flight())
            .field("closed", &st.m.is_closed())
            .field("checks", &self.checked_against().is_some())
            .finish_non_exhaustive()
    }
}

impl AsyncClient {
    /// Connects to `address` (Unix or TCP) and negotiates, all within
    /// [`Config::connect_timeout`], with the blocking client's rules:
    /// retrying while the socket is missing or refuses
    /// ([`Config::retry_connect`]) and while a Unix socket's backlog is
    /// full (a monitor busy with another client: a blocking connect would
    /// wait for it in the kernel); the deadline covers the greeting too,
    /// which a QEMU monitor sends only once it takes the client.
    ///
    /// # Errors
    /// [`Error::Connect`], [`Error::HandshakeTimeout`],
    /// [`Error::HandshakeRefused`], [`Error::Protocol`], …
    pub async fn connect(address: &Address, cfg: Config) -> Result<Self, Error> {
        let deadline = Instant::now() + cfg.connect_timeout;
        let io = conn::connect(address, &cfg, deadline).await?;
        AsyncClient::handshake_until(io, cfg, deadline).await
    }

    /// [`AsyncClient::connect`] to a Unix socket.
    ///
    /// # Errors
    /// As [`AsyncClient::connect`].
    pub async fn connect_unix(path: impl AsRef<Path>, cfg: Config) -> Result<Self, Error> {
        AsyncClient::connect(&Address::unix(path.as_ref()), cfg).await
    }

    /// [`AsyncClient::connect`] to TCP `HOST:PORT`.
    ///
    /// # Errors
    /// As [`AsyncClient::connect`].
    pub async fn connect_tcp(host_port: &str, cfg: Config) -> Result<Self, Error> {
        AsyncClient::connect(&Address::Tcp(host_port.to_owned()), cfg).await
    }

    /// Runs the greeting and negotiation over an open Unix socket, within
    /// [`Config::connect_timeout`].
    ///
    /// # Errors
    /// [`Error::HandshakeTimeout`], [`Error::HandshakeRefused`],
    /// [`Error::Protocol`], [`Error::Disconnected`].
    pub async fn handshake_unix(
        stream: tokio::net::UnixStream,
        cfg: Config,
    ) -> Result<Self, Error> {
        let deadline = Instant::now() + cfg.connect_timeout;
        AsyncClient::handshake_until(Io::Unix(stream), cfg, deadline).await
    }

    /// Runs the greeting and negotiation over an open TCP socket (see
    /// [`AsyncClient::handshake_unix`]).
    ///
    /// # Errors
    /// As [`AsyncClient::handshake_unix`].
    pub async fn handshake_tcp(stream: tokio::net::TcpStream, cfg: Config) -> Result<Self, Error> {
        let deadline = Instant::now() + cfg.connect_timeout;
        AsyncClient::handshake_until(Io::Tcp(stream), cfg, deadline).await
    }

    async fn handshake_until(io: Io, cfg: Config, deadline: Instant) -> Result<Self, Error> {
        let allowed = cfg.connect_timeout;
        let mut m = Machine::new(new_session(&cfg), cfg);
        m.inbox.expect_greeting = true;
        let conn = Conn::spawn(io, m);
        let mut greeting = None;
        let done = tokio::time::timeout_at(
            deadline.into(),
            conn.waiting(|st| st.m.negotiation(&mut greeting)),
        )
        .await;
        match done {
            Ok(Ok(())) => Ok(AsyncClient {
                inner: Arc::new(Inner {
                    conn,
                    greeting: greeting.unwrap_or_default(),
                    schema: RwLock::new(None),
                }),
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(machine::handshake_timeout(&greeting, allowed)),
        }
    }

    /// The server greeting.
    pub fn greeting(&self) -> &Greeting {
        &self.inner.greeting
    }

    /// Whether `oob` was negotiated (`exec-oob` may be used).
    pub fn oob_enabled(&self) -> bool {
        self.inner.conn.lock().m.session.oob_enabled()
    }

    /// Calls waiting for their reply (from every clone of this handle).
    pub fn in_flight(&self) -> usize {
        self.inner.conn.lock().m.inbox.in_flight()
    }

    // -- commands ------------------------------------------------------

    client_calls!(async AsyncClient);

    /// Before a QMP command: the argument check, when a schema is set
    /// ([`AsyncClient::check_with`]).
    async fn prepare(&self, call: &Call<'_>) -> Result<(), Error> {
        match self.checked_against() {
            Some(schema) => schema.check_raw(call.name(), call.arguments()?),
            None => Ok(()),
        }
    }

    // -- the live schema -----------------------------------------------

    /// Fetches the server's schema (`query-qmp-schema`) and indexes it
    /// ([`LiveSchema`]). It does not turn checks on: see
    /// [`AsyncClient::check_with`].
    ///
    /// # Errors
    /// As [`AsyncClient::execute`]; [`Error::Protocol`] when the reply is
    /// not a schema.
    pub async fn load_schema(&self) -> Result<LiveSchema, Error> {
        LiveSchema::parse(self.execute_raw("query-qmp-schema", None).await?)
    }

    /// Checks every later call's arguments against `schema` before sending,
    /// on this handle and every clone of it (the connection's setting), as
    /// [`Client::check_with`](crate::client::Client::check_with) does: a
    /// call the server would refuse for its arguments, or an unknown
    /// command, fails with [`Error::Rejected`] (QEMU's class and text) and
    /// nothing is sent. `None` turns checks off.
    pub fn check_with(&self, schema: Option<Arc<LiveSchema>>) {
        *self
            .inner
            .schema
            .write()
            .unwrap_or_else(PoisonError::into_inner) = schema;
    }

    /// The schema calls are checked against, if any.
    pub fn checked_against(&self) -> Option<Arc<LiveSchema>> {
        self.inner
            .schema
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Sends `call` (waiting for room: at most eight in-band requests are
    /// in flight with OOB, as QEMU wants) and waits for its return value;
    /// dropping the future gives the call up.
    async fn run(&self, call: &Call<'_>) -> Result<Vec<u8>, Error> {
        self.inner.conn.run(call).await
    }

    fn machine(&self) -> std::sync::MutexGuard<'_, conn::State<Session>> {
        self.inner.conn.lock()
    }

    fn machine_mut(&self) -> std::sync::MutexGuard<'_, conn::State<Session>> {
        self.inner.conn.lock()
    }

    // -- events --------------------------------------------------------

    /// A stream of the events named in `names` (any event if empty), from
    /// now on: take it *before* sending the command that causes them, and
    /// none can slip past. It holds at most [`Config::event_queue`] events
    /// (at least one): past that the oldest is dropped and counted
    /// ([`EventStream::dropped`]).
    pub fn subscribe(&self, names: &[&str]) -> EventStream {
        let conn = &self.inner.conn;
        let sub = conn.lock().m.inbox.subscribe(names);
        EventStream {
            client: self.clone(),
            sub,
            waiter: conn.waiter_id(),
        }
    }

    /// The next event of the general queue (every event, at most
    /// [`Config::event_queue`] of them; 0 disables it), waiting up to
    /// `timeout` (`None`: forever). `Ok(None)`: nothing in time.
    ///
    /// # Errors
    /// [`Error::Disconnected`] once the peer closed and the queue is empty.
    pub async fn next_event(&self, timeout: Option<Duration>) -> Result<Option<Event>, Error> {
        let conn = &self.inner.conn;
        let waiter = conn.waiter();
        let next = poll_fn(|cx| conn.poll_event(cx, waiter.id, None, &mut |_| true));
        let got = match timeout {
            Some(t) => match tokio::time::timeout(t, next).await {
                Ok(got) => got?,
                Err(_) => return Ok(None),
            },
            None => next.await?,
        };
        match got {
            Some(e) => Ok(Some(e)),
            None => Err(Error::Disconnected { command: None }),
        }
    }

    /// Events dropped from the general queue because it was full.
    pub fn dropped_events(&self) -> u64 {
        self.inner.conn.lock().m.inbox.dropped_events(None)
    }

    /// Resolves once the connection is over (closed by the peer, broken,
    /// or the server went away), every reply and event before it filed.
    pub async fn closed(&self) {
        self.inner
            .conn
            .waiting(|st| st.m.is_finished().then_some(()))
            .await;
    }
}

/// A subscription of an [`AsyncClient`] ([`AsyncClient::subscribe`]) as a
/// [`futures_core::Stream`] of [`Event`]s, ending when the connection is
/// over and its queue is empty. Its queue is bounded
/// ([`Config::event_queue`]); [`EventStream::dropped`] counts what it
/// dropped. It keeps the connection open; dropping it unsubscribes.
pub struct EventStream {
    client: AsyncClient,
    sub: u64,
    waiter: u64,
}

impl fmt::Debug for EventStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStream")
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

impl EventStream {
    /// The next event; `None` once the connection is over and nothing is
    /// queued.
    pub async fn next_event(&mut self) -> Option<Event> {
        poll_fn(|cx| self.poll(cx, &mut |_| true)).await
    }

    /// The first event for which `pred` holds, waiting up to `timeout`
    /// (`None`: forever); only that event is taken from the queue, the
    /// others stay. `Ok(None)`: none in time.
    ///
    /// # Errors
    /// [`Error::Disconnected`] once the connection is over and no queued
    /// event matches.
    pub async fn wait_for(
        &mut self,
        mut pred: impl FnMut(&Event) -> bool,
        timeout: Option<Duration>,
    ) -> Result<Option<Event>, Error> {
        let next = poll_fn(|cx| self.poll(cx, &mut pred));
        let got = match timeout {
            Some(t) => match tokio::time::timeout(t, next).await {
                Ok(got) => got,
                Err(_) => return Ok(None),
            },
            None => next.await,
        };
        match got {
            Some(e) => Ok(Some(e)),
            None => Err(Error::Disconnected { command: None }),
        }
    }

    /// Events this stream dropped because its queue was full.
    pub fn dropped(&self) -> u64 {
        self.client
            .inner
            .conn
            .lock()
            .m
            .inbox
            .dropped_events(Some(self.sub))
    }

    /// The client this stream belongs to.
    pub fn client(&self) -> &AsyncClient {
        &self.client
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
        pred: &mut dyn FnMut(&Event) -> bool,
    ) -> Poll<Option<Event>> {
        self.client
            .inner
            .conn
            .poll_event(cx, self.waiter, Some(self.sub), pred)
            .map(|r| r.ok().flatten())
    }
}

impl futures_core::Stream for EventStream {
    type Item = Event;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.get_mut().poll(cx, &mut |_| true)
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        let conn = &self.client.inner.conn;
        conn.forget_waiter(self.waiter);
        conn.lock().m.inbox.unsubscribe(self.sub);
    }
}
