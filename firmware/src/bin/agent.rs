//! A monitor agent serving four commands and one event over a UART.
#![no_std]
#![no_main]

use core::ops::ControlFlow;
use cortex_m_rt::entry;
use qmp_core::agent::{
    Agent, AgentBuffers, AgentConfig, CommandSpec, CompleteError, EventOut, Reply, ReplyToken,
};
use qmp_core::drive::blocking::serve;
use qmp_core::drive::ServeOptions;
use qmp_core::encode::Ser;
use qmp_core::pump::Pump;
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

/// What the application answers.
#[derive(Clone, Copy)]
enum Answer {
    Status,
    Done,
}

/// Answers; a reply that finds the output full is handed back, to be
/// retried once `serve` has transmitted (its next turn). Any other failure
/// is already answered by the agent with an error in its place.
fn answer(
    agent: &mut Agent<'_, '_>,
    token: ReplyToken,
    what: Answer,
    running: bool,
) -> Option<(ReplyToken, Answer)> {
    let r = match what {
        Answer::Status => {
            let status = Status { status: if running { "running" } else { "paused" }, running };
            agent.complete(token, Reply::Return(&Ser(&status)))
        }
        Answer::Done => agent.complete(token, Reply::Return(&Ser(&Empty {}))),
    };
    match r {
        Err(CompleteError::OutputFull { token, .. }) => Some((token, what)),
        _ => None,
    }
}

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
    let config = AgentConfig::new((0, 1, 0), "fw", &COMMANDS);
    let Ok(mut agent) = Agent::new(config, AgentBuffers::new(framer, queue, out)) else {
        loop {}
    };
    let mut waiting: Option<(ReplyToken, Answer)> = None;
    let mut pump = Pump::new(&mut rx, &mut tx);
    loop {
        let options = ServeOptions::new().with_tick_ms(100);
        let _ = serve(&mut agent, &mut uart, &mut pump, options, now_ms, |agent, now| {
            if let Some((token, what)) = waiting.take() {
                waiting = answer(agent, token, what, running);
                if waiting.is_some() {
                    return ControlFlow::Continue(());
                }
            }
            while let Some(req) = agent.poll_request() {
                let token = req.token;
                let what = if req.name.eq_str("query-status") {
                    Answer::Status
                } else {
                    let stopping = req.name.eq_str("stop");
                    running = !stopping;
                    let ms = now.as_millis() as i64;
                    let event = EventOut::new(if stopping { "STOP" } else { "RESUME" })
                        .timestamp(ms / 1000, (ms % 1000) * 1000);
                    // Sent, or dropped before negotiation; with no room the
                    // event is lost (a firmware would count it).
                    let _ = agent.emit(now, &event);
                    Answer::Done
                };
                waiting = answer(agent, token, what, running);
                if waiting.is_some() {
                    break;
                }
            }
            ControlFlow::Continue(())
        });
        // The connection closed: the agent is reset (its greeting queued)
        // for the next peer. A reply still waiting is for the old peer.
        waiting = None;
    }
}
