//! The guest-agent client: replay of the recorded qemu-ga 7.2 session in
//! every chunking, sync recovery (stale output, half messages, garbage,
//! timeouts, late replies, ids above 2^53), zero allocations, and our client
//! against our agent in QGA mode (sans-IO, in-process).
#![cfg(feature = "qga")]

use qmp_core::agent::{Agent, AgentBuffers, AgentConfig, CommandSpec, Reply};
use qmp_core::client::Outcome;
use qmp_core::client::{ClientEvent, ExecuteError, ExecuteOptions, Token};
use qmp_core::encode::Verbatim;
use qmp_core::qga::commands::{GuestGetTime, GuestInfo, GuestPing};
use qmp_core::qga::{QgaClient, QgaState};
use qmp_core::scan::{validate, FramerConfig};
use qmp_core::Instant;
use qmp_core::InsufficientSize;
use rand::{rngs::SmallRng, Rng, SeedableRng};

#[path = "common/counting.rs"]
mod counting;
use counting::count_allocs;

#[global_allocator]
static A: counting::Counting = counting::Counting;

// ---------------------------------------------------------------------------
// Harness

const C2S: &[u8] = include_bytes!("data/qga-7.2.c2s");
const S2C: &[u8] = include_bytes!("data/qga-7.2.s2c");

/// The recorded replies with the ids our client sends. The recorder sent
/// some commands without id (and qemu-ga echoes ids exactly, as the
/// recording shows for `3`, `"h"`, `"n"`); this client matches replies by
/// id only, so each reply to one of its commands carries that command's
/// integer id (1, 2, …, in order). The sync replies (matched by value) and
/// the two id-less complaints stay as recorded.
fn s2c_with_our_ids() -> Vec<u8> {
    let mut out = Vec::new();
    let mut next = 1;
    for line in S2C.split_inclusive(|&b| b == b'\n') {
        let text = String::from_utf8_lossy(line);
        let sync = text.contains("\"return\": 1234}") || text.contains("\"return\": 99}");
        let complaint = text.contains("\"error\"") && !text.contains("\"id\"");
        if sync || complaint {
            out.extend_from_slice(line);
            continue;
        }
        let body = text.trim_end_matches('\n');
        let body = strip_top_level_id(body);
        out.extend_from_slice(
            format!("{}, \"id\": {next}}}\n", &body[..body.len() - 1]).as_bytes(),
        );
        next += 1;
    }
    out
}

/// Removes the top-level `"id": …` member (a number or a plain string,
/// first or last: where qemu-ga puts it) from a one-line reply.
fn strip_top_level_id(body: &str) -> String {
    for (start, end) in [(", \"id\": ", "}"), ("{\"id\": ", ", ")] {
        let at = if start.starts_with('{') {
            body.starts_with(start).then_some(0)
        } else {
            body.rfind(start)
                .filter(|i| !body[i + start.len()..body.len() - 1].contains(['{', '}', ',']))
        };
        if let Some(i) = at {
            let rest = &body[i + start.len()..];
            let j = rest.find(end).unwrap_or(rest.len());
            let keep = if start.starts_with('{') { "{" } else { "" };
            let tail = if start.starts_with('{') {
                &rest[j + end.len()..]
            } else {
                &rest[j..]
            };
            return format!("{}{keep}{tail}", &body[..i]);
        }
    }
    body.to_string()
}

/// An event, owned, for comparison across chunkings.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Ev {
    Return(Token, String),
    Error(Token, String, String),
    Timeout(Token),
    Cancelled(Token),
    Disconnected(Token),
    Oversized(Token, usize),
    Malformed(Token, String),
    Unmatched(String),
    Orphan(String, String),
    Discarded(String),
    Unknown(String),
    Framing(String),
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn own(ev: ClientEvent<'_>) -> Ev {
    match ev {
        ClientEvent::Resolved { token, outcome } => match outcome {
            Outcome::Return(v) => Ev::Return(token, text(v.as_bytes())),
            Outcome::Error { class, desc } => Ev::Error(token, class.to_string(), desc.to_string()),
            Outcome::Timeout => Ev::Timeout(token),
            Outcome::Cancelled => Ev::Cancelled(token),
            Outcome::Disconnected => Ev::Disconnected(token),
            Outcome::Oversized { len } => Ev::Oversized(token, len),
            Outcome::Malformed(e) => Ev::Malformed(token, e.to_string()),
            other => panic!("unexpected outcome {other:?}"),
        },
        ClientEvent::Unmatched { message, .. } => Ev::Unmatched(text(message.as_bytes())),
        ClientEvent::OrphanError { class, desc } => Ev::Orphan(class.to_string(), desc.to_string()),
        ClientEvent::Discarded(m) => Ev::Discarded(text(m.as_bytes())),
        ClientEvent::Unknown(m) => Ev::Unknown(text(m.as_bytes())),
        ClientEvent::FramingError(e) => Ev::Framing(format!("{e:?}")),
        other => panic!("unexpected event {other:?}"),
    }
}

type Chunker = Box<dyn FnMut() -> usize>;

/// A client fed from a byte stream in chunks; what it sends is recorded.
struct H {
    c: QgaClient<Vec<u8>, 4>,
    stream: Vec<u8>,
    at: usize,
    chunk: Vec<u8>,
    sizes: Chunker,
    now: u64,
    sent: Vec<u8>,
    events: Vec<Ev>,
}

impl H {
    fn new(stream: &[u8], sizes: Chunker) -> H {
        H {
            c: QgaClient::new(vec![0; 8192]),
            stream: stream.to_vec(),
            at: 0,
            chunk: Vec::new(),
            sizes,
            now: 0,
            sent: Vec::new(),
            events: Vec::new(),
        }
    }

    fn transmit(&mut self) {
        let mut out = [0u8; 256];
        while let Some(n) = self.c.poll_transmit(&mut out).unwrap() {
            self.sent.extend_from_slice(&out[..n]);
        }
    }

    fn poll(&mut self) {
        while let Some(ev) = self.c.poll_event() {
            self.events.push(own(ev));
        }
    }

    fn sync(&mut self, id: u64, deadline: u64) -> Token {
        let t = self
            .c
            .sync(
                Instant::from_millis(self.now),
                id,
                Instant::from_millis(deadline),
            )
            .unwrap();
        self.transmit();
        self.poll();
        t
    }

    fn exec(&mut self, name: &str, args: Option<&str>) -> Token {
        let args = args.map(|a| validate(a.as_bytes(), FramerConfig::new()).unwrap());
        let mut out = [0u8; 256];
        let (t, n) = self
            .c
            .execute_raw(
                Instant::from_millis(self.now),
                name,
                args,
                ExecuteOptions::new(),
                &mut out,
            )
            .unwrap();
        self.sent.extend_from_slice(&out[..n]);
        t
    }

    /// Feeds the stream until `token` resolves; returns its event.
    fn until(&mut self, token: Token) -> Ev {
        loop {
            if let Some(ev) = self.events.iter().find(|e| resolves(e, token)) {
                return ev.clone();
            }
            if self.chunk.is_empty() {
                assert!(self.at < self.stream.len(), "stream ended before {token:?}");
                let n = (self.sizes)().clamp(1, self.stream.len() - self.at);
                self.chunk = self.stream[self.at..self.at + n].to_vec();
                self.at += n;
            }
            let n = self
                .c
                .handle_input(Instant::from_millis(self.now), &self.chunk);
            self.chunk.drain(..n);
            self.poll();
        }
    }

    /// Feeds the rest of the stream.
    fn drain(&mut self) {
        loop {
            if self.chunk.is_empty() {
                if self.at == self.stream.len() {
                    return;
                }
                let n = (self.sizes)().clamp(1, self.stream.len() - self.at);
                self.chunk = self.stream[self.at..self.at + n].to_vec();
                self.at += n;
            }
            let n = self
                .c
                .handle_input(Instant::from_millis(self.now), &self.chunk);
            self.chunk.drain(..n);
            self.poll();
        }
    }
}

fn resolves(e: &Ev, token: Token) -> bool {
    matches!(e,
        Ev::Return(t, _) | Ev::Error(t, ..) | Ev::Timeout(t) | Ev::Cancelled(t)
        | Ev::Disconnected(t) | Ev::Oversized(t, _) | Ev::Malformed(t, _) if *t == token)
}

/// Every chunking: whole, 1 byte, and 200 random ones.
fn chunkings() -> Vec<Chunker> {
    let mut v: Vec<Chunker> = vec![Box::new(|| usize::MAX), Box::new(|| 1)];
    let mut rng = SmallRng::seed_from_u64(7);
    for _ in 0..200 {
        let max = rng.random_range(2..80);
        let mut r = SmallRng::seed_from_u64(rng.random());
        v.push(Box::new(move || r.random_range(1..max)));
    }
    v
}

/// `(execute, arguments)` of each request in `bytes` (0xFF bytes and
/// anything that is not a JSON object are skipped).
fn requests(bytes: &[u8]) -> Vec<(String, Option<serde_json::Value>)> {
    let cleaned: Vec<u8> = bytes.iter().copied().filter(|&b| b != 0xFF).collect();
    let mut v = Vec::new();
    // The recording has one request per line; ours are concatenated.
    let text = text(&cleaned).replace("}{", "}\n{");
    for line in text.lines() {
        if let Ok(serde_json::Value::Object(m)) = serde_json::from_str(line) {
            v.push((
                m["execute"].as_str().unwrap().to_owned(),
                m.get("arguments").cloned(),
            ));
        }
    }
    v
}

// ---------------------------------------------------------------------------
// 1. Transcript replay

/// Replays the recorded session: issues the recorded commands one at a time
/// (QGA is lock-step) and feeds the recorded replies.
fn replay(sizes: Chunker) -> (Vec<Ev>, Vec<u8>) {
    let mut h = H::new(&s2c_with_our_ids(), sizes);
    assert!(matches!(
        h.c.execute_raw(
            Instant::ZERO,
            "guest-ping",
            None,
            ExecuteOptions::new(),
            &mut [0u8; 64]
        ),
        Err(ExecuteError::NotSynced)
    ));
    let sync = h.sync(1234, 1000);
    assert_eq!(h.c.state(), QgaState::Syncing);
    assert_eq!(h.until(sync), Ev::Return(sync, "1234".into()));
    assert_eq!(h.c.state(), QgaState::Synced);

    let ping = h.exec("guest-ping", None);
    assert_eq!(h.until(ping), Ev::Return(ping, "{}".into()));

    let info = h.exec("guest-info", None);
    match h.until(info) {
        Ev::Return(_, v) => assert!(v.starts_with("{\"version\": \"7.2.22\""), "{v}"),
        e => panic!("{e:?}"),
    }

    // The recorder's raw garbage (`garbage{`, `\xFF{...}`) provoked two
    // id-less errors: orphans, not results of the next request.
    let ping2 = h.exec("guest-ping", None);
    assert_eq!(ping2.id(), 3);
    let before = h.events.len();
    assert_eq!(h.until(ping2), Ev::Return(ping2, "{}".into()));
    assert_eq!(
        &h.events[before..],
        &[
            Ev::Orphan(
                "GenericError".into(),
                "JSON parse error, invalid keyword 'garbage'".into()
            ),
            Ev::Orphan(
                "GenericError".into(),
                "JSON parse error, stray '\u{FFFD}'".into()
            ),
            Ev::Return(ping2, "{}".into()),
        ]
    );

    let time = h.exec("guest-get-time", None);
    match h.until(time) {
        Ev::Return(_, v) => {
            let raw = validate(v.as_bytes(), FramerConfig::new()).unwrap();
            // Above 2^53: exact.
            assert_eq!(raw.as_u64(), Some(1_795_285_339_653_786_000));
            assert_eq!(raw.as_i64(), Some(1_795_285_339_653_786_000));
        }
        e => panic!("{e:?}"),
    }

    let plain =
        h.c.sync_plain(Instant::from_millis(h.now), 99, Instant::from_millis(1000))
            .unwrap();
    h.transmit();
    assert_eq!(h.until(plain), Ev::Return(plain, "99".into()));

    let host = h.exec("guest-get-host-name", None);
    assert_eq!(
        h.until(host),
        Ev::Return(host, "{\"host-name\": \"vm\"}".into())
    );
    let os = h.exec("guest-get-osinfo", None);
    match h.until(os) {
        Ev::Return(_, v) => assert!(v.contains("\"kernel-release\": \"6.18.44-fc-v657\"")),
        e => panic!("{e:?}"),
    }
    let nope = h.exec("guest-nope", None);
    assert_eq!(
        h.until(nope),
        Ev::Error(
            nope,
            "CommandNotFound".into(),
            "The command guest-nope has not been found".into()
        )
    );
    h.drain();
    assert_eq!(h.at, s2c_with_our_ids().len());
    assert!(h.chunk.is_empty());
    (h.events, h.sent)
}

#[test]
fn replays_recorded_qemu_ga_session_in_every_chunking() {
    let (events, sent) = replay(Box::new(|| usize::MAX));
    // Same commands as recorded (ids aside), our sync with its 0xFF first.
    assert_eq!(sent[0], 0xFF);
    assert!(sent[1..]
        .starts_with(b"{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":1234}}"));
    assert_eq!(requests(&sent), requests(C2S));
    assert_eq!(requests(&sent).len(), 9);
    // Every resolution once, the two orphans, nothing else.
    assert_eq!(events.len(), 11, "{events:#?}");
    for sizes in chunkings() {
        let (e, s) = replay(sizes);
        assert_eq!(e, events);
        assert_eq!(s, sent);
    }
}

// ---------------------------------------------------------------------------
// 2. Sync recovery

const ID: u64 = 0x1234_5678_9abc_def0;

fn complaint() -> &'static str {
    "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, stray '\\uFFFD'\"}}\n"
}

/// Syncs with `ID` against `stream` (in every chunking); returns the events
/// of the whole-stream run. The sync must complete and nothing else resolve.
fn sync_against(stream: &[u8]) -> Vec<Ev> {
    let mut first = None;
    for sizes in chunkings() {
        let mut h = H::new(stream, sizes);
        let t = h.sync(ID, 1000);
        assert_eq!(h.until(t), Ev::Return(t, ID.to_string()));
        assert_eq!(h.c.state(), QgaState::Synced);
        h.drain();
        let resolved: Vec<_> = h.events.iter().filter(|e| resolves(e, t)).collect();
        assert_eq!(resolved.len(), 1);
        assert!(!h.events.iter().any(|e| matches!(
            e,
            Ev::Return(..) | Ev::Error(..) | Ev::Unmatched(_)
        ) && !resolves(e, t)));
        match &first {
            None => first = Some(h.events),
            Some(f) => assert_eq!(&h.events, f),
        }
    }
    first.unwrap()
}

#[test]
fn sync_discards_stale_output_half_messages_and_garbage() {
    let stream = format!(
        "{{\"return\": {{}}, \"id\": 7}}\n\
         {{\"return\": {ID}}}\n\
         {{\"error\": {{\"class\": \"GenericError\", \"desc\": \"x\"}}}}\n\
         ion\": \"7.2.22\", \"supported_commands\": []}}}}\n\
         %garbage{{\"return\": {{\"a\": [1, 2\n\
         {}",
        complaint()
    );
    let mut bytes = stream.into_bytes();
    bytes.push(0xFF);
    bytes.extend_from_slice(format!("{{\"return\": {ID}}}\n").as_bytes());
    let events = sync_against(&bytes);
    // The valid-looking stale `{"return": ID}` came before the 0xFF:
    // discarded, like the rest.
    assert!(events.contains(&Ev::Discarded(format!("{{\"return\": {ID}}}"))));
    assert!(events.contains(&Ev::Discarded("{\"return\": {}, \"id\": 7}".into())));
    assert!(events.iter().any(|e| matches!(e, Ev::Framing(_))));
    assert!(!events.iter().any(|e| matches!(e, Ev::Orphan(..))));
}

#[test]
fn sync_skips_id_less_errors_and_other_ids_after_the_delimiter() {
    // A stale delimited reply of an earlier client's sync, then the agent's
    // complaint about our 0xFF, then ours.
    let mut s = b"\xff{\"return\": 42}\n".to_vec();
    s.extend_from_slice(complaint().as_bytes());
    s.extend_from_slice(b"{\"return\": {}, \"id\": 1}\n\xff");
    s.extend_from_slice(format!("{{\"return\": {ID}}}\n").as_bytes());
    let events = sync_against(&s);
    assert_eq!(events[0], Ev::Discarded("{\"return\": 42}".into()));
    assert!(matches!(&events[1], Ev::Discarded(m) if m.contains("stray")));
    assert_eq!(
        events[2],
        Ev::Discarded("{\"return\": {}, \"id\": 1}".into())
    );
    assert!(matches!(events[3], Ev::Return(..)));
}

#[test]
fn sync_delimiter_inside_a_stale_string() {
    // The 0xFF lands inside a half-read string: still the delimiter.
    let mut s = b"{\"return\": \"half".to_vec();
    s.push(0xFF);
    s.extend_from_slice(format!("{{\"return\": {ID}}}\n").as_bytes());
    let events = sync_against(&s);
    assert!(matches!(events.last(), Some(Ev::Return(..))));
}

#[test]
fn sync_resets_the_framer_so_half_read_input_cannot_merge() {
    let mut h = H::new(b"{\"return\": 77}\n", Box::new(|| usize::MAX));
    // Half a message, inside a string, read before the sync.
    assert_eq!(
        h.c.handle_input(Instant::ZERO, b"{\"return\": {\"a\": \"x"),
        19
    );
    assert!(h.c.poll_event().is_none());
    let t =
        h.c.sync_plain(Instant::ZERO, 77, Instant::from_millis(100))
            .unwrap();
    h.transmit();
    assert_eq!(
        h.sent,
        b"{\"execute\":\"guest-sync\",\"arguments\":{\"id\":77}}"
    );
    assert_eq!(h.until(t), Ev::Return(t, "77".into()));
}

#[test]
fn sync_retries_after_timeout_and_ignores_the_late_reply() {
    let mut h = H::new(b"", Box::new(|| usize::MAX));
    let first = h.sync(111, 100);
    assert_eq!(h.c.poll_timeout().map(Instant::as_millis), Some(100));
    assert!(matches!(
        h.c.sync(Instant::ZERO, 5, Instant::from_millis(200)),
        Err(ExecuteError::SyncInProgress)
    ));
    h.c.handle_timeout(Instant::from_millis(99));
    h.poll();
    assert!(h.events.is_empty());
    h.c.handle_timeout(Instant::from_millis(100));
    h.poll();
    assert_eq!(h.events, [Ev::Timeout(first)]);
    assert_eq!(h.c.state(), QgaState::Unsynced);
    assert_eq!(h.c.poll_timeout().map(Instant::as_millis), None);

    h.now = 100;
    let second = h.sync(222, 300);
    assert_ne!(first, second);
    // The first attempt's reply arrives late (0xFF and all), then the
    // complaint about our second 0xFF, the first id once more, then ours.
    let mut s = b"\xff{\"return\": 111}\n".to_vec();
    s.extend_from_slice(complaint().as_bytes());
    s.extend_from_slice(b"{\"return\": 111}\n\xff{\"return\": 222}\n");
    h.stream = s;
    assert_eq!(h.until(second), Ev::Return(second, "222".into()));
    assert_eq!(
        h.events[1..4],
        [
            Ev::Discarded("{\"return\": 111}".into()),
            Ev::Discarded(complaint().trim_end().into()),
            Ev::Discarded("{\"return\": 111}".into()),
        ]
    );
    let mut expect =
        b"\xff{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":111}}".to_vec();
    expect.extend_from_slice(
        b"\xff{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":222}}",
    );
    assert_eq!(h.sent, expect);
}

#[test]
fn sync_ids_above_2_pow_53_compare_exactly() {
    let id = (1u64 << 62) + 1; // 2^62 and 2^62 + 1 are the same f64
    let mut stream = b"\xff".to_vec();
    stream.extend_from_slice(format!("{{\"return\": {}}}\n", 1u64 << 62).as_bytes());
    stream.extend_from_slice(format!("{{\"return\": {}.0}}\n", id).as_bytes());
    stream.extend_from_slice(format!("{{\"return\": {id}}}\n").as_bytes());
    let mut h = H::new(&stream, Box::new(|| 3));
    let t = h.sync(id, 1000);
    assert_eq!(h.until(t), Ev::Return(t, id.to_string()));
    assert_eq!(h.events.len(), 3);
    // i64::MAX is the largest id qemu-ga takes.
    let mut h = H::new(b"", Box::new(|| 1));
    assert!(matches!(
        h.c.sync(Instant::ZERO, u64::MAX, Instant::from_millis(1)),
        Err(ExecuteError::IdOutOfRange)
    ));
    h.c.sync(Instant::ZERO, i64::MAX as u64, Instant::from_millis(1))
        .unwrap();
    h.transmit();
    assert!(h.sent.ends_with(b"{\"id\":9223372036854775807}}"));
}

#[test]
fn command_timeout_unsyncs_and_late_reply_is_unmatched() {
    let mut stream = b"\xff{\"return\": 5}\n".to_vec();
    let mut h = H::new(&stream, Box::new(|| usize::MAX));
    let s = h.sync(5, 1000);
    h.until(s);
    let mut out = [0u8; 128];
    let (slow, _) =
        h.c.execute(
            Instant::ZERO,
            &GuestPing,
            ExecuteOptions::new().timeout_ms(50),
            &mut out,
        )
        .unwrap();
    assert_eq!(h.c.poll_timeout().map(Instant::as_millis), Some(50));
    h.c.handle_timeout(Instant::from_millis(50));
    h.poll();
    assert_eq!(h.events.last(), Some(&Ev::Timeout(slow)));
    assert_eq!(h.c.state(), QgaState::Unsynced);
    assert!(matches!(
        h.c.execute(
            Instant::from_millis(60),
            &GuestPing,
            ExecuteOptions::new(),
            &mut out
        ),
        Err(ExecuteError::NotSynced)
    ));
    // The late reply before any new sync: unmatched, never someone else's.
    stream.extend_from_slice(b"{\"return\": {}, \"id\": 1}\n");
    h.stream = stream;
    h.drain();
    assert_eq!(
        h.events.last(),
        Some(&Ev::Unmatched("{\"return\": {}, \"id\": 1}".into()))
    );
}

#[test]
fn sync_abandons_waiting_commands_and_eof_disconnects() {
    let mut h = H::new(b"\xff{\"return\": 5}\n", Box::new(|| usize::MAX));
    let s = h.sync(5, 1000);
    h.until(s);
    let a = h.exec("guest-ping", None);
    let b = h.exec("guest-info", None);
    assert_eq!(h.c.in_flight(), 2);
    let s2 = h.sync(6, 1000);
    assert_eq!(h.events[1..], [Ev::Cancelled(a), Ev::Cancelled(b)]);
    assert!(h.c.is_pending(s2));
    h.c.handle_eof();
    h.poll();
    assert_eq!(h.events.last(), Some(&Ev::Disconnected(s2)));
    assert_eq!(h.c.state(), QgaState::Closed);
    assert!(matches!(
        h.c.sync(Instant::ZERO, 1, Instant::from_millis(2)),
        Err(ExecuteError::Closed)
    ));
    assert_eq!(h.c.handle_input(Instant::ZERO, b"xyz"), 3);
}

#[test]
fn no_response_commands_and_oversized_replies() {
    let mut stream = b"\xff{\"return\": 5}\n".to_vec();
    stream.extend_from_slice(
        b"{\"id\": 1, \"error\": {\"class\": \"GenericError\", \"desc\": \"no\"}}\n",
    );
    stream.extend_from_slice(b"{\"return\": \"");
    stream.extend(std::iter::repeat_n(b'a', 10_000));
    stream.extend_from_slice(b"\", \"id\": 2}\n{\"return\": {}, \"id\": 3}\n");
    let mut h = H::new(&stream, Box::new(|| 100));
    let s = h.sync(5, 1000);
    h.until(s);
    let mut out = [0u8; 64];
    let (shut, n) =
        h.c.execute_raw(
            Instant::ZERO,
            "guest-shutdown",
            None,
            ExecuteOptions::new().no_response(),
            &mut out,
        )
        .unwrap();
    assert_eq!(&out[..n], b"{\"execute\":\"guest-shutdown\",\"id\":1}");
    assert!(!h.c.is_pending(shut));
    let big = h.exec("guest-file-read", Some("{\"handle\": 1}"));
    let ping = h.exec("guest-ping", None);
    assert_eq!(h.until(big), Ev::Oversized(big, 10_023));
    assert_eq!(h.until(ping), Ev::Return(ping, "{}".into()));
    assert!(h.events.contains(&Ev::Unmatched(
        "{\"id\": 1, \"error\": {\"class\": \"GenericError\", \"desc\": \"no\"}}".into()
    )));
}

#[test]
fn buffers_too_small_are_reported() {
    let mut h = H::new(b"", Box::new(|| 1));
    h.c.sync(Instant::ZERO, 1234, Instant::from_millis(10))
        .unwrap();
    let mut small = [0u8; 10];
    let need = 1 + br#"{"execute":"guest-sync-delimited","arguments":{"id":1234}}"#.len();
    assert_eq!(
        h.c.poll_transmit(&mut small),
        Err(qmp_core::encode::EncodeError::InsufficientSize(
            InsufficientSize { required: need }
        ))
    );
    let mut exact = vec![0u8; need];
    assert_eq!(h.c.poll_transmit(&mut exact), Ok(Some(need)));
    assert_eq!(h.c.poll_transmit(&mut exact), Ok(None));
}

// ---------------------------------------------------------------------------
// 3. Zero allocations

#[test]
fn client_allocates_nothing() {
    // Stale output, half a message, the delimiter, our sync reply.
    let phase1: &[u8] =
        b"{\"return\": {}, \"id\": 9}\n{\"ret\xff{\"return\": 4611686018427387905}\n";
    // An orphan error, replies by id, id-less and with a foreign id, a late one.
    let mut phase2 = S2C.split(|&b| b == b'\n').nth(3).unwrap().to_vec();
    phase2.extend_from_slice(b"\n{\"return\": {}, \"id\": 1}\n{\"return\": 1795285339653786000}\n");
    phase2.extend_from_slice(b"{\"return\": {\"version\": \"7.2.22\"}, \"id\": \"x\"}\n");
    phase2.extend_from_slice(b"{\"return\": {}, \"id\": 1}\n%");
    let args = validate(b"{\"handle\": 1}", FramerConfig::new()).unwrap();
    let mut fb = [0u8; 1024];
    let mut out = [0u8; 256];
    let (n_events, allocs) = count_allocs(|| {
        let mut c: QgaClient<&mut [u8], 4> =
            QgaClient::with_config(&mut fb[..], qmp_core::qga::QgaConfig::new());
        let mut n_events = 0;
        let s = c
            .sync(Instant::ZERO, (1 << 62) + 1, Instant::from_millis(100))
            .unwrap();
        let n = c.poll_transmit(&mut out).unwrap().unwrap();
        assert_eq!(out[0], 0xFF);
        assert!(n > 1);
        let feed = |c: &mut QgaClient<&mut [u8], 4>, mut input: &[u8], n_events: &mut usize| {
            while !input.is_empty() {
                input = &input[c.handle_input(Instant::ZERO, input)..];
                while let Some(ev) = c.poll_event() {
                    *n_events += 1;
                    if let ClientEvent::Resolved { token, outcome } = ev {
                        if token == s {
                            assert!(outcome.is_return());
                        }
                        if let (false, Ok(t)) = (token == s, outcome.decode::<GuestGetTime>()) {
                            assert_eq!(t, 1_795_285_339_653_786_000);
                        }
                    }
                }
            }
        };
        feed(&mut c, phase1, &mut n_events);
        assert_eq!(c.state(), QgaState::Synced);
        c.execute(Instant::ZERO, &GuestPing, ExecuteOptions::new(), &mut out)
            .unwrap();
        c.execute(
            Instant::ZERO,
            &GuestGetTime,
            ExecuteOptions::new(),
            &mut out,
        )
        .unwrap();
        c.execute(Instant::ZERO, &GuestInfo, ExecuteOptions::new(), &mut out)
            .unwrap();
        c.execute_raw(
            Instant::ZERO,
            "guest-file-read",
            Some(args),
            ExecuteOptions::new().timeout_ms(5),
            &mut out,
        )
        .unwrap();
        feed(&mut c, &phase2, &mut n_events);
        c.handle_timeout(Instant::from_millis(10));
        while c.poll_event().is_some() {
            n_events += 1;
        }
        c.handle_eof();
        while c.poll_event().is_some() {}
        n_events
    });
    assert_eq!(allocs, 0);
    // stale reply, sync, orphan, 3 replies, unmatched, framing (`%`), timeout
    assert_eq!(n_events, 9);
}

// ---------------------------------------------------------------------------
// 4. Our client against our agent in QGA mode, in-process

const COMMANDS: &[CommandSpec<'static>] = &[
    CommandSpec::new("guest-sync-delimited"),
    CommandSpec::new("guest-sync"),
    CommandSpec::new("guest-ping"),
    CommandSpec::new("guest-info"),
    CommandSpec::new("guest-get-time"),
];

#[test]
fn client_against_our_agent_in_qga_mode() {
    let (mut f, mut q, mut o) = (vec![0u8; 4096], vec![0u8; 8192], vec![0u8; 8192]);
    let mut agent = Agent::new(
        AgentConfig::qga(COMMANDS),
        AgentBuffers::new(&mut f, &mut q, &mut o),
    )
    .unwrap();
    let info = validate(
        b"{\"version\": \"10.0.2\", \"supported_commands\": []}",
        FramerConfig::new(),
    )
    .unwrap();
    let empty = validate(b"{}", FramerConfig::new()).unwrap();
    let mut client: QgaClient<Vec<u8>, 4> = QgaClient::new(vec![0u8; 4096]);
    let mut to_agent: Vec<u8> = Vec::new();
    let mut to_client: Vec<u8> = Vec::new();

    // A previous client: left output unread and half a request in the
    // agent's parser.
    to_agent.extend_from_slice(
        b"{\"execute\":\"guest-ping\",\"id\":\"old\"}{\"execute\":\"guest-info\",\"argu",
    );

    let mut events: Vec<Ev> = Vec::new();
    let pump = |agent: &mut Agent<'_, '_>,
                client: &mut QgaClient<Vec<u8>, 4>,
                to_agent: &mut Vec<u8>,
                to_client: &mut Vec<u8>,
                events: &mut Vec<Ev>| {
        let mut tx = [0u8; 512];
        for _ in 0..100 {
            let mut progress = false;
            while let Ok(Some(n)) = client.poll_transmit(&mut tx) {
                to_agent.extend_from_slice(&tx[..n]);
            }
            if !to_agent.is_empty() {
                let n = agent.handle_input(Instant::ZERO, to_agent);
                to_agent.drain(..n);
                progress |= n > 0;
            }
            while let Some(req) = agent.poll_request() {
                let t = req.token;
                let r = if req.name.eq_str("guest-info") {
                    agent.complete(t, Reply::Return(&Verbatim(info)))
                } else if req.name.eq_str("guest-get-time") {
                    agent.complete(t, Reply::Return(&1_795_285_339_653_786_001u64))
                } else {
                    agent.complete(t, Reply::Return(&Verbatim(empty)))
                };
                r.unwrap();
                progress = true;
            }
            while let Some(k) = agent.poll_transmit(&mut tx) {
                to_client.extend_from_slice(&tx[..k]);
                progress = true;
            }
            // Deliver in small pieces.
            while !to_client.is_empty() {
                let take = to_client.len().min(7);
                let n = client.handle_input(Instant::ZERO, &to_client[..take]);
                to_client.drain(..n);
                while let Some(ev) = client.poll_event() {
                    events.push(own(ev));
                }
                progress |= n > 0;
            }
            if !progress {
                break;
            }
        }
    };

    // The previous client's leftovers reach the agent before we connect.
    pump(
        &mut agent,
        &mut client,
        &mut to_agent,
        &mut to_client,
        &mut events,
    );
    let stale = events.len();
    assert_eq!(stale, 1, "{events:?}"); // the stale guest-ping reply

    let sync = client
        .sync(
            Instant::ZERO,
            0x7edc_ba98_7654_3210,
            Instant::from_millis(1000),
        )
        .unwrap();
    pump(
        &mut agent,
        &mut client,
        &mut to_agent,
        &mut to_client,
        &mut events,
    );
    assert_eq!(
        events.last(),
        Some(&Ev::Return(sync, 0x7edc_ba98_7654_3210u64.to_string()))
    );
    assert_eq!(client.state(), QgaState::Synced);
    // The agent answered the half request + our 0xFF with an error: skipped.
    assert!(events[stale..]
        .iter()
        .any(|e| matches!(e, Ev::Discarded(m) if m.contains("stray"))));

    let mut out = [0u8; 256];
    let (ping, n) = client
        .execute(Instant::ZERO, &GuestPing, ExecuteOptions::new(), &mut out)
        .unwrap();
    to_agent.extend_from_slice(&out[..n]);
    let (time, n) = client
        .execute(
            Instant::ZERO,
            &GuestGetTime,
            ExecuteOptions::new(),
            &mut out,
        )
        .unwrap();
    to_agent.extend_from_slice(&out[..n]);
    let (inf, n) = client
        .execute(Instant::ZERO, &GuestInfo, ExecuteOptions::new(), &mut out)
        .unwrap();
    to_agent.extend_from_slice(&out[..n]);
    let (nope, n) = client
        .execute_raw(
            Instant::ZERO,
            "guest-nope",
            None,
            ExecuteOptions::new(),
            &mut out,
        )
        .unwrap();
    to_agent.extend_from_slice(&out[..n]);
    let before = events.len();
    pump(
        &mut agent,
        &mut client,
        &mut to_agent,
        &mut to_client,
        &mut events,
    );
    assert_eq!(
        events[before..],
        [
            Ev::Return(ping, "{}".into()),
            Ev::Return(time, "1795285339653786001".into()),
            Ev::Return(
                inf,
                "{\"version\": \"10.0.2\", \"supported_commands\": []}".into()
            ),
            Ev::Error(
                nope,
                "CommandNotFound".into(),
                "The command guest-nope has not been found".into()
            ),
        ]
    );
    // Typed decoding.
    let v = validate(b"1795285339653786001", FramerConfig::new()).unwrap();
    assert_eq!(
        Outcome::Return(v).decode::<GuestGetTime>().unwrap(),
        1_795_285_339_653_786_001
    );
    let v = validate(b"{\"version\": \"10.0.2\"}", FramerConfig::new()).unwrap();
    assert!(Outcome::Return(v)
        .decode::<GuestInfo>()
        .unwrap()
        .eq_str("10.0.2"));
}

/// Hostile-peer case 8: after a correct sync, a reply with a foreign id and
/// an id-less reply are never taken as a command's result; the reply with
/// the command's own id is.
#[test]
fn replies_match_by_id_only() {
    let stream = b"\xff{\"return\": 5}\n\
        {\"return\": {\"bad\": 1}, \"id\": \"foreign-999\"}\n\
        {\"return\": {\"bad\": 2}}\n\
        {\"return\": {\"bad\": 3}, \"id\": 99}\n\
        {\"return\": 1795285339653786000, \"id\": 1}\n";
    for sizes in chunkings() {
        let mut h = H::new(stream, sizes);
        let s = h.sync(5, 1000);
        h.until(s);
        let t = h.exec("guest-get-time", None);
        assert_eq!(t.id(), 1);
        assert_eq!(h.until(t), Ev::Return(t, "1795285339653786000".into()));
        let after_sync = h
            .events
            .iter()
            .skip_while(|e| !matches!(e, Ev::Return(x, _) if *x == s))
            .skip(1)
            .cloned()
            .collect::<Vec<_>>();
        assert_eq!(
            after_sync,
            [
                Ev::Unmatched("{\"return\": {\"bad\": 1}, \"id\": \"foreign-999\"}".into()),
                Ev::Unmatched("{\"return\": {\"bad\": 2}}".into()),
                Ev::Unmatched("{\"return\": {\"bad\": 3}, \"id\": 99}".into()),
                Ev::Return(t, "1795285339653786000".into()),
            ]
        );
    }
}

/// Hostile-peer case 7 for the guest agent: a malformed reply ends the
/// command its id names (or, id-less, the oldest waiting one when it stood
/// where a reply must be); the session goes on.
#[test]
fn a_malformed_reply_ends_its_command() {
    let stream = b"\xff{\"return\": 5}\n\
        {\"id\": 2, \"return\": \"a\xff\"}\n\
        {\"return\": {}, \"id\": 1}\n\
        {\"return\": \"\\ud800\"}\n";
    for sizes in chunkings() {
        let mut h = H::new(stream, sizes);
        let s = h.sync(5, 1000);
        h.until(s);
        let a = h.exec("guest-ping", None);
        let b = h.exec("guest-info", None);
        let c = h.exec("guest-get-time", None);
        assert_eq!(
            h.until(b),
            Ev::Malformed(b, "JSON parse error, stray '\"a\u{FFFD}'".into())
        );
        assert_eq!(h.until(a), Ev::Return(a, "{}".into()));
        assert_eq!(
            h.until(c),
            Ev::Malformed(
                c,
                "JSON parse error, \\ud800 is not a valid Unicode character".into()
            )
        );
    }
}
