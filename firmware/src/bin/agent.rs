//! The firmware agent: a small QMP monitor on the board's UART, served by
//! qmp-core's blocking `serve` loop.
//!
//! Commands: `qmp_capabilities`, `query-version`, `query-commands`,
//! `query-status`, `stop` / `cont` (with `STOP` / `RESUME` before the
//! reply), `x-sleep` (`{"ms": N}`: answered N ms later without blocking
//! the loop; allowed as `exec-oob`, so one can overtake an in-band one) and
//! `x-query-firmware` (the board, stack high-water mark, static RAM and
//! uptime). Events: `HEARTBEAT` (`{"uptime-ms": N}`), emitted every 250 ms
//! and throttled to one a second, while negotiated.
//!
//! Event timestamps are the time since reset (the boards have no wall
//! clock): `seconds` and `microseconds` of the SysTick millisecond clock.
//!
//! Nothing is dropped: a reply (or an event before its reply) that finds
//! the output full waits in its slot and is retried after the loop
//! transmitted (`CompleteError::OutputFull` hands the token back).
#![no_std]
#![no_main]

use core::ops::ControlFlow;
use cortex_m_rt::entry;
use qmp_core::drive::blocking::serve;
use qmp_core::drive::ServeOptions;
use qmp_core::pump::Pump;
use qmp_firmware::monitor::{Buffers, Monitor, TICK_MS};
use qmp_firmware::{now_ms, stack, Clock, Uart};

static mut BUFFERS: Buffers = Buffers::new();

#[entry]
fn main() -> ! {
    stack::paint();
    let core = cortex_m::Peripherals::take().unwrap_or_else(|| loop {});
    let _clock = Clock::start(core.SYST);
    let mut uart = Uart::take();
    // SAFETY: taken once, here, before anything else uses it.
    let buffers = unsafe { &mut *core::ptr::addr_of_mut!(BUFFERS) };
    let Some(mut agent) = buffers.agent() else {
        loop {
            cortex_m::asm::wfi();
        }
    };
    let (mut rx, mut tx) = ([0u8; 64], [0u8; 64]);
    let mut pump = Pump::new(&mut rx, &mut tx);
    let mut monitor = Monitor::default();
    let options = ServeOptions::new().with_tick_ms(TICK_MS);
    loop {
        // A UART never ends, so this returns only on a transport error
        // (none: the UART's are `Infallible`).
        let _ = serve(
            &mut agent,
            &mut uart,
            &mut pump,
            options,
            now_ms,
            |agent, now| {
                monitor.serve(agent, now);
                ControlFlow::Continue(())
            },
        );
    }
}
