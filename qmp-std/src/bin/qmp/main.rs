//! The `qmp` command-line tool: see `qmp --help`.
//!
//! * `cli.rs` parses the command line into a [`cli::Command`];
//! * `client_cmds.rs` runs `exec` and `events`, and connects for `shell`;
//! * `shell/` is `shell` (see its module docs);
//! * `escape.rs` escapes control characters in what is echoed back;
//! * `agent` serves [`qmp_std::demo`];
//! * `demo_live.rs` is `demo`: the demo agent and the client, live.

mod cli;
mod client_cmds;
mod demo_live;
mod escape;
mod shell;

use cli::Command;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match cli::parse(&args) {
        Ok(c) => c,
        Err(msg) => {
            eprintln!("qmp: {msg} (see 'qmp --help')");
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Help => {
            println!("{}", cli::USAGE);
            ExitCode::SUCCESS
        }
        Command::Demo => demo_live::run(),
        Command::Agent { address, qga } => agent(&address, qga),
        Command::Exec {
            target,
            command,
            args,
            fd,
        } => client_cmds::exec(&target, &command, args.as_ref(), fd.as_deref()),
        Command::Events {
            target,
            count,
            duration,
        } => client_cmds::events(&target, count, duration),
        Command::Shell { target, history } => shell::run(&target, history),
    }
}

fn agent(address: &qmp_std::Address, qga: bool) -> ExitCode {
    let server = match qmp_std::demo::bind(address, qga) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("qmp agent: cannot listen on {address}: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "qmp agent: serving the demo {} on {}",
        if qga { "guest agent" } else { "monitor" },
        server.local_addr()
    );
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("qmp agent: {e}");
            ExitCode::FAILURE
        }
    }
}
