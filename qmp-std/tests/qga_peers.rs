//! The blocking guest-agent client against real peers: `qemu-ga` (skipped
//! when not installed, unless `QMP_REQUIRE_PEERS=1`) and our own agent in
//! guest-agent mode; plus a silent peer for the timeout error.

use qmp_std::qga::{Config, Error, Handshake, Qga};
use qmp_std::{demo, Address};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

mod common;

const TIMEOUT: Duration = Duration::from_secs(5);

fn cfg() -> Config {
    Config::new().timeout(Some(TIMEOUT))
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("qmp-qga-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The checks shared by both peers.
fn exercise(qga: &mut Qga, version_prefix: &str) {
    assert!(qga.is_synced());
    qga.ping().unwrap();

    let info: serde_json::Value = qga.execute("guest-info", &()).unwrap();
    let version = info["version"].as_str().expect("guest-info has version");
    assert!(version.starts_with(version_prefix), "{version}");
    assert!(info["supported_commands"].is_array());
    let raw = qga.execute_raw("guest-info", None).unwrap();
    assert!(raw.starts_with("{\""), "{raw}");
    assert!(raw.contains("\"version\":"), "compact JSON: {raw}");

    let t = qga.get_time().unwrap();
    assert!(t > 1_700_000_000_000_000_000, "{t}");
    let raw = qga.execute_raw("guest-get-time", None).unwrap();
    assert!(raw.parse::<i64>().unwrap() >= t, "{raw}");

    // An explicit sync mid-session, then more commands.
    qga.sync().unwrap();
    qga.ping().unwrap();

    let err = qga.execute_raw("guest-nope", None).unwrap_err();
    assert!(err.is_qmp());
    let e = err.qmp().unwrap();
    assert_eq!(e.class, "CommandNotFound");
    assert_eq!(e.desc, "The command guest-nope has not been found");
    assert_eq!(
        err.to_string(),
        "CommandNotFound: The command guest-nope has not been found"
    );
    match qga.execute::<serde_json::Value, _>("guest-nope", &()) {
        Err(Error::Qmp(e)) => assert_eq!(e.class, "CommandNotFound"),
        other => panic!("{other:?}"),
    }
    let e = qga.execute_raw("guest-ping", Some("{\"a\":")).unwrap_err();
    assert!(matches!(e, Error::Arguments(_)), "{e:?}");
    assert_eq!(e.to_string(), "bad arguments: '{\"a\":' is not valid JSON");
    // A value of the wrong shape.
    let e = qga.execute::<String, _>("guest-get-time", &()).unwrap_err();
    assert!(
        matches!(&e, Error::Decode { command, .. } if command == "guest-get-time"),
        "{e:?}"
    );
    // No out-of-band commands for a guest agent.
    let e = qga
        .call(qmp_std::client::Call::new("guest-ping").oob())
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot send 'guest-ping' with exec-oob: the guest agent has no out-of-band commands"
    );
    // Arguments pass through.
    let r = qga
        .execute_raw("guest-sync", Some("{\"id\": 9223372036854775807}"))
        .unwrap();
    assert_eq!(r, "9223372036854775807");
}

#[test]
fn against_qemu_ga() {
    let Some(guard) = common::qemu_ga("qga-real") else {
        return;
    };
    let sock = guard.sock.clone();
    // A previous client leaves half a request in the agent's parser (the
    // parser outlives connections) and an unread reply behind.
    {
        let mut old = loop {
            match UnixStream::connect(&sock) {
                Ok(s) => break s,
                Err(_) => thread::sleep(Duration::from_millis(20)),
            }
        };
        old.write_all(
            b"{\"execute\":\"guest-ping\",\"id\":\"old\"}{\"execute\":\"guest-info\",\"argu",
        )
        .unwrap();
        // Read the ping reply: qemu-ga 7.2 exits when a client closes with
        // output unread (the read fails with ECONNRESET).
        let mut line = Vec::new();
        BufReader::new(&old).read_until(b'\n', &mut line).unwrap();
        assert_eq!(line, b"{\"return\": {}, \"id\": \"old\"}\n");
    }
    let mut qga = Qga::connect_unix(&sock, cfg()).unwrap();
    exercise(&mut qga, "");
    let version = qga
        .execute::<serde_json::Value, _>("guest-info", &())
        .unwrap()["version"]
        .as_str()
        .unwrap()
        .to_owned();
    println!("qemu-ga {version}");
    drop(qga);
    drop(guard);
}

#[test]
fn against_our_agent_in_qga_mode() {
    let dir = tempdir("ours");
    let sock = dir.join("qga.sock");
    let server = demo::bind(&Address::unix(&sock), true).unwrap();
    let stop = server.stop_handle();
    let handle = server.spawn();
    struct Stop(qmp_std::agent::StopHandle, PathBuf);
    impl Drop for Stop {
        fn drop(&mut self) {
            self.0.stop();
            let _ = std::fs::remove_dir_all(&self.1);
        }
    }
    let stopper = Stop(stop, dir);
    let mut qga = Qga::connect_unix(&sock, cfg()).unwrap();
    exercise(&mut qga, env!("CARGO_PKG_VERSION"));
    // Any Read + Write works too (no read timeouts then).
    let mut plain = Qga::new(UnixStream::connect(&sock).unwrap(), cfg());
    assert!(!plain.is_synced());
    plain.ping().unwrap();
    assert!(plain.is_synced());
    // And the Address-based constructor.
    let mut any = Qga::connect(&Address::unix(&sock), cfg()).unwrap();
    assert!(any.get_time().unwrap() > 1_700_000_000_000_000_000);
    drop((qga, plain, any));
    drop(stopper);
    handle.join().unwrap().unwrap();
}

#[test]
fn silent_peer_times_out_clearly() {
    let dir = tempdir("silent");
    let sock = dir.join("s");
    let listener = UnixListener::bind(&sock).unwrap();
    let keep = thread::spawn(move || {
        // Accept and never answer; hold the connection until the client
        // gives up and closes it.
        let (mut s, _) = listener.accept().unwrap();
        let _ = std::io::copy(&mut s, &mut std::io::sink());
    });
    let start = std::time::Instant::now();
    let err = Qga::connect_unix(
        &sock,
        Config::new().sync_timeout(Duration::from_millis(600)),
    )
    .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::HandshakeTimeout { step: Handshake::Sync, after } if *after == Duration::from_millis(600)
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "no reply to the guest-agent sync within 0.6 s (is this a guest agent?)"
    );
    // Three attempts of 200 ms each, and no more.
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(600) && took < Duration::from_millis(1500),
        "{took:?}"
    );
    keep.join().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    // Nothing listening at all: the connect retries, then fails clearly.
    let err = Qga::connect_unix(
        Path::new("/nonexistent/qga.sock"),
        Config::new().connect_timeout(Duration::from_millis(50)),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "cannot connect to unix:/nonexistent/qga.sock: No such file or directory (os error 2)"
    );
}
