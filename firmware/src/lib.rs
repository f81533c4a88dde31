//! Shared pieces of the footprint examples: a UART stand-in over two
//! memory-mapped registers, and a millisecond clock.
#![no_std]

use core::convert::Infallible;

/// A UART seen through a data and a status register (volatile accesses, so
/// nothing is optimised away).
pub struct Uart {
    base: usize,
}

impl Uart {
    /// The UART at `base`.
    pub const fn new(base: usize) -> Self {
        Uart { base }
    }

    fn status(&self) -> u32 {
        // SAFETY: a memory-mapped register of the (imagined) part.
        unsafe { core::ptr::read_volatile(self.base as *const u32) }
    }
}

impl embedded_io::ErrorType for Uart {
    type Error = Infallible;
}

impl embedded_io::Read for Uart {
    /// Blocks until at least one byte is received (embedded-io's contract:
    /// `Ok(0)` would mean end of stream), then takes what is there.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.status() & 1 == 0 {}
        let mut n = 0;
        for slot in buf.iter_mut() {
            if self.status() & 1 == 0 {
                break;
            }
            // SAFETY: the data register.
            *slot = unsafe { core::ptr::read_volatile((self.base + 4) as *const u32) } as u8;
            n += 1;
        }
        Ok(n)
    }
}

impl embedded_io::ReadReady for Uart {
    fn read_ready(&mut self) -> Result<bool, Infallible> {
        Ok(self.status() & 1 != 0)
    }
}

impl embedded_io::Write for Uart {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        for &b in buf {
            // SAFETY: the data register.
            unsafe { core::ptr::write_volatile((self.base + 4) as *mut u32, u32::from(b)) };
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> Result<(), Infallible> {
        Ok(())
    }
}

/// Milliseconds from a free-running timer register.
pub fn now_ms() -> qmp_core::Instant {
    // SAFETY: a memory-mapped timer of the (imagined) part.
    qmp_core::Instant::from_millis(u64::from(unsafe {
        core::ptr::read_volatile(0x4000_1000 as *const u32)
    }))
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {
        cortex_m::asm::udf();
    }
}
