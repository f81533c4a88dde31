//! The agent runner against a connection flood (hostile-peer case 3), over
//! real Unix sockets to a `qmp agent` child: every connection cost a
//! thread and three descriptors, and at about 6,665 the agent ran out of
//! descriptors and new clients got a bare end of stream. Now at most
//! `ServerConfig::max_sessions` (64 by default) are served; a connection
//! beyond gets one error line and is closed, and admitted sessions go on.
//!
//! This file has one test: it uses nearly all of the process's
//! descriptors.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const QMP: &str = env!("CARGO_BIN_EXE_qmp");
/// `qmp_std::agent::DEFAULT_MAX_SESSIONS`, as `qmp agent` uses it.
const MAX: usize = qmp_std::agent::DEFAULT_MAX_SESSIONS;
/// Connections the test opens at most (it opens fewer when its descriptor
/// limit is lower).
const FLOOD_MAX: usize = 20_000;
/// How fast an admitted session must answer while the flood is held open.
const ANSWER_WITHIN: Duration = Duration::from_millis(100);

fn refusal(qga: bool) -> String {
    format!(
        "{{\"error\": {{\"class\": \"GenericError\", \"desc\": \"too many sessions (at most {MAX}); try again later\"}}}}{}",
        if qga { "\n" } else { "\r\n" }
    )
}

/// Raises the soft descriptor limit to the hard one; returns it.
fn raise_fd_limit() -> usize {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut lim = getrlimit(Resource::Nofile);
    if lim.maximum.is_some() && lim.current != lim.maximum {
        lim.current = lim.maximum;
        let _ = setrlimit(Resource::Nofile, lim);
    }
    getrlimit(Resource::Nofile)
        .current
        .map_or(FLOOD_MAX as u64, |c| c.min(FLOOD_MAX as u64 + 300)) as usize
}

/// A `qmp agent` child, killed when dropped (a failing test leaves no
/// agent behind).
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(sock: &std::path::Path, qga: bool) -> Agent {
    let mut cmd = Command::new(QMP);
    cmd.arg("agent").arg("--unix").arg(sock);
    if qga {
        cmd.arg("--qga");
    }
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn qmp agent");
    let t0 = Instant::now();
    while !sock.exists() {
        assert!(t0.elapsed() < Duration::from_secs(10), "agent not up");
        thread::sleep(Duration::from_millis(10));
    }
    Agent(child)
}

fn connect(sock: &std::path::Path) -> UnixStream {
    let s = UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// One request on an admitted session, timed.
fn ask(r: &mut BufReader<UnixStream>, qga: bool, id: usize) -> Duration {
    let (req, want) = if qga {
        (
            format!(r#"{{"execute":"guest-ping","id":{id}}}"#),
            format!("{{\"return\": {{}}, \"id\": {id}}}\n"),
        )
    } else {
        (
            format!(r#"{{"execute":"query-status","id":{id}}}"#),
            format!(
                "{{\"return\": {{\"status\": \"running\", \"running\": true}}, \"id\": {id}}}\r\n"
            ),
        )
    };
    let t0 = Instant::now();
    r.get_mut().write_all(req.as_bytes()).unwrap();
    let mut l = String::new();
    r.read_line(&mut l).unwrap();
    let took = t0.elapsed();
    assert_eq!(l, want);
    took
}

/// Reads everything a connection gets until end of stream (the read
/// timeout turns a hang into a failure).
fn read_all(s: &mut UnixStream) -> String {
    let mut got = Vec::new();
    match s.read_to_end(&mut got) {
        Ok(_) => {}
        Err(e) => panic!(
            "no end of stream ({e}) after {:?}",
            String::from_utf8_lossy(&got)
        ),
    }
    String::from_utf8(got).unwrap()
}

fn flood(qga: bool, limit: usize) {
    let dir = common::TempDir::new(if qga { "flood-qga" } else { "flood" });
    let sock = dir.path("s");
    let _agent = start(&sock, qga);

    // The session that must keep answering.
    let mut first = BufReader::new(connect(&sock));
    if !qga {
        let mut l = String::new();
        first.read_line(&mut l).unwrap();
        assert!(l.starts_with("{\"QMP\": "), "{l}");
        first
            .get_mut()
            .write_all(br#"{"execute":"qmp_capabilities"}"#)
            .unwrap();
        l.clear();
        first.read_line(&mut l).unwrap();
        assert_eq!(l, "{\"return\": {}}\r\n");
    }
    ask(&mut first, qga, 0);

    // The flood: idle connections, as many as the descriptors allow (some
    // are kept for the rest of the test and the harness).
    let target = limit.saturating_sub(200).min(FLOOD_MAX);
    let t0 = Instant::now();
    let mut idle = Vec::with_capacity(target);
    for _ in 0..target {
        match UnixStream::connect(&sock) {
            Ok(s) => idle.push(s),
            Err(e) => panic!("connect {} failed: {e}", idle.len()),
        }
    }
    eprintln!(
        "{}: {} idle connections opened in {:?}",
        if qga { "qga" } else { "qmp" },
        idle.len(),
        t0.elapsed()
    );
    assert!(idle.len() >= 5_000, "only {} connections", idle.len());

    // The admitted session answers at once, again and again.
    let worst = (1..=20).map(|i| ask(&mut first, qga, i)).max().unwrap();
    eprintln!("admitted session: slowest of 20 answers {worst:?}");
    assert!(worst < ANSWER_WITHIN, "{worst:?}");

    // The last of the flood and a fresh one are refused: the line, then end
    // of stream (never a hang); the first MAX - 1 of the flood were
    // admitted (QMP: greeted).
    let mut last = idle.pop().unwrap();
    last.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(read_all(&mut last), refusal(qga));
    let mut fresh = connect(&sock);
    assert_eq!(read_all(&mut fresh), refusal(qga));
    if !qga {
        let s = &mut idle[0];
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut g = [0u8; 8];
        s.read_exact(&mut g).unwrap();
        assert_eq!(&g, b"{\"QMP\": ");
    }

    // Once admitted sessions end, a fresh connection is admitted.
    drop(idle.drain(..10));
    let t0 = Instant::now();
    let mut admitted = loop {
        let mut s = connect(&sock);
        if qga {
            s.write_all(br#"{"execute":"guest-ping","id":"new"}"#)
                .unwrap();
        }
        let mut r = BufReader::new(s);
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        if l != refusal(qga) {
            let want = if qga {
                "{\"return\": {}, \"id\": \"new\"}\n"
            } else {
                "{\"QMP\": "
            };
            assert!(l.starts_with(want), "{l}");
            break r;
        }
        assert!(t0.elapsed() < Duration::from_secs(5), "never admitted");
        thread::sleep(Duration::from_millis(10));
    };
    if !qga {
        admitted
            .get_mut()
            .write_all(br#"{"execute":"qmp_capabilities"}"#)
            .unwrap();
        let mut l = String::new();
        admitted.read_line(&mut l).unwrap();
        assert_eq!(l, "{\"return\": {}}\r\n");
    }
    ask(&mut admitted, qga, 99);
    ask(&mut first, qga, 100);
    drop(idle);
}

#[test]
fn a_connection_flood_is_refused_and_admitted_sessions_keep_answering() {
    let limit = raise_fd_limit();
    flood(false, limit);
    flood(true, limit);
}
