//! A million small malformed messages in one input slice: the agent answers
//! every one of them, then the request after them, through small output
//! buffers — driven by hand and by the embedded-io `serve` loop, for QMP
//! and the guest-agent dialect (hostile-peer case 1).

use qmp_core::agent::{Agent, AgentBuffers, AgentConfig, CommandSpec, Reply};
use qmp_core::scan::{validate, FramerConfig};
use qmp_core::Instant;

const COUNT: usize = 1_000_000;
const QMP_ERR: &[u8] =
    b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"QMP input lacks member 'execute'\"}}\r\n";
#[cfg(feature = "qga")]
const QGA_ERR: &[u8] =
    b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, stray '\\uFFFD'\"}}\n";

const QMP_COMMANDS: &[CommandSpec<'static>] = &[CommandSpec::new("query-status")];
#[cfg(feature = "qga")]
const QGA_COMMANDS: &[CommandSpec<'static>] = &[CommandSpec::new("guest-ping")];

fn payload(prologue: &[u8], unit: &[u8], tail: &[u8]) -> Vec<u8> {
    let mut v = prologue.to_vec();
    for _ in 0..COUNT {
        v.extend_from_slice(unit);
    }
    v.extend_from_slice(tail);
    v
}

/// Checks the output: `head`, then `each` × COUNT, then `last`.
fn check(out: &[u8], head: &[u8], each: &[u8], last: &[u8]) {
    assert!(
        out.starts_with(head),
        "{}",
        String::from_utf8_lossy(&out[..200.min(out.len())])
    );
    let body = &out[head.len()..];
    assert_eq!(body.len(), each.len() * COUNT + last.len(), "output length");
    for (i, chunk) in body[..each.len() * COUNT].chunks(each.len()).enumerate() {
        assert_eq!(chunk, each, "reply {i}");
    }
    assert_eq!(&body[each.len() * COUNT..], last);
}

/// The application: answers every request with `{}` (or `{"status":…}`).
fn answer(agent: &mut Agent<'_, '_>) {
    while let Some(req) = agent.poll_request() {
        let token = req.token;
        let v = validate(b"{}", FramerConfig::new()).unwrap();
        agent.complete(token, Reply::Return(&v)).unwrap();
    }
}

/// Drives the agent by hand: the whole remaining input offered at every
/// turn, output drained 100 bytes at a time.
fn by_hand(cfg: AgentConfig<'_>, input: &[u8]) -> Vec<u8> {
    let (mut f, mut q, mut o) = (vec![0u8; 256], vec![0u8; 1024], vec![0u8; 256]);
    let mut agent = Agent::new(cfg, AgentBuffers::new(&mut f, &mut q, &mut o)).unwrap();
    let mut out = Vec::new();
    let mut tx = [0u8; 100];
    let mut pos = 0;
    let mut idle_turns = 0;
    while pos < input.len() || agent.pending_output() > 0 {
        let used = agent.handle_input(Instant::ZERO, &input[pos..]);
        pos += used;
        answer(&mut agent);
        let mut sent = 0;
        while let Some(n) = agent.poll_transmit(&mut tx) {
            out.extend_from_slice(&tx[..n]);
            sent += n;
        }
        idle_turns = if used == 0 && sent == 0 {
            idle_turns + 1
        } else {
            0
        };
        assert!(idle_turns < 3, "stalled at byte {pos} of {}", input.len());
    }
    out
}

#[test]
fn qmp_burst_by_hand() {
    let input = payload(
        br#"{"execute":"qmp_capabilities"}"#,
        b"{}",
        br#"{"execute":"query-status","id":"after"}"#,
    );
    let out = by_hand(AgentConfig::new((10, 0, 2), "", QMP_COMMANDS), &input);
    let greeting = b"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 2, \"minor\": 0, \"major\": 10}, \"package\": \"\"}, \"capabilities\": [\"oob\"]}}\r\n{\"return\": {}}\r\n";
    check(
        &out,
        greeting,
        QMP_ERR,
        b"{\"return\": {}, \"id\": \"after\"}\r\n",
    );
}

#[test]
#[cfg(feature = "qga")]
fn qga_burst_by_hand() {
    let input = payload(b"", b"\xff", br#"{"execute":"guest-ping","id":"after"}"#);
    let out = by_hand(AgentConfig::qga(QGA_COMMANDS), &input);
    check(&out, b"", QGA_ERR, b"{\"return\": {}, \"id\": \"after\"}\n");
}

#[cfg(feature = "embedded-io")]
mod serve_loop {
    use super::*;
    use core::ops::ControlFlow;
    use embedded_io::{ErrorType, Read, Write};
    use qmp_core::drive::blocking::{serve, AlwaysReady};
    use qmp_core::drive::{ServeOptions, Served};
    use qmp_core::pump::Pump;

    /// All input in reads of up to `read` bytes; writes of up to 64 bytes.
    struct Pipe<'i> {
        input: &'i [u8],
        read: usize,
        output: Vec<u8>,
    }

    impl ErrorType for Pipe<'_> {
        type Error = core::convert::Infallible;
    }

    impl Read for Pipe<'_> {
        fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
            let n = buf.len().min(self.read).min(self.input.len());
            buf[..n].copy_from_slice(&self.input[..n]);
            self.input = &self.input[n..];
            Ok(n)
        }
    }

    impl Write for Pipe<'_> {
        fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
            let n = buf.len().min(64);
            self.output.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> Result<(), Self::Error> {
            Ok(())
        }
    }

    fn served(cfg: AgentConfig<'_>, input: &[u8]) -> Vec<u8> {
        let (mut f, mut q, mut o) = (vec![0u8; 256], vec![0u8; 1024], vec![0u8; 256]);
        let mut agent = Agent::new(cfg, AgentBuffers::new(&mut f, &mut q, &mut o)).unwrap();
        let pipe = Pipe {
            input,
            read: usize::MAX,
            output: Vec::new(),
        };
        // The receive buffer holds the whole burst: one read.
        let mut rx = vec![0u8; input.len()];
        let mut tx = [0u8; 100];
        let mut pump = Pump::new(&mut rx, &mut tx);
        let mut io = AlwaysReady(pipe);
        let end = serve(
            &mut agent,
            &mut io,
            &mut pump,
            ServeOptions::new(),
            || Instant::ZERO,
            |agent, _| {
                answer(agent);
                ControlFlow::Continue(())
            },
        )
        .unwrap();
        assert_eq!(end, Served::Eof);
        io.0.output
    }

    #[test]
    fn qmp_burst_through_serve() {
        let input = payload(
            br#"{"execute":"qmp_capabilities"}"#,
            b"{}",
            br#"{"execute":"query-status","id":"after"}"#,
        );
        let out = served(AgentConfig::new((10, 0, 2), "", QMP_COMMANDS), &input);
        let greeting = b"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 2, \"minor\": 0, \"major\": 10}, \"package\": \"\"}, \"capabilities\": [\"oob\"]}}\r\n{\"return\": {}}\r\n";
        check(
            &out,
            greeting,
            QMP_ERR,
            b"{\"return\": {}, \"id\": \"after\"}\r\n",
        );
    }

    #[test]
    #[cfg(feature = "qga")]
    fn qga_burst_through_serve() {
        let input = payload(b"", b"\xff", br#"{"execute":"guest-ping","id":"after"}"#);
        let out = served(AgentConfig::qga(QGA_COMMANDS), &input);
        check(&out, b"", QGA_ERR, b"{\"return\": {}, \"id\": \"after\"}\n");
    }
}
