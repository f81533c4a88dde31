//! Interop with the official python client `qemu.qmp` against `qmp agent`.
//!
//! Skipped (with a `SKIP:` line) when python3 or `qemu.qmp` is missing,
//! unless `QMP_REQUIRE_PEERS=1`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SCRIPT: &str = r#"
import asyncio, sys
from qemu.qmp import QMPClient, ExecuteError, EventListener

VERSION = sys.argv[2]
MAJOR, MINOR, MICRO = (int(x) for x in VERSION.split('.')[:3])

async def expect_event(listener, name, data=None):
    ev = await asyncio.wait_for(listener.get(), 5)
    assert ev['event'] == name, ev
    if data is not None:
        assert ev['data'] == data, ev
    assert isinstance(ev['timestamp']['seconds'], int), ev
    assert 0 <= ev['timestamp']['microseconds'] < 1000000, ev

async def main(path):
    qmp = QMPClient('qmp-std-test')
    listener = EventListener()
    qmp.register_listener(listener)
    await qmp.connect(path)

    # Greeting: our version, oob offered (and enabled by qemu.qmp).
    greeting = qmp.greeting
    assert 'oob' in greeting.QMP.capabilities, greeting
    assert greeting.QMP.version == {'qemu': {'micro': MICRO, 'minor': MINOR, 'major': MAJOR},
                                    'package': 'qmp-rs ' + VERSION}, greeting

    r = await qmp.execute('query-version')
    assert r == {'qemu': {'major': MAJOR, 'minor': MINOR, 'micro': MICRO},
                 'package': 'qmp-rs ' + VERSION}, r
    r = await qmp.execute('query-name')
    assert r == {}, r
    names = {c['name'] for c in await qmp.execute('query-commands')}
    for n in ('qmp_capabilities', 'query-version', 'query-commands', 'query-name',
              'query-status', 'stop', 'cont', 'system_powerdown', 'system_reset',
              'quit', 'human-monitor-command', 'x-sleep'):
        assert n in names, (n, names)
    r = await qmp.execute('query-status')
    assert r == {'status': 'running', 'running': True}, r

    # Events come before the reply of the command that caused them.
    r = await qmp.execute('stop')
    assert r == {}, r
    assert not listener.empty(), 'STOP must arrive before the reply'
    await expect_event(listener, 'STOP')
    r = await qmp.execute('query-status')
    assert r == {'status': 'paused', 'running': False}, r
    r = await qmp.execute('human-monitor-command', {'command-line': 'info status'})
    assert r == 'VM status: paused\r\n', repr(r)
    await qmp.execute('cont')
    await expect_event(listener, 'RESUME')
    r = await qmp.execute('human-monitor-command', {'command-line': 'info status'})
    assert r == 'VM status: running\r\n', repr(r)
    r = await qmp.execute('human-monitor-command', {'command-line': 'info version'})
    assert r.startswith(VERSION) and r.endswith('\r\n'), repr(r)
    r = await qmp.execute('human-monitor-command', {'command-line': 'xyz'})
    assert r == "unknown command: 'xyz'\r\n", repr(r)
    await qmp.execute('system_powerdown')
    await expect_event(listener, 'POWERDOWN')
    await qmp.execute('system_reset')
    await expect_event(listener, 'RESET', {'guest': False, 'reason': 'host-qmp-system-reset'})

    # Errors.
    async def fails(cmd, args, cls, desc):
        try:
            await qmp.execute(cmd, args)
        except ExecuteError as e:
            assert e.error_class == cls, (e.error_class, str(e))
            assert str(e) == desc, str(e)
        else:
            raise AssertionError(f'{cmd} succeeded')
    await fails('nope', None, 'CommandNotFound', 'The command nope has not been found')
    await fails('human-monitor-command', None, 'GenericError', "Parameter 'command-line' is missing")
    await fails('query-status', {'x': 1}, 'GenericError', "Parameter 'x' is unexpected")
    await fails('x-sleep', {'ms': 'a'}, 'GenericError', "Invalid parameter type for 'ms', expected: integer")
    await fails('qmp_capabilities', None, 'CommandNotFound',
                'Capabilities negotiation is already complete, command ignored')

    # exec-oob overtakes a slow in-band command (needs oob negotiated).
    order = []
    async def sleep(ms, oob):
        await qmp.execute('x-sleep', {'ms': ms}, oob=oob)
        order.append('oob' if oob else 'in-band')
    slow = asyncio.create_task(sleep(500, False))
    await asyncio.sleep(0.05)
    await sleep(1, True)
    await slow
    assert order == ['oob', 'in-band'], order

    # quit: SHUTDOWN, then the reply, then the agent closes and exits.
    assert listener.empty()
    r = await qmp.execute('quit')
    assert r == {}, r
    assert not listener.empty(), 'SHUTDOWN must arrive before the reply'
    await expect_event(listener, 'SHUTDOWN', {'guest': False, 'reason': 'host-qmp-quit'})
    try:
        await qmp.disconnect()
    except EOFError:
        pass  # the agent closed the connection first, as QEMU does
    print('OK')

asyncio.run(main(sys.argv[1]))
"#;

fn require_peers() -> bool {
    std::env::var("QMP_REQUIRE_PEERS").is_ok_and(|v| v == "1")
}

fn skip(why: &str) {
    assert!(!require_peers(), "QMP_REQUIRE_PEERS=1 but {why}");
    println!("SKIP: {why}");
}

fn has_qemu_qmp() -> bool {
    Command::new("python3")
        .args(["-c", "import qemu.qmp"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("qmp-std-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn wait_for(path: &Path, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "qmp agent exited early"
        );
        assert!(Instant::now() < deadline, "qmp agent did not listen");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits for `child` up to `secs`; kills it and fails after that.
fn wait_exit(child: &mut Child, secs: u64) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("qmp agent did not exit");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs the script against the agent on `sock`; panics with its output
/// unless it printed `OK`. `alive` says whether the agent still runs.
fn run_script(sock: &Path, mut alive: impl FnMut() -> bool) {
    let mut py = Command::new("python3")
        .args(["-c", SCRIPT])
        .arg(sock)
        .arg(env!("CARGO_PKG_VERSION"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = py.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = py.kill();
            panic!("python client timed out (agent alive: {})", alive());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (mut out, mut err) = (String::new(), String::new());
    py.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    py.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(
        status.success(),
        "python client failed ({status}):\nstdout:\n{out}\nstderr:\n{err}"
    );
    assert_eq!(out.trim(), "OK", "stderr:\n{err}");
}

#[test]
fn python_qemu_qmp_client_against_qmp_agent() {
    if !has_qemu_qmp() {
        skip("python3 with qemu.qmp is not available");
        return;
    }
    let dir = temp_dir("python");
    let sock = dir.join("s");
    let mut agent = Command::new(env!("CARGO_BIN_EXE_qmp"))
        .arg("agent")
        .arg("--unix")
        .arg(&sock)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&sock, &mut agent);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_script(&sock, || true);
    }));
    if let Err(e) = result {
        let _ = agent.kill();
        std::panic::resume_unwind(e);
    }
    let status = wait_exit(&mut agent, 10);
    assert!(status.success(), "qmp agent exited with {status}");
    assert!(!sock.exists(), "socket file left behind");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The same scenario against the tokio agent runner (`AsyncServer`, the
/// demo with `x-sleep` awaiting a timer), in-process on a current-thread
/// runtime: `quit` stops it.
#[test]
fn python_qemu_qmp_client_against_the_tokio_runner() {
    if !has_qemu_qmp() {
        skip("python3 with qemu.qmp is not available");
        return;
    }
    let dir = temp_dir("python-tokio");
    let sock = dir.join("s");
    let server = qmp_std::demo::bind_tokio(&qmp_std::Address::unix(&sock), false).unwrap();
    let stop = server.stop_handle();
    let runner = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(server.run())
    });
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_script(&sock, || !runner.is_finished());
        runner
    }));
    let runner = match result {
        Ok(r) => r,
        Err(e) => {
            stop.stop();
            std::panic::resume_unwind(e);
        }
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !runner.is_finished() {
        assert!(
            Instant::now() < deadline,
            "the runner did not stop after quit"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    runner.join().unwrap().unwrap();
    assert!(stop.is_stopped());
    assert!(!sock.exists(), "socket file left behind");
    let _ = std::fs::remove_dir_all(&dir);
}
