//! The tokio agent runner (`qmp_std::tokio::AsyncServer`) over real
//! sockets: async handlers (an in-band one awaiting while `exec-oob` runs),
//! events fanned out to negotiated sessions only, the blocking runner's
//! bounds (the event backlog's counted close, the session cap's refusal),
//! pipelining to end of stream, the guest-agent dialect, and our tokio
//! clients against it.

mod common;

use common::{line, raw_client as connect};

use qmp_std::agent::{CommandDef, Ctx, Request, Response, ServerConfig, StopHandle};
use qmp_std::client::Config;
use qmp_std::tokio::{Answer, AsyncClient, AsyncHandler, AsyncQga, AsyncServer};
use qmp_std::{Address, Json};
use std::io::{BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Runs `server` on a current-thread runtime of its own thread.
fn spawn<H: AsyncHandler>(server: AsyncServer<H>) -> (StopHandle, thread::JoinHandle<()>) {
    let stop = server.stop_handle();
    let t = thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(server.run())
            .unwrap();
    });
    (stop, t)
}

fn negotiate(s: &mut UnixStream, r: &mut BufReader<UnixStream>, oob: bool) {
    assert!(line(r).starts_with("{\"QMP\": "));
    if oob {
        s.write_all(br#"{"execute":"qmp_capabilities","arguments":{"enable":["oob"]}}"#)
            .unwrap();
    } else {
        s.write_all(br#"{"execute":"qmp_capabilities"}"#).unwrap();
    }
    assert_eq!(line(r), "{\"return\": {}}\r\n");
}

/// `slow` awaits `ms` then answers; `fast` (OOB) answers at once; `emit`
/// broadcasts EVT and answers; `later-emit` does it from its future;
/// `boom` panics, `boom-later` panics in its future.
struct Vm;

impl AsyncHandler for Vm {
    fn handle(&self, ctx: &mut Ctx<'_>, req: &Request<'_>) -> Answer {
        match req.name {
            "slow" => {
                let ms = req.arg("ms").and_then(|v| v.as_u64()).unwrap_or(0);
                Answer::later(async move {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    Response::Return(Json::string("slept"))
                })
            }
            "emit" => {
                ctx.events().emit("EVT", None);
                Response::Return(Json::empty_object()).into()
            }
            "later-emit" => {
                let events = ctx.events().clone();
                Answer::later(async move {
                    tokio::task::yield_now().await;
                    events.emit("LATER", None);
                    Response::Return(Json::empty_object())
                })
            }
            "boom" => panic!("boom"),
            "boom-later" => Answer::later(async { panic!("boom later") }),
            _ => Response::Return(Json::string(req.name)).into(),
        }
    }
}

fn vm_config() -> ServerConfig {
    let commands = [
        "slow",
        "emit",
        "later-emit",
        "boom",
        "boom-later",
        "query-name",
    ]
    .into_iter()
    .map(CommandDef::new)
    .chain([CommandDef::new("fast").oob()])
    .collect();
    ServerConfig::qmp((10, 0, 0), "", commands)
}

#[test]
fn tokio_runner_async_handlers_oob_and_event_fanout() {
    let dir = common::TempDir::new("tokio-agent");
    let sock = dir.path("s");
    let server = AsyncServer::bind(&Address::unix(&sock), vm_config(), Vm).unwrap();
    let events = server.events();
    let (stop, run) = spawn(server);
    let (mut a, mut ar) = connect(&sock);
    negotiate(&mut a, &mut ar, true);
    let (mut b, mut br) = connect(&sock);
    negotiate(&mut b, &mut br, false);
    // C is still negotiating: it gets no event.
    let (mut c, mut cr) = connect(&sock);
    assert!(line(&mut cr).starts_with("{\"QMP\": "));

    // An in-band handler awaits; an exec-oob request overtakes it, and the
    // next in-band one waits for it (in order, as in QEMU).
    let t0 = Instant::now();
    a.write_all(br#"{"execute":"slow","arguments":{"ms":300},"id":1}{"execute":"query-name","id":2}{"exec-oob":"fast","id":3}"#)
        .unwrap();
    assert_eq!(line(&mut ar), "{\"return\": \"fast\", \"id\": 3}\r\n");
    assert!(
        t0.elapsed() < Duration::from_millis(250),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(line(&mut ar), "{\"return\": \"slept\", \"id\": 1}\r\n");
    assert!(t0.elapsed() >= Duration::from_millis(300));
    assert_eq!(line(&mut ar), "{\"return\": \"query-name\", \"id\": 2}\r\n");

    // Events before the reply of the command that caused them, to every
    // negotiated session; from a future too.
    a.write_all(br#"{"execute":"emit","id":4}"#).unwrap();
    assert!(line(&mut ar).contains("\"event\": \"EVT\""));
    assert_eq!(line(&mut ar), "{\"return\": {}, \"id\": 4}\r\n");
    assert!(line(&mut br).contains("\"event\": \"EVT\""));
    a.write_all(br#"{"execute":"later-emit","id":5}"#).unwrap();
    assert!(line(&mut ar).contains("\"event\": \"LATER\""));
    assert_eq!(line(&mut ar), "{\"return\": {}, \"id\": 5}\r\n");
    assert!(line(&mut br).contains("\"event\": \"LATER\""));

    // A handler that panics, now or in its future: an error reply, the
    // session goes on.
    a.write_all(br#"{"execute":"boom","id":6}{"execute":"boom-later","id":7}{"execute":"query-name","id":8}"#)
        .unwrap();
    for id in [6, 7] {
        assert_eq!(
            line(&mut ar),
            format!("{{\"id\": {id}, \"error\": {{\"class\": \"GenericError\", \"desc\": \"internal error: command handler panicked\"}}}}\r\n")
        );
    }
    assert_eq!(line(&mut ar), "{\"return\": \"query-name\", \"id\": 8}\r\n");

    // The sender from outside: both negotiated sessions, not C.
    assert_eq!(events.emit("OUTSIDE", None), 3);
    assert!(line(&mut ar).contains("\"event\": \"OUTSIDE\""));
    assert!(line(&mut br).contains("\"event\": \"OUTSIDE\""));
    c.write_all(br#"{"execute":"qmp_capabilities"}"#).unwrap();
    assert_eq!(line(&mut cr), "{\"return\": {}}\r\n");

    // Pipelined requests then end of stream: every reply, then the close.
    let mut burst = Vec::new();
    for i in 0..500 {
        write!(burst, r#"{{"execute":"query-name","id":{i}}}"#).unwrap();
    }
    b.write_all(&burst).unwrap();
    b.shutdown(std::net::Shutdown::Write).unwrap();
    for i in 0..500 {
        assert_eq!(
            line(&mut br),
            format!("{{\"return\": \"query-name\", \"id\": {i}}}\r\n")
        );
    }
    assert_eq!(line(&mut br), "");

    let stats = events.stats();
    assert_eq!((stats.admitted, stats.refused), (3, 0), "{stats:?}");
    stop.stop();
    run.join().unwrap();
    assert!(!sock.exists());
}

#[test]
fn tokio_runner_closes_and_counts_a_session_past_its_backlog() {
    let cfg = ServerConfig::qmp((10, 0, 0), "", vec![CommandDef::new("query-name")])
        .event_backlog(256 << 10);
    let handler =
        |_: &mut Ctx<'_>, _: &Request<'_>| Answer::from(Response::Return(Json::empty_object()));
    let dir = common::TempDir::new("tokio-backlog");
    let sock = dir.path("s");
    let server = AsyncServer::bind(&Address::unix(&sock), cfg, handler).unwrap();
    let events = server.events();
    let (stop, run) = spawn(server);
    let (mut a, mut ar) = connect(&sock);
    negotiate(&mut a, &mut ar, false);
    let (mut b, mut br) = connect(&sock);
    negotiate(&mut b, &mut br, false);
    // B reads every event (the emitter waits for it after every 200: a
    // reader that keeps up is never closed); A never reads.
    let seen = Arc::new(AtomicUsize::new(0));
    let reader = {
        let seen = Arc::clone(&seen);
        thread::spawn(move || loop {
            let l = line(&mut br);
            if l.contains("\"id\": \"end\"") {
                return;
            }
            assert!(l.starts_with("{\"timestamp\""), "{l}");
            seen.fetch_add(1, Ordering::SeqCst);
        })
    };
    let total = 200_000;
    let data = Json::parse(r#"{"device":"virtio-disk0","path":"/machine/peripheral"}"#).unwrap();
    let mut handed = 0;
    for i in 1..=total {
        handed += events.emit("DEVICE_DELETED", Some(data.clone()));
        if i % 200 == 0 {
            let t0 = Instant::now();
            while seen.load(Ordering::SeqCst) < i {
                assert!(t0.elapsed() < Duration::from_secs(10), "B stalled at {i}");
                thread::yield_now();
            }
        }
    }
    let stats = events.stats();
    assert_eq!(stats.closed_behind, 1, "{stats:?}");
    assert!(handed > total && handed < 2 * total, "{handed}");
    let t0 = Instant::now();
    while events.connections() != 1 {
        assert!(t0.elapsed() < Duration::from_secs(10), "A not closed");
        thread::sleep(Duration::from_millis(5));
    }
    b.write_all(br#"{"execute":"query-name","id":"end"}"#)
        .unwrap();
    reader.join().unwrap();
    assert_eq!(seen.load(Ordering::SeqCst), total);
    // A reads what its socket still held, then end of stream.
    let mut held = Vec::new();
    ar.read_to_end(&mut held).unwrap();
    stop.stop();
    run.join().unwrap();
}

#[test]
fn tokio_runner_refuses_past_its_session_cap() {
    let dir = common::TempDir::new("tokio-cap");
    let sock = dir.path("s");
    let cfg = vm_config().max_sessions(2);
    let server = AsyncServer::bind(&Address::unix(&sock), cfg, Vm).unwrap();
    let events = server.events();
    let (stop, run) = spawn(server);
    let (mut a, mut ar) = connect(&sock);
    negotiate(&mut a, &mut ar, false);
    let (b, mut br) = connect(&sock);
    assert!(line(&mut br).starts_with("{\"QMP\": "));
    // The third: the refusal line, then end of stream.
    let (_c, mut cr) = connect(&sock);
    assert_eq!(
        line(&mut cr),
        "{\"error\": {\"class\": \"GenericError\", \"desc\": \"too many sessions (at most 2); try again later\"}}\r\n"
    );
    assert_eq!(line(&mut cr), "");
    // The admitted ones go on.
    a.write_all(br#"{"execute":"query-name","id":1}"#).unwrap();
    assert_eq!(line(&mut ar), "{\"return\": \"query-name\", \"id\": 1}\r\n");
    let stats = events.stats();
    assert_eq!((stats.sessions, stats.admitted, stats.refused), (2, 2, 1));
    // Once one closes, a new one is admitted.
    drop((b, br));
    let t0 = Instant::now();
    while events.connections() != 1 {
        assert!(t0.elapsed() < Duration::from_secs(5));
        thread::sleep(Duration::from_millis(5));
    }
    let (_d, mut dr) = connect(&sock);
    assert!(line(&mut dr).starts_with("{\"QMP\": "));
    stop.stop();
    run.join().unwrap();
}

#[test]
fn tokio_clients_against_the_tokio_runner() {
    let dir = common::TempDir::new("tokio-both");
    let (qmp_sock, qga_sock) = (dir.path("qmp"), dir.path("qga"));
    let qmp = qmp_std::demo::bind_tokio(&Address::unix(&qmp_sock), false).unwrap();
    let qga = qmp_std::demo::bind_tokio(&Address::unix(&qga_sock), true).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (stop_qmp, stop_qga) = (qmp.stop_handle(), qga.stop_handle());
    rt.block_on(async {
        let servers = tokio::spawn(async move {
            let (a, b) = tokio::join!(qmp.run(), qga.run());
            a.and(b)
        });
        let cfg = Config::new().timeout(Some(Duration::from_secs(5)));
        let c = AsyncClient::connect_unix(&qmp_sock, cfg.clone())
            .await
            .unwrap();
        assert!(c.oob_enabled());
        let mut stops = c.subscribe(&["STOP"]);
        c.execute_raw("stop", None).await.unwrap();
        let e = stops
            .wait_for(|_| true, Some(Duration::from_secs(5)))
            .await
            .unwrap()
            .expect("STOP");
        assert_eq!(e.name, "STOP");
        // exec-oob overtakes an awaiting in-band x-sleep.
        let slow = c.execute_raw("x-sleep", Some(r#"{"ms": 300}"#));
        let fast = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let r = c
                .call(
                    qmp_std::client::Call::new("x-sleep")
                        .args_json(r#"{"ms": 1}"#)
                        .oob(),
                )
                .await;
            (r, Instant::now())
        };
        let ((slow, slow_at), (fast, fast_at)) =
            tokio::join!(async { (slow.await, Instant::now()) }, fast);
        slow.unwrap();
        fast.unwrap();
        assert!(fast_at < slow_at);

        let g = AsyncQga::connect_unix(&qga_sock, cfg).await.unwrap();
        g.ping().await.unwrap();
        assert!(g.get_time().await.unwrap() > 0);
        stop_qmp.stop();
        stop_qga.stop();
        servers.await.unwrap().unwrap();
    });
}
