//! `cargo bench -p qmp-core --bench schema`: the cost of the schema views
//! per command, on the real qemu-storage-daemon 10.0 schema (117 KB, 513
//! entries), the real qemu-system-x86_64 10.0 schema (`-machine none`,
//! 236 KB, 1,172 entries) and the real qemu-system-x86_64 7.2 schema from
//! the recorded transcript (207 KB, 1,051 entries).
//!
//! Baseline in the same run: what a heap-using client does with the same
//! reply — serde_json parses it into a `Value` and maps names to entries
//! in a `HashMap` (built once), then looks commands up there.
//!
//! Cases: building the index (once per connection), one command lookup by
//! scan and by index, a type resolution by index, `check` of
//! `blockdev-add` arguments (a union with a nested member: about ten type
//! resolutions) by scan and by index, and a libvirt path query.
//!
//! Plain harness: each case runs for about half a second and the best of
//! five rounds is reported, per operation.

use qmp_core::scan::{validate, Frame, Framer, FramerConfig};
use qmp_core::schema::{Lookup, Schema};
use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

const QSD: &[u8] = include_bytes!("../tests/data/qsd-10.0-schema.s2c");
const SYSTEM: &[u8] = include_bytes!("../tests/data/qemu-system-7.2.s2c");
const X86: &[u8] = include_bytes!("../tests/data/qemu-x86-10.0-schema.s2c");

/// The `query-qmp-schema` reply of the qemu-system transcript.
fn system_reply(buf: &mut Vec<u8>) -> &[u8] {
    let mut framer = Framer::with_config(&mut buf[..], FramerConfig::new());
    let mut rest = SYSTEM;
    let mut found = None;
    while !rest.is_empty() {
        let fed = framer.feed(rest);
        rest = &rest[fed.consumed..];
        if let Some(Frame::Message(m)) = fed.frame {
            let s = Schema::from_reply(m.raw());
            if s.is_ok_and(|s| s.len() > 1000) {
                found = Some(m.as_bytes().to_vec());
                break;
            }
        }
    }
    *buf = found.expect("the transcript has a query-qmp-schema reply");
    &buf[..]
}

fn bench(name: &str, mut f: impl FnMut()) {
    let mut best = f64::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < Duration::from_millis(100) {
            for _ in 0..16 {
                f();
            }
            n += 16;
        }
        best = best.min(start.elapsed().as_secs_f64() / n as f64);
    }
    let (v, unit) = if best < 1e-6 {
        (best * 1e9, "ns")
    } else {
        (best * 1e6, "us")
    };
    println!("{name:<52} {v:>9.1} {unit}");
}

fn run(label: &str, reply: &[u8], command: &str, args: &[u8], type_name: &str, query: &str) {
    let raw = validate(reply, Default::default()).unwrap();
    let schema = Schema::from_reply(raw).unwrap();
    let args = validate(args, Default::default()).unwrap();
    println!("{label}: {} bytes, {} entries", reply.len(), schema.len());
    let mut storage = vec![0u32; schema.len()];
    bench("  Schema::from_reply (validate entries)", || {
        black_box(Schema::from_reply(black_box(raw)).unwrap());
    });
    bench("  Schema::index (sort offsets by name)", || {
        black_box(schema.index(&mut storage).unwrap());
    });
    let index = schema.index(&mut storage).unwrap();
    bench(&format!("  command lookup by scan ({command})"), || {
        black_box(schema.command(black_box(command)).unwrap());
    });
    bench(&format!("  command lookup by index ({command})"), || {
        black_box(index.command(black_box(command)).unwrap());
    });
    bench(&format!("  type lookup by index ({type_name})"), || {
        black_box(index.get(black_box(type_name)).unwrap());
    });
    assert!(index.check(command, Some(args)).is_ok());
    bench(&format!("  check {command} by scan"), || {
        black_box(schema.check(black_box(command), Some(args))).unwrap();
    });
    bench(&format!("  check {command} by index"), || {
        black_box(index.check(black_box(command), Some(args))).unwrap();
    });
    let small = validate(br#"{"node-name": "disk0"}"#, Default::default()).unwrap();
    bench("  check blockdev-del by index (one member)", || {
        black_box(index.check(black_box("blockdev-del"), Some(small))).unwrap();
    });
    bench(&format!("  query {query} by index"), || {
        black_box(index.exists(black_box(query)));
    });

    bench("  baseline: serde_json::from_slice::<Value>", || {
        black_box(serde_json::from_slice::<serde_json::Value>(black_box(reply)).unwrap());
    });
    let value: serde_json::Value = serde_json::from_slice(reply).unwrap();
    let by_name = |v: &serde_json::Value| {
        v["return"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["name"].as_str().unwrap().to_owned(), e.clone()))
            .collect::<HashMap<String, serde_json::Value>>()
    };
    bench("  baseline: HashMap<String, Value> by name (build)", || {
        black_box(by_name(black_box(&value)));
    });
    let map = by_name(&value);
    bench(
        &format!("  baseline: command lookup in the HashMap ({command})"),
        || {
            black_box(map.get(black_box(command)).unwrap());
        },
    );
}

fn main() {
    let args = br#"{"driver": "qcow2", "node-name": "disk0", "cache": {"direct": true},
        "file": {"driver": "file", "filename": "/tmp/disk.qcow2", "aio": "threads"}}"#;
    run(
        "qemu-storage-daemon 10.0",
        QSD,
        "blockdev-add",
        args,
        "str",
        "blockdev-add/arg-type/+file/aio/^threads",
    );
    run(
        "qemu-system-x86_64 10.0",
        X86,
        "blockdev-add",
        args,
        "str",
        "blockdev-add/arg-type/+file/aio/^threads",
    );
    let mut buf = vec![0u8; 1 << 20];
    let system = system_reply(&mut buf).to_vec();
    run(
        "qemu-system-x86_64 7.2",
        &system,
        "blockdev-add",
        args,
        "str",
        "blockdev-add/arg-type/+file/aio/^threads",
    );
}
