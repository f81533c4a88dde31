//! The client subcommands: `exec`, `events`, `shell`. The command line is
//! already parsed and checked (see `cli.rs`); these functions connect and
//! do the work, and return the process exit code:
//!
//! * 0: success;
//! * 1: the server answered with a QMP error (`CLASS: DESC` on stderr);
//! * 2: connection, timeout or protocol failure (one line on stderr).
//!
//! QMP and the guest agent (`--qga`) go through the same calls and the same
//! errors ([`qmp_std::Error`]); messages that belong to no call are warned
//! about on stderr as they arrive.

use crate::cli::{Target, CONNECT_TIMEOUT, QGA_CALL_TIMEOUT};
use qmp_std::client::{self, Call, Client};
use qmp_std::qga::Qga;
use qmp_std::{Config, Error};
use std::io::{self, BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A connected session: QMP, or the guest agent.
enum Peer {
    Qmp(Box<Client>),
    Qga(Box<Qga>),
}

impl Peer {
    /// Runs one call.
    fn call(&mut self, call: Call<'_>) -> Result<String, Error> {
        match self {
            Peer::Qmp(c) => c.call(call),
            Peer::Qga(q) => q.call(call),
        }
    }

    /// Reads the connection for up to `t`, queueing events (the guest agent
    /// sends none: it waits).
    fn poll(&mut self, t: Duration) -> Result<(), Error> {
        match self {
            Peer::Qmp(c) => c.poll(t),
            Peer::Qga(_) => {
                std::thread::sleep(t);
                Ok(())
            }
        }
    }

    /// Events received so far, as compact JSON lines.
    fn take_events(&mut self) -> Vec<String> {
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
        format!(
            r#"{{"event":{},"data":{}}}"#,
            serde_json::Value::from(e.name.clone()),
            e.data.as_deref().unwrap_or("null")
        )
    })
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("qmp: {msg}");
    ExitCode::from(2)
}

/// The settings of every client subcommand: the connect time, warnings
/// printed as they arrive (`prefix`).
fn config(connect: Duration, prefix: &'static str) -> Config {
    Config::new()
        .retry_connect(false)
        .connect_timeout(connect)
        .on_notice(move |n| eprintln!("{prefix}{n}"))
}

/// Connects and runs the handshake (QMP greeting and negotiation, or the
/// guest-agent sync) within `connect`.
fn open(target: &Target, connect: Duration, prefix: &'static str) -> Result<Peer, Error> {
    let cfg = config(connect, prefix);
    if target.qga {
        let cfg = cfg.timeout(Some(QGA_CALL_TIMEOUT));
        Qga::connect(&target.address, cfg).map(|q| Peer::Qga(Box::new(q)))
    } else {
        Client::connect(&target.address, cfg).map(|c| Peer::Qmp(Box::new(c)))
    }
}

/// Writes a line to stdout; `Err` when stdout is gone.
fn out_line(s: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(s.as_bytes())?;
    out.write_all(b"\n")?;
    out.flush()
}

/// Compact JSON for `exec` (Python's `json.dumps(v, separators=(',', ':'))`).
fn compact(text: &str) -> String {
    client::compact_json(text).unwrap_or_else(|_| text.to_owned())
}

/// `qmp ... exec COMMAND [ARGS_JSON]`: runs one command and prints its
/// result. `args` is already checked to be one JSON object (its text).
/// `--timeout` bounds the whole run: connecting, the handshake and the
/// command.
pub fn exec(target: &Target, command: &str, args: Option<&str>) -> ExitCode {
    let start = Instant::now();
    let mut peer = match open(
        target,
        target.timeout.unwrap_or(CONNECT_TIMEOUT),
        "qmp: warning: ",
    ) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let mut call = Call::new(command);
    if let Some(a) = args {
        call = call.args_json(a);
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
            eprintln!("{e}");
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
    let connect = duration.map_or(CONNECT_TIMEOUT, |d| d.min(CONNECT_TIMEOUT));
    let mut client = match Client::connect(&target.address, config(connect, "qmp: warning: ")) {
        Ok(c) => c,
        Err(e) => return fail(e),
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

const SHELL_HELP: &str = "\
Type a command as `NAME key=value ...` (a value is JSON if it parses as JSON,
else a string; `a.b=1` builds nested objects), or a JSON object such as
{\"execute\": \"query-status\"} or {\"exec-oob\": \"NAME\", \"arguments\": {...}}.
Built-ins: help, history, !N (rerun entry N), !! (rerun the last), exit.
Events are shown as they arrive. End of input (Ctrl-D) leaves.";

/// One parsed shell line.
enum Line {
    Empty,
    Help,
    History,
    Exit,
    Rerun(Option<usize>),
    Run {
        name: String,
        args: Option<String>,
        oob: bool,
    },
}

/// Splits at whitespace outside strings and brackets.
fn words(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut depth, mut in_str, mut esc) = (0i32, false, false);
    for c in line.chars() {
        if in_str {
            cur.push(c);
            match (esc, c) {
                (true, _) => esc = false,
                (false, '\\') => esc = true,
                (false, '"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '{' | '[' => depth += 1,
            '}' | ']' => depth -= 1,
            c if c.is_whitespace() && depth <= 0 => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if in_str {
        return Err("unterminated string".into());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

fn parse_line(line: &str) -> Result<Line, String> {
    let line = line.trim();
    match line {
        "" => return Ok(Line::Empty),
        "help" | "?" => return Ok(Line::Help),
        "history" => return Ok(Line::History),
        "exit" => return Ok(Line::Exit),
        "!!" => return Ok(Line::Rerun(None)),
        _ => {}
    }
    if let Some(n) = line.strip_prefix('!') {
        return n
            .parse()
            .map(|n| Line::Rerun(Some(n)))
            .map_err(|_| format!("'!{n}': not a history entry number"));
    }
    if line.starts_with('{') {
        let v: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(line).map_err(|e| format!("not a JSON object: {e}"))?;
        let mut name = None;
        let mut args = None;
        let mut oob = false;
        for (k, v) in v {
            match (k.as_str(), v) {
                ("execute", serde_json::Value::String(s)) => name = Some(s),
                ("exec-oob", serde_json::Value::String(s)) => {
                    name = Some(s);
                    oob = true;
                }
                ("arguments", a @ serde_json::Value::Object(_)) => args = Some(a.to_string()),
                ("arguments", _) => return Err("'arguments' must be an object".into()),
                ("id", _) => {} // the client assigns its own ids
                (k @ ("execute" | "exec-oob"), _) => return Err(format!("'{k}' must be a string")),
                (k, _) => return Err(format!("unexpected member '{k}'")),
            }
        }
        let name = name.ok_or("the object needs 'execute' or 'exec-oob'")?;
        return Ok(Line::Run { name, args, oob });
    }
    let words = words(line)?;
    let Some((name, rest)) = words.split_first() else {
        return Ok(Line::Empty);
    };
    let mut args = serde_json::Map::new();
    for w in rest {
        let (key, value) = w
            .split_once('=')
            .ok_or_else(|| format!("'{w}': expected key=value"))?;
        if key.is_empty() {
            return Err(format!("'{w}': empty key"));
        }
        let value = serde_json::from_str(value)
            .unwrap_or_else(|_| serde_json::Value::String(value.to_owned()));
        insert_path(&mut args, key, value)?;
    }
    Ok(Line::Run {
        name: name.clone(),
        args: (!args.is_empty()).then(|| serde_json::Value::Object(args).to_string()),
        oob: false,
    })
}

fn insert_path(
    map: &mut serde_json::Map<String, serde_json::Value>,
    key: &str,
    value: serde_json::Value,
) -> Result<(), String> {
    match key.split_once('.') {
        None => {
            if map.insert(key.to_owned(), value).is_some() {
                return Err(format!("'{key}' given twice"));
            }
            Ok(())
        }
        Some((head, rest)) => {
            let inner = map
                .entry(head.to_owned())
                .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
            match inner {
                serde_json::Value::Object(m) => insert_path(m, rest, value),
                _ => Err(format!("'{head}' is not an object")),
            }
        }
    }
}

fn pretty(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| text.to_owned())
}

/// `qmp ... shell`: an interactive prompt (also reads scripts from a pipe).
///
/// Exit status: 0 at end of input or `exit`; 1 when input is not a
/// terminal and some command got a QMP error or did not parse; 2 when the
/// connection fails (or the peer closes it other than after `quit`).
pub fn shell(target: &Target) -> ExitCode {
    let mut s = match open(target, CONNECT_TIMEOUT, "warning: ") {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let interactive = io::stdin().is_terminal();
    let (tx, rx) = mpsc::channel::<Option<String>>();
    std::thread::spawn(move || {
        let stdin = io::stdin();
        for line in stdin.lock().lines() {
            match line {
                Ok(l) => {
                    if tx.send(Some(l)).is_err() {
                        return;
                    }
                }
                Err(_) => break,
            }
        }
        let _ = tx.send(None);
    });
    if interactive {
        println!("Connected to {}. Type 'help' for help.", target.address);
    }
    let mut history: Vec<String> = Vec::new();
    let mut failed = false;
    let mut last_quit = false;
    let mut prompt = true;
    let show = |s: &mut Peer| {
        for e in s.take_events() {
            let _ = out_line(&format!("event: {e}"));
        }
    };
    loop {
        if interactive && prompt {
            print!("qmp> ");
            let _ = io::stdout().flush();
            prompt = false;
        }
        // Wait for input, showing events meanwhile.
        let line = loop {
            match rx.recv_timeout(Duration::from_millis(40)) {
                Ok(l) => break l,
                Err(mpsc::RecvTimeoutError::Disconnected) => break None,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            let polled = s.poll(Duration::from_millis(40));
            let events = s.take_events();
            if !events.is_empty() {
                if interactive {
                    println!();
                }
                for e in events {
                    let _ = out_line(&format!("event: {e}"));
                }
                prompt = true;
            }
            if let Err(e) = polled {
                return closed(&e, last_quit, failed && !interactive);
            }
            if prompt && interactive {
                print!("qmp> ");
                let _ = io::stdout().flush();
                prompt = false;
            }
        };
        prompt = true;
        let Some(line) = line else {
            if interactive {
                println!();
            }
            break;
        };
        let mut parsed = parse_line(&line);
        let mut text = line.trim().to_owned();
        if let Ok(Line::Rerun(n)) = parsed {
            let entry = match n {
                None => history.last(),
                Some(n) => n.checked_sub(1).and_then(|i| history.get(i)),
            };
            match entry {
                Some(e) => {
                    text = e.clone();
                    if interactive {
                        println!("{text}");
                    }
                    parsed = parse_line(&text);
                }
                None => parsed = Err("no such history entry".into()),
            }
        }
        match parsed {
            Ok(Line::Empty) => {}
            Ok(Line::Help) => println!("{SHELL_HELP}"),
            Ok(Line::History) => {
                for (i, h) in history.iter().enumerate() {
                    println!("{:4}  {h}", i + 1);
                }
            }
            Ok(Line::Exit) => break,
            Ok(Line::Rerun(_)) => {}
            Ok(Line::Run { name, args, oob }) => {
                history.push(text);
                last_quit = name == "quit";
                let mut call = Call::new(&name);
                if let Some(a) = &args {
                    call = call.args_json(a);
                }
                if oob {
                    call = call.oob();
                }
                let r = s.call(call);
                show(&mut s);
                match r {
                    Ok(v) => {
                        if out_line(&pretty(&v)).is_err() {
                            return ExitCode::SUCCESS;
                        }
                    }
                    Err(e) if e.is_closed() => {
                        return closed(&e, last_quit, failed && !interactive)
                    }
                    Err(e) => {
                        failed = true;
                        eprintln!("error: {e}");
                    }
                }
            }
            Err(e) => {
                failed = true;
                eprintln!("error: {e}");
            }
        }
    }
    if failed && !interactive {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// The peer closed the connection: the normal end after `quit` (exit as at
/// end of input), a failure otherwise.
fn closed(e: &Error, after_quit: bool, failed: bool) -> ExitCode {
    if after_quit {
        eprintln!("connection closed after quit");
        ExitCode::from(u8::from(failed))
    } else {
        fail(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(line: &str) -> (String, Option<String>, bool) {
        match parse_line(line) {
            Ok(Line::Run { name, args, oob }) => (name, args, oob),
            _ => panic!("not a command: {line}"),
        }
    }

    #[test]
    fn shell_lines() {
        assert_eq!(run("query-status"), ("query-status".into(), None, false));
        assert_eq!(
            run(r#"human-monitor-command command-line="info status" cpu-index=0"#).1,
            Some(r#"{"command-line":"info status","cpu-index":0}"#.into())
        );
        assert_eq!(
            run("blockdev-add driver=null-co node-name=n0 size=1048576 x.y=[1, 2]").1,
            Some(r#"{"driver":"null-co","node-name":"n0","size":1048576,"x":{"y":[1,2]}}"#.into())
        );
        assert_eq!(
            run(r#"{"exec-oob": "x-sleep", "arguments": {"ms": 1}, "id": 7}"#),
            ("x-sleep".into(), Some(r#"{"ms":1}"#.into()), true)
        );
        assert!(matches!(parse_line("  "), Ok(Line::Empty)));
        assert!(matches!(parse_line("!2"), Ok(Line::Rerun(Some(2)))));
        assert!(parse_line("stop x").is_err());
        assert!(parse_line(r#"{"execute": 1}"#).is_err());
        assert!(parse_line(r#"{"foo": "x"}"#).is_err());
        assert!(parse_line(r#"a b="x"#).is_err());
    }
}
