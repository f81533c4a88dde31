//! `cargo bench -p qmp-core --bench wire`: frame + scan + classify of the
//! recorded transcripts, side by side with serde_json in the same run.
//!
//! Baselines:
//! * `serde_json Value`: `StreamDeserializer<Value>`, one `Value` per message,
//!   then a key lookup to classify it (what most QMP clients do);
//! * `serde_json RawValue envelope`: a borrowed envelope struct whose members
//!   are `&RawValue`/`&str` (the fastest serde_json way to classify).
//!
//! Reference column (not a competitor): `quote scan` only locates every `"`
//! of the input, 8 bytes at a time with safe `u64` arithmetic (SWAR), and
//! validates nothing. Any validating framer has to find every string
//! boundary, so in safe code without SIMD (qmp-core is
//! `forbid(unsafe_code)`) this is a ceiling for frame + scan; its ratio to
//! the envelope shows how far any such design could get.
//!
//! Plain harness (no criterion): each case runs for about a second and the
//! best of five rounds is reported, in MB/s of input.

use qmp_core::message::Inbound;
use qmp_core::scan::{Frame, Framer};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::hint::black_box;
use std::time::{Duration, Instant};

const S2C: &[u8] = include_bytes!("../tests/data/qemu-system-7.2.s2c");
const C2S: &[u8] = include_bytes!("../tests/data/qemu-system-7.2.c2s");
const QGA_S2C: &[u8] = include_bytes!("../tests/data/qga-7.2.s2c");

#[derive(Deserialize)]
#[allow(dead_code)]
struct Envelope<'a> {
    #[serde(borrow, rename = "return")]
    ret: Option<&'a RawValue>,
    #[serde(borrow)]
    error: Option<&'a RawValue>,
    #[serde(borrow)]
    event: Option<&'a RawValue>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    #[serde(borrow)]
    timestamp: Option<&'a RawValue>,
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow, rename = "QMP")]
    qmp: Option<&'a RawValue>,
    #[serde(borrow)]
    execute: Option<&'a RawValue>,
    #[serde(borrow)]
    arguments: Option<&'a RawValue>,
}

fn ours(data: &[u8], buf: &mut [u8], agent: bool) -> usize {
    let mut framer = Framer::new(&mut *buf);
    let mut n = 0;
    let mut rest = data;
    while !rest.is_empty() {
        let fed = framer.feed(rest);
        rest = &rest[fed.consumed..];
        if let Some(Frame::Message(m)) = fed.frame {
            if agent {
                n += usize::from(m.request(true).is_ok());
            } else {
                n += match m.classify() {
                    Inbound::Return { .. } => 1,
                    Inbound::Event(_) => 2,
                    Inbound::Error { .. } => 3,
                    _ => 4,
                };
            }
        }
    }
    n
}

fn serde_value(data: &[u8]) -> usize {
    let mut n = 0;
    for v in serde_json::Deserializer::from_slice(data).into_iter::<serde_json::Value>() {
        let v = v.expect("valid");
        n += if v.get("return").is_some() {
            1
        } else if v.get("event").is_some() {
            2
        } else if v.get("error").is_some() {
            3
        } else {
            4
        };
    }
    n
}

fn serde_envelope(data: &[u8]) -> usize {
    let mut n = 0;
    for e in serde_json::Deserializer::from_slice(data).into_iter::<Envelope<'_>>() {
        let e = e.expect("valid");
        n += if e.ret.is_some() {
            1
        } else if e.event.is_some() {
            2
        } else if e.error.is_some() {
            3
        } else {
            4
        };
    }
    n
}

/// Visits the position of every `"` in `data` (SWAR, no validation).
fn quote_scan(data: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let mut acc = 0usize;
    let words = data.chunks_exact(8);
    let tail = words.remainder();
    for (i, w) in words.enumerate() {
        let x = u64::from_le_bytes(w.try_into().expect("8 bytes")) ^ (ONES * u64::from(b'"'));
        // High bit set exactly in the bytes that were `"` (no false
        // positives: the carry cannot cross bytes after masking to 7 bits).
        let mut m = !(((x & LOW7) + LOW7) | x | LOW7);
        while m != 0 {
            acc = acc.wrapping_add(i * 8 + (m.trailing_zeros() / 8) as usize);
            m &= m - 1;
        }
    }
    let base = data.len() - tail.len();
    for (j, &b) in tail.iter().enumerate() {
        if b == b'"' {
            acc = acc.wrapping_add(base + j);
        }
    }
    acc
}

fn measure(bytes: usize, mut f: impl FnMut() -> usize) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        let mut iters = 0u64;
        while start.elapsed() < Duration::from_millis(200) {
            black_box(f());
            iters += 1;
        }
        let per = start.elapsed().as_secs_f64() / iters as f64;
        best = best.min(per);
    }
    bytes as f64 / best / 1e6
}

fn main() {
    // `cargo test --benches` runs benches with `--bench`-less args: be quick.
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let mut buf = vec![0u8; 1 << 20];
    // The QGA recording starts with a raw 0xFF delimiter, which serde_json
    // cannot parse: compare on the JSON after it.
    let qga = &QGA_S2C[1..];
    println!("frame + scan + classify, MB/s of input (best of 5 rounds)");
    println!(
        "{:<28} {:>10} {:>14} {:>18} {:>7} {:>12} {:>7}",
        "transcript",
        "qmp-core",
        "serde Value",
        "serde RawValue env",
        "ratio",
        "quote scan",
        "ratio"
    );
    for (name, data, agent) in [
        ("qemu-system-7.2.s2c (214KB)", S2C, false),
        ("qemu-system-7.2.c2s", C2S, true),
        ("qga-7.2.s2c", qga, false),
    ] {
        assert!(ours(data, &mut buf, agent) > 0);
        let naive = data
            .iter()
            .enumerate()
            .filter(|&(_, &b)| b == b'"')
            .fold(0usize, |acc, (i, _)| acc.wrapping_add(i));
        assert_eq!(
            quote_scan(data),
            naive,
            "the reference scan finds every quote"
        );
        let a = measure(data.len(), || ours(data, &mut buf, agent));
        let b = measure(data.len(), || serde_value(data));
        let c = measure(data.len(), || serde_envelope(data));
        let q = measure(data.len(), || quote_scan(black_box(data)));
        println!(
            "{name:<28} {a:>10.0} {b:>14.0} {c:>18.0} {:>6.1}x {q:>12.0} {:>6.1}x",
            a / c,
            q / c
        );
    }
}
