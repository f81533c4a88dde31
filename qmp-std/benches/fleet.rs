//! The fleet benchmark: one process watching a thousand monitors.
//!
//! `cargo bench -p qmp-std --bench fleet`
//!
//! * **ours**: 1,000 `AsyncClient` sessions on one current-thread tokio
//!   runtime against the tokio agent runner (`AsyncServer`, in a child
//!   process of its own, on a current-thread runtime too, session cap
//!   raised to allow them) over Unix sockets; each pipelines 100
//!   `query-version` (at most 8 in flight with `oob`, as QEMU wants: the
//!   others wait for room), then one broadcast event reaches every
//!   session. Printed: commands/s, p50/p99 latency of a command from its
//!   call to its reply (all 100,000 are called at once, so this is mostly
//!   the time waiting behind the others), the time until every session had the event, and
//!   resident memory per idle session, in the client process and in the
//!   agent.
//! * **python qemu.qmp** (asyncio), the baseline: the same against the same
//!   agent.
//! * **20 qemu-storage-daemon processes**, one session each from the same
//!   runtime, 2,000 pipelined `query-version` each: the aggregate rate next
//!   to one daemon's, to show the client is not what limits it.
//!
//! It runs only when given `--bench` (as `cargo bench` passes); under
//! `cargo test --benches`, or with `--test`/`--list`, it exits at once.

use futures_util::future::join_all;
use qmp_std::agent::{CommandDef, Ctx, Request, Response, ServerConfig};
use qmp_std::client::Config;
use qmp_std::tokio::{Answer, AsyncClient, AsyncServer};
use qmp_std::{Address, Json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SESSIONS: usize = 1000;
const PIPELINE: usize = 100;
const DAEMONS: usize = 20;
const DAEMON_PIPELINE: usize = 2000;
/// Set in the child process that serves the agent: its socket.
const AGENT_ENV: &str = "QMP_FLEET_AGENT";

/// The agent: `query-version` and `x-emit` (broadcasts `FLEET`).
fn agent(sock: &str) {
    raise_fd_limit();
    let version =
        Json::parse(r#"{"qemu": {"major": 10, "minor": 0, "micro": 0}, "package": "fleet"}"#)
            .unwrap_or_else(|_| Json::null());
    let handler = move |ctx: &mut Ctx<'_>, req: &Request<'_>| -> Answer {
        if req.name == "x-emit" {
            ctx.events().emit("FLEET", None);
            return Response::Return(Json::empty_object()).into();
        }
        Response::Return(version.clone()).into()
    };
    let commands = vec![CommandDef::new("query-version"), CommandDef::new("x-emit")];
    let cfg = ServerConfig::qmp((10, 0, 0), "fleet", commands).max_sessions(SESSIONS + 100);
    let server = AsyncServer::bind(&Address::unix(sock), cfg, handler).expect("bind the agent");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _ = rt.block_on(server.run());
}

fn raise_fd_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut l = getrlimit(Resource::Nofile);
    l.current = l.maximum;
    let _ = setrlimit(Resource::Nofile, l);
}

/// Resident set of a process (`self` or a pid), KiB.
fn rss_kib(pid: Option<u32>) -> u64 {
    let path = match pid {
        Some(p) => format!("/proc/{p}/status"),
        None => "/proc/self/status".to_owned(),
    };
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Kills and reaps a child on drop.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_listening(path: &Path) {
    let t0 = Instant::now();
    while std::os::unix::net::UnixStream::connect(path).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{} does not listen",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

struct Run {
    rate: f64,
    p50: Duration,
    p99: Duration,
    fanout: Duration,
    /// On a CPU, % of the run: the client process, the agent.
    cpu: Option<(f64, f64)>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1));
    sorted.get(i).copied().unwrap_or_default()
}

/// The clients' settings: the defaults (no call timeout, as qemu.qmp's
/// `execute`).
fn cfg() -> Config {
    Config::new()
}

/// Our fleet: connect every session (memory per idle session), pipeline,
/// broadcast.
async fn ours(sock: &Path, agent_pid: u32) -> Result<(Run, f64, f64, f64), String> {
    let (rss0, agent0) = (rss_kib(None), rss_kib(Some(agent_pid)));
    let mut sessions = Vec::with_capacity(SESSIONS);
    for _ in 0..SESSIONS {
        let c = AsyncClient::connect_unix(sock, cfg())
            .await
            .map_err(|e| e.to_string())?;
        let events = c.subscribe(&["FLEET"]);
        sessions.push((c, events));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let per = |now: u64, before: u64| (now.saturating_sub(before)) as f64 / SESSIONS as f64;
    let idle_client = per(rss_kib(None), rss0);
    let idle_agent = per(rss_kib(Some(agent_pid)), agent0);

    let (t0, cpu0, agent_cpu0) = (Instant::now(), cpu_time(None), cpu_time(Some(agent_pid)));
    let mut tasks = tokio::task::JoinSet::new();
    for (c, _) in &sessions {
        let c = c.clone();
        tasks.spawn(async move {
            let calls = (0..PIPELINE).map(|_| {
                let c = &c;
                async move {
                    let t = Instant::now();
                    c.execute_raw("query-version", None)
                        .await
                        .map(|_| t.elapsed())
                }
            });
            join_all(calls).await
        });
    }
    let mut latencies = Vec::with_capacity(SESSIONS * PIPELINE);
    while let Some(done) = tasks.join_next().await {
        for l in done.map_err(|e| e.to_string())? {
            latencies.push(l.map_err(|e| e.to_string())?);
        }
    }
    let took = t0.elapsed();
    let busy = |cpu: Duration| 100.0 * cpu.as_secs_f64() / took.as_secs_f64();
    let cpu = (
        busy(cpu_time(None).saturating_sub(cpu0)),
        busy(cpu_time(Some(agent_pid)).saturating_sub(agent_cpu0)),
    );
    latencies.sort();

    let t1 = Instant::now();
    sessions[0]
        .0
        .execute_raw("x-emit", None)
        .await
        .map_err(|e| e.to_string())?;
    for (_, events) in &mut sessions {
        events.next_event().await.ok_or("a session had no event")?;
    }
    let fanout = t1.elapsed();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after_client = per(rss_kib(None), rss0);
    // Every handle dropped: the drivers close their sockets (they run on
    // this runtime: give them the turn).
    drop(sessions);
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok((
        Run {
            rate: (SESSIONS * PIPELINE) as f64 / took.as_secs_f64(),
            p50: percentile(&latencies, 0.50),
            p99: percentile(&latencies, 0.99),
            fanout,
            cpu: Some(cpu),
        },
        idle_client,
        idle_agent,
        after_client,
    ))
}

const PYTHON: &str = r#"
import asyncio, json, resource, sys, time
from qemu.qmp import QMPClient, EventListener
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
path, n, k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

async def main():
    clients = []
    for i in range(n):
        c = QMPClient(f'c{i}')
        l = EventListener('FLEET')
        c.register_listener(l)
        await c.connect(path)
        clients.append((c, l))
    lat = []
    async def one(c):
        t = time.perf_counter()
        await c.execute('query-version')
        lat.append(time.perf_counter() - t)
    async def session(c):
        await asyncio.gather(*(one(c) for _ in range(k)))
    t0 = time.perf_counter()
    await asyncio.gather(*(session(c) for c, _ in clients))
    took = time.perf_counter() - t0
    t1 = time.perf_counter()
    await clients[0][0].execute('x-emit')
    await asyncio.gather(*(l.get() for _, l in clients))
    fanout = time.perf_counter() - t1
    lat.sort()
    print(json.dumps({'rate': n * k / took, 'p50': lat[len(lat) // 2],
                      'p99': lat[min(len(lat) - 1, int(len(lat) * 0.99))], 'fanout': fanout}))
    for c, _ in clients:
        await c.disconnect()

asyncio.run(main())
"#;

fn python(sock: &Path) -> Result<Run, String> {
    let out = Command::new("python3")
        .args(["-c", PYTHON])
        .arg(sock)
        .arg(SESSIONS.to_string())
        .arg(PIPELINE.to_string())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("python3: {e}"))?;
    if !out.status.success() {
        return Err(format!("python failed: {}", out.status));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("python output: {e}"))?;
    let secs = |k: &str| Duration::from_secs_f64(v[k].as_f64().unwrap_or(0.0));
    Ok(Run {
        rate: v["rate"].as_f64().unwrap_or(0.0),
        p50: secs("p50"),
        p99: secs("p99"),
        fanout: secs("fanout"),
        cpu: None,
    })
}

fn print(name: &str, r: &Run) {
    println!(
        "{name:<16} {:>9.0} commands/s   p50 {:>8.2} ms   p99 {:>8.2} ms   event to all {:>7.1} ms",
        r.rate,
        r.p50.as_secs_f64() * 1e3,
        r.p99.as_secs_f64() * 1e3,
        r.fanout.as_secs_f64() * 1e3
    );
    if let Some((client, agent)) = r.cpu {
        println!(
            "{:<16} on a CPU during the run: client {client:.0}%, agent {agent:.0}%",
            ""
        );
    }
}

/// `n` qemu-storage-daemon processes; `None` when it is not installed.
fn daemons(dir: &Path, n: usize) -> Option<Vec<(Reaped, PathBuf)>> {
    let mut out = Vec::new();
    for i in 0..n {
        let sock = dir.join(format!("qsd{i}.sock"));
        let chardev = format!("socket,path={},server=on,wait=off,id=m0", sock.display());
        let child = Command::new("qemu-storage-daemon")
            .args(["--chardev", &chardev, "--monitor", "chardev=m0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .ok()?;
        out.push((Reaped(child), sock));
    }
    Some(out)
}

/// CPU time a process (`None`: this one) used, user + system.
fn cpu_time(pid: Option<u32>) -> Duration {
    let path = pid.map_or_else(
        || "/proc/self/stat".to_owned(),
        |p| format!("/proc/{p}/stat"),
    );
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // After the command name in parentheses: state is field 3; utime and
    // stime are fields 14 and 15, in clock ticks (100 a second on Linux).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let ticks: u64 = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|t| t.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

/// Pipelines `DAEMON_PIPELINE` `query-version` on each client at once; the
/// aggregate rate and the share of the wall time this process (the client)
/// was on a CPU.
async fn daemon_rate(socks: &[PathBuf]) -> Result<(f64, f64), String> {
    let mut clients = Vec::new();
    for s in socks {
        clients.push(
            AsyncClient::connect_unix(s, cfg())
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    let (t0, cpu0) = (Instant::now(), cpu_time(None));
    let runs = clients.iter().map(|c| async move {
        join_all((0..DAEMON_PIPELINE).map(|_| c.execute_raw("query-version", None))).await
    });
    for results in join_all(runs).await {
        for r in results {
            r.map_err(|e| e.to_string())?;
        }
    }
    let took = t0.elapsed();
    let cpu = cpu_time(None).saturating_sub(cpu0);
    Ok((
        (socks.len() * DAEMON_PIPELINE) as f64 / took.as_secs_f64(),
        cpu.as_secs_f64() / took.as_secs_f64(),
    ))
}

fn main() {
    if let Ok(sock) = std::env::var(AGENT_ENV) {
        agent(&sock);
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") || args.iter().any(|a| a == "--test" || a == "--list") {
        println!("fleet: a benchmark; run it with `cargo bench -p qmp-std --bench fleet`");
        return;
    }
    raise_fd_limit();
    let dir = std::env::temp_dir().join(format!("qmp-fleet-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let sock = dir.join("agent.sock");
    let exe = std::env::current_exe().expect("current exe");
    let agent = Reaped(
        Command::new(exe)
            .env(AGENT_ENV, &sock)
            .stdin(Stdio::null())
            .spawn()
            .expect("start the agent"),
    );
    wait_listening(&sock);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    println!(
        "{SESSIONS} sessions x {PIPELINE} pipelined query-version + one broadcast event, Unix sockets, one current-thread runtime\n"
    );
    let ours = rt.block_on(ours(&sock, agent.0.id()));
    let ours = match ours {
        Ok((run, idle_client, idle_agent, after)) => {
            print("qmp-std tokio", &run);
            println!(
                "{:<16} resident per idle session: client {idle_client:.1} KiB ({after:.1} KiB after the run), agent {idle_agent:.1} KiB",
                ""
            );
            Some(run)
        }
        Err(e) => {
            println!("qmp-std tokio: FAILED: {e}");
            None
        }
    };
    // QMP_FLEET_OURS=1: our run only (for profiling).
    if std::env::var_os("QMP_FLEET_OURS").is_some() {
        return;
    }
    let py = match python(&sock) {
        Ok(r) => {
            print("python qemu.qmp", &r);
            Some(r)
        }
        Err(e) => {
            println!("python qemu.qmp: SKIP/FAILED: {e}");
            None
        }
    };
    if let (Some(o), Some(p)) = (&ours, &py) {
        println!("\nratio ours / qemu.qmp: {:.1}x the rate", o.rate / p.rate);
    }
    drop(agent);

    println!();
    match daemons(&dir, DAEMONS) {
        None => println!("qemu-storage-daemon: SKIP (not installed)"),
        Some(qsd) => {
            let socks: Vec<PathBuf> = qsd.iter().map(|(_, s)| s.clone()).collect();
            for s in &socks {
                wait_listening(s);
            }
            // The probe connections above took each monitor once: let them
            // go back to listening.
            std::thread::sleep(Duration::from_millis(100));
            let one = rt.block_on(daemon_rate(&socks[..1]));
            let all = rt.block_on(daemon_rate(&socks));
            match (one, all) {
                (Ok((one, cpu1)), Ok((all, cpu20))) => println!(
                    "qemu-storage-daemon: 1 daemon {one:.0} commands/s (client on a CPU {:.0}% of the time); \
                     {DAEMONS} daemons {all:.0} commands/s, {:.1}x (client on a CPU {:.0}% of the time)",
                    cpu1 * 100.0,
                    all / one,
                    cpu20 * 100.0
                ),
                (a, b) => println!("qemu-storage-daemon: FAILED: {a:?} {b:?}"),
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
