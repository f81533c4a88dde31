//! One client connection on tokio: the [`Machine`] (session, pump, inbox)
//! shared by the handles behind a mutex, and the driver task that owns the
//! socket (see the [parent module](super) for why a driver task).
//!
//! * The **driver** ([`Driver`]) runs the pump's turns: it files what the
//!   session reports and wakes whoever waits for it, writes what is staged
//!   (descriptors on the first bytes of a command that carries them), reads
//!   when the session takes input, and sleeps until the socket is ready, a
//!   handle wakes it, or the session's next deadline. It never awaits while
//!   it holds the lock: every step is a non-blocking `try_*` after a
//!   readiness poll.
//! * A **call** ([`Conn::send`], [`Conn::wait`]) locks the state, queues
//!   its command into the pump (waiting on [`Shared::room`] while the
//!   session has no room: QMP's eight in-band requests with OOB, or a
//!   command that must go out alone), wakes the driver, and waits for its
//!   result. Dropping the future gives the call up ([`Cancel`]): the
//!   session cancels it, its late reply is dropped by id, and nothing
//!   remains filed.
//! * When every handle is gone the driver closes the socket and ends; when
//!   the peer closes, every waiting call resolves `Disconnected` and every
//!   waiter is woken.

use crate::client::Call;
use crate::config::Config;
use crate::error::Error;
use crate::inbox::{Event, IdMap};
use crate::machine::{self, Filed, Machine, Refused, Session};
use qmp_core::client::Token;
use qmp_core::Instant as Clock;
use std::future::{poll_fn, Future};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::pin::{pin, Pin};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll, Waker};
use std::time::Duration;
use tokio::io::Interest;
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::Notify;
use tokio::time::Sleep;

/// A connected tokio socket.
#[derive(Debug)]
pub(crate) enum Io {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Io {
    /// Reads what the socket has into `buf` once it is readable.
    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        loop {
            let r = match self {
                Io::Unix(s) => {
                    ready!(s.poll_read_ready(cx))?;
                    s.try_read(buf)
                }
                Io::Tcp(s) => {
                    ready!(s.poll_read_ready(cx))?;
                    s.try_read(buf)
                }
            };
            match r {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                r => return Poll::Ready(r),
            }
        }
    }

    /// Writes from `buf` once the socket is writable, `fds` attached to
    /// the first byte (`SCM_RIGHTS`, through rustix's `sendmsg` on the
    /// socket tokio polls: [`crate::fd::send_with_fds`]).
    fn poll_write(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        fds: &[OwnedFd],
    ) -> Poll<io::Result<usize>> {
        loop {
            let r = match self {
                Io::Unix(s) => {
                    ready!(s.poll_write_ready(cx))?;
                    if fds.is_empty() {
                        s.try_write(buf)
                    } else {
                        let fds: Vec<BorrowedFd<'_>> = fds.iter().map(AsFd::as_fd).collect();
                        s.try_io(Interest::WRITABLE, || {
                            crate::fd::send_with_fds(s, buf, &fds)
                        })
                    }
                }
                Io::Tcp(s) => {
                    ready!(s.poll_write_ready(cx))?;
                    s.try_write(buf)
                }
            };
            match r {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                r => return Poll::Ready(r),
            }
        }
    }
}

/// Wakers by key (a call id, or a waiter's number).
#[derive(Default)]
struct Wakers(IdMap<Waker>);

impl Wakers {
    fn set(&mut self, key: u64, waker: &Waker) {
        match self.0.get_mut(&key) {
            Some(w) if w.will_wake(waker) => {}
            Some(w) => w.clone_from(waker),
            None => {
                self.0.insert(key, waker.clone());
            }
        }
    }

    fn remove(&mut self, key: u64) {
        self.0.remove(&key);
    }

    fn wake(&mut self, key: u64) {
        if let Some(w) = self.0.remove(&key) {
            w.wake();
        }
    }

    fn wake_all(&mut self) {
        for (_, w) in self.0.drain() {
            w.wake();
        }
    }
}

/// What the handles and the driver share under the lock.
pub(crate) struct State<S> {
    pub(crate) m: Machine<S>,
    /// Descriptors for the first staged byte: the command queued (while
    /// nothing was staged) that carries them.
    fds: Vec<OwnedFd>,
    /// Whether the socket passes descriptors.
    unix: bool,
    /// Calls waiting for their result, by id.
    calls: Wakers,
    /// Event and handshake waiters, by number.
    waiters: Wakers,
    next_waiter: u64,
    /// The driver, while it sleeps.
    driver: Option<Waker>,
    /// Every handle is gone: the driver closes the connection.
    detached: bool,
}

impl<S> std::ops::Deref for State<S> {
    type Target = Machine<S>;
    fn deref(&self) -> &Machine<S> {
        &self.m
    }
}

impl<S> std::ops::DerefMut for State<S> {
    fn deref_mut(&mut self) -> &mut Machine<S> {
        &mut self.m
    }
}

impl<S> State<S> {
    /// Wakes `cx` with the event and handshake waiters (as `waiter`).
    pub(crate) fn set_waiter(&mut self, waiter: u64, cx: &Context<'_>) {
        self.waiters.set(waiter, cx.waker());
    }

    /// Wakes the driver (after a change it must act on).
    pub(crate) fn wake_driver(&mut self) {
        if let Some(w) = self.driver.take() {
            w.wake();
        }
    }
}

/// The state and the room waiters. See the [module docs](self).
pub(crate) struct Shared<S> {
    state: Mutex<State<S>>,
    /// Calls waiting for room to queue their command: one is woken per
    /// request resolved or transmit buffer drained, all when the
    /// connection ends.
    room: Notify,
}

impl<S> Shared<S> {
    fn lock(&self) -> MutexGuard<'_, State<S>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The handles' side of a connection (one per client, shared by its
/// clones); dropping it detaches the driver, which closes the socket.
pub(crate) struct Conn<S> {
    shared: Arc<Shared<S>>,
}

impl<S> Drop for Conn<S> {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        st.detached = true;
        st.wake_driver();
    }
}

impl<S: Session + Send + 'static> Conn<S> {
    /// Starts the driver task of `m` over `io` (on the current tokio
    /// runtime).
    pub(crate) fn spawn(io: Io, m: Machine<S>) -> Conn<S> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                m,
                fds: Vec::new(),
                unix: matches!(io, Io::Unix(_)),
                calls: Wakers::default(),
                waiters: Wakers::default(),
                next_waiter: 1,
                driver: None,
                detached: false,
            }),
            room: Notify::new(),
        });
        tokio::spawn(Driver {
            shared: Arc::clone(&shared),
            io,
            sleep: Box::pin(tokio::time::sleep(Duration::ZERO)),
            armed: None,
        });
        Conn { shared }
    }
}

impl<S: Session> Conn<S> {
    /// The state, locked.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State<S>> {
        self.shared.lock()
    }

    /// A waiter's number, for [`Conn::poll_waiting`]; its waker is
    /// forgotten when the guard drops.
    pub(crate) fn waiter(&self) -> Waiter<'_, S> {
        Waiter {
            conn: self,
            id: self.waiter_id(),
        }
    }

    /// A waiter's number for a waiter that forgets it itself
    /// ([`Conn::forget_waiter`]).
    pub(crate) fn waiter_id(&self) -> u64 {
        let mut st = self.lock();
        let id = st.next_waiter;
        st.next_waiter += 1;
        id
    }

    /// Forgets a waiter's waker.
    pub(crate) fn forget_waiter(&self, id: u64) {
        self.lock().waiters.remove(id);
    }

    /// Queues `call` (waiting for room while the session has none, within
    /// the call's timeout) and wakes the driver; the returned guard gives
    /// the call up if dropped before [`Conn::wait`] is done.
    ///
    /// # Errors
    /// [`Error::Arguments`], [`Error::Unsupported`], [`Error::Timeout`] (no
    /// room in time), [`Error::Closed`], [`Error::Io`] (a descriptor could
    /// not be duplicated).
    pub(crate) async fn send(&self, call: &Call<'_>) -> Result<Cancel<'_, S>, Error> {
        let args = call.arguments()?;
        // The descriptors go to the driver, which writes them later: owned
        // duplicates (the peer receives duplicates anyway).
        let mut fds = call
            .fds
            .iter()
            .map(|fd| fd.try_clone_to_owned())
            .collect::<io::Result<Vec<_>>>()
            .map_err(Error::Io)?;
        let timeout = self.lock().m.timeout_of(call);
        let room_deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        loop {
            let mut room = pin!(self.shared.room.notified());
            room.as_mut().enable();
            {
                let mut st = self.lock();
                if st.m.is_closed() {
                    return Err(Error::Closed);
                }
                if !fds.is_empty() && !st.unix {
                    return Err(Error::Unsupported(
                        "file descriptor passing needs a Unix socket".into(),
                    ));
                }
                // Descriptors ride on the command's own first byte: it
                // must be the first staged.
                let alone =
                    fds.is_empty() || (st.m.pump.transmit().is_empty() && st.fds.is_empty());
                let queued = if alone {
                    st.m.queue(call, args, timeout)
                } else {
                    Err(Refused::Full)
                };
                match queued {
                    Ok(token) => {
                        st.m.register(token, call, timeout);
                        if !fds.is_empty() {
                            st.fds = std::mem::take(&mut fds);
                        }
                        st.wake_driver();
                        return Ok(Cancel {
                            conn: self,
                            token,
                            done: false,
                        });
                    }
                    Err(Refused::Full) => st.wake_driver(),
                    Err(Refused::Session(e)) if machine::no_room(&e) => {}
                    Err(Refused::Session(e)) => return Err(machine::refusal(e, call.name)),
                }
            }
            match room_deadline {
                Some(at) => {
                    if tokio::time::timeout_at(at, room).await.is_err() {
                        return Err(Error::Timeout {
                            command: call.name.to_owned(),
                            after: timeout.unwrap_or_default(),
                        });
                    }
                }
                None => room.await,
            }
        }
    }

    /// The result of a call from [`Conn::send`]: the `return` value as
    /// JSON text, as received.
    ///
    /// # Errors
    /// [`Error::Qmp`] for an error reply; see [`Error`].
    pub(crate) async fn wait(&self, mut call: Cancel<'_, S>) -> Result<Vec<u8>, Error> {
        let id = call.token.id();
        poll_fn(|cx| {
            let mut st = self.lock();
            match st.m.result(id) {
                Some(r) => {
                    call.done = true;
                    Poll::Ready(r)
                }
                None => {
                    st.calls.set(id, cx.waker());
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// [`Conn::send`], then [`Conn::wait`].
    ///
    /// # Errors
    /// As both.
    pub(crate) async fn run(&self, call: &Call<'_>) -> Result<Vec<u8>, Error> {
        let pending = self.send(call).await?;
        self.wait(pending).await
    }

    /// Polls `ready` under the lock until it gives a value, `waiter` woken
    /// by every event, handshake message or end of the connection.
    pub(crate) fn poll_waiting<R>(
        &self,
        cx: &mut Context<'_>,
        waiter: u64,
        mut ready: impl FnMut(&mut State<S>) -> Option<R>,
    ) -> Poll<R> {
        let mut st = self.lock();
        match ready(&mut st) {
            Some(r) => Poll::Ready(r),
            None => {
                st.waiters.set(waiter, cx.waker());
                Poll::Pending
            }
        }
    }

    /// Waits until `ready` gives a value (see [`Conn::poll_waiting`]).
    pub(crate) async fn waiting<R>(&self, mut ready: impl FnMut(&mut State<S>) -> Option<R>) -> R {
        let waiter = self.waiter();
        poll_fn(|cx| self.poll_waiting(cx, waiter.id, &mut ready)).await
    }

    /// Also wakes `cx` when call `id` resolves (for a waiter that waits
    /// for both, as a guest-agent sync does).
    pub(crate) fn wake_on_call(st: &mut State<S>, id: u64, cx: &Context<'_>) {
        st.calls.set(id, cx.waker());
    }

    /// The first event of the general queue (`sub` `None`) or a
    /// subscription for which `pred` holds; `Ok(None)` once the connection
    /// is over and nothing is queued.
    ///
    /// # Errors
    /// [`Error::Unsupported`] for an unknown subscription.
    pub(crate) fn poll_event(
        &self,
        cx: &mut Context<'_>,
        waiter: u64,
        sub: Option<u64>,
        pred: &mut dyn FnMut(&Event) -> bool,
    ) -> Poll<Result<Option<Event>, Error>> {
        self.poll_waiting(cx, waiter, |st| match st.m.inbox.take_event(sub, pred) {
            Ok(Some(e)) => Some(Ok(Some(e))),
            Ok(None) if st.m.is_finished() => Some(Ok(None)),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        })
    }
}

/// A waiter's number; its waker is forgotten on drop.
pub(crate) struct Waiter<'c, S> {
    conn: &'c Conn<S>,
    pub(crate) id: u64,
}

impl<S> Drop for Waiter<'_, S> {
    fn drop(&mut self) {
        self.conn.shared.lock().waiters.remove(self.id);
    }
}

/// A queued call; dropped before its result was taken (its future was
/// dropped: cancelled, or timed out by the caller), it gives the call up:
/// the session cancels it (its late reply is dropped by id) and its result
/// is not filed.
pub(crate) struct Cancel<'c, S: Session> {
    conn: &'c Conn<S>,
    token: Token,
    done: bool,
}

impl<S: Session> Drop for Cancel<'_, S> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut st = self.conn.shared.lock();
        st.calls.remove(self.token.id());
        st.m.cancel(self.token);
        // The session reports the cancel: the driver files it.
        st.wake_driver();
    }
}

/// The driver task. See the [module docs](self).
struct Driver<S> {
    shared: Arc<Shared<S>>,
    io: Io,
    sleep: Pin<Box<Sleep>>,
    /// The deadline `sleep` is set for.
    armed: Option<Clock>,
}

impl<S: Session> Future for Driver<S> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let turn = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| this.turn(cx)));
        turn.unwrap_or_else(|_| {
            // A panic on the driver (a notice hook's): the connection ends
            // as if broken, so that every call still resolves.
            let shared = Arc::clone(&this.shared);
            let mut st = shared.lock();
            st.m.inbox.drop_notice_hook();
            st.m.break_off();
            loop {
                let wants = st.m.step();
                if !wants.app {
                    break;
                }
                file(&mut st, &shared.room);
            }
            st.calls.wake_all();
            st.waiters.wake_all();
            shared.room.notify_waiters();
            Poll::Ready(())
        })
    }
}

impl<S: Session> Driver<S> {
    /// The driver's turns until it must wait (or the connection is over).
    fn turn(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let this = self;
        let shared = Arc::clone(&this.shared);
        let mut st = shared.lock();
        loop {
            if st.detached {
                // Every handle is gone: nobody takes a result any more.
                return Poll::Ready(());
            }
            let wants = st.m.step();
            if wants.app {
                file(&mut st, &shared.room);
                continue;
            }
            if st.m.is_closed() {
                st.calls.wake_all();
                st.waiters.wake_all();
                shared.room.notify_waiters();
                return Poll::Ready(());
            }
            let mut progress = false;
            if wants.transmit {
                let State { m, fds, .. } = &mut *st;
                match this.io.poll_write(cx, m.pump.transmit(), fds) {
                    Poll::Ready(Ok(n)) => {
                        if n > 0 {
                            fds.clear();
                        }
                        m.pump.sent(n);
                        if m.pump.transmit().is_empty() {
                            shared.room.notify_one();
                        }
                        progress = true;
                    }
                    Poll::Ready(Err(_)) => {
                        m.break_off();
                        continue;
                    }
                    Poll::Pending => {}
                }
            }
            if wants.read {
                match this.io.poll_read(cx, st.m.pump.read_buf()) {
                    Poll::Ready(Ok(n)) => {
                        st.m.pump.received(n);
                        progress = true;
                    }
                    Poll::Ready(Err(e)) => {
                        match e.kind() {
                            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => {
                                st.m.pump.received(0);
                            }
                            _ => st.m.break_off(),
                        }
                        continue;
                    }
                    Poll::Pending => {}
                }
            }
            if progress {
                continue;
            }
            if let Some(at) = wants.timeout {
                // Re-armed only for an earlier deadline: one that is
                // later (the earliest request resolved) is taken up when
                // the armed one fires, early, which is cheaper than a timer
                // update per reply.
                if this.armed.is_none_or(|armed| at < armed) {
                    let when = tokio::time::Instant::from_std(st.m.instant(at));
                    this.sleep.as_mut().reset(when);
                    this.armed = Some(at);
                }
                if this.sleep.as_mut().poll(cx).is_ready() {
                    this.armed = None;
                    continue;
                }
            }
            st.driver = Some(cx.waker().clone());
            return Poll::Pending;
        }
    }
}

/// Files what the session reports, waking whoever waits for it.
fn file<S: Session>(st: &mut State<S>, room: &Notify) {
    let State {
        m, calls, waiters, ..
    } = st;
    m.file_events(|f| match f {
        Filed::Resolved(id) => {
            calls.wake(id);
            room.notify_one();
        }
        Filed::Event | Filed::Setup => waiters.wake_all(),
        Filed::Notice => room.notify_one(),
    });
}

/// Connects to `address` by `deadline` with the blocking client's rules
/// ([`crate::transport`]): retrying while the socket is missing or refuses
/// ([`Config::retry_connect`]) and while a Unix socket's backlog is full —
/// a non-blocking connect that fails at once where a blocking one (and
/// tokio's own `UnixStream::connect`, which hands back the `EAGAIN`) would
/// wait for the server.
pub(crate) async fn connect(
    address: &crate::Address,
    cfg: &Config,
    deadline: std::time::Instant,
) -> Result<Io, Error> {
    use crate::transport::{backoff, connect_error, connect_unix_nonblocking, should_retry};
    let deadline = tokio::time::Instant::from_std(deadline);
    let mut pause = None;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let attempt = match address {
            crate::Address::Unix(path) => {
                connect_unix_nonblocking(path).and_then(|s| UnixStream::from_std(s).map(Io::Unix))
            }
            crate::Address::Tcp(host_port) => {
                match tokio::time::timeout_at(deadline, tcp(host_port)).await {
                    Ok(r) => r.map(Io::Tcp),
                    Err(_) => Err(io::ErrorKind::TimedOut.into()),
                }
            }
        };
        match attempt {
            Ok(io) => return Ok(io),
            Err(e) if should_retry(&e, cfg) && !left.is_zero() => {
                let b = backoff(pause);
                pause = Some(b);
                tokio::time::sleep(b.min(left)).await;
            }
            Err(e) => return Err(connect_error(address, cfg, e)),
        }
    }
}

/// A TCP connection to `HOST:PORT` (resolved by tokio, off the runtime's
/// threads), without Nagle's delay.
async fn tcp(host_port: &str) -> io::Result<TcpStream> {
    let addr = tokio::net::lookup_host(host_port)
        .await?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "address resolved to nothing"))?;
    let s = TcpStream::connect(addr).await?;
    let _ = s.set_nodelay(true);
    Ok(s)
}
