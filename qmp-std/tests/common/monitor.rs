//! A qemu-storage-daemon (or a qemu-system-x86_64) with one QMP monitor, spoken to one request at a
//! time over a raw socket (replies as the daemon sent them, events
//! skipped); killed on drop.

use super::{installed, TempDir};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Monitor {
    child: Child,
    _dir: TempDir,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Monitor {
    /// Starts the daemon and negotiates; `None` (after a `SKIP:` line)
    /// when it is not installed.
    pub fn start() -> Option<Monitor> {
        Monitor::spawn("qemu-storage-daemon", |sock| {
            vec![
                "--chardev".into(),
                format!("socket,path={sock},server=on,wait=off,id=m0"),
                "--monitor".into(),
                "chardev=m0".into(),
            ]
        })
    }

    /// Starts `qemu-system-x86_64 -machine none` with a QMP monitor and
    /// negotiates; `None` (after a `SKIP:` line) when it is not installed.
    pub fn start_system() -> Option<Monitor> {
        Monitor::spawn("qemu-system-x86_64", |sock| {
            [
                "-machine",
                "none",
                "-nodefaults",
                "-display",
                "none",
                "-qmp",
            ]
            .map(String::from)
            .into_iter()
            .chain([format!("unix:{sock},server=on,wait=off")])
            .collect()
        })
    }

    fn spawn(program: &str, args: impl FnOnce(&str) -> Vec<String>) -> Option<Monitor> {
        if !installed(program) {
            return None;
        }
        let dir = TempDir::new("monitor");
        let sock = dir.path("m.sock");
        let child = Command::new(program)
            .args(args(&sock.display().to_string()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
        let stream = (0..500)
            .find_map(|_| {
                UnixStream::connect(&sock).ok().or_else(|| {
                    std::thread::sleep(Duration::from_millis(20));
                    None
                })
            })
            .unwrap_or_else(|| panic!("connect to {program}"));
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut m = Monitor {
            child,
            _dir: dir,
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        };
        let greeting = m.line();
        assert!(greeting.starts_with(b"{\"QMP\""), "{greeting:?}");
        assert_eq!(
            m.send(br#"{"execute":"qmp_capabilities"}"#),
            b"{\"return\": {}}\r\n"
        );
        Some(m)
    }

    fn line(&mut self) -> Vec<u8> {
        let mut line = Vec::new();
        self.reader.read_until(b'\n', &mut line).unwrap();
        line
    }

    /// Sends one request and returns the reply line (events skipped).
    pub fn send(&mut self, request: &[u8]) -> Vec<u8> {
        self.writer.write_all(request).unwrap();
        loop {
            let line = self.line();
            assert!(!line.is_empty(), "the peer closed the monitor");
            if !line.starts_with(b"{\"timestamp\"") {
                return line;
            }
        }
    }
}
