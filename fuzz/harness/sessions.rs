//! Session-layer invariants shared by the fuzz targets `agent`, `client`
//! and `roundtrip` (`fuzz/fuzz_targets/`) and the corpus replay test
//! (`qmp-core/tests/fuzz_corpus.rs`), which include this file with `#[path]`.
//!
//! Each input is an op-script: a few parameter bytes, then ops (one op byte,
//! then its parameters; reads past the end give 0). Std is used freely here;
//! every invariant is an `assert!`.
//!
//! * [`agent`]: client bytes (garbage mixed with generated well-formed
//!   requests carrying unique integer ids) and application actions. Checks:
//!   every request handed out is answered exactly once (a token is moved
//!   into `complete`; it comes back only with `OutputFull`; tokens are never
//!   handed twice, tokens die at EOF);
//!   the whole output frames (strict JSON, ASCII, `\r\n` after each
//!   message) into greeting / return / error / event shapes only; in-band
//!   replies to generated requests come in id order; and no request is lost:
//!   a shadow framer fed exactly the consumed bytes counts the framed inputs
//!   per (re-serialised) `id`, and once the application has answered
//!   everything and input is drained, each connection epoch has exactly one
//!   reply per framed input (per id: never more; the only substitutes are
//!   the agent's id-less "reply too large" error, and `NoResponse` when even
//!   a short error with the request's id cannot fit the output buffer).
//! * [`client`]: server bytes (garbage, greetings, replies with matching or
//!   foreign ids, id-less errors, events carrying reply-like members) fed in
//!   random chunks, and API calls (execute_raw, cancel, clock, EOF). A
//!   shadow framer tells which message each `handle_input` call framed, and
//!   the event it produced is checked against the message's shape: events
//!   are `Event`, never `Resolved`; a reply resolves exactly the pending
//!   token with its id (else `Unmatched`); an id-less error resolves only the
//!   oldest pending in-band request. Tokens are unique and resolve at most
//!   once; `in_flight()` equals the pending count and never exceeds `N`;
//!   timeouts fire exactly at their deadline; after EOF every pending token
//!   resolves once, `Disconnected`.
//! * [`roundtrip`]: random names, arguments, ids, return values, error
//!   texts and events (valid Unicode strings with quotes, controls,
//!   non-ASCII, NUL; i64/u64 extremes; finite floats) go client -> agent
//!   and agent -> client and arrive semantically unchanged.
//!
//! Strings (roundtrip) are valid Unicode without noncharacters (U+FDD0..
//! U+FDEF, U+xxFFFE/U+xxFFFF): QEMU's JSON writer, which ours copies, prints
//! those as `\uFFFD` (replaced by U+FFFD in the generator).
//!
//! Number comparison (roundtrip): the agent re-prints numbers the way QEMU
//! does (integers as i64/u64, other numbers with `%.17g`) and serde_json
//! (without `float_roundtrip`) may parse a decimal a few ULPs off, so
//! numbers are equal when both are the same integer, or when as `f64` they
//! differ by at most 4 ULP-ish (relative 1e-15). Objects compare as maps
//! (QEMU reorders members).

#![allow(dead_code)]

use qmp_core::Instant;
use qmp_core::InsufficientSize;
use std::collections::{BTreeMap, HashMap, HashSet};

use qmp_core::agent::{
    Agent, AgentBuffers, AgentConfig, CommandSpec, CompleteError, EmitError, Emitted, EventOut,
    Reply, ReplyToken, SetupError, Throttle,
};
use qmp_core::client::{
    Client, ClientConfig, ClientEvent, ExecuteError, ExecuteOptions, Negotiation, Outcome,
};
use qmp_core::encode::{self, EncodeError, Ser, Style, Verbatim, WriteJson};
use qmp_core::json::{JsonKind, JsonStr, RawJson};
use qmp_core::message::Exec;
use qmp_core::scan::{self, Dialect, Frame, FrameError, Framer, FramerConfig};
use serde_json::Value;

// ---------------------------------------------------------------------------
// Common helpers

/// The op-script reader: bytes past the end read as 0.
struct Ops<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Ops<'a> {
    fn new(data: &'a [u8]) -> Self {
        Ops { data, pos: 0 }
    }
    fn done(&self) -> bool {
        self.pos >= self.data.len()
    }
    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }
    fn u64(&mut self) -> u64 {
        let mut v = 0u64;
        for _ in 0..8 {
            v = (v << 8) | u64::from(self.byte());
        }
        v
    }
    fn take(&mut self, n: usize) -> &'a [u8] {
        let start = self.pos.min(self.data.len());
        let end = (self.pos + n).min(self.data.len());
        self.pos += n;
        &self.data[start..end]
    }
}

fn unescape(s: JsonStr<'_>) -> Vec<u8> {
    let mut v = vec![0u8; s.unescaped_len()];
    s.unescape_into(&mut v).expect("unescape").to_vec()
}

/// Runs an encoder with a buffer grown to the size it asks for.
fn encode_vec(f: impl Fn(&mut [u8]) -> Result<usize, EncodeError>) -> Vec<u8> {
    let mut buf = vec![0u8; 256];
    loop {
        match f(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return buf;
            }
            Err(EncodeError::InsufficientSize(InsufficientSize { required })) => {
                assert!(required > buf.len(), "BufferTooSmall below the buffer size");
                buf = vec![0u8; required];
            }
            Err(e) => panic!("encode failed: {e:?}"),
        }
    }
}

/// Drops whitespace outside strings.
fn strip_ws(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut quote: Option<u8> = None;
    let mut escaped = false;
    for &b in bytes {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == q {
                quote = None;
            }
            out.push(b);
            continue;
        }
        match b {
            b' ' | b'\t' | b'\r' | b'\n' => {}
            b'"' | b'\'' => {
                quote = Some(b);
                out.push(b);
            }
            _ => out.push(b),
        }
    }
    out
}

/// A request id as the agent echoes it, whitespace-free: the comparison key
/// between framed inputs and replies.
fn id_key(raw: RawJson<'_>) -> Vec<u8> {
    strip_ws(&encode_vec(|o| encode::write_value(o, Style::CLIENT, &raw)))
}

/// How many leading bytes of `out` are whole messages, each with its
/// `\r\n` (pretty output has `\r\n` inside messages too, so a framer
/// tells where they end).
fn whole_messages(out: &[u8]) -> usize {
    let text = sanitize_nonfinite(out);
    let cfg = FramerConfig::new()
        .with_dialect(Dialect::Strict)
        .with_max_depth(1024);
    let mut framer = Framer::with_config(vec![0u8; text.len().max(1)], cfg);
    let (mut off, mut keep) = (0, 0);
    while off < text.len() {
        let fed = framer.feed(&text[off..]);
        off += fed.consumed;
        match fed.frame {
            Some(Frame::Message(_)) if text[off..].starts_with(b"\r\n") => keep = off + 2,
            Some(Frame::Message(_)) | None => {}
            Some(_) => break,
        }
        if fed.consumed == 0 {
            break;
        }
    }
    keep
}

/// Replaces the non-JSON numbers QEMU prints for doubles out of range
/// (`inf`, `-inf`, `nan`) outside strings with `0` and spaces (same length).
fn sanitize_nonfinite(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let mut in_str = false;
    let mut escaped = false;
    let mut i = 0;
    while i < out.len() {
        let b = out[i];
        if in_str {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_str = false;
            }
            i += 1;
            continue;
        }
        if b == b'"' {
            in_str = true;
        } else {
            for pat in [&b"-inf"[..], b"inf", b"nan"] {
                if out[i..].starts_with(pat) {
                    out[i] = b'0';
                    for x in &mut out[i + 1..i + pat.len()] {
                        *x = b' ';
                    }
                    i += pat.len() - 1;
                    break;
                }
            }
        }
        i += 1;
    }
    out
}

fn keys(m: &scan::Message<'_>) -> Vec<String> {
    let mut k: Vec<String> = m
        .members()
        .map(|mb| String::from_utf8(unescape(mb.key)).expect("utf-8 key"))
        .collect();
    k.sort();
    k
}

fn raw_keys(v: RawJson<'_>) -> Vec<String> {
    let mut k: Vec<String> = v
        .members()
        .map(|(key, _)| String::from_utf8(unescape(key)).expect("utf-8 key"))
        .collect();
    k.sort();
    k
}

// ---------------------------------------------------------------------------
// Agent

const AGENT_COMMANDS: &[CommandSpec<'static>] = &[
    CommandSpec::new("cmd-a"),
    CommandSpec::new("cmd-b"),
    CommandSpec::new("cmd-oob").oob(),
    CommandSpec::new("query-commands"),
];
const AGENT_THROTTLE: &[Throttle<'static>] = &[Throttle::new("EV_T", 500)];
/// Generated request ids start here (garbage rarely collides).
const ID_BASE: u64 = 7_000_000_000_000;
const TOO_LARGE: &str = "reply too large for the output buffer";

#[derive(Default)]
struct Epoch {
    /// Framed inputs per id key (`None`: no id).
    exp: HashMap<Option<Vec<u8>>, usize>,
    frames: usize,
    /// Requests the application could only drop (`NoResponse`).
    dropped: usize,
    /// Events emitted and sent, and held by throttling.
    sent_events: usize,
    throttled_events: usize,
}

#[derive(Debug, Clone, PartialEq)]
enum OutKind {
    Greeting,
    Return,
    Error(String),
    Event(String),
}

struct AgentRun<'a, 'b> {
    agent: Agent<'a, 'b>,
    shadow: Framer<Vec<u8>>,
    now: u64,
    to_agent: Vec<u8>,
    peek: Option<u8>,
    out: Vec<u8>,
    out_cap: usize,
    max_queue: usize,
    epochs: Vec<Epoch>,
    /// Output offsets where an EOF happened (output before it: old epoch).
    boundaries: Vec<usize>,
    outstanding: Vec<ReplyToken>,
    handed: HashSet<u32>,
    retired: Vec<u32>,
    next_id: u64,
    gen_in_band: HashSet<Vec<u8>>,
}

impl AgentRun<'_, '_> {
    fn epoch(&mut self) -> &mut Epoch {
        self.epochs.last_mut().expect("an epoch")
    }

    fn shadow_feed(&mut self, mut rest: &[u8]) {
        while !rest.is_empty() {
            let fed = self.shadow.feed(rest);
            rest = &rest[fed.consumed..];
            let key = match fed.frame {
                None => continue,
                Some(Frame::Message(m)) => {
                    if m.is_object() {
                        Some(m.get("id").map(id_key))
                    } else {
                        Some(None)
                    }
                }
                Some(Frame::Error(_)) => Some(None),
                Some(_) => panic!("unknown frame kind"),
            };
            if let Some(key) = key {
                let e = self.epochs.last_mut().expect("an epoch");
                *e.exp.entry(key).or_default() += 1;
                e.frames += 1;
            }
        }
    }

    /// At EOF: a frame the agent's framer may have ended on the byte it
    /// looked at without consuming counts for the ending epoch.
    fn shadow_peek(&mut self) {
        let Some(b) = self.peek.take() else {
            return;
        };
        let fed = self.shadow.feed(&[b]);
        if fed.consumed == 0 && fed.frame.is_some() {
            let e = self.epochs.last_mut().expect("an epoch");
            let key = match fed.frame {
                Some(Frame::Message(m)) if m.is_object() => m.get("id").map(id_key),
                _ => None,
            };
            *e.exp.entry(key).or_default() += 1;
            e.frames += 1;
        }
    }

    fn feed(&mut self, max: usize) -> usize {
        let n = self.to_agent.len().min(max);
        let input = self.to_agent[..n].to_vec();
        let used = self
            .agent
            .handle_input(Instant::from_millis(self.now), &input);
        // The byte after the consumed ones may have been looked at (it ends
        // a keyword or number): the agent may have answered a frame that
        // the shadow, fed only consumed bytes, has not ended yet.
        self.peek = self.to_agent.get(used).copied().filter(|_| used < n);
        assert!(used <= n, "consumed {used} of {n}");
        self.shadow_feed(&input[..used]);
        self.to_agent.drain(..used);
        assert!(
            self.agent.queued() <= self.max_queue.max(1),
            "queue {} over its limit",
            self.agent.queued()
        );
        self.poll_requests();
        used
    }

    fn poll_requests(&mut self) {
        let oob = self.agent.oob_enabled();
        while let Some(req) = self.agent.poll_request() {
            let name = unescape(req.name);
            assert!(
                [&b"cmd-a"[..], b"cmd-b", b"cmd-oob"].contains(&&name[..]),
                "handed out {:?}",
                String::from_utf8_lossy(&name)
            );
            if req.exec == Exec::ExecOob {
                assert!(oob && name == b"cmd-oob", "exec-oob handed out wrongly");
            }
            if let Some(a) = req.arguments {
                assert_eq!(a.kind(), JsonKind::Object, "arguments not an object");
            }
            assert!(self.handed.insert(req.token.id()), "token handed out twice");
            self.outstanding.push(req.token);
            assert!(
                self.outstanding.len() <= 2,
                "more than one in-band + one OOB"
            );
        }
    }

    fn transmit(&mut self, size: usize) -> bool {
        let mut buf = vec![0u8; size];
        match self.agent.poll_transmit(&mut buf) {
            Some(n) => {
                assert!(n > 0 && n <= size, "poll_transmit returned {n} for {size}");
                self.out.extend_from_slice(&buf[..n]);
                true
            }
            None => {
                assert_eq!(self.agent.pending_output(), 0, "None with output pending");
                false
            }
        }
    }

    fn drain_output(&mut self) {
        while self.transmit(4096) {}
    }

    /// Answers request `i` of the outstanding ones; false on `OutputFull`.
    fn complete(&mut self, i: usize, how: u8) -> bool {
        let token = self.outstanding.remove(i);
        let id = token.id();
        let small = scan::validate(b"{}", FramerConfig::new()).unwrap();
        let mid = scan::validate(
            br#"{"status": "running", "singlestep": false, "running": true}"#,
            FramerConfig::new(),
        )
        .unwrap();
        let long_text = "x\u{e9}\"\n".repeat(40);
        let r = match how % 4 {
            0 => self.agent.complete(token, Reply::Return(&small)),
            1 => self.agent.complete(token, Reply::Return(&mid)),
            2 => self.agent.complete(token, Reply::Return(&Ser(&long_text))),
            _ => self.agent.complete(
                token,
                Reply::Error {
                    class: "GenericError",
                    desc: "fuzz \u{e9}rror",
                },
            ),
        };
        match r {
            Ok(()) => {
                self.retired.push(id);
                true
            }
            // Never fits: the agent answered in the application's place
            // (its error, with the id if that fits, else id-less).
            Err(CompleteError::InsufficientSize(InsufficientSize { required })) => {
                assert!(required > self.out_cap, "InsufficientSize {required} fits");
                self.retired.push(id);
                true
            }
            Err(CompleteError::OutputFull { token, required }) => {
                assert_eq!(token.id(), id, "OutputFull gave another token back");
                assert!(required <= self.out_cap, "OutputFull for {required}");
                assert!(
                    required > self.out_cap - self.agent.pending_output(),
                    "OutputFull with room"
                );
                self.outstanding.insert(i, token);
                false
            }
            Err(e) => panic!("complete: {e:?}"),
        }
    }

    fn gen_request(&mut self, ops: &mut Ops<'_>) {
        let sel = ops.byte();
        let id = ID_BASE + self.next_id;
        self.next_id += 1;
        let (exec, name) = match sel % 8 {
            0 | 1 => ("execute", "cmd-a"),
            2 => ("execute", "cmd-b"),
            3 => ("exec-oob", "cmd-oob"),
            4 => ("execute", "cmd-oob"),
            5 => ("exec-oob", "cmd-a"),
            6 => ("execute", "no-such-command"),
            _ => ("execute", "qmp_capabilities"),
        };
        let args = match (sel >> 3) % 4 {
            0 => "",
            1 => r#", "arguments": {}"#,
            2 => r#", "arguments": {"enable": ["oob"]}"#,
            _ => r#", "arguments": {"x": [1, "\u00e9"]}"#,
        };
        let text = if sel & 0x20 != 0 {
            format!(r#"{{"id": {id}, "{exec}": "{name}"{args}}}"#)
        } else {
            format!(r#"{{"{exec}": "{name}"{args}, "id": {id}}}"#)
        };
        self.to_agent.extend_from_slice(text.as_bytes());
        if sel & 0x40 != 0 {
            self.to_agent.extend_from_slice(b"\r\n");
        }
        if exec == "execute" {
            self.gen_in_band.insert(id.to_string().into_bytes());
        }
    }

    fn emit(&mut self, ops: &mut Ops<'_>) {
        let sel = ops.byte();
        let name = ["EV_A", "EV_T", "SHUTDOWN", "EV_T"][usize::from(sel % 4)];
        let data = scan::validate(
            br#"{"guest": true, "reason": "host-qmp-quit"}"#,
            FramerConfig::new(),
        )
        .unwrap();
        let key = ["k1", "k2"][usize::from((sel >> 3) & 1)];
        let mut ev = EventOut::new(name);
        if sel & 4 != 0 {
            ev = ev.data(&data as &dyn WriteJson);
        }
        ev = if sel & 0x20 != 0 {
            ev.timestamp(-1, -1)
        } else {
            ev.timestamp(i64::from(ops.byte()), 999_999)
        };
        if sel & 0x40 != 0 {
            ev = ev.throttle_key(key);
        }
        match self.agent.emit(Instant::from_millis(self.now), &ev) {
            Ok(Emitted::Sent) => {
                assert!(self.agent.is_negotiated());
                self.epoch().sent_events += 1;
            }
            Ok(Emitted::Throttled) => self.epoch().throttled_events += 1,
            Ok(Emitted::NotNegotiated) => assert!(!self.agent.is_negotiated()),
            Ok(_) => {}
            Err(EmitError::OutputFull { required }) => assert!(required <= self.out_cap),
            Err(EmitError::InsufficientSize(_) | EmitError::ThrottleSlotsBusy) => {}
            Err(e) => panic!("emit: {e:?}"),
        }
    }

    fn eof(&mut self) {
        // Output not yet transmitted is for a peer that is gone: the reset
        // drops it, and the next epoch starts with a greeting. A message
        // transmitted in part went to that peer too: its stream ends with
        // the last whole message (QEMU drops the rest with the connection).
        let start = self.boundaries.last().copied().unwrap_or(0);
        let keep = start + whole_messages(&self.out[start..]);
        self.out.truncate(keep);
        let boundary = self.out.len();
        self.shadow_peek();
        self.agent.handle_eof();
        assert!(!self.agent.is_negotiated(), "negotiation survived EOF");
        assert!(
            self.agent.pending_output() > 0,
            "no greeting for the next peer"
        );
        self.shadow.reset();
        self.to_agent.clear();
        self.boundaries.push(boundary);
        self.epochs.push(Epoch::default());
        for t in std::mem::take(&mut self.outstanding) {
            assert_eq!(
                self.agent.complete(t, Reply::NoResponse),
                Err(CompleteError::UnknownToken),
                "token still known after EOF"
            );
        }
    }

    /// The application answers everything, input is drained, output sent.
    fn settle(&mut self) {
        self.now = self.now.saturating_add(1_000_000);
        self.agent.handle_timeout(Instant::from_millis(self.now));
        for _ in 0..100_000 {
            let mut progress = false;
            self.poll_requests();
            while !self.outstanding.is_empty() {
                if !self.complete(0, 0) {
                    break;
                }
                progress = true;
            }
            if !self.to_agent.is_empty() && self.feed(usize::MAX) > 0 {
                progress = true;
            }
            self.poll_requests();
            while self.transmit(4096) {
                progress = true;
            }
            self.agent.handle_timeout(Instant::from_millis(self.now));
            if self.agent.pending_output() > 0 {
                progress = true;
            }
            if !progress {
                break;
            }
        }
        assert!(
            self.outstanding.is_empty(),
            "requests left unanswerable: {}",
            self.outstanding.len()
        );
        assert!(
            self.to_agent.is_empty(),
            "input never consumed ({} bytes): the agent stalls",
            self.to_agent.len()
        );
        assert_eq!(self.agent.pending_output(), 0);
    }

    /// Checks the whole output stream.
    fn check_output(&self, pretty: bool) {
        let raw = &self.out;
        assert!(raw.iter().all(|b| b.is_ascii()), "non-ASCII output");
        let text = sanitize_nonfinite(raw);
        let cfg = FramerConfig::new()
            .with_dialect(Dialect::Strict)
            .with_max_depth(1024);
        let mut framer = Framer::with_config(vec![0u8; text.len().max(1)], cfg);
        let mut off = 0;
        let mut prev_end = 0usize;
        let mut msgs: Vec<(OutKind, Option<Vec<u8>>, usize)> = Vec::new();
        while off < text.len() {
            let fed = framer.feed(&text[off..]);
            off += fed.consumed;
            match fed.frame {
                None => {}
                Some(Frame::Message(m)) => {
                    let len = m.as_bytes().len();
                    let start = off - len;
                    let gap = &text[prev_end..start];
                    let want: &[u8] = if prev_end == 0 { b"" } else { b"\r\n" };
                    assert_eq!(gap, want, "bytes between messages at {start}");
                    prev_end = off;
                    let (kind, id) = shape(&m);
                    let base = m.as_bytes().as_ptr() as usize;
                    let id = id.map(|span| {
                        // The id as printed (inf/nan included), from the raw stream.
                        let s = start + (span.as_ptr() as usize - base);
                        strip_ws(&raw[s..s + span.len()])
                    });
                    msgs.push((kind, id, off));
                }
                Some(Frame::Error(e)) => panic!(
                    "agent output does not frame ({e:?}) near {:?}",
                    String::from_utf8_lossy(&text[off.saturating_sub(80)..off])
                ),
                Some(_) => panic!("unknown frame"),
            }
        }
        if !msgs.is_empty() {
            assert_eq!(&text[prev_end..], b"\r\n", "output not ended by CRLF");
        }
        let _ = pretty;

        // A greeting first in every epoch, once.
        let epoch_of = |end: usize| self.boundaries.iter().filter(|b| **b < end).count();
        for e in 0..self.epochs.len() {
            let mine: Vec<_> = msgs.iter().filter(|m| epoch_of(m.2) == e).collect();
            if mine.is_empty() {
                // An epoch that ended before its greeting was transmitted.
                continue;
            }
            assert_eq!(mine[0].0, OutKind::Greeting, "epoch {e}: no greeting first");
            assert_eq!(
                mine.iter().filter(|m| m.0 == OutKind::Greeting).count(),
                1,
                "epoch {e}: several greetings"
            );
        }
        // Events per epoch: never more than emitted; none lost in the last
        // (settled) one. (An EOF drops what its peer was not sent.)
        for (e, ep) in self.epochs.iter().enumerate() {
            let events = msgs
                .iter()
                .filter(|m| matches!(m.0, OutKind::Event(_)) && epoch_of(m.2) == e)
                .count();
            if e + 1 == self.epochs.len() {
                assert!(
                    events >= ep.sent_events,
                    "epoch {e}: events lost: {events} < {}",
                    ep.sent_events
                );
            }
            assert!(
                events <= ep.sent_events + ep.throttled_events,
                "epoch {e}: more events than emitted"
            );
        }
        // Replies per epoch.
        let n = self.epochs.len();
        let mut got: Vec<HashMap<Option<Vec<u8>>, usize>> = vec![HashMap::new(); n];
        let mut substitutes = vec![0usize; n];
        let mut totals = vec![0usize; n];
        let mut order: Vec<Vec<u8>> = Vec::new();
        for (kind, id, end) in &msgs {
            if !matches!(kind, OutKind::Return | OutKind::Error(_)) {
                continue;
            }
            let e = self.boundaries.iter().filter(|b| **b < *end).count();
            totals[e] += 1;
            if id.is_none() && *kind == OutKind::Error(TOO_LARGE.into()) {
                substitutes[e] += 1;
                continue;
            }
            let c = got[e].entry(id.clone()).or_default();
            *c += 1;
            let exp = self.epochs[e].exp.get(id).copied().unwrap_or(0);
            assert!(
                *c <= exp,
                "epoch {e}: {c} replies with id {:?}, {exp} such inputs",
                id.as_ref().map(|i| String::from_utf8_lossy(i).into_owned())
            );
            if let Some(id) = id {
                order.push(id.clone());
            }
        }
        for (e, ep) in self.epochs.iter().enumerate() {
            let accounted = totals[e] + ep.dropped;
            if e + 1 == n {
                assert_eq!(
                    accounted, ep.frames,
                    "epoch {e}: {} replies (+{} dropped by the app) for {} framed inputs",
                    totals[e], ep.dropped, ep.frames
                );
            } else {
                assert!(
                    accounted <= ep.frames,
                    "epoch {e}: more replies than inputs"
                );
            }
        }
        // In-band order of generated requests (ids unique in the input).
        let all_exp = |k: &Vec<u8>| -> usize {
            self.epochs
                .iter()
                .map(|e| e.exp.get(&Some(k.clone())).copied().unwrap_or(0))
                .sum()
        };
        let seq: Vec<u64> = order
            .iter()
            .filter(|k| self.gen_in_band.contains(*k) && all_exp(k) == 1)
            .map(|k| std::str::from_utf8(k).unwrap().parse().unwrap())
            .collect();
        assert!(
            seq.windows(2).all(|w| w[0] < w[1]),
            "in-band replies out of order: {seq:?}"
        );
    }
}

/// The shape of one agent output message, and its `id` value.
fn shape<'m>(m: &scan::Message<'m>) -> (OutKind, Option<&'m [u8]>) {
    let k = keys(m);
    let k: Vec<&str> = k.iter().map(String::as_str).collect();
    let id = m.get("id").map(|v| v.as_bytes());
    let string = |v: Option<RawJson<'_>>| -> String {
        let s = v.and_then(|v| v.as_json_str()).expect("a string member");
        String::from_utf8(unescape(s)).expect("utf-8")
    };
    match k.as_slice() {
        ["QMP"] => {
            let q = m.get("QMP").unwrap();
            assert_eq!(raw_keys(q), ["capabilities", "version"], "greeting shape");
            (OutKind::Greeting, None)
        }
        ["return"] | ["id", "return"] => (OutKind::Return, id),
        ["error"] | ["error", "id"] => {
            let e = m.get("error").unwrap();
            assert_eq!(raw_keys(e), ["class", "desc"], "error shape");
            let _ = string(e.get("class"));
            (OutKind::Error(string(e.get("desc"))), id)
        }
        ["event", "timestamp"] | ["data", "event", "timestamp"] => {
            let t = m.get("timestamp").unwrap();
            assert_eq!(raw_keys(t), ["microseconds", "seconds"], "timestamp shape");
            assert!(t.get("seconds").unwrap().as_i64().is_some());
            assert!(t.get("microseconds").unwrap().as_i64().is_some());
            (OutKind::Event(string(m.get("event"))), None)
        }
        other => panic!("output message of no QMP shape: {other:?}"),
    }
}

/// The `agent` target.
pub fn agent(data: &[u8]) {
    let mut ops = Ops::new(data);
    let (p0, p1, p2) = (ops.byte(), ops.byte(), ops.byte());
    let framer_len = [8, 32, 64, 128, 256, 512, 1024, 2048][usize::from(p0 & 7)];
    let out_len = [160, 256, 512, 1024, 4096, 300, 700, 2000][usize::from((p0 >> 3) & 7)];
    let extra_queue = [0, 1, 2, 4][usize::from(p0 >> 6)] * framer_len;
    let max_queue = 1 + usize::from(p1 & 7);
    let pretty = p1 & 8 != 0;
    let offer_oob = p1 & 16 == 0;
    let throttle_len = [0, 64, 256, 1024][usize::from((p1 >> 5) & 3)];
    let depth = [1024, 2, 4, 16][usize::from(p2 & 3)];

    let framer_cfg = FramerConfig::new().with_max_depth(depth);
    let cfg = AgentConfig::new((10, 0, 2), "fuzz", AGENT_COMMANDS)
        .with_oob(offer_oob)
        .with_style(if pretty {
            Style::QMP_PRETTY
        } else {
            Style::QMP
        })
        .with_throttle(AGENT_THROTTLE)
        .with_max_queue(max_queue)
        .with_framer(framer_cfg);

    let mut fbuf = vec![0u8; framer_len];
    let mut qbuf = vec![0u8; AgentBuffers::queue_required(framer_len) + extra_queue];
    let mut obuf = vec![0u8; out_len];
    let mut tbuf = vec![0u8; throttle_len];
    let bufs = AgentBuffers::new(&mut fbuf, &mut qbuf, &mut obuf).with_throttle(&mut tbuf);
    let agent = match Agent::new(cfg, bufs) {
        Ok(a) => a,
        Err(SetupError::Output(InsufficientSize { required })) => {
            assert!(required > out_len);
            return;
        }
        Err(e) => panic!("setup: {e:?}"),
    };
    let mut run = AgentRun {
        agent,
        shadow: Framer::with_config(vec![0u8; framer_len], framer_cfg),
        now: 0,
        to_agent: Vec::new(),
        peek: None,
        out: Vec::new(),
        out_cap: out_len,
        max_queue,
        epochs: vec![Epoch::default()],
        boundaries: Vec::new(),
        outstanding: Vec::new(),
        handed: HashSet::new(),
        retired: Vec::new(),
        next_id: 0,
        gen_in_band: HashSet::new(),
    };
    let mut steps = 0;
    while !ops.done() && steps < 4096 {
        steps += 1;
        match ops.byte() % 10 {
            0 => {
                let n = usize::from(ops.byte() % 48);
                let g = ops.take(n);
                run.to_agent.extend_from_slice(g);
            }
            1..=3 => run.gen_request(&mut ops),
            4 => {
                let max = usize::from(ops.byte()) * 4 + 1;
                run.feed(max);
            }
            5 => {
                let b = ops.byte();
                let size = if b & 0x80 != 0 {
                    4096
                } else {
                    1 + usize::from(b % 64)
                };
                run.transmit(size);
            }
            6 => {
                let (i, how) = (ops.byte(), ops.byte());
                if !run.outstanding.is_empty() {
                    let i = usize::from(i) % run.outstanding.len();
                    run.complete(i, how);
                }
            }
            7 => run.emit(&mut ops),
            8 => {
                run.now += u64::from(ops.byte()) * 8;
                run.agent.handle_timeout(Instant::from_millis(run.now));
            }
            _ => match ops.byte() % 8 {
                0 => run.eof(),
                1..=3 => run.drain_output(),
                _ => {
                    run.feed(usize::MAX);
                }
            },
        }
        for t in &run.retired {
            assert!(!run.outstanding.iter().any(|o| o.id() == *t));
        }
        run.poll_requests();
    }
    run.settle();
    run.check_output(pretty);
}

// ---------------------------------------------------------------------------
// Client

const CLIENT_N: usize = 4;

#[derive(Debug, Clone, Copy)]
struct Pending {
    deadline: Option<u64>,
    oob: bool,
}

/// An owned summary of a `ClientEvent`.
#[derive(Debug, Clone, PartialEq)]
enum Ev {
    Greeting,
    Negotiated,
    NegotiationFailed,
    Return(u64),
    Error(u64),
    Timeout(u64),
    Cancelled(u64),
    Disconnected(u64),
    Oversized(u64),
    /// A malformed message ended the call it stood for (its own id, or the
    /// in-band call whose reply it stood in place of).
    Malformed(u64),
    Event(Vec<u8>),
    Unmatched,
    Orphan,
    Unknown,
    Framing(bool),
}

/// What a framed server message is, by its members (the client's own
/// precedence: greeting, event, return, error).
#[derive(Debug)]
enum Shape {
    Greeting,
    Event(Vec<u8>),
    Return(Option<Option<u64>>),
    Error(Option<Option<u64>>),
    Unknown,
}

fn server_shape(m: &scan::Message<'_>) -> Shape {
    if !m.is_object() {
        return Shape::Unknown;
    }
    if m.get("QMP").is_some_and(|q| q.kind() == JsonKind::Object) {
        return Shape::Greeting;
    }
    if let Some(n) = m.get("event").and_then(|e| e.as_json_str()) {
        return Shape::Event(unescape(n));
    }
    let id = m.get("id").map(|i| i.as_u64());
    if m.get("return").is_some() {
        return Shape::Return(id);
    }
    if m.get("error").is_some() {
        return Shape::Error(id);
    }
    Shape::Unknown
}

struct ClientRun<'b> {
    client: Client<&'b mut [u8], CLIENT_N>,
    shadow: Framer<Vec<u8>>,
    now: u64,
    to_client: Vec<u8>,
    pending: BTreeMap<u64, Pending>,
    seen: HashSet<u64>,
    tokens: HashMap<u64, qmp_core::client::Token>,
    resolved: HashSet<u64>,
    last_id: u64,
    closed: bool,
    greeted: bool,
}

impl ClientRun<'_> {
    fn poll(&mut self) -> Vec<Ev> {
        let mut evs = Vec::new();
        while let Some(ev) = self.client.poll_event() {
            let e = match ev {
                ClientEvent::Greeting(_) => Ev::Greeting,
                ClientEvent::Negotiated { .. } => Ev::Negotiated,
                ClientEvent::NegotiationFailed { .. } => Ev::NegotiationFailed,
                ClientEvent::Resolved { token, outcome } => {
                    let id = token.id();
                    assert!(
                        self.pending.remove(&id).is_some(),
                        "token {id} resolved but not pending (resolved before: {})",
                        self.resolved.contains(&id)
                    );
                    assert!(self.resolved.insert(id), "token {id} resolved twice");
                    match outcome {
                        Outcome::Return(_) => Ev::Return(id),
                        Outcome::Error { .. } => Ev::Error(id),
                        Outcome::Timeout => Ev::Timeout(id),
                        Outcome::Cancelled => Ev::Cancelled(id),
                        Outcome::Disconnected => Ev::Disconnected(id),
                        Outcome::Oversized { .. } => Ev::Oversized(id),
                        Outcome::Malformed(_) => Ev::Malformed(id),
                        _ => panic!("unknown outcome"),
                    }
                }
                ClientEvent::Event(e) => Ev::Event(unescape(e.name)),
                ClientEvent::Unmatched { .. } => Ev::Unmatched,
                ClientEvent::OrphanError { .. } => Ev::Orphan,
                ClientEvent::Unknown(_) => Ev::Unknown,
                ClientEvent::FramingError(e) => {
                    Ev::Framing(matches!(e, FrameError::Oversized { .. }))
                }
                _ => panic!("unknown client event"),
            };
            evs.push(e);
            assert!(evs.len() <= 2 * CLIENT_N + 4, "poll_event does not end");
        }
        assert!(!self.client.has_event());
        assert_eq!(
            self.client.in_flight(),
            self.pending.len(),
            "in_flight disagrees with the pending tokens"
        );
        assert!(self.client.in_flight() <= CLIENT_N);
        evs
    }

    fn oldest_in_band(&self) -> Option<u64> {
        self.pending.iter().find(|(_, p)| !p.oob).map(|(id, _)| *id)
    }

    /// Checks the events of one `handle_input` call against what it framed.
    fn check_input(
        &mut self,
        consumed: &[u8],
        peek: Option<u8>,
        pre: &BTreeMap<u64, Pending>,
        evs: &[Ev],
    ) {
        // Timeouts applied first.
        let mut rest_evs = evs;
        while let Some((Ev::Timeout(id), tail)) = rest_evs.split_first() {
            let d = pre.get(id).and_then(|p| p.deadline);
            assert!(d.is_some_and(|d| d <= self.now), "early timeout of {id}");
            rest_evs = tail;
        }
        assert!(
            self.pending
                .values()
                .all(|p| p.deadline.is_none_or(|d| d > self.now)),
            "an expired request was not timed out"
        );
        let pre: BTreeMap<u64, Pending> = pre
            .iter()
            .filter(|(id, _)| !evs.contains(&Ev::Timeout(**id)))
            .map(|(k, v)| (*k, *v))
            .collect();
        let oldest_in_band = pre.iter().find(|(_, p)| !p.oob).map(|(id, _)| *id);
        // What the shadow framer saw in these bytes.
        let mut frames = Vec::new();
        let mut rest = consumed;
        while !rest.is_empty() {
            let fed = self.shadow.feed(rest);
            rest = &rest[fed.consumed..];
            match fed.frame {
                None => {}
                Some(Frame::Message(m)) => frames.push(Ok(server_shape(&m))),
                Some(Frame::Error(e)) => {
                    frames.push(Err(matches!(e, FrameError::Oversized { .. })))
                }
                Some(_) => panic!("unknown frame"),
            }
        }
        // The client's framer may end a frame on a byte it looked at
        // without consuming it (the end of a keyword or number).
        if frames.is_empty() && !rest_evs.is_empty() {
            if let Some(b) = peek {
                let fed = self.shadow.feed(&[b]);
                assert_eq!(fed.consumed, 0, "event without a frame: {rest_evs:?}");
                match fed.frame {
                    Some(Frame::Message(m)) => frames.push(Ok(server_shape(&m))),
                    Some(Frame::Error(e)) => {
                        frames.push(Err(matches!(e, FrameError::Oversized { .. })))
                    }
                    _ => {}
                }
            }
        }
        assert!(
            frames.len() <= 1,
            "client consumed past a message: {frames:?}"
        );
        let Some(frame) = frames.pop() else {
            assert!(rest_evs.is_empty(), "events without a frame: {rest_evs:?}");
            return;
        };
        assert_eq!(
            rest_evs.len(),
            1,
            "one event per frame: {frame:?} gave {rest_evs:?}"
        );
        let ev = &rest_evs[0];
        match (&frame, ev) {
            (Ok(Shape::Event(name)), Ev::Event(got)) => assert_eq!(name, got),
            (Ok(Shape::Event(_)), other) => panic!("an event delivered as {other:?}"),
            (Ok(Shape::Greeting), Ev::Greeting) => {}
            (Ok(Shape::Return(Some(Some(id)))), e) if pre.contains_key(id) => {
                assert_eq!(e, &Ev::Return(*id), "reply for pending {id}")
            }
            (Ok(Shape::Error(Some(Some(id)))), e) if pre.contains_key(id) => {
                assert_eq!(e, &Ev::Error(*id), "error for pending {id}")
            }
            (Ok(Shape::Return(Some(_)) | Shape::Error(Some(_))), Ev::Unmatched) => {}
            (Ok(Shape::Return(None)), Ev::Negotiated | Ev::Unmatched) => {}
            (Ok(Shape::Error(None)), Ev::NegotiationFailed | Ev::Orphan | Ev::Unmatched) => {}
            (Ok(Shape::Error(None)), Ev::Error(id)) => {
                assert_eq!(
                    Some(*id),
                    oldest_in_band,
                    "id-less error not for the oldest"
                );
            }
            (Ok(Shape::Unknown), Ev::Unknown) => {}
            // An oversized reply ends the call its id names when the id
            // could be read, else the oldest in-band one (the client's rule
            // since malformed messages end their calls); `poll` checked it
            // was pending.
            (Err(true), Ev::Oversized(id)) => {
                assert!(pre.contains_key(id), "oversized for {id}, not pending")
            }
            (Err(_), Ev::Framing(_)) => {}
            // (`poll` checked that the call was pending and resolves once.)
            (Err(false), Ev::Malformed(id)) => {
                assert!(pre.contains_key(id), "malformed for {id}, not pending")
            }
            (f, e) => panic!("frame {f:?} produced {e:?}"),
        }
    }

    fn deliver(&mut self, ops: &mut Ops<'_>, limit: usize) {
        let limit = limit.min(self.to_client.len());
        let max_chunk = 1 + usize::from(ops.byte());
        let mut off = 0;
        let mut seed = u64::from(ops.byte()) | 1;
        let mut idle = 0;
        while off < limit {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let end = (off + 1 + (seed as usize) % max_chunk).min(limit);
            let chunk = self.to_client[off..end].to_vec();
            let pre = self.pending.clone();
            let n = self
                .client
                .handle_input(Instant::from_millis(self.now), &chunk);
            assert!(n <= chunk.len());
            let evs = self.poll();
            if self.closed {
                assert_eq!(n, chunk.len(), "closed client must discard all input");
                assert!(evs.is_empty());
            } else {
                self.check_input(&chunk[..n], chunk.get(n).copied(), &pre, &evs);
                if n == 0 && evs.is_empty() {
                    idle += 1;
                    assert!(idle < 2, "client stalls on {chunk:?}");
                } else {
                    idle = 0;
                }
            }
            off += n;
        }
        self.to_client.drain(..off);
    }

    fn execute(&mut self, ops: &mut Ops<'_>) {
        let sel = ops.byte();
        let name =
            ["query-status", "cmd-x", "qmp_capabilities", "x-\u{e9}\"\\"][usize::from(sel % 4)];
        let args_text: Option<&[u8]> = match (sel >> 2) % 4 {
            0 => None,
            1 => Some(b"{}"),
            2 => Some(br#"{"enable":["oob"]}"#),
            _ => Some(br#"{"a": [1, 2.5, "\u00e9"], "b": null}"#),
        };
        let args = args_text.map(|t| scan::validate(t, FramerConfig::new()).unwrap());
        let mut opts = ExecuteOptions::new().oob(sel & 0x10 != 0);
        let timeout = (sel & 0x20 != 0).then(|| u64::from(ops.byte()) * 4);
        if let Some(ms) = timeout {
            opts = opts.timeout_ms(ms);
        }
        let out_size = if sel & 0x40 != 0 {
            usize::from(ops.byte())
        } else {
            1024
        };
        let mut out = vec![0u8; out_size];
        let in_flight = self.client.in_flight();
        match self
            .client
            .execute_raw(Instant::from_millis(self.now), name, args, opts, &mut out)
        {
            Ok((token, n)) => {
                let id = token.id();
                assert!(self.seen.insert(id), "token {id} reused");
                self.tokens.insert(id, token);
                assert!(id > self.last_id, "token ids not increasing");
                self.last_id = id;
                assert!(!self.closed);
                assert!(n <= out_size);
                // The last message written carries this id.
                let mut f = Framer::new(vec![0u8; n.max(1)]);
                let mut rest = &out[..n];
                let mut last = None;
                while !rest.is_empty() {
                    let fed = f.feed(rest);
                    rest = &rest[fed.consumed..];
                    match fed.frame {
                        Some(Frame::Message(m)) => last = m.get("id").and_then(|i| i.as_u64()),
                        Some(Frame::Error(e)) => panic!("execute wrote bad JSON: {e:?}"),
                        _ => {}
                    }
                }
                assert_eq!(last, Some(id), "command id");
                self.pending.insert(
                    id,
                    Pending {
                        deadline: timeout.map(|ms| self.now + ms),
                        oob: sel & 0x10 != 0,
                    },
                );
            }
            Err(ExecuteError::TooManyInFlight) => {
                assert_eq!(in_flight, CLIENT_N, "TooManyInFlight with free slots")
            }
            Err(ExecuteError::InsufficientSize(InsufficientSize { required })) => {
                assert!(required > out_size)
            }
            Err(ExecuteError::Closed) => assert!(self.closed),
            Err(ExecuteError::NotReady) => assert!(!self.greeted),
            Err(ExecuteError::OobNotNegotiated) => assert!(!self.client.oob_enabled()),
            Err(ExecuteError::TooManyInBand) => {}
            Err(e) => panic!("execute: {e:?}"),
        }
        self.poll();
    }

    fn pick_id(&self, ops: &mut Ops<'_>) -> String {
        let b = ops.byte();
        let pending: Vec<u64> = self.pending.keys().copied().collect();
        match b % 6 {
            0..=2 if !pending.is_empty() => {
                pending[usize::from(b >> 3) % pending.len()].to_string()
            }
            3 if self.last_id > 0 => (1 + u64::from(b >> 3) % self.last_id).to_string(),
            4 => ["\"1\"", "1.0", "-1", "18446744073709551616", "[1]", "null"]
                [usize::from(b >> 3) % 6]
                .to_string(),
            _ => u64::from(b >> 3).to_string(),
        }
    }
}

/// The `client` target.
pub fn client(data: &[u8]) {
    let mut ops = Ops::new(data);
    let p0 = ops.byte();
    let buf_len = [16, 64, 128, 256, 512, 1024, 4096, 48][usize::from(p0 & 7)];
    let manual = p0 & 8 != 0;
    let want_oob = p0 & 16 == 0;
    let max_in_band = 1 + usize::from(p0 >> 5);
    let cfg = ClientConfig::new()
        .with_negotiation(if manual {
            Negotiation::Manual
        } else {
            Negotiation::Auto
        })
        .with_oob(want_oob)
        .with_max_in_band(max_in_band);
    let mut buf = vec![0u8; buf_len];
    let mut run = ClientRun {
        client: Client::with_config(&mut buf[..], cfg),
        // The client's framer settings (`ClientConfig::new`: duplicate keys
        // are not checked).
        shadow: Framer::with_config(vec![0u8; buf_len], cfg.framer()),
        now: 0,
        to_client: Vec::new(),
        pending: BTreeMap::new(),
        seen: HashSet::new(),
        tokens: HashMap::new(),
        resolved: HashSet::new(),
        last_id: 0,
        closed: false,
        greeted: false,
    };
    let mut steps = 0;
    while !ops.done() && steps < 4096 {
        steps += 1;
        match ops.byte() % 12 {
            0 => {
                let n = usize::from(ops.byte() % 48);
                let g = ops.take(n);
                run.to_client.extend_from_slice(g);
            }
            1 => {
                let caps = if ops.byte() & 1 == 0 {
                    r#"["oob"]"#
                } else {
                    "[]"
                };
                let g = format!(
                    r#"{{"QMP": {{"version": {{"qemu": {{"micro": 2, "minor": 0, "major": 10}}, "package": ""}}, "capabilities": {caps}}}}}"#
                );
                run.to_client.extend_from_slice(g.as_bytes());
                run.to_client.extend_from_slice(b"\r\n");
            }
            2 => run.to_client.extend_from_slice(b"{\"return\": {}}\r\n"),
            3 | 4 => run.execute(&mut ops),
            5 => {
                let id = run.pick_id(&mut ops);
                let m = if ops.byte() & 1 == 0 {
                    format!(r#"{{"return": {{"v": [{id}]}}, "id": {id}}}"#)
                } else {
                    format!(
                        r#"{{"id": {id}, "error": {{"class": "GenericError", "desc": "d\u00e9"}}}}"#
                    )
                };
                run.to_client.extend_from_slice(m.as_bytes());
            }
            6 => run.to_client.extend_from_slice(
                br#"{"error": {"class": "GenericError", "desc": "JSON parse error"}}"#,
            ),
            7 => {
                let id = run.pick_id(&mut ops);
                let extra = match ops.byte() % 4 {
                    0 => String::new(),
                    1 => format!(r#", "id": {id}"#),
                    2 => format!(r#", "return": {{}}, "id": {id}"#),
                    _ => format!(r#", "error": {{"class": "X", "desc": "y"}}, "id": {id}"#),
                };
                let m = format!(
                    r#"{{"timestamp": {{"seconds": -1, "microseconds": -1}}, "event": "EV_\u00e9"{extra}, "data": {{"id": {id}}}}}"#
                );
                run.to_client.extend_from_slice(m.as_bytes());
            }
            8 => {
                let limit = usize::from(ops.byte()) * 8 + 1;
                run.deliver(&mut ops, limit);
            }
            9 => {
                let b = ops.byte();
                let ids: Vec<u64> = run.pending.keys().copied().collect();
                let id = if !ids.is_empty() && b & 1 == 0 {
                    ids[usize::from(b >> 1) % ids.len()]
                } else {
                    u64::from(b >> 1)
                };
                // Tokens cannot be forged: cancel only ones we were given.
                {
                    let was = run.pending.contains_key(&id);
                    if let Some(t) = run.tokens.get(&id).copied() {
                        assert_eq!(run.client.cancel(t), was, "cancel({id})");
                        let evs = run.poll();
                        if was {
                            assert_eq!(evs, vec![Ev::Cancelled(id)]);
                        } else {
                            assert!(evs.is_empty());
                        }
                    }
                }
            }
            10 => {
                run.now += u64::from(ops.byte()) * 8;
                let pre = run.pending.clone();
                run.client.handle_timeout(Instant::from_millis(run.now));
                let evs = run.poll();
                let due: Vec<Ev> = pre
                    .iter()
                    .filter(|(_, p)| p.deadline.is_some_and(|d| d <= run.now))
                    .map(|(id, _)| Ev::Timeout(*id))
                    .collect();
                assert_eq!(evs, due, "timeouts at {}", run.now);
            }
            _ => match ops.byte() % 4 {
                0 => {
                    let pre: Vec<u64> = run.pending.keys().copied().collect();
                    run.client.handle_eof();
                    let evs = run.poll();
                    let want: Vec<Ev> = pre.iter().map(|id| Ev::Disconnected(*id)).collect();
                    assert_eq!(evs, want, "EOF resolutions");
                    assert!(run.pending.is_empty());
                    run.client.handle_eof();
                    assert!(run.poll().is_empty(), "second EOF resolved again");
                    run.closed = true;
                }
                1 => {
                    let mut out = vec![0u8; 256];
                    if let Ok(Some(n)) = run.client.poll_transmit(&mut out) {
                        let v = scan::validate(&out[..n], FramerConfig::new()).expect("caps");
                        assert!(v
                            .get("execute")
                            .unwrap()
                            .as_json_str()
                            .unwrap()
                            .eq_str("qmp_capabilities"));
                    }
                }
                _ => run.deliver(&mut ops, usize::MAX),
            },
        }
        run.greeted |= run.client.state() != qmp_core::client::State::AwaitingGreeting;
    }
    // Drain everything, then end the stream.
    let mut rounds = 0;
    while !run.to_client.is_empty() {
        rounds += 1;
        assert!(rounds < 100_000);
        run.deliver(&mut Ops::new(&[255, 7]), usize::MAX);
    }
    let pre: Vec<u64> = run.pending.keys().copied().collect();
    run.client.handle_eof();
    let evs = run.poll();
    let want: Vec<Ev> = pre.iter().map(|id| Ev::Disconnected(*id)).collect();
    assert_eq!(evs, want, "final EOF resolutions");
    assert_eq!(run.client.in_flight(), 0);
}

// ---------------------------------------------------------------------------
// Roundtrip

/// QEMU's writer (and ours) prints Unicode noncharacters as `\uFFFD`, as
/// it does invalid UTF-8: not representable, so not generated.
fn is_noncharacter(c: char) -> bool {
    let cp = u32::from(c);
    (0xFDD0..=0xFDEF).contains(&cp) || cp & 0xFFFE == 0xFFFE
}

fn gen_char(ops: &mut Ops<'_>) -> char {
    let c = gen_any_char(ops);
    if is_noncharacter(c) {
        '\u{FFFD}'
    } else {
        c
    }
}

fn gen_any_char(ops: &mut Ops<'_>) -> char {
    let b = ops.byte();
    match b % 8 {
        0..=2 => char::from(0x20 + (b >> 3) % 95),
        3 => char::from(ops.byte() % 32),
        4 => ['"', '\\', '/', '\'', '\x7f', '\u{80}'][usize::from(b >> 3) % 6],
        5 => char::from_u32(0x80 + u32::from(ops.byte()) * 7).unwrap_or('?'),
        6 => [
            '\u{e9}',
            '\u{20ac}',
            '\u{1F600}',
            '\u{FFFF}',
            '\u{FEFF}',
            '\u{2028}',
            '\u{10FFFF}',
            '\0',
        ][usize::from(b >> 3) % 8],
        _ => {
            let v =
                (u32::from(ops.byte()) << 16 | u32::from(ops.byte()) << 8 | u32::from(ops.byte()))
                    % 0x11_0000;
            char::from_u32(v).unwrap_or('\u{FFFD}')
        }
    }
}

fn gen_string(ops: &mut Ops<'_>) -> String {
    let n = usize::from(ops.byte() % 12);
    (0..n).map(|_| gen_char(ops)).collect()
}

fn gen_value(ops: &mut Ops<'_>, depth: usize) -> Value {
    let b = ops.byte();
    let kinds = if depth == 0 { 6 } else { 8 };
    match b % kinds {
        0 => Value::Null,
        1 => Value::Bool(b & 8 != 0),
        2 => {
            let v = match (b >> 3) % 6 {
                0 => i64::MIN,
                1 => i64::MAX,
                2 => -1,
                3 => 0,
                _ => ops.u64() as i64,
            };
            Value::from(v)
        }
        3 => Value::from(match (b >> 3) % 3 {
            0 => u64::MAX,
            1 => 1u64 << 63,
            _ => ops.u64(),
        }),
        4 => {
            let f = f64::from_bits(ops.u64());
            let f = if f.is_finite() { f } else { 0.5 };
            serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
        }
        5 => Value::String(gen_string(ops)),
        6 => {
            let n = usize::from((b >> 3) % 4);
            Value::Array((0..n).map(|_| gen_value(ops, depth - 1)).collect())
        }
        _ => Value::Object(gen_object(ops, depth - 1)),
    }
}

fn gen_object(ops: &mut Ops<'_>, depth: usize) -> serde_json::Map<String, Value> {
    let n = usize::from(ops.byte() % 4);
    (0..n)
        .map(|_| (gen_string(ops), gen_value(ops, depth)))
        .collect()
}

fn num_eq(a: &serde_json::Number, b: &serde_json::Number) -> bool {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return x == y;
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return x == y;
    }
    let (x, y) = (a.as_f64().unwrap(), b.as_f64().unwrap());
    x == y || (x - y).abs() <= x.abs().max(y.abs()) * 1e-15
}

/// Semantic JSON equality (see the module docs on numbers).
pub fn value_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => num_eq(x, y),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| value_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| value_eq(v, w)))
        }
        _ => a == b,
    }
}

fn parse(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(bytes)))
}

const BIG: usize = 1 << 16;

/// The `roundtrip` target.
pub fn roundtrip(data: &[u8]) {
    let mut ops = Ops::new(data);
    let flags = ops.byte();
    let oob = flags & 1 != 0;
    let pretty = flags & 2 != 0;
    let via_ser = flags & 4 != 0;
    let mut name = gen_string(&mut ops);
    if name == "qmp_capabilities" || name == "query-commands" {
        name.push('x');
    }
    let args: Option<Value> = (flags & 8 != 0).then(|| Value::Object(gen_object(&mut ops, 3)));
    let ret = gen_value(&mut ops, 3);
    let id = gen_value(&mut ops, 2);
    let class = gen_string(&mut ops);
    let desc = gen_string(&mut ops);
    let ev_name = gen_string(&mut ops);
    let ev_data = (flags & 16 != 0).then(|| gen_value(&mut ops, 3));
    let (seconds, micros) = (ops.u64() as i64, ops.u64() as i64);

    let spec = if oob {
        CommandSpec::new(&name).oob()
    } else {
        CommandSpec::new(&name)
    };
    let commands = [spec];
    let cfg = AgentConfig::new((10, 0, 2), "", &commands).with_style(if pretty {
        Style::QMP_PRETTY
    } else {
        Style::QMP
    });
    let mut fbuf = vec![0u8; BIG];
    let mut qbuf = vec![0u8; AgentBuffers::queue_required(BIG)];
    let mut obuf = vec![0u8; 4 * BIG];
    let mut agent = Agent::new(cfg, AgentBuffers::new(&mut fbuf, &mut qbuf, &mut obuf)).unwrap();
    let mut cbuf = vec![0u8; 4 * BIG];
    let mut client: Client<&mut [u8], 4> = Client::with_config(&mut cbuf[..], ClientConfig::new());

    // Pipes.
    let mut to_client = Vec::new();
    let pump_agent = |agent: &mut Agent<'_, '_>, to_client: &mut Vec<u8>| {
        let mut tx = vec![0u8; 4 * BIG];
        while let Some(n) = agent.poll_transmit(&mut tx) {
            to_client.extend_from_slice(&tx[..n]);
        }
    };
    // Feeds `to_client` to the client; returns owned summaries of events.
    #[derive(Debug)]
    enum Got {
        Return(u64, Vec<u8>),
        Error(u64, Vec<u8>, Vec<u8>),
        Event(Vec<u8>, Option<Vec<u8>>, Option<(i64, i64)>),
        Other,
    }
    let feed_client = |client: &mut Client<&mut [u8], 4>, to_client: &mut Vec<u8>| {
        let mut got = Vec::new();
        let mut off = 0;
        while off < to_client.len() {
            let n = client.handle_input(Instant::ZERO, &to_client[off..]);
            off += n;
            let mut any = false;
            while let Some(ev) = client.poll_event() {
                any = true;
                got.push(match ev {
                    ClientEvent::Resolved {
                        token,
                        outcome: Outcome::Return(v),
                    } => Got::Return(token.id(), v.as_bytes().to_vec()),
                    ClientEvent::Resolved {
                        token,
                        outcome: Outcome::Error { class, desc },
                    } => Got::Error(
                        token.id(),
                        match class.as_str() {
                            Some(s) => s.as_bytes().to_vec(),
                            None => match class {
                                qmp_core::message::ErrorClass::Other(s) => unescape(s),
                                _ => unreachable!(),
                            },
                        },
                        unescape(desc),
                    ),
                    ClientEvent::Event(e) => Got::Event(
                        unescape(e.name),
                        e.data.map(|d| d.as_bytes().to_vec()),
                        e.timestamp.map(|t| (t.seconds, t.microseconds)),
                    ),
                    ClientEvent::Greeting(_) | ClientEvent::Negotiated { .. } => Got::Other,
                    other => panic!("unexpected client event {other:?}"),
                });
            }
            assert!(n > 0 || any, "client stalls");
        }
        to_client.clear();
        got
    };

    // Greeting and automatic negotiation.
    pump_agent(&mut agent, &mut to_client);
    feed_client(&mut client, &mut to_client);
    let mut out = vec![0u8; BIG];
    let n = client
        .poll_transmit(&mut out)
        .unwrap()
        .expect("caps queued");
    assert_eq!(agent.handle_input(Instant::ZERO, &out[..n]), n);
    pump_agent(&mut agent, &mut to_client);
    feed_client(&mut client, &mut to_client);
    assert!(agent.is_negotiated() && agent.oob_enabled() && client.oob_enabled());

    // 1. Command client -> agent, return value agent -> client.
    let args_text = args.as_ref().map(|a| serde_json::to_vec(a).unwrap());
    let args_raw = args_text
        .as_ref()
        .map(|t| scan::validate(t, FramerConfig::new()).expect("serde_json output validates"));
    let (token, n) = client
        .execute_raw(
            Instant::ZERO,
            &name,
            args_raw,
            ExecuteOptions::new().oob(oob),
            &mut out,
        )
        .unwrap();
    assert_eq!(agent.handle_input(Instant::ZERO, &out[..n]), n);
    let req = agent.poll_request().expect("request handed out");
    assert_eq!(unescape(req.name), name.as_bytes(), "command name");
    assert_eq!(req.exec, if oob { Exec::ExecOob } else { Exec::Execute });
    assert_eq!(req.id.and_then(|i| i.as_u64()), Some(token.id()));
    match (&args, req.arguments) {
        (None, None) => {}
        (Some(a), Some(raw)) => {
            assert!(value_eq(a, &parse(raw.as_bytes())), "arguments differ")
        }
        (a, r) => panic!("arguments {a:?} arrived as {r:?}"),
    }
    let ret_text = serde_json::to_vec(&ret).unwrap();
    let ret_raw = scan::validate(&ret_text, FramerConfig::new()).unwrap();
    let ser = Ser(&ret);
    let value: &dyn WriteJson = if via_ser { &ser } else { &ret_raw };
    let t = req.token;
    agent.complete(t, Reply::Return(value)).unwrap();
    pump_agent(&mut agent, &mut to_client);
    let got = feed_client(&mut client, &mut to_client);
    match got.as_slice() {
        [Got::Return(id, v)] => {
            assert_eq!(*id, token.id());
            let back = parse(v);
            assert!(
                value_eq(&ret, &back),
                "return value {ret} came back as {back}"
            );
        }
        other => panic!("return: {other:?}"),
    }

    // 2. Error class and desc agent -> client.
    let (token, n) = client
        .execute_raw(Instant::ZERO, &name, None, ExecuteOptions::new(), &mut out)
        .unwrap();
    assert_eq!(agent.handle_input(Instant::ZERO, &out[..n]), n);
    let t = agent.poll_request().expect("second request").token;
    agent
        .complete(
            t,
            Reply::Error {
                class: &class,
                desc: &desc,
            },
        )
        .unwrap();
    pump_agent(&mut agent, &mut to_client);
    match feed_client(&mut client, &mut to_client).as_slice() {
        [Got::Error(id, c, d)] => {
            assert_eq!(*id, token.id());
            assert_eq!(c, class.as_bytes(), "error class");
            assert_eq!(d, desc.as_bytes(), "error desc");
        }
        other => panic!("error: {other:?}"),
    }

    // 3. An event agent -> client.
    let data_text = ev_data.as_ref().map(|d| serde_json::to_vec(d).unwrap());
    let data_raw = data_text
        .as_ref()
        .map(|t| scan::validate(t, FramerConfig::new()).unwrap());
    let data_ser = ev_data.as_ref().map(Ser);
    let data: Option<&dyn WriteJson> = if via_ser {
        data_ser.as_ref().map(|d| d as &dyn WriteJson)
    } else {
        data_raw.as_ref().map(|d| d as &dyn WriteJson)
    };
    let mut ev = EventOut::new(&ev_name).timestamp(seconds, micros);
    if let Some(d) = data {
        ev = ev.data(d);
    }
    assert_eq!(agent.emit(Instant::ZERO, &ev), Ok(Emitted::Sent));
    pump_agent(&mut agent, &mut to_client);
    match feed_client(&mut client, &mut to_client).as_slice() {
        [Got::Event(n, d, ts)] => {
            assert_eq!(n, ev_name.as_bytes(), "event name");
            assert_eq!(*ts, Some((seconds, micros)), "timestamp");
            match (&ev_data, d) {
                (None, None) => {}
                (Some(a), Some(b)) => {
                    let back = parse(b);
                    assert!(value_eq(a, &back), "event data {a} came back as {back}")
                }
                (a, b) => panic!("event data {a:?} arrived as {b:?}"),
            }
        }
        other => panic!("event: {other:?}"),
    }

    // 4. Any id: write_command with a verbatim id, echoed by the agent.
    let id_text = serde_json::to_vec(&id).unwrap();
    let id_raw = scan::validate(&id_text, FramerConfig::new()).unwrap();
    let style = if flags & 32 != 0 {
        Style::QMP
    } else {
        Style::CLIENT
    };
    let args_w = args_raw.map(Verbatim);
    let cmd = encode_vec(|o| {
        encode::write_command(
            o,
            style,
            oob,
            &name,
            args_w.as_ref().map(|a| a as &dyn WriteJson),
            Some(&Verbatim(id_raw)),
        )
    });
    let v = scan::validate(&cmd, FramerConfig::new().with_dialect(Dialect::Strict))
        .expect("write_command output is strict JSON");
    let _ = v;
    // An OOB request stops input until answered: the trailing line ending
    // (Style::QMP) is fed after the reply.
    let used = agent.handle_input(Instant::ZERO, &cmd);
    assert!(
        cmd[used..].iter().all(|b| b.is_ascii_whitespace()),
        "request not consumed"
    );
    let req = agent.poll_request().expect("request with any id");
    assert_eq!(unescape(req.name), name.as_bytes());
    let rid = req.id.expect("id arrives");
    assert!(
        value_eq(&id, &parse(rid.as_bytes())),
        "id {id} arrived as {:?}",
        rid
    );
    let t = req.token;
    agent.complete(t, Reply::Return(&ret_raw)).unwrap();
    let mut tx = vec![0u8; 4 * BIG];
    let n = agent.poll_transmit(&mut tx).unwrap();
    let reply = parse(&tx[..n]);
    let back_id = reply.get("id").expect("reply has the id");
    assert!(value_eq(&id, back_id), "id {id} echoed as {back_id}");
    assert!(
        value_eq(&ret, reply.get("return").unwrap()),
        "return in id path"
    );
    assert!(agent.poll_transmit(&mut tx).is_none());
    assert_eq!(
        agent.handle_input(Instant::ZERO, &cmd[used..]),
        cmd.len() - used
    );
    assert!(agent.poll_transmit(&mut tx).is_none());
    // The client reports it as a reply nobody waits for.
    to_client.extend_from_slice(&tx[..n]);
    let mut off = 0;
    while off < to_client.len() {
        off += client.handle_input(Instant::ZERO, &to_client[off..]);
        while let Some(ev) = client.poll_event() {
            assert!(
                matches!(ev, ClientEvent::Unmatched { .. }),
                "foreign id reply gave {ev:?}"
            );
        }
    }
}
