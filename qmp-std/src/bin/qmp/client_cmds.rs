//! The client subcommands `exec` and `events`, and what they share with
//! `shell` (`shell/`): connecting ([`open`]), the session ([`Peer`]), the
//! exit codes. The command line is already parsed and checked (see
//! `cli.rs`); these functions connect and do the work, and return the
//! process exit code:
//!
//! * 0: success;
//! * 1: the server answered with a QMP error (`CLASS: DESC` on stderr);
//! * 2: connection, timeout or protocol failure, or unreadable arguments
//!   (one line on stderr).
//!
//! QMP and the guest agent (`--qga`) go through the same calls and the same
//! errors ([`qmp_std::Error`]); messages that belong to no call are warned
//! about on stderr as they arrive. Whatever is echoed back goes through
//! [`escape::controls`](crate::escape::controls).

use crate::cli::{ArgsFrom, Target, QGA_CALL_TIMEOUT};
use crate::escape;
use qmp_std::client::{self, Call, Client};
use qmp_std::qga::Qga;
use qmp_std::{Config, Error};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// A connected session: QMP, or the guest agent.
pub enum Peer {
    Qmp(Box<Client>),
    Qga(Box<Qga>),
}

impl Peer {
    /// Runs one call.
    pub fn call(&mut self, call: Call<'_>) -> Result<String, Error> {
        match self {
            Peer::Qmp(c) => c.call(call),
            Peer::Qga(q) => q.call(call),
        }
    }

    /// Whether this is a guest agent.
    pub fn is_qga(&self) -> bool {
        matches!(self, Peer::Qga(_))
    }

    /// Reads the connection for up to `t`, queueing events (the guest agent
    /// sends none: it waits).
    pub fn poll(&mut self, t: Duration) -> Result<(), Error> {
        match self {
            Peer::Qmp(c) => c.poll(t),
            Peer::Qga(_) => {
                std::thread::sleep(t);
                Ok(())
            }
        }
    }

    /// Events received so far, as compact JSON lines.
    pub fn take_events(&mut self) -> Vec<String> {
        let mut events = Vec::new();
        if let Peer::Qmp(c) = self {
            while let Ok(Some(e)) = c.next_event(Some(Duration::ZERO)) {
                events.push(event_line(&e));
            }
        }
        events
    }
}

fn event_line(e: &client::Event) -> String {
    e.to_json().unwrap_or_else(|_| {
        // Data serde_json cannot read (QEMU's single quotes): as received.
        escape::controls(&format!(
            r#"{{"event":{},"data":{}}}"#,
            serde_json::Value::from(e.name.clone()),
            e.data.as_deref().unwrap_or("null")
        ))
        .into_owned()
    })
}

/// One line on stderr, `qmp: MSG`; exit code 2.
pub fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("qmp: {}", escape::controls(&msg.to_string()));
    ExitCode::from(2)
}

/// Where warnings go: a function given the warning's text (escaped).
pub type Warn = Box<dyn Fn(&str) + Send + Sync>;

/// Warnings on stderr, after `prefix`.
pub fn warn_on_stderr(prefix: &'static str) -> Warn {
    Box::new(move |w| eprintln!("{prefix}{w}"))
}

/// Connects and runs the handshake (QMP greeting and negotiation, or the
/// guest-agent sync) within [`Target::connect_time`]; with `--wait`,
/// retrying while the socket is missing or refuses (the library's retry,
/// see [`Config::retry_connect`]).
pub fn open(target: &Target, warn: Warn) -> Result<Peer, Error> {
    let cfg = Config::new()
        .retry_connect(target.wait.is_some())
        .connect_timeout(target.connect_time())
        .on_notice(move |n| warn(&escape::controls(&n.to_string())));
    if target.qga {
        let cfg = cfg.timeout(Some(QGA_CALL_TIMEOUT));
        Qga::connect(&target.address, cfg).map(|q| Peer::Qga(Box::new(q)))
    } else {
        Client::connect(&target.address, cfg).map(|c| Peer::Qmp(Box::new(c)))
    }
}

/// Fails for a connection error; with `--wait`, says how long it waited.
pub fn fail_open(target: &Target, e: &Error) -> ExitCode {
    match e {
        Error::Connect { .. } if target.wait.is_some() => fail(format_args!(
            "{e} (gave up after waiting {})",
            seconds(target.connect_time())
        )),
        _ => fail(e),
    }
}

/// `0.5 s`, `10 s`.
fn seconds(d: Duration) -> String {
    let s = format!("{:.3}", d.as_secs_f64());
    format!("{} s", s.trim_end_matches('0').trim_end_matches('.'))
}

/// Writes a line to stdout; `Err` when stdout is gone.
pub fn out_line(s: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(s.as_bytes())?;
    out.write_all(b"\n")?;
    out.flush()
}

/// Compact JSON for `exec` (Python's `json.dumps(v, separators=(',', ':'))`).
fn compact(text: &str) -> String {
    client::compact_json(text).unwrap_or_else(|_| escape::controls(text).into_owned())
}

/// The arguments of `exec`: from the command line, a file or stdin,
/// checked to be one JSON object.
fn read_args(from: &ArgsFrom) -> Result<String, String> {
    let (text, what) = match from {
        ArgsFrom::Inline(t) => return Ok(t.clone()),
        ArgsFrom::File(path) => (
            std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the arguments from {}: {e}", path.display()))?,
            format!("the arguments in {}", path.display()),
        ),
        ArgsFrom::Stdin => {
            let mut text = String::new();
            io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| format!("cannot read the arguments from standard input: {e}"))?;
            (text, "the arguments on standard input".to_owned())
        }
    };
    if crate::cli::is_object(&text) {
        Ok(text)
    } else {
        Err(format!("{what} are not one JSON object"))
    }
}

/// Opens `--fd FILE`: read-write, or read-only when writing is refused.
fn open_fd(path: &Path) -> io::Result<File> {
    match OpenOptions::new().read(true).write(true).open(path) {
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::PermissionDenied
                    | io::ErrorKind::ReadOnlyFilesystem
                    | io::ErrorKind::IsADirectory
            ) =>
        {
            File::open(path)
        }
        r => r,
    }
}

/// `qmp ... exec [--fd FILE] COMMAND [ARGS]`: runs one command and prints
/// its result. `--timeout` bounds the whole run: connecting, the handshake
/// and the command.
pub fn exec(
    target: &Target,
    command: &str,
    args: Option<&ArgsFrom>,
    fd: Option<&Path>,
) -> ExitCode {
    let start = Instant::now();
    let args = match args.map(read_args).transpose() {
        Ok(a) => a,
        Err(e) => return fail(e),
    };
    let file = match fd.map(|p| open_fd(p).map_err(|e| (p, e))).transpose() {
        Ok(f) => f,
        Err((p, e)) => return fail(format_args!("--fd: cannot open {}: {e}", p.display())),
    };
    let mut peer = match open(target, warn_on_stderr("qmp: warning: ")) {
        Ok(p) => p,
        Err(e) => return fail_open(target, &e),
    };
    let mut call = Call::new(command);
    if let Some(a) = &args {
        call = call.args_json(a);
    }
    if let Some(f) = &file {
        use std::os::fd::AsFd;
        call = call.fd(f.as_fd());
    }
    if let Some(t) = target.timeout {
        let left = t.saturating_sub(start.elapsed());
        call = call.timeout(left.max(Duration::from_millis(1)));
    }
    match peer.call(call) {
        Ok(v) => match out_line(&compact(&v)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(format_args!("cannot write the result: {e}")),
        },
        Err(Error::Qmp(e)) => {
            eprintln!("{}", escape::controls(&e.to_string()));
            ExitCode::from(1)
        }
        // The time allowed is the whole run's.
        Err(Error::Timeout { command, .. }) if target.timeout.is_some() => fail(Error::Timeout {
            command,
            after: target.timeout.unwrap_or_default(),
        }),
        Err(e) => fail(e),
    }
}

/// `qmp ... events [--count N] [--duration SECS]`: prints events as they
/// arrive, until `count` events or `duration` elapsed (or forever).
/// `--duration` bounds the whole run, connecting and the handshake
/// included.
pub fn events(target: &Target, count: Option<u64>, duration: Option<Duration>) -> ExitCode {
    let deadline = duration.map(|d| Instant::now() + d);
    let mut target = target.clone();
    target.timeout = duration;
    let mut client = match open(&target, warn_on_stderr("qmp: warning: ")) {
        Ok(Peer::Qmp(c)) => c,
        Ok(Peer::Qga(_)) => return fail("events: not with --qga"),
        Err(e) => return fail_open(&target, &e),
    };
    let mut seen = 0u64;
    let mut dropped = 0;
    loop {
        if count.is_some_and(|n| seen >= n) {
            return ExitCode::SUCCESS;
        }
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if left.is_some_and(|l| l.is_zero()) {
            return ExitCode::SUCCESS;
        }
        match client.next_event(left) {
            Ok(Some(e)) => {
                seen += 1;
                if let Err(e) = out_line(&event_line(&e)) {
                    if e.kind() == io::ErrorKind::BrokenPipe {
                        return ExitCode::SUCCESS;
                    }
                    return fail(format_args!("cannot write to stdout: {e}"));
                }
                if client.dropped_events() > dropped {
                    dropped = client.dropped_events();
                    eprintln!("qmp: warning: {dropped} events were dropped");
                }
            }
            Ok(None) => {}
            Err(Error::Disconnected { .. }) if count.is_none() && deadline.is_none() => {
                eprintln!("qmp: connection closed by the peer after {seen} events");
                return ExitCode::SUCCESS;
            }
            Err(e) => return fail(format_args!("{e} (after {seen} events)")),
        }
    }
}

/// The peer closed the connection: the normal end after `quit` (exit as at
/// end of input), a failure otherwise.
pub fn closed(e: &Error, after_quit: bool, failed: bool) -> ExitCode {
    if after_quit {
        eprintln!("connection closed after quit");
        ExitCode::from(u8::from(failed))
    } else {
        fail(e)
    }
}
