// qmp-core/examples/uart_agent.rs
use core::ops::ControlFlow;
use qmp_core::agent::{
    Agent, AgentBuffers, AgentConfig, CommandSpec, CompleteError, EventOut, Reply,
};
use qmp_core::drive::blocking::serve;
use qmp_core::drive::ServeOptions;
use qmp_core::encode::Ser;
use qmp_core::pump::Pump;
use qmp_core::Instant;

static COMMANDS: [CommandSpec<'static>; 2] =
    [CommandSpec::new("query-status"), CommandSpec::new("stop")];

#[derive(serde::Serialize)]
struct Status {
    status: &'static str,
    running: bool,
}
#[derive(serde::Serialize)]
struct Empty {}

/// `uart`: a UART that blocks in `read` and tells readiness (`ReadReady`).
fn run<U>(uart: &mut U, now: impl FnMut() -> Instant)
where
    U: embedded_io::Read + embedded_io::Write + embedded_io::ReadReady,
{
    // The caller's buffers: the request size limit, the in-band queue, the output.
    let (mut framer, mut queue, mut out) = ([0u8; 512], [0u8; 1024], [0u8; 512]);
    let config = AgentConfig::new((0, 1, 0), "my-firmware", &COMMANDS);
    let mut agent =
        Agent::new(config, AgentBuffers::new(&mut framer, &mut queue, &mut out)).unwrap();
    let (mut rx, mut tx) = ([0u8; 64], [0u8; 64]);
    let mut pump = Pump::new(&mut rx, &mut tx);
    let mut running = true;
    let mut waiting = None; // a reply that found the output full, retried next turn
    let options = ServeOptions::new().with_tick_ms(100);
    let _ = serve(&mut agent, uart, &mut pump, options, now, |agent, now| {
        if let Some(token) = waiting.take() {
            // Only `Empty` replies can wait here in this small example.
            if let Err(CompleteError::OutputFull { token, .. }) =
                agent.complete(token, Reply::Return(&Ser(&Empty {})))
            {
                waiting = Some(token);
                return ControlFlow::Continue(());
            }
        }
        while let Some(req) = agent.poll_request() {
            let token = req.token;
            let result = if req.name.eq_str("stop") {
                running = false;
                let _ = agent.emit(now, &EventOut::new("STOP")); // the event goes out before the reply
                agent.complete(token, Reply::Return(&Ser(&Empty {})))
            } else {
                let status = Status {
                    status: if running { "running" } else { "paused" },
                    running,
                };
                agent.complete(token, Reply::Return(&Ser(&status)))
            };
            // No room now: the token comes back; `serve` transmits, then we retry.
            // (A reply that can never fit is answered by the agent with an error.)
            if let Err(CompleteError::OutputFull { token, .. }) = result {
                waiting = Some(token);
                break;
            }
        }
        ControlFlow::Continue(())
    });
}

// (end of the README block)

/// A canned peer: negotiates, asks for the status, stops the guest.
struct Canned {
    input: &'static [u8],
    output: Vec<u8>,
}

impl embedded_io::ErrorType for Canned {
    type Error = core::convert::Infallible;
}

impl embedded_io::Read for Canned {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let n = buf.len().min(self.input.len());
        buf[..n].copy_from_slice(&self.input[..n]);
        self.input = &self.input[n..];
        Ok(n)
    }
}

impl embedded_io::ReadReady for Canned {
    fn read_ready(&mut self) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

impl embedded_io::Write for Canned {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

fn main() {
    let mut uart = Canned {
        input: br#"{"execute":"qmp_capabilities"}{"execute":"query-status","id":1}{"execute":"stop","id":2}"#,
        output: Vec::new(),
    };
    run(&mut uart, || Instant::ZERO);
    print!("{}", String::from_utf8_lossy(&uart.output));
}
