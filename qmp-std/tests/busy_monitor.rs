//! A QEMU monitor serves one client at a time: while it does, a second
//! client's connection waits in the listen backlog without a greeting, and
//! once the backlog is full a Unix `connect` itself would block (a
//! blocking connect waited forever). The connect deadline bounds connect
//! and greeting together: the second client fails within about its 1 s,
//! over Unix and TCP, for the blocking and the tokio clients alike.
//!
//! Needs qemu-storage-daemon: a `SKIP:` line and a pass without it, unless
//! `QMP_REQUIRE_PEERS=1`.

use qmp_std::client::{Client, Config, Error, Handshake};
use qmp_std::tokio::AsyncClient;
use qmp_std::Address;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

mod common;

/// A free TCP port on loopback (bound, then released for QEMU to take).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn second(deadline: Duration) -> Config {
    Config::new().connect_timeout(deadline)
}

/// Connects a second client with a 1 s deadline, blocking and tokio;
/// both must fail in about 1 s with `expect`'s error.
fn second_client_fails_in_time(address: &Address, expect: fn(&Error) -> bool) {
    let t0 = Instant::now();
    let r = Client::connect(address, second(Duration::from_secs(1)));
    let took = t0.elapsed();
    match r {
        Err(e) => assert!(expect(&e), "blocking, {address}: {e:?}"),
        Ok(_) => panic!("blocking, {address}: a busy monitor greeted a second client"),
    }
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(1800),
        "blocking, {address}: failed after {took:?}"
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let t0 = Instant::now();
    let r = rt.block_on(AsyncClient::connect(
        address,
        second(Duration::from_secs(1)),
    ));
    let took = t0.elapsed();
    match r {
        Err(e) => assert!(expect(&e), "tokio, {address}: {e:?}"),
        Ok(_) => panic!("tokio, {address}: a busy monitor greeted a second client"),
    }
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(1800),
        "tokio, {address}: failed after {took:?}"
    );
}

fn no_greeting(e: &Error) -> bool {
    matches!(
        e,
        Error::HandshakeTimeout {
            step: Handshake::Greeting,
            ..
        }
    )
}

fn not_accepted(e: &Error) -> bool {
    matches!(e, Error::Connect { source, .. } if source.kind() == std::io::ErrorKind::TimedOut)
}

#[test]
fn a_busy_monitor_fails_a_second_client_by_its_deadline() {
    let port = free_port();
    let tcp = format!("127.0.0.1:{port}");
    let chardev = format!("socket,host=127.0.0.1,port={port},server=on,wait=off,id=t0");
    let Some(q) = common::qsd_with(&["--chardev", &chardev, "--monitor", "chardev=t0"]) else {
        return;
    };
    let unix = Address::unix(&q.sock);
    let tcp = Address::Tcp(tcp);
    // The first clients: the monitors are busy with them from now on.
    let _first_unix = Client::connect(&unix, Config::new()).expect("first unix client");
    let _first_tcp = Client::connect(&tcp, Config::new()).expect("first tcp client");

    // Room in the backlog: connected, but no greeting comes.
    second_client_fails_in_time(&unix, no_greeting);
    second_client_fails_in_time(&tcp, no_greeting);

    // A full Unix backlog: connect itself would wait. QEMU listens with a
    // backlog of one, which Linux lets hold two connections.
    let mut pending = Vec::new();
    loop {
        let s = rustix::net::socket_with(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::STREAM,
            rustix::net::SocketFlags::NONBLOCK,
            None,
        )
        .unwrap();
        let addr = rustix::net::SocketAddrUnix::new(&q.sock).unwrap();
        match rustix::net::connect(&s, &addr) {
            Ok(()) => pending.push(UnixStream::from(s)),
            Err(rustix::io::Errno::AGAIN) => break,
            Err(e) => panic!("{e}"),
        }
        assert!(pending.len() < 64, "the backlog never filled");
    }
    second_client_fails_in_time(&unix, not_accepted);

    // The other monitor of the same daemon is free: it greets at once.
    let t0 = Instant::now();
    let c = Client::connect(&Address::unix(&q.sock2), second(Duration::from_secs(1)));
    assert!(c.is_ok(), "{c:?}");
    assert!(t0.elapsed() < Duration::from_millis(500));
}
