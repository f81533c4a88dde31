//! The guest-agent (QGA) dialect: what differs from QMP, for both roles.
//!
//! `qemu-ga` speaks QMP without greeting, negotiation or OOB, ends replies
//! with `\n`, and resynchronises with a raw 0xFF byte and
//! `guest-sync-delimited`:
//!
//! * [`client`]: the guest-agent **client** ([`QgaClient`]), on the client
//!   core it shares with the QMP client;
//! * [`agent`]: the guest-agent **server** side — what the
//!   [`Agent`](crate::agent::Agent) does differently with
//!   [`Protocol::Qga`](crate::agent::Protocol::Qga) (answering
//!   `guest-sync` and `guest-sync-delimited` itself);
//! * [`commands`]: typed guest-agent commands.

pub mod agent;
pub mod client;
pub mod commands;

pub use client::{QgaClient, QgaConfig, QgaState};

/// The byte `qemu-ga` puts in front of the `guest-sync-delimited` reply (and
/// the byte a client sends to flush the agent's parser).
pub const DELIMITER: u8 = 0xFF;
