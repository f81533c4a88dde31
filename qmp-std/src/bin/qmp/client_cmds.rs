//! The client subcommands: `exec`, `events`, `shell`. The command line is
//! already parsed and checked (see `cli.rs`); these functions connect and
//! do the work, and return the process exit code.
//!
//! Placeholders for now: the blocking client lands here next.

use crate::cli::Target;
use std::process::ExitCode;
use std::time::Duration;

fn not_yet(cmd: &str) -> ExitCode {
    eprintln!("qmp: {cmd}: not implemented yet");
    ExitCode::from(2)
}

/// `qmp ... exec COMMAND [ARGS_JSON]`: runs one command and prints its
/// result. `args` is already checked to be one JSON object (its text).
pub fn exec(target: &Target, command: &str, args: Option<&str>) -> ExitCode {
    let _ = (target, command, args);
    not_yet("exec")
}

/// `qmp ... events [--count N] [--duration SECS]`: prints events as they
/// arrive, until `count` events or `duration` elapsed (or forever).
pub fn events(target: &Target, count: Option<u64>, duration: Option<Duration>) -> ExitCode {
    let _ = (target, count, duration);
    not_yet("events")
}

/// `qmp ... shell`: an interactive prompt.
pub fn shell(target: &Target) -> ExitCode {
    let _ = target;
    not_yet("shell")
}
