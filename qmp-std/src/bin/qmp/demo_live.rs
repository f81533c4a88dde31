//! `qmp demo`: a live session, no QEMU needed. Starts the demo agent
//! (`qmp agent`) in-process on a temporary Unix socket, connects
//! `qmp_std::client` to it through a wiretap, and prints every byte each
//! side sent (→ client to server, ← server to client) with a decoded line
//! after each step.

use qmp_std::client::{self, Call, Client, Config, Transport};
use qmp_std::Address;
use std::io::{self, Read, Write};
use std::os::fd::BorrowedFd;
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// A Unix stream that prints what goes over it: each write as one `→`
/// line, received bytes as `←` lines (one per server line).
struct Tap {
    inner: UnixStream,
    partial: Vec<u8>,
}

impl Tap {
    fn show_incoming(&mut self, bytes: &[u8]) {
        self.partial.extend_from_slice(bytes);
        while let Some(i) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=i).collect();
            let text = String::from_utf8_lossy(&line);
            println!("  ← {}", text.trim_end_matches(['\r', '\n']));
        }
    }
}

impl Read for Tap {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.show_incoming(&buf[..n]);
        Ok(n)
    }
}

impl Write for Tap {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        println!("  → {}", String::from_utf8_lossy(&buf[..n]));
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl Transport for Tap {
    fn set_read_timeout(&mut self, t: Option<Duration>) -> io::Result<()> {
        self.inner.set_read_timeout(t)
    }
    fn set_write_timeout(&mut self, t: Option<Duration>) -> io::Result<()> {
        self.inner.set_write_timeout(t)
    }
    fn supports_fds(&self) -> bool {
        true
    }
    fn send_with_fds(&mut self, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<usize> {
        qmp_std::fd::send_with_fds(&self.inner, bytes, fds)
    }
}

fn step(title: &str) {
    println!("\n== {title}");
}

fn note(text: impl std::fmt::Display) {
    println!("     {text}");
}

fn data(e: &client::Event) -> String {
    e.data
        .as_deref()
        .map(|d| format!(" {d}"))
        .unwrap_or_default()
}

fn show_events(c: &mut Client<Tap>) -> Result<(), client::Error> {
    while let Some(e) = c.next_event(Some(Duration::ZERO))? {
        note(format_args!("event {}{}", e.name, data(&e)));
    }
    Ok(())
}

/// Runs the demo; exit status 0 on success.
pub fn run() -> ExitCode {
    let path = std::env::temp_dir().join(format!("qmp-demo-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let server = match qmp_std::demo::bind(&Address::unix(&path), false) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("qmp demo: cannot listen on {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    let stop = server.stop_handle();
    let thread = server.spawn();
    let result = session(&path);
    stop.stop();
    let _ = thread.join();
    let _ = std::fs::remove_file(&path);
    match result {
        Ok(()) => {
            println!("\nDone: every byte above went over a real Unix socket.");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("qmp demo: {e}");
            ExitCode::from(2)
        }
    }
}

fn session(path: &std::path::Path) -> Result<(), client::Error> {
    println!(
        "qmp demo: the demo agent (what `qmp agent` serves) on {}\n\
         driven by qmp_std::client. → client to server, ← server to client, \
         bytes as sent;\nindented lines say what the client made of them.",
        path.display()
    );

    step("connect: greeting, then negotiation (oob offered, so enabled)");
    let stream = UnixStream::connect(path).map_err(|source| client::Error::Connect {
        address: format!("unix:{}", path.display()),
        source,
    })?;
    let tap = Tap {
        inner: stream,
        partial: Vec::new(),
    };
    let cfg = Config::new().timeout(Some(Duration::from_secs(5)));
    let mut c = Client::handshake(tap, cfg)?;
    let g = c.greeting().clone();
    note(format_args!(
        "server {}.{}.{} ({}), offers {:?}; oob enabled: {}",
        g.version.0,
        g.version.1,
        g.version.2,
        g.package,
        g.capabilities,
        c.oob_enabled()
    ));

    step("query-version (the client numbers its requests: id 1, 2, …)");
    #[derive(serde::Deserialize)]
    struct Version {
        qemu: Qemu,
        package: String,
    }
    #[derive(serde::Deserialize)]
    struct Qemu {
        major: u64,
        minor: u64,
        micro: u64,
    }
    let v: Version = c.execute("query-version", &())?;
    note(format_args!(
        "typed: version {}.{}.{}, package {:?}",
        v.qemu.major, v.qemu.minor, v.qemu.micro, v.package
    ));

    step("stop: the STOP event comes before the reply");
    let r = c.execute_raw("stop", None)?;
    show_events(&mut c)?;
    note(format_args!("return {r}"));
    let r = c.execute_raw("query-status", None)?;
    note(format_args!(
        "query-status: {}",
        client::compact_json(&r).unwrap_or(r)
    ));

    step("cont: RESUME, then the reply");
    let r = c.execute_raw("cont", None)?;
    show_events(&mut c)?;
    note(format_args!("return {r}"));

    step("an unknown command: a QMP error, the session goes on");
    match c.execute_raw("nope", None) {
        Err(qmp_std::Error::Qmp(e)) => note(format_args!("error {}: {}", e.class, e.desc)),
        other => note(format_args!("unexpected: {other:?}")),
    }

    step("OOB: x-sleep 300 ms in-band, then x-sleep 1 ms with exec-oob");
    let t0 = Instant::now();
    let slow = c.send(Call::new("x-sleep").args_json(r#"{"ms": 300}"#))?;
    let fast = c.send(Call::new("x-sleep").args_json(r#"{"ms": 1}"#).oob())?;
    c.wait(fast)?;
    note(format_args!(
        "the exec-oob reply arrived first, after {} ms; the in-band one is still pending: {}",
        t0.elapsed().as_millis(),
        !c.is_ready(&slow)
    ));
    c.wait(slow)?;
    note(format_args!(
        "then the in-band reply, after {} ms",
        t0.elapsed().as_millis()
    ));

    step("quit: the SHUTDOWN event, then the reply, then the server hangs up");
    let jobs = c.subscribe(&["SHUTDOWN"]);
    c.execute_raw("quit", None)?;
    if let Some(e) = c.next_event_for(&jobs, Some(Duration::from_secs(1)))? {
        note(format_args!("event {}{}", e.name, data(&e)));
    }
    match c.next_event(Some(Duration::from_secs(2))) {
        Err(client::Error::Disconnected { .. }) => note("connection closed by the server"),
        Ok(Some(_)) => {
            // The SHUTDOWN copy of the general queue; the close follows.
            match c.next_event(Some(Duration::from_secs(2))) {
                Err(client::Error::Disconnected { .. }) => note("connection closed by the server"),
                other => note(format_args!("unexpected: {other:?}")),
            }
        }
        other => note(format_args!("unexpected: {other:?}")),
    }
    Ok(())
}
