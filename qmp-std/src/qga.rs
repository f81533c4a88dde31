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

use qmp_core::client::ExecuteError;
use qmp_core::qga::{QgaClient, QgaState};

use crate::client::Call;
use crate::inbox::{Setup, Skipped};
use crate::link::Link;
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
    link: Link<T, QgaClient<Vec<u8>, 4>>,
    rng: u64,
}

impl<T: Transport> fmt::Debug for Qga<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Qga")
            .field("state", &self.link.session.state())
            .field("timeout", &self.link.cfg.timeout)
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
        let mut seed = RandomState::new().build_hasher();
        seed.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        seed.write_u32(std::process::id());
        let session = QgaClient::with_config(vec![0; cfg.max_message], Default::default());
        Qga {
            link: Link::new(io, session, cfg),
            rng: seed.finish() | 1,
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
        self.link.session.state() == QgaState::Synced
    }

    /// A random id in `1..=i64::MAX` (xorshift64*, seeded from the time, the
    /// pid and std's per-process random hash keys).
    fn random_id(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) & i64::MAX as u64).max(1)
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
        let start = Instant::now();
        let mut allowed = self.link.cfg.sync_timeout;
        let mut end = start + allowed;
        if let Some((deadline, time)) = limit.filter(|(d, _)| *d < end) {
            (end, allowed) = (deadline, time);
        }
        self.link
            .set_write_timeout(Some(end.saturating_duration_since(start)))?;
        let budget = end.saturating_duration_since(start);
        // The last error the agent sent that is not its complaint about the
        // 0xFF: the cause, if no attempt succeeds.
        let mut refusal = None;
        for attempt in 1..=SYNC_ATTEMPTS {
            let attempt_end = start + budget * attempt / SYNC_ATTEMPTS;
            let id = self.random_id();
            let now = self.link.now();
            let deadline = self.link.clock(attempt_end);
            let token = match self.link.session.sync(now, id, deadline) {
                Ok(t) => t,
                Err(ExecuteError::Closed) => {
                    return Err(Error::Disconnected {
                        command: Some(SYNC.into()),
                    })
                }
                Err(e) => return Err(Error::Protocol(format!("cannot sync: {e}"))),
            };
            let share = attempt_end.saturating_duration_since(Instant::now());
            self.link.inbox.register(token.id(), SYNC, Some(share));
            let done = loop {
                if let Err(e) = self.skipped(&mut refusal) {
                    // Ended here: the session forgets the sync too.
                    self.link.inbox.forget(token.id());
                    self.link.session.cancel(token);
                    self.link.file_events();
                    return Err(e);
                }
                if let Some(r) = self.link.inbox.take(token.id()) {
                    break r;
                }
                if !self.link.inbox.is_waiting(token.id()) {
                    return Err(Error::Closed);
                }
                self.link.turn(None)?;
            };
            match done {
                Ok(_) => return Ok(()),
                Err(Error::Timeout { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Err(match refusal {
            Some(error) => Error::HandshakeRefused {
                step: Handshake::Sync,
                error,
            },
            None => Error::HandshakeTimeout {
                step: Handshake::Sync,
                after: allowed,
            },
        })
    }

    /// Looks at what the sync skipped: a QMP greeting, or an error naming
    /// the sync command, end it at once; another error (not the agent's
    /// complaint about the 0xFF) is kept as the likely cause.
    fn skipped(&mut self, refusal: &mut Option<QmpError>) -> Result<(), Error> {
        while let Some(s) = self.link.inbox.setup.pop_front() {
            match s {
                Setup::Skipped(Skipped::QmpGreeting) => {
                    return Err(Error::Protocol(
                        "the peer sent a QMP greeting: this is a QMP monitor, not a guest agent"
                            .into(),
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
        if call.oob {
            return Err(Error::Unsupported(format!(
                "cannot send '{}' with exec-oob: the guest agent has no out-of-band commands",
                call.name
            )));
        }
        if self.link.is_closed() {
            return Err(Error::Closed);
        }
        if !self.is_synced() {
            self.sync()?;
        }
        Ok(())
    }
}
