//! What the firmware images share: the board's UART as `embedded-io` (and
//! `embedded-io-async`) streams, a millisecond clock from SysTick, the
//! sleep that waits for the UART or the clock, a bare-metal `block_on`,
//! the stack high-water mark, semihosting output, and compact `memcpy` /
//! `memset` (`mem.rs`).
//!
//! `unsafe` is confined to register access (the board module, the NVIC
//! lines, the stack paint), the handful of linker symbols and the memory
//! routines' assembly; qmp-core itself is `forbid(unsafe_code)`.
#![no_std]

pub mod board;
mod mem;
pub mod monitor;
pub mod scenario;

use core::convert::Infallible;
use core::future::Future;
use core::pin::pin;
use core::sync::atomic::{AtomicU32, Ordering};
use core::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

use cortex_m::interrupt::InterruptNumber;
use cortex_m::peripheral::{syst::SystClkSource, NVIC, SYST};
use cortex_m_rt::exception;
use qmp_core::Instant;

/// One of the UART's interrupt lines, for the NVIC.
#[derive(Clone, Copy)]
struct UartIrq(u16);

// SAFETY: the board's UART interrupt numbers are valid NVIC lines.
unsafe impl InterruptNumber for UartIrq {
    fn number(self) -> u16 {
        self.0
    }
}

/// Milliseconds since [`Clock::start`] (the SysTick interrupt counts them;
/// the high word counts wraps of the low one, both written only there).
static MS_LO: AtomicU32 = AtomicU32::new(0);
static MS_HI: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    let lo = MS_LO.load(Ordering::Relaxed).wrapping_add(1);
    if lo == 0 {
        MS_HI.store(
            MS_HI.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
    }
    MS_LO.store(lo, Ordering::Release);
}

/// Any other interrupt: the UART's, which only wakes the core from
/// [`wait`]; it is masked again here (bytes are read and written by
/// polling).
#[exception]
unsafe fn DefaultHandler(irqn: i16) {
    if let Ok(n) = u16::try_from(irqn) {
        NVIC::mask(UartIrq(n));
    }
}

/// The millisecond clock: SysTick from the core clock, one interrupt a
/// millisecond. Boards without a wall clock (both here) stamp events with
/// this: seconds and microseconds since reset, not since 1970.
pub struct Clock;

impl Clock {
    /// Starts SysTick (1 kHz from the core clock).
    pub fn start(mut syst: SYST) -> Clock {
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(board::CPU_HZ / 1000 - 1);
        syst.clear_current();
        syst.enable_interrupt();
        syst.enable_counter();
        Clock
    }
}

/// Now, in milliseconds since the clock started.
pub fn now_ms() -> Instant {
    loop {
        let hi = MS_HI.load(Ordering::Relaxed);
        let lo = MS_LO.load(Ordering::Acquire);
        if MS_HI.load(Ordering::Relaxed) == hi {
            return Instant::from_millis((u64::from(hi) << 32) | u64::from(lo));
        }
    }
}

impl qmp_core::drive::asynch::Clock for Clock {
    fn now(&self) -> Instant {
        now_ms()
    }
    fn at(&self, at: Instant) -> impl Future<Output = ()> {
        core::future::poll_fn(move |_| {
            if now_ms() >= at {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }
}

/// Sleeps until the UART has a byte (or, with `tx`, takes one) or another
/// interrupt (the clock's, at most a millisecond away) comes; returns at
/// once when that is so already.
pub fn wait(tx: bool) {
    cortex_m::interrupt::free(|_| {
        board::irq_clear();
        for irq in board::UART_IRQS {
            NVIC::unpend(UartIrq(irq));
        }
        // (`tx_ready` first: on the nRF51 it also clears the event of a
        // byte that went, which would otherwise wake the core at once.)
        if (board::tx_ready() && tx) || board::rx_ready() {
            return;
        }
        for irq in board::UART_IRQS {
            // SAFETY: the handler only masks the line again.
            unsafe { NVIC::unmask(UartIrq(irq)) };
        }
        // With interrupts masked, a pending one still ends the sleep; it is
        // taken when `free` unmasks them.
        cortex_m::asm::wfi();
    });
}

/// The board's UART: blocking (`embedded-io`) and async
/// (`embedded-io-async`) reads and writes.
///
/// A blocking `read` sleeps until a byte is there and never returns
/// `Ok(0)` for "nothing yet"; `read_ready` tells without blocking. An async
/// `read` is pending while nothing was received (the executor sleeps in
/// [`wait`]). Writes go byte by byte into the transmitter.
pub struct Uart(());

impl Uart {
    /// Takes the board's UART and enables it (once).
    pub fn take() -> Uart {
        board::uart_init();
        Uart(())
    }

    /// A reader and a writer: `read` touches only the receiver's
    /// registers and `write` only the transmitter's, so the two halves of
    /// the async drivers may each have one.
    pub fn split(&mut self) -> (Uart, Uart) {
        (Uart(()), Uart(()))
    }

    fn drain_into(buf: &mut [u8]) -> usize {
        let mut n = 0;
        for slot in buf.iter_mut() {
            if !board::rx_ready() {
                break;
            }
            *slot = board::rx_take();
            n += 1;
        }
        n
    }

    /// Until the last byte went.
    fn drain() {
        while !board::tx_ready() {
            wait(true);
        }
    }

    fn put_all(buf: &[u8]) {
        board::tx_all(buf, wait);
    }
}

impl embedded_io::ErrorType for Uart {
    type Error = Infallible;
}

impl embedded_io::Read for Uart {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        if buf.is_empty() {
            return Ok(0);
        }
        while !board::rx_ready() {
            wait(false);
        }
        Ok(Self::drain_into(buf))
    }
}

impl embedded_io::ReadReady for Uart {
    /// Whether a byte waits. When none does, this sleeps first (until a
    /// byte or the next clock tick), so that a serving loop polling it
    /// does not spin: the core idles between requests.
    fn read_ready(&mut self) -> Result<bool, Infallible> {
        if !board::rx_ready() {
            wait(false);
        }
        Ok(board::rx_ready())
    }
}

impl embedded_io::Write for Uart {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        Self::put_all(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> Result<(), Infallible> {
        Self::drain();
        Ok(())
    }
}

impl embedded_io_async::Read for Uart {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        if buf.is_empty() {
            return Ok(0);
        }
        core::future::poll_fn(|_| {
            if board::rx_ready() {
                Poll::Ready(Ok(Self::drain_into(buf)))
            } else {
                Poll::Pending
            }
        })
        .await
    }
}

impl embedded_io_async::Write for Uart {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        Self::put_all(buf);
        Ok(buf.len())
    }
    async fn flush(&mut self) -> Result<(), Infallible> {
        Self::drain();
        Ok(())
    }
}

/// Runs a future to completion on the bare core: polls it, and sleeps in
/// [`wait`] while it is pending. Every future here is woken by the UART or
/// the clock, both of which end the sleep, so the waker does nothing.
pub fn block_on<F: Future>(fut: F) -> F::Output {
    fn noop(_: *const ()) {}
    fn clone(p: *const ()) -> RawWaker {
        RawWaker::new(p, &VTABLE)
    }
    static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, noop, noop, noop);
    // SAFETY: the vtable's functions do nothing and never touch the pointer.
    let waker = unsafe { Waker::from_raw(RawWaker::new(core::ptr::null(), &VTABLE)) };
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        wait(false);
    }
}

/// The stack paint, for the high-water mark.
pub mod stack {
    const PAINT: u32 = 0x5AA5_5AA5;

    extern "C" {
        static mut __sheap: u32;
        static _stack_start: u32;
        static mut __sdata: u32;
    }

    fn bottom() -> *mut u32 {
        core::ptr::addr_of_mut!(__sheap)
    }

    fn top() -> usize {
        core::ptr::addr_of!(_stack_start) as usize
    }

    /// Paints the free stack (from the end of the static data up to a
    /// little below the current stack pointer). Call first thing in `main`.
    #[inline(never)]
    pub fn paint() {
        let sp = cortex_m::register::msp::read() as usize - 64;
        let mut p = bottom();
        while (p as usize) < sp {
            // SAFETY: between the end of .bss/.uninit and below the stack
            // pointer: RAM nothing uses yet.
            unsafe {
                p.write_volatile(PAINT);
                p = p.add(1);
            }
        }
    }

    /// The most stack used since [`paint`], in bytes.
    pub fn high_water() -> usize {
        let mut p = bottom();
        // SAFETY: reads within the painted region, up to the stack top.
        unsafe {
            while (p as usize) < top() && p.read_volatile() == PAINT {
                p = p.add(1);
            }
        }
        top() - p as usize
    }

    /// The static RAM (`.data`, `.bss`, `.uninit`), in bytes.
    pub fn static_ram() -> usize {
        bottom() as usize - core::ptr::addr_of_mut!(__sdata) as usize
    }
}

/// Semihosting: output on the host's stdout, and the exit status.
pub mod host {
    use cortex_m_semihosting::{debug, hio};

    /// Writes `bytes` to the host's stdout.
    pub fn write(bytes: &[u8]) {
        if let Ok(mut out) = hio::hstdout() {
            let _ = out.write_all(bytes);
        }
    }

    /// Writes a decimal number.
    pub fn write_u32(v: u32) {
        let mut buf = [0u8; 20];
        write(crate::monitor::decimal(&mut buf, u64::from(v)));
    }

    /// Ends the emulation with success or failure.
    pub fn exit(ok: bool) -> ! {
        debug::exit(if ok {
            debug::EXIT_SUCCESS
        } else {
            debug::EXIT_FAILURE
        });
        loop {
            cortex_m::asm::wfi();
        }
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    // Under QEMU with semihosting: a failed run; on hardware the BKPT
    // halts for a debugger.
    host::write(b"panic\n");
    host::exit(false)
}
