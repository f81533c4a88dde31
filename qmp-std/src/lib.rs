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
//! * [`fd`]: file-descriptor passing (`SCM_RIGHTS`) on Unix sockets.
//! * [`qga`]: [`qga::Qga`], a blocking guest-agent client (sync, ping,
//!   execute) over Unix/TCP sockets or any `Read + Write`.

pub mod addr;
pub mod agent;
pub mod client;
pub mod demo;
pub mod fd;
pub mod json;
pub mod qga;

pub use addr::Address;
pub use json::Json;

use std::fmt;

/// An error reply from a QMP server or guest agent:
/// `{"error": {"class": …, "desc": …}}`. Shared by [`client`] and [`qga`]
/// (re-exported there as `client::QmpError` and `qga::QmpError`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QmpError {
    /// The error class (`GenericError`, `CommandNotFound`, …; any class a
    /// newer peer sends is kept as it came).
    pub class: String,
    /// The description, unescaped.
    pub desc: String,
}

impl fmt::Display for QmpError {
    /// `CLASS: DESC`, as the `qmp` tool prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.class, self.desc)
    }
}

impl std::error::Error for QmpError {}
