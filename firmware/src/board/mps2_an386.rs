//! QEMU's `mps2-an386` (Arm MPS2 with the AN386 FPGA image, Cortex-M4F):
//! UART0 is a CMSDK APB UART at `0x4000_4000` (QEMU's `-serial`, first
//! one), its receive and transmit interrupts are IRQ 0 and 1; the CPU runs
//! at 25 MHz.
//!
//! The CMSDK UART holds one received byte (`STATE.RXFULL`); QEMU hands it
//! the next only once the byte is read, so nothing is lost while the
//! firmware is busy. A transmitted byte goes out at once unless the host
//! socket is full (`STATE.TXFULL` stays set until it went).

use super::Reg;

/// The board's name, as the images report it.
pub const NAME: &str = "mps2-an386";
/// The core clock, SysTick's source.
pub const CPU_HZ: u32 = 25_000_000;
/// The UART's receive and transmit interrupts (NVIC lines).
pub const UART_IRQS: [u16; 2] = [0, 1];

const BASE: usize = 0x4000_4000;
const DATA: Reg = Reg(BASE);
const STATE: Reg = Reg(BASE + 0x04);
const CTRL: Reg = Reg(BASE + 0x08);
const INTSTATUS: Reg = Reg(BASE + 0x0C);
const BAUDDIV: Reg = Reg(BASE + 0x10);

const STATE_TXFULL: u32 = 1 << 0;
const STATE_RXFULL: u32 = 1 << 1;
const CTRL_TX_EN: u32 = 1 << 0;
const CTRL_RX_EN: u32 = 1 << 1;
const CTRL_TX_INTEN: u32 = 1 << 2;
const CTRL_RX_INTEN: u32 = 1 << 3;
const INT_TX: u32 = 1 << 0;
const INT_RX: u32 = 1 << 1;

/// Enables transmit and receive (and their interrupts, which only wake the
/// core: see `wait`).
pub fn uart_init() {
    // QEMU refuses to transmit below a divider of 16.
    BAUDDIV.write(16);
    CTRL.write(CTRL_TX_EN | CTRL_RX_EN | CTRL_TX_INTEN | CTRL_RX_INTEN);
}

/// Whether a received byte waits.
#[inline(always)]
pub fn rx_ready() -> bool {
    STATE.read() & STATE_RXFULL != 0
}

/// Takes the received byte (call when [`rx_ready`]).
#[inline(always)]
pub fn rx_take() -> u8 {
    DATA.read() as u8
}

/// Whether the transmitter takes a byte now.
#[inline(always)]
pub fn tx_ready() -> bool {
    STATE.read() & STATE_TXFULL == 0
}

/// Hands a byte to the transmitter (call when [`tx_ready`]).
#[inline(always)]
pub fn tx_put(b: u8) {
    DATA.write(u32::from(b));
}

/// Hands `buf` to the transmitter, sleeping in `wait(true)` while it is
/// full.
#[inline(always)]
pub fn tx_all(buf: &[u8], wait: fn(bool)) {
    for &b in buf {
        while !tx_ready() {
            wait(true);
        }
        tx_put(b);
    }
}

/// Clears the interrupt flags (before checking [`rx_ready`] and
/// [`tx_ready`] and sleeping: a byte received or sent after that sets them
/// again).
pub fn irq_clear() {
    INTSTATUS.write(INT_RX | INT_TX);
}
