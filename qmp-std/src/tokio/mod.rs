//! The async host side on tokio (feature `tokio`): [`AsyncClient`] (QMP),
//! [`AsyncQga`] (the guest agent) and [`AsyncServer`] (the agent runner),
//! for programs that watch many monitors from one runtime — a fleet
//! manager with a thousand QEMU monitors on one thread.
//!
//! ```no_run
//! use qmp_std::client::Config;
//! use qmp_std::tokio::AsyncClient;
//! use std::time::Duration;
//!
//! # async fn run() -> Result<(), qmp_std::Error> {
//! let qmp = AsyncClient::connect_unix("/tmp/qsd.sock", Config::new()).await?;
//! let mut jobs = qmp.subscribe(&["JOB_STATUS_CHANGE"]); // before the command
//! qmp.execute_raw("blockdev-create", Some(r#"{"job-id": "j1", "options": {"driver": "qcow2", "file": "n0", "size": 1048576}}"#)).await?;
//! let concluded = jobs
//!     .wait_for(|e| e.data_json().is_some_and(|d| d.contains(r#""concluded""#)), Some(Duration::from_secs(5)))
//!     .await?;
//! assert!(concluded.is_some());
//! # Ok(()) }
//! ```
//!
//! # Built on the blocking clients' parts
//!
//! There is no second protocol implementation here. Each connection runs
//! qmp-core's session (the QMP client, the guest-agent client, the agent)
//! behind qmp-core's [`Pump`](qmp_core::pump::Pump), and the I/O-free
//! parts of the blocking side: a client's `Machine` (session, pump, the
//! inbox that files replies, events and notices, command queueing), the
//! guest-agent sync procedure, the agent runner's books (its mailbox, the
//! event backlog, what is owed while output is full, the session cap).
//! The calls (`execute`, `execute_raw`, `call`, `call_typed`, …) are the
//! blocking clients' text, `async`; the errors are [`crate::Error`], the
//! settings [`crate::Config`] and [`ServerConfig`](crate::agent::ServerConfig),
//! the per-call options [`Call`](crate::client::Call).
//!
//! # A driver task per connection, not a stream wrapper
//!
//! A client connection is a spawned **driver task** (quinn's shape) that
//! owns the socket, and cheap `Clone + Send + Sync` handles that share the
//! session state behind a mutex held only for non-blocking steps (never
//! across an await). The other shape, a wrapper whose futures do the I/O
//! when the caller polls them (tokio-rustls's), fits one owner doing one
//! thing at a time; here:
//!
//! * the handle is shared by many tasks (one awaits a job's events while
//!   others run commands): with a wrapper they would contend for the
//!   socket, and whichever is polled would have to serve everyone's
//!   replies;
//! * something must read while nobody awaits a reply — events arrive
//!   unasked and a bounded queue must be filled (and counted when full),
//!   a late reply of a cancelled call must be taken off the socket, and a
//!   per-call deadline must fire while the peer is silent — a driver reads
//!   whenever the session takes input, so the monitor never blocks writing
//!   to us;
//! * cancellation is simple: dropping a call's future tells the session to
//!   cancel that request; the driver drops its late reply by id. No future
//!   holds the connection half-written.
//!
//! The cost is one task per connection and the handoff from caller to
//! driver, a wake-up. In the fleet benchmark (`cargo bench -p qmp-std
//! --bench fleet`) an idle session costs about 16 KiB resident in the
//! client process (buffers, task, inbox) and 28 KiB in the tokio agent
//! runner, and 1,000 sessions run about 200,000 pipelined commands a
//! second on one core, over 20 times python `qemu.qmp`'s rate. The agent runner's
//! sessions are tasks too: a session task owns its socket and its agent
//! and runs the blocking runner's turn between awaits.
//!
//! # Crates
//!
//! tokio for the sockets, timers, tasks and the `Notify` a call waits on
//! for room; `futures-core` for the `Stream` trait [`EventStream`]
//! implements (nothing else from the futures crates); rustix's `sendmsg`
//! for `SCM_RIGHTS`, run through tokio's `try_io` so tokio's readiness
//! stays right — no `unsafe` here; memmap2 for buffers that are backed
//! only as far as they are used (a 16 MiB message limit does not mean
//! 16 MiB per session).
//!
//! # Connecting
//!
//! [`AsyncClient::connect`] and [`AsyncQga::connect`] follow the blocking
//! clients' rules: retry while the socket is missing or refuses
//! ([`Config::retry_connect`](crate::Config::retry_connect)), and while a
//! Unix socket's backlog is full — a QEMU monitor serves one client and
//! leaves the others in its listen backlog, where a blocking `connect`
//! waits in the kernel (tokio's own `UnixStream::connect` hands back the
//! `EAGAIN`); the connect deadline covers connect and greeting together,
//! since the greeting comes only once the monitor takes the client.

mod agent;
mod client;
mod conn;
mod qga;

pub use agent::{Answer, AsyncHandler, AsyncServer, Blocking, LaterResponse};
pub use client::{AsyncClient, EventStream};
pub use qga::AsyncQga;
