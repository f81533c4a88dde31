//! The one loop body every driver runs: [`Pump`] moves bytes between a
//! transport and a [`Session`] (the [`Agent`], the QMP [`Client`](crate::client::Client) or the
//! [`QgaClient`](crate::qga::QgaClient)), applies the session's deadlines, and says what the
//! driver must do next ([`Wants`]).
//!
//! A driver — blocking over `embedded-io`, async, or a std socket loop —
//! owns the transport and the clock; the pump owns the staging buffers and
//! the order of operations. Every turn of a driver is:
//!
//! 1. [`Pump::step`]: timeouts due are handled, bytes already received are
//!    fed to the session as far as it takes them, end of stream is
//!    delivered once everything before it was fed, and the session's output
//!    is staged;
//! 2. by what [`Wants`] says: write [`Pump::transmit`] and report
//!    [`Pump::sent`]; let the application poll its requests or events
//!    ([`Wants::app`]); read into [`Pump::read_buf`] and report
//!    [`Pump::received`] ([`Wants::read`]); or wait until input, the
//!    application, or [`Wants::timeout`].
//!
//! A transport that fails (a read or write error that ends the connection)
//! is reported with [`Pump::abort`]: the next `step` ends the session as
//! end of stream does, without waiting for output that cannot be sent.
//!
//! A driver never needs more: whatever was staged or received stays in the
//! pump across turns, so no byte is lost or fed twice, and a burst that
//! fills the session's output is taken up again as soon as the output was
//! written (the stall the agent runner once had is not expressible here:
//! `step` always feeds held input when the session takes it).
//!
//! ```
//! use qmp_core::agent::{Agent, AgentBuffers, AgentConfig, CommandSpec, Reply};
//! use qmp_core::pump::Pump;
//! use qmp_core::Instant;
//!
//! const COMMANDS: &[CommandSpec<'static>] = &[CommandSpec::new("stop")];
//! let (mut f, mut q, mut o) = ([0u8; 256], [0u8; 512], [0u8; 512]);
//! let cfg = AgentConfig::new((10, 0, 0), "", COMMANDS);
//! let mut agent = Agent::new(cfg, AgentBuffers::new(&mut f, &mut q, &mut o)).unwrap();
//! let (mut rx, mut tx) = ([0u8; 64], [0u8; 64]);
//! let mut pump = Pump::new(&mut rx, &mut tx);
//!
//! let mut input: &[u8] = br#"{"execute":"qmp_capabilities"}{"execute":"stop","id":1}"#;
//! let mut wire = Vec::new();
//! let now = Instant::ZERO;
//! loop {
//!     let wants = pump.step(&mut agent, now);
//!     if wants.transmit {
//!         wire.extend_from_slice(pump.transmit());
//!         let n = pump.transmit().len();
//!         pump.sent(n);
//!     } else if wants.app {
//!         while let Some(req) = agent.poll_request() {
//!             let token = req.token;
//!             let empty = qmp_core::scan::validate(b"{}", Default::default()).unwrap();
//!             agent.complete(token, Reply::Return(&empty)).unwrap();
//!         }
//!     } else if wants.read {
//!         let buf = pump.read_buf();
//!         let n = buf.len().min(input.len());
//!         buf[..n].copy_from_slice(&input[..n]);
//!         input = &input[n..];
//!         pump.received(n); // 0: end of stream
//!     } else {
//!         break; // closed
//!     }
//! }
//! assert!(wire.ends_with(b"{\"return\": {}}\r\n{\"return\": {}, \"id\": 1}\r\n"));
//! ```

use core::marker::PhantomData;

use crate::agent::Agent;
use crate::{Instant, InsufficientSize};

/// What a [`Pump`] drives: the surface the three sessions share.
pub trait Session {
    /// Feeds received bytes; returns how many were taken (fewer than
    /// offered: offer the rest again later).
    fn handle_input(&mut self, now: Instant, input: &[u8]) -> usize;
    /// Whether input would be taken now (the agent's backpressure; a
    /// client's unpolled event).
    fn wants_input(&self) -> bool;
    /// The session's own output, written into `out`; `Ok(None)` when
    /// nothing waits.
    ///
    /// # Errors
    /// `out` cannot hold the next message.
    fn poll_transmit(&mut self, out: &mut [u8]) -> Result<Option<usize>, InsufficientSize>;
    /// When [`Session::handle_timeout`] is due.
    fn poll_timeout(&self) -> Option<Instant>;
    /// The clock reached [`Session::poll_timeout`].
    fn handle_timeout(&mut self, now: Instant);
    /// End of stream.
    fn handle_eof(&mut self);
    /// Whether the application has something to take now: a request for an
    /// agent, an event for a client.
    fn wants_app(&self) -> bool;
    /// Whether end of stream may be delivered now: a client at once (its
    /// waiting requests resolve `Disconnected`); an agent once it has
    /// answered everything it received and its output is out — a peer that
    /// half-closes still gets every reply, as from QEMU.
    fn is_idle(&self) -> bool;
}

/// What the driver must do after a [`Pump::step`]. Several may hold; the
/// order a driver serves them in does not matter for correctness, but
/// writing first keeps output flowing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct Wants {
    /// [`Pump::transmit`] holds bytes to write.
    pub transmit: bool,
    /// The application should poll the session (requests or events).
    pub app: bool,
    /// The session takes input and the pump has room: read into
    /// [`Pump::read_buf`].
    pub read: bool,
    /// Call [`Pump::step`] again at this instant at the latest (a deadline
    /// of the session).
    pub timeout: Option<Instant>,
    /// End of stream was delivered: this connection is over (a client's
    /// last events may still wait for [`Wants::app`]; an agent is ready for
    /// its next peer, on a new connection).
    pub closed: bool,
}

/// The staging buffers and the order of operations of one connection. See
/// the [module docs](self).
///
/// The buffers are lent (`Pump<'b>`, from [`Pump::new`]) or owned by the
/// pump (`Pump<'static, B>` for any `B: AsRef<[u8]> + AsMut<[u8]>`, e.g. a
/// `Vec<u8>`, from [`Pump::with_buffers`]): a driver that keeps its
/// connection in a struct, as a std or async client does, owns them.
#[derive(Debug)]
pub struct Pump<'b, B = &'b mut [u8]> {
    rx: B,
    rx_start: usize,
    rx_end: usize,
    tx: B,
    tx_start: usize,
    tx_end: usize,
    eof: bool,
    eof_delivered: bool,
    aborted: bool,
    lent: PhantomData<&'b mut [u8]>,
}

impl<'b> Pump<'b> {
    /// A pump with a receive buffer (any size: reads are at most this big)
    /// and a transmit buffer (at least the largest message a session writes
    /// in one piece: a client's command, the guest-agent sync; an agent's
    /// output may be split).
    pub fn new(rx: &'b mut [u8], tx: &'b mut [u8]) -> Self {
        Pump::with_buffers(rx, tx)
    }

    /// Lends the receive buffer out (for a read that must outlive the next
    /// [`Pump::step`], as an async driver's uncancelled read does); the
    /// pump holds no input meanwhile. `None` while held input waits, after
    /// end of stream, or while the buffer is already lent. Give it back with
    /// [`Pump::give_back`].
    pub fn lend_rx(&mut self) -> Option<&'b mut [u8]> {
        if self.rx_end > 0 || self.rx.is_empty() || self.eof {
            return None;
        }
        Some(core::mem::take(&mut self.rx))
    }

    /// Returns the lent receive buffer; then report what was read into it
    /// with [`Pump::received`] (if anything).
    pub fn give_back(&mut self, rx: &'b mut [u8]) {
        self.rx = rx;
    }
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> Pump<'_, B> {
    /// A pump over buffers it owns (sized as for [`Pump::new`]).
    pub fn with_buffers(rx: B, tx: B) -> Self {
        Pump {
            rx,
            rx_start: 0,
            rx_end: 0,
            tx,
            tx_start: 0,
            tx_end: 0,
            eof: false,
            eof_delivered: false,
            aborted: false,
            lent: PhantomData,
        }
    }

    /// One turn: timeouts due by `now`, held input fed, end of stream
    /// delivered, output staged. Returns what the driver must do next.
    pub fn step<S: Session + ?Sized>(&mut self, session: &mut S, now: Instant) -> Wants {
        if session.poll_timeout().is_some_and(|t| t <= now) {
            session.handle_timeout(now);
        }
        while self.rx_start < self.rx_end && session.wants_input() {
            let held = self
                .rx
                .as_ref()
                .get(self.rx_start..self.rx_end)
                .unwrap_or(&[]);
            let n = session.handle_input(now, held).min(held.len());
            if n == 0 {
                break;
            }
            self.rx_start += n;
        }
        if self.rx_start == self.rx_end {
            self.rx_start = 0;
            self.rx_end = 0;
        }
        if !self.eof_delivered && !self.aborted {
            self.stage(session);
        }
        if self.eof
            && !self.eof_delivered
            && (self.aborted
                || self.rx_end == 0 && self.tx_start == self.tx_end && session.is_idle())
        {
            self.eof_delivered = true;
            session.handle_eof();
        }
        Wants {
            transmit: self.tx_start < self.tx_end,
            app: session.wants_app(),
            read: !self.eof && self.rx_end == 0 && session.wants_input(),
            timeout: session.poll_timeout(),
            closed: self.eof_delivered,
        }
    }

    /// Stages the session's output behind what waits already, without
    /// feeding input or handling timeouts (for a driver that must write
    /// before it lets the session see more input, e.g. a client about to
    /// `execute`: a reply already received must not be routed before its
    /// request is registered).
    pub fn stage<S: Session + ?Sized>(&mut self, session: &mut S) {
        if self.tx_start == self.tx_end {
            self.tx_start = 0;
            self.tx_end = 0;
        }
        loop {
            let free = self.tx.as_mut().get_mut(self.tx_end..).unwrap_or(&mut []);
            if free.is_empty() {
                return;
            }
            match session.poll_transmit(free) {
                Ok(Some(n)) => self.tx_end += n.min(free.len()),
                Ok(None) => return,
                // Room after the bytes already staged are sent.
                Err(_) if self.tx_start > 0 || self.tx_end > 0 => return,
                // Never fits: nothing can be sent (a configuration error:
                // `tx` is smaller than the session's smallest message).
                Err(_) => return,
            }
        }
    }

    /// The staged bytes to write.
    pub fn transmit(&self) -> &[u8] {
        self.tx
            .as_ref()
            .get(self.tx_start..self.tx_end)
            .unwrap_or(&[])
    }

    /// `n` bytes of [`Pump::transmit`] were written.
    pub fn sent(&mut self, n: usize) {
        self.tx_start = (self.tx_start + n).min(self.tx_end);
    }

    /// Where a command the application sends goes: the free end of the
    /// transmit buffer, behind what is staged (write a client's `execute`
    /// here, then call [`Pump::queued`]).
    pub fn queue_buf(&mut self) -> &mut [u8] {
        if self.tx_start == self.tx_end {
            self.tx_start = 0;
            self.tx_end = 0;
        } else if self.tx_start > 0 {
            // Moves the staged bytes to the front (byte by byte: no panic
            // path, and this only runs when a command is queued behind a
            // partly sent one).
            let (start, end) = (self.tx_start, self.tx_end);
            let tx = self.tx.as_mut();
            for i in 0..end.saturating_sub(start) {
                let b = tx.get(start + i).copied().unwrap_or(0);
                if let Some(d) = tx.get_mut(i) {
                    *d = b;
                }
            }
            self.tx_end = end.saturating_sub(start);
            self.tx_start = 0;
        }
        self.tx.as_mut().get_mut(self.tx_end..).unwrap_or(&mut [])
    }

    /// `n` bytes were written into [`Pump::queue_buf`].
    pub fn queued(&mut self, n: usize) {
        self.tx_end = (self.tx_end + n).min(self.tx.as_ref().len());
    }

    /// The transmit buffer itself, to grow or replace it — for a command
    /// larger than [`Pump::queue_buf`] can ever be, over a growable `B` —
    /// while nothing is staged (`None` otherwise: write
    /// [`Pump::transmit`] first).
    pub fn transmit_storage(&mut self) -> Option<&mut B> {
        (self.tx_start == self.tx_end).then_some(&mut self.tx)
    }

    /// Where to read: the receive buffer (empty while held input waits).
    pub fn read_buf(&mut self) -> &mut [u8] {
        if self.rx_end > 0 {
            return &mut [];
        }
        self.rx.as_mut()
    }

    /// `n` bytes were read into [`Pump::read_buf`]; 0 is end of stream.
    pub fn received(&mut self, n: usize) {
        if n == 0 {
            self.eof = true;
            return;
        }
        if self.rx_end == 0 {
            self.rx_start = 0;
            self.rx_end = n.min(self.rx.as_ref().len());
        }
    }

    /// The transport failed (a read or write error that ends the
    /// connection): staged output and held input are dropped, nothing more
    /// is read, and the next [`Pump::step`] delivers end of stream whatever
    /// the session still had to send.
    pub fn abort(&mut self) {
        let delivered = self.eof_delivered;
        self.reset();
        self.eof_delivered = delivered;
        self.eof = true;
        self.aborted = true;
    }

    /// Bytes received and not yet taken by the session.
    pub fn held_input(&self) -> usize {
        self.rx_end - self.rx_start
    }

    /// Whether end of stream was reported.
    pub fn saw_eof(&self) -> bool {
        self.eof
    }

    /// Forgets everything staged and held, for a new connection.
    pub fn reset(&mut self) {
        self.rx_start = 0;
        self.rx_end = 0;
        self.tx_start = 0;
        self.tx_end = 0;
        self.eof = false;
        self.eof_delivered = false;
        self.aborted = false;
    }
}

impl Session for Agent<'_, '_> {
    fn handle_input(&mut self, now: Instant, input: &[u8]) -> usize {
        Agent::handle_input(self, now, input)
    }
    fn wants_input(&self) -> bool {
        Agent::wants_input(self)
    }
    fn poll_transmit(&mut self, out: &mut [u8]) -> Result<Option<usize>, InsufficientSize> {
        Ok(Agent::poll_transmit(self, out))
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Agent::poll_timeout(self)
    }
    fn handle_timeout(&mut self, now: Instant) {
        Agent::handle_timeout(self, now);
    }
    fn handle_eof(&mut self) {
        Agent::handle_eof(self);
    }
    fn wants_app(&self) -> bool {
        self.has_request()
    }
    fn is_idle(&self) -> bool {
        Agent::is_idle(self)
    }
}

/// A client's own output never fails but for its size.
pub(crate) fn encode_size(e: crate::encode::EncodeError) -> InsufficientSize {
    match e {
        crate::encode::EncodeError::InsufficientSize(s) => s,
        _ => InsufficientSize { required: 0 },
    }
}
