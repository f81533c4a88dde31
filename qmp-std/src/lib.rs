//! qmp-std: the std adapter for qmp-core.
//!
//! * [`addr`]: where to listen or connect (`--unix PATH`, `--tcp HOST:PORT`).
//! * [`json`]: [`json::Json`], an owned, validated JSON value.
//! * [`agent`]: the agent runner — serves QMP (or the guest-agent dialect)
//!   on a Unix or TCP listener, one thread per connection, with a
//!   [`agent::Handler`] for the commands and an [`agent::EventSender`] to
//!   broadcast events.
//! * [`demo`]: the demo monitor agent behind `qmp agent`.
//! * [`client`]: the blocking QMP client (sockets, timeouts, events,
//!   subscriptions, pipelining).
//! * [`qga`]: [`qga::Qga`], the blocking guest-agent client (sync, ping,
//!   execute) over Unix/TCP sockets or any [`transport::Transport`].
//! * [`schema`]: [`schema::LiveSchema`], a server's `query-qmp-schema`
//!   owned and indexed, for lookups, path queries and argument checks.
//! * [`transport`]: what the clients run over.
//! * [`fd`]: file-descriptor passing (`SCM_RIGHTS`) on Unix sockets.
//!
//! Both clients take one [`Config`] and fail with one [`Error`]; every
//! driver loop (the two clients', the agent runner's) is qmp-core's
//! [`qmp_core::pump::Pump`], with only the socket specifics here.

#[macro_use]
mod calls;

pub mod addr;
#[macro_use]
pub mod agent;
mod buf;
pub mod client;
mod config;
pub mod demo;
mod error;
pub mod fd;
mod inbox;
pub mod json;
mod link;
mod machine;
pub mod qga;
pub mod schema;
#[cfg(feature = "tokio")]
pub mod tokio;
pub mod transport;

pub use addr::Address;
pub use config::Config;
pub use error::{Error, Handshake, QmpError};
pub use json::Json;
