//! The firmware client's scenario, shared by its two images (`client`:
//! the blocking driver; `client_async`: the async driver under
//! [`block_on`](crate::block_on)): the calls it makes, what it keeps of
//! the job's events, and the report it prints on semihosting stdout.
//!
//! It negotiates, runs `query-version`, adds a `null-co` node
//! (`blockdev-add`), formats it in a job (`blockdev-create`, qcow2) and
//! follows the job's `JOB_STATUS_CHANGE` events to `concluded` (asking
//! `query-jobs` while it waits), then dismisses the job and deletes the
//! node (the daemon is left as found). The report, one line each:
//!
//! ```text
//! board: mps2-an386
//! query-version: {"qemu": {…}, "package": "…"}
//! blockdev-add: {}
//! event: JOB_STATUS_CHANGE {"status": "created", "id": "j1"}
//! statuses: created running … concluded
//! job-dismiss: {}
//! blockdev-del: {}
//! stack-high-water: 1234
//! OK
//! ```
//!
//! and a semihosting exit with success, or `FAILED: <step>` and a failure.

use qmp_core::client::{ClientEvent, Outcome};
use qmp_core::json::RawJson;

use crate::{board, host, stack, Clock, Uart};

static mut FRAMER: [u8; 512] = [0; 512];

/// The start of either image: the stack painted, the clock started, the
/// `board` line printed; the clock, the UART and the client's framer
/// buffer.
pub fn boot() -> (Clock, Uart, &'static mut [u8]) {
    stack::paint();
    let core = cortex_m::Peripherals::take().unwrap_or_else(|| fail(b"peripherals"));
    let clock = Clock::start(core.SYST);
    // SAFETY: `boot` runs once (`Peripherals::take` fails the second time),
    // and nothing else uses the buffer.
    let framer = unsafe { &mut *core::ptr::addr_of_mut!(FRAMER) };
    line(b"board", board::NAME.as_bytes());
    (clock, Uart::take(), &mut framer[..])
}

/// The end of a run that got this far: the stack high-water mark and
/// `OK`, and a successful exit.
pub fn done() -> ! {
    host::write(b"stack-high-water: ");
    host::write_u32(stack::high_water() as u32);
    host::write(b"\nOK\n");
    host::exit(true)
}

/// One call: the command, its arguments, and the report's label for its
/// return value (none: not reported).
pub struct Step {
    pub name: &'static str,
    pub args: Option<&'static [u8]>,
    pub label: Option<&'static [u8]>,
}

impl Step {
    /// The arguments as validated JSON (ours: literal and valid).
    pub fn arguments(&self) -> Option<RawJson<'static>> {
        self.args.map(RawJson::assume_validated)
    }
}

const fn step(name: &'static str, args: Option<&'static [u8]>, label: bool) -> Step {
    Step {
        name,
        args,
        label: if label { Some(name.as_bytes()) } else { None },
    }
}

/// Up to the job's start.
pub const BEFORE_JOB: [Step; 3] = [
    step("query-version", None, true),
    step(
        "blockdev-add",
        Some(br#"{"driver":"null-co","node-name":"n0","size":1048576}"#),
        true,
    ),
    step(
        "blockdev-create",
        Some(br#"{"job-id":"j1","options":{"driver":"qcow2","file":"n0","size":1048576}}"#),
        false,
    ),
];

/// Asked while the job's events are awaited (they come while we ask).
pub const POLL: Step = step("query-jobs", None, false);

/// How many polls before giving up on `concluded`.
pub const MAX_POLLS: u32 = 1000;

/// After the job concluded.
pub const AFTER_JOB: [Step; 2] = [
    step("job-dismiss", Some(br#"{"id":"j1"}"#), true),
    step("blockdev-del", Some(br#"{"node-name":"n0"}"#), true),
];

/// One report line, `label: value`.
pub fn line(label: &[u8], value: &[u8]) {
    host::write(label);
    host::write(b": ");
    host::write(value);
    host::write(b"\n");
}

/// Reports the failed step and fails the run.
pub fn fail(step: &[u8]) -> ! {
    host::write(b"FAILED: ");
    host::write(step);
    host::write(b"\n");
    host::exit(false)
}

/// A step's outcome: its return value reported (when labelled); anything
/// but a return fails the run.
pub fn returned<E>(step: &Step, outcome: Result<Outcome<'_>, E>) {
    match outcome {
        Ok(Outcome::Return(value)) => {
            if let Some(label) = step.label {
                line(label, value.as_bytes());
            }
        }
        _ => fail(step.name.as_bytes()),
    }
}

/// What the job's events told: the first one and the statuses seen.
pub struct Seen {
    first: [u8; 160],
    first_len: usize,
    statuses: [u8; 128],
    statuses_len: usize,
    pub concluded: bool,
}

impl Default for Seen {
    fn default() -> Self {
        Seen {
            first: [0; 160],
            first_len: 0,
            statuses: [0; 128],
            statuses_len: 0,
            concluded: false,
        }
    }
}

/// Appends `parts` to `buf` at `*len`, as far as it fits.
fn append(buf: &mut [u8], len: &mut usize, parts: &[&[u8]]) {
    for part in parts {
        for &b in *part {
            if let Some(slot) = buf.get_mut(*len) {
                *slot = b;
                *len += 1;
            }
        }
    }
}

impl Seen {
    /// Every event the driver passes on while a call runs.
    pub fn on_event(&mut self, ev: &ClientEvent<'_>) {
        let ClientEvent::Event(ev) = ev else { return };
        if !ev.name.eq_str("JOB_STATUS_CHANGE") {
            return;
        }
        let data = ev.data.map_or(&b""[..], |d| d.as_bytes());
        if self.first_len == 0 {
            append(
                &mut self.first,
                &mut self.first_len,
                &[ev.name.raw(), b" ", data],
            );
        }
        // The status as sent (job statuses are plain words: no escapes).
        let status = ev
            .data
            .and_then(|d| d.get("status"))
            .and_then(|s| s.as_json_str())
            .map_or(&b"?"[..], |s| s.raw());
        let sep: &[u8] = if self.statuses_len == 0 { b"" } else { b" " };
        append(&mut self.statuses, &mut self.statuses_len, &[sep, status]);
        if status == b"concluded" {
            self.concluded = true;
        }
    }

    /// The `event` and `statuses` lines.
    pub fn report(&self) {
        line(
            b"event",
            self.first.get(..self.first_len).unwrap_or_default(),
        );
        line(
            b"statuses",
            self.statuses.get(..self.statuses_len).unwrap_or_default(),
        );
    }
}
