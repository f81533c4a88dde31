//! A blocking guest-agent (QGA) client over a Unix socket, TCP, or any
//! [`Transport`] (a virtio-serial port opened as a file, through
//! [`FdTransport`](crate::client::FdTransport)).
//!
//! [`Qga`] drives [`qmp_core::qga::QgaClient`] on the same driver as the
//! QMP client ([`crate::client`]), with the same [`Config`], the same calls
//! ([`Qga::execute`], [`Qga::execute_raw`], [`Qga::call`]) and the same
//! [`Error`]s. It syncs on connect (a 0xFF byte, then
//! `guest-sync-delimited` with a random 64-bit id, everything before the
//! delimited reply discarded), and again before the next command after any
//! timeout. A sync takes at most [`Config::sync_timeout`] (up to three
//! attempts with fresh ids); a peer that is no guest agent fails at once
//! when it shows it (a QMP greeting, or an error naming the sync command)
//! and otherwise when that time is up.
//!
//! Unlike [`Client`](crate::client::Client), a guest-agent client checks
//! no arguments before sending: qemu-ga has no `query-qmp-schema` (its
//! `guest-info` lists command names only), so there is no schema to check
//! against, and the agent's own error is the answer.
//!
//! ```no_run
//! use qmp_std::qga::{Config, Qga};
//! use std::time::Duration;
//! let cfg = Config::new().timeout(Some(Duration::from_secs(5)));
//! let mut qga = Qga::connect_unix("/run/qga.sock", cfg)?;
//! qga.ping()?;
//! match qga.execute_raw("guest-get-time", None) {
//!     Ok(json) => println!("{json}"),
//!     Err(e) if e.is_qmp() => eprintln!("{e}"),
//!     Err(e) => return Err(e),
//! }
//! let info: serde_json::Value = qga.execute("guest-info", &())?;
//! println!("{}", info["version"]);
//! # Ok::<(), qmp_std::Error>(())
//! ```

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::path::Path;
use std::time::{Duration, Instant};

use qmp_core::client::{ExecuteError, Token};
use qmp_core::qga::{QgaClient, QgaState};

use crate::buf::Buf;
use crate::client::Call;
use crate::inbox::{Setup, Skipped};
use crate::link::Link;
use crate::machine::Machine;
use crate::Address;

pub use crate::addr::Stream;
pub use crate::client::Notice;
pub use crate::config::Config;
pub use crate::error::{Error, Handshake, QmpError};
pub use crate::transport::Transport;

/// Sync attempts (each with a fresh id and an equal share of the sync
/// time).
const SYNC_ATTEMPTS: u32 = 3;

/// The sync command (named in [`Error::Timeout`] of an attempt).
const SYNC: &str = "guest-sync-delimited";

/// The blocking guest-agent client. See the [module docs](self).
pub struct Qga<T: Transport = Stream> {
    link: Link<T, Session>,
    ids: SyncIds,
}

/// The guest-agent session the clients run.
pub(crate) type Session = QgaClient<Buf, 4>;

/// The guest-agent session of a client with `cfg` (its framer buffer
/// lazily backed: see [`crate::buf`]).
pub(crate) fn new_session(cfg: &Config) -> Session {
    QgaClient::with_config(Buf::zeroed(cfg.max_message), Default::default())
}

impl<T: Transport> fmt::Debug for Qga<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Qga")
            .field("state", &self.link.m.session.state())
            .field("timeout", &self.link.m.cfg.timeout)
            .finish_non_exhaustive()
    }
}

impl Qga<Stream> {
    /// Connects to `address` (Unix or TCP; retrying while it is missing or
    /// refuses, see [`Config::retry_connect`]) and syncs, all within
    /// [`Config::connect_timeout`].
    ///
    /// # Errors
    /// [`Error::Connect`], [`Error::HandshakeTimeout`],
    /// [`Error::HandshakeRefused`], [`Error::Protocol`], …
    pub fn connect(address: &Address, cfg: Config) -> Result<Self, Error> {
        crate::transport::open(address, cfg, Qga::handshake_until)
    }

    /// Connects to a Unix socket and syncs (see [`Qga::connect`]).
    ///
    /// # Errors
    /// As [`Qga::connect`].
    pub fn connect_unix(path: impl AsRef<Path>, cfg: Config) -> Result<Self, Error> {
        Qga::connect(&Address::unix(path.as_ref()), cfg)
    }
}

impl<T: Transport> Qga<T> {
    /// Wraps an open transport, not yet synced (the first call syncs).
    pub fn new(io: T, cfg: Config) -> Self {
        Qga {
            link: Link::new(io, Machine::new(new_session(&cfg), cfg)),
            ids: SyncIds::new(),
        }
    }

    /// Syncs over an open transport within [`Config::connect_timeout`].
    ///
    /// # Errors
    /// As [`Qga::sync`].
    pub fn handshake(io: T, cfg: Config) -> Result<Self, Error> {
        let deadline = Instant::now() + cfg.connect_timeout;
        Qga::handshake_until(io, cfg, deadline)
    }

    fn handshake_until(io: T, cfg: Config, deadline: Instant) -> Result<Self, Error> {
        let connect_timeout = cfg.connect_timeout;
        let mut qga = Qga::new(io, cfg);
        qga.sync_within(Some((deadline, connect_timeout)))?;
        Ok(qga)
    }

    /// Whether the session is synced (the next call will not sync first).
    pub fn is_synced(&self) -> bool {
        self.link.m.session.state() == QgaState::Synced
    }

    /// Runs the sync procedure within [`Config::sync_timeout`]: up to three
    /// attempts, each with a fresh random id and a third of the time.
    ///
    /// # Errors
    /// [`Error::HandshakeTimeout`] (no attempt succeeded),
    /// [`Error::HandshakeRefused`] (the agent answered the sync with an
    /// error), [`Error::Protocol`] (the peer is a QMP monitor),
    /// [`Error::Disconnected`], transport errors.
    pub fn sync(&mut self) -> Result<(), Error> {
        self.sync_within(None)
    }

    /// [`Qga::sync`], ending by `limit` (a deadline and the time it stands
    /// for) when that comes first.
    fn sync_within(&mut self, limit: Option<(Instant, Duration)>) -> Result<(), Error> {
        let mut sync = Syncing::new(&self.link.m.cfg, limit);
        self.link
            .set_write_timeout(Some(sync.end().saturating_duration_since(Instant::now())))?;
        loop {
            match sync.advance(&mut self.link.m, &mut self.ids) {
                Ok(true) => return Ok(()),
                Ok(false) => self.link.turn(None)?,
                Err(e) => {
                    sync.abandon(&mut self.link.m);
                    self.link.m.file_events(|_| {});
                    return Err(e);
                }
            }
        }
    }

    // -- commands ------------------------------------------------------

    client_calls!(Qga);

    /// `guest-ping`.
    ///
    /// # Errors
    /// As [`Qga::execute`].
    pub fn ping(&mut self) -> Result<(), Error> {
        self.execute_raw("guest-ping", None).map(drop)
    }

    /// `guest-get-time`: nanoseconds since the epoch.
    ///
    /// # Errors
    /// As [`Qga::execute`].
    pub fn get_time(&mut self) -> Result<i64, Error> {
        self.execute("guest-get-time", &())
    }

    /// Refuses what a guest agent cannot do, and syncs when needed.
    fn prepare(&mut self, call: &Call<'_>) -> Result<(), Error> {
        if !admit(call, &self.link.m)? {
            self.sync()?;
        }
        Ok(())
    }

    /// Sends `call` and waits for its return value.
    fn run(&mut self, call: &Call<'_>) -> Result<Vec<u8>, Error> {
        let p = self.link.send(call)?;
        self.link.wait_bytes(p)
    }

    fn machine(&self) -> &Machine<Session> {
        &self.link.m
    }

    fn machine_mut(&mut self) -> &mut Machine<Session> {
        &mut self.link.m
    }
}

/// Refuses what a guest agent cannot do (`exec-oob`, a closed
/// connection); `Ok(false)` when a sync must come first.
pub(crate) fn admit(call: &Call<'_>, m: &Machine<Session>) -> Result<bool, Error> {
    if call.oob {
        return Err(Error::Unsupported(format!(
            "cannot send '{}' with exec-oob: the guest agent has no out-of-band commands",
            call.name
        )));
    }
    if m.is_closed() {
        return Err(Error::Closed);
    }
    Ok(m.session.state() == QgaState::Synced)
}

/// Random sync ids.
pub(crate) struct SyncIds(u64);

impl SyncIds {
    /// Seeded from the time, the pid and std's per-process random hash keys.
    pub(crate) fn new() -> Self {
        let mut seed = RandomState::new().build_hasher();
        seed.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        seed.write_u32(std::process::id());
        SyncIds(seed.finish() | 1)
    }

    /// A random id in `1..=i64::MAX` (xorshift64*).
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) & i64::MAX as u64).max(1)
    }
}

/// One run of the sync procedure, without I/O — the blocking and the async
/// guest-agent clients drive the connection between
/// [`Syncing::advance`] calls. Within [`Config::sync_timeout`] (or the
/// limit given, when earlier): up to three attempts, each with a fresh
/// random id and an equal share of the time; a peer that shows it is no
/// guest agent (a QMP greeting, an error naming the sync command) ends it
/// at once.
pub(crate) struct Syncing {
    start: Instant,
    /// The time all attempts share.
    budget: Duration,
    /// The time the error names.
    allowed: Duration,
    /// Attempts begun.
    attempt: u32,
    /// The attempt under way.
    token: Option<Token>,
    /// The last error the agent sent that is not its complaint about the
    /// 0xFF: the cause, if no attempt succeeds.
    refusal: Option<QmpError>,
}

impl Syncing {
    /// A sync with `cfg`'s time, ending by `limit` (a deadline and the time
    /// it stands for) when that comes first.
    pub(crate) fn new(cfg: &Config, limit: Option<(Instant, Duration)>) -> Self {
        let start = Instant::now();
        let mut allowed = cfg.sync_timeout;
        let mut end = start + allowed;
        if let Some((deadline, time)) = limit.filter(|(d, _)| *d < end) {
            (end, allowed) = (deadline, time);
        }
        Syncing {
            start,
            budget: end.saturating_duration_since(start),
            allowed,
            attempt: 0,
            token: None,
            refusal: None,
        }
    }

    /// The id of the attempt under way.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn waiting_for(&self) -> Option<u64> {
        self.token.map(|t| t.id())
    }

    /// When the sync ends at the latest.
    pub(crate) fn end(&self) -> Instant {
        self.start + self.budget
    }

    /// Goes as far as what was filed allows: `Ok(true)` synced;
    /// `Ok(false)` waiting (drive the connection, then call again).
    ///
    /// # Errors
    /// The sync failed (see [`Qga::sync`]); call [`Syncing::abandon`].
    pub(crate) fn advance(
        &mut self,
        m: &mut Machine<Session>,
        ids: &mut SyncIds,
    ) -> Result<bool, Error> {
        loop {
            let token = match self.token {
                Some(t) => t,
                None => self.begin(m, ids)?,
            };
            skipped(m, &mut self.refusal)?;
            match m.result(token.id()) {
                None => return Ok(false),
                Some(r) => {
                    self.token = None;
                    match r {
                        Ok(_) => return Ok(true),
                        Err(Error::Timeout { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
    }

    /// Begins the next attempt.
    fn begin(&mut self, m: &mut Machine<Session>, ids: &mut SyncIds) -> Result<Token, Error> {
        if self.attempt >= SYNC_ATTEMPTS {
            return Err(match self.refusal.take() {
                Some(error) => Error::HandshakeRefused {
                    step: Handshake::Sync,
                    error,
                },
                None => Error::HandshakeTimeout {
                    step: Handshake::Sync,
                    after: self.allowed,
                },
            });
        }
        self.attempt += 1;
        let attempt_end = self.start + self.budget * self.attempt / SYNC_ATTEMPTS;
        let (now, deadline) = (m.now(), m.clock(attempt_end));
        let token = match m.session.sync(now, ids.next(), deadline) {
            Ok(t) => t,
            Err(ExecuteError::Closed) => {
                return Err(Error::Disconnected {
                    command: Some(SYNC.into()),
                })
            }
            Err(e) => return Err(Error::Protocol(format!("cannot sync: {e}"))),
        };
        let share = attempt_end.saturating_duration_since(Instant::now());
        m.inbox.register(token.id(), SYNC, Some(share));
        self.token = Some(token);
        Ok(token)
    }

    /// Gives the attempt under way up (after an error, or when the caller
    /// stops waiting): the session forgets it. File its events afterwards.
    pub(crate) fn abandon(&mut self, m: &mut Machine<Session>) {
        if let Some(token) = self.token.take() {
            m.cancel(token);
        }
    }
}

/// Looks at what the sync skipped: a QMP greeting, or an error naming the
/// sync command, end it at once; another error (not the agent's complaint
/// about the 0xFF) is kept as the likely cause.
fn skipped(m: &mut Machine<Session>, refusal: &mut Option<QmpError>) -> Result<(), Error> {
    while let Some(s) = m.inbox.setup.pop_front() {
        match s {
            Setup::Skipped(Skipped::QmpGreeting) => {
                return Err(Error::Protocol(
                    "the peer sent a QMP greeting: this is a QMP monitor, not a guest agent".into(),
                ))
            }
            Setup::Skipped(Skipped::Error(error)) if error.desc.contains("guest-sync") => {
                return Err(Error::HandshakeRefused {
                    step: Handshake::Sync,
                    error,
                })
            }
            Setup::Skipped(Skipped::Error(e)) if !e.desc.starts_with("JSON parse error") => {
                *refusal = Some(e);
            }
            _ => {}
        }
    }
    Ok(())
}
