//! The tokio client (`qmp_std::tokio::AsyncClient`) against a real QEMU
//! (`qemu-storage-daemon`), and against fake peers for what QEMU cannot
//! show (a descriptor received, a reply that never comes).
//!
//! Tests that need qemu-storage-daemon print a `SKIP:` line and pass when
//! it is missing, unless `QMP_REQUIRE_PEERS=1`.

use qmp_std::client::{Call, Config, Error, Notice};
use qmp_std::tokio::AsyncClient;
use serde::Deserialize;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};
use tokio_stream::StreamExt;

mod common;

use common::{qsd, rt, TempDir, GREETING};

#[derive(Deserialize, Debug)]
struct QemuVersion {
    major: u64,
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

fn cfg() -> Config {
    Config::new().timeout(Some(Duration::from_secs(10)))
}

#[test]
fn tokio_client_against_qemu_storage_daemon() {
    let Some(q) = qsd() else { return };
    rt().block_on(async {
        let c = AsyncClient::connect_unix(&q.sock, cfg()).await.unwrap();

        // Negotiation with oob.
        let g = c.greeting().clone();
        assert!(g.capabilities.iter().any(|c| c == "oob"), "{g:?}");
        assert!(c.oob_enabled());
        assert_eq!(g.version.0, 10, "{g:?}");
        let v: Version = c.execute("query-version", &()).await.unwrap();
        assert_eq!(v.qemu.major, 10);
        assert_eq!(v.package, g.package);

        // query-qmp-schema: over 100 KB in one reply.
        let raw = c.execute_raw("query-qmp-schema", None).await.unwrap();
        assert!(raw.len() > 100_000, "{} bytes", raw.len());
        let schema: serde_json::Value = serde_json::from_str(&raw).unwrap();
        assert!(schema.as_array().is_some_and(|a| !a.is_empty()));

        // Pipelined from several tasks through clones of the handle: more
        // than the eight in-band requests QEMU queues with oob.
        let tasks: Vec<_> = (0..40)
            .map(|_| {
                let c = c.clone();
                tokio::spawn(async move { c.execute::<Version, _>("query-version", &()).await })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap().qemu.major, 10);
        }
        assert_eq!(c.in_flight(), 0);

        // A job and its events, through a subscription taken before the
        // command (null-co has no blockdev-create of its own: formatting it
        // as qcow2 runs a job through its states to `concluded`).
        c.execute_raw(
            "blockdev-add",
            Some(r#"{"driver":"null-co","node-name":"n0","size":1048576}"#),
        )
        .await
        .unwrap();
        let mut jobs = c.subscribe(&["JOB_STATUS_CHANGE"]);
        c.execute_raw(
            "blockdev-create",
            Some(r#"{"job-id":"j1","options":{"driver":"qcow2","file":"n0","size":1048576}}"#),
        )
        .await
        .unwrap();
        let mut statuses = Vec::new();
        loop {
            let e = tokio::time::timeout(Duration::from_secs(10), jobs.next())
                .await
                .expect("JOB_STATUS_CHANGE within 10 s")
                .expect("the stream goes on");
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
        assert_eq!(jobs.dropped(), 0);
        c.execute_raw("job-dismiss", Some(r#"{"id":"j1"}"#))
            .await
            .unwrap();
        let e = jobs
            .wait_for(
                |e| e.data_json().is_some_and(|d| d.contains("null")),
                Some(Duration::from_secs(5)),
            )
            .await
            .unwrap()
            .expect("status null after job-dismiss");
        assert_eq!(e.data::<JobStatus>().unwrap().status, "null");
        // The general queue saw them too.
        assert!(c.next_event(Some(Duration::ZERO)).await.unwrap().is_some());

        // An unknown command: a QMP error, the session goes on.
        match c.execute_raw("nope", None).await {
            Err(Error::Qmp(e)) => {
                assert_eq!(e.class, "CommandNotFound");
                assert_eq!(e.desc, "The command nope has not been found");
            }
            other => panic!("{other:?}"),
        }

        // exec-oob goes out as such (qemu-storage-daemon has no command
        // that allows it) and is answered by id.
        match c.call(Call::new("query-version").oob()).await {
            Err(Error::Qmp(e)) => {
                assert_eq!(e.desc, "The command query-version does not support OOB")
            }
            other => panic!("{other:?}"),
        }

        // A cancelled call: the future is dropped once the command is on
        // its way; its late reply is dropped by id and nothing stays filed.
        let schema = c.execute_raw("query-qmp-schema", None);
        tokio::select! {
            biased;
            _ = schema => panic!("query-qmp-schema answered before the cancel"),
            _ = tokio::task::yield_now() => {}
        }
        assert_eq!(c.in_flight(), 0);
        let v: Version = c.execute("query-version", &()).await.unwrap();
        assert_eq!(v.qemu.major, 10);
        let notices = c.take_notices();
        assert!(
            matches!(notices.as_slice(), [Notice::Unmatched { id: Some(_), message }] if message.len() > 100_000),
            "{notices:?}"
        );

        // fd passing: qemu-storage-daemon has no `getfd` (only the system
        // emulator does): a descriptor rides along with a command, the
        // command runs, and `getfd` is a clean QMP error. The descriptor
        // itself reaches the peer in `tokio_fd_passing_reaches_the_peer`.
        let (r, _w) = rustix::pipe::pipe().unwrap();
        let v = c
            .call(Call::new("query-version").fd(r.as_fd()))
            .await
            .unwrap();
        assert!(v.contains("\"major\": 10"), "{v}");
        match c
            .call(
                Call::new("getfd")
                    .args_json(r#"{"fdname":"pipe0"}"#)
                    .fd(r.as_fd()),
            )
            .await
        {
            Err(Error::Qmp(e)) => {
                assert_eq!(e.class, "CommandNotFound");
                assert_eq!(e.desc, "The command getfd has not been found");
            }
            other => panic!("{other:?}"),
        }
        assert!(c.take_notices().is_empty());

        // quit: the reply, then the daemon closes; the stream ends.
        c.execute_raw("quit", None).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), c.closed())
            .await
            .expect("closed after quit");
        while jobs.next().await.is_some() {}
        assert!(matches!(
            c.execute_raw("query-version", None).await,
            Err(Error::Closed)
        ));
    });
}

/// A fake monitor that greets, negotiates, then answers nothing.
fn silent_peer(dir: &TempDir) -> std::path::PathBuf {
    let path = dir.path("silent.sock");
    let listener = UnixListener::bind(&path).unwrap();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.write_all(GREETING).unwrap();
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf);
        s.write_all(b"{\"return\": {}}\r\n").unwrap();
        while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
    });
    path
}

#[test]
fn tokio_per_call_timeout_and_cancel_against_a_hung_peer() {
    let dir = TempDir::new("tokio-hung");
    let path = silent_peer(&dir);
    rt().block_on(async {
        let c = AsyncClient::connect_unix(&path, Config::new())
            .await
            .unwrap();
        let t0 = Instant::now();
        match c
            .call(Call::new("query-status").timeout(Duration::from_millis(300)))
            .await
        {
            Err(Error::Timeout { command, after }) => {
                assert_eq!(command, "query-status");
                assert_eq!(after, Duration::from_millis(300));
            }
            other => panic!("{other:?}"),
        }
        let took = t0.elapsed();
        assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(2));
        // Cancelled by the caller's own timeout: nothing stays filed.
        let r = tokio::time::timeout(
            Duration::from_millis(100),
            c.execute_raw("query-status", None),
        )
        .await;
        assert!(r.is_err());
        assert_eq!(c.in_flight(), 0);
        assert!(!c.is_closed());
    });
}

#[test]
fn tokio_fd_passing_reaches_the_peer() {
    let dir = TempDir::new("tokio-fd");
    let path = dir.path("fd.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let peer = common::fd_peer(listener);
    rt().block_on(async {
        let c = AsyncClient::connect_unix(&path, Config::new())
            .await
            .unwrap();
        let (r, w) = rustix::pipe::pipe().unwrap();
        std::fs::File::from(w).write_all(b"hello").unwrap();
        let got = c
            .call(
                Call::new("getfd")
                    .args_json(r#"{"fdname":"p"}"#)
                    .fd(r.as_fd())
                    .timeout(Duration::from_secs(5)),
            )
            .await
            .unwrap();
        assert_eq!(got, r#"{"read": "hello"}"#);
    });
    peer.join().unwrap().unwrap();
}

#[test]
fn tokio_fds_over_tcp_are_refused() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.write_all(GREETING).unwrap();
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf);
        s.write_all(b"{\"return\": {}}\r\n").unwrap();
        while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
    });
    rt().block_on(async {
        let c = AsyncClient::connect_tcp(&addr, Config::new())
            .await
            .unwrap();
        let (r, _w) = rustix::pipe::pipe().unwrap();
        assert!(matches!(
            c.call(Call::new("getfd").fd(r.as_fd())).await,
            Err(Error::Unsupported(_))
        ));
    });
}
