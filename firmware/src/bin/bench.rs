//! The benchmark image: the agent's monitor (the same code as the agent
//! image) served on replayed input instead of the UART's, so that the
//! count does not depend on when the host's bytes reach the emulated UART.
//!
//! Under `qemu-system-arm -icount shift=0` one instruction is one
//! nanosecond of virtual time, and SysTick counts virtual time; the core
//! never sleeps here (the input is always there, the output goes to the
//! UART, `-serial null`), so the elapsed time is the instruction count.
//! Two rounds, of `N` and `3N` pipelined `query-status` requests after
//! `qmp_capabilities` on a fresh agent each, are subtracted (setup and
//! negotiation cancel) and the instructions per request printed through
//! semihosting:
//!
//! ```text
//! board: mps2-an386
//! chunk: 64
//! instructions per request: 4321
//! stack-high-water: 4660
//! static-ram: 1976
//! ```
//!
//! (the stack the monitor used, serving, and the static RAM of this image,
//! the same buffers as the agent image's).
//!
//! Each round reads the input in chunks of up to `CHUNK` bytes (what one
//! `read` returns): 64, as from a DMA or FIFO-backed UART.
#![no_std]
#![no_main]

use core::convert::Infallible;
use core::ops::ControlFlow;
use core::sync::atomic::{AtomicBool, Ordering};
use cortex_m_rt::entry;
use qmp_core::drive::blocking::serve;
use qmp_core::drive::ServeOptions;
use qmp_core::pump::Pump;
use qmp_firmware::monitor::{Buffers, Monitor};
use qmp_firmware::{board, host, now_ms, stack, Clock, Uart};

const N: u32 = 100;
const CHUNK: usize = 64;
const NEGOTIATE: &[u8] = br#"{"execute":"qmp_capabilities"}"#;
const REQUEST: &[u8] = br#"{"execute":"query-status"}"#;

/// Input: the negotiation, then `n` requests; output to the UART.
///
/// Each read copies the next bytes of that input from [`NEGOTIATE`] and
/// [`REQUESTS`] (the request repeated, so that a read of up to `CHUNK`
/// bytes from any place in a request is one copy): the harness costs a
/// few instructions per request, not the agent's input.
struct Replay {
    uart: Uart,
    pos: usize,
    len: usize,
    /// Where `pos` is within the current request (no division: the
    /// Cortex-M0 has no divide instruction).
    in_req: usize,
}

/// Copies of [`REQUEST`] back to back: a read of `CHUNK` bytes from any
/// offset within the first one stays inside.
const REPEAT: usize = CHUNK / REQUEST.len() + 2;
static REQUESTS: [u8; REQUEST.len() * REPEAT] = {
    let mut a = [0u8; REQUEST.len() * REPEAT];
    let mut i = 0;
    while i < a.len() {
        a[i] = REQUEST[i % REQUEST.len()];
        i += 1;
    }
    a
};

impl Replay {
    fn new(uart: Uart, n: u32) -> Self {
        Replay {
            uart,
            pos: 0,
            len: NEGOTIATE.len() + REQUEST.len() * n as usize,
            in_req: 0,
        }
    }
    fn done(&self) -> bool {
        self.pos == self.len
    }
}

impl embedded_io::ErrorType for Replay {
    type Error = Infallible;
}

impl embedded_io::Read for Replay {
    // Out of line: the harness's own row in `icount.py --breakdown`.
    #[inline(never)]
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        let n = buf.len().min(CHUNK).min(self.len - self.pos);
        let mut at = 0;
        while at < n {
            let (src, k) = if self.pos < NEGOTIATE.len() {
                let k = (NEGOTIATE.len() - self.pos).min(n - at);
                (&NEGOTIATE[self.pos..self.pos + k], k)
            } else {
                let k = n - at;
                let src = &REQUESTS[self.in_req..self.in_req + k];
                self.in_req += k;
                while self.in_req >= REQUEST.len() {
                    self.in_req -= REQUEST.len();
                }
                (src, k)
            };
            buf[at..at + k].copy_from_slice(src);
            self.pos += k;
            at += k;
        }
        INPUT_DONE.store(self.done(), Ordering::Relaxed);
        Ok(n)
    }
}

impl embedded_io::ReadReady for Replay {
    fn read_ready(&mut self) -> Result<bool, Infallible> {
        Ok(!self.done())
    }
}

impl embedded_io::Write for Replay {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        embedded_io::Write::write(&mut self.uart, buf)
    }
    fn flush(&mut self) -> Result<(), Infallible> {
        embedded_io::Write::flush(&mut self.uart)
    }
}

/// Virtual nanoseconds since the clock started (milliseconds from the
/// SysTick count, the rest from its current value).
fn now_ns(syst_reload: u32) -> u64 {
    loop {
        let ms = now_ms().as_millis();
        let cvr = cortex_m::peripheral::SYST::get_current();
        if now_ms().as_millis() == ms {
            let cycles = u64::from(syst_reload - cvr);
            return ms * 1_000_000 + cycles * 1_000_000_000 / u64::from(board::CPU_HZ);
        }
    }
}

static mut BUFFERS: Buffers = Buffers::new();
/// Whether the round's input was all read (for the application).
static INPUT_DONE: AtomicBool = AtomicBool::new(false);

/// Marks the start of a round, and the end of the last, in TCG's
/// execution log (`icount.py`).
#[inline(never)]
fn mark(round: u32) {
    core::hint::black_box(round);
}

/// One round: `n` requests on a fresh agent; its virtual duration.
#[inline(never)]
fn round(buffers: &mut Buffers, n: u32, reload: u32) -> u64 {
    mark(n);
    let mut io = Replay::new(Uart::take(), n);
    INPUT_DONE.store(false, Ordering::Relaxed);
    let Some(mut agent) = buffers.agent() else {
        host::exit(false)
    };
    let (mut rx, mut tx) = ([0u8; 64], [0u8; 64]);
    let mut pump = Pump::new(&mut rx, &mut tx);
    let mut monitor = Monitor::default();
    let t0 = now_ns(reload);
    let _ = serve(
        &mut agent,
        &mut io,
        &mut pump,
        ServeOptions::new(),
        now_ms,
        |agent, now| {
            monitor.serve(agent, now);
            if INPUT_DONE.load(Ordering::Relaxed) && agent.is_idle() {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        },
    );
    now_ns(reload) - t0
}

#[entry]
fn main() -> ! {
    stack::paint();
    let core = cortex_m::Peripherals::take().unwrap_or_else(|| host::exit(false));
    let _clock = Clock::start(core.SYST);
    let reload = board::CPU_HZ / 1000 - 1;
    // SAFETY: taken once, here.
    let buffers = unsafe { &mut *core::ptr::addr_of_mut!(BUFFERS) };
    let a = round(buffers, N, reload);
    let b = round(buffers, 3 * N, reload);
    // The end of the second round, for `icount.py`.
    mark(0);
    host::write(b"board: ");
    host::write(board::NAME.as_bytes());
    host::write(b"\nchunk: ");
    host::write_u32(CHUNK as u32);
    host::write(b"\ninstructions per request: ");
    host::write_u32(((b - a) / u64::from(2 * N)) as u32);
    host::write(b"\nstack-high-water: ");
    host::write_u32(stack::high_water() as u32);
    host::write(b"\nstatic-ram: ");
    host::write_u32(stack::static_ram() as u32);
    host::write(b"\n");
    host::exit(true)
}
