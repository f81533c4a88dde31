//! The firmware images (`firmware/`) on QEMU's own board models, their UART
//! wired to a Unix socket: python `qemu.qmp` and our client drive the
//! firmware agent on `mps2-an386` (Cortex-M4F) and `microbit` (Cortex-M0);
//! the firmware client talks to a real `qemu-storage-daemon` and reports
//! what our std client gets from the same daemon; QEMU's malformed-input
//! matrix gets the same bytes from the firmware agent as from the daemon.
//!
//! Skipped (with a `SKIP:` line) when `qemu-system-arm`, the images
//! (`cd firmware && cargo build --release` for each target) or another peer
//! is missing, unless `QMP_REQUIRE_PEERS=1`.

mod common;

use common::{installed, skip, TempDir};
use qmp_std::client::{Call, Client};
use qmp_std::Config;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const BOARDS: [(&str, &str); 2] = [
    ("mps2-an386", "thumbv7em-none-eabihf"),
    ("microbit", "thumbv6m-none-eabi"),
];

fn image(target: &str, name: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../firmware/target")
        .join(target)
        .join("release")
        .join(name);
    if p.exists() {
        Some(p)
    } else {
        skip(&format!(
            "{} not built (cd firmware && cargo build --release --target {target})",
            p.display()
        ));
        None
    }
}

/// A board running an image; killed on drop.
struct Board {
    qemu: Child,
}

impl Drop for Board {
    fn drop(&mut self) {
        let _ = self.qemu.kill();
        let _ = self.qemu.wait();
    }
}

/// The agent image on `board`, its UART a listening socket at `sock`.
/// QEMU waits for the connection before it starts the core (`wait=on`):
/// the UART cannot tell that a peer connected, so the greeting must not be
/// sent into an unconnected socket (QEMU drops such output).
fn agent(board: &str, elf: &Path, sock: &Path) -> Board {
    let qemu = Command::new("qemu-system-arm")
        .args(["-M", board, "-nographic", "-monitor", "none"])
        .arg("-serial")
        .arg(format!("unix:{},server=on,wait=on", sock.display()))
        .arg("-kernel")
        .arg(elf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn qemu-system-arm");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sock.exists() {
        assert!(Instant::now() < deadline, "qemu-system-arm did not listen");
        thread::sleep(Duration::from_millis(10));
    }
    Board { qemu }
}

fn peers() -> bool {
    installed("qemu-system-arm")
}

fn python_qmp() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import qemu.qmp"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        skip("python3 with qemu.qmp not installed");
    }
    ok
}

const SCRIPT: &str = r#"
import asyncio, sys
from qemu.qmp import QMPClient, ExecuteError, EventListener

async def main(path, board):
    qmp = QMPClient('firmware-test')
    vm = EventListener(('STOP', 'RESUME'))
    beats = EventListener(('HEARTBEAT',))
    qmp.register_listener(vm)
    qmp.register_listener(beats)
    await qmp.connect(path)
    g = qmp.greeting
    assert 'oob' in g.QMP.capabilities, g
    version = {'qemu': {'micro': 0, 'minor': 1, 'major': 0}, 'package': 'qmp-firmware'}
    assert g.QMP.version == version, g
    assert await qmp.execute('query-version') == version
    names = [c['name'] for c in await qmp.execute('query-commands')]
    assert names == ['qmp_capabilities', 'query-version', 'query-commands', 'query-status',
                     'stop', 'cont', 'x-sleep', 'x-query-firmware'], names
    assert await qmp.execute('query-status') == {'status': 'running', 'running': True}
    assert await qmp.execute('stop') == {}
    ev = await asyncio.wait_for(vm.get(), 5)
    assert ev['event'] == 'STOP' and 'data' not in ev, ev
    assert 0 <= ev['timestamp']['microseconds'] < 1000000, ev
    assert await qmp.execute('query-status') == {'status': 'paused', 'running': False}
    assert await qmp.execute('cont') == {}
    assert (await asyncio.wait_for(vm.get(), 5))['event'] == 'RESUME'
    fw = await qmp.execute('x-query-firmware')
    assert fw['board'] == board and fw['stack-high-water'] > 0 and fw['static-ram'] > 0, fw

    async def fails(cmd, args, cls, desc):
        try:
            await qmp.execute(cmd, args)
        except ExecuteError as e:
            assert e.error_class == cls, (e.error_class, str(e))
            assert str(e) == desc, str(e)
        else:
            raise AssertionError(f'{cmd} succeeded')
    await fails('nope', None, 'CommandNotFound', 'The command nope has not been found')
    await fails('query-status', {'x': 1}, 'GenericError', "Parameter 'x' is unexpected")
    await fails('x-sleep', None, 'GenericError', "Parameter 'ms' is missing")
    await fails('x-sleep', {'ms': 'a'}, 'GenericError', "Invalid parameter type for 'ms', expected: integer")
    await fails('qmp_capabilities', None, 'CommandNotFound',
                'Capabilities negotiation is already complete, command ignored')

    # exec-oob overtakes a slow in-band command.
    order = []
    async def sleep(ms, oob):
        await qmp.execute('x-sleep', {'ms': ms}, oob=oob)
        order.append('oob' if oob else 'in-band')
    slow = asyncio.create_task(sleep(500, False))
    await asyncio.sleep(0.1)
    await sleep(1, True)
    await slow
    assert order == ['oob', 'in-band'], order

    # The heartbeat comes while we send nothing, one a second at most.
    beats.clear()
    first = await asyncio.wait_for(beats.get(), 5)
    second = await asyncio.wait_for(beats.get(), 5)
    assert first['data']['uptime-ms'] < second['data']['uptime-ms'], (first, second)
    await qmp.disconnect()
    print('OK')

asyncio.run(main(sys.argv[1], sys.argv[2]))
"#;

#[test]
fn python_qemu_qmp_drives_the_firmware_agent() {
    if !peers() || !python_qmp() {
        return;
    }
    for (board, target) in BOARDS {
        let Some(elf) = image(target, "agent") else {
            return;
        };
        let dir = TempDir::new("fw-py");
        let sock = dir.path("uart.sock");
        let _vm = agent(board, &elf, &sock);
        let out = Command::new("python3")
            .args(["-c", SCRIPT])
            .arg(&sock)
            .arg(board)
            .output()
            .expect("python3");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.trim_end() == "OK",
            "{board}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn our_client_drives_the_firmware_agent() {
    if !peers() {
        return;
    }
    for (board, target) in BOARDS {
        let Some(elf) = image(target, "agent") else {
            return;
        };
        let dir = TempDir::new("fw-ours");
        let sock = dir.path("uart.sock");
        let _vm = agent(board, &elf, &sock);
        let cfg = Config::new().timeout(Some(Duration::from_secs(10)));
        let mut c = Client::connect_unix(&sock, cfg).expect("connect");
        assert!(c.oob_enabled(), "{board}");
        let vm = c.subscribe(&["STOP", "RESUME"]);
        let beats = c.subscribe(&["HEARTBEAT"]);
        assert_eq!(
            c.execute_raw("query-version", None).unwrap(),
            r#"{"qemu": {"micro": 0, "minor": 1, "major": 0}, "package": "qmp-firmware"}"#
        );
        assert_eq!(
            c.execute_raw("query-status", None).unwrap(),
            r#"{"status": "running", "running": true}"#
        );
        assert_eq!(c.execute_raw("stop", None).unwrap(), "{}");
        let ev = c
            .next_event_for(&vm, Some(Duration::ZERO))
            .unwrap()
            .expect("STOP before the reply");
        assert_eq!(ev.name, "STOP");
        assert_eq!(
            c.execute_raw("query-status", None).unwrap(),
            r#"{"status": "paused", "running": false}"#
        );
        assert_eq!(c.execute_raw("cont", None).unwrap(), "{}");
        let ev = c.next_event_for(&vm, Some(Duration::ZERO)).unwrap();
        assert_eq!(ev.map(|e| e.name).as_deref(), Some("RESUME"));
        match c.execute_raw("nope", None) {
            Err(qmp_std::Error::Qmp(e)) => {
                assert_eq!(e.class, "CommandNotFound");
                assert_eq!(e.desc, "The command nope has not been found");
            }
            other => panic!("{board}: {other:?}"),
        }
        // An exec-oob overtakes a slow in-band command.
        let slow = c
            .send(Call::new("x-sleep").args_json(r#"{"ms":500}"#))
            .unwrap();
        let quick = c
            .send(Call::new("x-sleep").args_json(r#"{"ms":1}"#).oob())
            .unwrap();
        assert_eq!(c.wait(quick).unwrap(), "{}");
        assert!(!c.is_ready(&slow), "{board}: the in-band sleep ended first");
        assert_eq!(c.wait(slow).unwrap(), "{}");
        // The heartbeat, while we send nothing.
        while c
            .next_event_for(&beats, Some(Duration::ZERO))
            .unwrap()
            .is_some()
        {}
        let up = |c: &mut Client| -> u64 {
            let e = c
                .next_event_for(&beats, Some(Duration::from_secs(5)))
                .unwrap()
                .expect("HEARTBEAT within 5 s");
            serde_json::from_str::<serde_json::Value>(e.data_json().unwrap()).unwrap()["uptime-ms"]
                .as_u64()
                .unwrap()
        };
        let (a, b) = (up(&mut c), up(&mut c));
        assert!(a < b, "{board}: {a} then {b}");
    }
}

/// A fresh `qemu-storage-daemon` with a monitor on `sock`; killed on drop.
struct Qsd(Child);

impl Drop for Qsd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn qsd(sock: &Path) -> Qsd {
    let child = Command::new("qemu-storage-daemon")
        .arg("--chardev")
        .arg(format!(
            "socket,path={},server=on,wait=off,id=m0",
            sock.display()
        ))
        .args(["--monitor", "chardev=m0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn qemu-storage-daemon");
    let deadline = Instant::now() + Duration::from_secs(10);
    while UnixStream::connect(sock).is_err() {
        assert!(
            Instant::now() < deadline,
            "qemu-storage-daemon did not listen"
        );
        thread::sleep(Duration::from_millis(20));
    }
    Qsd(child)
}

/// The report lines of the firmware client (`label: value`).
fn report_of(text: &str, label: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{label}: ")))
        .unwrap_or_else(|| panic!("no '{label}' in the report:\n{text}"))
        .to_string()
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// What our std client gets from the daemon, in the firmware client's
/// order: the same calls, the job's statuses to `concluded`.
fn std_report(sock: &Path) -> (String, String, String, Vec<String>, String, String) {
    let cfg = Config::new().timeout(Some(Duration::from_secs(10)));
    let mut c = Client::connect_unix(sock, cfg).expect("connect to qsd");
    let version = c.execute_raw("query-version", None).unwrap();
    let add = c
        .execute_raw(
            "blockdev-add",
            Some(r#"{"driver":"null-co","node-name":"n0","size":1048576}"#),
        )
        .unwrap();
    let jobs = c.subscribe(&["JOB_STATUS_CHANGE"]);
    c.execute_raw(
        "blockdev-create",
        Some(r#"{"job-id":"j1","options":{"driver":"qcow2","file":"n0","size":1048576}}"#),
    )
    .unwrap();
    let mut first = None;
    let mut statuses = Vec::new();
    loop {
        let e = c
            .next_event_for(&jobs, Some(Duration::from_secs(10)))
            .unwrap()
            .expect("JOB_STATUS_CHANGE");
        let data = e.data_json().unwrap().to_string();
        let status = json(&data)["status"].as_str().unwrap().to_string();
        first.get_or_insert(format!("{} {data}", e.name));
        statuses.push(status.clone());
        if status == "concluded" {
            break;
        }
    }
    let dismiss = c
        .execute_raw("job-dismiss", Some(r#"{"id":"j1"}"#))
        .unwrap();
    let del = c
        .execute_raw("blockdev-del", Some(r#"{"node-name":"n0"}"#))
        .unwrap();
    (version, add, first.unwrap(), statuses, dismiss, del)
}

#[test]
fn the_firmware_client_gets_what_our_client_gets_from_qemu_storage_daemon() {
    if !peers() || !installed("qemu-storage-daemon") {
        return;
    }
    // The blocking client image and the async one run the same scenario.
    for ((board, target), name) in BOARDS
        .iter()
        .flat_map(|b| ["client", "client_async"].map(|n| (*b, n)))
    {
        let Some(elf) = image(target, name) else {
            return;
        };
        let dir = TempDir::new("fw-client");
        let sock = dir.path("qsd.sock");
        let _qsd = qsd(&sock);
        // The firmware's UART connects to the daemon's monitor socket.
        let out = Command::new("qemu-system-arm")
            .args(["-M", board, "-nographic", "-monitor", "none"])
            .args(["-semihosting-config", "enable=on,target=native"])
            .arg("-serial")
            .arg(format!("unix:{}", sock.display()))
            .arg("-kernel")
            .arg(&elf)
            .stdin(Stdio::null())
            .output()
            .expect("qemu-system-arm");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{board} {name}: {text}");
        assert_eq!(
            text.lines().next_back(),
            Some("OK"),
            "{board} {name}: {text}"
        );
        assert_eq!(report_of(&text, "board"), board);
        // The same, from our std client, on the same daemon (the firmware
        // left it as it found it).
        let (version, add, first, statuses, dismiss, del) = std_report(&sock);
        assert_eq!(json(&report_of(&text, "query-version")), json(&version));
        assert_eq!(json(&report_of(&text, "blockdev-add")), json(&add));
        let fw_first = report_of(&text, "event");
        let (name, data) = fw_first.split_once(' ').unwrap();
        let (std_name, std_data) = first.split_once(' ').unwrap();
        assert_eq!(name, std_name);
        assert_eq!(json(data), json(std_data));
        assert_eq!(json(data)["status"], "created");
        let fw_statuses = report_of(&text, "statuses");
        assert_eq!(fw_statuses.split(' ').next(), Some("created"));
        assert_eq!(fw_statuses.split(' ').next_back(), Some("concluded"));
        assert_eq!(statuses.first().map(String::as_str), Some("created"));
        assert_eq!(json(&report_of(&text, "job-dismiss")), json(&dismiss));
        assert_eq!(json(&report_of(&text, "blockdev-del")), json(&del));
    }
}

const SENTINEL: &[u8] = br#"{"execute":"x-sentinel","id":"end"}"#;
const SENTINEL_REPLY: &[u8] = b"{\"id\": \"end\", \"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command x-sentinel has not been found\"}}\r\n";

/// Everything answered to `payload` (then the sentinel) after the greeting,
/// events left out (the firmware's heartbeat).
fn answers(path: &Path, payload: &[u8]) -> Vec<u8> {
    let stream = UnixStream::connect(path).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut r = BufReader::new(stream.try_clone().unwrap());
    let mut line = Vec::new();
    r.read_until(b'\n', &mut line).unwrap();
    assert!(line.starts_with(b"{\"QMP\": "), "greeting {line:?}");
    let mut w = stream;
    let mut all = payload.to_vec();
    all.extend_from_slice(SENTINEL);
    let writer = thread::spawn(move || w.write_all(&all).map(|()| w));
    let mut out = Vec::new();
    loop {
        line.clear();
        let n = r.read_until(b'\n', &mut line).unwrap();
        assert!(n > 0, "EOF before the sentinel's reply");
        if line == SENTINEL_REPLY {
            break;
        }
        if !line.starts_with(b"{\"timestamp\": ") {
            out.extend_from_slice(&line);
        }
    }
    drop(writer.join().unwrap().unwrap());
    out
}

/// QEMU's `tests/qtest/qmp-test.c` matrix (reference §8), before and after
/// negotiation.
fn matrix() -> Vec<u8> {
    let broken: &[&[u8]] = &[
        b"{]\n",
        b"{\xff",
        b"{\x01",
        b"{'bad \xff",
        b"{'execute': 'nonexistent', 'id':'\n",
        b"%p",
    ];
    let invalid: &[&[u8]] = &[
        b"null\n",
        b"{}\n",
        b"{\"execute\":true}\n",
        b"{\"execute\":\"no-such-cmd\",\"arguments\":[]}\n",
        b"{\"execute\":\"no-such-cmd\",\"extra\":true}\n",
        b"{\"execute\":\"no-such-cmd\",\"id\":{\"a\":[1,\"x\"]}}\n",
    ];
    let mut once = Vec::new();
    for b in broken {
        once.extend_from_slice(b);
        once.extend_from_slice(b"{ 'execute': 'no-such-cmd' }\n");
    }
    for b in invalid {
        once.extend_from_slice(b);
    }
    let mut all = b"{ \"execute\": \"query-status\" }\n".to_vec();
    all.extend_from_slice(&once);
    all.extend_from_slice(
        b"{\"execute\":\"qmp_capabilities\"}\n{\"execute\":\"qmp_capabilities\"}\n",
    );
    all.extend_from_slice(&once);
    all.extend_from_slice(
        b"{\"execute\":\"qmp_capabilities\",\"arguments\":{\"enable\":[\"oob\"]}}\n",
    );
    all
}

#[test]
fn the_malformed_input_matrix_gets_the_daemons_bytes_from_the_firmware() {
    if !peers() || !installed("qemu-storage-daemon") {
        return;
    }
    let payload = matrix();
    let dir = TempDir::new("fw-matrix");
    let qsd_sock = dir.path("qsd.sock");
    let _qsd = qsd(&qsd_sock);
    let theirs = answers(&qsd_sock, &payload);
    assert!(
        theirs.windows(17).any(|w| w == b"JSON parse error,"),
        "{}",
        String::from_utf8_lossy(&theirs)
    );
    for (board, target) in BOARDS {
        let Some(elf) = image(target, "agent") else {
            return;
        };
        let sock = dir.path(&format!("{board}.sock"));
        let _vm = agent(board, &elf, &sock);
        let ours = answers(&sock, &payload);
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs),
            "{board}: the firmware agent differs from qemu-storage-daemon"
        );
    }
}
