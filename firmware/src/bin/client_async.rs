//! The firmware client, async: the scenario of [`qmp_firmware::scenario`]
//! (what the blocking `client` image runs) with qmp-core's async driver
//! over the UART's `embedded-io-async` halves, under the bare-metal
//! [`block_on`](qmp_firmware::block_on) (the core sleeps in `WFI` while
//! a future waits for the UART).
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use qmp_core::client::{Client, ExecuteOptions};
use qmp_core::drive::asynch::AsyncDriver;
use qmp_core::pump::Pump;
use qmp_firmware::scenario::{self, fail, Seen, Step};
use qmp_firmware::{block_on, now_ms, Clock, Uart};

#[entry]
fn main() -> ! {
    let (clock, mut uart, framer) = scenario::boot();
    block_on(run(framer, &mut uart, &clock));
    scenario::done()
}

async fn run(framer: &mut [u8], uart: &mut Uart, clock: &Clock) {
    let mut client = Client::new(framer);
    let (mut rx, mut tx) = ([0u8; 64], [0u8; 256]);
    let mut driver = AsyncDriver::new(Pump::new(&mut rx, &mut tx));
    let mut seen = Seen::default();
    let (mut reader, mut writer) = uart.split();
    if driver
        .negotiate(&mut client, &mut reader, &mut writer, clock, |_| {})
        .await
        .is_err()
    {
        fail(b"negotiate");
    }
    let mut io = Io {
        driver,
        reader,
        writer,
    };
    for step in &scenario::BEFORE_JOB {
        io.call(&mut client, clock, step, &mut seen).await;
    }
    let mut polls = 0;
    while !seen.concluded {
        polls += 1;
        if polls > scenario::MAX_POLLS {
            fail(b"no concluded event");
        }
        io.call(&mut client, clock, &scenario::POLL, &mut seen)
            .await;
    }
    seen.report();
    for step in &scenario::AFTER_JOB {
        io.call(&mut client, clock, step, &mut seen).await;
    }
}

struct Io<'b> {
    driver: AsyncDriver<'b>,
    reader: Uart,
    writer: Uart,
}

impl Io<'_> {
    /// Runs a step to its reply; fails the run on anything but a return.
    async fn call(
        &mut self,
        client: &mut Client<&mut [u8]>,
        clock: &Clock,
        step: &Step,
        seen: &mut Seen,
    ) {
        let options = ExecuteOptions::new().timeout_ms(10_000);
        let Ok(token) = self
            .driver
            .execute_raw(
                client,
                &mut self.writer,
                now_ms(),
                step.name,
                step.arguments(),
                options,
            )
            .await
        else {
            fail(step.name.as_bytes());
        };
        let outcome = self
            .driver
            .run_until(
                client,
                &mut self.reader,
                &mut self.writer,
                token,
                clock,
                |ev| seen.on_event(ev),
            )
            .await;
        scenario::returned(step, outcome);
    }
}
