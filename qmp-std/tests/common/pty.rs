//! A program on a pseudo-terminal, driven like a person at a keyboard:
//! [`Pty::spawn`] runs it with the terminal's slave side as its standard
//! input, output and error; [`Pty::send`] types, [`Pty::expect`] waits for
//! what it prints. Built on rustix's `openpt`/`grantpt`/`unlockpt`/
//! `ptsname` (no terminal crate).

use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
use rustix::termios::{tcsetwinsize, Winsize};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long [`Pty::expect`] waits.
pub const EXPECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A child on a pseudo-terminal; killed on drop.
pub struct Pty {
    child: Child,
    master: File,
    /// Everything the child wrote.
    output: Arc<Mutex<Vec<u8>>>,
    /// How much of it [`Pty::expect`] has consumed.
    seen: usize,
}

impl Drop for Pty {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Pty {
    /// Runs `cmd` on a fresh 40×200 terminal.
    pub fn spawn(mut cmd: Command) -> Pty {
        let master =
            openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC).expect("openpt");
        grantpt(&master).expect("grantpt");
        unlockpt(&master).expect("unlockpt");
        let name = ptsname(&master, Vec::new()).expect("ptsname");
        let name = name.to_str().expect("pts name").to_owned();
        tcsetwinsize(
            &master,
            Winsize {
                ws_row: 40,
                ws_col: 200,
                ws_xpixel: 0,
                ws_ypixel: 0,
            },
        )
        .expect("window size");
        let slave = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&name)
            .expect("open the pty slave");
        let io = || Stdio::from(slave.try_clone().expect("dup the pty slave"));
        let child = cmd
            .stdin(io())
            .stdout(io())
            .stderr(io())
            .spawn()
            .expect("spawn on the pty");
        drop(slave);
        let master = File::from(master);
        let output = Arc::new(Mutex::new(Vec::new()));
        let (mut reader, sink) = (master.try_clone().expect("dup the pty"), output.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // EIO once the child and every copy of the slave are gone.
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Pty {
            child,
            master,
            output,
            seen: 0,
        }
    }

    /// Types `keys`.
    pub fn send(&mut self, keys: &[u8]) {
        self.master.write_all(keys).expect("write to the pty");
    }

    /// Waits for `needle` in what was printed since the last expect;
    /// returns that output, up to and including the needle.
    pub fn expect(&mut self, needle: &str) -> String {
        let t0 = Instant::now();
        loop {
            {
                let out = self.output.lock().unwrap();
                let new = &out[self.seen..];
                if let Some(at) = new
                    .windows(needle.len())
                    .position(|w| w == needle.as_bytes())
                {
                    let got = String::from_utf8_lossy(&new[..at + needle.len()]).into_owned();
                    self.seen += at + needle.len();
                    return got;
                }
                assert!(
                    t0.elapsed() < EXPECT_TIMEOUT,
                    "no {needle:?} within {EXPECT_TIMEOUT:?}; got {:?}",
                    String::from_utf8_lossy(new)
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for the child to exit.
    pub fn wait(&mut self) -> ExitStatus {
        let t0 = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(t0.elapsed() < EXPECT_TIMEOUT, "the child did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
