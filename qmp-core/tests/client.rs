//! The client session: transcript replay in every chunking, routing rules,
//! deadlines, cancellation, oversized replies, EOF, limits, the
//! embedded-io driver.

use qmp_core::client::commands::{
    Cont, HumanMonitorCommand, QmpCapabilities, QueryCommands, QueryStatus, QueryVersion, Quit,
    Stop, SystemPowerdown,
};
use qmp_core::client::events::{self, Shutdown};
use qmp_core::client::{
    Client, ClientConfig, ClientEvent, Command, ExecuteError, ExecuteOptions, Negotiation, Outcome,
    State, Token,
};
use qmp_core::message::ErrorClass;
use qmp_core::scan::{validate, FrameError, FramerConfig};
use qmp_core::Instant;
use qmp_core::RawJson;
use rand::{rngs::SmallRng, Rng, SeedableRng};
use serde_json::Value;

const S2C: &[u8] = include_bytes!("data/qemu-system-7.2.s2c");
const C2S: &[u8] = include_bytes!("data/qemu-system-7.2.c2s");

fn lines(data: &[u8]) -> Vec<&[u8]> {
    data.split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.is_empty())
        .collect()
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

fn raw(s: &'static str) -> RawJson<'static> {
    validate(s.as_bytes(), FramerConfig::new()).unwrap()
}

/// An owned summary of a client event.
#[derive(Debug, Clone, PartialEq)]
enum Ev {
    Greeting(Value),
    Negotiated(bool),
    NegotiationFailed(String, String),
    Resolved(u64, Out),
    Event(String, Option<Value>),
    Unmatched(Option<Value>, Value),
    Orphan(String, String),
    Unknown(Value),
    Framing(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Out {
    Return(Value),
    Error(String, String),
    Timeout,
    Cancelled,
    Disconnected,
    Oversized(usize),
    Malformed(String),
}

fn own(ev: &ClientEvent<'_>) -> Ev {
    own_with(ev, false)
}

/// `light`: keep return values as their exact text instead of parsing them
/// (cheap, and stricter, for comparing chunkings with each other).
fn own_with(ev: &ClientEvent<'_>, light: bool) -> Ev {
    let json = |b: &[u8]| {
        if light {
            Value::String(String::from_utf8_lossy(b).into_owned())
        } else {
            json(b)
        }
    };
    match *ev {
        ClientEvent::Greeting(g) => Ev::Greeting(json(g.raw.as_bytes())),
        ClientEvent::Negotiated { oob } => Ev::Negotiated(oob),
        ClientEvent::NegotiationFailed { class, desc } => {
            Ev::NegotiationFailed(class.to_string(), desc.to_string())
        }
        ClientEvent::Resolved { token, outcome } => Ev::Resolved(
            token.id(),
            match outcome {
                Outcome::Return(v) => Out::Return(json(v.as_bytes())),
                Outcome::Error { class, desc } => Out::Error(class.to_string(), desc.to_string()),
                Outcome::Timeout => Out::Timeout,
                Outcome::Cancelled => Out::Cancelled,
                Outcome::Disconnected => Out::Disconnected,
                Outcome::Oversized { len } => Out::Oversized(len),
                Outcome::Malformed(e) => Out::Malformed(e.to_string()),
                _ => panic!("unexpected outcome"),
            },
        ),
        ClientEvent::Event(e) => Ev::Event(e.name.to_string(), e.data.map(|d| json(d.as_bytes()))),
        ClientEvent::Unmatched { id, message } => {
            Ev::Unmatched(id.map(|i| json(i.as_bytes())), json(message.as_bytes()))
        }
        ClientEvent::OrphanError { class, desc } => Ev::Orphan(class.to_string(), desc.to_string()),
        ClientEvent::Unknown(v) => Ev::Unknown(json(v.as_bytes())),
        ClientEvent::FramingError(e) => Ev::Framing(e.to_string()),
        _ => panic!("unexpected event"),
    }
}

type C<const N: usize> = Client<Vec<u8>, N>;

fn client<const N: usize>(cap: usize, cfg: ClientConfig) -> C<N> {
    Client::with_config(vec![0u8; cap], cfg)
}

/// Feeds all of `input` (whole), draining events after every call.
fn feed<const N: usize>(c: &mut C<N>, now: u64, input: &[u8]) -> Vec<Ev> {
    let mut evs = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        let n = c.handle_input(Instant::from_millis(now), rest);
        rest = &rest[n..];
        let mut got = false;
        while let Some(ev) = c.poll_event() {
            evs.push(own(&ev));
            got = true;
        }
        assert!(n > 0 || got, "no progress");
    }
    evs
}

fn drain<const N: usize>(c: &mut C<N>) -> Vec<Ev> {
    let mut evs = Vec::new();
    while let Some(ev) = c.poll_event() {
        evs.push(own(&ev));
    }
    evs
}

const GREETING_OOB: &[u8] = b"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 2, \"minor\": 0, \"major\": 10}, \"package\": \"\"}, \"capabilities\": [\"oob\"]}}\r\n";
const GREETING_NO_OOB: &[u8] = b"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 2, \"minor\": 0, \"major\": 10}, \"package\": \"\"}, \"capabilities\": []}}\r\n";

/// A negotiated client (OOB iff offered).
fn ready<const N: usize>(oob: bool) -> C<N> {
    let mut c = client::<N>(4096, ClientConfig::new());
    feed(&mut c, 0, if oob { GREETING_OOB } else { GREETING_NO_OOB });
    let mut out = [0u8; 128];
    let n = c.poll_transmit(&mut out).unwrap().unwrap();
    let expected: &[u8] = if oob {
        br#"{"execute":"qmp_capabilities","arguments":{"enable":["oob"]}}"#
    } else {
        br#"{"execute":"qmp_capabilities","arguments":{}}"#
    };
    assert_eq!(&out[..n], expected);
    assert_eq!(
        feed(&mut c, 0, b"{\"return\": {}}\r\n"),
        vec![Ev::Negotiated(oob)]
    );
    assert_eq!(c.state(), State::Ready);
    assert_eq!(c.oob_enabled(), oob);
    c
}

fn exec_raw<const N: usize>(
    c: &mut C<N>,
    now: u64,
    name: &str,
    opts: ExecuteOptions,
) -> (Token, Vec<u8>) {
    let mut out = [0u8; 256];
    let (t, n) = c
        .execute_raw(Instant::from_millis(now), name, None, opts, &mut out)
        .unwrap();
    (t, out[..n].to_vec())
}

fn ret(id: u64) -> Ev {
    Ev::Resolved(id, Out::Return(serde_json::json!({})))
}

// ---------------------------------------------------------------------------
// 1. Transcript replay

/// The recorded session's commands, in order.
#[derive(Clone, Copy)]
enum Cmd {
    Version,
    Status,
    Commands,
    Raw(&'static str, Option<&'static str>),
    Cont,
    Stop,
    Hmp(&'static str),
    Powerdown,
    Quit,
}

const COMMANDS: [Cmd; 12] = [
    Cmd::Version,
    Cmd::Status,
    Cmd::Commands,
    Cmd::Raw("query-qmp-schema", None),
    Cmd::Cont,
    Cmd::Stop,
    Cmd::Hmp("info registers"),
    Cmd::Raw("qom-list", Some(r#"{"path": "/"}"#)),
    Cmd::Raw("query-chardev", None),
    Cmd::Raw("nope", None),
    Cmd::Powerdown,
    Cmd::Quit,
];

fn exec_cmd<B: AsRef<[u8]> + AsMut<[u8]>, const N: usize>(
    c: &mut Client<B, N>,
    cmd: Cmd,
    out: &mut [u8],
) -> Result<(Token, usize), ExecuteError> {
    let o = ExecuteOptions::new();
    match cmd {
        Cmd::Version => c.execute(Instant::ZERO, &QueryVersion, o, out),
        Cmd::Status => c.execute(Instant::ZERO, &QueryStatus, o, out),
        Cmd::Commands => c.execute(Instant::ZERO, &QueryCommands, o, out),
        Cmd::Raw(name, args) => c.execute_raw(Instant::ZERO, name, args.map(raw), o, out),
        Cmd::Cont => c.execute(Instant::ZERO, &Cont, o, out),
        Cmd::Stop => c.execute(Instant::ZERO, &Stop, o, out),
        Cmd::Hmp(line) => c.execute(
            Instant::ZERO,
            &HumanMonitorCommand { command_line: line },
            o,
            out,
        ),
        Cmd::Powerdown => c.execute(Instant::ZERO, &SystemPowerdown, o, out),
        Cmd::Quit => c.execute(Instant::ZERO, &Quit, o, out),
    }
}

/// Replays the transcript: the client sends each command after the previous
/// one resolved, like the recorded client. Returns the events and the bytes
/// the client generated (one entry per message).
fn replay(chunks: &mut dyn FnMut(usize) -> usize, cap: usize) -> (Vec<Ev>, Vec<Vec<u8>>) {
    replay_with(chunks, cap, false)
}

fn replay_with(
    chunks: &mut dyn FnMut(usize) -> usize,
    cap: usize,
    light: bool,
) -> (Vec<Ev>, Vec<Vec<u8>>) {
    let mut c = client::<4>(cap, ClientConfig::new());
    let mut sent = Vec::new();
    let mut evs = Vec::new();
    let mut next = 0;
    let mut current: Option<Token> = None;
    let mut out = vec![0u8; 512];
    let mut rest = S2C;
    while !rest.is_empty() {
        let k = chunks(rest.len()).clamp(1, rest.len());
        let mut chunk = &rest[..k];
        rest = &rest[k..];
        while !chunk.is_empty() {
            let n = c.handle_input(Instant::ZERO, chunk);
            chunk = &chunk[n..];
            let mut got = false;
            while let Some(ev) = c.poll_event() {
                got = true;
                if let ClientEvent::Resolved { token, .. } = ev {
                    if Some(token) == current {
                        current = None;
                    }
                }
                evs.push(own_with(&ev, light));
            }
            assert!(n > 0 || got, "no progress");
            if let Some(n) = c.poll_transmit(&mut out).unwrap() {
                sent.push(out[..n].to_vec());
            }
            if current.is_none() && c.state() != State::AwaitingGreeting && next < COMMANDS.len() {
                let (t, n) = exec_cmd(&mut c, COMMANDS[next], &mut out).unwrap();
                assert_eq!(t.id(), next as u64 + 1);
                sent.push(out[..n].to_vec());
                current = Some(t);
                next += 1;
            }
        }
    }
    assert_eq!(next, COMMANDS.len());
    assert_eq!(c.in_flight(), 0);
    c.handle_eof();
    assert!(c.poll_event().is_none());
    (evs, sent)
}

/// What the transcript says should happen: events and resolutions in
/// server order.
fn expected_events(oversized: &[u64]) -> Vec<Ev> {
    let mut evs = Vec::new();
    for (i, line) in lines(S2C).into_iter().enumerate() {
        let v = json(line);
        if i == 0 {
            evs.push(Ev::Greeting(v["QMP"].clone()));
        } else if i == 1 {
            evs.push(Ev::Negotiated(true));
        } else if let Some(name) = v.get("event") {
            evs.push(Ev::Event(
                name.as_str().unwrap().to_string(),
                v.get("data").cloned(),
            ));
        } else {
            let id = v["id"].as_u64().unwrap();
            let out = if oversized.contains(&id) {
                Out::Oversized(line.len())
            } else if let Some(r) = v.get("return") {
                Out::Return(r.clone())
            } else {
                Out::Error(
                    v["error"]["class"].as_str().unwrap().to_string(),
                    v["error"]["desc"].as_str().unwrap().to_string(),
                )
            };
            evs.push(Ev::Resolved(id, out));
        }
    }
    evs
}

fn check_sent(sent: &[Vec<u8>]) {
    let recorded = lines(C2S);
    assert_eq!(sent.len(), recorded.len());
    for (ours, theirs) in sent.iter().zip(recorded) {
        assert_eq!(
            json(ours),
            json(theirs),
            "{}",
            String::from_utf8_lossy(ours)
        );
    }
}

const BIG: usize = 256 * 1024;

#[test]
fn replay_whole_and_bytewise() {
    let (whole, sent) = replay(&mut |len| len, BIG);
    check_sent(&sent);
    assert_eq!(whole, expected_events(&[]));
    let (bytewise, sent1) = replay(&mut |_| 1, BIG);
    assert_eq!(bytewise, whole);
    assert_eq!(sent1, sent);
    // Sanity on what the typed decoders make of the recorded replies.
    let names: Vec<_> = whole
        .iter()
        .filter_map(|e| match e {
            Ev::Event(n, _) => Some(n.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(names, ["RESUME", "STOP", "POWERDOWN", "SHUTDOWN"]);
}

#[test]
fn replay_random_chunkings() {
    let (whole, sent) = replay_with(&mut |len| len, BIG, true);
    for seed in 0..1000u64 {
        let mut rng = SmallRng::seed_from_u64(seed);
        let max = [3usize, 64, 1000, 8000, 70000][seed as usize % 5];
        let (evs, s) = replay_with(&mut |_| rng.random_range(1..=max), BIG, true);
        assert_eq!(evs, whole, "seed {seed}");
        assert_eq!(s, sent, "seed {seed}");
    }
}

#[test]
fn typed_decoding_of_transcript_values() {
    let mut c = client::<4>(BIG, ClientConfig::new());
    let all = lines(S2C);
    feed(&mut c, 0, all[0]);
    let mut out = vec![0u8; 512];
    let _ = c.poll_transmit(&mut out).unwrap().unwrap();
    feed(&mut c, 0, all[1]);
    let mut check = |cmd: Cmd, reply: &[u8], f: &mut dyn FnMut(Outcome<'_>)| {
        let (t, _) = exec_cmd(&mut c, cmd, &mut out).unwrap();
        let mut rest = reply;
        let mut seen = false;
        while !rest.is_empty() {
            rest = &rest[c.handle_input(Instant::ZERO, rest)..];
            while let Some(ev) = c.poll_event() {
                if let ClientEvent::Resolved { token, outcome } = ev {
                    assert_eq!(token, t);
                    f(outcome);
                    seen = true;
                }
            }
        }
        assert!(seen);
    };
    check(Cmd::Version, all[2], &mut |o| {
        let v = o.decode::<QueryVersion>().unwrap();
        assert_eq!((v.qemu.major, v.qemu.minor, v.qemu.micro), (7, 2, 22));
        assert_eq!(v.package.to_string(), "Debian 1:7.2+dfsg-7+deb12u18+b3");
    });
    check(Cmd::Status, all[3], &mut |o| {
        let s = o.decode::<QueryStatus>().unwrap();
        assert!(s.status.eq_str("prelaunch"));
        assert!(!s.running);
        assert_eq!(s.singlestep, Some(false));
    });
    check(Cmd::Commands, all[4], &mut |o| {
        let l = o.decode::<QueryCommands>().unwrap();
        assert!(l.contains("query-status") && l.contains("device_add"));
        assert!(l.names().count() > 100);
    });
    check(Cmd::Raw("query-qmp-schema", None), all[5], &mut |o| {
        assert!(matches!(o, Outcome::Return(v) if v.as_bytes().len() > 200_000));
    });
    // RESUME, then cont's reply.
    check(Cmd::Cont, &[all[6], b"\n", all[7]].concat(), &mut |o| {
        o.decode::<Cont>().unwrap();
    });
    check(Cmd::Stop, &[all[8], b"\n", all[9]].concat(), &mut |o| {
        o.decode::<Stop>().unwrap();
    });
    check(Cmd::Hmp("info registers"), all[10], &mut |o| {
        let s = o.decode::<HumanMonitorCommand<'_>>().unwrap();
        assert_eq!(s.to_string(), "No CPU available\r\n");
    });
    check(Cmd::Raw("qom-list", None), all[11], &mut |_| {});
    check(Cmd::Raw("query-chardev", None), all[12], &mut |_| {});
    check(Cmd::Raw("nope", None), all[13], &mut |o| {
        let e = o.decode::<QueryStatus>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "CommandNotFound: The command nope has not been found"
        );
    });
    check(
        Cmd::Powerdown,
        &[all[14], b"\n", all[15]].concat(),
        &mut |_| {},
    );
    // The SHUTDOWN event decodes.
    let mut shutdown = None;
    let mut rest = all[16];
    while !rest.is_empty() {
        rest = &rest[c.handle_input(Instant::ZERO, rest)..];
        while let Some(ev) = c.poll_event() {
            if let ClientEvent::Event(e) = ev {
                let d = events::decode::<Shutdown>(&e).unwrap().unwrap();
                shutdown = Some((d.guest, d.reason.to_string()));
                assert!(events::decode::<events::Stop>(&e).is_none());
            }
        }
    }
    assert_eq!(shutdown, Some((false, "host-qmp-quit".to_string())));
}

// ---------------------------------------------------------------------------
// 2. Routing rules

#[test]
fn event_between_capabilities_and_its_reply() {
    let mut c = client::<4>(4096, ClientConfig::new());
    assert!(matches!(
        feed(&mut c, 0, GREETING_OOB)[..],
        [Ev::Greeting(_)]
    ));
    let mut out = [0u8; 128];
    c.poll_transmit(&mut out).unwrap().unwrap();
    // Pipelined behind qmp_capabilities.
    let (t, _) = exec_raw(&mut c, 0, "query-status", ExecuteOptions::new());
    assert_eq!(c.state(), State::Negotiating);
    let evs = feed(
        &mut c,
        0,
        b"{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": \"STOP\"}\r\n\
          {\"return\": {}}\r\n{\"return\": {\"status\": \"paused\"}, \"id\": 1}\r\n",
    );
    assert_eq!(
        evs,
        vec![
            Ev::Event("STOP".into(), None),
            Ev::Negotiated(true),
            Ev::Resolved(t.id(), Out::Return(serde_json::json!({"status": "paused"}))),
        ]
    );
    assert_eq!(c.state(), State::Ready);
}

#[test]
fn event_before_the_greeting() {
    let mut c = client::<4>(4096, ClientConfig::new());
    let evs = feed(
        &mut c,
        0,
        &[
            &b"{\"event\": \"RESUME\", \"timestamp\": {\"seconds\": -1, \"microseconds\": -1}}"[..],
            GREETING_NO_OOB,
        ]
        .concat(),
    );
    assert_eq!(evs.len(), 2);
    assert_eq!(evs[0], Ev::Event("RESUME".into(), None));
    assert!(matches!(evs[1], Ev::Greeting(_)));
    assert_eq!(c.state(), State::Negotiating);
    let mut out = [0u8; 128];
    assert!(c.poll_transmit(&mut out).unwrap().is_some());
    assert_eq!(
        feed(&mut c, 0, b"{\"return\": {}}"),
        vec![Ev::Negotiated(false)]
    );
}

#[test]
fn unknown_and_foreign_ids_are_dropped() {
    let mut c = ready::<4>(false);
    let (t, _) = exec_raw(&mut c, 0, "query-status", ExecuteOptions::new());
    let evs = feed(
        &mut c,
        0,
        b"{\"return\": {}, \"id\": 99}{\"return\": {}, \"id\": \"1\"}\
          {\"id\": {\"a\": [1]}, \"error\": {\"class\": \"GenericError\", \"desc\": \"x\"}}\
          {\"return\": 5}{\"return\": {}, \"id\": 1}",
    );
    assert_eq!(
        evs,
        vec![
            Ev::Unmatched(Some(99.into()), serde_json::json!({"return": {}, "id": 99})),
            Ev::Unmatched(
                Some("1".into()),
                serde_json::json!({"return": {}, "id": "1"})
            ),
            Ev::Unmatched(
                Some(serde_json::json!({"a": [1]})),
                serde_json::json!({"id": {"a": [1]}, "error": {"class": "GenericError", "desc": "x"}})
            ),
            Ev::Unmatched(None, serde_json::json!({"return": 5})),
            ret(t.id()),
        ]
    );
}

#[test]
fn idless_error_in_lock_step_belongs_to_oldest_request() {
    let mut c = ready::<4>(false);
    let (t1, _) = exec_raw(&mut c, 0, "query-status", ExecuteOptions::new());
    let (t2, _) = exec_raw(&mut c, 0, "query-version", ExecuteOptions::new());
    let evs = feed(
        &mut c,
        0,
        b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, expecting value\"}}\r\n\
          {\"return\": {}, \"id\": 2}\r\n\
          {\"error\": {\"class\": \"GenericError\", \"desc\": \"late\"}}\r\n",
    );
    assert_eq!(
        evs,
        vec![
            Ev::Resolved(
                t1.id(),
                Out::Error(
                    "GenericError".into(),
                    "JSON parse error, expecting value".into()
                )
            ),
            ret(t2.id()),
            // Nothing owed: an orphan.
            Ev::Orphan("GenericError".into(), "late".into()),
        ]
    );
}

/// QEMU queues parse and validation errors in-band even with OOB enabled:
/// an id-less error belongs to the oldest in-band request owed a reply,
/// never to an OOB one (hostile-peer case 6).
#[test]
fn idless_error_with_oob_answers_the_oldest_in_band_request() {
    let mut c = ready::<4>(true);
    let (oob, _) = exec_raw(&mut c, 0, "migrate-pause", ExecuteOptions::new().oob(true));
    let (t1, _) = exec_raw(&mut c, 0, "query-status", ExecuteOptions::new());
    let (t2, _) = exec_raw(&mut c, 0, "query-name", ExecuteOptions::new());
    let evs = feed(
        &mut c,
        0,
        b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, expecting value\"}}\r\n\
          {\"return\": {}, \"id\": 1}\r\n\
          {\"return\": {}, \"id\": 3}\r\n\
          {\"error\": {\"class\": \"GenericError\", \"desc\": \"late\"}}\r\n",
    );
    assert_eq!(
        evs,
        vec![
            Ev::Resolved(
                t1.id(),
                Out::Error(
                    "GenericError".into(),
                    "JSON parse error, expecting value".into()
                )
            ),
            ret(oob.id()),
            ret(t2.id()),
            // Nothing in-band owed: an orphan.
            Ev::Orphan("GenericError".into(), "late".into()),
        ]
    );
}

#[test]
fn oob_reply_overtakes() {
    let mut c = ready::<4>(true);
    let (t1, b1) = exec_raw(&mut c, 0, "query-status", ExecuteOptions::new());
    let (t2, b2) = exec_raw(&mut c, 0, "migrate-pause", ExecuteOptions::new().oob(true));
    assert_eq!(b1, br#"{"execute":"query-status","id":1}"#);
    assert_eq!(b2, br#"{"exec-oob":"migrate-pause","id":2}"#);
    let evs = feed(
        &mut c,
        0,
        b"{\"return\": {}, \"id\": 2}\r\n{\"return\": {\"running\": true}, \"id\": 1}\r\n",
    );
    assert_eq!(
        evs,
        vec![
            ret(t2.id()),
            Ev::Resolved(t1.id(), Out::Return(serde_json::json!({"running": true}))),
        ]
    );
}

#[test]
fn oob_rules() {
    // Not negotiated (not offered).
    let mut c = ready::<4>(false);
    let mut out = [0u8; 128];
    assert_eq!(
        c.execute_raw(
            Instant::ZERO,
            "migrate-pause",
            None,
            ExecuteOptions::new().oob(true),
            &mut out
        ),
        Err(ExecuteError::OobNotNegotiated)
    );
    // Offered but declined by the config.
    let mut c = client::<4>(4096, ClientConfig::new().with_oob(false));
    feed(&mut c, 0, GREETING_OOB);
    let n = c.poll_transmit(&mut out).unwrap().unwrap();
    assert_eq!(
        &out[..n],
        br#"{"execute":"qmp_capabilities","arguments":{}}"#
    );
    assert_eq!(
        feed(&mut c, 0, b"{\"return\": {}}"),
        vec![Ev::Negotiated(false)]
    );
    // Typed command that does not allow OOB.
    let mut c = ready::<16>(true);
    assert_eq!(
        c.execute(
            Instant::ZERO,
            &QueryStatus,
            ExecuteOptions::new().oob(true),
            &mut out
        ),
        Err(ExecuteError::OobNotAllowed)
    );
    // At most 8 in-band in flight with OOB; OOB still possible.
    for _ in 0..8 {
        exec_raw(&mut c, 0, "query-status", ExecuteOptions::new());
    }
    assert_eq!(
        c.execute_raw(
            Instant::ZERO,
            "query-status",
            None,
            ExecuteOptions::new(),
            &mut out
        ),
        Err(ExecuteError::TooManyInBand)
    );
    exec_raw(&mut c, 0, "migrate-pause", ExecuteOptions::new().oob(true));
    assert_eq!(c.in_flight(), 9);
}

#[test]
fn unknown_event_name_and_members() {
    let mut c = ready::<4>(true);
    let (t, _) = exec_raw(&mut c, 0, "query-status", ExecuteOptions::new());
    let evs = feed(
        &mut c,
        0,
        b"{\"event\": \"X_FROM_THE_FUTURE\", \"data\": {\"k\": [1, {}]}, \"timestamp\": {\"seconds\": 1, \"microseconds\": 0}, \"new\": 1}\
          {\"return\": {\"status\": \"running\", \"running\": true, \"new-member\": [1]}, \"id\": 1, \"extra\": null}",
    );
    assert_eq!(
        evs[0],
        Ev::Event(
            "X_FROM_THE_FUTURE".into(),
            Some(serde_json::json!({"k": [1, {}]}))
        )
    );
    assert!(matches!(&evs[1], Ev::Resolved(id, Out::Return(_)) if *id == t.id()));
}

#[test]
fn unknown_error_class_and_capability() {
    let mut c = client::<4>(4096, ClientConfig::new());
    feed(
        &mut c,
        0,
        b"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 0, \"major\": 99}, \"package\": \"\"}, \"capabilities\": [\"oob\", \"teleport\"], \"more\": {}}}",
    );
    let mut out = [0u8; 128];
    c.poll_transmit(&mut out).unwrap().unwrap();
    feed(&mut c, 0, b"{\"return\": {}}");
    let (t, _) = exec_raw(&mut c, 0, "query-status", ExecuteOptions::new());
    let mut rest: &[u8] =
        b"{\"id\": 1, \"error\": {\"class\": \"FutureError\", \"desc\": \"caf\\u00e9\"}}";
    let mut seen = false;
    while !rest.is_empty() {
        rest = &rest[c.handle_input(Instant::ZERO, rest)..];
        while let Some(ev) = c.poll_event() {
            let ClientEvent::Resolved {
                token,
                outcome: Outcome::Error { class, desc },
            } = ev
            else {
                panic!("{ev:?}")
            };
            assert_eq!(token, t);
            assert!(matches!(class, ErrorClass::Other(s) if s.eq_str("FutureError")));
            assert_eq!(desc.to_string(), "café");
            seen = true;
        }
    }
    assert!(seen);
}

#[test]
fn framing_errors_are_reported_and_the_session_continues() {
    let mut c = ready::<4>(false);
    let (t, _) = exec_raw(&mut c, 0, "query-status", ExecuteOptions::new());
    let evs = feed(&mut c, 0, b"\xff{\"a\": tru}[1]{\"return\": {}, \"id\": 1}");
    assert_eq!(
        evs,
        vec![
            Ev::Framing("JSON parse error, stray '\u{FFFD}'".into()),
            Ev::Framing("JSON parse error, invalid keyword 'tru'".into()),
            Ev::Unknown(serde_json::json!([1])),
            ret(t.id()),
        ]
    );
}

// ---------------------------------------------------------------------------
// 3. Deadlines and cancellation

#[test]
fn deadline_resolves_timeout_once_and_late_reply_is_unmatched() {
    let mut c = ready::<4>(false);
    let (a, _) = exec_raw(
        &mut c,
        1000,
        "query-status",
        ExecuteOptions::new().timeout_ms(100),
    );
    let (b, _) = exec_raw(&mut c, 1000, "query-version", ExecuteOptions::new());
    let (d, _) = exec_raw(
        &mut c,
        1000,
        "query-kvm",
        ExecuteOptions::new().deadline(Instant::from_millis(1500)),
    );
    assert_eq!(c.poll_timeout().map(Instant::as_millis), Some(1100));
    c.handle_timeout(Instant::from_millis(1099));
    assert!(drain(&mut c).is_empty());
    c.handle_timeout(Instant::from_millis(1100));
    assert_eq!(drain(&mut c), vec![Ev::Resolved(a.id(), Out::Timeout)]);
    c.handle_timeout(Instant::from_millis(1100));
    c.handle_timeout(Instant::from_millis(1200));
    assert!(drain(&mut c).is_empty());
    assert_eq!(c.poll_timeout().map(Instant::as_millis), Some(1500));
    assert!(!c.is_pending(a) && c.is_pending(b) && c.is_pending(d));
    // The late reply of `a` (lock-step: it comes first) is dropped; then b.
    let evs = feed(
        &mut c,
        1200,
        b"{\"return\": {}, \"id\": 1}{\"return\": {}, \"id\": 2}",
    );
    assert_eq!(
        evs,
        vec![
            Ev::Unmatched(Some(1.into()), serde_json::json!({"return": {}, "id": 1})),
            ret(b.id()),
        ]
    );
    // handle_input applies deadlines first: d's reply after its deadline is late.
    let evs = feed(&mut c, 1500, b"{\"return\": {}, \"id\": 3}");
    assert_eq!(
        evs,
        vec![
            Ev::Resolved(d.id(), Out::Timeout),
            Ev::Unmatched(Some(3.into()), serde_json::json!({"return": {}, "id": 3})),
        ]
    );
    assert_eq!(c.in_flight(), 0);
    assert_eq!(c.poll_timeout().map(Instant::as_millis), None);
}

#[test]
fn timed_out_request_keeps_its_idless_error() {
    // Lock-step: the id-less error answers the timed-out request, not the
    // next one.
    let mut c = ready::<4>(false);
    let (a, _) = exec_raw(
        &mut c,
        0,
        "query-status",
        ExecuteOptions::new().timeout_ms(10),
    );
    let (b, _) = exec_raw(&mut c, 0, "query-version", ExecuteOptions::new());
    c.handle_timeout(Instant::from_millis(10));
    assert_eq!(drain(&mut c), vec![Ev::Resolved(a.id(), Out::Timeout)]);
    let evs = feed(
        &mut c,
        10,
        b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"x\"}}{\"return\": {}, \"id\": 2}",
    );
    assert!(matches!(&evs[0], Ev::Unmatched(None, _)));
    assert_eq!(evs[1], ret(b.id()));
}

#[test]
fn cancel_resolves_once() {
    let mut c = ready::<4>(true);
    let (a, _) = exec_raw(&mut c, 0, "query-status", ExecuteOptions::new());
    let (b, _) = exec_raw(&mut c, 0, "query-version", ExecuteOptions::new());
    assert!(c.cancel(a));
    assert!(!c.cancel(a));
    assert_eq!(drain(&mut c), vec![Ev::Resolved(a.id(), Out::Cancelled)]);
    assert!(!c.cancel(a));
    assert!(drain(&mut c).is_empty());
    let evs = feed(
        &mut c,
        0,
        b"{\"return\": {}, \"id\": 1}{\"return\": {}, \"id\": 2}",
    );
    assert!(matches!(&evs[0], Ev::Unmatched(Some(_), _)));
    assert_eq!(evs[1], ret(b.id()));
    assert!(!c.cancel(b));
}

// ---------------------------------------------------------------------------
// 4. Oversized replies

#[test]
fn oversized_replies_with_4k_and_8k_buffers() {
    let all = lines(S2C);
    let commands_len = all[4].len();
    let schema_len = all[5].len();
    assert!(commands_len > 4096 && commands_len < 8192 && schema_len > 200_000);
    for (cap, oversized) in [(4096, &[3u64, 4][..]), (8192, &[4u64][..])] {
        let expected = expected_events(oversized);
        let (whole, sent) = replay(&mut |len| len, cap);
        check_sent(&sent);
        assert_eq!(whole, expected, "cap {cap}");
        assert!(whole.contains(&Ev::Resolved(4, Out::Oversized(schema_len))));
        // The next command's reply is delivered.
        assert!(whole.contains(&ret(5)));
        let (bytewise, _) = replay(&mut |_| 1, cap);
        assert_eq!(bytewise, whole, "cap {cap}");
        for seed in 0..50 {
            let mut rng = SmallRng::seed_from_u64(seed);
            let (evs, _) = replay(&mut |_| rng.random_range(1..=3000), cap);
            assert_eq!(evs, whole, "cap {cap} seed {seed}");
        }
    }
}

#[test]
fn oversized_with_oob_pending_is_a_diagnostic() {
    let mut c = client::<4>(64, ClientConfig::new());
    feed(
        &mut c,
        0,
        b"{\"QMP\": {\"version\": {}, \"capabilities\": [\"oob\"]}}",
    );
    let mut out = [0u8; 128];
    c.poll_transmit(&mut out).unwrap().unwrap();
    feed(&mut c, 0, b"{\"return\": {}}");
    let (a, _) = exec_raw(&mut c, 0, "query-status", ExecuteOptions::new());
    let (b, _) = exec_raw(&mut c, 0, "migrate-pause", ExecuteOptions::new().oob(true));
    let big = format!("{{\"return\": \"{}\", \"id\": 1}}", "x".repeat(100));
    let evs = feed(&mut c, 0, big.as_bytes());
    assert_eq!(
        evs,
        vec![Ev::Framing(format!(
            "JSON token size limit exceeded ({} bytes)",
            big.len()
        ))]
    );
    assert!(c.is_pending(a) && c.is_pending(b));
}

// ---------------------------------------------------------------------------
// 6. EOF, limits, buffers

#[test]
fn eof_disconnects_every_pending_request_once() {
    let mut c = ready::<4>(true);
    let (a, _) = exec_raw(
        &mut c,
        0,
        "query-status",
        ExecuteOptions::new().timeout_ms(5),
    );
    let (b, _) = exec_raw(&mut c, 0, "migrate-pause", ExecuteOptions::new().oob(true));
    let (d, _) = exec_raw(&mut c, 0, "query-version", ExecuteOptions::new());
    // Half a message in the framer.
    feed(&mut c, 0, b"{\"return\": {}, \"i");
    c.handle_eof();
    c.handle_eof();
    assert_eq!(
        drain(&mut c),
        vec![
            Ev::Resolved(a.id(), Out::Disconnected),
            Ev::Resolved(b.id(), Out::Disconnected),
            Ev::Resolved(d.id(), Out::Disconnected),
        ]
    );
    c.handle_timeout(Instant::from_millis(100));
    assert!(drain(&mut c).is_empty());
    assert_eq!(c.state(), State::Closed);
    assert_eq!(c.poll_timeout().map(Instant::as_millis), None);
    let mut out = [0u8; 64];
    assert_eq!(
        c.execute(Instant::ZERO, &QueryStatus, ExecuteOptions::new(), &mut out),
        Err(ExecuteError::Closed)
    );
    assert_eq!(
        c.handle_input(Instant::ZERO, b"{\"return\": {}, \"id\": 3}"),
        23
    );
    assert!(drain(&mut c).is_empty());
}

#[test]
fn events_come_in_the_order_they_happened() {
    let mut c = ready::<4>(false);
    let (a, _) = exec_raw(&mut c, 0, "a", ExecuteOptions::new().timeout_ms(10));
    let (b, _) = exec_raw(&mut c, 0, "b", ExecuteOptions::new());
    let (d, _) = exec_raw(&mut c, 0, "d", ExecuteOptions::new());
    // b's reply is read but not yet polled when a times out and EOF comes.
    let n = c.handle_input(
        Instant::ZERO,
        b"{\"return\": {}, \"id\": 2}{\"event\": \"STOP\"}",
    );
    assert_eq!(n, 23);
    c.handle_timeout(Instant::from_millis(10));
    c.handle_eof();
    assert!(c.next_event_resolves(b));
    assert_eq!(
        drain(&mut c),
        vec![
            ret(b.id()),
            Ev::Resolved(a.id(), Out::Timeout),
            Ev::Resolved(d.id(), Out::Disconnected),
        ]
    );
}

#[test]
fn too_many_in_flight() {
    let mut c = ready::<2>(false);
    let (a, _) = exec_raw(&mut c, 0, "a", ExecuteOptions::new().timeout_ms(1));
    exec_raw(&mut c, 0, "b", ExecuteOptions::new());
    let mut out = [0u8; 64];
    assert_eq!(
        c.execute_raw(Instant::ZERO, "c", None, ExecuteOptions::new(), &mut out),
        Err(ExecuteError::TooManyInFlight)
    );
    // A resolution not yet polled still holds its slot (nothing is lost).
    c.handle_timeout(Instant::from_millis(1));
    assert_eq!(
        c.execute_raw(Instant::ZERO, "c", None, ExecuteOptions::new(), &mut out),
        Err(ExecuteError::TooManyInFlight)
    );
    assert_eq!(drain(&mut c), vec![Ev::Resolved(a.id(), Out::Timeout)]);
    let (t, _) = exec_raw(&mut c, 0, "c", ExecuteOptions::new());
    assert_eq!(t.id(), 3);
}

#[test]
fn buffer_too_small_registers_nothing() {
    let mut c = ready::<4>(false);
    let mut small = [0u8; 10];
    let err = c
        .execute(
            Instant::ZERO,
            &HumanMonitorCommand {
                command_line: "info registers",
            },
            ExecuteOptions::new(),
            &mut small,
        )
        .unwrap_err();
    let expected = br#"{"execute":"human-monitor-command","arguments":{"command-line":"info registers"},"id":1}"#;
    assert_eq!(
        err,
        ExecuteError::InsufficientSize(qmp_core::InsufficientSize {
            required: expected.len()
        })
    );
    assert_eq!(c.in_flight(), 0);
    assert_eq!(c.poll_timeout().map(Instant::as_millis), None);
    let mut exact = vec![0u8; expected.len()];
    let (t, n) = c
        .execute(
            Instant::ZERO,
            &HumanMonitorCommand {
                command_line: "info registers",
            },
            ExecuteOptions::new(),
            &mut exact,
        )
        .unwrap();
    assert_eq!(t.id(), 1);
    assert_eq!(&exact[..n], expected);
}

#[test]
fn transmit_stays_queued_and_execute_puts_it_first() {
    let mut c = client::<4>(4096, ClientConfig::new());
    let mut out = [0u8; 256];
    assert_eq!(
        c.execute(Instant::ZERO, &QueryStatus, ExecuteOptions::new(), &mut out),
        Err(ExecuteError::NotReady)
    );
    feed(&mut c, 0, GREETING_OOB);
    let caps = br#"{"execute":"qmp_capabilities","arguments":{"enable":["oob"]}}"#;
    let mut small = [0u8; 8];
    assert_eq!(
        c.poll_transmit(&mut small),
        Err(qmp_core::encode::EncodeError::InsufficientSize(
            qmp_core::InsufficientSize {
                required: caps.len()
            }
        ))
    );
    // Still queued: execute writes it in front of the command.
    let cmd = br#"{"execute":"query-status","id":1}"#;
    assert_eq!(
        c.execute(
            Instant::ZERO,
            &QueryStatus,
            ExecuteOptions::new(),
            &mut small
        ),
        Err(ExecuteError::InsufficientSize(qmp_core::InsufficientSize {
            required: caps.len() + cmd.len()
        }))
    );
    let (_, n) = c
        .execute(Instant::ZERO, &QueryStatus, ExecuteOptions::new(), &mut out)
        .unwrap();
    assert_eq!(&out[..n], &[&caps[..], &cmd[..]].concat()[..]);
    assert_eq!(c.poll_transmit(&mut out), Ok(None));
}

#[test]
fn manual_negotiation() {
    let mut c = client::<4>(
        4096,
        ClientConfig::new().with_negotiation(Negotiation::Manual),
    );
    feed(&mut c, 0, GREETING_OOB);
    let mut out = [0u8; 128];
    assert_eq!(c.poll_transmit(&mut out), Ok(None));
    assert_eq!(c.state(), State::Negotiating);
    let (t, n) = c
        .execute(
            Instant::ZERO,
            &QmpCapabilities { oob: true },
            ExecuteOptions::new(),
            &mut out,
        )
        .unwrap();
    assert_eq!(
        &out[..n],
        br#"{"execute":"qmp_capabilities","arguments":{"enable":["oob"]},"id":1}"#
    );
    assert_eq!(
        feed(&mut c, 0, b"{\"return\": {}, \"id\": 1}"),
        vec![ret(t.id())]
    );
    assert_eq!(c.state(), State::Ready);
    assert!(c.oob_enabled());
    // Raw arguments work too; a failure leaves OOB off.
    let mut c = client::<4>(
        4096,
        ClientConfig::new().with_negotiation(Negotiation::Manual),
    );
    feed(&mut c, 0, GREETING_NO_OOB);
    c.execute_raw(
        Instant::ZERO,
        "qmp_capabilities",
        Some(raw(r#"{"enable": ["oob"]}"#)),
        ExecuteOptions::new(),
        &mut out,
    )
    .unwrap();
    feed(
        &mut c,
        0,
        b"{\"id\": 1, \"error\": {\"class\": \"GenericError\", \"desc\": \"Capability oob not available\"}}",
    );
    assert_eq!(c.state(), State::Negotiating);
    assert!(!c.oob_enabled());
}

#[test]
fn automatic_negotiation_failure() {
    let mut c = client::<4>(4096, ClientConfig::new());
    feed(&mut c, 0, GREETING_OOB);
    let mut out = [0u8; 128];
    c.poll_transmit(&mut out).unwrap().unwrap();
    let evs = feed(
        &mut c,
        0,
        b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"Capability oob not available\"}}",
    );
    assert_eq!(
        evs,
        vec![Ev::NegotiationFailed(
            "GenericError".into(),
            "Capability oob not available".into()
        )]
    );
    assert_eq!(c.state(), State::Negotiating);
    assert!(!c.oob_enabled());
}

#[test]
fn handle_input_waits_for_poll_event() {
    let mut c = ready::<4>(false);
    let two = b"{\"event\": \"STOP\"}{\"event\": \"RESUME\"}";
    let n = c.handle_input(Instant::ZERO, two);
    assert_eq!(n, 17);
    assert_eq!(c.handle_input(Instant::ZERO, &two[n..]), 0);
    assert!(matches!(c.poll_event(), Some(ClientEvent::Event(e)) if e.name.eq_str("STOP")));
    assert!(c.poll_event().is_none());
    assert_eq!(c.handle_input(Instant::ZERO, &two[n..]), two.len() - n);
    assert!(matches!(c.poll_event(), Some(ClientEvent::Event(e)) if e.name.eq_str("RESUME")));
}

#[test]
fn size_of_client() {
    let size = core::mem::size_of::<Client<&mut [u8], 8>>();
    println!("size_of::<Client<&mut [u8], 8>>() = {size}");
    assert!(size < 2048, "{size}");
}

#[test]
fn command_trait_is_usable_for_user_commands() {
    struct QueryKvm;
    impl serde::Serialize for QueryKvm {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_unit()
        }
    }
    impl Command for QueryKvm {
        const NAME: &'static str = "query-kvm";
        const HAS_ARGUMENTS: bool = false;
        type Returns<'a> = bool;
        fn decode_returns(v: RawJson<'_>) -> Result<bool, qmp_core::client::DecodeError> {
            #[derive(serde::Deserialize)]
            struct Kvm {
                enabled: bool,
            }
            Ok(v.parse::<Kvm>()?.enabled)
        }
    }
    let mut c = ready::<4>(false);
    let mut out = [0u8; 64];
    let (t, n) = c
        .execute(Instant::ZERO, &QueryKvm, ExecuteOptions::new(), &mut out)
        .unwrap();
    assert_eq!(&out[..n], br#"{"execute":"query-kvm","id":1}"#);
    let mut rest: &[u8] = b"{\"return\": {\"enabled\": true, \"present\": true}, \"id\": 1}";
    let mut got = None;
    while !rest.is_empty() {
        rest = &rest[c.handle_input(Instant::ZERO, rest)..];
        if let Some(ClientEvent::Resolved { token, outcome }) = c.poll_event() {
            assert_eq!(token, t);
            got = Some(outcome.decode::<QueryKvm>().unwrap());
        }
    }
    assert_eq!(got, Some(true));
    // Frame errors keep their Display.
    let _ = FrameError::DepthLimit.to_string();
}

// ---------------------------------------------------------------------------
// 7. The embedded-io driver

#[cfg(feature = "embedded-io")]
mod driver {
    use super::*;
    use qmp_core::drive::blocking::BlockingDriver;
    use qmp_core::drive::DriveError;
    use qmp_core::pump::Pump;

    /// An in-memory duplex: reads replay server bytes in short pieces,
    /// writes are accepted a few bytes at a time.
    struct Duplex {
        rx: Vec<u8>,
        pos: usize,
        read_max: usize,
        write_max: usize,
        written: Vec<u8>,
    }

    impl embedded_io::ErrorType for Duplex {
        type Error = core::convert::Infallible;
    }

    impl embedded_io::Read for Duplex {
        fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
            let n = buf.len().min(self.read_max).min(self.rx.len() - self.pos);
            buf[..n].copy_from_slice(&self.rx[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    impl embedded_io::Write for Duplex {
        fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
            let n = buf.len().min(self.write_max);
            self.written.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> Result<(), Self::Error> {
            Ok(())
        }
    }

    impl embedded_io::ReadReady for Duplex {
        fn read_ready(&mut self) -> Result<bool, Self::Error> {
            Ok(true)
        }
    }

    fn split_stream(bytes: &[u8]) -> Vec<Value> {
        serde_json::Deserializer::from_slice(bytes)
            .into_iter::<Value>()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn driver_replays_the_transcript() {
        for (read_max, write_max, rx_len) in
            [(1, 1, 1), (7, 3, 64), (4096, 4096, 4096), (100_000, 5, 300)]
        {
            let mut io = Duplex {
                rx: S2C.to_vec(),
                pos: 0,
                read_max,
                write_max,
                written: Vec::new(),
            };
            let mut fb = vec![0u8; BIG];
            let mut client: Client<&mut [u8], 4> =
                Client::with_config(&mut fb[..], qmp_core::client::ClientConfig::new());
            let (mut rx, mut tx) = (vec![0u8; rx_len], vec![0u8; 256]);
            let mut driver = BlockingDriver::new(Pump::new(&mut rx, &mut tx));
            let mut evs = Vec::new();
            driver
                .negotiate(
                    &mut client,
                    &mut io,
                    || Instant::ZERO,
                    |ev| evs.push(own(ev)),
                )
                .unwrap();
            for (i, cmd) in COMMANDS.iter().enumerate() {
                let mut out = [0u8; 256];
                // Execute through the client into the driver's transport.
                let token = match *cmd {
                    Cmd::Version => driver.execute(
                        &mut client,
                        &mut io,
                        Instant::ZERO,
                        &QueryVersion,
                        ExecuteOptions::new(),
                    ),
                    Cmd::Status => driver.execute(
                        &mut client,
                        &mut io,
                        Instant::ZERO,
                        &QueryStatus,
                        ExecuteOptions::new(),
                    ),
                    Cmd::Commands => driver.execute(
                        &mut client,
                        &mut io,
                        Instant::ZERO,
                        &QueryCommands,
                        ExecuteOptions::new(),
                    ),
                    Cmd::Raw(name, args) => driver.execute_raw(
                        &mut client,
                        &mut io,
                        Instant::ZERO,
                        name,
                        args.map(raw),
                        ExecuteOptions::new(),
                    ),
                    Cmd::Cont => driver.execute(
                        &mut client,
                        &mut io,
                        Instant::ZERO,
                        &Cont,
                        ExecuteOptions::new(),
                    ),
                    Cmd::Stop => driver.execute(
                        &mut client,
                        &mut io,
                        Instant::ZERO,
                        &Stop,
                        ExecuteOptions::new(),
                    ),
                    Cmd::Hmp(l) => driver.execute(
                        &mut client,
                        &mut io,
                        Instant::ZERO,
                        &HumanMonitorCommand { command_line: l },
                        ExecuteOptions::new(),
                    ),
                    Cmd::Powerdown => driver.execute(
                        &mut client,
                        &mut io,
                        Instant::ZERO,
                        &SystemPowerdown,
                        ExecuteOptions::new(),
                    ),
                    Cmd::Quit => driver.execute(
                        &mut client,
                        &mut io,
                        Instant::ZERO,
                        &Quit,
                        ExecuteOptions::new(),
                    ),
                }
                .unwrap_or_else(|e| {
                    panic!(
                        "command {i} ({read_max} {write_max} {rx_len}): {e:?} {:?}",
                        client.state()
                    )
                });
                let _ = &mut out;
                assert_eq!(token.id(), i as u64 + 1);
                let outcome = driver
                    .run_until(
                        &mut client,
                        &mut io,
                        token,
                        || Instant::ZERO,
                        |ev| evs.push(own(ev)),
                    )
                    .unwrap();
                evs.push(own(&ClientEvent::Resolved { token, outcome }));
            }
            assert_eq!(evs, expected_events(&[]), "{read_max} {write_max} {rx_len}");
            let sent = split_stream(&io.written);
            let recorded: Vec<Value> = lines(C2S).into_iter().map(json).collect();
            assert_eq!(sent, recorded);
        }
    }

    #[test]
    fn driver_reports_eof_as_disconnected() {
        let mut io = Duplex {
            rx: [GREETING_OOB, b"{\"return\": {}}"].concat(),
            pos: 0,
            read_max: 5,
            write_max: 1,
            written: Vec::new(),
        };
        let mut fb = [0u8; 1024];
        let mut client: Client<&mut [u8], 4> =
            Client::with_config(&mut fb[..], qmp_core::client::ClientConfig::new());
        let (mut rx, mut tx) = ([0u8; 16], [0u8; 128]);
        let mut driver = BlockingDriver::new(Pump::new(&mut rx, &mut tx));
        driver
            .negotiate(&mut client, &mut io, || Instant::ZERO, |_| {})
            .unwrap();
        let t = driver
            .execute(
                &mut client,
                &mut io,
                Instant::ZERO,
                &QueryStatus,
                ExecuteOptions::new(),
            )
            .unwrap();
        let outcome = driver
            .run_until(&mut client, &mut io, t, || Instant::ZERO, |_| {})
            .unwrap();
        assert!(matches!(outcome, Outcome::Disconnected));
        assert_eq!(client.state(), State::Closed);
        assert!(matches!(
            driver.run_until(&mut client, &mut io, t, || Instant::ZERO, |_| {}),
            Err(DriveError::UnknownToken)
        ));
    }

    #[test]
    fn driver_applies_deadlines_between_reads() {
        // A transport whose reads time out: the clock advances each call.
        struct Silent;
        #[derive(Debug)]
        struct TimedOut;
        impl core::fmt::Display for TimedOut {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str("timed out")
            }
        }
        impl core::error::Error for TimedOut {}
        impl embedded_io::Error for TimedOut {
            fn kind(&self) -> embedded_io::ErrorKind {
                embedded_io::ErrorKind::TimedOut
            }
        }
        impl embedded_io::ErrorType for Silent {
            type Error = TimedOut;
        }
        impl embedded_io::Read for Silent {
            fn read(&mut self, _: &mut [u8]) -> Result<usize, TimedOut> {
                Err(TimedOut)
            }
        }
        impl embedded_io::Write for Silent {
            fn write(&mut self, b: &[u8]) -> Result<usize, TimedOut> {
                Ok(b.len())
            }
            fn flush(&mut self) -> Result<(), TimedOut> {
                Ok(())
            }
        }
        impl embedded_io::ReadReady for Silent {
            fn read_ready(&mut self) -> Result<bool, TimedOut> {
                Ok(true)
            }
        }
        let mut c = ready::<4>(false);
        let (mut rx, mut tx) = ([0u8; 16], [0u8; 128]);
        let mut driver = BlockingDriver::new(Pump::new(&mut rx, &mut tx));
        let t = driver
            .execute(
                &mut c,
                &mut Silent,
                Instant::ZERO,
                &QueryStatus,
                ExecuteOptions::new().timeout_ms(50),
            )
            .unwrap();
        let mut clock = 0;
        let outcome = driver
            .run_until(
                &mut c,
                &mut Silent,
                t,
                || {
                    clock += 10;
                    Instant::from_millis(clock)
                },
                |_| {},
            )
            .unwrap();
        assert!(matches!(outcome, Outcome::Timeout));
    }
}

// ---------------------------------------------------------------------------
// Malformed replies (hostile-peer case 7): the call a bad message stands for
// ends with the error that names what was wrong; the session goes on.

/// Feeds `input` whole, byte by byte and in random chunks: the same events.
fn feed_every_way(make: impl Fn() -> (C<4>, Vec<Token>), input: &[u8]) -> (Vec<Ev>, Vec<Token>) {
    let (mut c, tokens) = make();
    let whole = feed(&mut c, 0, input);
    let (mut c, _) = make();
    let mut bytewise = Vec::new();
    for b in input.chunks(1) {
        bytewise.extend(feed(&mut c, 0, b));
    }
    assert_eq!(whole, bytewise);
    let mut rng = SmallRng::seed_from_u64(3);
    for _ in 0..10 {
        let (mut c, _) = make();
        let mut got = Vec::new();
        let mut rest = input;
        while !rest.is_empty() {
            let n = rng.random_range(1..64).min(rest.len());
            got.extend(feed(&mut c, 0, &rest[..n]));
            rest = &rest[n..];
        }
        assert_eq!(whole, got);
    }
    (whole, tokens)
}

fn resolutions(evs: &[Ev]) -> Vec<(u64, Out)> {
    evs.iter()
        .filter_map(|e| match e {
            Ev::Resolved(id, o) => Some((*id, o.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn an_invalid_utf8_reply_ends_its_call_by_in_band_order() {
    for oob in [false, true] {
        let make = || {
            let mut c = ready::<4>(oob);
            let (t1, _) = exec_raw(&mut c, 0, "query-name", ExecuteOptions::new());
            let (t2, _) = exec_raw(&mut c, 0, "query-status", ExecuteOptions::new());
            (c, vec![t1, t2])
        };
        let input =
            b"{\"return\": \"a\xff\xfeb\xc3\x28c\", \"id\": 1}\r\n{\"return\": {}, \"id\": 2}\r\n";
        let (evs, t) = feed_every_way(make, input);
        assert_eq!(
            resolutions(&evs),
            [
                (
                    t[0].id(),
                    Out::Malformed("JSON parse error, stray '\"a\u{FFFD}'".into())
                ),
                (t[1].id(), Out::Return(serde_json::json!({}))),
            ],
            "oob {oob}: {evs:?}"
        );
        // What the lexer made of the rest of the bad reply: reported, blamed
        // on nobody.
        assert!(evs.iter().filter(|e| matches!(e, Ev::Framing(_))).count() >= 1);
    }
}

#[test]
fn a_malformed_reply_with_an_id_ends_the_call_it_names() {
    let make = || {
        let mut c = ready::<4>(false);
        let (t1, _) = exec_raw(&mut c, 0, "query-name", ExecuteOptions::new());
        let (t2, _) = exec_raw(&mut c, 0, "query-status", ExecuteOptions::new());
        (c, vec![t1, t2])
    };
    // A lone surrogate in the reply to 2, which comes first.
    let input = b"{\"id\": 2, \"return\": \"\\ud800\"}\r\n{\"return\": {}, \"id\": 1}\r\n";
    let (evs, t) = feed_every_way(make, input);
    assert_eq!(
        resolutions(&evs),
        [
            (
                t[1].id(),
                Out::Malformed("JSON parse error, \\ud800 is not a valid Unicode character".into())
            ),
            (t[0].id(), Out::Return(serde_json::json!({}))),
        ],
        "{evs:?}"
    );
}

#[test]
fn a_reply_nested_too_deep_ends_its_call() {
    let make = || {
        let mut c = ready::<4>(false);
        let (t1, _) = exec_raw(&mut c, 0, "query-name", ExecuteOptions::new());
        let (t2, _) = exec_raw(&mut c, 0, "query-status", ExecuteOptions::new());
        (c, vec![t1, t2])
    };
    let mut input = b"{\"return\": ".to_vec();
    // Past QEMU's 1024 levels; what follows the error is read as new input
    // (a 100-deep array, then stray closers): nobody's.
    input.extend(std::iter::repeat_n(b'[', 1125));
    input.extend(std::iter::repeat_n(b']', 1125));
    input.extend_from_slice(b", \"id\": 1}\r\n{\"return\": {}, \"id\": 2}\r\n");
    let (mut c, t) = make();
    let evs = feed(&mut c, 0, &input);
    assert_eq!(
        resolutions(&evs),
        [
            (
                t[0].id(),
                Out::Malformed("JSON nesting depth limit exceeded".into())
            ),
            (t[1].id(), Out::Return(serde_json::json!({}))),
        ]
    );
}

#[test]
fn a_bad_event_or_a_bad_message_of_no_shape_blames_nobody() {
    let mut c = client::<4>(256, ClientConfig::new());
    feed(&mut c, 0, GREETING_NO_OOB);
    let mut out = [0u8; 128];
    c.poll_transmit(&mut out).unwrap().unwrap();
    feed(&mut c, 0, b"{\"return\": {}}\r\n");
    let (t1, _) = exec_raw(&mut c, 0, "query-status", ExecuteOptions::new());
    let huge_event = format!(
        "{{\"event\": \"X\", \"data\": \"{}\", \"timestamp\": {{\"seconds\": 1, \"microseconds\": 2}}}}\r\n",
        "x".repeat(500)
    );
    let mut input = huge_event.into_bytes();
    input.extend_from_slice(
        b"{\"event\": \"Y\", \"data\": \"\x01\"}\r\n[\"\xff\"]\r\n{\"return\": {}, \"id\": 1}\r\n",
    );
    let evs = feed(&mut c, 0, &input);
    assert_eq!(
        resolutions(&evs),
        [(t1.id(), Out::Return(serde_json::json!({})))],
        "{evs:?}"
    );
}

#[test]
fn an_oversized_reply_still_ends_its_call() {
    let mut c = client::<4>(256, ClientConfig::new());
    feed(&mut c, 0, GREETING_NO_OOB);
    let mut out = [0u8; 128];
    c.poll_transmit(&mut out).unwrap().unwrap();
    feed(&mut c, 0, b"{\"return\": {}}\r\n");
    let (t1, _) = exec_raw(&mut c, 0, "query-qmp-schema", ExecuteOptions::new());
    let (t2, _) = exec_raw(&mut c, 0, "query-status", ExecuteOptions::new());
    // The reply's id comes after the part that fits: in-band order.
    let mut input = b"{\"return\": [".to_vec();
    for i in 0..10_000 {
        input.extend_from_slice(format!("{{\"name\": \"n{i}\"}}, ").as_bytes());
    }
    input.extend_from_slice(b"{}], \"id\": 1}\r\n{\"return\": {}, \"id\": 2}\r\n");
    let evs = feed(&mut c, 0, &input);
    let len = input.len() - b"\r\n{\"return\": {}, \"id\": 2}\r\n".len();
    assert_eq!(
        resolutions(&evs),
        [
            (t1.id(), Out::Oversized(len)),
            (t2.id(), Out::Return(serde_json::json!({})))
        ]
    );
}
