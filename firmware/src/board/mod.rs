//! The board: its UART's registers, its interrupt line and clock. One of
//! the two is compiled in, chosen by the target (see `build.rs`).
//!
//! Registers are hand-written (a handful each) rather than taken from PAC
//! crates: QEMU's `mps2-an386` has no PAC (the CMSDK peripherals come with
//! none), and the nRF51 PAC (`nrf51-pac`, unmaintained since 2021) would
//! be a large dependency for the six UART registers used here. The
//! Cortex-M core peripherals (SysTick, NVIC) come from `cortex-m`.

#[cfg(board = "microbit")]
mod microbit;
#[cfg(board = "mps2_an386")]
mod mps2_an386;

#[cfg(board = "microbit")]
pub use microbit::*;
#[cfg(board = "mps2_an386")]
pub use mps2_an386::*;

/// A 32-bit memory-mapped register.
#[derive(Clone, Copy)]
pub(crate) struct Reg(pub(crate) usize);

impl Reg {
    #[inline(always)]
    pub(crate) fn read(self) -> u32 {
        // SAFETY: the address is one of the board's device registers (the
        // constants of the board module), aligned, always mapped.
        unsafe { core::ptr::read_volatile(self.0 as *const u32) }
    }

    #[inline(always)]
    pub(crate) fn write(self, v: u32) {
        // SAFETY: as in `read`.
        unsafe { core::ptr::write_volatile(self.0 as *mut u32, v) }
    }
}
