//! Command-line parsing for `qmp` (hand-rolled, no dependencies).
//!
//! Connection options (`--unix`, `--tcp`, `--qga`, `--timeout`, `--wait`)
//! may come before or after the subcommand; subcommand options (`--count`,
//! `--duration`, `--fd`, `--no-history`) after it. `--opt VALUE` and
//! `--opt=VALUE` both work (`--wait` takes its optional value only as
//! `--wait=SECS`); `--` ends options. Each subcommand accepts only the
//! options of its synopsis.

use qmp_std::{Address, Json};
use std::path::PathBuf;
use std::time::Duration;

pub const USAGE: &str = "\
usage: qmp (--unix PATH | --tcp HOST:PORT) [--qga] [--timeout SECS] [--wait[=SECS]]
           exec [--fd FILE] COMMAND [ARGS_JSON | @FILE | -]
       qmp (--unix PATH | --tcp HOST:PORT) [--wait[=SECS]] events [--count N] [--duration SECS]
       qmp (--unix PATH | --tcp HOST:PORT) [--qga] [--wait[=SECS]] shell [--no-history]
       qmp agent (--unix PATH | --tcp HOST:PORT) [--qga]
       qmp demo

  exec     run one command and print its result; its arguments are a JSON
           object: ARGS_JSON itself, the contents of FILE (@FILE), or
           standard input (-). One command-line argument holds at most
           128 KiB on Linux; a file or standard input, any size
  events   print events until N arrived or SECS passed (default: forever)
  shell    interactive prompt (see Shell below)
  agent    serve the demo monitor (guest agent with --qga) until `quit`
  demo     a live session: the demo agent and the client, in-process

  --unix PATH        Unix socket
  --tcp HOST:PORT    TCP address
  --qga              speak the guest-agent dialect (no greeting/negotiation)
  --timeout SECS     exec: give up after SECS in all (connect, handshake, reply)
  --wait[=SECS]      exec, events, shell: wait for a socket that does not
                     exist or listen yet, retrying for up to SECS (default:
                     the connect timeout) with the handshake included
  --fd FILE          exec: pass FILE's descriptor with the command (SCM_RIGHTS;
                     --unix only), for getfd and add-fd; FILE is opened
                     read-write, or read-only when writing is refused
  --count N          events: stop after N events
  --duration SECS    events: stop after SECS in all (connect and handshake too)
  --no-history       shell: neither read nor write the history file

Shell:
  With a terminal, the shell edits lines (Emacs keys) and keeps a history
  in $QMP_HISTORY, else $XDG_STATE_HOME/qmp/history, else
  ~/.local/state/qmp/history (QMP_HISTORY set but empty, or --no-history:
  no history file). Tab completes command names, argument names (nested:
  file.driver=) and enum values from the server's query-qmp-schema (from
  query-commands, names only, where the server has no schema); key=value
  arguments are typed by that schema and checked before they are sent;
  `help COMMAND` prints a command's argument tree, `help` the rest. Read
  from a pipe, the shell runs one line at a time, without prompts or
  history file.

Timeouts and bounds (defaults):
  connect timeout    10 s to connect and complete the handshake (the QMP
                     greeting and qmp_capabilities, or the guest-agent sync);
                     exec --timeout and events --duration shorten it; a
                     missing socket fails at once (no retry) unless --wait
  sync timeout       5 s for the guest-agent sync (--qga: 0xFF and
                     guest-sync-delimited, up to 3 attempts with fresh ids),
                     within the connect timeout
  call timeout       QMP: none (a reply may take as long as its command);
                     --qga: 10 s; exec --timeout: what is left of SECS
  max message size   16 MiB per message received: a larger reply fails its
                     command and the session goes on
  event queue        1024 events (events, shell): beyond, the oldest is
                     dropped and counted
  pipeline           8 in-band requests in flight while oob is enabled
                     (QEMU's queue)
  agent              requests and replies up to 1 MiB each; 8 queued
                     in-band requests per session (QEMU's backpressure)
  agent sessions     64 at once: a connection beyond gets one error line
                     (GenericError \"too many sessions\") and is closed;
                     admitted sessions go on
  agent backlog      1 MiB of events per session beyond its output buffer
                     while its peer does not read (8 MiB while its thread
                     is busy): the session is then closed (logged on stderr)

Replies and errors that belong to no command, and input that is not JSON,
are printed as warnings on stderr when they arrive. Control characters in
what is echoed back (errors, warnings, the server's strings) are written as
escapes (\\u001b).";

/// The connect timeout of the client subcommands (connect and handshake).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The call timeout of the guest-agent subcommands (`--qga`).
pub const QGA_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and how a client subcommand connects.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub address: Address,
    pub qga: bool,
    /// `--timeout` (exec only).
    pub timeout: Option<Duration>,
    /// `--wait[=SECS]`: retry connecting, for SECS or the connect timeout.
    pub wait: Option<Wait>,
}

/// `--wait` (the connect timeout) or `--wait=SECS`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Wait {
    ConnectTimeout,
    For(Duration),
}

impl Target {
    /// The time to connect and complete the handshake: `--wait=SECS` or
    /// the connect timeout, shortened by `--timeout`.
    pub fn connect_time(&self) -> Duration {
        let t = match self.wait {
            Some(Wait::For(d)) => d,
            _ => CONNECT_TIMEOUT,
        };
        self.timeout.map_or(t, |limit| limit.min(t))
    }
}

/// Where `exec` takes its arguments from.
#[derive(Debug, Clone, PartialEq)]
pub enum ArgsFrom {
    /// The command line (checked to be one JSON object).
    Inline(String),
    /// `@FILE`.
    File(PathBuf),
    /// `-`: standard input.
    Stdin,
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Help,
    Demo,
    Agent {
        address: Address,
        qga: bool,
    },
    Exec {
        target: Target,
        command: String,
        args: Option<ArgsFrom>,
        /// `--fd FILE`.
        fd: Option<PathBuf>,
    },
    Events {
        target: Target,
        count: Option<u64>,
        duration: Option<Duration>,
    },
    Shell {
        target: Target,
        /// Whether the line editor keeps a history file (`--no-history`
        /// turns it off).
        history: bool,
    },
}

#[derive(Default)]
struct Opts {
    address: Option<Address>,
    qga: bool,
    timeout: Option<Duration>,
    count: Option<u64>,
    duration: Option<Duration>,
    wait: Option<Wait>,
    fd: Option<PathBuf>,
    no_history: bool,
    /// Options seen, for per-subcommand checks.
    seen: Vec<&'static str>,
}

fn secs(opt: &str, v: &str) -> Result<Duration, String> {
    match v.parse::<f64>() {
        Ok(s) if (0.0..1e9).contains(&s) => Ok(Duration::from_secs_f64(s)),
        _ => Err(format!("{opt}: '{v}' is not a number of seconds")),
    }
}

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Command, String> {
    let mut opts = Opts::default();
    let mut words: Vec<&str> = Vec::new();
    let mut it = args.iter().map(String::as_str);
    let mut only_words = false;
    while let Some(arg) = it.next() {
        if only_words || !arg.starts_with("--") && arg != "-h" {
            words.push(arg);
            continue;
        }
        if arg == "--" {
            only_words = true;
            continue;
        }
        if arg == "-h" || arg == "--help" {
            return Ok(Command::Help);
        }
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (arg, None),
        };
        let name: &'static str = match name {
            "--unix" => "--unix",
            "--tcp" => "--tcp",
            "--qga" => "--qga",
            "--timeout" => "--timeout",
            "--count" => "--count",
            "--duration" => "--duration",
            "--wait" => "--wait",
            "--fd" => "--fd",
            "--no-history" => "--no-history",
            _ => return Err(format!("unknown option '{name}'")),
        };
        if opts.seen.contains(&name) {
            return Err(format!("{name} given twice"));
        }
        opts.seen.push(name);
        match (name, inline) {
            ("--qga" | "--no-history", Some(_)) => return Err(format!("{name} takes no value")),
            ("--qga", None) => {
                opts.qga = true;
                continue;
            }
            ("--no-history", None) => {
                opts.no_history = true;
                continue;
            }
            ("--wait", None) => {
                opts.wait = Some(Wait::ConnectTimeout);
                continue;
            }
            ("--wait", Some(v)) => {
                opts.wait = Some(Wait::For(secs(name, v)?));
                continue;
            }
            _ => {}
        }
        let value = match inline {
            Some(v) => v,
            None => it.next().ok_or_else(|| format!("{name} needs a value"))?,
        };
        match name {
            "--unix" | "--tcp" => {
                if opts.address.is_some() {
                    return Err("give only one of --unix and --tcp".to_owned());
                }
                if value.is_empty() {
                    return Err(format!("{name}: empty address"));
                }
                opts.address = Some(if name == "--unix" {
                    Address::unix(value)
                } else {
                    Address::tcp(value).map_err(|e| format!("--tcp: {e}"))?
                });
            }
            "--timeout" => opts.timeout = Some(secs(name, value)?),
            "--fd" => {
                if value.is_empty() {
                    return Err("--fd: empty file name".to_owned());
                }
                opts.fd = Some(PathBuf::from(value));
            }
            "--duration" => opts.duration = Some(secs(name, value)?),
            _ => {
                opts.count = Some(
                    value
                        .parse()
                        .map_err(|_| format!("--count: '{value}' is not a count"))?,
                );
            }
        }
    }
    let Some((&sub, rest)) = words.split_first() else {
        return Err("no subcommand".to_owned());
    };
    let allowed: &[&str] = match sub {
        "demo" => &[],
        "agent" => &["--unix", "--tcp", "--qga"],
        "shell" => &["--unix", "--tcp", "--qga", "--wait", "--no-history"],
        "exec" => &["--unix", "--tcp", "--qga", "--timeout", "--wait", "--fd"],
        "events" => &["--unix", "--tcp", "--count", "--duration", "--wait"],
        _ => return Err(format!("unknown subcommand '{sub}'")),
    };
    if let Some(bad) = opts.seen.iter().find(|o| !allowed.contains(o)) {
        return Err(format!("{bad} is not an option of '{sub}'"));
    }
    if sub == "demo" {
        if let Some(extra) = rest.first() {
            return Err(format!("unexpected argument '{extra}'"));
        }
        return Ok(Command::Demo);
    }
    let address = opts
        .address
        .ok_or_else(|| format!("'{sub}' needs --unix PATH or --tcp HOST:PORT"))?;
    if opts.fd.is_some() && !matches!(address, Address::Unix(_)) {
        return Err("--fd needs --unix (descriptors pass over Unix sockets only)".to_owned());
    }
    let target = Target {
        address: address.clone(),
        qga: opts.qga,
        timeout: opts.timeout,
        wait: opts.wait,
    };
    match sub {
        "exec" => {
            let (command, args) = match rest {
                [] => return Err("exec needs a COMMAND".to_owned()),
                [c] => (c, None),
                [c, a] => (c, Some(a)),
                [_, _, extra, ..] => return Err(format!("unexpected argument '{extra}'")),
            };
            let args = match args {
                None => None,
                Some(&"-") => Some(ArgsFrom::Stdin),
                Some(a) => match a.strip_prefix('@') {
                    Some("") => return Err("@FILE: empty file name".to_owned()),
                    Some(file) => Some(ArgsFrom::File(PathBuf::from(file))),
                    None => {
                        if !is_object(a) {
                            return Err("ARGS_JSON must be one JSON object".to_owned());
                        }
                        Some(ArgsFrom::Inline((*a).to_owned()))
                    }
                },
            };
            Ok(Command::Exec {
                target,
                command: (*command).to_owned(),
                args,
                fd: opts.fd,
            })
        }
        _ if !rest.is_empty() => Err(format!("unexpected argument '{}'", rest[0])),
        "agent" => Ok(Command::Agent {
            address,
            qga: opts.qga,
        }),
        "events" => Ok(Command::Events {
            target,
            count: opts.count,
            duration: opts.duration,
        }),
        _ => Ok(Command::Shell {
            target,
            history: !opts.no_history,
        }),
    }
}

/// Whether `text` is one JSON object.
pub fn is_object(text: &str) -> bool {
    Json::parse(text).is_ok_and(|j| j.raw().kind() == qmp_core::json::JsonKind::Object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn p(s: &str) -> Result<Command, String> {
        let v: Vec<String> = s.split_whitespace().map(str::to_owned).collect();
        parse(&v)
    }

    #[test]
    fn parses_the_synopsis() {
        assert_eq!(p("demo"), Ok(Command::Demo));
        assert_eq!(p("--help"), Ok(Command::Help));
        assert_eq!(
            p("agent --unix /tmp/s --qga"),
            Ok(Command::Agent {
                address: Address::unix("/tmp/s"),
                qga: true
            })
        );
        assert_eq!(
            p("--tcp 127.0.0.1:4444 --timeout 2.5 exec query-status"),
            Ok(Command::Exec {
                target: Target {
                    address: Address::Tcp("127.0.0.1:4444".into()),
                    qga: false,
                    timeout: Some(Duration::from_millis(2500)),
                    wait: None,
                },
                command: "query-status".into(),
                args: None,
                fd: None,
            })
        );
        assert!(matches!(
            p(r#"--unix=/s exec x-sleep {"ms":1}"#),
            Ok(Command::Exec { args: Some(ArgsFrom::Inline(a)), .. }) if a == r#"{"ms":1}"#
        ));
        assert!(matches!(
            p("--unix /s exec add-fd @/tmp/args.json --fd /dev/null --wait"),
            Ok(Command::Exec {
                target: Target { wait: Some(Wait::ConnectTimeout), .. },
                args: Some(ArgsFrom::File(f)),
                fd: Some(d),
                ..
            }) if f == Path::new("/tmp/args.json") && d == Path::new("/dev/null")
        ));
        assert!(matches!(
            p("--unix /s --wait=2.5 exec blockdev-add -"),
            Ok(Command::Exec {
                target: Target { wait: Some(Wait::For(d)), .. },
                args: Some(ArgsFrom::Stdin),
                ..
            }) if d == Duration::from_millis(2500)
        ));
        assert!(matches!(
            p("--unix /s events --count 3 --duration 1"),
            Ok(Command::Events {
                count: Some(3),
                duration: Some(d),
                ..
            }) if d == Duration::from_secs(1)
        ));
        assert!(matches!(
            p("--unix /s --qga shell"),
            Ok(Command::Shell { target, history: true }) if target.qga
        ));
        assert!(matches!(
            p("--unix /s shell --no-history --wait=1"),
            Ok(Command::Shell { target, history: false })
                if target.wait == Some(Wait::For(Duration::from_secs(1)))
        ));
    }

    /// The connect time: `--wait=SECS`, else the connect timeout; never
    /// past `--timeout`.
    #[test]
    fn connect_time() {
        let t = |s: &str| match p(s) {
            Ok(Command::Exec { target, .. }) => target.connect_time(),
            other => panic!("{other:?}"),
        };
        assert_eq!(t("--unix /s exec a"), CONNECT_TIMEOUT);
        assert_eq!(t("--unix /s --wait exec a"), CONNECT_TIMEOUT);
        assert_eq!(t("--unix /s --wait=30 exec a"), Duration::from_secs(30));
        assert_eq!(
            t("--unix /s --wait=30 --timeout 2 exec a"),
            Duration::from_secs(2)
        );
        assert_eq!(t("--unix /s --timeout 2 exec a"), Duration::from_secs(2));
    }

    /// `--help` states the defaults the code uses.
    #[test]
    fn usage_states_the_defaults() {
        let bounds = USAGE
            .split_once("Timeouts and bounds (defaults):")
            .unwrap()
            .1;
        let lines: Vec<&str> = bounds.lines().collect();
        let row = |name: &str| {
            lines
                .iter()
                .find(|l| l.trim_start().starts_with(name))
                .unwrap_or_else(|| panic!("no {name} row"))
                .to_string()
        };
        let secs = |d: Duration| format!("{} s", d.as_secs());
        assert!(row("connect timeout").contains(&secs(CONNECT_TIMEOUT)));
        assert!(row("sync timeout").contains(&secs(qmp_std::client::DEFAULT_SYNC_TIMEOUT)));
        assert!(USAGE.contains(&format!("--qga: {}", secs(QGA_CALL_TIMEOUT))));
        assert_eq!(qmp_std::client::DEFAULT_MAX_MESSAGE, 16 << 20);
        assert!(row("max message size").contains("16 MiB"));
        assert!(row("event queue")
            .contains(&format!("{} events", qmp_std::client::DEFAULT_EVENT_QUEUE)));
        assert!(row("pipeline").contains(&format!(
            "{} in-band",
            qmp_core::client::ClientConfig::new().max_in_band()
        )));
        assert_eq!(qmp_std::agent::DEFAULT_FRAMER_SIZE, 1 << 20);
        assert_eq!(qmp_std::agent::DEFAULT_OUT_SIZE, 1 << 20);
        assert!(row("agent ").contains("1 MiB each"));
        assert_eq!(qmp_std::agent::DEFAULT_MAX_SESSIONS, 64);
        assert!(row("agent sessions").contains("64 at once"));
        assert_eq!(qmp_std::agent::DEFAULT_EVENT_BACKLOG, 1 << 20);
        assert_eq!(qmp_std::agent::BUSY_BACKLOG_FACTOR, 8);
        assert!(row("agent backlog").contains("1 MiB of events per session"));
        assert!(USAGE.contains("(8 MiB while its thread"));
    }

    #[test]
    fn rejects_misuse() {
        for bad in [
            "",
            "frob",
            "exec query-status",
            "--unix /s exec",
            "--unix /s exec a [1] extra",
            "--unix /s exec a [1]",
            "--unix /s exec a {",
            "--unix /s exec a @",
            "--tcp h:1 exec --fd /dev/null getfd",
            "--unix /s exec --fd= getfd",
            "--unix /s --wait=x exec a",
            "--unix /s --wait 1 exec a",
            "--unix /s --no-history exec a",
            "--unix /s shell --no-history=1",
            "--unix /s --fd /dev/null shell",
            "agent --unix /s --wait",
            "--unix /s --tcp h:1 exec a",
            "--tcp nohost exec a",
            "--unix /s --qga events",
            "--unix /s --timeout 1 shell",
            "--unix /s events --count x",
            "--unix /s exec a --count 1",
            "--unix /s --unix /t exec a",
            "demo --unix /s",
            "demo extra",
            "agent",
            "agent --unix /s extra",
            "--bogus demo",
            "--unix",
        ] {
            assert!(p(bad).is_err(), "accepted: {bad:?}");
        }
    }
}
