//! Regression tests for bugs found by fuzzing (`fuzz/`), with exact bytes.

use qmp_core::agent::{Agent, AgentBuffers, AgentConfig, CommandSpec, Emitted, EventOut};
use qmp_core::Instant;

const COMMANDS: &[CommandSpec<'static>] = &[CommandSpec::new("cmd-a")];

const GREETING: &[u8] = b"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 2, \"minor\": 0, \"major\": 10}, \"package\": \"\"}, \"capabilities\": [\"oob\"]}}\r\n";

/// Feeds `input` whole, transmitting only when the agent stops consuming;
/// returns everything it sent (greeting included).
fn run(agent: &mut Agent<'_, '_>, mut input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut tx = [0u8; 4096];
    for _ in 0..100 {
        let used = agent.handle_input(Instant::ZERO, input);
        input = &input[used..];
        assert!(agent.poll_request().is_none());
        if input.is_empty() {
            break;
        }
        let n = agent
            .poll_transmit(&mut tx)
            .expect("stalled with input left");
        out.extend_from_slice(&tx[..n]);
    }
    assert!(input.is_empty());
    while let Some(n) = agent.poll_transmit(&mut tx) {
        out.extend_from_slice(&tx[..n]);
    }
    out
}

/// fuzz `agent`: the agent's own error reply to an `exec-oob` request (an
/// unknown command, or one without OOB support) was dropped when the output
/// buffer was full (`let _ = write(..)`): the request got no reply at all.
/// Now the request waits in the framer buffer (input paused) until the
/// output has room.
#[test]
fn oob_error_reply_not_dropped_when_output_full() {
    let (mut f, mut q, mut o) = ([0u8; 512], [0u8; 1024], [0u8; 256]);
    let cfg = AgentConfig::new((10, 0, 2), "", COMMANDS);
    let mut agent = Agent::new(cfg, AgentBuffers::new(&mut f, &mut q, &mut o)).unwrap();
    let input = b"{\"execute\": \"qmp_capabilities\", \"arguments\": {\"enable\": [\"oob\"]}}\n\
{\"id\": 1, \"exec-oob\": \"nope\"}{\"id\": 2, \"exec-oob\": \"cmd-a\"}{\"id\": 3, \"exec-oob\": \"nope\"}";
    let out = run(&mut agent, input);
    let mut want = GREETING.to_vec();
    want.extend_from_slice(b"{\"return\": {}}\r\n");
    want.extend_from_slice(b"{\"id\": 1, \"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command nope has not been found\"}}\r\n");
    want.extend_from_slice(b"{\"id\": 2, \"error\": {\"class\": \"GenericError\", \"desc\": \"The command cmd-a does not support OOB\"}}\r\n");
    want.extend_from_slice(b"{\"id\": 3, \"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command nope has not been found\"}}\r\n");
    assert_eq!(
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(&want)
    );
}

/// fuzz `agent` (same pattern): an in-band reply too large for the output
/// buffer is replaced by a short error; when that short error found no
/// room either it was dropped too, and the request popped unanswered.
#[test]
fn too_large_substitute_not_dropped_when_output_full() {
    let (mut f, mut q, mut o) = ([0u8; 512], [0u8; 1024], [0u8; 256]);
    let cfg = AgentConfig::new((10, 0, 2), "", COMMANDS);
    let mut agent = Agent::new(cfg, AgentBuffers::new(&mut f, &mut q, &mut o)).unwrap();
    let caps = b"{\"execute\": \"qmp_capabilities\"}";
    assert_eq!(agent.handle_input(Instant::ZERO, caps), caps.len());
    // Fill the output: greeting, return, an event.
    let event = EventOut::new("SHUTDOWN").timestamp(1, 2);
    assert_eq!(agent.emit(Instant::ZERO, &event), Ok(Emitted::Sent));
    // Its CommandNotFound reply (about 300 bytes) can never fit 256.
    let name = "x".repeat(220);
    let input = format!("{{\"execute\": \"{name}\", \"id\": 1}}");
    let out = run(&mut agent, input.as_bytes());
    let mut want = GREETING.to_vec();
    want.extend_from_slice(b"{\"return\": {}}\r\n");
    want.extend_from_slice(
        b"{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": \"SHUTDOWN\"}\r\n",
    );
    want.extend_from_slice(b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"reply too large for the output buffer\"}}\r\n");
    assert_eq!(
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(&want)
    );
}

/// fuzz `qga` (CI smoke): a stale message exactly as long as the framer
/// buffer, then our delimited sync reply. The 0xFF was the one byte that
/// overflowed, so the framer counted it into the oversized message and the
/// sync never saw its delimiter. The sync now finds the 0xFF in the raw
/// stream.
#[test]
#[cfg(feature = "qga")]
fn qga_delimiter_after_stale_message_filling_the_buffer() {
    use qmp_core::client::ClientEvent;
    use qmp_core::client::Outcome;
    use qmp_core::qga::QgaClient;
    let mut buf = [0u8; 64];
    let mut client: QgaClient<&mut [u8], 4> =
        QgaClient::with_config(&mut buf[..], qmp_core::qga::QgaConfig::new());
    let token = client
        .sync(Instant::ZERO, 3, Instant::from_millis(1000))
        .unwrap();
    let mut out = [0u8; 128];
    assert!(client.poll_transmit(&mut out).unwrap().is_some());
    let mut stream = b"{\"return\": \"".to_vec();
    stream.resize(64, b'x');
    stream.extend_from_slice(b"\xff{\"return\": 3}\n");
    for chunk_size in [1, 5, 64, 100] {
        let mut buf = [0u8; 64];
        let mut client: QgaClient<&mut [u8], 4> =
            QgaClient::with_config(&mut buf[..], qmp_core::qga::QgaConfig::new());
        let token = client
            .sync(Instant::ZERO, 3, Instant::from_millis(1000))
            .unwrap();
        let _ = client.poll_transmit(&mut out).unwrap();
        let mut done = None;
        for chunk in stream.chunks(chunk_size) {
            let mut rest = chunk;
            while !rest.is_empty() {
                let used = client.handle_input(Instant::from_millis(1), rest);
                rest = &rest[used..];
                while let Some(ev) = client.poll_event() {
                    if let ClientEvent::Resolved {
                        token: t,
                        outcome: Outcome::Return(v),
                    } = ev
                    {
                        assert_eq!(t, token);
                        done = v.as_u64();
                    }
                }
            }
        }
        assert_eq!(done, Some(3), "chunk size {chunk_size}");
    }
    let _ = token;
}
