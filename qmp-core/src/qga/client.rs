//! The guest-agent client session, sans-IO: the sync procedure and id
//! routing, on the client core it shares with the QMP client.
//!
//! `qemu-ga` sends no greeting and needs no negotiation, but its channel
//! (virtio-serial) has no connection semantics: output an earlier client did
//! not read, and input an earlier client left half-written, are normal. The
//! documented cure is the *sync* procedure, which [`QgaClient::sync`] runs:
//!
//! 1. send a raw 0xFF byte (the agent's parser drops any half-read input, and
//!    complains with an id-less error);
//! 2. send `guest-sync-delimited` with a random id (the caller supplies it);
//! 3. discard every received byte up to and including the 0xFF the agent puts
//!    in front of that command's reply (valid-looking stale replies too);
//! 4. skip id-less errors and replies that do not `return` our id;
//! 5. complete when `{"return": ID}` arrives (compared as a 64-bit integer,
//!    exactly), or resolve [`Outcome::Timeout`](crate::client::Outcome::Timeout) at the deadline; the caller
//!    then syncs again with a new id.
//!
//! A new sync also resets the client's own framer, so half-read stale input
//! cannot merge with new replies. [`QgaClient::sync_plain`] runs the same
//! procedure with `guest-sync` (no 0xFF either way; replies are skipped until
//! the id comes back).
//!
//! Sessions start [`QgaState::Unsynced`]. Sync on connect and after every
//! timeout: a request that times out makes the session unsynced again.
//! **Commands are refused with [`ExecuteError::NotSynced`] unless the
//! session is synced** (no queueing: the caller syncs, waits for it, then
//! sends). A new sync abandons requests still waiting (they resolve
//! [`Outcome::Cancelled`](crate::client::Outcome::Cancelled): their replies come before the sync reply and are
//! discarded with everything else).
//!
//! Routing while synced: this client sends integer ids 1, 2, 3, … and
//! `qemu-ga` echoes them, so
//!
//! * a reply with the integer id of a waiting command resolves it;
//! * any other reply — an unknown, foreign or non-integer id, or none — is
//!   [`ClientEvent::Unmatched`](crate::client::ClientEvent::Unmatched) (never taken as the result);
//! * an id-less error is the agent complaining about bytes that were not a
//!   request of ours (stale input): [`ClientEvent::OrphanError`](crate::client::ClientEvent::OrphanError);
//! * a reply too large for the buffer resolves the oldest waiting command as
//!   [`Outcome::Oversized`](crate::client::Outcome::Oversized) (qemu-ga answers in order);
//! * any other framing error is a [`ClientEvent::FramingError`](crate::client::ClientEvent::FramingError).
//!
//! ```
//! use qmp_core::client::{ClientEvent, ExecuteOptions, Outcome};
//! use qmp_core::qga::{QgaClient, QgaState};
//! use qmp_core::Instant;
//!
//! let mut buf = [0u8; 512];
//! let mut qga = QgaClient::new(&mut buf[..]);
//! let mut out = [0u8; 128];
//! let now = Instant::ZERO;
//!
//! let sync = qga.sync(now, 1234, Instant::from_millis(5_000)).unwrap();
//! let n = qga.poll_transmit(&mut out).unwrap().unwrap();
//! assert_eq!(&out[..n], b"\xff{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":1234}}");
//!
//! // Stale output, the agent's complaint about our 0xFF, then the delimited reply.
//! let input = b"{\"return\": 1234}\n{\"error\": {\"class\": \"GenericError\", \
//!     \"desc\": \"JSON parse error, stray '\\uFFFD'\"}}\n\xff{\"return\": 1234}\n";
//! let mut rest = &input[..];
//! let mut synced = false;
//! while !rest.is_empty() {
//!     rest = &rest[qga.handle_input(now, rest)..];
//!     while let Some(ev) = qga.poll_event() {
//!         if let ClientEvent::Resolved { token, outcome: Outcome::Return(v) } = ev {
//!             assert_eq!((token, v.as_u64()), (sync, Some(1234)));
//!             synced = true;
//!         }
//!     }
//! }
//! assert!(synced);
//! assert_eq!(qga.state(), QgaState::Synced);
//!
//! let (ping, n) = qga.execute_raw(now, "guest-ping", None, ExecuteOptions::new(), &mut out).unwrap();
//! assert_eq!(&out[..n], b"{\"execute\":\"guest-ping\",\"id\":1}");
//! // Stops right after the message (the `\n` is left for the next call).
//! assert_eq!(qga.handle_input(now, b"{\"return\": {}, \"id\": 1}\n"), 23);
//! assert!(matches!(qga.poll_event(),
//!     Some(ClientEvent::Resolved { token, outcome: Outcome::Return(_) }) if token == ping));
//! ```

use super::DELIMITER;
use crate::client::engine::{self, Admit, Blame, Dialect, Route};
use crate::client::outcome::SYNC_BIT;
use crate::client::pending::{Ended, Kind, Slot, Table};
use crate::client::{ExecuteError, Token};
use crate::encode::{self, EncodeError, Style, Verbatim};
use crate::json::RawJson;
use crate::message::Inbound;
use crate::scan::{Frame, FrameError, Framer, FramerConfig};
use crate::{Instant, InsufficientSize};

/// Where the session is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum QgaState {
    /// No sync yet, or a request or sync timed out: call
    /// [`QgaClient::sync`].
    Unsynced,
    /// A sync is in progress.
    Syncing,
    /// Synced: commands may be sent.
    Synced,
    /// End of stream seen.
    Closed,
}

/// Guest-agent client settings. Defaults ([`QgaConfig::new`]): QEMU's
/// framing rules without the duplicate-key check (a liberal client).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct QgaConfig {
    framer: FramerConfig,
}

impl Default for QgaConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl QgaConfig {
    /// The defaults.
    pub const fn new() -> Self {
        QgaConfig {
            framer: FramerConfig::new().without_duplicate_keys(),
        }
    }

    /// Sets the framer settings (default [`FramerConfig::new`] without the
    /// duplicate-key check).
    #[must_use]
    pub const fn with_framer(mut self, framer: FramerConfig) -> Self {
        self.framer = framer;
        self
    }

    /// The framer settings.
    pub const fn framer(&self) -> FramerConfig {
        self.framer
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Everything is discarded until the 0xFF.
    Delimiter,
    /// Replies are skipped until `{"return": ID}`.
    Reply,
}

/// The sync in progress (its slot is in the table, kind `Sync`).
#[derive(Clone, Copy)]
struct Sync {
    token: u64,
    value: u64,
    delimited: bool,
    phase: Phase,
    /// Its bytes wait in `poll_transmit`.
    queued: bool,
}

engine::client_calls!(
    /// The guest-agent client session: [`QgaClient::new`] gives 4 slots for
    /// commands and the sync, [`QgaClient::with_config`] any other number; the
    /// buffer bounds the largest reply.
    ///
    /// See the [module docs](self) for the sync procedure and routing.
    ///
    /// # Method contract
    ///
    /// The QMP [`Client`](crate::client::Client)'s contract — its groups of
    /// methods and its polling order: events first (**`handle_input` takes no
    /// input while an event waits**), then `poll_transmit`, then
    /// `poll_timeout` — with one more kind of command:
    /// [`sync`](QgaClient::sync) / [`sync_plain`](QgaClient::sync_plain) queue
    /// the sync's bytes for [`poll_transmit`](QgaClient::poll_transmit), and a
    /// sync resolves like a request, with its own token. Commands are refused
    /// until a sync succeeds ([`state`](QgaClient::state) says where the
    /// session is).
    pub struct QgaClient(dialect: Qga, config: QgaConfig, state: QgaState, slots: 4);
);

impl<B: AsRef<[u8]> + AsMut<[u8]>, const N: usize> QgaClient<B, N> {
    // --- getters

    // --- commands

    /// Starts a sync with `guest-sync-delimited`: a 0xFF byte then the
    /// command with `id` (the caller's random number, at most `i64::MAX`)
    /// wait in [`QgaClient::poll_transmit`]. Requests still waiting resolve
    /// [`Outcome::Cancelled`](crate::client::Outcome::Cancelled). The sync resolves with `{"return": id}`, or
    /// [`Outcome::Timeout`](crate::client::Outcome::Timeout) at `deadline` (sync again with a new id). It
    /// takes one of the `N` slots.
    ///
    /// # Errors
    /// [`ExecuteError::SyncInProgress`] (cancel it or wait for its outcome),
    /// [`ExecuteError::IdOutOfRange`], [`ExecuteError::TooManyInFlight`]
    /// (every slot holds an unpolled resolution), [`ExecuteError::Closed`].
    pub fn sync(
        &mut self,
        now: Instant,
        id: u64,
        deadline: Instant,
    ) -> Result<Token, ExecuteError> {
        self.start_sync(now, id, deadline, true)
    }

    /// Like [`QgaClient::sync`] with plain `guest-sync`: no 0xFF is sent or
    /// expected; replies are skipped until `{"return": id}`. It cannot flush
    /// a half-read request in the agent: prefer [`QgaClient::sync`].
    ///
    /// # Errors
    /// As [`QgaClient::sync`].
    pub fn sync_plain(
        &mut self,
        now: Instant,
        id: u64,
        deadline: Instant,
    ) -> Result<Token, ExecuteError> {
        self.start_sync(now, id, deadline, false)
    }

    // --- input

    /// Feeds bytes from the agent; returns how many were consumed.
    ///
    /// Stops right after each message (or framing error) that produced an
    /// event: call [`QgaClient::poll_event`] until `None`, then feed the
    /// rest. While an event waits to be polled it consumes nothing (returns
    /// 0). Deadlines up to `now` are applied first. After
    /// [`QgaClient::handle_eof`] input is discarded (reported consumed).
    pub fn handle_input(&mut self, now: Instant, input: &[u8]) -> usize {
        self.expire(now);
        if self.core.holds() {
            return 0;
        }
        if self.dialect.reset_pending {
            self.core.reset_framer();
            self.dialect.reset_pending = false;
        }
        let mut consumed = 0;
        while let Some(rest) = input.get(consumed..).filter(|r| !r.is_empty()) {
            // While a delimited sync waits for its 0xFF, the raw stream is
            // searched for it: whatever state stale bytes left the framer in
            // (an open string, an oversized message), the 0xFF is seen.
            // Bytes before it are still framed, for diagnostics.
            let mut rest = rest;
            if self.dialect.awaiting_delimiter() {
                if let Some(k) = crate::find::find(DELIMITER, rest) {
                    if k == 0 {
                        consumed += 1;
                        self.dialect.delimiter_seen();
                        self.core.reset_framer();
                        continue;
                    }
                    rest = rest.get(..k).unwrap_or(&[]);
                }
            }
            let qga = &mut self.dialect;
            let n = self
                .core
                .feed(rest, |table, framer| qga.route(table, framer));
            consumed += n;
            if n == 0 || self.core.holds() {
                break;
            }
        }
        consumed
    }

    /// End of stream: every waiting command and sync resolves
    /// [`Outcome::Disconnected`](crate::client::Outcome::Disconnected) and the session is [`QgaState::Closed`].
    /// Idempotent.
    pub fn handle_eof(&mut self) {
        self.core.eof();
        self.dialect.sync = None;
        self.dialect.state = QgaState::Closed;
    }

    // --- output

    /// The bytes the client wants sent (a sync's 0xFF and command), written
    /// into `out`. Call after [`QgaClient::sync`] / [`QgaClient::sync_plain`]
    /// (and whenever convenient: it returns `None` when nothing waits).
    ///
    /// # Errors
    /// [`EncodeError::InsufficientSize`] with the size needed; the bytes stay
    /// queued.
    pub fn poll_transmit(&mut self, out: &mut [u8]) -> Result<Option<usize>, EncodeError> {
        let Some(sync) = self.dialect.sync.as_mut().filter(|s| s.queued) else {
            return Ok(None);
        };
        let n = write_sync(out, sync.value, sync.delimited)?;
        sync.queued = false;
        Ok(Some(n))
    }

    fn start_sync(
        &mut self,
        now: Instant,
        value: u64,
        deadline: Instant,
        delimited: bool,
    ) -> Result<Token, ExecuteError> {
        if self.dialect.state == QgaState::Closed {
            return Err(ExecuteError::Closed);
        }
        if i64::try_from(value).is_err() {
            return Err(ExecuteError::IdOutOfRange);
        }
        self.expire(now);
        // A sync in progress, or one whose outcome is still to be polled.
        if self.dialect.sync.is_some()
            || self.core.table.any(|s| s.kind == Kind::Sync)
            || self.core.held_resolves(Token::is_sync)
        {
            return Err(ExecuteError::SyncInProgress);
        }
        let table = &mut self.core.table;
        // Replies to waiting commands come before the sync reply: discarded.
        while let Some(i) = table.oldest_waiting(|_| true) {
            table.resolve(i, Ended::Cancelled);
        }
        let free = table.free().ok_or(ExecuteError::TooManyInFlight)?;
        let token = SYNC_BIT | self.dialect.next_sync;
        self.dialect.next_sync = (self.dialect.next_sync + 1) & !SYNC_BIT;
        table.insert(free, Slot::new(token, Kind::Sync, Some(deadline), None));
        self.dialect.sync = Some(Sync {
            token,
            value,
            delimited,
            phase: if delimited {
                Phase::Delimiter
            } else {
                Phase::Reply
            },
            queued: true,
        });
        self.dialect.state = QgaState::Syncing;
        self.dialect.reset_pending = true;
        Ok(Token(token))
    }
}

/// The guest-agent-specific state: the sync procedure.
struct Qga {
    state: QgaState,
    next_sync: u64,
    sync: Option<Sync>,
    /// A sync started: the framer is reset before the next input.
    reset_pending: bool,
}

impl Dialect for Qga {
    fn admit(&mut self, to: Admit<'_>) -> Result<(usize, bool), ExecuteError> {
        match self.state {
            QgaState::Synced if to.options.is_oob() => Err(ExecuteError::OobNotNegotiated),
            QgaState::Synced => Ok((0, false)),
            QgaState::Closed => Err(ExecuteError::Closed),
            _ => Err(ExecuteError::NotSynced),
        }
    }

    fn sent(&mut self, _: Token, _: &[u8], _: bool) -> Option<bool> {
        None
    }

    /// A command or sync given up on: a sync that ends, or a command that
    /// times out, leaves the session in need of a new sync.
    fn forget(&mut self, slot: &Slot, ended: Ended) {
        match slot.kind {
            Kind::Sync => {
                self.sync = None;
                if self.state == QgaState::Syncing {
                    self.state = QgaState::Unsynced;
                }
            }
            _ if ended == Ended::Timeout && self.state == QgaState::Synced => {
                self.state = QgaState::Unsynced;
            }
            _ => {}
        }
    }
}

impl Qga {
    fn new(_: QgaConfig) -> Self {
        Qga {
            state: QgaState::Unsynced,
            next_sync: 1,
            sync: None,
            reset_pending: false,
        }
    }

    /// Whether a delimited sync waits for its 0xFF.
    fn awaiting_delimiter(&self) -> bool {
        self.sync
            .is_some_and(|s| s.delimited && s.phase == Phase::Delimiter)
    }

    /// The 0xFF of the waiting sync arrived.
    fn delimiter_seen(&mut self) {
        if let Some(sync) = self.sync.as_mut() {
            sync.phase = Phase::Reply;
        }
    }

    /// Routes the frame the framer just produced; `None`: swallowed.
    fn route<B: AsRef<[u8]> + AsMut<[u8]>, const N: usize>(
        &mut self,
        table: &mut Table<N>,
        framer: &Framer<B>,
    ) -> Option<Route> {
        match framer.last_frame()? {
            Frame::Message(m) => Some(self.route_message(table, m.classify())),
            Frame::Error(e) => self.route_error(table, &e, engine::blame(framer, &e)),
        }
    }

    fn route_message<const N: usize>(&mut self, table: &mut Table<N>, msg: Inbound<'_>) -> Route {
        if let Some(sync) = self.sync {
            if sync.phase == Phase::Delimiter {
                return Route::Discarded;
            }
            if let Inbound::Return { value, .. } = msg {
                if value.as_u64() == Some(sync.value) {
                    self.sync = None;
                    self.state = QgaState::Synced;
                    return match table.find_waiting(sync.token) {
                        Some(i) => {
                            table.take_replied(i);
                            Route::Resolved(Token(sync.token))
                        }
                        None => Route::Discarded,
                    };
                }
            }
            return Route::Discarded;
        }
        match msg {
            Inbound::Return { id: Some(id), .. } | Inbound::Error { id: Some(id), .. } => {
                let waiting = id.as_u64().and_then(|id| table.find_waiting(id));
                match waiting.and_then(|i| table.take_replied(i)) {
                    Some(slot) => Route::Resolved(Token(slot.id)),
                    None => {
                        if let Some(id) = id.as_u64() {
                            table.settle_owed(id);
                        }
                        Route::Unmatched
                    }
                }
            }
            Inbound::Return { id: None, .. } => Route::Unmatched,
            Inbound::Error { id: None, .. } => Route::Orphan,
            _ => Route::Unknown,
        }
    }

    fn route_error<const N: usize>(
        &mut self,
        table: &mut Table<N>,
        e: &FrameError<'_>,
        blame: Blame,
    ) -> Option<Route> {
        if let FrameError::Stray { token } = e {
            if token.last() == Some(&DELIMITER) {
                if let Some(sync) = self.sync.as_mut().filter(|s| s.delimited) {
                    // The sync's delimiter: consumed silently.
                    sync.phase = Phase::Reply;
                    return None;
                }
            }
        }
        if self.sync.is_some() {
            return Some(Route::Framing);
        }
        // A malformed reply ends the command its id names; without an id,
        // the oldest waiting one when it stood where a reply must be
        // (qemu-ga answers in order).
        let waiting = match blame {
            Blame::Id(Some(id)) => table.find_waiting(id),
            Blame::Reply => table.oldest_waiting(|s| s.kind != Kind::Sync),
            Blame::Id(None) | Blame::Nobody => None,
        };
        match waiting.and_then(|i| table.take_replied(i)) {
            Some(slot) => Some(Route::Resolved(Token(slot.id))),
            None => Some(Route::Framing),
        }
    }
}

/// Writes `{"id":N}` into `buf`; returns the bytes.
fn id_object(buf: &mut [u8; 32], mut n: u64) -> &[u8] {
    let mut digits = [0u8; 20];
    let mut len = 0;
    loop {
        if let Some(d) = digits.get_mut(len) {
            *d = b'0' + (n % 10) as u8;
        }
        len += 1;
        n /= 10;
        if n == 0 || len >= digits.len() {
            break;
        }
    }
    let mut at = 0;
    let mut put = |b: u8| {
        if let Some(slot) = buf.get_mut(at) {
            *slot = b;
        }
        at += 1;
    };
    b"{\"id\":".iter().for_each(|&b| put(b));
    digits.iter().take(len).rev().for_each(|&b| put(b));
    put(b'}');
    buf.get(..at).unwrap_or(b"{}")
}

/// Writes a sync request (with the 0xFF in front when `delimited`).
fn write_sync(out: &mut [u8], value: u64, delimited: bool) -> Result<usize, EncodeError> {
    let mut args = [0u8; 32];
    let args = RawJson::from_validated(id_object(&mut args, value));
    let (prefix, name) = if delimited {
        (1, "guest-sync-delimited")
    } else {
        (0, "guest-sync")
    };
    let rest = out.get_mut(prefix..).unwrap_or(&mut []);
    match encode::write_command(
        rest,
        Style::CLIENT,
        false,
        name,
        Some(&Verbatim(args)),
        None,
    ) {
        Ok(n) => {
            if delimited {
                if let Some(first) = out.first_mut() {
                    *first = DELIMITER;
                }
            }
            Ok(n + prefix)
        }
        Err(EncodeError::InsufficientSize(InsufficientSize { required })) => {
            Err(EncodeError::InsufficientSize(InsufficientSize {
                required: required + prefix,
            }))
        }
        Err(e) => Err(e),
    }
}
