//! [`AsyncServer`], the agent runner on tokio: a listener and every session
//! on one runtime, a task per session, with the blocking runner's session
//! rules, bounds and books (see [`crate::agent`]).

use crate::addr::Address;
use crate::agent::{
    accept_failed, flushed, report, write_with, Books, Ctx, EventSender, Handled, Handler,
    Listener, Mailbox, Next, Outcome, Request, Response, ServerConfig, ServerStats, SessionBufs,
    SessionIo, Shared, Specs, StopHandle, Wake, Waker, FLUSH_TIMEOUT,
};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::Interest;
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::Notify;
use tokio::task::JoinSet;

/// A response that comes later: what an [`AsyncHandler`] awaits.
pub type LaterResponse = Pin<Box<dyn Future<Output = Response> + Send + 'static>>;

/// What an [`AsyncHandler`] answers a request with.
#[non_exhaustive]
pub enum Answer {
    /// An [`Outcome`] now: a reply, or [`Outcome::Deferred`] after
    /// [`Ctx::defer`] (its [`Completer`](crate::agent::Completer) answers
    /// from any thread or task).
    Now(Outcome),
    /// A future of the response, run as a task of its own: the session
    /// goes on meanwhile (it reads and answers `exec-oob` requests; the
    /// next in-band request waits, as in QEMU). Events it emits go out
    /// before its reply.
    Later(LaterResponse),
}

impl Answer {
    /// [`Answer::Later`] of `future`.
    pub fn later(future: impl Future<Output = Response> + Send + 'static) -> Self {
        Answer::Later(Box::pin(future))
    }
}

impl From<Outcome> for Answer {
    fn from(o: Outcome) -> Self {
        Answer::Now(o)
    }
}

impl From<Response> for Answer {
    fn from(r: Response) -> Self {
        Answer::Now(Outcome::Reply(r))
    }
}

impl fmt::Debug for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Answer::Now(o) => f.debug_tuple("Now").field(o).finish(),
            Answer::Later(_) => f.write_str("Later(..)"),
        }
    }
}

/// Serves the commands of an [`AsyncServer`].
///
/// [`AsyncHandler::handle`] is called on the session's task with the
/// request as the session holds it (borrowed from its buffers: nothing is
/// copied for a command answered at once) and answers now, or with a
/// future ([`Answer::later`]) that owns what it needs of the request —
/// the session reads on while it runs, so the request's bytes do not stay.
pub trait AsyncHandler: Send + Sync + 'static {
    /// Handles one request. Events emitted (through [`Ctx::events`])
    /// before it returns, or before its future completes, go out before
    /// this request's reply.
    fn handle(&self, ctx: &mut Ctx<'_>, req: &Request<'_>) -> Answer;
}

impl<F> AsyncHandler for F
where
    F: Fn(&mut Ctx<'_>, &Request<'_>) -> Answer + Send + Sync + 'static,
{
    fn handle(&self, ctx: &mut Ctx<'_>, req: &Request<'_>) -> Answer {
        self(ctx, req)
    }
}

/// A blocking [`Handler`] served by the tokio runner: called on the
/// session's task (so it must not block for long); [`Ctx::defer`] works
/// as on the blocking runner.
#[derive(Debug, Clone)]
pub struct Blocking<H>(pub H);

impl<H: Handler + 'static> AsyncHandler for Blocking<H> {
    fn handle(&self, ctx: &mut Ctx<'_>, req: &Request<'_>) -> Answer {
        Answer::Now(crate::agent::handle(&self.0, ctx, req))
    }
}

/// The agent runner on tokio: accepts on a Unix or TCP listener and serves
/// every session as a task of the runtime it runs on, with the blocking
/// [`Server`](crate::agent::Server)'s session rules and bounds — QEMU's
/// greeting, negotiation, in-order in-band replies, OOB and backpressure
/// from qmp-core's agent; [`ServerConfig::max_sessions`] with the same
/// refusal line; [`ServerConfig::event_backlog`] with the same counted
/// close; writes that never block; [`ServerStats`] — and the same
/// [`EventSender`] and [`StopHandle`]. A session holds no thread: an idle
/// one costs its task and the pages of its buffers it has touched.
pub struct AsyncServer<H> {
    listener: Listener,
    cfg: Arc<ServerConfig>,
    handler: Arc<H>,
    shared: Arc<Shared>,
    /// Wakes the accept loop for a stop.
    stop: Arc<Notify>,
}

impl<H> fmt::Debug for AsyncServer<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncServer")
            .field("addr", &self.listener.local_addr())
            .finish_non_exhaustive()
    }
}

impl<H: AsyncHandler> AsyncServer<H> {
    /// Binds the listener (a stale Unix socket file is replaced); serve
    /// with [`AsyncServer::run`].
    ///
    /// # Errors
    /// Binding failed.
    pub fn bind(addr: &Address, cfg: ServerConfig, handler: H) -> io::Result<Self> {
        let stop = Arc::new(Notify::new());
        Ok(AsyncServer {
            listener: Listener::bind(addr)?,
            cfg: Arc::new(cfg),
            handler: Arc::new(handler),
            shared: Arc::new(Shared::new(Wake::Task(Arc::clone(&stop)))),
            stop,
        })
    }

    server_accessors!();

    /// Accepts and serves connections until stopped (on the current tokio
    /// runtime). After a stop it waits up to two seconds for open sessions
    /// to flush and close, and removes its Unix socket file.
    ///
    /// # Errors
    /// A fatal `accept` error.
    pub async fn run(self) -> io::Result<()> {
        let mut sessions = JoinSet::new();
        let result = self.accept_loop(&mut sessions).await;
        self.shared.stop();
        let all_closed = async { while sessions.join_next().await.is_some() {} };
        let _ = tokio::time::timeout(FLUSH_TIMEOUT, all_closed).await;
        sessions.abort_all();
        self.listener.remove_socket_file();
        result
    }

    async fn accept_loop(&self, sessions: &mut JoinSet<()>) -> io::Result<()> {
        let listener = match &self.listener {
            Listener::Unix(l, _) => {
                let l = l.try_clone()?;
                l.set_nonblocking(true)?;
                Accept::Unix(UnixListener::from_std(l)?)
            }
            Listener::Tcp(l) => {
                let l = l.try_clone()?;
                l.set_nonblocking(true)?;
                Accept::Tcp(TcpListener::from_std(l)?)
            }
        };
        loop {
            if self
                .shared
                .stopping
                .load(std::sync::atomic::Ordering::SeqCst)
            {
                return Ok(());
            }
            let accepted = tokio::select! {
                _ = self.stop.notified() => continue,
                // Finished sessions are reaped as they end.
                Some(_) = sessions.join_next(), if !sessions.is_empty() => continue,
                accepted = listener.accept() => accepted,
            };
            let stream = match accepted {
                Ok(s) => s,
                Err(e) => {
                    if let Some(pause) = accept_failed(e)? {
                        tokio::time::sleep(pause).await;
                    }
                    continue;
                }
            };
            if !self.shared.admit(&self.cfg, &stream) {
                continue;
            }
            let (id, tx, rx) = self.shared.open(&self.cfg, Waker::Task(Notify::new()));
            self.shared.admitted();
            let (cfg, handler, shared) = (
                Arc::clone(&self.cfg),
                Arc::clone(&self.handler),
                Arc::clone(&self.shared),
            );
            sessions.spawn(async move {
                let events = EventSender::of(&shared);
                let mut mb = Mailbox {
                    id,
                    cfg: &cfg,
                    events: &events,
                    tx,
                    rx,
                };
                if let Err(e) = serve(&mut mb, &*handler, &stream).await {
                    report(id, &e);
                }
                stream.shutdown();
                shared.close(id);
            });
        }
    }
}

/// The tokio listener.
enum Accept {
    Unix(UnixListener),
    Tcp(TcpListener),
}

impl Accept {
    async fn accept(&self) -> io::Result<Conn> {
        match self {
            Accept::Unix(l) => l.accept().await.map(|(s, _)| Conn::Unix(s)),
            Accept::Tcp(l) => l.accept().await.map(|(s, _)| {
                let _ = s.set_nodelay(true);
                Conn::Tcp(s)
            }),
        }
    }
}

/// An accepted tokio socket.
enum Conn {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl std::os::fd::AsFd for Conn {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match self {
            Conn::Unix(s) => s.as_fd(),
            Conn::Tcp(s) => s.as_fd(),
        }
    }
}

impl Conn {
    /// Waits until the socket is readable (`read`) or writable (`write`).
    async fn ready(&self, read: bool, write: bool) -> io::Result<()> {
        let interest = match (read, write) {
            (true, true) => Interest::READABLE | Interest::WRITABLE,
            (true, false) => Interest::READABLE,
            (false, true) => Interest::WRITABLE,
            (false, false) => return std::future::pending().await,
        };
        match self {
            Conn::Unix(s) => s.ready(interest).await.map(drop),
            Conn::Tcp(s) => s.ready(interest).await.map(drop),
        }
    }

    /// Shuts both directions down (the peer reads end of stream after what
    /// was written).
    fn shutdown(&self) {
        let _ = rustix::net::shutdown(self, rustix::net::Shutdown::Both);
    }
}

/// A session task's side of the pump's turns: the handler, the socket
/// (tokio's `try_read`/`try_write`, which keep its readiness right), and
/// the responses to come.
struct Task<'a, H> {
    handler: &'a H,
    stream: &'a Conn,
    /// Handler futures, each a task of its own, with the request each
    /// answers.
    later: JoinSet<Response>,
    requests: HashMap<tokio::task::Id, u32>,
    /// A response that came while the session waited.
    came: Option<(u32, Response)>,
}

impl<H> Task<'_, H> {
    /// What a finished handler task gives: its request and response (a
    /// panic answered as an error).
    fn finished(
        &mut self,
        done: Result<(tokio::task::Id, Response), tokio::task::JoinError>,
    ) -> Option<(u32, Response)> {
        let (task, response) = match done {
            Ok(done) => done,
            Err(e) => (
                e.id(),
                Response::generic_error("internal error: command handler panicked"),
            ),
        };
        Some((self.requests.remove(&task)?, response))
    }
}

impl<H: AsyncHandler> SessionIo for Task<'_, H> {
    type Later = LaterResponse;

    fn dispatch(&mut self, ctx: &mut Ctx<'_>, req: &Request<'_>) -> Handled<LaterResponse> {
        let handler = self.handler;
        let answer =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler.handle(ctx, req)))
                .unwrap_or_else(|_| {
                    Outcome::generic_error("internal error: command handler panicked").into()
                });
        match answer {
            Answer::Now(o) => Handled::Now(o),
            Answer::Later(f) => Handled::Later(f),
        }
    }

    fn later(&mut self, request: u32, later: LaterResponse) {
        let task = self.later.spawn(later);
        self.requests.insert(task.id(), request);
    }

    fn done(&mut self) -> Option<(u32, Response)> {
        if let Some(came) = self.came.take() {
            return Some(came);
        }
        while let Some(done) = self.later.try_join_next_with_id() {
            if let Some(d) = self.finished(done) {
                return Some(d);
            }
        }
        None
    }

    fn send(&mut self, bytes: &[u8]) -> io::Result<usize> {
        match self.stream {
            Conn::Unix(s) => s.try_write(bytes),
            Conn::Tcp(s) => s.try_write(bytes),
        }
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.stream {
            Conn::Unix(s) => s.try_read(buf),
            Conn::Tcp(s) => s.try_read(buf),
        }
    }
}

/// One session: its agent and books over lazily backed buffers, the
/// pump's turns ([`Mailbox::turn`]), and awaiting between them the socket,
/// the mailbox, a handler's future or the agent's next deadline.
async fn serve<H: AsyncHandler>(
    mb: &mut Mailbox<'_>,
    handler: &H,
    stream: &Conn,
) -> io::Result<()> {
    let specs = Specs::new(mb.cfg);
    let mut bufs = SessionBufs::new(mb.cfg);
    let (mut agent, mut pump) = bufs.session(&specs)?;
    let mut books = Books::new(&mb.tx.backlog);
    let waker = Arc::clone(&mb.tx.waker);
    let Waker::Task(mail) = &*waker else {
        return Err(io::Error::other("a session task needs a task's waker"));
    };
    let mut io = Task {
        handler,
        stream,
        later: JoinSet::new(),
        requests: HashMap::new(),
        came: None,
    };
    let result = loop {
        let (read, write, timeout_ms) = match mb.turn(&mut agent, &mut pump, &mut books, &mut io) {
            Err(e) => break Err(e),
            Ok(Next::Done) => break Ok(()),
            Ok(Next::Flush) => {
                let until = tokio::time::Instant::now() + FLUSH_TIMEOUT;
                let flush = async {
                    while !flushed(&mut agent, &mut pump, &mut books) {
                        if !write_with(&mut pump, |b| io.send(b))? {
                            stream.ready(false, true).await?;
                        }
                    }
                    Ok(())
                };
                break tokio::time::timeout_at(until, flush)
                    .await
                    .unwrap_or(Ok(()));
            }
            Ok(Next::Wait {
                read,
                write,
                timeout_ms,
            }) => (read, write, timeout_ms),
        };
        let sleep = async {
            match timeout_ms {
                Some(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                None => std::future::pending().await,
            }
        };
        let mut came = None;
        tokio::select! {
            r = stream.ready(read, write) => {
                if let Err(e) = r {
                    break Err(e);
                }
            }
            _ = mail.notified() => {}
            Some(done) = io.later.join_next_with_id(), if !io.later.is_empty() => came = Some(done),
            _ = sleep => {}
        }
        if let Some(done) = came {
            io.came = io.finished(done);
        }
    };
    mb.finish(&books);
    // Handler futures still running are aborted with `io.later`.
    result
}
