//! What a client session reports, made owned and filed — the part of a
//! client driver that does no I/O (a blocking or an async driver runs the
//! same): a qmp-core [`ClientEvent`] becomes a [`Happened`] (so the core
//! can be used again), and the [`Inbox`] files it: a resolution becomes
//! the call's result (`Ok(return value)` or an [`Error`]), an event goes to
//! the bounded queue and to every matching subscription, a message that
//! belongs to nobody becomes a [`Notice`], and what opens a session (the
//! greeting, the negotiation, what a guest-agent sync skipped) waits for
//! the dialect's handshake ([`Setup`]).

use crate::config::{Config, NoticeHook, NOTICE_QUEUE};
use crate::error::{Error, QmpError};
use qmp_core::client::{ClientEvent, Outcome};
use qmp_core::message::Timestamp;
use serde::de::DeserializeOwned;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Duration;

// ---------------------------------------------------------------------------
// Owned messages

/// The server greeting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Greeting {
    /// `QMP.version.qemu`: `(major, minor, micro)`.
    pub version: (u64, u64, u64),
    /// `QMP.version.package` (empty if absent).
    pub package: String,
    /// The offered capabilities.
    pub capabilities: Vec<String>,
    /// The whole `QMP` member, as received.
    pub json: String,
}

/// An event received from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The event name.
    pub name: String,
    /// `data` as received (JSON text), if present.
    pub data: Option<String>,
    /// `timestamp`, if well-formed (may be `-1`/`-1`).
    pub timestamp: Option<Timestamp>,
}

impl Event {
    /// `data` as JSON text.
    pub fn data_json(&self) -> Option<&str> {
        self.data.as_deref()
    }

    /// `data` deserialized (`null` when absent).
    ///
    /// # Errors
    /// serde_json's error.
    pub fn data<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.data.as_deref().unwrap_or("null"))
    }

    /// The event as one compact JSON object, members in QEMU's order
    /// (`timestamp`, `event`, `data`) and formatted like Python's
    /// `json.dumps(v, separators=(',', ':'))`.
    ///
    /// # Errors
    /// `data` that serde_json cannot read (QEMU's single-quoted strings).
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        let mut map = serde_json::Map::new();
        if let Some(t) = self.timestamp {
            map.insert(
                "timestamp".into(),
                serde_json::json!({"seconds": t.seconds, "microseconds": t.microseconds}),
            );
        }
        map.insert("event".into(), self.name.clone().into());
        if let Some(d) = &self.data {
            map.insert("data".into(), serde_json::from_str(d)?);
        }
        crate::client::to_compact(&serde_json::Value::Object(map))
    }
}

/// Something the peer sent that belongs to no call; never dropped silently
/// (`take_notices`, or [`Config::on_notice`] as it arrives).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notice {
    /// A reply nobody waits for (unknown id, or the late reply of a call
    /// that timed out).
    Unmatched {
        /// Its id, as JSON text.
        id: Option<String>,
        /// The whole reply.
        message: String,
    },
    /// An error reply without id that cannot be attributed (QMP with OOB
    /// enabled, usually the server could not parse something; a guest
    /// agent complaining about stale input).
    OrphanError(QmpError),
    /// A JSON value that is not a message of the protocol.
    Unknown(String),
    /// QMP: a greeting after the session was set up (its `QMP` member).
    Greeting(String),
    /// Bytes that do not frame as JSON (the session continues), or a
    /// message over the size limit that no call was waiting for.
    Framing(String),
}

impl Notice {
    /// What the peer sent, in short (for an error that quotes it).
    pub(crate) fn what(&self) -> String {
        match self {
            Notice::Unmatched { message, .. } | Notice::Unknown(message) => message.clone(),
            Notice::Greeting(json) => format!("{{\"QMP\": {json}}}"),
            Notice::OrphanError(e) => format!("an error reply ({e})"),
            Notice::Framing(e) => format!("bytes that are not JSON ({e})"),
        }
    }
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Notice::Unmatched {
                id: Some(id),
                message,
            } => {
                write!(f, "reply with id {id} matches no pending call: {message}")
            }
            Notice::Unmatched { id: None, message } => {
                write!(f, "reply matches no pending call: {message}")
            }
            Notice::OrphanError(e) => write!(f, "error reply without id: {e}"),
            Notice::Unknown(m) => write!(f, "not a QMP message: {m}"),
            Notice::Greeting(m) => write!(f, "a QMP greeting again: {{\"QMP\": {m}}}"),
            Notice::Framing(e) => write!(f, "bad input from the peer: {e}"),
        }
    }
}

/// A message a guest-agent sync skipped, as far as the sync cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Skipped {
    /// A QMP greeting: the peer is a QMP monitor.
    QmpGreeting,
    /// An error reply.
    Error(QmpError),
    /// Anything else (stale output).
    Other,
}

/// What opens a session, for the dialect's handshake.
#[derive(Debug)]
pub(crate) enum Setup {
    Greeting(Greeting),
    Negotiated,
    NegotiationFailed(QmpError),
    /// Guest agent: skipped by a sync.
    Skipped(Skipped),
    /// QMP: a message other than an event before the greeting.
    Stray(Notice),
}

/// How a call ended, before it is matched to its command.
#[derive(Debug)]
pub(crate) enum Ended {
    Qmp(QmpError),
    Timeout,
    Disconnected,
    Oversized(usize),
    Malformed(String),
    Cancelled,
}

/// A [`ClientEvent`], owned.
#[derive(Debug)]
pub(crate) enum Happened {
    Setup(Setup),
    Resolved(u64, Result<Vec<u8>, Ended>),
    Event(Event),
    Notice(Notice),
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn qmp_error(class: impl fmt::Display, desc: impl fmt::Display) -> QmpError {
    QmpError {
        class: class.to_string(),
        desc: desc.to_string(),
    }
}

/// Makes a core event owned.
pub(crate) fn own(ev: ClientEvent<'_>) -> Happened {
    match ev {
        ClientEvent::Greeting(g) => Happened::Setup(Setup::Greeting(Greeting {
            version: g.version,
            package: g.package.map(|p| p.to_string()).unwrap_or_default(),
            capabilities: g.capabilities().map(|c| c.to_string()).collect(),
            json: text(g.raw.as_bytes()),
        })),
        ClientEvent::Negotiated { .. } => Happened::Setup(Setup::Negotiated),
        ClientEvent::NegotiationFailed { class, desc } => {
            Happened::Setup(Setup::NegotiationFailed(qmp_error(class, desc)))
        }
        ClientEvent::Resolved { token, outcome } => Happened::Resolved(
            token.id(),
            match outcome {
                Outcome::Return(v) => Ok(v.as_bytes().to_vec()),
                Outcome::Error { class, desc } => Err(Ended::Qmp(qmp_error(class, desc))),
                Outcome::Timeout => Err(Ended::Timeout),
                Outcome::Disconnected => Err(Ended::Disconnected),
                Outcome::Oversized { len } => Err(Ended::Oversized(len)),
                Outcome::Malformed(e) => Err(Ended::Malformed(e.to_string())),
                _ => Err(Ended::Cancelled),
            },
        ),
        ClientEvent::Event(e) => Happened::Event(Event {
            name: e.name.to_string(),
            data: e.data.map(|d| text(d.as_bytes())),
            timestamp: e.timestamp,
        }),
        ClientEvent::Unmatched { id, message } => Happened::Notice(Notice::Unmatched {
            id: id.map(|i| text(i.as_bytes())),
            message: text(message.as_bytes()),
        }),
        ClientEvent::OrphanError { class, desc } => {
            Happened::Notice(Notice::OrphanError(qmp_error(class, desc)))
        }
        ClientEvent::Discarded(m) => Happened::Setup(Setup::Skipped(if m.get("QMP").is_some() {
            Skipped::QmpGreeting
        } else if let Some(e) = m.get("error") {
            let field = |k: &str| {
                e.get(k)
                    .and_then(|v| v.as_json_str())
                    .map(|s| s.to_string())
                    .unwrap_or_default()
            };
            Skipped::Error(qmp_error(field("class"), field("desc")))
        } else {
            Skipped::Other
        })),
        ClientEvent::Unknown(v) => Happened::Notice(Notice::Unknown(text(v.as_bytes()))),
        ClientEvent::FramingError(e) => Happened::Notice(Notice::Framing(e.to_string())),
        _ => Happened::Notice(Notice::Framing("unrecognised client event".into())),
    }
}

// ---------------------------------------------------------------------------
// Filing

/// A map keyed by the ids this crate hands out (call ids 1, 2, 3, …;
/// waiter numbers): hashed by one multiplication instead of SipHash — the
/// keys are ours, not the peer's, so there is nothing to defend against,
/// and a pipelined call makes several look-ups.
pub(crate) type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// The hasher of [`IdMap`] (Fibonacci hashing of a `u64`).
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(self.0.rotate_left(8) ^ u64::from(b));
        }
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = x.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// A call waiting for its reply.
struct Waiting {
    command: String,
    timeout: Option<Duration>,
}

struct Sub {
    id: u64,
    names: Vec<String>,
    queue: VecDeque<Event>,
    dropped: u64,
}

/// Where what a session reports is filed. See the [module docs](self).
pub(crate) struct Inbox {
    waiting: IdMap<Waiting>,
    done: IdMap<Result<Vec<u8>, Error>>,
    /// What opens the session, for the dialect.
    pub(crate) setup: VecDeque<Setup>,
    /// QMP before the greeting: notices are [`Setup::Stray`].
    pub(crate) expect_greeting: bool,
    /// QMP after the handshake: a greeting again is a notice.
    pub(crate) set_up: bool,
    events: VecDeque<Event>,
    events_dropped: u64,
    event_queue: usize,
    subs: Vec<Sub>,
    next_sub: u64,
    notices: VecDeque<Notice>,
    notices_dropped: u64,
    on_notice: Option<NoticeHook>,
    max_message: usize,
}

impl Inbox {
    pub(crate) fn new(cfg: &Config) -> Self {
        Inbox {
            waiting: IdMap::default(),
            done: IdMap::default(),
            setup: VecDeque::new(),
            expect_greeting: false,
            set_up: false,
            events: VecDeque::new(),
            events_dropped: 0,
            event_queue: cfg.event_queue,
            subs: Vec::new(),
            next_sub: 1,
            notices: VecDeque::new(),
            notices_dropped: 0,
            on_notice: cfg.on_notice.clone(),
            max_message: cfg.max_message,
        }
    }

    /// Files one happening.
    pub(crate) fn file(&mut self, h: Happened) {
        match h {
            Happened::Setup(Setup::Greeting(g)) if self.set_up => {
                self.notice(Notice::Greeting(g.json));
            }
            Happened::Setup(_) if self.set_up => {}
            Happened::Setup(s) => {
                if matches!(s, Setup::Greeting(_)) {
                    self.expect_greeting = false;
                }
                self.setup.push_back(s);
            }
            Happened::Resolved(id, r) => {
                // A call the driver gave up on before registering it (its
                // write failed) is not filed.
                if let Some(w) = self.waiting.remove(&id) {
                    let r = r.map_err(|e| self.error(e, w));
                    self.done.insert(id, r);
                }
            }
            Happened::Event(e) => self.deliver(e),
            Happened::Notice(n) if self.expect_greeting => self.setup.push_back(Setup::Stray(n)),
            Happened::Notice(n) => self.notice(n),
        }
    }

    fn error(&self, e: Ended, w: Waiting) -> Error {
        let command = w.command;
        match e {
            Ended::Qmp(e) => Error::Qmp(e),
            Ended::Timeout => Error::Timeout {
                command,
                after: w.timeout.unwrap_or_default(),
            },
            Ended::Disconnected => Error::Disconnected {
                command: Some(command),
            },
            Ended::Oversized(len) => Error::Oversized {
                command,
                len,
                limit: self.max_message,
            },
            Ended::Malformed(e) => Error::Protocol(format!("malformed reply to '{command}': {e}")),
            Ended::Cancelled => Error::Closed,
        }
    }

    // -- calls

    /// A call was sent: its result will be filed under `id`.
    pub(crate) fn register(&mut self, id: u64, command: &str, timeout: Option<Duration>) {
        self.waiting.insert(
            id,
            Waiting {
                command: command.to_owned(),
                timeout,
            },
        );
    }

    /// Forgets call `id` (its result is not filed).
    pub(crate) fn forget(&mut self, id: u64) {
        self.waiting.remove(&id);
        self.done.remove(&id);
    }

    /// The result of call `id`, once filed.
    pub(crate) fn take(&mut self, id: u64) -> Option<Result<Vec<u8>, Error>> {
        self.done.remove(&id)
    }

    /// Whether call `id` is filed and not yet taken.
    pub(crate) fn is_done(&self, id: u64) -> bool {
        self.done.contains_key(&id)
    }

    /// Whether call `id` waits for its reply.
    pub(crate) fn is_waiting(&self, id: u64) -> bool {
        self.waiting.contains_key(&id)
    }

    /// The command of a waiting call.
    pub(crate) fn command(&self, id: u64) -> Option<&str> {
        self.waiting.get(&id).map(|w| w.command.as_str())
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.waiting.len()
    }

    // -- notices

    fn notice(&mut self, n: Notice) {
        if let Some(hook) = &self.on_notice {
            hook(&n);
            return;
        }
        if self.notices.len() >= NOTICE_QUEUE {
            self.notices.pop_front();
            self.notices_dropped += 1;
        }
        self.notices.push_back(n);
    }

    /// Queues notices from now on instead of handing them to the hook.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn drop_notice_hook(&mut self) {
        self.on_notice = None;
    }

    pub(crate) fn take_notices(&mut self) -> Vec<Notice> {
        self.notices.drain(..).collect()
    }

    pub(crate) fn dropped_notices(&self) -> u64 {
        self.notices_dropped
    }

    // -- events

    fn deliver(&mut self, e: Event) {
        let cap = self.event_queue;
        for s in &mut self.subs {
            if s.names.is_empty() || s.names.contains(&e.name) {
                if s.queue.len() >= cap.max(1) {
                    s.queue.pop_front();
                    s.dropped += 1;
                }
                s.queue.push_back(e.clone());
            }
        }
        if cap > 0 {
            if self.events.len() >= cap {
                self.events.pop_front();
                self.events_dropped += 1;
            }
            self.events.push_back(e);
        }
    }

    /// A new subscription to `names` (any event if empty); its id.
    pub(crate) fn subscribe(&mut self, names: &[&str]) -> u64 {
        let id = self.next_sub;
        self.next_sub += 1;
        self.subs.push(Sub {
            id,
            names: names.iter().map(|&n| n.to_owned()).collect(),
            queue: VecDeque::new(),
            dropped: 0,
        });
        id
    }

    /// Removes a subscription; the events it still held.
    pub(crate) fn unsubscribe(&mut self, id: u64) -> Vec<Event> {
        match self.subs.iter().position(|s| s.id == id) {
            Some(i) => self.subs.remove(i).queue.into(),
            None => Vec::new(),
        }
    }

    /// The first event of the general queue (`sub` `None`) or a
    /// subscription for which `pred` holds; `Err` for an unknown
    /// subscription.
    pub(crate) fn take_event(
        &mut self,
        sub: Option<u64>,
        pred: &mut dyn FnMut(&Event) -> bool,
    ) -> Result<Option<Event>, Error> {
        let queue = match sub {
            None => &mut self.events,
            Some(id) => match self.subs.iter_mut().find(|s| s.id == id) {
                Some(s) => &mut s.queue,
                None => return Err(Error::Unsupported("unknown subscription".into())),
            },
        };
        Ok(queue.iter().position(pred).and_then(|i| queue.remove(i)))
    }

    pub(crate) fn dropped_events(&self, sub: Option<u64>) -> u64 {
        match sub {
            None => self.events_dropped,
            Some(id) => self
                .subs
                .iter()
                .find(|s| s.id == id)
                .map_or(0, |s| s.dropped),
        }
    }

    pub(crate) fn queued_events(&self) -> usize {
        self.events.len()
    }
}
