//! Link-time proof that the panic-free entry points of `qmp-core` cannot
//! panic: the panic handler calls a function that is declared but defined
//! nowhere, so if any panic path survives optimisation the link fails with
//! `undefined symbol: qmp_core_panic_path_survived_optimisation`.
//!
//! Every input (bytes, lengths, buffer sizes, settings) goes through
//! `core::hint::black_box`, so the optimiser cannot prove anything about it.
//! Build: `cargo build --release --target thumbv7em-none-eabihf`.
//!
//! Not proven (see README.md): re-serialising a `RawJson` the QEMU way
//! (`write_value_qemu`, `RawJson` as a `WriteJson` value), because numbers
//! other than 64-bit integers go through core's float parser and
//! formatter, which keep bounds checks the optimiser cannot remove.
//! `--features floats` adds them, and the link then fails.
#![no_std]
#![no_main]

use core::hint::black_box;
use core::panic::PanicInfo;

#[cfg(feature = "floats")]
use qmp_core::encode::write_value_qemu;
use qmp_core::encode::{
    write_command, write_error, write_event, write_greeting, write_return, Style, Verbatim,
    WriteJson,
};
use qmp_core::client::{Client, ClientConfig, ExecuteOptions, Negotiation};
use qmp_core::drive::blocking::BlockingDriver;
use qmp_core::message::{Exec, Inbound, RequestError};
use qmp_core::pump::Pump;
use qmp_core::scan::{self, Dialect, Frame, Framer, FramerConfig};
use qmp_core::{Instant, JsonStr, RawJson};

extern "C" {
    fn qmp_core_panic_path_survived_optimisation() -> !;
}

#[panic_handler]
fn panic(_: &PanicInfo<'_>) -> ! {
    // SAFETY: never defined; linking fails if this call is reachable.
    unsafe { qmp_core_panic_path_survived_optimisation() }
}

static mut INPUT: [u8; 512] = [0; 512];
static mut BUF: [u8; 512] = [0; 512];
static mut OUT: [u8; 512] = [0; 512];
static mut SCRATCH: [u8; 64] = [0; 64];
static mut CLIENT_BUF: [u8; 512] = [0; 512];
static mut RX: [u8; 64] = [0; 64];
static mut TX: [u8; 128] = [0; 128];

/// Entry point (the default entry symbol of `rust-lld`).
#[no_mangle]
pub extern "C" fn _start() -> ! {
    // SAFETY: single-threaded, and each static is borrowed once.
    let (input, buf, out, scratch, cbuf, rx, tx) = unsafe {
        (
            &*core::ptr::addr_of!(INPUT),
            &mut *core::ptr::addr_of_mut!(BUF),
            &mut *core::ptr::addr_of_mut!(OUT),
            &mut *core::ptr::addr_of_mut!(SCRATCH),
            &mut *core::ptr::addr_of_mut!(CLIENT_BUF),
            &mut *core::ptr::addr_of_mut!(RX),
            &mut *core::ptr::addr_of_mut!(TX),
        )
    };
    loop {
        // Unknown lengths and contents for the optimiser.
        let input: &[u8] = black_box(input);
        let input = input.get(..black_box(input.len())).unwrap_or(&[]);
        let buf: &mut [u8] = black_box(buf);
        let out: &mut [u8] = black_box(out);
        let scratch: &mut [u8] = black_box(scratch);
        let sum = qmp_probe(input, buf, out, scratch, black_box(0));
        black_box(sum);
        let cbuf: &mut [u8] = black_box(&mut *cbuf);
        let rx: &mut [u8] = black_box(&mut *rx);
        let tx: &mut [u8] = black_box(&mut *tx);
        black_box(pump_probe(input, cbuf, rx, tx, black_box(0)));
    }
}

fn style(n: u32) -> Style {
    match n & 3 {
        0 => Style::QMP,
        1 => Style::QMP_PRETTY,
        2 => Style::QGA,
        _ => Style::CLIENT,
    }
}

fn acc(sum: &mut usize, r: Result<usize, impl Sized>) {
    *sum = sum.wrapping_add(r.unwrap_or(1));
}

/// Drives every proven entry point over `input`.
#[no_mangle]
#[inline(never)]
pub fn qmp_probe(
    input: &[u8],
    buf: &mut [u8],
    out: &mut [u8],
    scratch: &mut [u8],
    knobs: u32,
) -> usize {
    let dialect = if knobs & 1 == 0 {
        Dialect::Qemu
    } else {
        Dialect::Strict
    };
    let cfg = FramerConfig::new()
        .with_dialect(dialect)
        .with_max_depth((knobs >> 8) as u16);
    let st = style(knobs >> 1);
    let oob = knobs & 8 != 0;
    let mut sum = 0usize;
    // The canary: proves that a reachable panic does fail the link.
    #[cfg(feature = "canary")]
    if knobs == 0xDEAD {
        panic!("canary");
    }

    // The stand-alone validator, and the writers over its value.
    if let Ok(raw) = scan::validate(input, cfg) {
        sum = sum.wrapping_add(value_probe(raw, scratch));
        #[cfg(feature = "floats")]
        acc(&mut sum, write_value_qemu(out, st, raw));
        let verbatim = Verbatim(raw);
        acc(&mut sum, write_return(out, st, &verbatim, Some(&verbatim)));
        acc(
            &mut sum,
            write_event(out, st, "STOP", Some(&verbatim), -1, -1),
        );
        acc(
            &mut sum,
            write_command(
                out,
                st,
                oob,
                "qmp_capabilities",
                Some(&verbatim),
                Some(&7i64),
            ),
        );
        #[cfg(feature = "floats")]
        acc(&mut sum, write_return(out, st, &raw, Some(&raw)));
    }
    acc(
        &mut sum,
        write_greeting(out, st, 10, 0, 2, "Debian", &["oob"]),
    );

    // The framer, the classifiers and the error writer over every frame.
    let mut framer = Framer::with_config(buf, cfg);
    let mut rest = input;
    while !rest.is_empty() {
        let fed = framer.feed(rest);
        rest = rest.get(fed.consumed..).unwrap_or(&[]);
        match fed.frame {
            Some(Frame::Message(msg)) => {
                for m in msg.members() {
                    sum = sum.wrapping_add(usize::from(m.key.eq_str("execute")));
                    sum = sum.wrapping_add(str_probe(m.key, scratch));
                    sum = sum.wrapping_add(value_probe(m.value, scratch));
                }
                match msg.classify() {
                    Inbound::Greeting(g) => {
                        sum = sum.wrapping_add(usize::from(g.offers("oob")));
                        sum = sum.wrapping_add(g.version.0 as usize);
                    }
                    Inbound::Return { value, id } => {
                        let id = id.map(Verbatim);
                        acc(
                            &mut sum,
                            write_return(
                                out,
                                st,
                                &Verbatim(value),
                                id.as_ref().map(|i| i as &dyn WriteJson),
                            ),
                        );
                    }
                    Inbound::Error { desc, .. } => sum = sum.wrapping_add(str_probe(desc, scratch)),
                    Inbound::Event(e) => {
                        let t = e.timestamp.map_or(0, |t| t.seconds);
                        sum = sum.wrapping_add(t as usize);
                    }
                    _ => {}
                }
                match msg.request(oob) {
                    Ok(req) => {
                        sum = sum.wrapping_add(usize::from(req.exec == Exec::ExecOob));
                        sum = sum.wrapping_add(str_probe(req.name, scratch));
                    }
                    Err(bad) => {
                        let (a, k, b) = bad.error.desc_parts();
                        let key = k.map_or(&[][..], |k| k.raw());
                        let id = bad.id.map(Verbatim);
                        acc(
                            &mut sum,
                            write_error(
                                out,
                                st,
                                id.as_ref().map(|i| i as &dyn WriteJson),
                                b"GenericError",
                                &[a.as_bytes(), key, b.as_bytes()],
                            ),
                        );
                        if let RequestError::Unexpected(k) = bad.error {
                            sum = sum.wrapping_add(str_probe(k, scratch));
                        }
                    }
                }
            }
            Some(Frame::Error(e)) => {
                acc(
                    &mut sum,
                    write_error(out, st, None, b"GenericError", &e.desc_pieces()),
                );
            }
            _ => {}
        }
        // What a rejected message looked like (valid until the next feed).
        if let Some(r) = framer.rejected() {
            sum = sum.wrapping_add(usize::from(r.first_key.is_some()));
            if let Some(id) = r.id {
                sum = sum.wrapping_add(value_probe(id, scratch));
            }
        }
    }
    sum
}

/// An in-memory transport: reads come from `input`, writes are counted.
struct Wire<'i> {
    input: &'i [u8],
    chunk: usize,
    written: usize,
}

impl embedded_io::ErrorType for Wire<'_> {
    type Error = core::convert::Infallible;
}

impl embedded_io::Read for Wire<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let n = buf.len().min(self.chunk.max(1)).min(self.input.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), self.input.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.input = self.input.get(n..).unwrap_or(&[]);
        Ok(n)
    }
}

impl embedded_io::ReadReady for Wire<'_> {
    fn read_ready(&mut self) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

impl embedded_io::Write for Wire<'_> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        let n = buf.len().min(self.chunk.max(1));
        self.written = self.written.wrapping_add(n);
        Ok(n)
    }
    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// The pump and the blocking client driver: a client session fed from
/// `input` through the driver's loop (the pump's step, staging, reads and
/// writes), with requests written into the pump's transmit buffer.
#[no_mangle]
#[inline(never)]
pub fn pump_probe(input: &[u8], buf: &mut [u8], rx: &mut [u8], tx: &mut [u8], knobs: u32) -> usize {
    let negotiation = if knobs & 1 == 0 {
        Negotiation::Auto
    } else {
        Negotiation::Manual
    };
    let cfg = ClientConfig::new()
        .with_negotiation(negotiation)
        .with_oob(knobs & 2 != 0)
        .with_max_in_band((knobs >> 2) as usize & 15);
    let mut client: Client<&mut [u8], 4> = Client::with_config(buf, cfg);
    let mut wire = Wire {
        input,
        chunk: (knobs >> 8) as usize,
        written: 0,
    };
    let mut driver = BlockingDriver::new(Pump::new(rx, tx));
    let mut clock = 0u64;
    let mut now = || {
        clock = clock.wrapping_add(black_box(7));
        Instant::from_millis(clock)
    };
    let mut sum = 0usize;
    if driver.negotiate(&mut client, &mut wire, &mut now, |_| {}).is_ok() {
        sum = sum.wrapping_add(1);
    }
    let args = scan::validate(input, FramerConfig::new()).ok();
    let opts = ExecuteOptions::new()
        .timeout_ms(u64::from(knobs >> 16))
        .oob(knobs & 4 != 0);
    if let Ok(t) = driver.execute_raw(&mut client, &mut wire, now(), "query-status", args, opts) {
        if let Ok(o) = driver.run_until(&mut client, &mut wire, t, &mut now, |_| {}) {
            sum = sum.wrapping_add(usize::from(o.is_return()));
        }
    }
    sum.wrapping_add(wire.written)
}

fn value_probe(v: RawJson<'_>, scratch: &mut [u8]) -> usize {
    let mut sum = 0usize;
    sum = sum.wrapping_add(v.as_i64().unwrap_or(0) as usize);
    sum = sum.wrapping_add(v.as_u64().unwrap_or(0) as usize);
    if let Some(x) = v.get("id") {
        sum = sum.wrapping_add(x.as_bytes().len());
    }
    for e in v.elements() {
        sum = sum.wrapping_add(e.as_bytes().len());
        if let Some(s) = e.as_json_str() {
            sum = sum.wrapping_add(str_probe(s, scratch));
        }
    }
    for (k, x) in v.members() {
        sum = sum.wrapping_add(str_probe(k, scratch));
        sum = sum.wrapping_add(x.as_bytes().len());
    }
    sum
}

fn str_probe(s: JsonStr<'_>, scratch: &mut [u8]) -> usize {
    let mut sum = usize::from(s.eq_str("oob"));
    match s.unescape_into(scratch) {
        Ok(b) => sum = sum.wrapping_add(b.len()),
        Err(_) => sum = sum.wrapping_add(1),
    }
    sum
}
