//! Helpers shared by the integration tests: temporary directories and the
//! rule for tests that need a real peer.

#![allow(dead_code)]

pub mod monitor;
pub mod pty;

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

/// The greeting of a fake QEMU 10 monitor offering `oob`.
pub const GREETING: &[u8] =
    b"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 0, \"major\": 10}, \"package\": \"\"}, \"capabilities\": [\"oob\"]}}\r\n";

/// A current-thread tokio runtime with I/O and timers.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A fake monitor on `listener` for one client: it greets, negotiates,
/// receives `getfd` with `recvmsg` and checks that one descriptor came on
/// the same message, reads five bytes through it and answers them.
pub fn fd_peer(
    listener: std::os::unix::net::UnixListener,
) -> std::thread::JoinHandle<Result<(), String>> {
    use rustix::net::{recvmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    use std::io::{IoSliceMut, Read, Write};
    use std::mem::MaybeUninit;
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    std::thread::spawn(move || -> Result<(), String> {
        let (mut s, _) = listener.accept().map_err(|e| e.to_string())?;
        s.write_all(GREETING).map_err(|e| e.to_string())?;
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).map_err(|e| e.to_string())?;
        if !buf[..n].starts_with(b"{\"execute\":\"qmp_capabilities\"") {
            return Err(text(&buf[..n]));
        }
        s.write_all(b"{\"return\": {}}\r\n")
            .map_err(|e| e.to_string())?;
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let mut iov = [IoSliceMut::new(&mut buf)];
        let got = recvmsg(&s, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC)
            .map_err(|e| e.to_string())?;
        let msg = text(&buf[..got.bytes]);
        if msg != r#"{"execute":"getfd","arguments":{"fdname":"p"},"id":1}"# {
            return Err(format!("got {msg:?}"));
        }
        let mut fds = Vec::new();
        for m in control.drain() {
            if let RecvAncillaryMessage::ScmRights(it) = m {
                fds.extend(it);
            }
        }
        let [fd] = <[_; 1]>::try_from(fds).map_err(|f| format!("{} fds", f.len()))?;
        let mut pipe = std::fs::File::from(fd);
        let mut word = [0u8; 5];
        pipe.read_exact(&mut word).map_err(|e| e.to_string())?;
        let reply = format!(
            "{{\"return\": {{\"read\": \"{}\"}}, \"id\": 1}}\r\n",
            text(&word)
        );
        s.write_all(reply.as_bytes()).map_err(|e| e.to_string())?;
        Ok(())
    })
}

/// A `qemu-ga` listening on a Unix socket, in a directory of its own;
/// killed on drop.
pub struct QemuGa {
    child: Child,
    pub sock: PathBuf,
    _dir: TempDir,
}

impl Drop for QemuGa {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `qemu-ga -m unix-listen` (`None`, after [`skip`], when it is not
/// installed).
pub fn qemu_ga(tag: &str) -> Option<QemuGa> {
    if !installed("qemu-ga") {
        return None;
    }
    let dir = TempDir::new(tag);
    let state = dir.path("state");
    std::fs::create_dir_all(&state).unwrap();
    let sock = dir.path("qga.sock");
    let child = Command::new("qemu-ga")
        .args(["-m", "unix-listen", "-p"])
        .arg(&sock)
        .arg("-t")
        .arg(&state)
        .arg("-f")
        .arg(dir.path("pid"))
        .arg("-l")
        .arg(dir.path("log"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn qemu-ga");
    Some(QemuGa {
        child,
        sock,
        _dir: dir,
    })
}

/// A raw client of an agent on `sock`: the socket and a line reader.
pub fn raw_client(
    sock: &std::path::Path,
) -> (
    std::os::unix::net::UnixStream,
    std::io::BufReader<std::os::unix::net::UnixStream>,
) {
    let s = std::os::unix::net::UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    let r = std::io::BufReader::with_capacity(1 << 16, s.try_clone().unwrap());
    (s, r)
}

/// The next line (empty at end of stream).
pub fn line(r: &mut std::io::BufReader<std::os::unix::net::UnixStream>) -> String {
    use std::io::BufRead;
    let mut l = String::new();
    r.read_line(&mut l).unwrap();
    l
}
