//! The firmware client: connects through the board's UART to a real QMP
//! monitor (QEMU's `-serial unix:PATH` to a `qemu-storage-daemon`
//! monitor socket), with qmp-core's async driver under the bare-metal
//! `block_on`.
//!
//! It negotiates, runs `query-version`, adds a `null-co` node
//! (`blockdev-add`), formats it in a job (`blockdev-create`, qcow2) and
//! follows the job's `JOB_STATUS_CHANGE` events to `concluded`, then
//! dismisses the job and deletes the node (the daemon is left as found).
//! It reports what it got on the host's stdout (semihosting), one line each:
//!
//! ```text
//! board: mps2-an386
//! query-version: {"qemu": {…}, "package": "…"}
//! blockdev-add: {}
//! event: JOB_STATUS_CHANGE {"status": "created", "id": "j1"}
//! statuses: created running … concluded
//! job-dismiss: {}
//! blockdev-del: {}
//! OK
//! ```
//!
//! and exits (semihosting) with success, or prints `FAILED: <step>` and
//! fails.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use qmp_core::client::{Client, ClientEvent, ExecuteOptions, Outcome};
use qmp_core::drive::asynch::AsyncDriver;
use qmp_core::json::RawJson;
use qmp_core::pump::Pump;
use qmp_firmware::{block_on, board, host, now_ms, stack, Clock, Uart};

static mut FRAMER: [u8; 512] = [0; 512];

/// What the job's events told: the first one and the statuses seen.
struct Seen {
    first: [u8; 160],
    first_len: usize,
    statuses: [u8; 128],
    statuses_len: usize,
    concluded: bool,
}

impl Seen {
    fn on_event(&mut self, ev: &ClientEvent<'_>) {
        let ClientEvent::Event(ev) = ev else { return };
        if !ev.name.eq_str("JOB_STATUS_CHANGE") {
            return;
        }
        let data = ev.data.map_or(&b""[..], |d| d.as_bytes());
        if self.first_len == 0 {
            let mut n = 0;
            for part in [ev.name.raw(), b" ", data] {
                for &b in part {
                    if let Some(slot) = self.first.get_mut(n) {
                        *slot = b;
                        n += 1;
                    }
                }
            }
            self.first_len = n;
        }
        // The status as sent (job statuses are plain words: no escapes).
        let status = ev
            .data
            .and_then(|d| d.get("status"))
            .and_then(|s| s.as_json_str())
            .map_or(&b"?"[..], |s| s.raw());
        for part in [
            if self.statuses_len == 0 {
                &b""[..]
            } else {
                b" "
            },
            status,
        ] {
            for &b in part {
                if let Some(slot) = self.statuses.get_mut(self.statuses_len) {
                    *slot = b;
                    self.statuses_len += 1;
                }
            }
        }
        if status == b"concluded" {
            self.concluded = true;
        }
    }
}

fn line(label: &[u8], value: &[u8]) {
    host::write(label);
    host::write(b": ");
    host::write(value);
    host::write(b"\n");
}

fn fail(step: &[u8]) -> ! {
    host::write(b"FAILED: ");
    host::write(step);
    host::write(b"\n");
    host::exit(false)
}

#[entry]
fn main() -> ! {
    stack::paint();
    let core = cortex_m::Peripherals::take().unwrap_or_else(|| fail(b"peripherals"));
    let clock = Clock::start(core.SYST);
    let mut uart = Uart::take();
    // SAFETY: taken once, here.
    let framer = unsafe { &mut *core::ptr::addr_of_mut!(FRAMER) };
    line(b"board", board::NAME.as_bytes());
    block_on(run(framer, &mut uart, &clock));
    host::write(b"stack-high-water: ");
    host::write_u32(stack::high_water() as u32);
    host::write(b"\nOK\n");
    host::exit(true)
}

async fn run(framer: &mut [u8], uart: &mut Uart, clock: &Clock) {
    let mut client = Client::new(framer);
    let (mut rx, mut tx) = ([0u8; 64], [0u8; 256]);
    let mut driver = AsyncDriver::new(Pump::new(&mut rx, &mut tx));
    let mut seen = Seen {
        first: [0; 160],
        first_len: 0,
        statuses: [0; 128],
        statuses_len: 0,
        concluded: false,
    };
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
    io.call(
        &mut client,
        clock,
        "query-version",
        None,
        Some(b"query-version"),
        &mut seen,
    )
    .await;
    io.call(
        &mut client,
        clock,
        "blockdev-add",
        Some(br#"{"driver":"null-co","node-name":"n0","size":1048576}"#),
        Some(b"blockdev-add"),
        &mut seen,
    )
    .await;
    io.call(
        &mut client,
        clock,
        "blockdev-create",
        Some(br#"{"job-id":"j1","options":{"driver":"qcow2","file":"n0","size":1048576}}"#),
        None,
        &mut seen,
    )
    .await;
    // The job's events up to `concluded` (they come while we ask).
    let mut polls = 0;
    while !seen.concluded {
        polls += 1;
        if polls > 1000 {
            fail(b"no concluded event");
        }
        io.call(&mut client, clock, "query-jobs", None, None, &mut seen)
            .await;
    }
    line(b"event", &seen.first[..seen.first_len]);
    line(b"statuses", &seen.statuses[..seen.statuses_len]);
    io.call(
        &mut client,
        clock,
        "job-dismiss",
        Some(br#"{"id":"j1"}"#),
        Some(b"job-dismiss"),
        &mut seen,
    )
    .await;
    io.call(
        &mut client,
        clock,
        "blockdev-del",
        Some(br#"{"node-name":"n0"}"#),
        Some(b"blockdev-del"),
        &mut seen,
    )
    .await;
}

struct Io<'b> {
    driver: AsyncDriver<'b>,
    reader: Uart,
    writer: Uart,
}

impl Io<'_> {
    /// Runs a command to its reply, printing `label: <return value>`;
    /// fails the run on anything but a return.
    async fn call(
        &mut self,
        client: &mut Client<&mut [u8]>,
        clock: &Clock,
        name: &str,
        args: Option<&'static [u8]>,
        label: Option<&[u8]>,
        seen: &mut Seen,
    ) {
        let options = ExecuteOptions::new().timeout_ms(10_000);
        let args = args.map(RawJson::assume_validated);
        let Ok(token) = self
            .driver
            .execute_raw(client, &mut self.writer, now_ms(), name, args, options)
            .await
        else {
            fail(name.as_bytes());
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
        match outcome {
            Ok(Outcome::Return(value)) => {
                if let Some(label) = label {
                    line(label, value.as_bytes());
                }
            }
            _ => fail(name.as_bytes()),
        }
    }
}
