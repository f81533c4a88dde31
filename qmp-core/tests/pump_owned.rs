//! The pump over buffers it owns (what a std or async client keeps in its
//! struct), a transmit buffer grown for a command larger than it, and a
//! transport failure reported with `abort`.

use qmp_core::agent::{Agent, AgentBuffers, AgentConfig, CommandSpec};
use qmp_core::client::{Client, ClientEvent, ExecuteError, ExecuteOptions, Outcome};
use qmp_core::json::RawJson;
use qmp_core::pump::Pump;
use qmp_core::scan::{validate, FramerConfig};
use qmp_core::{Instant, InsufficientSize};

const GREETING: &[u8] = b"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 0, \"major\": 10}, \"package\": \"\"}, \"capabilities\": []}}\r\n";

/// A client over a pump that owns `Vec` buffers; returns it negotiated.
fn ready_client() -> (Client<Vec<u8>>, Pump<'static, Vec<u8>>, Vec<u8>) {
    let mut client = Client::new(vec![0u8; 4096]);
    let mut pump = Pump::with_buffers(vec![0u8; 256], vec![0u8; 64]);
    let mut wire = Vec::new();
    let mut input: &[u8] = GREETING;
    let now = Instant::ZERO;
    loop {
        let w = pump.step(&mut client, now);
        if w.app {
            while client.poll_event().is_some() {}
        } else if w.transmit {
            wire.extend_from_slice(pump.transmit());
            let n = pump.transmit().len();
            pump.sent(n);
        } else if w.read && !input.is_empty() {
            let buf = pump.read_buf();
            let n = buf.len().min(input.len());
            buf[..n].copy_from_slice(&input[..n]);
            input = &input[n..];
            pump.received(n);
        } else {
            break;
        }
    }
    assert_eq!(wire, b"{\"execute\":\"qmp_capabilities\",\"arguments\":{}}");
    // The negotiation reply.
    pump.read_buf()[..16].copy_from_slice(b"{\"return\": {}}\r\n");
    pump.received(16);
    let w = pump.step(&mut client, now);
    assert!(w.app);
    assert!(matches!(
        client.poll_event(),
        Some(ClientEvent::Negotiated { oob: false })
    ));
    // The `\r\n` after it was held while the event waited.
    assert_eq!(pump.held_input(), 2);
    let w = pump.step(&mut client, now);
    assert!(w.read && !w.app, "{w:?}");
    assert_eq!(pump.held_input(), 0);
    (client, pump, wire)
}

#[test]
fn owned_buffers_and_a_grown_transmit_buffer() {
    let (mut client, mut pump, _) = ready_client();
    let now = Instant::ZERO;
    let arg = format!("{{\"s\":\"{}\"}}", "x".repeat(100));
    let args: RawJson<'_> = validate(arg.as_bytes(), FramerConfig::new()).unwrap();

    let echo = |client: &mut Client<Vec<u8>>, pump: &mut Pump<'static, Vec<u8>>| {
        let out = pump.queue_buf();
        client.execute_raw(now, "echo", Some(args), ExecuteOptions::new(), out)
    };
    // Does not fit the 64-byte transmit buffer: nothing is registered.
    let err = echo(&mut client, &mut pump).unwrap_err();
    let ExecuteError::InsufficientSize(InsufficientSize { required }) = err else {
        panic!("{err:?}")
    };
    assert_eq!(required, 146);
    // Nothing staged: the buffer may be grown.
    pump.transmit_storage().unwrap().resize(required, 0);
    let (token, n) = echo(&mut client, &mut pump).unwrap();
    pump.queued(n);
    assert_eq!(
        pump.transmit(),
        format!("{{\"execute\":\"echo\",\"arguments\":{arg},\"id\":1}}").as_bytes()
    );
    // While bytes are staged the storage is not handed out.
    assert!(pump.transmit_storage().is_none());
    pump.sent(10);
    assert!(pump.transmit_storage().is_none());
    pump.sent(n - 10);
    assert!(pump.transmit_storage().is_some());

    // The reply comes back through the owned receive buffer.
    let reply = b"{\"return\": \"ok\", \"id\": 1}\r\n";
    pump.read_buf()[..reply.len()].copy_from_slice(reply);
    pump.received(reply.len());
    let w = pump.step(&mut client, now);
    assert!(w.app);
    match client.poll_event() {
        Some(ClientEvent::Resolved {
            token: t,
            outcome: Outcome::Return(v),
        }) => {
            assert_eq!(t, token);
            assert_eq!(v.as_bytes(), b"\"ok\"");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn abort_ends_a_client_at_once() {
    let (mut client, mut pump, _) = ready_client();
    let now = Instant::ZERO;
    let (token, n) = client
        .execute_raw(now, "stop", None, ExecuteOptions::new(), pump.queue_buf())
        .unwrap();
    pump.queued(n);
    // Half a reply is held, the command is staged: the write fails.
    pump.read_buf()[..5].copy_from_slice(b"{\"ret");
    pump.received(5);
    pump.abort();
    assert!(pump.transmit().is_empty());
    assert_eq!(pump.held_input(), 0);
    assert!(pump.saw_eof());
    let w = pump.step(&mut client, now);
    assert!(w.closed && w.app && !w.read && !w.transmit, "{w:?}");
    assert!(matches!(
        client.poll_event(),
        Some(ClientEvent::Resolved { token: t, outcome: Outcome::Disconnected }) if t == token
    ));
    assert!(pump.read_buf().len() == 256);
    let w = pump.step(&mut client, now);
    assert!(w.closed && !w.app && !w.read, "{w:?}");
    // A second failure does not end the session twice.
    pump.abort();
    let w = pump.step(&mut client, now);
    assert!(w.closed && !w.app, "{w:?}");
}

#[test]
fn abort_ends_an_agent_that_still_owes_replies() {
    const COMMANDS: &[CommandSpec<'static>] = &[CommandSpec::new("stop")];
    let (mut f, mut q, mut o) = (vec![0u8; 256], vec![0u8; 1024], vec![0u8; 512]);
    let cfg = AgentConfig::new((10, 0, 0), "", COMMANDS);
    let mut agent = Agent::new(cfg, AgentBuffers::new(&mut f, &mut q, &mut o)).unwrap();
    let mut pump = Pump::with_buffers(vec![0u8; 64], vec![0u8; 16]);
    let now = Instant::ZERO;
    let input = br#"{"execute":"qmp_capabilities"}{"execute":"stop","id":1}"#;
    pump.read_buf()[..input.len()].copy_from_slice(input);
    pump.received(input.len());
    let w = pump.step(&mut agent, now);
    // The greeting is staged (16 bytes of it); `stop` waits for the
    // application.
    assert!(w.transmit && w.app && !w.closed, "{w:?}");
    assert_eq!(pump.transmit(), b"{\"QMP\": {\"versio");
    // The peer is gone before anything was written: end of stream although
    // the agent is not idle (its greeting, a reply and `stop` are owed).
    pump.abort();
    assert!(!agent.is_idle());
    let w = pump.step(&mut agent, now);
    assert!(w.closed && !w.transmit && !w.read, "{w:?}");
    assert!(pump.transmit().is_empty());
    // handle_eof reset the agent for its next peer.
    assert_eq!(agent.queued(), 0);
    assert!(!agent.is_negotiated());
}
