//! A client that negotiates and runs `query-status` over a UART, blinking
//! (writing a GPIO register) according to the answer.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use qmp_core::client::commands::QueryStatus;
use qmp_core::drive::blocking::BlockingDriver;
use qmp_core::pump::Pump;
use qmp_core::client::{Client, ExecuteOptions, Outcome};
use qmp_firmware::{now_ms, Uart};

static mut FRAMER: [u8; 1024] = [0; 1024];

fn led(on: bool) {
    // SAFETY: a GPIO output register of the (imagined) part.
    unsafe { core::ptr::write_volatile(0x4000_2000 as *mut u32, u32::from(on)) };
}

#[entry]
fn main() -> ! {
    // SAFETY: taken once.
    let framer = unsafe { &mut *core::ptr::addr_of_mut!(FRAMER) };
    let mut uart = Uart::new(0x4000_0000);
    let mut client = Client::new(&mut framer[..]);
    let (mut rx, mut tx) = ([0u8; 64], [0u8; 128]);
    let mut driver = BlockingDriver::new(Pump::new(&mut rx, &mut tx));
    if driver.negotiate(&mut client, &mut uart, now_ms, |_| {}).is_err() {
        loop {}
    }
    loop {
        let options = ExecuteOptions::new().timeout_ms(1000);
        let Ok(token) = driver.execute(&mut client, &mut uart, now_ms(), &QueryStatus, options) else {
            loop {}
        };
        match driver.run_until(&mut client, &mut uart, token, now_ms, |_| {}) {
            Ok(Outcome::Return(value)) => {
                led(value.get("running").and_then(|r| r.as_bool()) == Some(true));
            }
            Ok(_) => led(false),
            Err(_) => loop {},
        }
    }
}
