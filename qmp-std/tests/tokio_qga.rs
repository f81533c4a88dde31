//! The tokio guest-agent client (`qmp_std::tokio::AsyncQga`) against
//! `qemu-ga` (a `SKIP:` line without it, unless `QMP_REQUIRE_PEERS=1`):
//! the session, an agent that answers only a later sync attempt (as
//! qemu-ga that starts after the host connected), and a silent peer.

use qmp_std::client::Call;
use qmp_std::qga::{Config, Error, Handshake};
use qmp_std::tokio::AsyncQga;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

mod common;

use common::{rt, TempDir};

fn cfg() -> Config {
    Config::new().timeout(Some(Duration::from_secs(5)))
}

#[test]
fn tokio_qga_against_qemu_ga() {
    let Some(ga) = common::qemu_ga("tokio-qga") else {
        return;
    };
    rt().block_on(async {
        // The connect retries until qemu-ga has created its socket.
        let qga = AsyncQga::connect_unix(&ga.sock, cfg()).await.unwrap();
        assert!(qga.is_synced());
        qga.ping().await.unwrap();
        let info: serde_json::Value = qga.execute("guest-info", &()).await.unwrap();
        assert!(info["version"].is_string(), "{info}");
        assert!(info["supported_commands"].is_array());
        let t = qga.get_time().await.unwrap();
        assert!(t > 1_700_000_000_000_000_000, "{t}");

        // Concurrent calls from clones, an explicit sync among them.
        let calls: Vec<_> = (0..10)
            .map(|i| {
                let qga = qga.clone();
                tokio::spawn(async move {
                    if i == 5 {
                        qga.sync().await?;
                    }
                    qga.get_time().await
                })
            })
            .collect();
        for c in calls {
            assert!(c.await.unwrap().unwrap() >= t);
        }

        let err = qga.execute_raw("guest-nope", None).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "CommandNotFound: The command guest-nope has not been found"
        );
        let e = qga.call(Call::new("guest-ping").oob()).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot send 'guest-ping' with exec-oob: the guest agent has no out-of-band commands"
        );
        let r = qga
            .execute_raw("guest-sync", Some("{\"id\": 9223372036854775807}"))
            .await
            .unwrap();
        assert_eq!(r, "9223372036854775807");
        // A call that times out: the next one syncs first, and works.
        let r = qga
            .call(
                Call::new("guest-sleep")
                    .args_json(r#"{"seconds": 1}"#)
                    .timeout(Duration::from_millis(200)),
            )
            .await;
        match r {
            Err(Error::Timeout { command, .. }) => assert_eq!(command, "guest-sleep"),
            // An agent built without guest-sleep answers at once.
            Err(Error::Qmp(_)) => {}
            other => panic!("{other:?}"),
        }
        qga.ping().await.unwrap();
    });
}

/// Listens on `path`; the connection it accepts is relayed to qemu-ga's
/// socket, except that what the client sends during the first `deaf` is
/// dropped: an agent that is not running yet when the host connects.
fn late_agent(path: PathBuf, agent: PathBuf, deaf: Duration) -> std::thread::JoinHandle<()> {
    let listener = UnixListener::bind(&path).unwrap();
    std::thread::spawn(move || {
        let (mut client, _) = listener.accept().unwrap();
        let t0 = Instant::now();
        let mut to_agent = None::<UnixStream>;
        let mut buf = [0u8; 4096];
        client
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        loop {
            match client.read(&mut buf) {
                Ok(0) => return,
                Ok(_) if t0.elapsed() < deaf => {}
                Ok(n) => {
                    if to_agent.is_none() {
                        let a = UnixStream::connect(&agent).unwrap();
                        let (mut from, mut back) =
                            (a.try_clone().unwrap(), client.try_clone().unwrap());
                        std::thread::spawn(move || {
                            let _ = std::io::copy(&mut from, &mut back);
                        });
                        to_agent = Some(a);
                    }
                    if let Some(a) = &mut to_agent {
                        if a.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                }
                Err(_) => {}
            }
        }
    })
}

#[test]
fn tokio_qga_retries_the_sync_until_the_agent_answers() {
    let Some(ga) = common::qemu_ga("tokio-qga") else {
        return;
    };
    // Wait until qemu-ga listens.
    let t0 = Instant::now();
    while UnixStream::connect(&ga.sock).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "qemu-ga did not listen"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let dir = TempDir::new("tokio-qga-late");
    let path = dir.path("late.sock");
    let relay = late_agent(path.clone(), ga.sock.clone(), Duration::from_millis(1200));
    rt().block_on(async {
        let t0 = Instant::now();
        let qga = AsyncQga::connect_unix(&path, cfg().sync_timeout(Duration::from_secs(3)))
            .await
            .unwrap();
        // The first attempt (its second) went unanswered; the second got
        // through.
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_millis(1000) && took < Duration::from_millis(2900),
            "{took:?}"
        );
        qga.ping().await.unwrap();
    });
    relay.join().unwrap();
}

#[test]
fn tokio_qga_silent_peer_times_out_within_the_sync_timeout() {
    let dir = TempDir::new("tokio-qga-silent");
    let sock = dir.path("s");
    let listener = UnixListener::bind(&sock).unwrap();
    let keep = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let _ = std::io::copy(&mut s, &mut std::io::sink());
    });
    rt().block_on(async {
        let start = Instant::now();
        let err = AsyncQga::connect_unix(&sock, Config::new().sync_timeout(Duration::from_millis(600)))
            .await
            .unwrap_err();
        assert!(
            matches!(
                &err,
                Error::HandshakeTimeout { step: Handshake::Sync, after } if *after == Duration::from_millis(600)
            ),
            "{err:?}"
        );
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(600) && took < Duration::from_millis(1500),
            "{took:?}"
        );
    });
    keep.join().unwrap();
}
