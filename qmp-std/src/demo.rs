//! The demo monitor agent behind `qmp agent`: a tiny "VM" that answers a
//! handful of commands the way QEMU does (texts, key order, events before
//! replies), plus the OOB-capable `x-sleep` for overtaking tests.
//!
//! QMP commands: `qmp_capabilities`, `query-version`, `query-commands`,
//! `query-name`, `query-status`, `stop`, `cont`, `system_powerdown`,
//! `system_reset`, `quit`, `human-monitor-command`, `x-sleep` (OOB).
//! Guest-agent commands (`--qga`): `guest-sync`, `guest-sync-delimited`,
//! `guest-ping`, `guest-info`, `guest-get-time`.

use crate::addr::Address;
use crate::agent::{CommandDef, Ctx, Handler, Outcome, Request, Response, Server, ServerConfig};
use crate::json::Json;
use qmp_core::json::{JsonKind, RawJson};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Our version, from `CARGO_PKG_VERSION`: `(major, minor, micro)`.
pub fn version() -> (u64, u64, u64) {
    let mut parts = env!("CARGO_PKG_VERSION")
        .split(['.', '-', '+'])
        .map(|p| p.parse::<u64>().unwrap_or(0));
    (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    )
}

/// The greeting's and `query-version`'s `package`: `qmp-rs <version>`.
pub fn package() -> String {
    format!("qmp-rs {}", env!("CARGO_PKG_VERSION"))
}

/// The QMP command table.
pub fn qmp_commands() -> Vec<CommandDef> {
    [
        "query-version",
        "query-commands",
        "query-name",
        "query-status",
        "stop",
        "cont",
        "system_powerdown",
        "system_reset",
        "quit",
        "human-monitor-command",
    ]
    .into_iter()
    .map(CommandDef::new)
    .chain([CommandDef::new("x-sleep").oob()])
    .collect()
}

/// The guest-agent command table.
pub fn qga_commands() -> Vec<CommandDef> {
    [
        "guest-sync-delimited",
        "guest-sync",
        "guest-ping",
        "guest-get-time",
        "guest-info",
    ]
    .into_iter()
    .map(CommandDef::new)
    .collect()
}

/// The server configuration of the demo agent.
pub fn config(qga: bool) -> ServerConfig {
    if qga {
        ServerConfig::qga(qga_commands())
    } else {
        ServerConfig::qmp(version(), package(), qmp_commands())
    }
}

/// The demo agent's command handler (its VM state is shared by every
/// connection).
#[derive(Debug)]
pub struct Demo {
    qga: bool,
    commands: Vec<CommandDef>,
    running: AtomicBool,
    /// `query-version`'s answer (constant; built once).
    version_info: Json,
}

impl Demo {
    /// A demo VM, running.
    pub fn new(qga: bool) -> Self {
        Demo {
            qga,
            commands: config(qga).commands,
            running: AtomicBool::new(true),
            version_info: version_info(),
        }
    }

    /// Whether the VM is running (`stop`/`cont`).
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }
}

/// Binds the demo agent on `addr` (not yet serving: call [`Server::run`]).
///
/// # Errors
/// Binding failed.
pub fn bind(addr: &Address, qga: bool) -> io::Result<Server> {
    Server::bind(addr, config(qga), Arc::new(Demo::new(qga)))
}

/// Binds the demo agent on `addr` for the tokio runner (serve with
/// [`AsyncServer::run`](crate::tokio::AsyncServer::run) on a runtime).
///
/// # Errors
/// Binding failed.
#[cfg(feature = "tokio")]
pub fn bind_tokio(addr: &Address, qga: bool) -> io::Result<crate::tokio::AsyncServer<Demo>> {
    crate::tokio::AsyncServer::bind(addr, config(qga), Demo::new(qga))
}

/// Serves the demo agent on `addr` until `quit` (or the process ends).
///
/// # Errors
/// Binding or accepting failed.
pub fn serve(addr: &Address, qga: bool) -> io::Result<()> {
    bind(addr, qga)?.run()
}

/// A parameter of a command, for QEMU-style argument checks.
#[derive(Clone, Copy)]
enum Ty {
    Int,
    Str,
}

struct Param {
    name: &'static str,
    ty: Ty,
    required: bool,
}

const fn req(name: &'static str, ty: Ty) -> Param {
    Param {
        name,
        ty,
        required: true,
    }
}

const fn opt(name: &'static str, ty: Ty) -> Param {
    Param {
        name,
        ty,
        required: false,
    }
}

/// Checks arguments like QEMU's generated marshallers: declared members in
/// order (missing, wrong type), then the first unexpected member.
fn check_args(args: Option<RawJson<'_>>, params: &[Param]) -> Result<(), String> {
    for p in params {
        match args.and_then(|a| a.get(p.name)) {
            None if p.required => return Err(format!("Parameter '{}' is missing", p.name)),
            None => {}
            Some(v) => {
                let (ok, expected) = match p.ty {
                    Ty::Int => (v.as_i64().is_some() || v.as_u64().is_some(), "integer"),
                    Ty::Str => (v.kind() == JsonKind::String, "string"),
                };
                if !ok {
                    return Err(format!(
                        "Invalid parameter type for '{}', expected: {expected}",
                        p.name
                    ));
                }
            }
        }
    }
    if let Some((k, _)) = args.and_then(|a| {
        a.members()
            .find(|(k, _)| !params.iter().any(|p| k.eq_str(p.name)))
    }) {
        return Err(format!("Parameter '{k}' is unexpected"));
    }
    Ok(())
}

/// `x-sleep`'s parameters.
const SLEEP: &[Param] = &[req("ms", Ty::Int)];

fn params_of(name: &str) -> &'static [Param] {
    const HMP: &[Param] = &[req("command-line", Ty::Str), opt("cpu-index", Ty::Int)];
    match name {
        "human-monitor-command" => HMP,
        "x-sleep" => SLEEP,
        _ => &[],
    }
}

fn json(text: String) -> Json {
    Json::parse(text).unwrap_or_else(|_| Json::null())
}

/// `query-version`'s `return` value.
fn version_info() -> Json {
    let (major, minor, micro) = version();
    json(format!(
        r#"{{"qemu": {{"major": {major}, "minor": {minor}, "micro": {micro}}}, "package": {}}}"#,
        Json::string(&package())
    ))
}

fn shutdown_data(reason: &str) -> Json {
    json(format!(r#"{{"guest": false, "reason": "{reason}"}}"#))
}

impl Demo {
    fn status(&self) -> Json {
        let running = self.is_running();
        let status = if running { "running" } else { "paused" };
        // Members in schema order, as QEMU inserts them; the writer puts
        // them in QDict order.
        json(format!(r#"{{"running": {running}, "status": "{status}"}}"#))
    }

    fn stop(&self, ctx: &Ctx<'_>) {
        if self.running.swap(false, Ordering::SeqCst) {
            ctx.events().emit("STOP", None);
        }
    }

    fn cont(&self, ctx: &Ctx<'_>) {
        if !self.running.swap(true, Ordering::SeqCst) {
            ctx.events().emit("RESUME", None);
        }
    }

    fn quit(&self, ctx: &mut Ctx<'_>) {
        ctx.events()
            .emit("SHUTDOWN", Some(shutdown_data("host-qmp-quit")));
        ctx.stop_server_after_reply();
    }

    fn hmp(&self, ctx: &mut Ctx<'_>, line: &str) -> String {
        let words: Vec<&str> = line.split_whitespace().collect();
        let (v0, v1, v2) = version();
        let out = match words.as_slice() {
            [] => String::new(),
            ["info", "version"] => format!("{v0}.{v1}.{v2} ({})\n", package()),
            ["info", "status"] => format!(
                "VM status: {}\n",
                if self.is_running() { "running" } else { "paused" }
            ),
            ["info"] => "info status  -- show the current VM status\n\
                         info version  -- show the version of QEMU\n"
                .to_owned(),
            ["info", sub, ..] => format!("unknown command: 'info {sub}'\n"),
            ["stop"] => {
                self.stop(ctx);
                String::new()
            }
            ["cont" | "c"] => {
                self.cont(ctx);
                String::new()
            }
            ["system_powerdown"] => {
                ctx.events().emit("POWERDOWN", None);
                String::new()
            }
            ["system_reset"] => {
                ctx.events()
                    .emit("RESET", Some(shutdown_data("host-qmp-system-reset")));
                String::new()
            }
            ["quit" | "q"] => {
                self.quit(ctx);
                String::new()
            }
            ["help" | "?", ..] => "cont|c  -- resume emulation\n\
                                   info [subcommand]  -- show various information about the system state\n\
                                   quit|q  -- quit the emulator\n\
                                   stop  -- stop emulation\n\
                                   system_powerdown  -- send system power down event\n\
                                   system_reset  -- reset the system\n"
                .to_owned(),
            [cmd, ..] => format!("unknown command: '{cmd}'\n"),
        };
        // The monitor turns "\n" into "\r\n".
        out.replace('\n', "\r\n")
    }

    fn guest_info(&self) -> Json {
        let cmds: Vec<String> = self
            .commands
            .iter()
            .map(|c| {
                format!(
                    r#"{{"name": {}, "enabled": true, "success-response": {}}}"#,
                    Json::string(&c.name),
                    c.success_response
                )
            })
            .collect();
        json(format!(
            r#"{{"version": {}, "supported_commands": [{}]}}"#,
            Json::string(env!("CARGO_PKG_VERSION")),
            cmds.join(", ")
        ))
    }
}

impl Handler for Demo {
    fn handle(&self, ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
        if let Err(desc) = check_args(req.arguments, params_of(req.name)) {
            return Outcome::generic_error(desc);
        }
        let empty = || Outcome::ret(Json::empty_object());
        if self.qga {
            return match req.name {
                "guest-ping" => empty(),
                "guest-info" => Outcome::ret(self.guest_info()),
                "guest-get-time" => {
                    let ns = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
                    Outcome::ret(Json::int(ns))
                }
                other => Outcome::error(
                    "CommandNotFound",
                    format!("The command {other} has not been found"),
                ),
            };
        }
        match req.name {
            "query-version" => Outcome::ret(self.version_info.clone()),
            "query-name" => empty(),
            "query-status" => Outcome::ret(self.status()),
            "stop" => {
                self.stop(ctx);
                empty()
            }
            "cont" => {
                self.cont(ctx);
                empty()
            }
            "system_powerdown" => {
                ctx.events().emit("POWERDOWN", None);
                empty()
            }
            "system_reset" => {
                ctx.events()
                    .emit("RESET", Some(shutdown_data("host-qmp-system-reset")));
                empty()
            }
            "quit" => {
                self.quit(ctx);
                empty()
            }
            "human-monitor-command" => {
                let line = req
                    .arg("command-line")
                    .and_then(|v| v.as_json_str())
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                Outcome::ret(Json::string(&self.hmp(ctx, &line)))
            }
            "x-sleep" => {
                let ms = req.arg("ms").and_then(|v| v.as_u64()).unwrap_or(0);
                let completer = ctx.defer();
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(ms));
                    completer.complete(Response::Return(Json::empty_object()));
                });
                Outcome::Deferred
            }
            other => Outcome::error(
                "CommandNotFound",
                format!("The command {other} has not been found"),
            ),
        }
    }
}

/// On the tokio runner the demo is the same, but `x-sleep` awaits a tokio
/// timer instead of taking a thread.
#[cfg(feature = "tokio")]
impl crate::tokio::AsyncHandler for Demo {
    fn handle(&self, ctx: &mut Ctx<'_>, req: &Request<'_>) -> crate::tokio::Answer {
        if req.name == "x-sleep" && !self.qga && check_args(req.arguments, SLEEP).is_ok() {
            let ms = req.arg("ms").and_then(|v| v.as_u64()).unwrap_or(0);
            return crate::tokio::Answer::later(async move {
                ::tokio::time::sleep(Duration::from_millis(ms)).await;
                Response::Return(Json::empty_object())
            });
        }
        crate::tokio::Answer::Now(Handler::handle(self, ctx, req))
    }
}
