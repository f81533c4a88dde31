//! The monitor agent: the server side of QMP (and of the guest-agent
//! dialect), byte-exact with QEMU 10.
//!
//! Sans-IO: bytes in ([`Agent::handle_input`]), bytes out
//! ([`Agent::poll_transmit`]), requests out to the application
//! ([`Agent::poll_request`]), replies and events in ([`Agent::complete`],
//! [`Agent::emit`]). No allocation: the caller lends the buffers
//! ([`AgentBuffers`]).
//!
//! What it does like QEMU (`monitor/qmp.c`, `qapi/qmp-dispatch.c`):
//!
//! * the greeting on open, capability negotiation (`CommandNotFound` /
//!   `Expecting capabilities negotiation with 'qmp_capabilities'` before it,
//!   `Capability oob not available`, `Capabilities negotiation is already
//!   complete, command ignored` after it); events before negotiation are
//!   dropped, not buffered;
//! * request validation in QEMU's order with its texts, the `id` echoed as
//!   QEMU re-serialises it, JSON errors answered without id;
//! * in-band requests run one at a time, in order (the application may
//!   answer later through the request's [`ReplyToken`]); JSON errors and
//!   invalid requests queued behind a slow command are answered in-band, in
//!   order;
//! * `exec-oob` requests (once `oob` is negotiated, for commands that allow
//!   it) are handed out at once and may overtake; while one is being
//!   handled, input is not read (QEMU runs them in its monitor I/O thread);
//! * when the in-band queue holds 8 requests (1 without OOB, where QEMU
//!   suspends after each request), input is not consumed until one
//!   completes: backpressure, nothing dropped;
//! * events with the caller's timestamp, optionally throttled per name (and
//!   key) with QEMU's rule: the first at once, later ones in the window
//!   replace a pending one, sent when the window ends.
//!
//! The peer gets exactly one reply per request: a reply that can never be
//! sent (larger than the output buffer, or not encodable) is replaced by a
//! short `GenericError`, for the agent's own replies and the application's
//! alike ([`CompleteError`]).
//!
//! ```
//! use qmp_core::agent::{Agent, AgentBuffers, AgentConfig, CommandSpec, Reply};
//! use qmp_core::Instant;
//!
//! const COMMANDS: &[CommandSpec<'static>] = &[CommandSpec::new("query-status")];
//! let (mut f, mut q, mut o) = ([0u8; 512], [0u8; 1024], [0u8; 1024]);
//! let config = AgentConfig::new((10, 0, 2), "", COMMANDS);
//! let mut agent = Agent::new(config, AgentBuffers::new(&mut f, &mut q, &mut o)).unwrap();
//! let mut tx = [0u8; 1024];
//! let n = agent.poll_transmit(&mut tx).unwrap();
//! assert!(tx[..n].starts_with(b"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 2, \"minor\": 0, \"major\": 10}"));
//!
//! let input = br#"{"execute":"qmp_capabilities"}{"execute":"query-status","id":1}"#;
//! assert_eq!(agent.handle_input(Instant::ZERO, input), input.len());
//! let req = agent.poll_request().unwrap();
//! assert!(req.name.eq_str("query-status"));
//! let token = req.token;
//! let status = qmp_core::scan::validate(br#"{"status":"running","running":true}"#, Default::default()).unwrap();
//! agent.complete(token, Reply::Return(&status)).unwrap();
//! let n = agent.poll_transmit(&mut tx).unwrap();
//! assert_eq!(
//!     &tx[..n],
//!     &b"{\"return\": {}}\r\n{\"return\": {\"status\": \"running\", \"running\": true}, \"id\": 1}\r\n"[..]
//! );
//! ```

mod config;
mod errors;
mod event;
mod output;
mod queue;
pub(crate) mod replies;
mod throttle;

pub use config::{
    AgentBuffers, AgentConfig, CommandSpec, Protocol, Throttle, QUEUE_LEN_MAX, THROTTLE_SLOTS,
};
pub use errors::{CompleteError, EmitError, Emitted, SetupError};
pub use event::EventOut;

use crate::encode::{self, EncodeError, Style, WriteJson};
use crate::json::{JsonStr, RawJson};
use crate::message::{Exec, Request};
use crate::scan::{Frame, Framer, Message};
use crate::schema::decl::TypeDecl;
#[cfg(feature = "introspection")]
use crate::schema::introspect::SchemaList;
use crate::schema::model::DeclModel;
use crate::schema::{check_arguments, CheckError};
use crate::{Instant, InsufficientSize};
use core::fmt;
use output::{Output, WriteFail};
use queue::{EntryKind, Queue};
use replies::id_ref;
use throttle::{Throttler, Window};

/// The handle the application answers a request with ([`Agent::complete`]).
/// Not `Copy`: a request is answered once.
#[derive(Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[must_use = "a request handed out must be answered with Agent::complete"]
pub struct ReplyToken(u32);

impl ReplyToken {
    /// A number naming the request within the agent's lifetime (for logs;
    /// a token cannot be made from it).
    pub const fn id(&self) -> u32 {
        self.0
    }
}

/// A request for the application to handle.
#[derive(Debug)]
#[non_exhaustive]
pub struct Incoming<'r> {
    /// Answer with [`Agent::complete`] and this token.
    pub token: ReplyToken,
    /// `execute` or `exec-oob`.
    pub exec: Exec,
    /// The command name (one of the registered ones).
    pub name: JsonStr<'r>,
    /// The arguments (`None` when absent, which QEMU treats as `{}`).
    pub arguments: Option<RawJson<'r>>,
    /// The request id, if any (echoed by the agent; for information).
    pub id: Option<RawJson<'r>>,
}

/// The application's answer to a request.
#[non_exhaustive]
pub enum Reply<'v> {
    /// Success: `{"return": value}`. A [`RawJson`] value is re-serialised
    /// the way QEMU would; wrap `Serialize` values in [`encode::Ser`].
    Return(&'v dyn WriteJson),
    /// Failure: `{"error": {"class": class, "desc": desc}}`.
    Error {
        /// The error class, e.g. `"GenericError"`.
        class: &'v str,
        /// The description.
        desc: &'v str,
    },
    /// No reply at all (QGA's `success-response: false`).
    NoResponse,
}

/// Why the agent answers a request itself with an error.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fallback {
    /// The reply can never fit the output buffer.
    TooLarge,
    /// The reply could not be encoded.
    Unencodable,
}

impl Fallback {
    fn desc(self) -> &'static [u8] {
        match self {
            Fallback::TooLarge => b"reply too large for the output buffer",
            Fallback::Unencodable => b"reply could not be encoded",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Head {
    /// Nothing running in-band.
    Idle,
    /// The queue head is a request handed (or about to be handed) to the
    /// application.
    Running {
        token: u32,
        handed: bool,
        /// `None` (never, in practice): parse the entry again.
        req: Option<Parsed>,
    },
    /// The application's reply to the queue head can never be sent: the
    /// agent's error reply waits for room in the output.
    Fallback { req: Option<Parsed>, why: Fallback },
}

/// A byte range of a queue entry's body.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    /// Where `part` (a subslice of `body`) lies in `body`.
    fn of(body: &[u8], part: &[u8]) -> Option<Span> {
        let start = (part.as_ptr() as usize).checked_sub(body.as_ptr() as usize)?;
        let end = start.checked_add(part.len())?;
        if end > body.len() {
            return None;
        }
        Some(Span {
            start: u32::try_from(start).ok()?,
            end: u32::try_from(end).ok()?,
        })
    }

    fn get(self, body: &[u8]) -> Option<&[u8]> {
        body.get(self.start as usize..self.end as usize)
    }
}

/// The running in-band request as parsed when it was dispatched, so that it
/// is not parsed again when handed out and answered. (A request that gets
/// this far has distinct members, at most `execute`, `arguments` and `id`:
/// anything else is refused, and the framer catches duplicate keys.)
#[derive(Clone, Copy, PartialEq, Eq)]
struct Parsed {
    exec: Exec,
    /// The name's body and quote.
    name: Span,
    quote: u8,
    arguments: Option<Span>,
    id: Option<Span>,
    /// The command's `success-response`.
    success_response: bool,
}

impl Parsed {
    fn of(body: &[u8], req: &Request<'_>, success_response: bool) -> Option<Parsed> {
        let span = |v: Option<RawJson<'_>>| match v {
            Some(v) => Span::of(body, v.as_bytes()).map(Some),
            None => Some(None),
        };
        Some(Parsed {
            exec: req.exec,
            name: Span::of(body, req.name.raw())?,
            quote: req.name.quote(),
            arguments: span(req.arguments)?,
            id: span(req.id)?,
            success_response,
        })
    }

    fn id<'b>(&self, body: &'b [u8]) -> Option<RawJson<'b>> {
        self.id
            .and_then(|s| s.get(body))
            .map(RawJson::from_validated)
    }

    fn incoming<'b>(&self, body: &'b [u8], token: u32) -> Option<Incoming<'b>> {
        Some(Incoming {
            token: ReplyToken(token),
            exec: self.exec,
            name: JsonStr::from_validated(self.name.get(body)?, self.quote),
            arguments: match self.arguments {
                Some(s) => Some(RawJson::from_validated(s.get(body)?)),
                None => None,
            },
            id: self.id(body),
        })
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Oob {
    None,
    /// An OOB request in the framer buffer, handed or not yet.
    Pending {
        token: u32,
        handed: bool,
    },
    /// An OOB request in the framer buffer that the agent answers itself
    /// (an error), waiting for room in the output.
    Answer,
    /// An OOB request whose application reply can never be sent: the
    /// agent's error reply waits for room.
    Fallback(Fallback),
}

/// Configuration, output and negotiation state (split from the buffers so
/// replies can be written while a queued request is borrowed).
struct Core<'a, 'b> {
    cfg: AgentConfig<'a>,
    out: Output<'b>,
    negotiated: bool,
    oob: bool,
    /// The newest queue entry is the message the framer still holds (with
    /// its member spans): dispatching it as the queue head needs no
    /// re-scan of its members. (Here, not in `Agent`: room in padding.)
    fresh: bool,
}

/// A monitor agent session (QMP, or the guest-agent dialect).
///
/// # Method contract
///
/// The agent never reads, writes, sleeps or asks for the time; the caller
/// moves bytes and passes its monotonic clock ([`Instant`]).
///
/// * **Getters** (no effect): [`is_negotiated`](Agent::is_negotiated),
///   [`oob_enabled`](Agent::oob_enabled), [`queued`](Agent::queued),
///   [`wants_input`](Agent::wants_input),
///   [`pending_output`](Agent::pending_output),
///   [`has_request`](Agent::has_request), [`is_idle`](Agent::is_idle).
/// * **Input**: [`handle_input`](Agent::handle_input) (bytes from the
///   peer), [`handle_timeout`](Agent::handle_timeout) (the clock reached
///   [`poll_timeout`](Agent::poll_timeout)),
///   [`handle_eof`](Agent::handle_eof) (the peer is gone: the session is
///   reset for the next one).
/// * **From the application**: [`complete`](Agent::complete) (answer a
///   request), [`emit`](Agent::emit) (an event).
/// * **Output**: [`poll_request`](Agent::poll_request) (requests for the
///   application), [`poll_transmit`](Agent::poll_transmit) (bytes for the
///   peer), [`poll_timeout`](Agent::poll_timeout) (when a throttle window
///   ends).
///
/// Polling order, after [`Agent::new`] and after every other call:
/// 1. [`poll_request`](Agent::poll_request) until `None`, answering each
///    request now or later with [`complete`](Agent::complete) — until the
///    in-band request handed out is answered, no later in-band request is
///    handed out, and once the queue is full input is not consumed;
/// 2. [`poll_transmit`](Agent::poll_transmit) until `None`, sending the
///    bytes — **output room lets queued replies go out and input be taken
///    again**, so after transmitting, offer held input again
///    ([`wants_input`](Agent::wants_input) says whether it would be taken)
///    and poll requests again;
/// 3. [`poll_timeout`](Agent::poll_timeout): call
///    [`handle_timeout`](Agent::handle_timeout) when the clock reaches it;
///    ask again after every [`emit`](Agent::emit) and `handle_timeout`.
///
/// [`handle_input`](Agent::handle_input) consumes fewer bytes than offered
/// when the agent applies backpressure: keep the rest and offer it again
/// after completing a request or transmitting.
pub struct Agent<'a, 'b> {
    core: Core<'a, 'b>,
    framer: Framer<&'b mut [u8]>,
    queue: Queue<'b>,
    throttle: Throttler<'b>,
    head: Head,
    oob_req: Oob,
    next_token: u32,
}

impl<'a, 'b> Agent<'a, 'b> {
    /// Opens a session: the greeting (QMP) is queued for transmission.
    ///
    /// # Errors
    /// A buffer too small ([`SetupError`]).
    pub fn new(cfg: AgentConfig<'a>, bufs: AgentBuffers<'b>) -> Result<Self, SetupError> {
        if bufs.framer.is_empty() {
            return Err(SetupError::Framer(InsufficientSize { required: 1 }));
        }
        let required = AgentBuffers::queue_required(bufs.framer.len());
        if bufs.queue.len() < required {
            return Err(SetupError::Queue(InsufficientSize { required }));
        }
        let qga = cfg.protocol.is_qga();
        let mut agent = Agent {
            core: Core {
                cfg,
                out: Output::new(bufs.out),
                negotiated: qga,
                oob: false,
                fresh: false,
            },
            framer: Framer::with_config(bufs.framer, cfg.framer),
            queue: Queue::new(bufs.queue),
            throttle: Throttler::new(bufs.throttle),
            head: Head::Idle,
            oob_req: Oob::None,
            next_token: 1,
        };
        agent.core.greet().map_err(SetupError::Output)?;
        Ok(agent)
    }

    // --- getters

    /// Whether `qmp_capabilities` has succeeded (always true for QGA).
    pub fn is_negotiated(&self) -> bool {
        self.core.negotiated
    }

    /// Whether the `oob` capability is enabled.
    pub fn oob_enabled(&self) -> bool {
        self.core.oob
    }

    /// How many in-band messages are queued, the running one included.
    pub fn queued(&self) -> usize {
        self.queue.count
    }

    /// Whether input would be consumed now.
    pub fn wants_input(&self) -> bool {
        matches!(self.oob_req, Oob::None)
            && self.queue.count < self.queue_limit()
            && self.queue.free() >= AgentBuffers::queue_required(self.framer.capacity())
    }

    /// Bytes waiting for [`Agent::poll_transmit`].
    pub fn pending_output(&self) -> usize {
        self.core.out.pending()
    }

    /// Whether the agent has nothing to do for its peer: nothing queued or
    /// running, no OOB request, no output waiting.
    pub fn is_idle(&self) -> bool {
        self.queue.count == 0 && self.oob_req == Oob::None && self.core.out.pending() == 0
    }

    /// Whether [`Agent::poll_request`] would hand out a request now.
    pub fn has_request(&self) -> bool {
        matches!(self.oob_req, Oob::Pending { handed: false, .. })
            || matches!(self.head, Head::Running { handed: false, .. })
    }

    fn queue_limit(&self) -> usize {
        if self.core.oob {
            self.core.cfg.max_queue.max(1)
        } else {
            1
        }
    }

    // --- input

    /// Feeds input bytes; returns how many were consumed. Fewer than offered
    /// means backpressure: offer the rest again after completing a request
    /// or transmitting. Call [`Agent::poll_request`] and
    /// [`Agent::poll_transmit`] after each call.
    pub fn handle_input(&mut self, _now: Instant, input: &[u8]) -> usize {
        let mut used = 0;
        // Pumped once here and after each frame: a feed that ends no
        // message changes nothing the pump looks at.
        self.pump();
        loop {
            if !self.wants_input() {
                break;
            }
            let Some(rest) = input.get(used..).filter(|r| !r.is_empty()) else {
                break;
            };
            self.core.fresh = false;
            let fed = self.framer.feed(rest);
            used += fed.consumed;
            let token = self.next_token;
            let oob = self.core.oob;
            let mut oob_request = false;
            match fed.frame {
                None => continue,
                Some(Frame::Message(m)) => {
                    // QEMU's qmp_is_oob(): exec-oob present, execute absent.
                    if oob && m.get("exec-oob").is_some() && m.get("execute").is_none() {
                        oob_request = true;
                    } else {
                        self.core.fresh =
                            self.queue.push(EntryKind::Message, token, &[m.as_bytes()]);
                        self.next_token = self.next_token.wrapping_add(1);
                    }
                }
                Some(Frame::Error(e)) => {
                    self.queue
                        .push(EntryKind::JsonError, token, &e.desc_pieces());
                    self.next_token = self.next_token.wrapping_add(1);
                }
            }
            if oob_request {
                self.next_token = self.next_token.wrapping_add(1);
                self.dispatch_oob(token);
            }
            self.pump();
        }
        used
    }

    /// The peer is gone: the session is reset for the next peer, as QEMU's
    /// monitor does on `CLOSED` then `OPENED` — queued requests and unsent
    /// output are dropped (their tokens become unknown), the framer and
    /// throttle windows are cleared, negotiation starts over, and the
    /// greeting (QMP) is queued for [`Agent::poll_transmit`].
    pub fn handle_eof(&mut self) {
        self.queue.clear();
        self.core.fresh = false;
        self.framer.reset();
        self.head = Head::Idle;
        self.oob_req = Oob::None;
        self.throttle.clear();
        self.core.out.clear();
        self.core.negotiated = self.core.cfg.protocol.is_qga();
        self.core.oob = false;
        // It fitted when the agent was created, and the output is empty.
        let _ = self.core.greet();
    }

    /// Ends the throttle windows due by `now`: their pending events are
    /// queued for transmission (and open a new window).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.throttle
            .due(now, self.core.cfg.throttle, &mut self.core.out);
    }

    // --- from the application

    /// Answers a request. In-band replies go out in request order; an OOB
    /// reply goes out at once.
    ///
    /// # Errors
    /// [`CompleteError::OutputFull`] gives the token back: the request is
    /// still pending (transmit, then complete again). Every other error
    /// means the request is answered: when the reply can never be sent, the
    /// agent sends an error reply in its place.
    pub fn complete(&mut self, token: ReplyToken, reply: Reply<'_>) -> Result<(), CompleteError> {
        let style = self.core.cfg.style;
        // (By reference: `Head` is copied with a `memcpy` call on a
        // Cortex-M.)
        let (body, oob, parsed) = match (&self.oob_req, &self.head) {
            (
                Oob::Pending {
                    token: t,
                    handed: true,
                },
                _,
            ) if *t == token.0 => (self.framer.last_message(), true, None),
            (
                _,
                Head::Running {
                    token: t,
                    handed: true,
                    req,
                },
            ) if *t == token.0 => (
                self.queue.front().map(|(_, _, b)| b).unwrap_or(&[]),
                false,
                req.as_ref(),
            ),
            _ => return Err(CompleteError::UnknownToken),
        };
        let (id, success_response) = match parsed {
            Some(p) => (p.id(body), p.success_response),
            None => {
                let msg = Message::from_validated(body);
                let success_response = msg
                    .get("execute")
                    .or_else(|| msg.get("exec-oob"))
                    .and_then(|n| n.as_json_str())
                    .and_then(|n| self.core.cfg.commands.iter().find(|c| n.eq_str(c.name())))
                    .is_none_or(|c| c.success_response());
                (msg.get("id"), success_response)
            }
        };
        let idr = id_ref(&id);
        let result = match reply {
            Reply::Return(_) if !success_response => Ok(0),
            Reply::NoResponse => Ok(0),
            Reply::Return(v) => self
                .core
                .out
                .write(|o| encode::write_return(o, style, v, idr)),
            Reply::Error { class, desc } => self.core.out.write(|o| {
                encode::write_error(o, style, idr, class.as_bytes(), &[desc.as_bytes()])
            }),
        };
        let (why, err) = match result {
            Ok(_) => {
                self.answered(oob);
                return Ok(());
            }
            Err(WriteFail::Full(required)) => {
                return Err(CompleteError::OutputFull { token, required })
            }
            Err(WriteFail::TooLarge(required)) => (
                Fallback::TooLarge,
                CompleteError::InsufficientSize(InsufficientSize { required }),
            ),
            Err(WriteFail::Encode(e)) => (Fallback::Unencodable, CompleteError::Encode(e)),
        };
        // The reply can never be sent: the agent answers in its place.
        if oob {
            self.oob_req = Oob::Fallback(why);
            self.answer_oob();
        } else {
            if let Head::Running { req, .. } = self.head {
                self.head = Head::Fallback { req, why };
            }
            self.pump();
        }
        Err(err)
    }

    /// Emits an event to this session (dropped before negotiation, as QEMU
    /// does). `now` drives throttling.
    ///
    /// # Errors
    /// See [`EmitError`]; the event was not sent.
    pub fn emit(&mut self, now: Instant, event: &EventOut<'_>) -> Result<Emitted, EmitError> {
        if !self.core.negotiated {
            return Ok(Emitted::NotNegotiated);
        }
        let style = self.core.cfg.style;
        let write = |o: &mut [u8]| {
            encode::write_event(
                o,
                style,
                event.name,
                event.data,
                event.seconds,
                event.microseconds,
            )
        };
        let rules = self.core.cfg.throttle;
        let (rule, key_hash) = match self.throttle.window(rules, event.name, event.throttle_key) {
            Window::Free => {
                return self.core.write_event(write).map(|()| Emitted::Sent);
            }
            Window::Within(i) => {
                // In a window: replace the pending event.
                return match self.throttle.replace(i, write) {
                    Ok(()) => Ok(Emitted::Throttled),
                    Err(EncodeError::InsufficientSize(s)) => Err(EmitError::InsufficientSize(s)),
                    Err(e) => Err(EmitError::Encode(e)),
                };
            }
            Window::First { rule, key_hash } => (rule, key_hash),
        };
        // First in its window: send now and open the window.
        if !self.throttle.has_free() {
            return Err(EmitError::ThrottleSlotsBusy);
        }
        self.core.write_event(write)?;
        let window = rules.get(usize::from(rule)).map_or(0, |t| t.window_ms());
        self.throttle
            .open(rule, key_hash, now.saturating_add_millis(window));
        Ok(Emitted::Sent)
    }

    // --- output

    /// The next request for the application, if one is waiting: an OOB
    /// request first, then the in-band one. Each request is returned once;
    /// answer it with [`Agent::complete`] (now or later).
    pub fn poll_request(&mut self) -> Option<Incoming<'_>> {
        if let Oob::Pending {
            token,
            handed: false,
        } = self.oob_req
        {
            self.oob_req = Oob::Pending {
                token,
                handed: true,
            };
            return incoming(self.framer.last_message(), token);
        }
        // (In place: `Head` is copied with a `memcpy` call on a Cortex-M.)
        if let Head::Running {
            token,
            handed: handed @ false,
            req,
        } = &mut self.head
        {
            *handed = true;
            let (_, _, body) = self.queue.front()?;
            return match req {
                Some(req) => req.incoming(body, *token),
                None => incoming(body, *token),
            };
        }
        None
    }

    /// Copies pending output into `buf`; returns how many bytes, or `None`
    /// when there is nothing to send. Call after every other method, until
    /// it returns `None`.
    pub fn poll_transmit(&mut self, buf: &mut [u8]) -> Option<usize> {
        let n = self.core.out.take(buf)?;
        // Output room may let queued replies go out.
        self.pump();
        Some(n)
    }

    /// When [`Agent::handle_timeout`] must be called next (a throttle window
    /// ends), if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.throttle.next_deadline()
    }

    // --- internals

    /// The request answered by the application's reply just written.
    fn answered(&mut self, oob: bool) {
        if oob {
            self.oob_req = Oob::None;
        } else {
            self.head = Head::Idle;
            self.queue.pop();
            self.pump();
        }
    }

    /// Validates and dispatches the OOB request now in the framer buffer.
    fn dispatch_oob(&mut self, token: u32) {
        let msg = Message::from_validated(self.framer.last_message());
        let valid = msg.request(true).ok().map(|req| self.core.lookup(req.name));
        self.oob_req = match valid {
            Some(Lookup::Found(spec)) if !spec.allows_oob() => Oob::Answer,
            Some(Lookup::Found(spec))
                if msg
                    .request(true)
                    .is_ok_and(|req| check_declared(spec, req.arguments).is_err()) =>
            {
                Oob::Answer
            }
            Some(Lookup::Found(_) | Lookup::Builtin(_)) => Oob::Pending {
                token,
                handed: false,
            },
            Some(Lookup::NotFound) | None => Oob::Answer,
        };
        self.answer_oob();
    }

    /// Writes the agent's own reply to the OOB request in the framer buffer
    /// ([`Oob::Answer`], [`Oob::Fallback`]). While the output has no room
    /// the request stays there (input is not read) and this is retried by
    /// `pump`.
    fn answer_oob(&mut self) {
        let style = self.core.cfg.style;
        let msg = Message::from_validated(self.framer.last_message());
        let result = match self.oob_req {
            Oob::Answer => match msg.request(true) {
                Err(bad) => self
                    .core
                    .out
                    .write(|o| replies::bad_request(o, style, &bad)),
                Ok(req) => match self.core.lookup(req.name) {
                    Lookup::NotFound => self
                        .core
                        .out
                        .write(|o| replies::not_found(o, style, req.id, req.name)),
                    Lookup::Found(spec) if spec.allows_oob() => {
                        match check_declared(spec, req.arguments) {
                            Err(e) => self
                                .core
                                .out
                                .write(|o| replies::check_failed(o, style, id_ref(&req.id), &e)),
                            // Not reached: an OOB request answered here
                            // failed one of the checks above.
                            Ok(()) => self
                                .core
                                .out
                                .write(|o| replies::no_oob(o, style, req.id, req.name)),
                        }
                    }
                    _ => self
                        .core
                        .out
                        .write(|o| replies::no_oob(o, style, req.id, req.name)),
                },
            },
            Oob::Fallback(why) => {
                let id = msg.get("id");
                self.core
                    .out
                    .write(|o| replies::generic(o, style, id_ref(&id), &[why.desc()]))
            }
            _ => return,
        };
        if self.core.settle(result, style) {
            self.oob_req = Oob::None;
        }
    }

    /// Answers queued in-band entries until one needs the application or the
    /// output is full.
    // (What it would find to do asked where it is called: it is called
    // several times a request, mostly with nothing to do.)
    #[inline(always)]
    fn pump(&mut self) {
        if matches!(self.oob_req, Oob::Answer | Oob::Fallback(_))
            || (self.queue.count > 0 && !matches!(self.head, Head::Running { .. }))
        {
            self.pump_queue();
        }
    }

    /// [`Agent::pump`]'s work.
    #[inline(never)]
    fn pump_queue(&mut self) {
        // Asked on every pump: only when the agent owes the OOB answer.
        if matches!(self.oob_req, Oob::Answer | Oob::Fallback(_)) {
            self.answer_oob();
        }
        loop {
            // (Asked first: this runs several times a request, mostly with
            // the head running.)
            if matches!(self.head, Head::Running { .. }) || self.queue.count == 0 {
                return;
            }
            let Some((kind, token, body)) = self.queue.front() else {
                return;
            };
            let style = self.core.cfg.style;
            let result = match (&self.head, kind) {
                (Head::Running { .. }, _) => return,
                (Head::Fallback { req, why }, _) => {
                    let why = *why;
                    let id = match req {
                        Some(p) => p.id(body),
                        None => Message::from_validated(body).get("id"),
                    };
                    self.core
                        .out
                        .write(|o| replies::generic(o, style, id_ref(&id), &[why.desc()]))
                }
                (Head::Idle, EntryKind::JsonError) => self
                    .core
                    .out
                    .write(|o| encode::write_error(o, style, None, b"GenericError", &[body])),
                (Head::Idle, EntryKind::Message) => {
                    // The framer's own view (member spans) when it still
                    // holds this message: the same bytes, found without a
                    // re-scan; offsets into it are offsets into `body`.
                    let msg = match self.framer.last_frame() {
                        Some(Frame::Message(m)) if self.core.fresh && self.queue.count == 1 => m,
                        _ => Message::from_validated(body),
                    };
                    // (By reference: moving the request out of the result is
                    // a `memcpy` call on a Cortex-M.)
                    match &msg.request(self.core.oob) {
                        Err(bad) => self.core.out.write(|o| replies::bad_request(o, style, bad)),
                        Ok(req) => match self.core.dispatch(req) {
                            Dispatched::Answered(r) => r,
                            Dispatched::ToApp { success_response } => {
                                self.head = Head::Running {
                                    token,
                                    handed: false,
                                    req: Parsed::of(msg.as_bytes(), req, success_response),
                                };
                                return;
                            }
                        },
                    }
                }
            };
            if !self.core.settle(result, style) {
                return;
            }
            self.head = Head::Idle;
            self.queue.pop();
        }
    }
}

impl<'a> Core<'a, '_> {
    /// Queues the greeting (QMP; nothing for the guest agent).
    fn greet(&mut self) -> Result<(), InsufficientSize> {
        if self.cfg.protocol.is_qga() {
            return Ok(());
        }
        let caps: &[&str] = if self.cfg.offer_oob { &["oob"] } else { &[] };
        let (major, minor, micro) = self.cfg.version;
        let (style, package) = (self.cfg.style, self.cfg.package);
        match self
            .out
            .write(|o| encode::write_greeting(o, style, major, minor, micro, package, caps))
        {
            Ok(_) => Ok(()),
            Err(WriteFail::Full(required) | WriteFail::TooLarge(required)) => {
                Err(InsufficientSize { required })
            }
            Err(WriteFail::Encode(_)) => Err(InsufficientSize { required: 0 }),
        }
    }

    /// Writes an event now.
    fn write_event(
        &mut self,
        write: impl FnOnce(&mut [u8]) -> Result<usize, EncodeError>,
    ) -> Result<(), EmitError> {
        match self.out.write(write) {
            Ok(_) => Ok(()),
            Err(WriteFail::Full(required)) => Err(EmitError::OutputFull { required }),
            Err(WriteFail::TooLarge(required)) => {
                Err(EmitError::InsufficientSize(InsufficientSize { required }))
            }
            Err(WriteFail::Encode(e)) => Err(EmitError::Encode(e)),
        }
    }

    /// After writing one of the agent's own replies: whether it is done
    /// (`false`: no room now, retry later). A reply that can never fit is
    /// replaced by a short error, itself retried while there is no room.
    fn settle(&mut self, result: Result<usize, WriteFail>, style: Style) -> bool {
        match result {
            Ok(_) => true,
            Err(WriteFail::Full(_)) => false,
            Err(WriteFail::TooLarge(_) | WriteFail::Encode(_)) => !matches!(
                self.out
                    .write(|o| { replies::generic(o, style, None, &[Fallback::TooLarge.desc()]) }),
                Err(WriteFail::Full(_))
            ),
        }
    }

    fn lookup(&self, name: JsonStr<'_>) -> Lookup<'a> {
        let qga = self.cfg.protocol.is_qga();
        // (`eq_str` rejects a shorter name at once and another at its first
        // differing byte; no search for escapes.)
        let is = |s: &str| name.eq_str(s);
        if !qga && is("qmp_capabilities") {
            return Lookup::Builtin(Builtin::Capabilities);
        }
        match self.cfg.commands.iter().find(|c| is(c.name())) {
            None => Lookup::NotFound,
            Some(spec) if spec.name() == "query-commands" => {
                Lookup::Builtin(Builtin::QueryCommands)
            }
            #[cfg(feature = "introspection")]
            Some(spec) if spec.name() == "query-qmp-schema" => {
                Lookup::Builtin(Builtin::QueryQmpSchema)
            }
            #[cfg(feature = "qga")]
            Some(spec) if qga && spec.name() == "guest-sync" => {
                Lookup::Builtin(Builtin::GuestSync { delimited: false })
            }
            #[cfg(feature = "qga")]
            Some(spec) if qga && spec.name() == "guest-sync-delimited" => {
                Lookup::Builtin(Builtin::GuestSync { delimited: true })
            }
            Some(spec) => Lookup::Found(spec),
        }
    }

    /// The pipeline after structural validation, for an in-band request.
    fn dispatch(&mut self, req: &Request<'_>) -> Dispatched {
        let style = self.cfg.style;
        let lookup = self.lookup(req.name);
        if !self.negotiated {
            // Negotiation mode: only qmp_capabilities exists, and every
            // CommandNotFound text is rewritten.
            if lookup != Lookup::Builtin(Builtin::Capabilities) {
                return Dispatched::Answered(
                    self.out
                        .write(|o| replies::expecting_negotiation(o, style, req.id)),
                );
            }
            let offer = self.cfg.offer_oob;
            let mut enabled = None;
            let r = self.out.write(|o| {
                let (r, ok) = replies::negotiate(o, style, req, offer);
                enabled = ok;
                r
            });
            if let (Ok(_), Some(oob)) = (&r, enabled) {
                self.negotiated = true;
                self.oob = oob;
            }
            return Dispatched::Answered(r);
        }
        Dispatched::Answered(match lookup {
            Lookup::NotFound => self
                .out
                .write(|o| replies::not_found(o, style, req.id, req.name)),
            Lookup::Builtin(Builtin::Capabilities) => self
                .out
                .write(|o| replies::already_negotiated(o, style, req.id)),
            Lookup::Builtin(Builtin::QueryCommands) => {
                let list = replies::CommandList {
                    commands: self.cfg.commands,
                    qmp: !self.cfg.protocol.is_qga(),
                };
                self.out
                    .write(|o| encode::write_return(o, style, &list, id_ref(&req.id)))
            }
            #[cfg(feature = "introspection")]
            Lookup::Builtin(Builtin::QueryQmpSchema) => {
                let list = SchemaList {
                    commands: self.cfg.commands,
                    events: self.cfg.events,
                    qmp: !self.cfg.protocol.is_qga(),
                };
                self.out
                    .write(|o| encode::write_return(o, style, &list, id_ref(&req.id)))
            }
            #[cfg(feature = "qga")]
            Lookup::Builtin(Builtin::GuestSync { delimited }) => self
                .out
                .write(|o| crate::qga::agent::guest_sync(o, style, req, delimited)),
            Lookup::Found(spec) => match check_declared(spec, req.arguments) {
                Ok(()) => {
                    return Dispatched::ToApp {
                        success_response: spec.success_response(),
                    }
                }
                Err(e) => self
                    .out
                    .write(|o| replies::check_failed(o, style, id_ref(&req.id), &e)),
            },
        })
    }
}

/// Checks the arguments of a command that declares them (QEMU's input
/// visitor, before the application sees the request).
fn check_declared<'r, 'a>(
    spec: &CommandSpec<'a>,
    arguments: Option<RawJson<'r>>,
) -> Result<(), CheckError<'r, 'a>> {
    let Some(decl) = spec.arguments() else {
        return Ok(());
    };
    // No arguments (`{}`) for a command that declares none: nothing to
    // check (the common case, and a walk of the schema model otherwise).
    if arguments.is_none()
        && decl.members().is_empty()
        && decl.tag().is_none()
        && decl.variants().is_empty()
    {
        return Ok(());
    }
    check_arguments(&DeclModel, TypeDecl::Object(decl), arguments)
}

fn incoming(body: &[u8], token: u32) -> Option<Incoming<'_>> {
    let msg = Message::from_validated(body);
    let req = msg.request(true).ok()?;
    Some(Incoming {
        token: ReplyToken(token),
        exec: req.exec,
        name: req.name,
        arguments: req.arguments,
        id: req.id,
    })
}

/// What [`Core::dispatch`] did with an in-band request.
enum Dispatched {
    /// The agent answered it (or failed to write the answer).
    Answered(Result<usize, WriteFail>),
    /// It is for the application.
    ToApp { success_response: bool },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Builtin {
    Capabilities,
    QueryCommands,
    #[cfg(feature = "introspection")]
    QueryQmpSchema,
    #[cfg(feature = "qga")]
    GuestSync {
        delimited: bool,
    },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Lookup<'a> {
    NotFound,
    Builtin(Builtin),
    /// (By reference: a `CommandSpec` is copied with a `memcpy` call on a
    /// Cortex-M.)
    Found(&'a CommandSpec<'a>),
}

impl fmt::Debug for Agent<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Agent")
            .field("negotiated", &self.core.negotiated)
            .field("oob", &self.core.oob)
            .field("queued", &self.queue.count)
            .field("pending_output", &self.core.out.pending())
            .finish()
    }
}
