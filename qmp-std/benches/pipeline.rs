//! Pipelined `query-version` throughput over a Unix socket: the in-process
//! demo agent (`qmp agent`) against qemu-storage-daemon, in one run.
//!
//! `cargo bench -p qmp-std --bench pipeline`
//!
//! * raw: one thread writes all 20,000 requests while another frames the
//!   replies with `qmp_core::scan::Framer` (negotiated without `oob`, so
//!   the server takes them in lock-step as fast as it can): this measures
//!   the server.
//! * client: the same through `qmp_std::client` (`send`/`wait`, up to 64 in
//!   flight, `oob` off), and lock-step `execute_raw` round trips.
//!
//! It runs only when given `--bench` (as `cargo bench` passes); under
//! `cargo test --benches` (no `--bench`), or with `--test`/`--list`, it
//! exits at once.

use qmp_core::message::Inbound;
use qmp_core::scan::{Frame, Framer};
use qmp_std::client::{Call, Client, Config};
use qmp_std::Address;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const N: usize = 20_000;
const LOCKSTEP: usize = 2_000;

struct Rates {
    raw: f64,
    client_pipelined: f64,
    client_lockstep: f64,
}

/// Reads from `s` until one message framed, returns whether it was a
/// `return`.
fn read_one(s: &mut UnixStream, framer: &mut Framer<Vec<u8>>) -> Result<bool, String> {
    let mut b = [0u8; 1];
    loop {
        let n = s.read(&mut b).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed".into());
        }
        let fed = framer.feed(&b[..n]);
        if let Some(Frame::Message(m)) = fed.frame {
            return Ok(matches!(m.classify(), Inbound::Return { .. }));
        }
    }
}

fn raw_pipeline(path: &Path) -> Result<f64, String> {
    let mut s = UnixStream::connect(path).map_err(|e| e.to_string())?;
    let mut framer = Framer::new(vec![0u8; 1 << 20]);
    read_one(&mut s, &mut framer)?; // greeting
    s.write_all(b"{\"execute\":\"qmp_capabilities\"}")
        .map_err(|e| e.to_string())?;
    if !read_one(&mut s, &mut framer)? {
        return Err("negotiation failed".into());
    }
    let mut requests = Vec::with_capacity(N * 40);
    for i in 0..N {
        write!(requests, "{{\"execute\":\"query-version\",\"id\":{i}}}")
            .map_err(|e| e.to_string())?;
    }
    let mut w = s.try_clone().map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let writer = std::thread::spawn(move || w.write_all(&requests));
    let mut buf = vec![0u8; 256 << 10];
    let mut replies = 0;
    while replies < N {
        let n = s.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err(format!("closed after {replies} replies"));
        }
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            let fed = framer.feed(rest);
            rest = &rest[fed.consumed..];
            match fed.frame {
                Some(Frame::Message(m)) => match m.classify() {
                    Inbound::Return { id: Some(_), .. } => replies += 1,
                    Inbound::Event(_) => {}
                    other => return Err(format!("unexpected reply {other:?}")),
                },
                Some(Frame::Error(e)) => return Err(format!("framing error: {e}")),
                _ => {}
            }
        }
    }
    let took = t0.elapsed();
    writer
        .join()
        .map_err(|_| "writer panicked".to_string())?
        .map_err(|e| e.to_string())?;
    Ok(N as f64 / took.as_secs_f64())
}

fn client_runs(path: &Path) -> Result<(f64, f64), String> {
    let cfg = Config::new()
        .oob(false)
        .timeout(Some(Duration::from_secs(30)));
    let mut c = Client::connect_unix(path, cfg).map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let mut pending = std::collections::VecDeque::new();
    for _ in 0..N {
        if pending.len() >= 48 {
            c.wait(pending.pop_front().unwrap())
                .map_err(|e| e.to_string())?;
        }
        pending.push_back(
            c.send(Call::new("query-version"))
                .map_err(|e| e.to_string())?,
        );
    }
    for p in pending {
        c.wait(p).map_err(|e| e.to_string())?;
    }
    let pipelined = N as f64 / t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    for _ in 0..LOCKSTEP {
        c.execute_raw("query-version", None)
            .map_err(|e| e.to_string())?;
    }
    let lockstep = LOCKSTEP as f64 / t0.elapsed().as_secs_f64();
    Ok((pipelined, lockstep))
}

fn measure(path: &Path) -> Result<Rates, String> {
    let raw = raw_pipeline(path)?;
    let (client_pipelined, client_lockstep) = client_runs(path)?;
    Ok(Rates {
        raw,
        client_pipelined,
        client_lockstep,
    })
}

fn print(name: &str, r: &Rates) {
    println!(
        "{name:<22} raw pipelined {:>9.0} cmd/s   client pipelined {:>9.0} cmd/s   client lock-step {:>8.0} cmd/s",
        r.raw, r.client_pipelined, r.client_lockstep
    );
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("qmp-bench-{}-{name}", std::process::id()))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") || args.iter().any(|a| a == "--test" || a == "--list") {
        println!("pipeline: a benchmark; run it with `cargo bench -p qmp-std --bench pipeline`");
        return;
    }
    println!("{N} pipelined query-version commands over a Unix socket ({LOCKSTEP} lock-step)\n");

    let agent_path = temp("agent.sock");
    let _ = std::fs::remove_file(&agent_path);
    let server = qmp_std::demo::bind(&Address::unix(&agent_path), false).expect("bind demo agent");
    let stop = server.stop_handle();
    let thread = server.spawn();
    let agent = measure(&agent_path);
    stop.stop();
    let _ = thread.join();
    let _ = std::fs::remove_file(&agent_path);
    let agent = match agent {
        Ok(r) => {
            print("qmp agent (in-process)", &r);
            Some(r)
        }
        Err(e) => {
            println!("qmp agent: FAILED: {e}");
            None
        }
    };

    let qsd_path = temp("qsd.sock");
    let _ = std::fs::remove_file(&qsd_path);
    let chardev = format!(
        "socket,path={},server=on,wait=off,id=m0",
        qsd_path.display()
    );
    let qsd = match Command::new("qemu-storage-daemon")
        .args(["--chardev", &chardev, "--monitor", "chardev=m0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
    {
        Ok(child) => Some(Daemon(child)),
        Err(_) => {
            println!("qemu-storage-daemon: SKIP (not installed)");
            None
        }
    };
    let qsd_rates = qsd.as_ref().and_then(|_| {
        // Wait until it listens (the library retries), then measure.
        drop(Client::connect_unix(&qsd_path, Config::new()).ok()?);
        match measure(&qsd_path) {
            Ok(r) => {
                print("qemu-storage-daemon", &r);
                Some(r)
            }
            Err(e) => {
                println!("qemu-storage-daemon: FAILED: {e}");
                None
            }
        }
    });
    drop(qsd);
    let _ = std::fs::remove_file(&qsd_path);

    if let (Some(a), Some(q)) = (agent, qsd_rates) {
        println!(
            "\nratio agent / qemu-storage-daemon: raw {:.2}x, client pipelined {:.2}x, client lock-step {:.2}x",
            a.raw / q.raw,
            a.client_pipelined / q.client_pipelined,
            a.client_lockstep / q.client_lockstep
        );
    }
}
