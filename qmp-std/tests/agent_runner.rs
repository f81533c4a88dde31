//! The agent runner over real sockets, raw bytes in and out (no peers
//! needed).

use qmp_std::agent::{CommandDef, Ctx, EventOut, Outcome, Request, Response, Server, ServerConfig};
use qmp_std::{demo, Address, Json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

fn temp_sock(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("qmp-std-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("s")
}

/// A raw client: writes bytes, reads messages up to `\n`.
struct Peer<S: Read + Write> {
    r: BufReader<S>,
}

impl<S: Read + Write> Peer<S> {
    fn send(&mut self, bytes: &[u8]) {
        self.r.get_mut().write_all(bytes).unwrap();
    }

    fn line(&mut self) -> String {
        let mut buf = Vec::new();
        self.r.read_until(b'\n', &mut buf).unwrap();
        assert!(!buf.is_empty(), "unexpected EOF");
        String::from_utf8(buf).unwrap()
    }

    fn bytes_line(&mut self) -> Vec<u8> {
        let mut buf = Vec::new();
        self.r.read_until(b'\n', &mut buf).unwrap();
        buf
    }

    fn expect(&mut self, want: &str) {
        assert_eq!(self.line(), want);
    }

    /// An event without data: timestamp varies.
    fn expect_event(&mut self, name: &str, data: Option<&str>) {
        let l = self.line();
        assert!(l.starts_with("{\"timestamp\": {\"seconds\": "), "{l}");
        let tail = match data {
            None => format!("}}, \"event\": \"{name}\"}}\r\n"),
            Some(d) => format!("}}, \"event\": \"{name}\", \"data\": {d}}}\r\n"),
        };
        assert!(l.ends_with(&tail), "{l} does not end with {tail}");
    }
}

fn unix(path: &PathBuf) -> Peer<UnixStream> {
    let s = UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    Peer {
        r: BufReader::new(s),
    }
}

fn greeting() -> String {
    let (major, minor, micro) = demo::version();
    format!(
        "{{\"QMP\": {{\"version\": {{\"qemu\": {{\"micro\": {micro}, \"minor\": {minor}, \"major\": {major}}}, \"package\": \"qmp-rs {}\"}}, \"capabilities\": [\"oob\"]}}}}\r\n",
        env!("CARGO_PKG_VERSION")
    )
}

const NEGOTIATE: &[u8] = br#"{"execute":"qmp_capabilities","arguments":{"enable":["oob"]}}"#;
const OK: &str = "{\"return\": {}}\r\n";

#[test]
fn unix_sessions_replies_and_event_fanout() {
    let sock = temp_sock("fanout");
    let server = demo::bind(&Address::unix(&sock), false).unwrap();
    let stop = server.stop_handle();
    let run = server.spawn();

    let mut a = unix(&sock);
    let mut b = unix(&sock);
    let mut c = unix(&sock);
    for p in [&mut a, &mut b, &mut c] {
        p.expect(&greeting());
    }
    // Negotiation mode.
    c.send(br#"{"execute":"query-status","id":1}"#);
    c.expect("{\"id\": 1, \"error\": {\"class\": \"CommandNotFound\", \"desc\": \"Expecting capabilities negotiation with 'qmp_capabilities'\"}}\r\n");

    a.send(NEGOTIATE);
    a.expect(OK);
    b.send(br#"{"execute":"qmp_capabilities"}"#);
    b.expect(OK);

    a.send(br#"{"execute":"query-status","id":1}"#);
    a.expect("{\"return\": {\"status\": \"running\", \"running\": true}, \"id\": 1}\r\n");

    // B stops the VM: the event reaches A and B (before B's reply), not C.
    b.send(br#"{"execute":"stop","id":"s"}"#);
    b.expect_event("STOP", None);
    b.expect("{\"return\": {}, \"id\": \"s\"}\r\n");
    a.expect_event("STOP", None);
    a.send(br#"{"execute":"query-status"}"#);
    a.expect("{\"return\": {\"status\": \"paused\", \"running\": false}}\r\n");
    // C never sees STOP: its next message is the negotiation reply.
    c.send(br#"{"execute":"qmp_capabilities","id":2}"#);
    c.expect("{\"return\": {}, \"id\": 2}\r\n");

    // Now C is negotiated: RESUME reaches all three.
    c.send(br#"{"execute":"cont"}"#);
    c.expect_event("RESUME", None);
    c.expect(OK);
    a.expect_event("RESUME", None);
    b.expect_event("RESUME", None);

    // Demo command texts.
    a.send(
        br#"{"execute":"human-monitor-command","arguments":{"command-line":"info status"},"id":3}"#,
    );
    a.expect("{\"return\": \"VM status: running\\r\\n\", \"id\": 3}\r\n");
    a.send(br#"{"execute":"human-monitor-command","arguments":{"command-line":"xyz 1"}}"#);
    a.expect("{\"return\": \"unknown command: 'xyz'\\r\\n\"}\r\n");
    a.send(br#"{"execute":"human-monitor-command","arguments":{}}"#);
    a.expect("{\"error\": {\"class\": \"GenericError\", \"desc\": \"Parameter 'command-line' is missing\"}}\r\n");
    a.send(br#"{"execute":"human-monitor-command","arguments":{"command-line":1}}"#);
    a.expect("{\"error\": {\"class\": \"GenericError\", \"desc\": \"Invalid parameter type for 'command-line', expected: string\"}}\r\n");
    a.send(br#"{"execute":"query-name","arguments":{"x":1}}"#);
    a.expect(
        "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Parameter 'x' is unexpected\"}}\r\n",
    );
    a.send(br#"{"execute":"x-sleep","arguments":{"ms":1,"y":2}}"#);
    a.expect(
        "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Parameter 'y' is unexpected\"}}\r\n",
    );
    a.send(br#"{"execute":"x-sleep","arguments":{}}"#);
    a.expect(
        "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Parameter 'ms' is missing\"}}\r\n",
    );
    a.send(br#"{"execute":"nope","id":"x"}"#);
    a.expect("{\"id\": \"x\", \"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command nope has not been found\"}}\r\n");
    let (major, minor, micro) = demo::version();
    a.send(br#"{"execute":"query-version"}"#);
    a.expect(&format!(
        "{{\"return\": {{\"qemu\": {{\"micro\": {micro}, \"minor\": {minor}, \"major\": {major}}}, \"package\": \"qmp-rs {}\"}}}}\r\n",
        env!("CARGO_PKG_VERSION")
    ));
    a.send(br#"{"execute":"system_reset"}"#);
    a.expect_event(
        "RESET",
        Some("{\"guest\": false, \"reason\": \"host-qmp-system-reset\"}"),
    );
    a.expect(OK);
    b.expect_event(
        "RESET",
        Some("{\"guest\": false, \"reason\": \"host-qmp-system-reset\"}"),
    );

    // OOB overtakes a slow in-band command (A negotiated oob).
    a.send(br#"{"execute":"x-sleep","arguments":{"ms":300},"id":"slow"}{"exec-oob":"x-sleep","arguments":{"ms":1},"id":"fast"}"#);
    a.expect("{\"return\": {}, \"id\": \"fast\"}\r\n");
    a.expect("{\"return\": {}, \"id\": \"slow\"}\r\n");
    // B did not enable oob.
    b.send(br#"{"exec-oob":"x-sleep","arguments":{"ms":1},"id":"o"}"#);
    b.expect("{\"id\": \"o\", \"error\": {\"class\": \"GenericError\", \"desc\": \"QMP input member 'exec-oob' is unexpected\"}}\r\n");

    // quit: SHUTDOWN to everyone, the reply, then every session closes and
    // the server stops.
    a.send(br#"{"execute":"quit","id":"q"}"#);
    let shutdown = "{\"guest\": false, \"reason\": \"host-qmp-quit\"}";
    a.expect_event("SHUTDOWN", Some(shutdown));
    a.expect("{\"return\": {}, \"id\": \"q\"}\r\n");
    assert!(a.bytes_line().is_empty(), "EOF after quit");
    b.expect_event("SHUTDOWN", Some(shutdown));
    assert!(b.bytes_line().is_empty(), "EOF after quit");
    run.join().unwrap().unwrap();
    assert!(stop.is_stopped());
    assert!(!sock.exists(), "socket file removed");
}

#[test]
fn pipelined_requests_then_eof_get_all_replies() {
    let sock = temp_sock("eof");
    let server = demo::bind(&Address::unix(&sock), false).unwrap();
    let stop = server.stop_handle();
    let run = server.spawn();
    let mut a = unix(&sock);
    a.expect(&greeting());
    // Without oob one request runs at a time (backpressure); all are
    // answered in order even though the write side is already closed.
    let mut input = NEGOTIATE.to_vec();
    for i in 0..20 {
        input.extend_from_slice(
            format!(r#"{{"execute":"x-sleep","arguments":{{"ms":1}},"id":{i}}}"#).as_bytes(),
        );
    }
    input.extend_from_slice(b"{\"execute\":");
    a.send(&input);
    a.r.get_ref().shutdown(std::net::Shutdown::Write).unwrap();
    a.expect(OK);
    for i in 0..20 {
        a.expect(&format!("{{\"return\": {{}}, \"id\": {i}}}\r\n"));
    }
    assert!(a.bytes_line().is_empty(), "EOF");
    stop.stop();
    run.join().unwrap().unwrap();
}

#[test]
fn tcp_custom_handler_deferred_and_events() {
    let cfg = ServerConfig::qmp(
        (10, 0, 2),
        "test",
        vec![
            CommandDef::new("echo"),
            CommandDef::new("later"),
            CommandDef::new("boom"),
            CommandDef::new("query-commands"),
        ],
    );
    let handler = Arc::new(|ctx: &mut Ctx<'_>, req: &Request<'_>| match req.name {
        // Arguments come back re-serialised QEMU-style.
        "echo" => Outcome::ret(req.arguments.map_or_else(Json::empty_object, Json::from)),
        "later" => {
            let c = ctx.defer();
            thread::spawn(move || {
                thread::sleep(Duration::from_millis(20));
                c.complete(Response::Return(Json::string("done")));
            });
            Outcome::Deferred
        }
        // A completer dropped unanswered still answers.
        _ => {
            drop(ctx.defer());
            Outcome::Deferred
        }
    });
    let server = Server::bind(&Address::tcp("127.0.0.1:0").unwrap(), cfg, handler).unwrap();
    let Address::Tcp(addr) = server.local_addr() else {
        panic!("not tcp")
    };
    let events = server.events();
    let stop = server.stop_handle();
    let run = server.spawn();

    let s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut p = Peer {
        r: BufReader::new(s),
    };
    p.expect("{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 2, \"minor\": 0, \"major\": 10}, \"package\": \"test\"}, \"capabilities\": [\"oob\"]}}\r\n");
    p.send(br#"{"execute":"qmp_capabilities"}"#);
    p.expect(OK);
    p.send(br#"{"execute":"later","id":1}{"execute":"echo","arguments":{"b":[1,"\u00e9"],"a":0.1},"id":2}"#);
    p.expect("{\"return\": \"done\", \"id\": 1}\r\n");
    p.expect("{\"return\": {\"a\": 0.10000000000000001, \"b\": [1, \"\\u00E9\"]}, \"id\": 2}\r\n");
    p.send(br#"{"execute":"boom"}"#);
    p.expect("{\"error\": {\"class\": \"GenericError\", \"desc\": \"command was dropped without a reply\"}}\r\n");
    p.send(br#"{"execute":"query-commands"}"#);
    p.expect("{\"return\": [{\"name\": \"qmp_capabilities\"}, {\"name\": \"echo\"}, {\"name\": \"later\"}, {\"name\": \"boom\"}, {\"name\": \"query-commands\"}]}\r\n");

    // Broadcast from outside a handler, with a fixed timestamp.
    assert_eq!(events.connections(), 1);
    let n = events.send(EventOut {
        name: "JOB_STATUS_CHANGE".into(),
        data: Some(Json::parse(r#"{"id":"j1","status":"created"}"#).unwrap()),
        seconds: 1795285163,
        microseconds: 709520,
        throttle_key: None,
    });
    assert_eq!(n, 1);
    p.expect("{\"timestamp\": {\"seconds\": 1795285163, \"microseconds\": 709520}, \"event\": \"JOB_STATUS_CHANGE\", \"data\": {\"status\": \"created\", \"id\": \"j1\"}}\r\n");

    stop.stop();
    assert!(p.bytes_line().is_empty(), "EOF after stop");
    run.join().unwrap().unwrap();
}

#[test]
fn qga_mode_answers_guest_sync_delimited() {
    let sock = temp_sock("qga");
    let server = demo::bind(&Address::unix(&sock), true).unwrap();
    let stop = server.stop_handle();
    let run = server.spawn();
    let mut g = unix(&sock);
    // No greeting, no negotiation.
    g.send(br#"{"execute":"guest-sync-delimited","arguments":{"id":1234}}"#);
    assert_eq!(g.bytes_line(), b"\xFF{\"return\": 1234}\n");
    g.send(br#"{"execute":"guest-sync","arguments":{"id":5}}"#);
    g.expect("{\"return\": 5}\n");
    g.send(br#"{"execute":"guest-ping","id":"p"}"#);
    g.expect("{\"return\": {}, \"id\": \"p\"}\n");
    g.send(br#"{"execute":"guest-ping","arguments":{"foo":1}}"#);
    g.expect(
        "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Parameter 'foo' is unexpected\"}}\n",
    );
    g.send(br#"{"execute":"qmp_capabilities"}"#);
    g.expect("{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command qmp_capabilities has not been found\"}}\n");
    g.send(br#"{"execute":"guest-get-time"}"#);
    let t = g.line();
    let ns: i64 = t
        .strip_prefix("{\"return\": ")
        .and_then(|r| r.strip_suffix("}\n"))
        .unwrap()
        .parse()
        .unwrap();
    assert!(ns > 1_600_000_000_000_000_000, "{t}");
    g.send(br#"{"execute":"guest-info"}"#);
    let info = g.line();
    assert!(
        info.contains(&format!("\"version\": \"{}\"", env!("CARGO_PKG_VERSION"))),
        "{info}"
    );
    assert!(
        info.contains("{\"enabled\": true, \"name\": \"guest-ping\", \"success-response\": true}"),
        "{info}"
    );
    stop.stop();
    run.join().unwrap().unwrap();
}

#[test]
fn stale_socket_file_is_replaced_and_live_one_refused() {
    let sock = temp_sock("stale");
    // A stale socket: bound, then the listener dropped without unlinking.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    assert!(sock.exists());
    let server = demo::bind(&Address::unix(&sock), false).unwrap();
    let stop = server.stop_handle();
    // A live one is not stolen.
    assert!(demo::bind(&Address::unix(&sock), false).is_err());
    let run = server.spawn();
    let mut a = unix(&sock);
    a.expect(&greeting());
    stop.stop();
    run.join().unwrap().unwrap();
}

#[test]
fn large_and_oversized_requests() {
    let mut cfg = ServerConfig::qmp((1, 2, 3), "", vec![CommandDef::new("echo")]);
    cfg.framer_size = 300 << 10;
    let handler = Arc::new(|_: &mut Ctx<'_>, req: &Request<'_>| {
        Outcome::ret(req.arg("s").map_or_else(Json::null, Json::from))
    });
    let server = Server::bind(&Address::tcp("127.0.0.1:0").unwrap(), cfg, handler).unwrap();
    let Address::Tcp(addr) = server.local_addr() else {
        panic!("not tcp")
    };
    let stop = server.stop_handle();
    let run = server.spawn();
    let s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut p = Peer {
        r: BufReader::new(s),
    };
    p.line();
    p.send(br#"{"execute":"qmp_capabilities"}"#);
    p.expect(OK);
    // 200 KB: several socket reads, one message.
    let big = "x".repeat(200 << 10);
    let req = format!(r#"{{"execute":"echo","arguments":{{"s":"{big}"}},"id":1}}"#);
    // Oversized (over the 300 KiB framer): one error, then the session goes on.
    let huge = "y".repeat(400 << 10);
    let over = format!(r#"{{"execute":"echo","arguments":{{"s":"{huge}"}},"id":2}}"#);
    let writer = {
        let mut w = p.r.get_ref().try_clone().unwrap();
        let bytes = [
            req.as_bytes(),
            over.as_bytes(),
            br#"{"execute":"echo","id":3}"#,
        ]
        .concat();
        thread::spawn(move || w.write_all(&bytes).unwrap())
    };
    p.expect(&format!("{{\"return\": \"{big}\", \"id\": 1}}\r\n"));
    let err = p.line();
    assert!(
        err.starts_with("{\"error\": {\"class\": \"GenericError\""),
        "{err}"
    );
    p.expect("{\"return\": null, \"id\": 3}\r\n");
    writer.join().unwrap();
    stop.stop();
    run.join().unwrap().unwrap();
}

#[test]
fn throttled_event_goes_out_when_its_window_ends_without_other_activity() {
    let mut cfg = ServerConfig::qmp((10, 0, 2), "test", vec![CommandDef::new("query-name")]);
    cfg.throttle = vec![("BALLOON_CHANGE".into(), 100)];
    let handler = Arc::new(|_: &mut Ctx<'_>, _: &Request<'_>| Outcome::ret(Json::empty_object()));
    let sock = temp_sock("throttle");
    let server = Server::bind(&Address::unix(&sock), cfg, handler).unwrap();
    let events = server.events();
    let stop = server.stop_handle();
    let run = server.spawn();
    let mut p = unix(&sock);
    p.line(); // greeting
    p.send(br#"{"execute":"qmp_capabilities"}"#);
    p.expect(OK);
    let t0 = std::time::Instant::now();
    for actual in [1, 2, 3] {
        events.emit(
            "BALLOON_CHANGE",
            Some(Json::parse(format!(r#"{{"actual":{actual}}}"#)).unwrap()),
        );
    }
    p.expect_event("BALLOON_CHANGE", Some("{\"actual\": 1}"));
    // The last one of the window, once it ends (the session's timer).
    p.expect_event("BALLOON_CHANGE", Some("{\"actual\": 3}"));
    assert!(
        t0.elapsed() >= Duration::from_millis(90),
        "{:?}",
        t0.elapsed()
    );
    stop.stop();
    run.join().unwrap().unwrap();
}
