//! QEMU's `microbit` (BBC micro:bit, nRF51822, Cortex-M0): the UART is
//! the nRF51 UART at `0x4000_2000` (QEMU's `-serial`), interrupt 2; the
//! CPU runs at 16 MHz.
//!
//! QEMU's model keeps a 6-byte receive FIFO (`EVENTS_RXDRDY` while it holds
//! a byte; reading `RXD` takes one and raises the event again when more
//! wait) and fills it only as it empties, so nothing is lost. A byte
//! written to `TXD` raises `EVENTS_TXDRDY` once it went out.

use super::Reg;

/// The board's name, as the images report it.
pub const NAME: &str = "microbit";
/// The core clock, SysTick's source.
pub const CPU_HZ: u32 = 16_000_000;
/// The UART's interrupt (NVIC line; receive and transmit share it).
pub const UART_IRQS: [u16; 1] = [2];

const BASE: usize = 0x4000_2000;
const STARTRX: Reg = Reg(BASE);
const STARTTX: Reg = Reg(BASE + 0x008);
const EVENTS_RXDRDY: Reg = Reg(BASE + 0x108);
const EVENTS_TXDRDY: Reg = Reg(BASE + 0x11C);
const INTENSET: Reg = Reg(BASE + 0x304);
const ENABLE: Reg = Reg(BASE + 0x500);
const PSELTXD: Reg = Reg(BASE + 0x50C);
const PSELRXD: Reg = Reg(BASE + 0x514);
const RXD: Reg = Reg(BASE + 0x518);
const TXD: Reg = Reg(BASE + 0x51C);
const BAUDRATE: Reg = Reg(BASE + 0x524);

const INT_RXDRDY: u32 = 1 << 2;
const INT_TXDRDY: u32 = 1 << 7;
/// Whether a transmitted byte is still going out (`TXDRDY` not yet seen).
static TX_BUSY: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Enables the UART (the micro:bit's USB-serial pins, 115200 baud) and
/// starts both directions; the interrupts only wake the core.
pub fn uart_init() {
    PSELTXD.write(24);
    PSELRXD.write(25);
    BAUDRATE.write(0x01D7_E000); // 115200
    ENABLE.write(4);
    STARTTX.write(1);
    STARTRX.write(1);
    INTENSET.write(INT_RXDRDY | INT_TXDRDY);
}

/// Whether a received byte waits.
#[inline(always)]
pub fn rx_ready() -> bool {
    EVENTS_RXDRDY.read() != 0
}

/// Takes a received byte (call when [`rx_ready`]): the event is cleared
/// first, so that the model raises it again when more bytes wait.
#[inline(always)]
pub fn rx_take() -> u8 {
    EVENTS_RXDRDY.write(0);
    RXD.read() as u8
}

/// Whether the transmitter takes a byte now (clearing `EVENTS_TXDRDY`
/// once the last byte went: the interrupt follows it).
#[inline(always)]
pub fn tx_ready() -> bool {
    use core::sync::atomic::Ordering::Relaxed;
    if !TX_BUSY.load(Relaxed) {
        return true;
    }
    if EVENTS_TXDRDY.read() == 0 {
        return false;
    }
    EVENTS_TXDRDY.write(0);
    TX_BUSY.store(false, Relaxed);
    true
}

/// Hands a byte to the transmitter (call when [`tx_ready`]).
#[inline(always)]
pub fn tx_put(b: u8) {
    TX_BUSY.store(true, core::sync::atomic::Ordering::Relaxed);
    TXD.write(u32::from(b));
}

/// Hands `buf` to the transmitter, a byte once the one before went,
/// sleeping in `wait(true)` while one is going. The per-byte path reads and
/// clears `EVENTS_TXDRDY` itself, keeping [`TX_BUSY`] out of it.
#[inline(always)]
pub fn tx_all(buf: &[u8], wait: fn(bool)) {
    use core::sync::atomic::Ordering::Relaxed;
    let Some((&first, rest)) = buf.split_first() else {
        return;
    };
    while !tx_ready() {
        wait(true);
    }
    TXD.write(u32::from(first));
    for &b in rest {
        if EVENTS_TXDRDY.read() != 0 {
            EVENTS_TXDRDY.write(0);
        } else {
            // Still going: as for a byte handed over by `tx_put`.
            TX_BUSY.store(true, Relaxed);
            while !tx_ready() {
                wait(true);
            }
        }
        TXD.write(u32::from(b));
    }
    TX_BUSY.store(true, Relaxed);
}

/// Nothing to clear: the interrupt follows `EVENTS_RXDRDY` and
/// `EVENTS_TXDRDY`, which [`rx_take`] and [`tx_ready`] clear.
pub fn irq_clear() {}
