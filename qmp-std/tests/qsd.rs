//! The blocking client and the `qmp` CLI against a real QEMU
//! (`qemu-storage-daemon`), plus client tests against fake and demo peers.
//!
//! Tests that need qemu-storage-daemon (or python `qemu.qmp`) print a
//! `SKIP:` line and pass when it is missing, unless `QMP_REQUIRE_PEERS=1`.

use qmp_std::client::{Call, Client, Config, Error, FdTransport};
use qmp_std::Address;
use serde::Deserialize;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const QMP: &str = env!("CARGO_BIN_EXE_qmp");

mod common;

use common::{qsd, skip, TempDir};

fn connect(path: &Path) -> Client {
    Client::connect_unix(path, Config::new().timeout(Some(Duration::from_secs(10))))
        .expect("connect to qemu-storage-daemon")
}

#[derive(Deserialize, Debug, PartialEq)]
struct QemuVersion {
    major: u64,
    minor: u64,
    micro: u64,
}

#[derive(Deserialize, Debug)]
struct Version {
    qemu: QemuVersion,
    package: String,
}

#[derive(Deserialize, Debug)]
struct JobStatus {
    id: String,
    status: String,
}

// ---------------------------------------------------------------------------
// Library against qemu-storage-daemon

#[test]
fn qsd_session() {
    let Some(q) = qsd() else { return };
    let mut c = connect(&q.sock);

    // Negotiation: oob offered and enabled; QEMU 10.
    let g = c.greeting().clone();
    assert!(g.capabilities.iter().any(|c| c == "oob"), "{g:?}");
    assert!(c.oob_enabled());
    assert_eq!(g.version.0, 10, "{g:?}");

    // query-version, typed.
    let v: Version = c.execute("query-version", &()).unwrap();
    assert_eq!(
        (v.qemu.major, v.qemu.minor, v.qemu.micro),
        g.version,
        "{v:?}"
    );
    assert_eq!(v.package, g.package);

    // query-qmp-schema: ~117 KB in one reply, default buffer.
    let raw = c.execute_raw("query-qmp-schema", None).unwrap();
    assert!(raw.len() > 100_000, "{} bytes", raw.len());
    let schema: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert!(schema.as_array().is_some_and(|a| !a.is_empty()));

    // Pipelined: several requests in flight, replies collected in any order.
    let pending: Vec<_> = (0..20)
        .map(|_| c.send(Call::new("query-version")).unwrap())
        .collect();
    for p in pending.into_iter().rev() {
        let v: Version = c.wait_typed(p).unwrap();
        assert_eq!(v.qemu.major, 10);
    }

    // A job and its events, through a subscription taken before the command.
    c.execute_raw(
        "blockdev-add",
        Some(r#"{"driver":"null-co","node-name":"n0","size":1048576}"#),
    )
    .unwrap();
    let jobs = c.subscribe(&["JOB_STATUS_CHANGE"]);
    // null-co has no blockdev-create of its own; format it as qcow2 (the job
    // runs, then fails to read back the header null-co discarded — either
    // way it goes through its states to `concluded`).
    c.execute_raw(
        "blockdev-create",
        Some(r#"{"job-id":"j1","options":{"driver":"qcow2","file":"n0","size":1048576}}"#),
    )
    .unwrap();
    let mut statuses = Vec::new();
    loop {
        let e = c
            .next_event_for(&jobs, Some(Duration::from_secs(10)))
            .unwrap()
            .expect("JOB_STATUS_CHANGE within 10 s");
        assert_eq!(e.name, "JOB_STATUS_CHANGE");
        let s: JobStatus = e.data().unwrap();
        assert_eq!(s.id, "j1");
        statuses.push(s.status.clone());
        if s.status == "concluded" {
            break;
        }
    }
    assert_eq!(
        statuses.first().map(String::as_str),
        Some("created"),
        "{statuses:?}"
    );
    assert_eq!(c.dropped_events_for(&jobs), 0);
    c.execute_raw("job-dismiss", Some(r#"{"id":"j1"}"#))
        .unwrap();
    let e = c
        .wait_event_for(
            &jobs,
            |e| e.data_json().is_some_and(|d| d.contains("null")),
            Some(Duration::from_secs(5)),
        )
        .unwrap()
        .expect("status null after job-dismiss");
    assert_eq!(e.data::<JobStatus>().unwrap().status, "null");
    // The general queue saw them too.
    assert!(c.next_event(Some(Duration::ZERO)).unwrap().is_some());

    // An unknown command: a QMP error value, the session goes on.
    match c.execute_raw("nope", None) {
        Err(Error::Qmp(e)) => {
            assert_eq!(e.class, "CommandNotFound");
            assert_eq!(e.desc, "The command nope has not been found");
        }
        other => panic!("{other:?}"),
    }
    // Bad arguments never reach the wire.
    assert!(matches!(
        c.execute_raw("query-version", Some("[1]")),
        Err(Error::Arguments(_))
    ));

    // fd passing. qemu-storage-daemon 10 has no `getfd`/`add-fd` (only the
    // system emulator does), so what a real QEMU shows here: a descriptor
    // rides along with a command (QEMU takes it off the socket), the
    // command runs, and `getfd` is a clean QMP error. The end-to-end check
    // of the descriptor itself is `fd_passing_reaches_the_peer` below.
    let (r, _w) = rustix::pipe::pipe().unwrap();
    let v = c.call(Call::new("query-version").fd(r.as_fd())).unwrap();
    assert!(v.contains("\"major\": 10"), "{v}");
    match c.call(
        Call::new("getfd")
            .args_json(r#"{"fdname":"pipe0"}"#)
            .fd(r.as_fd()),
    ) {
        Err(Error::Qmp(e)) => {
            assert_eq!(e.class, "CommandNotFound");
            assert_eq!(e.desc, "The command getfd has not been found");
        }
        other => panic!("{other:?}"),
    }
    let v: Version = c.execute("query-version", &()).unwrap();
    assert_eq!(v.qemu.major, 10);

    assert!(c.take_notices().is_empty());

    // quit: the reply, then the daemon closes the connection.
    c.execute_raw("quit", None).unwrap();
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        match c.next_event(Some(Duration::from_secs(5))) {
            Ok(Some(_)) => {}
            Err(Error::Disconnected { .. }) => break,
            other => panic!("{other:?}"),
        }
        assert!(Instant::now() < end);
    }
    assert!(matches!(
        c.execute_raw("query-version", None),
        Err(Error::Closed)
    ));
}

#[test]
fn qsd_small_buffer_and_no_oob() {
    let Some(q) = qsd() else { return };
    let cfg = Config::new().max_message(4096).oob(false);
    let mut c = Client::connect_unix(&q.sock, cfg).unwrap();
    assert!(!c.oob_enabled());
    match c.execute_raw("query-qmp-schema", None) {
        Err(Error::Oversized { len, limit, .. }) => {
            assert!(len > 100_000, "{len}");
            assert_eq!(limit, 4096);
        }
        other => panic!("{other:?}"),
    }
    // The session goes on.
    let v: Version = c.execute("query-version", &()).unwrap();
    assert_eq!(v.qemu.major, 10);
    // exec-oob needs oob.
    assert!(matches!(
        c.call(Call::new("query-version").oob()),
        Err(Error::Unsupported(_))
    ));
    // Without oob, pipelining is not limited to 8 in-band requests.
    let pending: Vec<_> = (0..50)
        .map(|_| c.send(Call::new("query-version")).unwrap())
        .collect();
    for p in pending {
        c.wait(p).unwrap();
    }
}

// ---------------------------------------------------------------------------
// Library against fake and demo peers (no QEMU needed)

const GREETING: &[u8] =
    b"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 0, \"major\": 10}, \"package\": \"\"}, \"capabilities\": [\"oob\"]}}\r\n";

/// A peer that greets, answers `qmp_capabilities`, then reads forever and
/// never answers.
fn hung_peer(dir: &TempDir, greet: bool) -> PathBuf {
    let path = dir.path("hung.sock");
    let listener = UnixListener::bind(&path).unwrap();
    std::thread::spawn(move || {
        let Ok((mut s, _)) = listener.accept() else {
            return;
        };
        if greet {
            let _ = s.write_all(GREETING);
        }
        let mut buf = [0u8; 4096];
        let mut answered = false;
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                return;
            }
            if greet && !answered {
                answered = true;
                let _ = s.write_all(b"{\"return\": {}}\r\n");
            }
        }
    });
    path
}

#[test]
fn per_call_timeout_preempts_a_hung_peer() {
    let dir = TempDir::new("hung");
    let path = hung_peer(&dir, true);
    let mut c = Client::connect_unix(&path, Config::new()).unwrap();
    let t0 = Instant::now();
    let e = c
        .call(Call::new("query-status").timeout(Duration::from_millis(300)))
        .unwrap_err();
    let took = t0.elapsed();
    match &e {
        Error::Timeout { command, after } => {
            assert_eq!(command, "query-status");
            assert_eq!(*after, Duration::from_millis(300));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        took >= Duration::from_millis(290) && took < Duration::from_millis(1500),
        "{took:?}"
    );
    assert_eq!(
        e.to_string(),
        "timed out after 0.3 s waiting for the reply to 'query-status'"
    );
    // The default timeout of the config applies too; the session is usable.
    let t0 = Instant::now();
    let mut c2 = c;
    let e = c2
        .call(Call::new("query-name").timeout(Duration::from_millis(100)))
        .unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
    assert!(t0.elapsed() < Duration::from_secs(1));
}

/// Any fd-backed stream (a pty, a serial port) through `FdTransport`:
/// timeouts come from poll(2).
#[test]
fn fd_transport_times_out_too() {
    let dir = TempDir::new("fdt");
    let path = hung_peer(&dir, true);
    let stream = std::os::unix::net::UnixStream::connect(&path).unwrap();
    let mut c = Client::handshake(FdTransport::new(stream), Config::new()).unwrap();
    assert!(c.oob_enabled());
    let t0 = Instant::now();
    let e = c
        .call(Call::new("query-status").timeout(Duration::from_millis(200)))
        .unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
    assert!(t0.elapsed() < Duration::from_secs(1));
}

#[test]
fn handshake_times_out_without_greeting() {
    let dir = TempDir::new("mute");
    let path = hung_peer(&dir, false);
    let t0 = Instant::now();
    let e = Client::connect_unix(
        &path,
        Config::new().connect_timeout(Duration::from_millis(300)),
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            Error::HandshakeTimeout {
                step: qmp_std::Handshake::Greeting,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "no QMP greeting within 0.3 s (not a QMP monitor, or one busy with another client)"
    );
    assert!(t0.elapsed() < Duration::from_millis(1500));

    // A greeting, then silence: the negotiation is what timed out.
    let path = dir.path("greets.sock");
    let listener = UnixListener::bind(&path).unwrap();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.write_all(GREETING).unwrap();
        let _ = std::io::copy(&mut s, &mut std::io::sink());
    });
    let e = Client::connect_unix(
        &path,
        Config::new().connect_timeout(Duration::from_millis(300)),
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "no reply to qmp_capabilities within 0.3 s");
}

#[test]
fn garbage_peer_is_reported_not_fatal() {
    let dir = TempDir::new("garbage");
    let path = dir.path("g.sock");
    let listener = UnixListener::bind(&path).unwrap();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.write_all(GREETING).unwrap();
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf);
        // Negotiation reply, then junk, an unknown id, and the real reply.
        s.write_all(b"{\"return\": {}}\r\n%% [1,2]\r\n{\"return\": 5, \"id\": 99}\r\n")
            .unwrap();
        // A greeting again (a hostile peer could send them forever).
        s.write_all(GREETING).unwrap();
        let _ = s.read(&mut buf);
        s.write_all(b"{\"return\": {\"ok\": true}, \"id\": 1}\r\n")
            .unwrap();
        let _ = s.read(&mut buf);
    });
    let mut c = Client::connect_unix(&path, Config::new()).unwrap();
    let r = c.execute_raw("x", None).unwrap();
    assert_eq!(r, "{\"ok\": true}");
    let notices: Vec<String> = c.take_notices().iter().map(|n| n.to_string()).collect();
    assert_eq!(
        notices,
        [
            "bad input from the peer: JSON parse error, stray '%'",
            "not a QMP message: [1,2]",
            "reply with id 99 matches no pending call: {\"return\": 5, \"id\": 99}",
            "a QMP greeting again: {\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 0, \"major\": 10}, \"package\": \"\"}, \"capabilities\": [\"oob\"]}}",
        ]
    );
}

/// A peer that receives the command with `recvmsg` and checks that the
/// descriptor came with it (on the same message), then reads through it.
#[test]
fn fd_passing_reaches_the_peer() {
    let dir = TempDir::new("fd");
    let path = dir.path("fd.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let peer = common::fd_peer(listener);
    let mut c = Client::connect_unix(&path, Config::new()).unwrap();
    let (r, w) = rustix::pipe::pipe().unwrap();
    std::fs::File::from(w).write_all(b"hello").unwrap();
    let got = c
        .call(
            Call::new("getfd")
                .args_json(r#"{"fdname":"p"}"#)
                .fd(r.as_fd())
                .timeout(Duration::from_secs(5)),
        )
        .unwrap();
    assert_eq!(got, r#"{"read": "hello"}"#);
    peer.join().unwrap().unwrap();
}

#[test]
fn connect_retries_until_the_socket_listens() {
    let dir = TempDir::new("late");
    let path = dir.path("late.sock");
    let p2 = path.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        qmp_std::demo::bind(&Address::unix(&p2), false)
            .unwrap()
            .run()
            .unwrap();
    });
    let mut c = Client::connect_unix(&path, Config::new()).unwrap();
    c.execute_raw("quit", None).unwrap();
    // Without retry: a clear error at once.
    let e = Client::connect_unix(dir.path("nothing.sock"), Config::new().retry_connect(false))
        .unwrap_err();
    assert!(e.to_string().starts_with("cannot connect to unix:"), "{e}");
}

#[test]
fn demo_agent_events_oob_and_tcp_fds() {
    let server = qmp_std::demo::bind(&Address::Tcp("127.0.0.1:0".into()), false).unwrap();
    let addr = server.local_addr();
    let stop = server.stop_handle();
    let thread = server.spawn();
    let mut c = Client::connect(&addr, Config::new()).unwrap();
    assert!(c.oob_enabled());

    // Subscription before the command: the event cannot be missed.
    let sub = c.subscribe(&["STOP"]);
    c.execute_raw("stop", None).unwrap();
    let e = c
        .next_event_for(&sub, Some(Duration::ZERO))
        .unwrap()
        .unwrap();
    assert_eq!(e.name, "STOP");
    assert!(e
        .to_json()
        .unwrap()
        .starts_with("{\"timestamp\":{\"seconds\":"));
    assert!(e.to_json().unwrap().ends_with(",\"event\":\"STOP\"}"));
    assert!(c.unsubscribe(sub).is_empty());

    // OOB overtakes a slow in-band command.
    let slow = c
        .send(Call::new("x-sleep").args_json(r#"{"ms": 300}"#))
        .unwrap();
    let fast = c
        .send(Call::new("x-sleep").args_json(r#"{"ms": 1}"#).oob())
        .unwrap();
    c.wait(fast).unwrap();
    assert!(!c.is_ready(&slow));
    c.wait(slow).unwrap();

    // Descriptors need a Unix socket.
    let (r, _w) = rustix::pipe::pipe().unwrap();
    let e = c
        .call(
            Call::new("getfd")
                .args_json(r#"{"fdname":"x"}"#)
                .fd(r.as_fd()),
        )
        .unwrap_err();
    assert!(matches!(e, Error::Unsupported(_)), "{e:?}");
    assert_eq!(e.to_string(), "file descriptor passing needs a Unix socket");

    // The bounded general queue counts what it drops.
    let mut small = Client::connect(&addr, Config::new().event_queue(1)).unwrap();
    small.execute_raw("cont", None).unwrap();
    small.execute_raw("stop", None).unwrap();
    small.execute_raw("cont", None).unwrap();
    assert_eq!(small.dropped_events(), 2);
    assert_eq!(
        small
            .next_event(Some(Duration::ZERO))
            .unwrap()
            .unwrap()
            .name,
        "RESUME"
    );

    stop.stop();
    drop(c);
    drop(small);
    let _ = thread.join();
}

// ---------------------------------------------------------------------------
// The CLI

fn qmp(args: &[&str]) -> Output {
    Command::new(QMP)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run qmp")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const PY_QUERY_VERSION: &str = r#"
import asyncio, json, sys
from qemu.qmp import QMPClient
async def main(path):
    q = QMPClient('cmp')
    await q.connect(path)
    r = await q.execute('query-version')
    print(json.dumps(r, separators=(',', ':')))
    await q.disconnect()
asyncio.run(main(sys.argv[1]))
"#;

fn has_qemu_qmp() -> bool {
    Command::new("python3")
        .args(["-c", "import qemu.qmp"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn cli_exec_matches_python_qemu_qmp() {
    let Some(q) = qsd() else { return };
    let sock = q.sock.to_str().unwrap();
    // Wait for the daemon's socket through the library (it retries).
    drop(connect(&q.sock));
    let ours = qmp(&["--unix", sock, "exec", "query-version"]);
    assert!(ours.status.success(), "{}", text(&ours.stderr));
    let ours = text(&ours.stdout);
    assert!(
        ours.ends_with('\n') && ours.lines().count() == 1,
        "{ours:?}"
    );
    if !has_qemu_qmp() {
        skip("python3 with qemu.qmp not installed");
        return;
    }
    let py = Command::new("python3")
        .args(["-c", PY_QUERY_VERSION, sock])
        .output()
        .unwrap();
    assert!(py.status.success(), "{}", text(&py.stderr));
    let py = text(&py.stdout);
    let a: serde_json::Value = serde_json::from_str(&ours).unwrap();
    let b: serde_json::Value = serde_json::from_str(&py).unwrap();
    assert_eq!(a, b);
    assert_eq!(ours, py);
}

#[test]
fn cli_exec_errors() {
    let Some(q) = qsd() else { return };
    let sock = q.sock.to_str().unwrap();
    drop(connect(&q.sock));
    let out = qmp(&["--unix", sock, "exec", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "CommandNotFound: The command nope has not been found\n"
    );
    assert!(out.stdout.is_empty());

    let out = qmp(&["--unix", sock, "exec", "query-version", r#"{"x": 1}"#]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "GenericError: Parameter 'x' is unexpected\n"
    );

    let out = qmp(&[
        "--unix",
        sock,
        "exec",
        "blockdev-add",
        r#"{"driver":"null-co","node-name":"c0"}"#,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "{}\n");
}

#[test]
fn cli_missing_socket_and_timeout() {
    let dir = TempDir::new("cli");
    let missing = dir.path("missing.sock");
    let out = qmp(&["--unix", missing.to_str().unwrap(), "exec", "query-version"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(err.starts_with("qmp: cannot connect to unix:"), "{err}");
    assert!(out.stdout.is_empty());

    let hung = hung_peer(&dir, true);
    let t0 = Instant::now();
    let out = qmp(&[
        "--unix",
        hung.to_str().unwrap(),
        "--timeout",
        "0.3",
        "exec",
        "query-status",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "qmp: timed out after 0.3 s waiting for the reply to 'query-status'\n"
    );
    assert!(t0.elapsed() < Duration::from_secs(3));
}

#[test]
fn cli_events_count() {
    let Some(q) = qsd() else { return };
    let mut trigger = connect(&q.sock);
    // Make sure the second monitor listens before the CLI connects.
    drop(connect(&q.sock2));
    trigger
        .execute_raw(
            "blockdev-add",
            Some(r#"{"driver":"null-co","node-name":"n0","size":1048576}"#),
        )
        .unwrap();
    let mut child = Command::new(QMP)
        .args([
            "--unix",
            q.sock2.to_str().unwrap(),
            "events",
            "--count",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The CLI may not have negotiated yet (events before that are not sent
    // to it): start jobs until it has printed one event.
    let end = Instant::now() + Duration::from_secs(15);
    let mut n = 0;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < end, "qmp events did not finish");
        n += 1;
        let args = format!(
            r#"{{"job-id":"j{n}","options":{{"driver":"qcow2","file":"n0","size":1048576}}}}"#
        );
        trigger.execute_raw("blockdev-create", Some(&args)).unwrap();
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(status.success(), "{out}");
    assert_eq!(out.lines().count(), 1, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["event"], "JOB_STATUS_CHANGE");
    assert!(out.starts_with("{\"timestamp\":{\"seconds\":"), "{out}");
}

#[test]
fn cli_demo() {
    let t0 = Instant::now();
    let out = qmp(&["demo"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(t0.elapsed() < Duration::from_secs(5));
    let s = text(&out.stdout);
    for want in [
        "  ← {\"QMP\": {\"version\": ",
        "  → {\"execute\":\"qmp_capabilities\",\"arguments\":{\"enable\":[\"oob\"]}}",
        "  → {\"execute\":\"query-version\",\"id\":1}",
        "     event STOP",
        "     error CommandNotFound: The command nope has not been found",
        "  → {\"exec-oob\":\"x-sleep\",\"arguments\":{\"ms\": 1},\"id\":7}",
        "the exec-oob reply arrived first",
        "\"event\": \"SHUTDOWN\", \"data\": {\"guest\": false, \"reason\": \"host-qmp-quit\"}}",
        "     connection closed by the server",
    ] {
        assert!(s.contains(want), "missing {want:?} in:\n{s}");
    }
    // The OOB reply (id 7) is on the wire before the in-band one (id 6).
    let r7 = s.find("← {\"return\": {}, \"id\": 7}").unwrap();
    let r6 = s.find("← {\"return\": {}, \"id\": 6}").unwrap();
    assert!(r7 < r6);
}

#[test]
fn cli_shell_script() {
    let dir = TempDir::new("shell");
    let path = dir.path("demo.sock");
    let server = qmp_std::demo::bind(&Address::unix(&path), false).unwrap();
    let thread = server.spawn();
    let mut child = Command::new(QMP)
        .args(["--unix", path.to_str().unwrap(), "shell"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            b"query-status\nstop\nnope\nhuman-monitor-command command-line=\"info status\"\n\
              {\"execute\": \"cont\"}\nhistory\nquit\n",
        )
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    // `nope` failed: exit 1 for a script.
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("\"status\": \"running\""), "{stdout}");
    assert!(stdout.contains("event: {\"timestamp\":"), "{stdout}");
    assert!(stdout.contains("\"event\":\"STOP\"}"), "{stdout}");
    assert!(stdout.contains("\"VM status: paused\\r\\n\""), "{stdout}");
    assert!(stdout.contains("   5  {\"execute\": \"cont\"}"), "{stdout}");
    assert!(stdout.contains("\"event\":\"SHUTDOWN\""), "{stdout}");
    assert!(
        stderr.contains("error: CommandNotFound: The command nope has not been found"),
        "{stderr}"
    );
    let _ = thread.join();
}
