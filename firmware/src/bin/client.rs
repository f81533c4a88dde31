//! The firmware client, blocking: connects through the board's UART to a
//! real QMP monitor (QEMU's `-serial unix:PATH` to a `qemu-storage-daemon`
//! monitor socket) with qmp-core's blocking driver, and runs the scenario
//! of [`qmp_firmware::scenario`] (`client_async` runs the same with the
//! async driver).
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use qmp_core::client::{Client, ExecuteOptions};
use qmp_core::drive::blocking::BlockingDriver;
use qmp_core::pump::Pump;
use qmp_firmware::scenario::{self, fail, Seen, Step};
use qmp_firmware::{now_ms, Uart};

#[entry]
fn main() -> ! {
    let (_clock, mut uart, framer) = scenario::boot();
    run(framer, &mut uart);
    scenario::done()
}

fn run(framer: &mut [u8], uart: &mut Uart) {
    let mut client = Client::new(framer);
    let (mut rx, mut tx) = ([0u8; 64], [0u8; 256]);
    let mut driver = BlockingDriver::new(Pump::new(&mut rx, &mut tx));
    let mut seen = Seen::default();
    if driver.negotiate(&mut client, uart, now_ms, |_| {}).is_err() {
        fail(b"negotiate");
    }
    // Runs a step to its reply; fails the run on anything but a return.
    let mut call = |step: &Step, seen: &mut Seen| {
        let options = ExecuteOptions::new().timeout_ms(10_000);
        let Ok(token) = driver.execute_raw(
            &mut client,
            uart,
            now_ms(),
            step.name,
            step.arguments(),
            options,
        ) else {
            fail(step.name.as_bytes());
        };
        let outcome = driver.run_until(&mut client, uart, token, now_ms, |ev| seen.on_event(ev));
        scenario::returned(step, outcome);
    };
    for step in &scenario::BEFORE_JOB {
        call(step, &mut seen);
    }
    let mut polls = 0;
    while !seen.concluded {
        polls += 1;
        if polls > scenario::MAX_POLLS {
            fail(b"no concluded event");
        }
        call(&scenario::POLL, &mut seen);
    }
    seen.report();
    for step in &scenario::AFTER_JOB {
        call(step, &mut seen);
    }
}
