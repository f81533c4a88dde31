//! `qmp --qga exec` against `qmp agent --qga` (no external peer needed).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn qmp() -> Command {
    Command::new(env!("CARGO_BIN_EXE_qmp"))
}

#[test]
fn qga_exec_against_our_agent() {
    let dir = std::env::temp_dir().join(format!("qmp-cli-qga-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let sock = dir.join("qga.sock");
    let _agent = Kill(
        qmp()
            .args(["agent", "--unix"])
            .arg(&sock)
            .arg("--qga")
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn qmp agent"),
    );
    let start = Instant::now();
    while !sock.exists() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let run = |args: &[&str]| {
        let out = qmp()
            .arg("--unix")
            .arg(&sock)
            .arg("--qga")
            .args(args)
            .output()
            .expect("run qmp");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_eq!(
        run(&["exec", "guest-sync", "{\"id\": 5}"]),
        (Some(0), "5\n".into(), String::new())
    );
    assert_eq!(
        run(&["exec", "guest-ping"]),
        (Some(0), "{}\n".into(), String::new())
    );
    let (code, out, _) = run(&["exec", "guest-get-time"]);
    assert_eq!(code, Some(0));
    assert!(out.trim().parse::<u64>().unwrap() > 1_700_000_000_000_000_000);
    let (code, out, err) = run(&["exec", "guest-nope"]);
    assert_eq!((code, out.as_str()), (Some(1), ""));
    assert_eq!(
        err,
        "CommandNotFound: The command guest-nope has not been found\n"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
