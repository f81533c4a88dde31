//! [`AsyncQga`], the guest-agent client on tokio.

use super::conn::{self, Conn, Io};
use crate::addr::Address;
use crate::client::{Call, Notice};
use crate::config::Config;
use crate::error::Error;
use crate::machine::Machine;
use crate::qga::{self as blocking, Session, SyncIds, Syncing};
use std::fmt;
use std::future::poll_fn;
use std::path::Path;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

/// A guest-agent client on tokio: a cheap, `Clone + Send + Sync` handle,
/// with the blocking [`Qga`](crate::qga::Qga)'s calls and errors, async.
/// It syncs on connect (a 0xFF byte, then `guest-sync-delimited` with a
/// random id, everything before the delimited reply discarded) and again
/// before the next command after a timeout: up to three attempts with
/// fresh ids within [`Config::sync_timeout`] — so an agent that starts
/// after the host connected (qemu-ga in a booting guest) is found by a
/// later attempt — and one sync at a time, whichever clone asks.
#[derive(Clone)]
pub struct AsyncQga {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Conn<Session>,
    /// A sync runs alone (it would cancel the calls in flight): calls
    /// hold it shared, a sync exclusively (with its ids).
    sync: tokio::sync::RwLock<SyncIds>,
}

impl fmt::Debug for AsyncQga {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.inner.conn.lock();
        f.debug_struct("AsyncQga")
            .field("state", &st.m.session.state())
            .field("timeout", &st.m.cfg.timeout)
            .finish_non_exhaustive()
    }
}

impl AsyncQga {
    /// Connects to `address` (Unix or TCP, with
    /// [`AsyncClient::connect`](super::AsyncClient::connect)'s rules) and
    /// syncs, all within [`Config::connect_timeout`].
    ///
    /// # Errors
    /// [`Error::Connect`], [`Error::HandshakeTimeout`],
    /// [`Error::HandshakeRefused`], [`Error::Protocol`], …
    pub async fn connect(address: &Address, cfg: Config) -> Result<Self, Error> {
        let deadline = Instant::now() + cfg.connect_timeout;
        let io = conn::connect(address, &cfg, deadline).await?;
        AsyncQga::handshake_until(io, cfg, deadline).await
    }

    /// [`AsyncQga::connect`] to a Unix socket.
    ///
    /// # Errors
    /// As [`AsyncQga::connect`].
    pub async fn connect_unix(path: impl AsRef<Path>, cfg: Config) -> Result<Self, Error> {
        AsyncQga::connect(&Address::unix(path.as_ref()), cfg).await
    }

    /// Syncs over an open Unix socket within [`Config::connect_timeout`].
    ///
    /// # Errors
    /// As [`AsyncQga::sync`].
    pub async fn handshake_unix(
        stream: tokio::net::UnixStream,
        cfg: Config,
    ) -> Result<Self, Error> {
        let deadline = Instant::now() + cfg.connect_timeout;
        AsyncQga::handshake_until(Io::Unix(stream), cfg, deadline).await
    }

    async fn handshake_until(io: Io, cfg: Config, deadline: Instant) -> Result<Self, Error> {
        let connect_timeout = cfg.connect_timeout;
        let qga = AsyncQga {
            inner: Arc::new(Inner {
                conn: Conn::spawn(io, Machine::new(blocking::new_session(&cfg), cfg)),
                sync: tokio::sync::RwLock::new(SyncIds::new()),
            }),
        };
        let mut ids = qga.inner.sync.write().await;
        qga.sync_within(&mut ids, Some((deadline, connect_timeout)))
            .await?;
        drop(ids);
        Ok(qga)
    }

    /// Whether the session is synced (the next call will not sync first).
    pub fn is_synced(&self) -> bool {
        self.inner.conn.lock().m.session.state() == qmp_core::qga::QgaState::Synced
    }

    /// Runs the sync procedure within [`Config::sync_timeout`]: up to three
    /// attempts, each with a fresh random id and a third of the time. It
    /// waits for the calls in flight (a sync discards what comes before its
    /// reply), and later calls wait for it.
    ///
    /// # Errors
    /// [`Error::HandshakeTimeout`] (no attempt succeeded),
    /// [`Error::HandshakeRefused`] (the agent answered the sync with an
    /// error), [`Error::Protocol`] (the peer is a QMP monitor),
    /// [`Error::Disconnected`].
    pub async fn sync(&self) -> Result<(), Error> {
        let mut ids = self.inner.sync.write().await;
        self.sync_within(&mut ids, None).await
    }

    /// The sync procedure, driven by the connection's driver task; dropping
    /// the future gives the attempt under way up.
    async fn sync_within(
        &self,
        ids: &mut SyncIds,
        limit: Option<(Instant, Duration)>,
    ) -> Result<(), Error> {
        let conn = &self.inner.conn;
        let mut sync = Abandon {
            conn,
            sync: Syncing::new(&conn.lock().m.cfg, limit),
        };
        let waiter = conn.waiter();
        poll_fn(|cx| {
            let mut st = conn.lock();
            match sync.sync.advance(&mut st.m, ids) {
                Ok(true) => Poll::Ready(Ok(())),
                Ok(false) => {
                    // Woken by what the sync skips and by its resolution;
                    // the driver sends the attempt just begun.
                    st.set_waiter(waiter.id, cx);
                    if let Some(id) = sync.sync.waiting_for() {
                        Conn::wake_on_call(&mut st, id, cx);
                    }
                    st.wake_driver();
                    Poll::Pending
                }
                Err(e) => {
                    sync.sync.abandon(&mut st.m);
                    st.wake_driver();
                    Poll::Ready(Err(e))
                }
            }
        })
        .await
    }

    /// `guest-ping`.
    ///
    /// # Errors
    /// As [`AsyncQga::execute`].
    pub async fn ping(&self) -> Result<(), Error> {
        self.execute_raw("guest-ping", None).await.map(drop)
    }

    /// `guest-get-time`: nanoseconds since the epoch.
    ///
    /// # Errors
    /// As [`AsyncQga::execute`].
    pub async fn get_time(&self) -> Result<i64, Error> {
        self.execute("guest-get-time", &()).await
    }

    // -- commands ------------------------------------------------------

    client_calls!(async AsyncQga);

    /// Refuses what a guest agent cannot do.
    async fn prepare(&self, call: &Call<'_>) -> Result<(), Error> {
        blocking::admit(call, &self.inner.conn.lock().m).map(drop)
    }

    /// Sends `call` and waits for its return value, syncing first when
    /// needed (one sync at a time, alone: a clone that waited for it finds
    /// the session synced).
    async fn run(&self, call: &Call<'_>) -> Result<Vec<u8>, Error> {
        loop {
            let calls = self.inner.sync.read().await;
            if blocking::admit(call, &self.inner.conn.lock().m)? {
                let r = self.inner.conn.run(call).await;
                drop(calls);
                return r;
            }
            drop(calls);
            let mut ids = self.inner.sync.write().await;
            if !blocking::admit(call, &self.inner.conn.lock().m)? {
                self.sync_within(&mut ids, None).await?;
            }
        }
    }

    fn machine(&self) -> std::sync::MutexGuard<'_, conn::State<Session>> {
        self.inner.conn.lock()
    }

    fn machine_mut(&self) -> std::sync::MutexGuard<'_, conn::State<Session>> {
        self.inner.conn.lock()
    }
}

/// A sync that gives its attempt up when dropped unfinished.
struct Abandon<'c> {
    conn: &'c Conn<Session>,
    sync: Syncing,
}

impl Drop for Abandon<'_> {
    fn drop(&mut self) {
        let mut st = self.conn.lock();
        self.sync.abandon(&mut st.m);
        st.wake_driver();
    }
}
