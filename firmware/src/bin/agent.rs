//! A monitor agent serving four commands and one event over a UART.
#![no_std]
#![no_main]

use core::ops::ControlFlow;
use cortex_m_rt::entry;
use qmp_core::agent::io::serve;
use qmp_core::agent::{Agent, AgentBuffers, AgentConfig, CommandSpec, EventOut, Reply};
use qmp_core::encode::Ser;
use qmp_firmware::{now_ms, Uart};

static COMMANDS: [CommandSpec<'static>; 4] = [
    CommandSpec::new("query-status"),
    CommandSpec::new("stop"),
    CommandSpec::new("cont"),
    CommandSpec::new("query-commands"),
];

#[derive(serde::Serialize)]
struct Status {
    status: &'static str,
    running: bool,
}

#[derive(serde::Serialize)]
struct Empty {}

// The caller's buffers: 512-byte requests, room for one more queued
// request, 512 bytes of output.
static mut FRAMER: [u8; 512] = [0; 512];
static mut QUEUE: [u8; 1024] = [0; 1024];
static mut OUT: [u8; 512] = [0; 512];

#[entry]
fn main() -> ! {
    // SAFETY: taken once, before anything else runs.
    let (framer, queue, out) = unsafe {
        (
            &mut *core::ptr::addr_of_mut!(FRAMER),
            &mut *core::ptr::addr_of_mut!(QUEUE),
            &mut *core::ptr::addr_of_mut!(OUT),
        )
    };
    let mut uart = Uart::new(0x4000_0000);
    let mut rx = [0u8; 64];
    let mut tx = [0u8; 64];
    let mut running = true;
    loop {
        let config = AgentConfig::new((0, 1, 0), "fw", &COMMANDS);
        let Ok(mut agent) = Agent::new(config, AgentBuffers::new(&mut *framer, &mut *queue, &mut *out)) else {
            loop {}
        };
        let _ = serve(&mut agent, &mut uart, &mut rx, &mut tx, now_ms, |agent, now| {
            while let Some(req) = agent.poll_request() {
                let token = req.token;
                let name = req.name;
                if name.eq_str("query-status") {
                    let status = Status { status: if running { "running" } else { "paused" }, running };
                    let _ = agent.complete(token, Reply::Return(&Ser(&status)));
                } else {
                    let stopping = name.eq_str("stop");
                    running = !stopping;
                    let ms = now as i64;
                    let event = EventOut {
                        name: if stopping { "STOP" } else { "RESUME" },
                        data: None,
                        seconds: ms / 1000,
                        microseconds: (ms % 1000) * 1000,
                        throttle_key: None,
                    };
                    let _ = agent.emit(now, &event);
                    let _ = agent.complete(token, Reply::Return(&Ser(&Empty {})));
                }
            }
            ControlFlow::Continue(())
        });
        // The connection closed: a new session on the same buffers.
    }
}
