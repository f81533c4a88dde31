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
//! Framer settings are the ones each side uses: the client's (duplicate
//! keys not checked, `ClientConfig::new`) for the replies, the agent's
//! (`FramerConfig::new`, QEMU's rules) for the requests. A row shows the
//! replies with QEMU's duplicate-key check too, and three adversarial
//! requests for the agent show that check's worst cases: 100,000 keys in
//! one object (930 KB) in the agent's 1 MiB buffer and in a buffer it fills
//! exactly (no free room for the key stack), 20,000 keys sharing a 40-byte
//! prefix (comparisons read them all), and 1024 nested objects of two
//! members each.
//!
//! Plain harness (no criterion): each case runs for about a second and the
//! best of five rounds is reported, in MB/s of input.
//!
//! Instruction counts (timed runs on a shared machine are noisy):
//! `QMP_WIRE_CASE=TRANSCRIPT-IMPL QMP_WIRE_PASSES=N` runs one case N times,
//! untimed, and exits — TRANSCRIPT `s2c`, `c2s` or `qga`, IMPL `ours`,
//! `envelope` (serde_json's borrowed `RawValue` envelope) or `value`.
//! Under `valgrind --tool=callgrind`, the difference of two runs (say 100
//! and 1100 passes) over the difference of passes is the cost of one pass.

use qmp_core::message::Inbound;
use qmp_core::scan::{Frame, Framer, FramerConfig};
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

fn ours(data: &[u8], buf: &mut [u8], agent: bool, cfg: FramerConfig) -> usize {
    let mut framer = Framer::with_config(&mut *buf, cfg);
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
    if let Ok(case) = std::env::var("QMP_WIRE_CASE") {
        let passes: usize = std::env::var("QMP_WIRE_PASSES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        let client = qmp_core::client::ClientConfig::new().framer();
        let (data, agent, cfg) = match case.split('-').next() {
            Some("s2c") => (S2C, false, client),
            Some("c2s") => (C2S, true, FramerConfig::new()),
            Some("qga") => (qga, false, client),
            _ => panic!("QMP_WIRE_CASE: s2c, c2s or qga, then -ours, -envelope or -value"),
        };
        let mut n = 0;
        for _ in 0..passes {
            n += match case.split_once('-').map(|(_, i)| i) {
                Some("ours") => ours(black_box(data), &mut buf, agent, cfg),
                Some("envelope") => serde_envelope(black_box(data)),
                Some("value") => serde_value(black_box(data)),
                _ => panic!("QMP_WIRE_CASE: s2c, c2s or qga, then -ours, -envelope or -value"),
            };
        }
        println!("{case}: {passes} passes ({n})");
        return;
    }
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
    let client = qmp_core::client::ClientConfig::new().framer();
    let agent_cfg = FramerConfig::new();
    for (name, data, agent, cfg) in [
        ("qemu-system-7.2.s2c (214KB)", S2C, false, client),
        ("qemu-system-7.2.c2s", C2S, true, agent_cfg),
        ("qga-7.2.s2c", qga, false, client),
        ("s2c, duplicate keys checked", S2C, false, agent_cfg),
    ] {
        assert!(ours(data, &mut buf, agent, cfg) > 0);
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
        let a = measure(data.len(), || ours(data, &mut buf, agent, cfg));
        let b = measure(data.len(), || serde_value(data));
        let c = measure(data.len(), || serde_envelope(data));
        let q = measure(data.len(), || quote_scan(black_box(data)));
        println!(
            "{name:<28} {a:>10.0} {b:>14.0} {c:>18.0} {:>6.1}x {q:>12.0} {:>6.1}x",
            a / c,
            q / c
        );
    }
    adversarial();
}

/// `{"execute":"x","arguments":{…}}` with `n` distinct keys (each `prefix`
/// and a hex number).
fn wide(n: u32, prefix: &str) -> Vec<u8> {
    let mut v = b"{\"execute\":\"x\",\"arguments\":{".to_vec();
    for i in 0..n {
        if i > 0 {
            v.push(b',');
        }
        v.extend_from_slice(format!("\"{prefix}{i:x}\":0").as_bytes());
    }
    v.extend_from_slice(b"}}");
    v
}

fn adversarial() {
    let mut nested = Vec::new();
    for _ in 0..1024 {
        nested.extend_from_slice(b"{\"a\":0,\"b\":");
    }
    nested.push(b'0');
    nested.extend(std::iter::repeat_n(b'}', 1024));
    let long = "k".repeat(40);
    println!();
    println!("duplicate-key check, agent settings: one request, ms per request");
    for (name, data, cap) in [
        ("100,000 keys, 1 MiB buffer", wide(100_000, ""), 1 << 20),
        ("100,000 keys, buffer full", wide(100_000, ""), 0),
        ("20,000 40-byte keys, full", wide(20_000, &long), 0),
        ("1024 nested objects, full", nested, 0),
    ] {
        let mut buf = vec![0u8; if cap == 0 { data.len() } else { cap }];
        // One message, no error (the keys are distinct).
        let mut framer = Framer::new(&mut buf[..]);
        let fed = framer.feed(&data);
        assert_eq!(fed.consumed, data.len());
        assert!(matches!(fed.frame, Some(Frame::Message(_))));
        let mb = measure(data.len(), || {
            ours(&data, &mut buf, true, FramerConfig::new()) + 1
        });
        let ms = data.len() as f64 / mb / 1e3;
        println!(
            "{name:<30} {:>8} bytes {ms:>9.2} ms {mb:>8.0} MB/s",
            data.len()
        );
    }
}
