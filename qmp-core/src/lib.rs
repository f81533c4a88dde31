//! # qmp-core
//!
//! The QEMU Machine Protocol (QMP) for places without an operating system,
//! a heap or a runtime: `#![no_std]`, no `alloc`, no `unsafe`, sans-IO.
//!
//! Layers (one idea per module):
//!
//! * [`scan`] — the structural framer and JSON scanner shared by every role:
//!   bytes in, complete validated top-level values out, with QEMU's lexer
//!   error and resynchronisation semantics.
//! * [`json`] — zero-copy views of validated JSON ([`RawJson`], [`JsonStr`]).
//! * [`message`] — classification: what a client receives ([`message::Inbound`])
//!   and what an agent receives ([`message::Request`]).
//! * [`client`] — the sans-IO client session: negotiation, ids, routing,
//!   deadlines, OOB; typed commands and events.
//! * [`agent`] — the sans-IO monitor agent (server side), byte-exact with
//!   QEMU 10, for QMP and the guest-agent dialect.
//! * [`qga`] — the guest-agent dialect: its client ([`qga::QgaClient`], the
//!   0xFF-delimited sync procedure, on the client core it shares with the
//!   QMP client) and its server side (what the [`agent`] does for it).
//! * `drive` (features `embedded-io`, `embedded-io-async`) — the blocking
//!   and async drivers that run the sessions over a transport, on the pump.
//! * [`pump`] — the one loop body every driver runs: bytes between a
//!   transport and a session, deadlines, what to do next.
//! * [`schema`] — zero-copy views of a live `query-qmp-schema`: lookups
//!   (by scan or by a caller-lent index), libvirt's path queries, argument
//!   checks with QEMU's texts; `const` declarations the agent introspects
//!   and checks with.
//! * [`encode`] — the envelope writer: commands, returns, errors, events and
//!   the greeting, byte-exact with QEMU's JSON writer.
//!
//! # Features
//!
//! On by default, each a part of QEMU's behaviour or of the API that a
//! firmware may leave out for flash (figures: thumbv7em, `opt-level = "z"`;
//! `firmware/` builds without all of them):
//!
//! | feature | what | without it |
//! |---|---|---|
//! | `exact-floats` | numbers re-printed as QEMU's `%.17g` | non-integers echoed as received (25 KB) |
//! | `introspection` | the agent answers `query-qmp-schema` | handed to the application (5 KB) |
//! | `fast-path` | the framer's fast path | the state machine reads every byte (3 KB) |
//! | `duplicate-keys` | QEMU's `duplicate key` error | a repeated key is taken (3.8 KB; [`scan::FramerConfig::duplicate_keys`]) |
//! | `qdict-order` | re-printed objects in QEMU's QDict order | in input order (2 KB) |
//! | `qga` | the guest-agent dialect (`qga`, `Protocol::Qga`) | QMP only (0.8 KB for an agent) |
//!
//! Off by default: `embedded-io` and `embedded-io-async` (the drivers),
//! `defmt`.
//!
//! ```
//! use qmp_core::scan::{Framer, Frame};
//! use qmp_core::message::Inbound;
//!
//! let mut buf = [0u8; 512];
//! let mut framer = Framer::new(&mut buf[..]);
//! let mut input: &[u8] = b"{\"return\": {}, \"id\": 1}\r\n";
//! let mut replies = 0;
//! while !input.is_empty() {
//!     let fed = framer.feed(input);
//!     input = &input[fed.consumed..];
//!     if let Some(Frame::Message(msg)) = fed.frame {
//!         if let Inbound::Return { id, .. } = msg.classify() {
//!             assert_eq!(id.and_then(|id| id.as_i64()), Some(1));
//!             replies += 1;
//!         }
//!     }
//! }
//! assert_eq!(replies, 1);
//! ```
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod agent;
mod bytes;
pub mod client;
#[cfg(any(feature = "embedded-io", feature = "embedded-io-async"))]
pub mod drive;
pub mod encode;
mod find;
pub mod json;
pub mod message;
pub mod pump;
#[cfg(feature = "qga")]
pub mod qga;
pub mod scan;
pub mod schema;
mod size;
mod sort;
mod time;

pub use json::{JsonStr, RawJson};
pub use size::InsufficientSize;
pub use time::Instant;

#[doc(hidden)]
pub use serde as __serde;
