//! The monitor agent: the server side of QMP (and of the guest-agent
//! dialect), byte-exact with QEMU 10.
//!
//! Sans-IO: bytes in ([`Agent::handle_input`]), bytes out
//! ([`Agent::poll_transmit`]), requests out to the application
//! ([`Agent::poll_request`]), replies and events in ([`Agent::complete`],
//! [`Agent::emit`]). No allocation: the caller lends three buffers
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
//!   answer later through the request's [`Token`]); JSON errors and invalid
//!   requests queued behind a slow command are answered in-band, in order;
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
//! ```
//! use qmp_core::agent::{Agent, AgentBuffers, AgentConfig, CommandSpec, Reply};
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
//! assert_eq!(agent.handle_input(0, input), input.len());
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

#[cfg(feature = "embedded-io")]
pub mod io;

use crate::encode::{self, EncodeError, Style, WriteJson};
use crate::json::{JsonKind, JsonStr, RawJson};
use crate::message::{BadRequest, Exec, Request};
use crate::scan::{Frame, FrameError, Framer, FramerConfig, Message};
use crate::InsufficientSize;
use core::fmt;

/// Monotonic time in milliseconds, from the caller's clock.
pub type Millis = u64;

/// QEMU's in-band queue limit (`QMP_REQ_QUEUE_LEN_MAX`).
pub const QUEUE_LEN_MAX: usize = 8;

/// Bytes of queue bookkeeping per queued message.
const ENTRY_HEADER: usize = 9;
/// Largest fixed text around a JSON error's token.
const ERROR_TEXT_SLACK: usize = 64;

/// A command the application serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct CommandSpec<'a> {
    /// The command name (exact, case-sensitive).
    pub name: &'a str,
    /// Whether `exec-oob` may run it.
    pub allow_oob: bool,
    /// Whether success sends a reply (QGA's `success-response`; `false`
    /// for commands like `guest-shutdown`).
    pub success_response: bool,
}

impl<'a> CommandSpec<'a> {
    /// An in-band command that replies on success.
    pub const fn new(name: &'a str) -> Self {
        CommandSpec {
            name,
            allow_oob: false,
            success_response: true,
        }
    }

    /// Allows `exec-oob` for this command.
    #[must_use]
    pub const fn oob(mut self) -> Self {
        self.allow_oob = true;
        self
    }

    /// Sends nothing on success (QGA's `'success-response': false`).
    #[must_use]
    pub const fn no_success_response(mut self) -> Self {
        self.success_response = false;
        self
    }
}

/// Which protocol the agent speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Dialect {
    /// QMP: greeting, negotiation, `\r\n`.
    Qmp,
    /// The guest agent: no greeting, no negotiation, no OOB, `\n`, and
    /// `guest-sync`/`guest-sync-delimited` answered by the agent when listed.
    Qga,
}

/// Event throttling rule (QEMU's `monitor_qapi_event_conf`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Throttle<'a> {
    /// The event name.
    pub event: &'a str,
    /// The window in milliseconds (QEMU: 1000).
    pub window_ms: u64,
}

/// Agent settings.
#[derive(Debug, Clone, Copy)]
pub struct AgentConfig<'a> {
    /// `(major, minor, micro)` of the greeting's version.
    pub version: (u64, u64, u64),
    /// The greeting's `package`.
    pub package: &'a str,
    /// Whether `oob` is offered.
    pub offer_oob: bool,
    /// Output style ([`Style::QMP`], or [`Style::QMP_PRETTY`] for `pretty=on`).
    pub style: Style,
    /// The commands served, besides `qmp_capabilities` (always served).
    /// `query-commands` listed here is answered by the agent from this table.
    pub commands: &'a [CommandSpec<'a>],
    /// Throttled events.
    pub throttle: &'a [Throttle<'a>],
    /// The in-band queue limit with OOB enabled (QEMU: 8).
    pub max_queue: usize,
    /// The protocol.
    pub dialect: Dialect,
    /// Framer settings.
    pub framer: FramerConfig,
}

impl<'a> AgentConfig<'a> {
    /// QMP as QEMU 10 serves it: `oob` offered, compact output, queue 8.
    pub const fn new(
        version: (u64, u64, u64),
        package: &'a str,
        commands: &'a [CommandSpec<'a>],
    ) -> Self {
        AgentConfig {
            version,
            package,
            offer_oob: true,
            style: Style::QMP,
            commands,
            throttle: &[],
            max_queue: QUEUE_LEN_MAX,
            dialect: Dialect::Qmp,
            framer: FramerConfig::new(),
        }
    }

    /// The guest-agent dialect.
    pub const fn qga(commands: &'a [CommandSpec<'a>]) -> Self {
        AgentConfig {
            version: (0, 0, 0),
            package: "",
            offer_oob: false,
            style: Style::QGA,
            commands,
            throttle: &[],
            max_queue: 1,
            dialect: Dialect::Qga,
            framer: FramerConfig::new(),
        }
    }
}

/// The buffers an agent works in.
pub struct AgentBuffers<'b> {
    /// Input messages are framed here: its size is the request size limit.
    pub framer: &'b mut [u8],
    /// Queued in-band requests. Must hold at least one maximal message plus
    /// 73 bytes ([`AgentBuffers::queue_required`]); more lets more requests
    /// wait while one runs.
    pub queue: &'b mut [u8],
    /// Output waiting for [`Agent::poll_transmit`]; its size bounds one reply.
    pub out: &'b mut [u8],
    /// Storage for throttled events waiting for their window to end, shared
    /// evenly by up to [`THROTTLE_SLOTS`] event names (may be empty when
    /// nothing is throttled).
    pub throttle: &'b mut [u8],
}

/// How many event names (or keys) can be in a throttle window at once.
pub const THROTTLE_SLOTS: usize = 4;

impl<'b> AgentBuffers<'b> {
    /// Buffers without throttle storage.
    pub fn new(framer: &'b mut [u8], queue: &'b mut [u8], out: &'b mut [u8]) -> Self {
        AgentBuffers {
            framer,
            queue,
            out,
            throttle: &mut [],
        }
    }

    /// The smallest queue buffer for a framer buffer of `framer_len` bytes.
    pub const fn queue_required(framer_len: usize) -> usize {
        framer_len + ENTRY_HEADER + ERROR_TEXT_SLACK
    }
}

/// Why an agent could not be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum SetupError {
    /// The queue buffer is smaller than [`AgentBuffers::queue_required`].
    QueueTooSmall {
        /// The size needed.
        required: usize,
    },
    /// The output buffer cannot hold the greeting.
    OutTooSmall {
        /// The size needed.
        required: usize,
    },
    /// The framer buffer is empty.
    NoFramerBuffer,
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetupError::QueueTooSmall { required } => {
                write!(f, "queue buffer too small: {required} bytes required")
            }
            SetupError::OutTooSmall { required } => {
                write!(f, "output buffer too small: {required} bytes required")
            }
            SetupError::NoFramerBuffer => f.write_str("framer buffer is empty"),
        }
    }
}

impl core::error::Error for SetupError {}

/// Identifies a request handed to the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Token(u32);

/// A request for the application to handle.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'r> {
    /// Answer with [`Agent::complete`] and this token.
    pub token: Token,
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

/// Why [`Agent::complete`] failed. The request stays pending unless the
/// error says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum CompleteError {
    /// No request with this token is pending (already answered, or the
    /// session was reset).
    UnknownToken,
    /// The output buffer has no room now: transmit, then retry.
    OutputFull {
        /// The size of the reply.
        required: usize,
    },
    /// The reply can never fit the output buffer: answer differently.
    ReplyTooLarge {
        /// The size of the reply.
        required: usize,
    },
    /// The value could not be encoded (see [`EncodeError`]).
    Encode(EncodeError),
}

impl fmt::Display for CompleteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompleteError::UnknownToken => f.write_str("no pending request has this token"),
            CompleteError::OutputFull { required } => {
                write!(f, "output buffer full ({required} bytes needed)")
            }
            CompleteError::ReplyTooLarge { required } => {
                write!(f, "reply of {required} bytes exceeds the output buffer")
            }
            CompleteError::Encode(e) => write!(f, "cannot encode reply: {e}"),
        }
    }
}

impl core::error::Error for CompleteError {}

/// What [`Agent::emit`] did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[must_use]
#[non_exhaustive]
pub enum Emitted {
    /// Queued for transmission.
    Sent,
    /// Held by throttling; sent when the window ends unless replaced.
    Throttled,
    /// Dropped because the session has not completed negotiation (QEMU does
    /// not deliver or buffer events before `qmp_capabilities`).
    NotNegotiated,
}

/// Why [`Agent::emit`] failed; the event was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum EmitError {
    /// The output buffer has no room now: transmit, then retry.
    OutputFull {
        /// The size of the event.
        required: usize,
    },
    /// The event can never fit the output (or throttle slot) buffer.
    TooLarge {
        /// The size of the event.
        required: usize,
    },
    /// Every throttle slot is in a window for another event.
    ThrottleSlotsBusy,
    /// The data could not be encoded.
    Encode(EncodeError),
}

impl fmt::Display for EmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EmitError::OutputFull { required } => {
                write!(f, "output buffer full ({required} bytes needed)")
            }
            EmitError::TooLarge { required } => {
                write!(f, "event of {required} bytes exceeds its buffer")
            }
            EmitError::ThrottleSlotsBusy => f.write_str("all throttle slots are busy"),
            EmitError::Encode(e) => write!(f, "cannot encode event: {e}"),
        }
    }
}

impl core::error::Error for EmitError {}

/// An event to emit.
pub struct EventOut<'v> {
    /// The event name.
    pub name: &'v str,
    /// `data`, if the event has any.
    pub data: Option<&'v dyn WriteJson>,
    /// Wall-clock seconds (QEMU: `g_get_real_time() / 1e6`).
    pub seconds: i64,
    /// Microseconds within the second.
    pub microseconds: i64,
    /// For events throttled per key (QEMU keys some by `data.id`,
    /// `data.node-name` or `data.qom-path`): the key value.
    pub throttle_key: Option<&'v str>,
}

// ---------------------------------------------------------------------------
// Byte FIFO of queued in-band messages

#[derive(Clone, Copy, PartialEq, Eq)]
enum EntryKind {
    /// A request message (validated JSON).
    Message = 0,
    /// A JSON error: the payload is its `desc` text.
    JsonError = 1,
}

struct Queue<'b> {
    buf: &'b mut [u8],
    start: usize,
    end: usize,
    count: usize,
}

impl<'b> Queue<'b> {
    fn free(&self) -> usize {
        self.buf.len() - (self.end - self.start)
    }

    fn push(&mut self, kind: EntryKind, token: u32, pieces: &[&[u8]]) -> bool {
        let len: usize = pieces.iter().map(|p| p.len()).sum();
        let total = ENTRY_HEADER + len;
        if self.buf.len() - self.end < total {
            // Compact to the front.
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let Some(dst) = self.buf.get_mut(self.end..self.end + total) else {
            return false;
        };
        let (head, mut body) = dst.split_at_mut(ENTRY_HEADER);
        head.copy_from_slice(&header(kind, token, len));
        for p in pieces {
            let (now, rest) = body.split_at_mut(p.len());
            now.copy_from_slice(p);
            body = rest;
        }
        self.end += total;
        self.count += 1;
        true
    }

    fn front(&self) -> Option<(EntryKind, u32, &[u8])> {
        if self.count == 0 {
            return None;
        }
        let h = self.buf.get(self.start..self.start + ENTRY_HEADER)?;
        let kind = if h.first() == Some(&0) {
            EntryKind::Message
        } else {
            EntryKind::JsonError
        };
        let token = u32::from_le_bytes([*h.get(1)?, *h.get(2)?, *h.get(3)?, *h.get(4)?]);
        let len = u32::from_le_bytes([*h.get(5)?, *h.get(6)?, *h.get(7)?, *h.get(8)?]) as usize;
        let body_start = self.start + ENTRY_HEADER;
        Some((kind, token, self.buf.get(body_start..body_start + len)?))
    }

    fn pop(&mut self) {
        if let Some((_, _, body)) = self.front() {
            let total = ENTRY_HEADER + body.len();
            self.start += total;
            self.count -= 1;
            if self.count == 0 {
                self.start = 0;
                self.end = 0;
            }
        }
    }

    fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
        self.count = 0;
    }
}

fn header(kind: EntryKind, token: u32, len: usize) -> [u8; ENTRY_HEADER] {
    let t = token.to_le_bytes();
    let l = (len as u32).to_le_bytes();
    [kind as u8, t[0], t[1], t[2], t[3], l[0], l[1], l[2], l[3]]
}

// ---------------------------------------------------------------------------
// Output buffer

struct Output<'b> {
    buf: &'b mut [u8],
    start: usize,
    end: usize,
}

impl<'b> Output<'b> {
    fn pending(&self) -> usize {
        self.end - self.start
    }

    /// Runs a writer on the free space; all or nothing.
    fn write(
        &mut self,
        f: impl FnOnce(&mut [u8]) -> Result<usize, EncodeError>,
    ) -> Result<usize, WriteFail> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let cap = self.buf.len();
        let free = self.buf.get_mut(self.end..).unwrap_or(&mut []);
        match f(free) {
            Ok(n) => {
                self.end += n;
                Ok(n)
            }
            Err(EncodeError::InsufficientSize(InsufficientSize { required })) if required > cap => {
                Err(WriteFail::TooLarge(required))
            }
            Err(EncodeError::InsufficientSize(InsufficientSize { required })) => {
                Err(WriteFail::Full(required))
            }
            Err(e) => Err(WriteFail::Encode(e)),
        }
    }

    fn raw(&mut self, bytes: &[u8]) -> Result<usize, WriteFail> {
        self.write(|out| match out.get_mut(..bytes.len()) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                Ok(bytes.len())
            }
            None => Err(EncodeError::InsufficientSize(InsufficientSize {
                required: bytes.len(),
            })),
        })
    }
}

enum WriteFail {
    Full(usize),
    TooLarge(usize),
    Encode(EncodeError),
}

// ---------------------------------------------------------------------------
// Throttling

#[derive(Clone, Copy)]
struct Slot {
    /// Index of the rule; `usize::MAX` when free.
    rule: usize,
    key_hash: u32,
    window_end: Millis,
    /// Length of the pending rendered event in this slot's storage.
    pending: usize,
}

const FREE: Slot = Slot {
    rule: usize::MAX,
    key_hash: 0,
    window_end: 0,
    pending: 0,
};

// ---------------------------------------------------------------------------
// The agent

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
/// anything else is refused, and the framer catches duplicate keys among
/// the first members.)
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
            token: Token(token),
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
}

/// Configuration, output and negotiation state (split from the buffers so
/// replies can be written while a queued request is borrowed).
struct Core<'a, 'b> {
    cfg: AgentConfig<'a>,
    out: Output<'b>,
    negotiated: bool,
    oob: bool,
}

/// A monitor agent session. See the [module docs](self).
pub struct Agent<'a, 'b> {
    core: Core<'a, 'b>,
    framer: Framer<&'b mut [u8]>,
    queue: Queue<'b>,
    throttle_buf: &'b mut [u8],
    slots: [Slot; THROTTLE_SLOTS],
    head: Head,
    oob_req: Oob,
    next_token: u32,
}

impl<'a, 'b> Agent<'a, 'b> {
    /// Opens a session: the greeting (QMP) is queued for transmission.
    pub fn new(cfg: AgentConfig<'a>, bufs: AgentBuffers<'b>) -> Result<Self, SetupError> {
        if bufs.framer.is_empty() {
            return Err(SetupError::NoFramerBuffer);
        }
        let required = AgentBuffers::queue_required(bufs.framer.len());
        if bufs.queue.len() < required {
            return Err(SetupError::QueueTooSmall { required });
        }
        let qga = cfg.dialect == Dialect::Qga;
        let mut agent = Agent {
            core: Core {
                cfg,
                out: Output {
                    buf: bufs.out,
                    start: 0,
                    end: 0,
                },
                negotiated: qga,
                oob: false,
            },
            framer: Framer::with_config(bufs.framer, cfg.framer),
            queue: Queue {
                buf: bufs.queue,
                start: 0,
                end: 0,
                count: 0,
            },
            throttle_buf: bufs.throttle,
            slots: [FREE; THROTTLE_SLOTS],
            head: Head::Idle,
            oob_req: Oob::None,
            next_token: 1,
        };
        if !qga {
            let caps: &[&str] = if cfg.offer_oob { &["oob"] } else { &[] };
            let (major, minor, micro) = cfg.version;
            let style = cfg.style;
            let package = cfg.package;
            match agent
                .core
                .out
                .write(|o| encode::write_greeting(o, style, major, minor, micro, package, caps))
            {
                Ok(_) => {}
                Err(WriteFail::Full(required) | WriteFail::TooLarge(required)) => {
                    return Err(SetupError::OutTooSmall { required })
                }
                Err(WriteFail::Encode(_)) => return Err(SetupError::OutTooSmall { required: 0 }),
            }
        }
        Ok(agent)
    }

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

    fn queue_limit(&self) -> usize {
        if self.core.oob {
            self.core.cfg.max_queue.max(1)
        } else {
            1
        }
    }

    /// Whether input would be consumed now.
    pub fn wants_input(&self) -> bool {
        self.oob_req == Oob::None
            && self.queue.count < self.queue_limit()
            && self.queue.free() >= AgentBuffers::queue_required(self.framer.capacity())
    }

    /// Feeds input bytes; returns how many were consumed. Fewer than offered
    /// means backpressure: offer the rest again after completing a request
    /// (or transmitting). Call [`Agent::poll_request`] and
    /// [`Agent::poll_transmit`] after each call.
    pub fn handle_input(&mut self, _now: Millis, input: &[u8]) -> usize {
        let mut used = 0;
        loop {
            self.pump();
            if !self.wants_input() {
                break;
            }
            let Some(rest) = input.get(used..).filter(|r| !r.is_empty()) else {
                break;
            };
            let fed = self.framer.feed(rest);
            used += fed.consumed;
            let token = self.next_token;
            let oob = self.core.oob;
            let mut oob_request = false;
            match fed.frame {
                None => {}
                Some(Frame::Message(m)) => {
                    // QEMU's qmp_is_oob(): exec-oob present, execute absent.
                    if oob && m.get("exec-oob").is_some() && m.get("execute").is_none() {
                        oob_request = true;
                    } else {
                        self.queue.push(EntryKind::Message, token, &[m.as_bytes()]);
                        self.next_token = self.next_token.wrapping_add(1);
                    }
                }
                Some(Frame::Error(e)) => {
                    let p = desc_pieces(&e);
                    self.queue.push(EntryKind::JsonError, token, &p);
                    self.next_token = self.next_token.wrapping_add(1);
                }
            }
            if oob_request {
                self.next_token = self.next_token.wrapping_add(1);
                self.dispatch_oob(token);
            }
        }
        self.pump();
        used
    }

    /// The connection closed: pending requests are forgotten (their tokens
    /// become unknown) and the session state is reset.
    pub fn handle_eof(&mut self) {
        self.queue.clear();
        self.framer.reset();
        self.head = Head::Idle;
        self.oob_req = Oob::None;
    }

    /// Validates and dispatches the OOB request now in the framer buffer.
    fn dispatch_oob(&mut self, token: u32) {
        let msg = Message::from_validated(self.framer.last_message());
        let valid = msg.request(true).ok().map(|req| self.core.lookup(req.name));
        match valid {
            Some(Lookup::Found(spec)) if !spec.allow_oob => self.oob_req = Oob::Answer,
            Some(Lookup::Found(_) | Lookup::Builtin(_)) => {
                self.oob_req = Oob::Pending {
                    token,
                    handed: false,
                };
            }
            Some(Lookup::NotFound) | None => self.oob_req = Oob::Answer,
        }
        self.answer_oob();
    }

    /// Writes the agent's error reply to the OOB request in the framer
    /// buffer ([`Oob::Answer`]). While the output has no room the request
    /// stays there (input is not read) and this is retried by `pump`.
    fn answer_oob(&mut self) {
        if self.oob_req != Oob::Answer {
            return;
        }
        let msg = Message::from_validated(self.framer.last_message());
        let style = self.core.cfg.style;
        let result = match msg.request(true) {
            Err(bad) => self.core.out.write(|o| bad_request(o, style, &bad)),
            Ok(req) => match self.core.lookup(req.name) {
                Lookup::NotFound => self
                    .core
                    .out
                    .write(|o| not_found(o, style, req.id, req.name)),
                _ => self.core.out.write(|o| {
                    with_name(req.name, |name| {
                        encode::write_error(
                            o,
                            style,
                            id_ref(&req.id),
                            b"GenericError",
                            &[b"The command ", name, b" does not support OOB"],
                        )
                    })
                }),
            },
        };
        if !self.core.settle(result, style) {
            return;
        }
        self.oob_req = Oob::None;
    }

    /// Answers queued in-band entries until one needs the application or the
    /// output is full.
    fn pump(&mut self) {
        self.answer_oob();
        while self.head == Head::Idle {
            let Some((kind, token, body)) = self.queue.front() else {
                return;
            };
            let style = self.core.cfg.style;
            let result = match kind {
                EntryKind::JsonError => self
                    .core
                    .out
                    .write(|o| encode::write_error(o, style, None, b"GenericError", &[body])),
                EntryKind::Message => {
                    let msg = Message::from_validated(body);
                    match msg.request(self.core.oob) {
                        Err(bad) => self.core.out.write(|o| bad_request(o, style, &bad)),
                        Ok(req) => match self.core.dispatch(&req, token) {
                            Dispatched::Answered(r) => r,
                            Dispatched::ToApp { success_response } => {
                                self.head = Head::Running {
                                    token,
                                    handed: false,
                                    req: Parsed::of(body, &req, success_response),
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
            self.queue.pop();
        }
    }

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
        if let Head::Running {
            token,
            handed: false,
            req,
        } = self.head
        {
            self.head = Head::Running {
                token,
                handed: true,
                req,
            };
            let (_, _, body) = self.queue.front()?;
            return match req {
                Some(req) => req.incoming(body, token),
                None => incoming(body, token),
            };
        }
        None
    }

    /// Answers a request. In-band replies go out in request order; an OOB
    /// reply goes out at once.
    pub fn complete(&mut self, token: Token, reply: Reply<'_>) -> Result<(), CompleteError> {
        let style = self.core.cfg.style;
        let (body, oob, parsed) = match (self.oob_req, self.head) {
            (
                Oob::Pending {
                    token: t,
                    handed: true,
                },
                _,
            ) if t == token.0 => (self.framer.last_message(), true, None),
            (
                _,
                Head::Running {
                    token: t,
                    handed: true,
                    req,
                },
            ) if t == token.0 => (
                self.queue.front().map(|(_, _, b)| b).unwrap_or(&[]),
                false,
                req,
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
                    .and_then(|n| self.core.cfg.commands.iter().find(|c| n.eq_str(c.name)))
                    .is_none_or(|c| c.success_response);
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
        match result {
            Ok(_) => {}
            Err(WriteFail::Full(required)) => return Err(CompleteError::OutputFull { required }),
            Err(WriteFail::TooLarge(required)) => {
                return Err(CompleteError::ReplyTooLarge { required })
            }
            Err(WriteFail::Encode(e)) => return Err(CompleteError::Encode(e)),
        }
        if oob {
            self.oob_req = Oob::None;
        } else {
            self.head = Head::Idle;
            self.queue.pop();
            self.pump();
        }
        Ok(())
    }

    /// Emits an event to this session (dropped before negotiation, as QEMU
    /// does). `now` drives throttling.
    pub fn emit(&mut self, now: Millis, event: &EventOut<'_>) -> Result<Emitted, EmitError> {
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
        let rule = self
            .core
            .cfg
            .throttle
            .iter()
            .position(|t| t.event == event.name);
        let Some(rule) = rule else {
            return match self.core.out.write(write) {
                Ok(_) => Ok(Emitted::Sent),
                Err(WriteFail::Full(required)) => Err(EmitError::OutputFull { required }),
                Err(WriteFail::TooLarge(required)) => Err(EmitError::TooLarge { required }),
                Err(WriteFail::Encode(e)) => Err(EmitError::Encode(e)),
            };
        };
        let key_hash = event
            .throttle_key
            .map_or(0, |k| encode::tdb_hash(k.as_bytes()));
        let slot_len = self.throttle_buf.len() / THROTTLE_SLOTS;
        if let Some(i) = self
            .slots
            .iter()
            .position(|s| s.rule == rule && s.key_hash == key_hash)
        {
            // In a window: replace the pending event.
            let region = self
                .throttle_buf
                .get_mut(i * slot_len..(i + 1) * slot_len)
                .unwrap_or(&mut []);
            return match write(region) {
                Ok(n) => {
                    if let Some(s) = self.slots.get_mut(i) {
                        s.pending = n;
                    }
                    Ok(Emitted::Throttled)
                }
                Err(EncodeError::InsufficientSize(InsufficientSize { required })) => {
                    Err(EmitError::TooLarge { required })
                }
                Err(e) => Err(EmitError::Encode(e)),
            };
        }
        // First in its window: send now and open the window.
        let i = self
            .slots
            .iter()
            .position(|s| s.rule == usize::MAX)
            .ok_or(EmitError::ThrottleSlotsBusy)?;
        match self.core.out.write(write) {
            Ok(_) => {}
            Err(WriteFail::Full(required)) => return Err(EmitError::OutputFull { required }),
            Err(WriteFail::TooLarge(required)) => return Err(EmitError::TooLarge { required }),
            Err(WriteFail::Encode(e)) => return Err(EmitError::Encode(e)),
        }
        let window = self.core.cfg.throttle.get(rule).map_or(0, |t| t.window_ms);
        if let Some(s) = self.slots.get_mut(i) {
            *s = Slot {
                rule,
                key_hash,
                window_end: now.saturating_add(window),
                pending: 0,
            };
        }
        Ok(Emitted::Sent)
    }

    /// When [`Agent::handle_timeout`] must be called next (a throttle window
    /// ends), if ever.
    pub fn poll_timeout(&self) -> Option<Millis> {
        self.slots
            .iter()
            .filter(|s| s.rule != usize::MAX)
            .map(|s| s.window_end)
            .min()
    }

    /// Ends the throttle windows due by `now`: their pending events are
    /// queued for transmission (and open a new window).
    pub fn handle_timeout(&mut self, now: Millis) {
        let slot_len = self.throttle_buf.len() / THROTTLE_SLOTS;
        for i in 0..THROTTLE_SLOTS {
            let Some(slot) = self.slots.get(i).copied() else {
                continue;
            };
            if slot.rule == usize::MAX || slot.window_end > now {
                continue;
            }
            if slot.pending == 0 {
                if let Some(s) = self.slots.get_mut(i) {
                    *s = FREE;
                }
                continue;
            }
            let start = i * slot_len;
            let pending = self
                .throttle_buf
                .get(start..start + slot.pending)
                .unwrap_or(&[]);
            if self.core.out.raw(pending).is_err() {
                // No room yet: retry at the next call.
                continue;
            }
            let window = self
                .core
                .cfg
                .throttle
                .get(slot.rule)
                .map_or(0, |t| t.window_ms);
            if let Some(s) = self.slots.get_mut(i) {
                s.pending = 0;
                s.window_end = now.saturating_add(window);
            }
        }
    }

    /// Copies pending output into `buf`; returns how many bytes, or `None`
    /// when there is nothing to send. Call after every other method.
    pub fn poll_transmit(&mut self, buf: &mut [u8]) -> Option<usize> {
        let n = self.core.out.pending().min(buf.len());
        if n == 0 {
            return None;
        }
        let src = self
            .core
            .out
            .buf
            .get(self.core.out.start..self.core.out.start + n)?;
        buf.get_mut(..n)?.copy_from_slice(src);
        self.core.out.start += n;
        if self.core.out.start == self.core.out.end {
            self.core.out.start = 0;
            self.core.out.end = 0;
        }
        // Output room may let queued replies go out.
        self.pump();
        Some(n)
    }

    /// Bytes waiting for [`Agent::poll_transmit`].
    pub fn pending_output(&self) -> usize {
        self.core.out.pending()
    }
}

impl<'a, 'b> Core<'a, 'b> {
    /// After writing one of the agent's own replies: whether it is done
    /// (`false`: no room now, retry later). A reply that can never fit is
    /// replaced by a short error, itself retried while there is no room.
    fn settle(&mut self, result: Result<usize, WriteFail>, style: Style) -> bool {
        match result {
            Ok(_) => true,
            Err(WriteFail::Full(_)) => false,
            Err(WriteFail::TooLarge(_) | WriteFail::Encode(_)) => !matches!(
                self.out.write(|o| {
                    encode::write_error(
                        o,
                        style,
                        None,
                        b"GenericError",
                        &[b"reply too large for the output buffer"],
                    )
                }),
                Err(WriteFail::Full(_))
            ),
        }
    }

    fn lookup(&self, name: JsonStr<'_>) -> Lookup<'a> {
        if name.eq_str("qmp_capabilities") && self.cfg.dialect == Dialect::Qmp {
            return Lookup::Builtin(Builtin::Capabilities);
        }
        match self.cfg.commands.iter().find(|c| name.eq_str(c.name)) {
            None => Lookup::NotFound,
            Some(spec) if spec.name == "query-commands" => Lookup::Builtin(Builtin::QueryCommands),
            Some(spec) if self.cfg.dialect == Dialect::Qga && spec.name == "guest-sync" => {
                Lookup::Builtin(Builtin::GuestSync { delimited: false })
            }
            Some(spec)
                if self.cfg.dialect == Dialect::Qga && spec.name == "guest-sync-delimited" =>
            {
                Lookup::Builtin(Builtin::GuestSync { delimited: true })
            }
            Some(spec) => Lookup::Found(*spec),
        }
    }

    /// The pipeline after structural validation, for an in-band request.
    /// `None`: handed to the application.
    fn dispatch(&mut self, req: &Request<'_>, _token: u32) -> Dispatched {
        let style = self.cfg.style;
        let lookup = self.lookup(req.name);
        if !self.negotiated {
            // Negotiation mode: only qmp_capabilities exists, and every
            // CommandNotFound text is rewritten.
            if lookup != Lookup::Builtin(Builtin::Capabilities) {
                return Dispatched::Answered(self.out.write(|o| {
                    encode::write_error(
                        o,
                        style,
                        id_ref(&req.id),
                        b"CommandNotFound",
                        &[b"Expecting capabilities negotiation with 'qmp_capabilities'"],
                    )
                }));
            }
            return Dispatched::Answered(self.negotiate(req));
        }
        match lookup {
            Lookup::NotFound => {
                Dispatched::Answered(self.out.write(|o| not_found(o, style, req.id, req.name)))
            }
            Lookup::Builtin(Builtin::Capabilities) => Dispatched::Answered(self.out.write(|o| {
                encode::write_error(
                    o,
                    style,
                    id_ref(&req.id),
                    b"CommandNotFound",
                    &[b"Capabilities negotiation is already complete, command ignored"],
                )
            })),
            Lookup::Builtin(Builtin::QueryCommands) => {
                let commands = self.cfg.commands;
                let qmp = self.cfg.dialect == Dialect::Qmp;
                Dispatched::Answered(self.out.write(|o| {
                    encode::write_return(o, style, &CommandList { commands, qmp }, id_ref(&req.id))
                }))
            }
            Lookup::Builtin(Builtin::GuestSync { delimited }) => {
                Dispatched::Answered(self.guest_sync(req, delimited))
            }
            Lookup::Found(spec) => Dispatched::ToApp {
                success_response: spec.success_response,
            },
        }
    }

    fn negotiate(&mut self, req: &Request<'_>) -> Result<usize, WriteFail> {
        let style = self.cfg.style;
        let id = id_ref(&req.id);
        let mut enable_oob = false;
        let mut unavailable = 0usize;
        if let Some(args) = req.arguments {
            if let Some(enable) = args.get("enable") {
                if enable.kind() != JsonKind::Array {
                    return self.out.write(|o| {
                        encode::write_error(
                            o,
                            style,
                            id,
                            b"GenericError",
                            &[b"Invalid parameter type for 'enable', expected: array"],
                        )
                    });
                }
                for (i, e) in enable.elements().enumerate() {
                    let Some(s) = e.as_json_str() else {
                        return self.out.write(|o| {
                            let mut num = [0u8; 20];
                            let digits = fmt_usize(i, &mut num);
                            encode::write_error(
                                o,
                                style,
                                id,
                                b"GenericError",
                                &[
                                    b"Invalid parameter type for 'enable[",
                                    digits,
                                    b"]', expected: string",
                                ],
                            )
                        });
                    };
                    if !s.eq_str("oob") {
                        return self.out.write(|o| {
                            with_name(s, |v| {
                                encode::write_error(
                                    o,
                                    style,
                                    id,
                                    b"GenericError",
                                    &[b"Parameter 'null' does not accept value '", v, b"'"],
                                )
                            })
                        });
                    }
                    enable_oob = true;
                    if !self.cfg.offer_oob {
                        unavailable += 1;
                    }
                }
            }
            if let Some(m) = args.members().find(|(k, _)| !k.eq_str("enable")) {
                let key = m.0;
                return self.out.write(|o| {
                    with_name(key, |k| {
                        encode::write_error(
                            o,
                            style,
                            id,
                            b"GenericError",
                            &[b"Parameter '", k, b"' is unexpected"],
                        )
                    })
                });
            }
        }
        if unavailable > 0 {
            // "Capability oob, oob not available": every unavailable entry.
            return self.out.write(|o| {
                let mut list = [0u8; 64];
                let mut n = 0;
                for i in 0..unavailable.min(12) {
                    let piece: &[u8] = if i == 0 { b"oob" } else { b", oob" };
                    if let Some(dst) = list.get_mut(n..n + piece.len()) {
                        dst.copy_from_slice(piece);
                        n += piece.len();
                    }
                }
                encode::write_error(
                    o,
                    style,
                    id,
                    b"GenericError",
                    &[
                        b"Capability ",
                        list.get(..n).unwrap_or(&[]),
                        b" not available",
                    ],
                )
            });
        }
        let r = self
            .out
            .write(|o| encode::write_return(o, style, &EmptyObject, id));
        if r.is_ok() {
            self.negotiated = true;
            self.oob = enable_oob;
        }
        r
    }

    fn guest_sync(&mut self, req: &Request<'_>, delimited: bool) -> Result<usize, WriteFail> {
        let style = self.cfg.style;
        let id_member = id_ref(&req.id);
        let args = req.arguments;
        let value = args.and_then(|a| a.get("id"));
        let error: Option<&[&[u8]]> = match value {
            None => Some(&[b"Parameter 'id' is missing"]),
            Some(v) if v.as_i64().is_none() => {
                Some(&[b"Invalid parameter type for 'id', expected: integer"])
            }
            Some(_) => None,
        };
        if let Some(desc) = error {
            return self
                .out
                .write(|o| encode::write_error(o, style, id_member, b"GenericError", desc));
        }
        if let Some((k, _)) = args.and_then(|a| a.members().find(|(k, _)| !k.eq_str("id"))) {
            return self.out.write(|o| {
                with_name(k, |k| {
                    encode::write_error(
                        o,
                        style,
                        id_member,
                        b"GenericError",
                        &[b"Parameter '", k, b"' is unexpected"],
                    )
                })
            });
        }
        let Some(v) = value else {
            return Ok(0);
        };
        self.out.write(|o| {
            let (prefix, rest) = if delimited {
                match o.split_first_mut() {
                    Some((first, rest)) => {
                        *first = 0xFF;
                        (1, rest)
                    }
                    None => {
                        return Err(EncodeError::InsufficientSize(InsufficientSize {
                            required: 1,
                        }))
                    }
                }
            } else {
                (0, o)
            };
            match encode::write_return(rest, style, &v, id_member) {
                Ok(n) => Ok(n + prefix),
                Err(EncodeError::InsufficientSize(InsufficientSize { required })) => {
                    Err(EncodeError::InsufficientSize(InsufficientSize {
                        required: required + prefix,
                    }))
                }
                Err(e) => Err(e),
            }
        })
    }
}

fn incoming(body: &[u8], token: u32) -> Option<Incoming<'_>> {
    let msg = Message::from_validated(body);
    let req = msg.request(true).ok()?;
    Some(Incoming {
        token: Token(token),
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
    GuestSync { delimited: bool },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Lookup<'a> {
    NotFound,
    Builtin(Builtin),
    Found(CommandSpec<'a>),
}

fn id_ref<'r>(id: &'r Option<RawJson<'_>>) -> Option<&'r dyn WriteJson> {
    id.as_ref().map(|i| i as &dyn WriteJson)
}

/// Calls `f` with the unescaped bytes of `s` (raw if it has no escapes or
/// does not fit a 256-byte scratch).
fn with_name<R>(s: JsonStr<'_>, f: impl FnOnce(&[u8]) -> R) -> R {
    let mut scratch = [0u8; 256];
    if s.has_escapes() {
        if let Ok(bytes) = s.unescape_into(&mut scratch) {
            return f(bytes);
        }
    }
    f(s.raw())
}

fn not_found(
    o: &mut [u8],
    style: Style,
    id: Option<RawJson<'_>>,
    name: JsonStr<'_>,
) -> Result<usize, EncodeError> {
    with_name(name, |n| {
        encode::write_error(
            o,
            style,
            id_ref(&id),
            b"CommandNotFound",
            &[b"The command ", n, b" has not been found"],
        )
    })
}

fn bad_request(o: &mut [u8], style: Style, bad: &BadRequest<'_>) -> Result<usize, EncodeError> {
    let (a, key, b) = bad.error.desc_parts();
    let id = id_ref(&bad.id);
    match key {
        Some(k) => with_name(k, |k| {
            encode::write_error(
                o,
                style,
                id,
                b"GenericError",
                &[a.as_bytes(), k, b.as_bytes()],
            )
        }),
        None => encode::write_error(o, style, id, b"GenericError", &[a.as_bytes()]),
    }
}

fn desc_pieces<'e>(e: &FrameError<'e>) -> [&'e [u8]; 4] {
    e.desc_pieces()
}

fn fmt_usize(mut v: usize, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        if let Some(d) = buf.get_mut(i) {
            *d = b'0' + (v % 10) as u8;
        }
        v /= 10;
        if v == 0 || i == 0 {
            break;
        }
    }
    buf.get(i..).unwrap_or(&[])
}

struct EmptyObject;

impl WriteJson for EmptyObject {
    fn write_json(&self, w: &mut encode::JsonWriter<'_>) -> Result<(), EncodeError> {
        w.open(b'{');
        w.close(b'}');
        Ok(())
    }
}

/// `query-commands`: `[{"name": …}, …]`, qmp_capabilities included (QMP).
struct CommandList<'a> {
    commands: &'a [CommandSpec<'a>],
    qmp: bool,
}

impl WriteJson for CommandList<'_> {
    fn write_json(&self, w: &mut encode::JsonWriter<'_>) -> Result<(), EncodeError> {
        w.open(b'[');
        let builtin: &[&str] = if self.qmp { &["qmp_capabilities"] } else { &[] };
        for name in builtin
            .iter()
            .copied()
            .chain(self.commands.iter().map(|c| c.name))
        {
            w.prefix();
            w.open(b'{');
            w.key(b"name");
            w.quoted(name.as_bytes());
            w.close(b'}');
        }
        w.close(b']');
        Ok(())
    }
}

impl core::fmt::Debug for Agent<'_, '_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Agent")
            .field("negotiated", &self.core.negotiated)
            .field("oob", &self.core.oob)
            .field("queued", &self.queue.count)
            .field("pending_output", &self.core.out.pending())
            .finish()
    }
}
