//! The agent's embedded-io driver over an in-memory pipe with short reads
//! and short writes.
#![cfg(feature = "embedded-io")]

use core::ops::ControlFlow;
use embedded_io::{ErrorType, Read, Write};
use qmp_core::agent::io::{serve, Served};
use qmp_core::agent::{Agent, AgentBuffers, AgentConfig, CommandSpec, EventOut, Reply};
use qmp_core::scan::{validate, FramerConfig};
use qmp_core::Instant;

/// Reads come from `input` at most `chunk` bytes at a time; writes accept
/// at most `chunk` bytes each.
struct Pipe {
    input: Vec<u8>,
    pos: usize,
    chunk: usize,
    output: Vec<u8>,
}

impl ErrorType for Pipe {
    type Error = core::convert::Infallible;
}

impl Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let n = buf.len().min(self.chunk).min(self.input.len() - self.pos);
        buf[..n].copy_from_slice(&self.input[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        let n = buf.len().min(self.chunk);
        self.output.extend_from_slice(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

const COMMANDS: &[CommandSpec<'static>] =
    &[CommandSpec::new("stop"), CommandSpec::new("query-status")];

fn run(chunk: usize) -> (Served, String) {
    let (mut f, mut q, mut o) = ([0u8; 256], [0u8; 1024], [0u8; 512]);
    let cfg = AgentConfig::new((10, 0, 2), "", COMMANDS);
    let mut agent = Agent::new(cfg, AgentBuffers::new(&mut f, &mut q, &mut o)).unwrap();
    let mut pipe = Pipe {
        input: b"{\"execute\":\"qmp_capabilities\"}{\"execute\":\"stop\",\"id\":1}\n{\"execute\":\"query-status\",\"id\":2}"
            .to_vec(),
        pos: 0,
        chunk,
        output: Vec::new(),
    };
    let (mut rx, mut tx) = ([0u8; 64], [0u8; 48]);
    let mut paused = false;
    let served = serve(
        &mut agent,
        &mut pipe,
        &mut rx,
        &mut tx,
        || Instant::ZERO,
        |agent, _now| {
            while let Some(req) = agent.poll_request() {
                let token = req.token;
                if req.name.eq_str("stop") {
                    // The event caused by a command goes out before its reply.
                    let stop = EventOut::new("STOP").timestamp(1, 2);
                    assert_eq!(
                        agent.emit(Instant::ZERO, &stop),
                        Ok(qmp_core::agent::Emitted::Sent)
                    );
                    paused = true;
                    let empty = validate(b"{}", FramerConfig::new()).unwrap();
                    agent.complete(token, Reply::Return(&empty)).unwrap();
                } else {
                    let text = format!(
                        "{{\"status\":\"{}\",\"running\":{}}}",
                        if paused { "paused" } else { "running" },
                        !paused
                    );
                    let v = validate(text.as_bytes(), FramerConfig::new()).unwrap();
                    agent.complete(token, Reply::Return(&v)).unwrap();
                }
            }
            ControlFlow::Continue(())
        },
    )
    .unwrap();
    (served, String::from_utf8(pipe.output).unwrap())
}

#[test]
fn serves_a_session_over_embedded_io() {
    let expected = "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 2, \"minor\": 0, \"major\": 10}, \"package\": \"\"}, \"capabilities\": [\"oob\"]}}\r\n\
        {\"return\": {}}\r\n\
        {\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": \"STOP\"}\r\n\
        {\"return\": {}, \"id\": 1}\r\n\
        {\"return\": {\"status\": \"paused\", \"running\": false}, \"id\": 2}\r\n";
    for chunk in [1, 3, 7, 64, 1000] {
        let (served, out) = run(chunk);
        assert_eq!(served, Served::Eof);
        assert_eq!(out, expected, "chunk {chunk}");
    }
}
