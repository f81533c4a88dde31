//! The async host side on tokio (feature `tokio`): [`AsyncClient`] (QMP),
//! [`AsyncQga`] (the guest agent) and [`AsyncServer`] (the agent runner),
//! for programs that watch many monitors from one runtime.

mod agent;
mod client;
mod conn;
mod qga;

pub use agent::{Answer, AsyncHandler, AsyncServer, Blocking, LaterResponse};
pub use client::{AsyncClient, EventStream};
pub use qga::AsyncQga;
