//! A qemu-storage-daemon with one QMP monitor on a Unix socket, for tests
//! that point the `qmp` CLI at it; killed on drop.

use super::{installed, TempDir};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Daemon {
    child: Child,
    sock: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// Whether the daemon is installed (a `SKIP:` line when not, see
    /// [`installed`]).
    pub fn available() -> bool {
        installed("qemu-storage-daemon")
    }

    /// Starts the daemon with its monitor on `sock` (not waiting for it).
    pub fn spawn(sock: &Path) -> Daemon {
        let child = Command::new("qemu-storage-daemon")
            .args([
                "--chardev",
                &format!("socket,path={},server=on,wait=off,id=m0", sock.display()),
                "--monitor",
                "chardev=m0",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn qemu-storage-daemon");
        Daemon {
            child,
            sock: sock.to_owned(),
        }
    }

    /// Starts the daemon on a socket in `dir` and waits until the socket
    /// exists; `None` (after a `SKIP:` line) when it is not installed.
    pub fn start(dir: &TempDir) -> Option<Daemon> {
        if !Daemon::available() {
            return None;
        }
        let d = Daemon::spawn(&dir.path("qsd.sock"));
        let t0 = Instant::now();
        while !d.sock.exists() {
            assert!(t0.elapsed() < Duration::from_secs(10), "no monitor socket");
            std::thread::sleep(Duration::from_millis(10));
        }
        Some(d)
    }

    /// The monitor's socket.
    pub fn sock(&self) -> &str {
        self.sock.to_str().expect("a UTF-8 temp path")
    }
}
