//! Helpers shared by the integration tests: temporary directories and the
//! rule for tests that need a real peer.

#![allow(dead_code)]

pub mod monitor;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Whether peer tests must run (`QMP_REQUIRE_PEERS=1`) instead of skipping.
pub fn require_peers() -> bool {
    std::env::var("QMP_REQUIRE_PEERS").is_ok_and(|v| v == "1")
}

/// Skips a test for a missing peer (a failure with `QMP_REQUIRE_PEERS=1`).
pub fn skip(why: &str) {
    assert!(!require_peers(), "QMP_REQUIRE_PEERS=1 but {why}");
    println!("SKIP: {why}");
}

/// Whether `program --version` runs; skips (see [`skip`]) when not.
pub fn installed(program: &str) -> bool {
    let ok = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        skip(&format!("{program} not installed"));
    }
    ok
}

/// A fresh directory under the temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "qmp-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running qemu-storage-daemon with two QMP monitors on Unix sockets;
/// killed on drop.
pub struct Qsd {
    child: Child,
    pub sock: PathBuf,
    pub sock2: PathBuf,
    _dir: TempDir,
}

impl Drop for Qsd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts qemu-storage-daemon (`None`, after [`skip`], when it is not
/// installed).
pub fn qsd() -> Option<Qsd> {
    qsd_with(&[])
}

/// [`qsd`] with more arguments (e.g. a TCP monitor).
pub fn qsd_with(extra: &[&str]) -> Option<Qsd> {
    if !installed("qemu-storage-daemon") {
        return None;
    }
    let dir = TempDir::new("qsd");
    let (sock, sock2) = (dir.path("m0.sock"), dir.path("m1.sock"));
    let chardev = |p: &std::path::Path, id: &str| {
        format!("socket,path={},server=on,wait=off,id={id}", p.display())
    };
    let child = Command::new("qemu-storage-daemon")
        .args([
            "--chardev",
            &chardev(&sock, "m0"),
            "--monitor",
            "chardev=m0",
        ])
        .args([
            "--chardev",
            &chardev(&sock2, "m1"),
            "--monitor",
            "chardev=m1",
        ])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn qemu-storage-daemon");
    Some(Qsd {
        child,
        sock,
        sock2,
        _dir: dir,
    })
}
