//! Helpers shared by the integration tests: temporary directories and the
//! rule for tests that need a real peer.

#![allow(dead_code)]

pub mod daemon;
pub mod monitor;
pub mod pty;

use std::path::PathBuf;
use std::process::{Command, Stdio};
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
