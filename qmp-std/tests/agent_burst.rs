//! A burst of small malformed messages in one write: every one is answered,
//! and the request after them too (hostile-peer case 1). The runner once
//! stopped after about 12,800 replies: the error replies filled the output
//! buffer, the queue stopped taking input, and after the output was flushed
//! nothing fed the input it still held.

use qmp_std::{demo, Address};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

fn temp_sock(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("qmp-burst-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("s")
}

/// Sends `prologue`, then `unit` × `count` and `tail` in one write (from a
/// second thread, so neither side waits for the other), and counts the
/// lines that come back until `last` arrives. Every line before it must be
/// `each`.
fn burst(
    qga: bool,
    prologue: &[u8],
    unit: &[u8],
    count: usize,
    tail: &[u8],
    each: &str,
    last: &str,
) {
    let sock = temp_sock(if qga { "qga" } else { "qmp" });
    let server = demo::bind(&Address::unix(&sock), qga).unwrap();
    let stop = server.stop_handle();
    let run = server.spawn();

    let s = UnixStream::connect(&sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut r = BufReader::with_capacity(1 << 16, s.try_clone().unwrap());
    let mut line = String::new();
    if !qga {
        r.read_line(&mut line).unwrap();
        assert!(line.starts_with("{\"QMP\": "), "{line}");
    }
    let mut w = s.try_clone().unwrap();
    w.write_all(prologue).unwrap();
    if !prologue.is_empty() {
        // The prologue is one request with one reply.
        line.clear();
        r.read_line(&mut line).unwrap();
        assert!(line.starts_with("{\"return\""), "{line}");
    }

    let mut payload = Vec::with_capacity(unit.len() * count + tail.len());
    for _ in 0..count {
        payload.extend_from_slice(unit);
    }
    payload.extend_from_slice(tail);
    let writer = thread::spawn(move || w.write_all(&payload));

    let started = Instant::now();
    let mut n = 0usize;
    loop {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) => panic!("EOF after {n} of {count} replies"),
            Ok(_) => {}
            Err(e) => panic!("no reply after {n} of {count} replies: {e}"),
        }
        if line == last {
            break;
        }
        assert_eq!(line, each, "reply {n}");
        n += 1;
    }
    assert_eq!(n, count, "replies before the last one");
    writer.join().unwrap().unwrap();
    eprintln!(
        "{} × {:?}: {count} replies and the request after them in {:?}",
        if qga { "qga" } else { "qmp" },
        String::from_utf8_lossy(unit),
        started.elapsed()
    );
    stop.stop();
    run.join().unwrap().unwrap();
}

const NEG: &[u8] = br#"{"execute":"qmp_capabilities"}"#;

#[test]
fn qmp_million_empty_objects_in_one_write() {
    burst(
        false,
        NEG,
        b"{}",
        1_000_000,
        br#"{"execute":"query-version","id":"after"}"#,
        "{\"error\": {\"class\": \"GenericError\", \"desc\": \"QMP input lacks member 'execute'\"}}\r\n",
        &format!(
            "{{\"return\": {}, \"id\": \"after\"}}\r\n",
            demo_version_json()
        ),
    );
}

#[test]
fn qmp_bursts_of_stray_bytes() {
    let last = format!(
        "{{\"return\": {}, \"id\": \"after\"}}\r\n",
        demo_version_json()
    );
    for (unit, desc) in [
        (&b"\xff"[..], "JSON parse error, stray '\\uFFFD'"),
        (&b"]"[..], "JSON parse error, expecting value"),
    ] {
        burst(
            false,
            NEG,
            unit,
            200_000,
            br#"{"execute":"query-version","id":"after"}"#,
            &format!("{{\"error\": {{\"class\": \"GenericError\", \"desc\": \"{desc}\"}}}}\r\n"),
            &last,
        );
    }
}

#[test]
fn qga_million_delimiters_in_one_write() {
    burst(
        true,
        b"",
        b"\xff",
        1_000_000,
        br#"{"execute":"guest-ping","id":"after"}"#,
        "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, stray '\\uFFFD'\"}}\n",
        "{\"return\": {}, \"id\": \"after\"}\n",
    );
}

/// The demo's `query-version` return value as it prints it.
fn demo_version_json() -> String {
    let (major, minor, micro) = demo::version();
    format!(
        "{{\"qemu\": {{\"micro\": {micro}, \"minor\": {minor}, \"major\": {major}}}, \"package\": \"{}\"}}",
        demo::package()
    )
}
