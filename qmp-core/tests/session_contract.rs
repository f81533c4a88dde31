//! The session contracts: the peer gets exactly one reply per request even
//! when the application's reply can never be sent and its error is ignored;
//! `handle_eof` resets the agent for its next peer; `OutputFull` hands the
//! token back; an error leaves the session as it was.

use qmp_core::agent::{
    Agent, AgentBuffers, AgentConfig, CommandSpec, CompleteError, Reply, ReplyToken,
};
use qmp_core::client::{Client, ClientEvent, ExecuteError, ExecuteOptions, Outcome};
use qmp_core::encode::Ser;
use qmp_core::scan::{validate, FramerConfig};
use qmp_core::{Instant, InsufficientSize};

const COMMANDS: &[CommandSpec<'static>] = &[
    CommandSpec::new("query-big"),
    CommandSpec::new("query-small"),
    CommandSpec::new("x-oob").oob(),
];
const GREETING: &str = "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 0, \"major\": 1}, \"package\": \"\"}, \"capabilities\": [\"oob\"]}}\r\n";
const TOO_LARGE: &str = "reply too large for the output buffer";

fn drain(agent: &mut Agent<'_, '_>) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 61];
    while let Some(n) = agent.poll_transmit(&mut buf) {
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(out).unwrap()
}

/// The application: answers `query-big` with a value larger than the
/// output buffer, `x-oob` with a value that cannot be encoded, and ignores
/// what `complete` says — as a careless firmware would.
fn careless(agent: &mut Agent<'_, '_>) -> Vec<Result<(), CompleteError>> {
    let big = "x".repeat(4096);
    let small = validate(br#"{"ok": true}"#, FramerConfig::new()).unwrap();
    let mut results = Vec::new();
    while let Some(req) = agent.poll_request() {
        let token = req.token;
        let r = if req.name.eq_str("query-big") {
            agent.complete(token, Reply::Return(&Ser(&big)))
        } else if req.name.eq_str("x-oob") {
            agent.complete(token, Reply::Return(&Ser(&f64::NAN)))
        } else {
            agent.complete(token, Reply::Return(&small))
        };
        results.push(r);
    }
    results
}

#[test]
fn a_reply_that_can_never_fit_is_answered_by_the_agent_and_the_session_goes_on() {
    let (mut f, mut q, mut o) = ([0u8; 512], [0u8; 2048], [0u8; 300]);
    let cfg = AgentConfig::new((1, 0, 0), "", COMMANDS);
    let mut agent = Agent::new(cfg, AgentBuffers::new(&mut f, &mut q, &mut o)).unwrap();
    assert_eq!(drain(&mut agent), GREETING);
    let input = br#"{"execute":"qmp_capabilities","arguments":{"enable":["oob"]}}{"execute":"query-big","id":1}{"exec-oob":"x-oob","id":"o"}{"execute":"query-small","id":2}"#;
    let mut rest = &input[..];
    let mut out = String::new();
    let mut results = Vec::new();
    for _ in 0..100 {
        let used = agent.handle_input(Instant::ZERO, rest);
        rest = &rest[used..];
        results.extend(careless(&mut agent));
        out += &drain(&mut agent);
        if rest.is_empty() && agent.queued() == 0 {
            break;
        }
    }
    assert!(rest.is_empty(), "input not consumed: the agent stalled");
    assert_eq!(
        out,
        [
            "{\"return\": {}}\r\n".to_string(),
            // The OOB request overtakes the in-band one.
            "{\"id\": \"o\", \"error\": {\"class\": \"GenericError\", \"desc\": \"reply could not be encoded\"}}\r\n".to_string(),
            format!("{{\"id\": 1, \"error\": {{\"class\": \"GenericError\", \"desc\": \"{TOO_LARGE}\"}}}}\r\n"),
            "{\"return\": {\"ok\": true}, \"id\": 2}\r\n".to_string(),
        ]
        .concat()
    );
    assert_eq!(
        results,
        [
            // `{"return": "x…x", "id": 1}\r\n`: 4,121 bytes.
            Err(CompleteError::Encode(
                qmp_core::encode::EncodeError::Unsupported
            )),
            Err(CompleteError::InsufficientSize(InsufficientSize {
                required: 4121
            })),
            Ok(()),
        ]
    );
}

#[test]
fn output_full_gives_the_token_back_and_keeps_what_waits() {
    let (mut f, mut q, mut o) = ([0u8; 512], [0u8; 2048], [0u8; 180]);
    let cfg = AgentConfig::new((1, 0, 0), "", COMMANDS).with_oob(false);
    let mut agent = Agent::new(cfg, AgentBuffers::new(&mut f, &mut q, &mut o)).unwrap();
    let input = br#"{"execute":"qmp_capabilities"}{"execute":"query-small","id":1}"#;
    assert_eq!(agent.handle_input(Instant::ZERO, input), input.len());
    // The greeting and the negotiation reply still wait: no room.
    let req = agent.poll_request().unwrap();
    let token: ReplyToken = req.token;
    let id = token.id();
    let text = format!("\"{}\"", "v".repeat(40));
    let value = validate(text.as_bytes(), FramerConfig::new()).unwrap();
    let token = match agent.complete(token, Reply::Return(&value)) {
        Err(CompleteError::OutputFull {
            token,
            required: 65,
        }) => token,
        other => panic!("{other:?}"),
    };
    assert_eq!(token.id(), id);
    // What waited is intact; once sent, the same token completes.
    let before = drain(&mut agent);
    assert_eq!(
        before,
        format!("{GREETING}{{\"return\": {{}}}}\r\n").replace("[\"oob\"]", "[]")
    );
    agent.complete(token, Reply::Return(&value)).unwrap();
    assert_eq!(
        drain(&mut agent),
        format!("{{\"return\": \"{}\", \"id\": 1}}\r\n", "v".repeat(40))
    );
}

#[test]
fn handle_eof_resets_the_agent_for_its_next_peer() {
    let (mut f, mut q, mut o) = ([0u8; 512], [0u8; 2048], [0u8; 1024]);
    let cfg = AgentConfig::new((1, 0, 0), "", COMMANDS);
    let mut agent = Agent::new(cfg, AgentBuffers::new(&mut f, &mut q, &mut o)).unwrap();
    assert_eq!(drain(&mut agent), GREETING);
    let input = br#"{"execute":"qmp_capabilities","arguments":{"enable":["oob"]}}{"execute":"query-small","id":1}{"execute":"query-small","id":2}{"execute":"query-"#;
    assert_eq!(agent.handle_input(Instant::ZERO, input), input.len());
    assert!(agent.is_negotiated() && agent.oob_enabled());
    let old = agent.poll_request().unwrap().token;
    // The peer leaves with a request running, one queued, one half-sent.
    agent.handle_eof();
    assert!(!agent.is_negotiated() && !agent.oob_enabled());
    assert_eq!(agent.queued(), 0);
    assert_eq!(
        agent.complete(old, Reply::NoResponse),
        Err(CompleteError::UnknownToken)
    );
    // The next peer is greeted and must negotiate; nothing of the old one
    // leaks into its session.
    assert_eq!(drain(&mut agent), GREETING);
    let input = br#"{"execute":"query-small","id":"n"}{"execute":"qmp_capabilities"}{"execute":"query-small","id":3}"#;
    assert_eq!(agent.handle_input(Instant::ZERO, input), input.len());
    careless(&mut agent);
    assert_eq!(
        drain(&mut agent),
        "{\"id\": \"n\", \"error\": {\"class\": \"CommandNotFound\", \"desc\": \"Expecting capabilities negotiation with 'qmp_capabilities'\"}}\r\n\
         {\"return\": {}}\r\n\
         {\"return\": {\"ok\": true}, \"id\": 3}\r\n"
    );
}

#[test]
fn a_refused_command_leaves_the_client_as_it_was() {
    let mut buf = [0u8; 512];
    let mut client = Client::new(&mut buf[..]);
    let greeting = br#"{"QMP": {"version": {"qemu": {"micro": 0, "minor": 0, "major": 10}, "package": ""}, "capabilities": []}}"#;
    assert_eq!(client.handle_input(Instant::ZERO, greeting), greeting.len());
    assert!(matches!(
        client.poll_event(),
        Some(ClientEvent::Greeting(_))
    ));
    // Too small for the queued qmp_capabilities and the command.
    let mut small = [0u8; 20];
    let e = client
        .execute_raw(
            Instant::ZERO,
            "query-status",
            None,
            ExecuteOptions::new(),
            &mut small,
        )
        .unwrap_err();
    let required = match e {
        ExecuteError::InsufficientSize(InsufficientSize { required }) => required,
        e => panic!("{e:?}"),
    };
    assert_eq!(client.in_flight(), 0);
    assert_eq!(client.poll_timeout(), None);
    // Retried with the size asked for: the same bytes a first try would
    // have written (capabilities still queued in front, id still 1).
    let mut out = vec![0u8; required];
    let (token, n) = client
        .execute_raw(
            Instant::ZERO,
            "query-status",
            None,
            ExecuteOptions::new(),
            &mut out,
        )
        .unwrap();
    assert_eq!(n, required);
    assert_eq!(
        &out[..n],
        br#"{"execute":"qmp_capabilities","arguments":{}}{"execute":"query-status","id":1}"#
    );
    assert_eq!(token.id(), 1);
    let replies = b"{\"return\": {}}{\"return\": {\"running\": true}, \"id\": 1}";
    let mut rest = &replies[..];
    let mut resolved = false;
    while !rest.is_empty() {
        rest = &rest[client.handle_input(Instant::ZERO, rest)..];
        while let Some(ev) = client.poll_event() {
            if let ClientEvent::Resolved {
                token: t,
                outcome: Outcome::Return(_),
            } = ev
            {
                assert_eq!(t, token);
                resolved = true;
            }
        }
    }
    assert!(resolved);
}
