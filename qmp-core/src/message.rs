//! The message model: what a framed value means.
//!
//! * Inbound to a client: [`Message::classify`] gives an [`Inbound`] —
//!   greeting, return, error, event or unknown — by key presence, like
//!   libvirt; unknown members, event names, error classes and capabilities
//!   never fail.
//! * Inbound to an agent: [`Message::request`] gives a [`Request`] or a
//!   [`BadRequest`], validated in QEMU's order (`qmp_dispatch_check_obj`
//!   walks members in QDict hash order, so the first problem reported is the
//!   one QEMU reports), with the `id` captured before validation.
//!
//! ```
//! use qmp_core::scan::{Frame, Framer};
//! use qmp_core::message::{Exec, RequestError};
//!
//! let mut buf = [0u8; 256];
//! let mut framer = Framer::new(&mut buf[..]);
//! let fed = framer.feed(br#"{"execute": "stop", "extra": 1, "id": "a"}"#);
//! let Some(Frame::Message(msg)) = fed.frame else { panic!() };
//! let bad = msg.request(false).unwrap_err();
//! assert!(matches!(bad.error, RequestError::Unexpected(k) if k.eq_str("extra")));
//! assert_eq!(bad.id.unwrap().as_bytes(), b"\"a\"");
//! ```

use crate::json::{JsonKind, JsonStr, RawJson};
use crate::scan::{Member, Message};
use core::fmt;

/// A message as a client sees it.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Inbound<'a> {
    /// The server's greeting (`{"QMP": …}`).
    Greeting(Greeting<'a>),
    /// A successful reply.
    Return {
        /// The `return` value.
        value: RawJson<'a>,
        /// The `id`, if any.
        id: Option<RawJson<'a>>,
    },
    /// An error reply.
    Error {
        /// `error.class` (open: unknown classes are [`ErrorClass::Other`]).
        class: ErrorClass<'a>,
        /// `error.desc` (empty if missing).
        desc: JsonStr<'a>,
        /// The `id`, if any.
        id: Option<RawJson<'a>>,
    },
    /// An asynchronous event.
    Event(Event<'a>),
    /// A valid JSON value that matches none of the shapes above.
    Unknown(RawJson<'a>),
}

/// The server greeting.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Greeting<'a> {
    /// `QMP.version.qemu.major`, `.minor`, `.micro` (0 when missing).
    pub version: (u64, u64, u64),
    /// `QMP.version.package`, if present.
    pub package: Option<JsonStr<'a>>,
    /// `QMP.capabilities` (an array, if well-formed).
    pub capabilities: Option<RawJson<'a>>,
    /// The whole `QMP` member.
    pub raw: RawJson<'a>,
}

impl<'a> Greeting<'a> {
    /// The offered capabilities that are strings.
    pub fn capabilities(&self) -> impl Iterator<Item = JsonStr<'a>> + 'a {
        self.capabilities
            .into_iter()
            .flat_map(|c| c.elements())
            .filter_map(|e| e.as_json_str())
    }

    /// Whether `name` is offered.
    pub fn offers(&self, name: &str) -> bool {
        self.capabilities().any(|c| c.eq_str(name))
    }
}

/// An event.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Event<'a> {
    /// The event name (open: any string).
    pub name: JsonStr<'a>,
    /// `data`, if present.
    pub data: Option<RawJson<'a>>,
    /// `timestamp`, if well-formed. QEMU documents `-1`/`-1` for a clock
    /// failure, so the fields are signed.
    pub timestamp: Option<Timestamp>,
}

/// An event timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct Timestamp {
    /// Seconds since the epoch.
    pub seconds: i64,
    /// Microseconds within the second.
    pub microseconds: i64,
}

/// An error class: QEMU's `QapiErrorClass`, open for new ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorClass<'a> {
    /// `GenericError`
    GenericError,
    /// `CommandNotFound`
    CommandNotFound,
    /// `DeviceNotActive`
    DeviceNotActive,
    /// `DeviceNotFound`
    DeviceNotFound,
    /// `KVMMissingCap`
    KvmMissingCap,
    /// Any other class.
    Other(JsonStr<'a>),
}

impl<'a> ErrorClass<'a> {
    /// Classifies a class name.
    pub fn from_json(s: JsonStr<'a>) -> Self {
        const KNOWN: [(&str, ErrorClass<'static>); 5] = [
            ("GenericError", ErrorClass::GenericError),
            ("CommandNotFound", ErrorClass::CommandNotFound),
            ("DeviceNotActive", ErrorClass::DeviceNotActive),
            ("DeviceNotFound", ErrorClass::DeviceNotFound),
            ("KVMMissingCap", ErrorClass::KvmMissingCap),
        ];
        KNOWN
            .iter()
            .find(|(name, _)| s.eq_str(name))
            .map_or(ErrorClass::Other(s), |(_, c)| *c)
    }

    /// The class name for a known class (`None` for [`ErrorClass::Other`],
    /// whose name is its escaped `JsonStr`).
    pub fn as_str(&self) -> Option<&'static str> {
        Some(match self {
            ErrorClass::GenericError => "GenericError",
            ErrorClass::CommandNotFound => "CommandNotFound",
            ErrorClass::DeviceNotActive => "DeviceNotActive",
            ErrorClass::DeviceNotFound => "DeviceNotFound",
            ErrorClass::KvmMissingCap => "KVMMissingCap",
            ErrorClass::Other(_) => return None,
        })
    }
}

impl fmt::Display for ErrorClass<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.as_str(), self) {
            (Some(s), _) => f.write_str(s),
            (None, ErrorClass::Other(s)) => write!(f, "{s}"),
            (None, _) => Ok(()),
        }
    }
}

/// How a request asked to be run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Exec {
    /// `execute`: in-band.
    Execute,
    /// `exec-oob`: out-of-band.
    ExecOob,
}

/// A structurally valid command request (QEMU's `qmp_dispatch_check_obj`
/// passed). The command name is not looked up yet.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Request<'a> {
    /// `execute` or `exec-oob`.
    pub exec: Exec,
    /// The command name.
    pub name: JsonStr<'a>,
    /// `arguments` (an object), if present.
    pub arguments: Option<RawJson<'a>>,
    /// `id`, any JSON value, if present.
    pub id: Option<RawJson<'a>>,
}

/// A request that failed structural validation, with its `id` if it had one.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct BadRequest<'a> {
    /// What is wrong.
    pub error: RequestError<'a>,
    /// The request's `id`, captured before validation.
    pub id: Option<RawJson<'a>>,
}

/// Structural request errors, in QEMU's words (all `GenericError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestError<'a> {
    /// `QMP input must be a JSON object`
    NotObject,
    /// `QMP input member 'execute' must be a string` (or `'exec-oob'`).
    NotString(Exec),
    /// `QMP input member 'execute' clashes with 'exec-oob'`
    Clash,
    /// `QMP input member 'arguments' must be an object`
    ArgumentsNotObject,
    /// `QMP input member '<key>' is unexpected`
    Unexpected(JsonStr<'a>),
    /// `QMP input lacks member 'execute'`
    LacksExecute,
}

impl<'a> RequestError<'a> {
    /// QEMU's `desc` text as three pieces: a prefix, the member name (escaped
    /// JSON string body, possibly empty) and a suffix.
    pub fn desc_parts(&self) -> (&'static str, Option<JsonStr<'a>>, &'static str) {
        match self {
            RequestError::NotObject => ("QMP input must be a JSON object", None, ""),
            RequestError::NotString(Exec::Execute) => {
                ("QMP input member 'execute' must be a string", None, "")
            }
            RequestError::NotString(Exec::ExecOob) => {
                ("QMP input member 'exec-oob' must be a string", None, "")
            }
            RequestError::Clash => (
                "QMP input member 'execute' clashes with 'exec-oob'",
                None,
                "",
            ),
            RequestError::ArgumentsNotObject => {
                ("QMP input member 'arguments' must be an object", None, "")
            }
            RequestError::Unexpected(k) => ("QMP input member '", Some(*k), "' is unexpected"),
            RequestError::LacksExecute => ("QMP input lacks member 'execute'", None, ""),
        }
    }
}

impl fmt::Display for RequestError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (a, k, b) = self.desc_parts();
        f.write_str(a)?;
        if let Some(k) = k {
            write!(f, "{k}")?;
        }
        f.write_str(b)
    }
}

impl core::error::Error for RequestError<'_> {}

impl<'a> Message<'a> {
    /// Classifies a message received by a client.
    pub fn classify(&self) -> Inbound<'a> {
        let raw = self.raw();
        if !self.is_object() {
            return Inbound::Unknown(raw);
        }
        let (mut qmp, mut event, mut ret, mut error, mut id, mut data, mut ts) =
            (None, None, None, None, None, None, None);
        for Member { key, value } in self.members() {
            let slot = match Key::of(key) {
                Key::Qmp => &mut qmp,
                Key::Event => &mut event,
                Key::Return => &mut ret,
                Key::Error => &mut error,
                Key::Id => &mut id,
                Key::Data => &mut data,
                Key::Timestamp => &mut ts,
                _ => continue,
            };
            *slot = Some(value);
        }
        if let Some(q) = qmp.filter(|q| q.kind() == JsonKind::Object) {
            let version = q.get("version");
            let qemu = version.and_then(|v| v.get("qemu"));
            let num = |k: &str| {
                qemu.and_then(|q| q.get(k))
                    .and_then(|n| n.as_u64())
                    .unwrap_or(0)
            };
            return Inbound::Greeting(Greeting {
                version: (num("major"), num("minor"), num("micro")),
                package: version
                    .and_then(|v| v.get("package"))
                    .and_then(|p| p.as_json_str()),
                capabilities: q
                    .get("capabilities")
                    .filter(|c| c.kind() == JsonKind::Array),
                raw: q,
            });
        }
        if let Some(name) = event.and_then(|e| e.as_json_str()) {
            let timestamp = ts.and_then(|t| {
                Some(Timestamp {
                    seconds: t.get("seconds")?.as_i64()?,
                    microseconds: t.get("microseconds")?.as_i64()?,
                })
            });
            return Inbound::Event(Event {
                name,
                data,
                timestamp,
            });
        }
        if let Some(value) = ret {
            return Inbound::Return { value, id };
        }
        if let Some(e) = error {
            const EMPTY: JsonStr<'static> = JsonStr::from_validated(b"", b'"');
            let class = e
                .get("class")
                .and_then(|c| c.as_json_str())
                .unwrap_or(EMPTY);
            let desc = e.get("desc").and_then(|c| c.as_json_str()).unwrap_or(EMPTY);
            return Inbound::Error {
                class: ErrorClass::from_json(class),
                desc,
                id,
            };
        }
        Inbound::Unknown(raw)
    }

    /// Validates a message received by an agent as a command request, like
    /// QEMU's `qmp_dispatch_check_obj`. `oob` says whether the `oob`
    /// capability is enabled for the session (otherwise `exec-oob` is an
    /// unexpected member).
    pub fn request(&self, oob: bool) -> Result<Request<'a>, BadRequest<'a>> {
        if !self.is_object() {
            return Err(BadRequest {
                error: RequestError::NotObject,
                id: None,
            });
        }
        let mut execute = None;
        let mut exec_oob = None;
        let mut arguments = None;
        let mut id = None;
        // Whether a member other than a good `arguments` or `id` was seen
        // (checked again below, per member, only then).
        let mut suspect = false;
        for m in self.members() {
            match Key::of(m.key) {
                Key::Execute => execute = Some(m.value),
                Key::ExecOob if oob => exec_oob = Some(m.value),
                Key::Arguments => {
                    suspect |= m.value.kind() != JsonKind::Object;
                    arguments = Some(m.value);
                }
                Key::Id => id = Some(m.value),
                _ => suspect = true,
            }
        }
        let is_str = |v: Option<RawJson<'_>>| v.is_some_and(|v| v.kind() == JsonKind::String);
        // `execute` and `exec-oob` members can only be a problem as below
        // (each is `Some` iff such a member exists).
        suspect |= execute.is_some() && (!is_str(execute) || is_str(exec_oob));
        suspect |= exec_oob.is_some() && !is_str(exec_oob);
        // Each member's problem does not depend on walk order (exec-oob,
        // bucket 162, is always visited before execute, bucket 299), so
        // the first problem in QDict order is the one with the smallest
        // (bucket, reverse input index).
        let mut first: Option<((u32, usize), RequestError<'a>)> = None;
        if suspect {
            for (index, m) in self.members().enumerate() {
                let problem = match Key::of(m.key) {
                    Key::Execute if !is_str(execute) => {
                        Some(RequestError::NotString(Exec::Execute))
                    }
                    Key::Execute if is_str(exec_oob) => Some(RequestError::Clash),
                    Key::Execute => None,
                    Key::ExecOob if oob && !is_str(exec_oob) => {
                        Some(RequestError::NotString(Exec::ExecOob))
                    }
                    Key::ExecOob if oob => None,
                    Key::Arguments if m.value.kind() != JsonKind::Object => {
                        Some(RequestError::ArgumentsNotObject)
                    }
                    Key::Arguments | Key::Id => None,
                    _ => Some(RequestError::Unexpected(m.key)),
                };
                if let Some(p) = problem {
                    let order = (crate::encode::json_str_bucket(m.key), usize::MAX - index);
                    if first.as_ref().is_none_or(|(o, _)| order < *o) {
                        first = Some((order, p));
                    }
                }
            }
        }
        if let Some((_, error)) = first {
            return Err(BadRequest { error, id });
        }
        let (exec, name) = match (execute, exec_oob) {
            (Some(e), _) => (Exec::Execute, e),
            (None, Some(e)) => (Exec::ExecOob, e),
            (None, None) => {
                return Err(BadRequest {
                    error: RequestError::LacksExecute,
                    id,
                })
            }
        };
        match name.as_json_str() {
            Some(name) => Ok(Request {
                exec,
                name,
                arguments,
                id,
            }),
            None => Err(BadRequest {
                error: RequestError::NotString(exec),
                id,
            }),
        }
    }
}

/// Whether `a == b`, for a `b` of at most 12 bytes, in a few 32-bit
/// comparisons (cheaper than a `memcmp` call for the protocol's names).
#[inline]
fn same_short(a: &[u8], b: &[u8]) -> bool {
    let word = |s: &[u8], at: usize| {
        s.get(at..at + 4)
            .and_then(|w| <[u8; 4]>::try_from(w).ok())
            .map_or(0, u32::from_le_bytes)
    };
    let n = b.len();
    if a.len() != n {
        return false;
    }
    if n < 4 {
        return a.iter().zip(b).all(|(x, y)| x == y);
    }
    // Words at the start, the end and (beyond 8 bytes) the middle cover
    // every byte.
    word(a, 0) == word(b, 0)
        && word(a, n - 4) == word(b, n - 4)
        && (n <= 8 || word(a, 4) == word(b, 4))
        && n <= 12
}

/// The member names the protocol knows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Key {
    Execute,
    ExecOob,
    Arguments,
    Id,
    Qmp,
    Event,
    Return,
    Error,
    Data,
    Timestamp,
    Other,
}

impl Key {
    fn of(k: JsonStr<'_>) -> Key {
        const KEYS: [(&str, Key); 10] = [
            ("execute", Key::Execute),
            ("exec-oob", Key::ExecOob),
            ("arguments", Key::Arguments),
            ("id", Key::Id),
            ("QMP", Key::Qmp),
            ("event", Key::Event),
            ("return", Key::Return),
            ("error", Key::Error),
            ("data", Key::Data),
            ("timestamp", Key::Timestamp),
        ];
        // Bytes first: the one name of the key's length and first bytes,
        // compared once (a key equal to a name as it stands has no escape).
        // Only a key with a backslash may still decode to one.
        let raw = k.raw();
        let at = match (raw.len(), raw.first(), raw.get(2)) {
            (7, Some(b'e'), _) => 0,
            (8, _, _) => 1,
            (9, Some(b'a'), _) => 2,
            (2, _, _) => 3,
            (3, _, _) => 4,
            (5, _, Some(b'e')) => 5,
            (6, _, _) => 6,
            (5, _, Some(b'r')) => 7,
            (4, _, _) => 8,
            (9, _, _) => 9,
            _ => KEYS.len(),
        };
        if let Some((name, key)) = KEYS.get(at) {
            if same_short(raw, name.as_bytes()) {
                return *key;
            }
        }
        match raw {
            raw if raw.contains(&b'\\') => KEYS
                .iter()
                .find(|(s, _)| k.eq_str(s))
                .map_or(Key::Other, |(_, key)| *key),
            _ => Key::Other,
        }
    }
}

#[cfg(test)]
mod same_short_tests {
    #[test]
    fn is_slice_equality() {
        let names = ["", "a", "id", "QMP", "data", "event", "return", "execute"];
        let more = [
            "exec-oob",
            "arguments",
            "timestamp",
            "abcdefghij",
            "abcdefghijkl",
        ];
        for a in names.iter().chain(&more) {
            for b in names.iter().chain(&more) {
                assert_eq!(
                    super::same_short(a.as_bytes(), b.as_bytes()),
                    a == b,
                    "{a} {b}"
                );
                // One byte changed anywhere.
                for i in 0..a.len() {
                    let mut c = a.as_bytes().to_vec();
                    c[i] ^= 0x20;
                    assert!(!super::same_short(&c, a.as_bytes()), "{a} at {i}");
                }
            }
        }
    }
}
