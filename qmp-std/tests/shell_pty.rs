//! `qmp shell` on a pseudo-terminal against qemu-storage-daemon (issue 16,
//! acceptance point 3): Tab completion (command name, argument name,
//! nested key, enum value), typed `key=value` arguments, history (Up-arrow
//! recall; the history file across two runs), escaped control characters
//! in what is echoed back, `help COMMAND`.
//!
//! The terminal output is rustyline's: every edit redraws the line between
//! `ESC [?2026h` and `ESC [?2026l`, and a line being edited is framed by
//! bracketed-paste mode (`ESC [?2004h` at the prompt, `ESC [?2004l` when
//! Enter is taken). What a command prints comes between those two, so
//! [`Shell::enter`] returns it exactly.
//!
//! Skipped (a `SKIP:` line) without qemu-storage-daemon unless
//! `QMP_REQUIRE_PEERS=1`.

mod common;

use common::pty::Pty;
use common::{qsd, Qsd, TempDir};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const QMP: &str = env!("CARGO_BIN_EXE_qmp");

/// Bracketed paste on: the editor is at its prompt.
const EDITING: &str = "\x1b[?2004h";
/// Bracketed paste off, and the newline after the line: Enter was taken.
const TAKEN: &str = "\x1b[?2004l\r\n";
const PROMPT: &str = "qmp> ";

struct Shell(Pty);

impl Shell {
    /// `qmp shell` on `sock`, keeping its history in `history`; waits for
    /// the first prompt after the greeting line.
    fn start(sock: &str, history: &Path) -> Shell {
        let mut cmd = Command::new(QMP);
        cmd.args(["--unix", sock, "shell"])
            .env("QMP_HISTORY", history)
            .env("TERM", "xterm");
        let mut pty = Pty::spawn(cmd);
        assert_eq!(
            pty.expect(EDITING),
            format!("Connected to unix:{sock}. Type 'help' for help.\r\n{EDITING}")
        );
        pty.expect(PROMPT);
        Shell(pty)
    }

    /// Types `keys` and waits until the editor shows `shown`.
    fn keys(&mut self, keys: &[u8], shown: &str) {
        self.0.send(keys);
        self.0.expect(shown);
    }

    /// Presses Enter: what the command printed (exactly, `\r\n` line
    /// ends), once the next prompt is up.
    fn enter(&mut self) -> String {
        self.0.send(b"\r");
        self.0.expect(TAKEN);
        let out = self.0.expect(EDITING);
        self.0.expect(PROMPT);
        out[..out.len() - EDITING.len()].to_owned()
    }

    /// Types a line and presses Enter.
    fn run(&mut self, line: &str) -> String {
        self.keys(line.as_bytes(), line.rsplit(' ').next().unwrap_or(line));
        self.enter()
    }

    /// Ctrl-D: the shell ends, with status 0.
    fn end(mut self) {
        self.0.send(b"\x04");
        assert!(self.0.wait().success());
    }
}

/// qemu-storage-daemon, once its monitor socket exists (`None` after a
/// `SKIP:` line when it is not installed).
fn daemon() -> Option<Qsd> {
    let d = qsd()?;
    let t0 = Instant::now();
    while !d.sock.exists() {
        assert!(t0.elapsed() < Duration::from_secs(10), "no monitor socket");
        std::thread::sleep(Duration::from_millis(10));
    }
    Some(d)
}

fn sock(d: &Qsd) -> &str {
    d.sock.to_str().expect("a UTF-8 temp path")
}

/// `query-named-block-nodes`' nodes by name: (driver, read-only).
fn nodes(out: &str) -> Vec<(String, String, bool)> {
    let v: serde_json::Value = serde_json::from_str(&out.replace("\r\n", "\n")).unwrap();
    let mut nodes: Vec<_> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["node-name"].as_str().unwrap().to_owned(),
                n["drv"].as_str().unwrap().to_owned(),
                n["ro"].as_bool().unwrap(),
            )
        })
        .collect();
    nodes.sort();
    nodes
}

#[test]
fn the_shell_on_a_terminal() {
    let dir = TempDir::new("pty");
    let Some(qsd) = daemon() else {
        return;
    };
    let history = dir.path("state/history");
    let mut sh = Shell::start(sock(&qsd), &history);

    // Tab: a command name.
    sh.keys(b"query-named-bl\t", "qmp> query-named-block-nodes ");
    assert_eq!(sh.enter(), "[]\r\n");

    // Tab: an argument name; typed values (an integer, a boolean).
    sh.keys(b"blockdev-add driver=null-co node-na\t", "node-name=");
    sh.keys(b"n0 size=1024 read-only=on", "read-only=on");
    assert_eq!(sh.enter(), "{}\r\n");

    // Tab: a nested key, then an enum value after '='.
    sh.keys(
        b"blockdev-add driver=raw node-name=r0 file.dri\t",
        "file.driver=",
    );
    sh.keys(b"null-c\t", "file.driver=null-co ");
    assert_eq!(sh.enter(), "{}\r\n");

    let out = sh.run("query-named-block-nodes flat=on");
    let mut found = nodes(&out);
    // The raw node's file got a generated name.
    assert!(found[0].0.starts_with('#'), "{found:?}");
    found[0].0 = "#file".into();
    found.sort();
    assert_eq!(
        found,
        [
            ("#file".into(), "null-co".into(), false),
            ("n0".into(), "null-co".into(), true),
            ("r0".into(), "raw".into(), false),
        ]
    );

    // A value that is not its type: a local error naming the member and
    // the type; nothing is sent, the session goes on.
    assert_eq!(
        sh.run("blockdev-add driver=null-co node-name=n1 size=big"),
        "error: not sent: Invalid parameter type for 'size', expected: integer (got \"big\")\r\n"
    );

    // An ESC typed into the line (Ctrl-V ESC): echoed back escaped, by the
    // server's error and by the local check.
    sh.keys(b"nope\x16\x1b[A", "[A");
    let out = sh.enter();
    assert_eq!(
        out,
        "error: CommandNotFound: The command nope\\u001b[A has not been found\r\n"
    );
    sh.keys(b"blockdev-add driver=\x16\x1b[A", "[A");
    let out = sh.enter();
    assert!(
        out.starts_with(
            "error: not sent: Parameter 'driver' does not accept value '\\u001b[A' (expected one of: blkdebug, blklogwrites,"
        ),
        "{out:?}"
    );
    assert!(
        out.ends_with(", vvfat)\r\n") && out.lines().count() == 1,
        "{out:?}"
    );
    assert!(!out.contains('\x1b'), "{out:?}");

    // Up-arrow recalls the previous line (twice: the one before).
    sh.keys(b"\x1b[A\x1b[A", "nope");
    assert_eq!(
        sh.enter(),
        "error: CommandNotFound: The command nope\\u001b[A has not been found\r\n"
    );

    // help COMMAND: the argument tree.
    assert_eq!(
        sh.run("help blockdev-del"),
        "blockdev-del\r\n  node-name: str\r\n"
    );
    let out = sh.run("help blockdev-add");
    assert!(
        out.starts_with("blockdev-add\r\n  driver: one of: blkdebug, blklogwrites,"),
        "{out}"
    );
    assert!(
        out.contains(
            "\r\n  node-name: str (optional)\r\n  discard: one of: ignore, unmap (optional)\r\n"
        ),
        "{out}"
    );
    assert!(
        out.contains("\r\n  driver=null-co:\r\n    size: int (optional)\r\n    latency-ns: int (optional)\r\n    read-zeroes: bool (optional)\r\n"),
        "{out}"
    );

    assert_eq!(
        sh.run("history"),
        "   1  query-named-block-nodes\r\n\
         \x20  2  blockdev-add driver=null-co node-name=n0 size=1024 read-only=on\r\n\
         \x20  3  blockdev-add driver=raw node-name=r0 file.driver=null-co\r\n\
         \x20  4  query-named-block-nodes flat=on\r\n\
         \x20  5  blockdev-add driver=null-co node-name=n1 size=big\r\n\
         \x20  6  nope\\u001b[A\r\n\
         \x20  7  blockdev-add driver=\\u001b[A\r\n\
         \x20  8  nope\\u001b[A\r\n"
    );
    sh.end();

    // The history file (rustyline's format), repeated lines kept once
    // (the recalled `nope` came after another line, so it is kept).
    let first = "#V2\n\
                 query-named-block-nodes\n\
                 blockdev-add driver=null-co node-name=n0 size=1024 read-only=on\n\
                 blockdev-add driver=raw node-name=r0 file.driver=null-co\n\
                 query-named-block-nodes flat=on\n\
                 blockdev-add driver=null-co node-name=n1 size=big\n\
                 nope\x1b[A\n\
                 blockdev-add driver=\x1b[A\n\
                 nope\x1b[A\n\
                 help blockdev-del\n\
                 help blockdev-add\n\
                 history\n";
    assert_eq!(std::fs::read_to_string(&history).unwrap(), first);

    // A second run recalls the first run's lines.
    let mut sh = Shell::start(sock(&qsd), &history);
    sh.keys(b"\x1b[A\x1b[A", "help blockdev-add");
    let out = sh.enter();
    assert!(
        out.starts_with("blockdev-add\r\n  driver: one of: "),
        "{out}"
    );
    // Up past this run's line, `history`, the two help lines, the three
    // ESC lines and the size=big one.
    sh.keys(&b"\x1b[A".repeat(9), "flat=on");
    let out = sh.enter();
    assert_eq!(nodes(&out).len(), 3, "{out}");
    sh.end();
    assert_eq!(
        std::fs::read_to_string(&history).unwrap(),
        format!("{first}help blockdev-add\nquery-named-block-nodes flat=on\n")
    );
}

/// `--no-history` and an empty `QMP_HISTORY` keep no history file.
#[test]
fn no_history_file() {
    let dir = TempDir::new("pty-nohist");
    let Some(qsd) = daemon() else {
        return;
    };
    let mut cmd = Command::new(QMP);
    cmd.args(["--unix", sock(&qsd), "shell", "--no-history"])
        .env("QMP_HISTORY", dir.path("h"))
        .env("TERM", "xterm");
    let mut sh = Shell({
        let mut pty = Pty::spawn(cmd);
        pty.expect(EDITING);
        pty.expect(PROMPT);
        pty
    });
    assert_eq!(sh.run("query-named-block-nodes"), "[]\r\n");
    sh.end();
    assert!(!dir.path("h").exists());
}
