//! A blocking driver that serves one connection with an [`Agent`] over any
//! `embedded_io::Read + Write` (feature `embedded-io`). No allocation.

use super::Agent;
use crate::Instant;
use core::fmt;
use core::ops::ControlFlow;
use embedded_io::{Read, Write};

/// Why [`serve`] stopped with an error.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServeError<E> {
    /// The transport failed.
    Io(E),
    /// The transport accepted no bytes (`write` returned 0).
    WriteZero,
}

impl<E: fmt::Debug> fmt::Display for ServeError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServeError::Io(e) => write!(f, "transport error: {e:?}"),
            ServeError::WriteZero => f.write_str("transport accepted no bytes"),
        }
    }
}

impl<E: fmt::Debug> core::error::Error for ServeError<E> {}

#[cfg(feature = "defmt")]
impl<E> defmt::Format for ServeError<E> {
    fn format(&self, f: defmt::Formatter<'_>) {
        match self {
            ServeError::Io(_) => defmt::write!(f, "transport error"),
            ServeError::WriteZero => defmt::write!(f, "transport accepted no bytes"),
        }
    }
}

/// How a [`serve`] loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Served {
    /// The peer closed the connection (read returned 0).
    Eof,
    /// The application asked to stop (after its output was flushed).
    Stopped,
}

/// Writes all of `bytes`, looping over short writes.
pub fn write_all<W: Write>(io: &mut W, mut bytes: &[u8]) -> Result<(), ServeError<W::Error>> {
    while !bytes.is_empty() {
        match io.write(bytes) {
            Ok(0) => return Err(ServeError::WriteZero),
            Ok(n) => bytes = bytes.get(n..).unwrap_or(&[]),
            Err(e) => return Err(ServeError::Io(e)),
        }
    }
    Ok(())
}

/// Serves one connection until EOF, an I/O error, or the application's
/// `Break`.
///
/// Each turn: pending output is written (`tx` is the staging buffer), then
/// `app(agent, now)` runs — it polls requests, completes them, emits
/// events — then output is written again, throttle timers run, and, if the
/// agent wants input, one `read` into `rx` is fed to it (bytes it does not
/// consume yet stay in `rx` for the next turn). `now` is the caller's
/// monotonic clock in milliseconds.
///
/// While the agent applies backpressure (queue full, OOB request pending),
/// the loop does not read and keeps calling `app`, which must eventually
/// complete a request.
pub fn serve<T, N, A>(
    agent: &mut Agent<'_, '_>,
    io: &mut T,
    rx: &mut [u8],
    tx: &mut [u8],
    mut now: N,
    mut app: A,
) -> Result<Served, ServeError<T::Error>>
where
    T: Read + Write,
    N: FnMut() -> Instant,
    A: FnMut(&mut Agent<'_, '_>, Instant) -> ControlFlow<()>,
{
    let mut have = 0usize;
    loop {
        flush(agent, io, tx)?;
        let t = now();
        let flow = app(agent, t);
        flush(agent, io, tx)?;
        if flow.is_break() {
            let _ = io.flush();
            return Ok(Served::Stopped);
        }
        if agent.poll_timeout().is_some_and(|d| d <= t) {
            agent.handle_timeout(t);
        }
        if have > 0 {
            let used = agent.handle_input(t, rx.get(..have).unwrap_or(&[]));
            rx.copy_within(used..have, 0);
            have -= used;
        }
        if !agent.wants_input() || have == rx.len() {
            continue;
        }
        let free = rx.get_mut(have..).unwrap_or(&mut []);
        let n = io.read(free).map_err(ServeError::Io)?;
        if n == 0 {
            flush(agent, io, tx)?;
            agent.handle_eof();
            return Ok(Served::Eof);
        }
        have += n;
        let used = agent.handle_input(t, rx.get(..have).unwrap_or(&[]));
        rx.copy_within(used..have, 0);
        have -= used;
    }
}

fn flush<T: Write>(
    agent: &mut Agent<'_, '_>,
    io: &mut T,
    tx: &mut [u8],
) -> Result<(), ServeError<T::Error>> {
    while let Some(n) = agent.poll_transmit(tx) {
        write_all(io, tx.get(..n).unwrap_or(&[]))?;
    }
    Ok(())
}
