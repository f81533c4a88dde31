//! The agent runner against hostile peers over real sockets, cases 2 and 4:
//!
//! * 2: a session that never reads while a million events are emitted. The
//!   runner once held every one of them (207 MB resident in `qmp agent`);
//!   now a session more than `ServerConfig::event_backlog` behind is closed
//!   and counted, and the agent stays small.
//! * 4: an unterminated 200 MB string: QEMU's lexer cuts the token at
//!   64 MiB, the message is answered `JSON token size limit exceeded`, and
//!   the next command is answered (QMP and the guest agent).
//!
//! (Case 3, connection floods, is `agent_flood.rs`: it needs the process's
//! descriptors to itself.)

mod common;

use common::{line, raw_client as connect};

use qmp_std::agent::{CommandDef, Ctx, Outcome, Request, Server, ServerConfig};
use qmp_std::{demo, Address, Json};
use std::io::{BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const QMP: &str = env!("CARGO_BIN_EXE_qmp");

/// What `qmp agent` may hold resident, at its peak, while a million events
/// are emitted to a session that does not read (and to one that does):
/// before the backlog bound it reached 207 MB (release build); with it,
/// about 6 MB (release) to 8 MB (debug).
const RSS_BOUND_KIB: u64 = 32 << 10;

/// A `qmp agent` child on a Unix socket; its stderr is collected. Killed
/// when dropped (a failing test leaves no agent behind).
struct Agent {
    child: Child,
    stderr: Option<thread::JoinHandle<String>>,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Agent {
    fn start(sock: &std::path::Path, qga: bool) -> Agent {
        let mut cmd = Command::new(QMP);
        cmd.arg("agent").arg("--unix").arg(sock);
        if qga {
            cmd.arg("--qga");
        }
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn qmp agent");
        let mut err = child.stderr.take().unwrap();
        let stderr = thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        let t0 = Instant::now();
        while UnixStream::connect(sock).is_err() {
            assert!(t0.elapsed() < Duration::from_secs(10), "agent not up");
            thread::sleep(Duration::from_millis(10));
        }
        Agent {
            child,
            stderr: Some(stderr),
        }
    }

    /// `VmHWM` (peak resident set) in KiB.
    fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM")
    }

    /// Kills the agent; what it wrote on stderr.
    fn finish(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stderr.take().unwrap().join().unwrap()
    }
}

/// Greeting and negotiation.
fn negotiate(s: &mut UnixStream, r: &mut BufReader<UnixStream>) {
    assert!(line(r).starts_with("{\"QMP\": "));
    s.write_all(br#"{"execute":"qmp_capabilities"}"#).unwrap();
    assert_eq!(line(r), "{\"return\": {}}\r\n");
}

#[test]
fn a_million_unread_events_close_the_session_and_keep_the_agent_small() {
    let dir = common::TempDir::new("backlog");
    let sock = dir.path("s");
    let agent = Agent::start(&sock, false);

    // A: negotiated, then never reads again.
    let (mut a, mut ar) = connect(&sock);
    negotiate(&mut a, &mut ar);
    // B: 500,000 stop/cont pairs (a STOP or RESUME each, to A and to B),
    // written by one thread while this one reads every line.
    let (mut b, mut br) = connect(&sock);
    negotiate(&mut b, &mut br);
    let pairs = 500_000;
    let mut w = b.try_clone().unwrap();
    let writer = thread::spawn(move || {
        let chunk = br#"{"execute":"stop"}{"execute":"cont"}"#.repeat(1000);
        for _ in 0..pairs / 1000 {
            w.write_all(&chunk).unwrap();
        }
        w.write_all(br#"{"execute":"query-status","id":"end"}"#)
            .unwrap();
    });
    let t0 = Instant::now();
    let (mut events, mut replies) = (0usize, 0usize);
    loop {
        let l = line(&mut br);
        assert!(
            !l.is_empty(),
            "B: EOF after {events} events, {replies} replies"
        );
        if l.contains("\"id\": \"end\"") {
            assert_eq!(
                l,
                "{\"return\": {\"status\": \"running\", \"running\": true}, \"id\": \"end\"}\r\n"
            );
            break;
        }
        if l.starts_with("{\"timestamp\"") {
            events += 1;
        } else {
            assert_eq!(l, "{\"return\": {}}\r\n");
            replies += 1;
        }
    }
    writer.join().unwrap();
    assert_eq!((events, replies), (2 * pairs, 2 * pairs));
    let peak = agent.peak_rss_kib();
    eprintln!(
        "{} events in {:?}; qmp agent peak RSS {peak} KiB (bound {RSS_BOUND_KIB} KiB)",
        2 * pairs,
        t0.elapsed()
    );
    assert!(peak < RSS_BOUND_KIB, "peak RSS {peak} KiB");

    // A was closed: it reads what the socket held (events, the last one
    // possibly cut), then end of stream.
    let mut held = Vec::new();
    ar.read_to_end(&mut held).unwrap();
    assert!(held.starts_with(b"{\"timestamp\""), "A got no events");
    assert!(held.len() < 8 << 20, "A got {} bytes", held.len());
    // B goes on.
    b.write_all(br#"{"execute":"query-name","id":1}"#).unwrap();
    assert_eq!(line(&mut br), "{\"return\": {}, \"id\": 1}\r\n");
    let stderr = agent.finish();
    assert!(
        stderr.contains(
            ": closed: more than 1048576 bytes of events waited for it (its peer does not read)"
        ),
        "{stderr}"
    );
}

/// The backlog in-process: the count, the events no longer handed to the
/// closed session, and the reading session untouched.
#[test]
fn a_session_past_its_backlog_is_closed_and_counted() {
    let cfg = ServerConfig::qmp((10, 0, 0), "", vec![CommandDef::new("query-name")])
        .event_backlog(256 << 10);
    let handler = Arc::new(|_: &mut Ctx<'_>, _: &Request<'_>| Outcome::ret(Json::empty_object()));
    let dir = common::TempDir::new("backlog-stats");
    let sock = dir.path("s");
    let server = Server::bind(&Address::unix(&sock), cfg, handler).unwrap();
    let events = server.events();
    let stop = server.stop_handle();
    let run = server.spawn();
    let (mut a, mut ar) = connect(&sock);
    negotiate(&mut a, &mut ar);
    let (mut b, mut br) = connect(&sock);
    negotiate(&mut b, &mut br);
    // B reads every event; the emitter waits for it after every 200 (a
    // reader that keeps up is never closed), while A never reads.
    let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let reader = {
        let seen = Arc::clone(&seen);
        thread::spawn(move || loop {
            let l = line(&mut br);
            if l.contains("\"id\": \"end\"") {
                return;
            }
            assert!(l.starts_with("{\"timestamp\""), "{l}");
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        })
    };
    let total = 200_000;
    let data = Json::parse(r#"{"device":"virtio-disk0","path":"/machine/peripheral"}"#).unwrap();
    let mut handed = 0;
    for i in 1..=total {
        handed += events.emit("DEVICE_DELETED", Some(data.clone()));
        if i % 200 == 0 {
            let t0 = Instant::now();
            while seen.load(std::sync::atomic::Ordering::SeqCst) < i {
                assert!(t0.elapsed() < Duration::from_secs(10), "B stalled at {i}");
                thread::yield_now();
            }
        }
    }
    let stats = events.stats();
    assert_eq!(stats.closed_behind, 1, "{stats:?}");
    assert_eq!((stats.admitted, stats.refused), (2, 0), "{stats:?}");
    // Every event reached B; A took them until it was over its backlog.
    assert!(handed > total && handed < 2 * total, "{handed}");
    let t0 = Instant::now();
    while events.connections() != 1 {
        assert!(t0.elapsed() < Duration::from_secs(10), "A not closed");
        thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(events.emit("X", None), 1);
    // B's marker: a reply after its events.
    b.write_all(br#"{"execute":"query-name","id":"end"}"#)
        .unwrap();
    reader.join().unwrap();
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), total + 1);
    let mut held = Vec::new();
    ar.read_to_end(&mut held).unwrap();
    stop.stop();
    run.join().unwrap().unwrap();
}

/// Case 4: `{"execute":"x","id":"` and 200 MB of string that never ends,
/// then a command: QEMU's answer (the size error once the token reaches
/// 64 MiB; the rest of the string, spaces, is whitespace to the reset
/// lexer), then the command's reply.
fn unterminated_huge_string(qga: bool) {
    let dir = common::TempDir::new("huge");
    let sock = dir.path("s");
    let server = demo::bind(&Address::unix(&sock), qga).unwrap();
    let stop = server.stop_handle();
    let run = server.spawn();
    let (mut s, mut r) = connect(&sock);
    let (next, reply, eol) = if qga {
        (
            &br#"{"execute":"guest-ping","id":"after"}"#[..],
            "{\"return\": {}, \"id\": \"after\"}\n".to_owned(),
            "\n",
        )
    } else {
        negotiate(&mut s, &mut r);
        (
            &br#"{"execute":"query-name","id":"after"}"#[..],
            "{\"return\": {}, \"id\": \"after\"}\r\n".to_owned(),
            "\r\n",
        )
    };
    let mut w = s.try_clone().unwrap();
    let writer = thread::spawn(move || {
        w.write_all(br#"{"execute":"x","id":""#).unwrap();
        let chunk = vec![b' '; 1 << 20];
        for _ in 0..200 {
            w.write_all(&chunk).unwrap();
        }
        w.write_all(next).unwrap();
    });
    let t0 = Instant::now();
    assert_eq!(
        line(&mut r),
        format!(
            "{{\"error\": {{\"class\": \"GenericError\", \"desc\": \"JSON token size limit exceeded\"}}}}{eol}"
        )
    );
    assert_eq!(line(&mut r), reply);
    writer.join().unwrap();
    eprintln!(
        "{}: 200 MB unterminated string answered in {:?}",
        if qga { "qga" } else { "qmp" },
        t0.elapsed()
    );
    stop.stop();
    run.join().unwrap().unwrap();
}

#[test]
fn qmp_unterminated_200_mb_string_gets_the_token_size_error() {
    unterminated_huge_string(false);
}

#[test]
fn qga_unterminated_200_mb_string_gets_the_token_size_error() {
    unterminated_huge_string(true);
}
