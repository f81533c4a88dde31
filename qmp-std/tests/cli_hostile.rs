//! The `qmp` CLI against hostile or wrong peers, over real sockets: each
//! run ends exactly once, with one line naming the cause, within a bounded
//! time; warnings about messages that belong to nobody print when they
//! arrive. Fake peers are written here; the real ones (`qemu-ga`,
//! `qemu-storage-daemon`) are skipped when missing unless
//! `QMP_REQUIRE_PEERS=1`.

use std::io::{BufRead, BufReader, Read, Write};
use std::ops::Range;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const QMP: &str = env!("CARGO_BIN_EXE_qmp");

const GREETING: &[u8] =
    b"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 0, \"major\": 10}, \"package\": \"\"}, \"capabilities\": [\"oob\"]}}\r\n";

mod common;

use common::{installed, TempDir};

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A peer on a fresh socket: accepts one connection and runs `script` on
/// it (the connection is closed when `script` returns).
fn peer(dir: &TempDir, script: impl FnOnce(UnixStream) + Send + 'static) -> PathBuf {
    let path = dir.path("peer.sock");
    let listener = UnixListener::bind(&path).unwrap();
    thread::spawn(move || {
        if let Ok((s, _)) = listener.accept() {
            script(s);
        }
    });
    path
}

/// Reads and throws away everything until the client closes.
fn silent(mut s: UnixStream) {
    let _ = std::io::copy(&mut s, &mut std::io::sink());
}

/// Reads until `needle` has been received; everything read.
fn read_until(s: &mut UnixStream, needle: &[u8]) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(needle.len()).any(|w| w == needle) {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got
}

/// Greets and answers `qmp_capabilities`, as QEMU does.
fn negotiate(s: &mut UnixStream) {
    s.write_all(GREETING).unwrap();
    read_until(s, b"qmp_capabilities\"");
    s.write_all(b"{\"return\": {}}\r\n").unwrap();
}

/// Answers a delimited sync the way qemu-ga does: its complaint about the
/// 0xFF, then 0xFF and the id.
fn sync_delimited(s: &mut UnixStream) {
    let got = read_until(s, b"}}");
    let text = String::from_utf8_lossy(&got);
    let id: String = text
        .split("\"id\":")
        .nth(1)
        .unwrap_or("")
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let mut reply = b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, stray '\\uFFFD'\"}}\n\xff".to_vec();
    reply.extend_from_slice(format!("{{\"return\": {id}}}\n").as_bytes());
    s.write_all(&reply).unwrap();
}

fn qmp(args: &[&str]) -> (Output, Duration) {
    let t0 = Instant::now();
    let out = Command::new(QMP)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run qmp");
    (out, t0.elapsed())
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn sock(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `qmp --unix PATH ARGS` exits 2, with nothing on stdout, exactly `err`
/// on stderr, within `within`.
fn fails_at(path: &Path, args: &[&str], err: &str, within: Range<Duration>) {
    let (out, took) = qmp(&[&["--unix", sock(path)][..], args].concat());
    assert_eq!(text(&out.stderr), err, "qmp {args:?}");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    assert!(within.contains(&took), "took {took:?}, not in {within:?}");
}

/// [`fails_at`] against a fake peer running `script`.
fn fails_against(
    script: impl FnOnce(UnixStream) + Send + 'static,
    args: &[&str],
    err: &str,
    within: Range<Duration>,
) {
    let dir = TempDir::new("hostile");
    let path = peer(&dir, script);
    fails_at(&path, args, err, within);
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// What "at once" allows (a loaded machine included).
const AT_ONCE: Range<Duration> = Duration::ZERO..Duration::from_millis(1500);

// ---------------------------------------------------------------------------
// --qga

#[test]
fn qga_silent_peer_gives_up_after_the_sync_timeout() {
    fails_against(
        silent,
        &["--qga", "exec", "guest-ping"],
        "qmp: no reply to the guest-agent sync within 5 s (is this a guest agent?)\n",
        secs(5.0)..secs(7.0),
    );
}

#[test]
fn qga_timeout_bounds_the_whole_call() {
    let args = ["--qga", "--timeout", "2", "exec", "guest-ping"];
    // A silent peer: the sync gets what --timeout allows, not three rounds.
    fails_against(
        silent,
        &args,
        "qmp: no reply to the guest-agent sync within 2 s (is this a guest agent?)\n",
        secs(2.0)..secs(3.0),
    );
    // A peer that syncs, then never answers: sync and command share it.
    fails_against(
        |mut s| {
            thread::sleep(Duration::from_millis(500));
            sync_delimited(&mut s);
            silent(s);
        },
        &args,
        "qmp: timed out after 2 s waiting for the reply to 'guest-ping'\n",
        secs(2.0)..secs(3.0),
    );
}

const DISABLED: &str = "qmp: the guest agent refused the sync: CommandNotFound: Command guest-sync-delimited has been disabled";

#[test]
fn qga_sync_answered_with_an_error() {
    // An error that names the sync command (what qemu-ga answers when it
    // is disabled): at once.
    fails_against(
        |mut s| {
            read_until(&mut s, b"}}");
            s.write_all(b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, stray '\\uFFFD'\"}}\n{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"Command guest-sync-delimited has been disabled\"}}\n").unwrap();
            silent(s);
        },
        &["--qga", "exec", "guest-ping"],
        &format!("{DISABLED}\n"),
        AT_ONCE,
    );
    // Any other error to every attempt: it is the cause once the sync time
    // is up.
    fails_against(
        |mut s| {
            for _ in 0..3 {
                read_until(&mut s, b"}}");
                let no =
                    b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"no sync for you\"}}\n";
                if s.write_all(no).is_err() {
                    return;
                }
            }
            silent(s);
        },
        &["--qga", "--timeout", "1.5", "exec", "guest-ping"],
        "qmp: the guest agent refused the sync: GenericError: no sync for you\n",
        secs(1.5)..secs(2.5),
    );
}

/// Waits until something listens on `path`.
fn listening(path: &Path) {
    let t0 = Instant::now();
    while UnixStream::connect(path).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "nothing listens on {path:?}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn qga_sync_refused_by_a_real_qemu_ga() {
    if !installed("qemu-ga") {
        return;
    }
    let dir = TempDir::new("qga-real");
    let path = dir.path("qga.sock");
    let _ga = Kill(
        Command::new("qemu-ga")
            .args(["-m", "unix-listen", "-p", sock(&path)])
            .arg("-t")
            .arg(dir.path(""))
            .arg("-f")
            .arg(dir.path("pid"))
            .arg("-l")
            .arg(dir.path("log"))
            .args(["-b", "guest-sync-delimited"])
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn qemu-ga"),
    );
    listening(&path);
    fails_at(
        &path,
        &["--qga", "exec", "guest-ping"],
        &format!("{DISABLED}: the command is not allowed\n"),
        AT_ONCE,
    );
}

const NOT_QGA: &str =
    "qmp: protocol error: the peer sent a QMP greeting: this is a QMP monitor, not a guest agent\n";

#[test]
fn qga_pointed_at_a_qmp_monitor_fails_at_once() {
    let dir = TempDir::new("qga-qmp");
    let path = dir.path("demo.sock");
    let server = qmp_std::demo::bind(&qmp_std::Address::unix(&path), false).unwrap();
    let stop = server.stop_handle();
    let run = server.spawn();
    fails_at(&path, &["--qga", "exec", "guest-ping"], NOT_QGA, AT_ONCE);
    fails_at(&path, &["--qga", "shell"], NOT_QGA, AT_ONCE);
    stop.stop();
    run.join().unwrap().unwrap();

    if !installed("qemu-storage-daemon") {
        return;
    }
    let path = dir.path("qsd.sock");
    let _qsd = Kill(
        Command::new("qemu-storage-daemon")
            .args([
                "--chardev",
                &format!("socket,path={},server=on,wait=off,id=m0", path.display()),
                "--monitor",
                "chardev=m0",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn qemu-storage-daemon"),
    );
    listening(&path);
    fails_at(&path, &["--qga", "exec", "guest-ping"], NOT_QGA, AT_ONCE);
}

// ---------------------------------------------------------------------------
// QMP

#[test]
fn events_duration_bounds_the_greeting_wait() {
    fails_against(
        silent,
        &["events", "--duration", "1"],
        "qmp: no QMP greeting within 1 s (not a QMP monitor, or one busy with another client)\n",
        secs(1.0)..secs(2.0),
    );
}

#[test]
fn a_first_message_that_is_not_a_greeting_fails_at_once() {
    for (first, err) in [
        (
            &b"{\"return\": {}}\r\n"[..],
            "qmp: protocol error: expected the QMP greeting, got {\"return\": {}}\n",
        ),
        (
            b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"nope\"}}\r\n",
            "qmp: protocol error: expected the QMP greeting, got an error reply (GenericError: nope)\n",
        ),
        (
            b"[1, 2]\r\n",
            "qmp: protocol error: expected the QMP greeting, got [1, 2]\n",
        ),
    ] {
        for args in [&["exec", "query-status"][..], &["events"], &["shell"]] {
            let first_then_silent = move |mut s: UnixStream| {
                let _ = s.write_all(first);
                silent(s);
            };
            fails_against(first_then_silent, args, err, AT_ONCE);
        }
    }
    // Events before the greeting are fine.
    let dir = TempDir::new("event-first");
    let path = peer(&dir, |mut s| {
        s.write_all(
            b"{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": \"EARLY\"}\r\n",
        )
        .unwrap();
        negotiate(&mut s);
        read_until(&mut s, b"\"id\":1}");
        s.write_all(b"{\"return\": {\"ok\": true}, \"id\": 1}\r\n")
            .unwrap();
        silent(s);
    });
    let (out, _) = qmp(&["--unix", sock(&path), "exec", "query-status"]);
    assert_eq!(
        (out.status.code(), text(&out.stdout), text(&out.stderr)),
        (Some(0), "{\"ok\":true}\n".into(), String::new())
    );
}

// ---------------------------------------------------------------------------
// Warnings as they happen

/// Runs `qmp ARGS`, with `peer` scripted by the caller; `gate` is signalled
/// when the stderr lines collected so far include every line of `warnings`
/// (the peer waits for it before it answers). Returns the exit status,
/// stdout, and stderr.
fn warns_before_the_answer(
    args: &[&str],
    warnings: &[&'static str],
    stdin: &[u8],
    gate: mpsc::Sender<()>,
) -> (Option<i32>, String, String) {
    let mut child = Command::new(QMP)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let stderr = child.stderr.take().unwrap();
    let want: Vec<String> = warnings.iter().map(|w| (*w).to_owned()).collect();
    let reader = thread::spawn(move || {
        let mut seen = Vec::new();
        let mut open = true;
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            seen.push(line);
            if open && want.iter().all(|w| seen.contains(w)) {
                open = false;
                let _ = gate.send(());
            }
        }
        seen
    });
    let out = child.wait_with_output().unwrap();
    let seen = reader.join().unwrap();
    let mut err = seen.join("\n");
    if !seen.is_empty() {
        err.push('\n');
    }
    (out.status.code(), text(&out.stdout), err)
}

/// Waits for the test to see the warnings (10 s at most: a CLI that prints
/// them only at exit fails the test with the reply it then gets late).
fn gate_opens(gate: &mpsc::Receiver<()>) -> bool {
    gate.recv_timeout(Duration::from_secs(10)).is_ok()
}

/// Sends `stray` (messages for nobody), then `answer` once the test saw
/// the warnings about them (or `late` after 10 s, which fails the test),
/// then waits for the client to close.
fn stray_then(
    mut s: UnixStream,
    gate: &mpsc::Receiver<()>,
    stray: &[u8],
    answer: &[u8],
    late: &[u8],
) {
    s.write_all(stray).unwrap();
    s.write_all(if gate_opens(gate) { answer } else { late })
        .unwrap();
    silent(s);
}

const LATE_REPLY: &[u8] = b"{\"return\": \"warnings came late\", \"id\": 1}\r\n";

const UNMATCHED: &str =
    "qmp: warning: reply with id 99 matches no pending call: {\"return\": 5, \"id\": 99}";
const FRAMING: &str = "qmp: warning: bad input from the peer: JSON parse error, stray '%'";

#[test]
fn exec_warns_while_it_waits() {
    let dir = TempDir::new("warn-exec");
    let (tx, rx) = mpsc::channel();
    let path = peer(&dir, move |mut s| {
        negotiate(&mut s);
        read_until(&mut s, b"\"id\":1}");
        let stray = b"{\"return\": 5, \"id\": 99}\r\n%\r\n";
        let answer = b"{\"return\": {\"status\": \"running\"}, \"id\": 1}\r\n";
        stray_then(s, &rx, stray, answer, LATE_REPLY);
    });
    let got = warns_before_the_answer(
        &["--unix", sock(&path), "exec", "query-status"],
        &[UNMATCHED, FRAMING],
        b"",
        tx,
    );
    assert_eq!(
        got,
        (
            Some(0),
            "{\"status\":\"running\"}\n".into(),
            format!("{UNMATCHED}\n{FRAMING}\n")
        )
    );
}

#[test]
fn qga_exec_warns_while_it_waits() {
    const ORPHAN: &str = "qmp: warning: error reply without id: GenericError: stale";
    const LATE: &str =
        "qmp: warning: reply with id 77 matches no pending call: {\"return\": {}, \"id\": 77}";
    let dir = TempDir::new("warn-qga");
    let (tx, rx) = mpsc::channel();
    let path = peer(&dir, move |mut s| {
        sync_delimited(&mut s);
        read_until(&mut s, b"\"id\":1}");
        let stray = b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"stale\"}}\n{\"return\": {}, \"id\": 77}\n";
        stray_then(s, &rx, stray, b"{\"return\": {}, \"id\": 1}\n", LATE_REPLY);
    });
    let got = warns_before_the_answer(
        &["--unix", sock(&path), "--qga", "exec", "guest-ping"],
        &[ORPHAN, LATE],
        b"",
        tx,
    );
    assert_eq!(got, (Some(0), "{}\n".into(), format!("{ORPHAN}\n{LATE}\n")));
}

#[test]
fn shell_warns_while_it_waits() {
    const SHELL_UNMATCHED: &str =
        "warning: reply with id 99 matches no pending call: {\"return\": 5, \"id\": 99}";
    let dir = TempDir::new("warn-shell");
    let (tx, rx) = mpsc::channel();
    let path = peer(&dir, move |mut s| {
        negotiate(&mut s);
        read_until(&mut s, b"\"id\":1}");
        let stray = b"{\"return\": 5, \"id\": 99}\r\n";
        stray_then(
            s,
            &rx,
            stray,
            b"{\"return\": {\"a\": 1}, \"id\": 1}\r\n",
            LATE_REPLY,
        );
    });
    let got = warns_before_the_answer(
        &["--unix", sock(&path), "shell"],
        &[SHELL_UNMATCHED],
        b"query-status\n",
        tx,
    );
    assert_eq!(
        got,
        (
            Some(0),
            "{\n  \"a\": 1\n}\n".into(),
            format!("{SHELL_UNMATCHED}\n")
        )
    );
}

#[test]
fn events_warns_between_events() {
    let dir = TempDir::new("warn-events");
    let (tx, rx) = mpsc::channel();
    let path = peer(&dir, move |mut s| {
        negotiate(&mut s);
        let stray = b"{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": \"ONE\"}\r\n{\"return\": 5, \"id\": 99}\r\n";
        let event = |name: &str| {
            format!("{{\"timestamp\": {{\"seconds\": 3, \"microseconds\": 4}}, \"event\": \"{name}\"}}\r\n")
        };
        stray_then(
            s,
            &rx,
            stray,
            event("TWO").as_bytes(),
            event("LATE").as_bytes(),
        );
    });
    let got = warns_before_the_answer(
        &["--unix", sock(&path), "events", "--count", "2"],
        &[UNMATCHED],
        b"",
        tx,
    );
    assert_eq!(
        got,
        (
            Some(0),
            "{\"timestamp\":{\"seconds\":1,\"microseconds\":2},\"event\":\"ONE\"}\n\
             {\"timestamp\":{\"seconds\":3,\"microseconds\":4},\"event\":\"TWO\"}\n"
                .into(),
            format!("{UNMATCHED}\n")
        )
    );
}

// ---------------------------------------------------------------------------
// --help

#[test]
fn help_documents_every_timeout_and_bound() {
    let (out, _) = qmp(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    let bounds = help
        .split_once("Timeouts and bounds (defaults):\n")
        .expect("a section of bounds")
        .1;
    // Each bound's first line, with its default.
    let rows: Vec<&str> = bounds.lines().filter(|l| !l.starts_with("    ")).collect();
    assert_eq!(
        rows,
        [
            "  connect timeout    10 s to connect and complete the handshake (the QMP",
            "  sync timeout       5 s for the guest-agent sync (--qga: 0xFF and",
            "  call timeout       QMP: none (a reply may take as long as its command);",
            "  max message size   16 MiB per message received: a larger reply fails its",
            "  event queue        1024 events (events, shell): beyond, the oldest is",
            "  pipeline           8 in-band requests in flight while oob is enabled",
            "  agent              requests and replies up to 1 MiB each; 8 queued",
            "  agent sessions     64 at once: a connection beyond gets one error line",
            "  agent backlog      1 MiB of events per session beyond its output buffer",
            "",
            "Replies and errors that belong to no command, and input that is not JSON,",
            "are printed as warnings on stderr when they arrive. Control characters in",
            "what is echoed back (errors, warnings, the server's strings) are written as",
            "escapes (\\u001b).",
        ]
    );
    assert!(bounds.contains("missing socket fails at once (no retry) unless --wait"));
    assert!(bounds.contains("--qga: 10 s; exec --timeout: what is left of SECS"));
    assert!(bounds.contains("(GenericError \"too many sessions\") and is closed;"));
    assert!(bounds.contains("while its peer does not read (8 MiB while its thread"));
    for option in [
        "--timeout SECS",
        "--wait[=SECS]",
        "--fd FILE",
        "--count N",
        "--duration SECS",
        "--no-history",
    ] {
        assert!(
            help.contains(&format!("  {option}")),
            "{option} undocumented"
        );
    }
}

// ---------------------------------------------------------------------------
// Malformed and id-less replies (hostile-peer cases 6 and 7)

/// After negotiation, the peer answers the command with `reply` and then
/// stays silent: `exec` ends at once with exit `code` and `err`.
fn exec_ends_on_reply(reply: &'static [u8], code: i32, err: &str) {
    let dir = TempDir::new("hostile");
    let path = peer(&dir, move |mut s| {
        negotiate(&mut s);
        read_until(&mut s, b"query-status");
        s.write_all(reply).unwrap();
        silent(s);
    });
    let (out, took) = qmp(&["--unix", sock(&path), "exec", "query-status"]);
    assert_eq!(text(&out.stderr), err);
    assert_eq!(out.status.code(), Some(code), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    assert!(AT_ONCE.contains(&took), "took {took:?}");
}

/// An id-less error is the oldest in-band request's (QEMU queues parse
/// errors in order with in-band requests): a QMP error, exit 1.
#[test]
fn exec_ends_on_an_id_less_error() {
    exec_ends_on_reply(
        b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, expecting value\"}}\r\n",
        1,
        "GenericError: JSON parse error, expecting value\n",
    );
}

/// A reply the framer rejects ends its call with a protocol error naming
/// what was wrong, exit 2.
#[test]
fn exec_ends_on_a_malformed_reply() {
    exec_ends_on_reply(
        b"{\"return\": \"a\xff\xfeb\xc3\x28c\", \"id\": 1}\r\n",
        2,
        "qmp: protocol error: malformed reply to 'query-status': JSON parse error, stray '\"a\u{FFFD}'\n",
    );
    exec_ends_on_reply(
        b"{\"id\": 1, \"return\": \"\\ud800\"}\r\n",
        2,
        "qmp: protocol error: malformed reply to 'query-status': JSON parse error, \\ud800 is not a valid Unicode character\n",
    );
    let mut deep = b"{\"return\": ".to_vec();
    deep.extend(std::iter::repeat_n(b'[', 100_000));
    exec_ends_on_reply(
        Box::leak(deep.into_boxed_slice()),
        2,
        "qmp: protocol error: malformed reply to 'query-status': JSON nesting depth limit exceeded\n",
    );
}

/// Hostile-peer case 8: after a correct sync, a reply with a foreign id and
/// an id-less reply are warned about, never printed as the result; the
/// reply with the command's own id is.
#[test]
fn qga_exec_takes_only_the_reply_with_its_id() {
    let dir = TempDir::new("qga-ids");
    let path = peer(&dir, |mut s| {
        sync_delimited(&mut s);
        read_until(&mut s, b"\"id\":1}");
        s.write_all(
            b"{\"return\": {\"bad\": 1}, \"id\": \"foreign-999\"}\n{\"return\": {\"bad\": 2}}\n{\"return\": 1795285339653786000, \"id\": 1}\n",
        )
        .unwrap();
        silent(s);
    });
    let (out, took) = qmp(&["--unix", sock(&path), "--qga", "exec", "guest-get-time"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "1795285339653786000\n");
    let err = text(&out.stderr);
    assert!(
        err.contains("foreign-999") && err.contains("\"bad\": 2"),
        "{err}"
    );
    assert!(!text(&out.stdout).contains("bad"));
    assert!(AT_ONCE.contains(&took), "took {took:?}");
}
