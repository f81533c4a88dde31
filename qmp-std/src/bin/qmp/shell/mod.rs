//! `qmp shell`: one command a line, against QMP or a guest agent.
//!
//! * `line.rs` — what a line says (built-ins, raw JSON, words);
//! * `vocab.rs` — the server's live schema (or its command names);
//! * `types.rs` — walking argument types in the schema;
//! * `args.rs` — `key=value` words typed by the schema and checked;
//! * `complete.rs` — Tab completion;
//! * `help.rs` — `help` and argument trees;
//! * `editor.rs` — line editing and history (rustyline) on a terminal.
//!
//! Input: with a terminal on stdin and stdout, the line editor; otherwise
//! lines are read as they come (a pipe, a script: no prompt, no history
//! file, nothing but the commands' output on stdout). Either way the
//! session keeps reading the connection while it waits for a line, so
//! events and warnings show as they arrive.
//!
//! The schema is fetched at the start on a terminal (Tab needs it at
//! once); from a pipe, when a line first needs it (`key=value` words,
//! `help`), so a script of plain commands sends nothing else.
//!
//! Exit status: 0 at end of input or `exit`; 1 when input is not a
//! terminal and some command got a QMP error or did not parse; 2 when the
//! connection fails (or the peer closes it other than after `quit`).

mod args;
mod complete;
mod editor;
mod help;
mod line;
mod types;
mod vocab;

use crate::cli::Target;
use crate::client_cmds::{closed, fail, fail_open, open, out_line, Peer};
use crate::escape;
use editor::{Editor, Printer};
use line::Line;
use qmp_std::client::Call;
use qmp_std::Error;
use std::io::{self, BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use vocab::Vocabulary;

/// Where lines come from.
enum Input {
    /// The line editor (a terminal).
    Editor(Editor),
    /// Lines as read, from a thread; `prompt`: print prompts (stdin is a
    /// terminal but stdout is not).
    Plain {
        lines: mpsc::Receiver<Option<String>>,
        prompt: bool,
    },
}

impl Input {
    fn plain(prompt: bool) -> Input {
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in io::stdin().lock().lines() {
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
        Input::Plain { lines, prompt }
    }

    /// The next line within `t` (`Ok(None)`: end of input).
    fn line(&mut self, t: Duration) -> Result<Option<String>, RecvTimeoutError> {
        match self {
            Input::Editor(e) => e.line(t),
            Input::Plain { lines, .. } => match lines.recv_timeout(t) {
                Ok(l) => Ok(l),
                Err(RecvTimeoutError::Disconnected) => Ok(None),
                Err(RecvTimeoutError::Timeout) => Err(RecvTimeoutError::Timeout),
            },
        }
    }

    /// The line's output is printed.
    fn done(&mut self) {
        if let Input::Editor(e) = self {
            e.done();
        }
    }

    fn prompts(&self) -> bool {
        matches!(self, Input::Plain { prompt: true, .. })
    }
}

/// Warnings: on stderr, or through the editor's printer once it runs.
#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<Option<Printer>>>);

impl Warnings {
    fn warn(&self, text: &str) {
        let line = format!("warning: {text}");
        match self.0.lock().ok().and_then(|p| p.clone()) {
            Some(p) => editor::print(&p, &line),
            None => eprintln!("{line}"),
        }
    }
}

/// One session.
struct Session {
    peer: Peer,
    vocab: Option<Arc<Vocabulary>>,
    /// The lines run, for `history` and `!N`.
    history: Vec<String>,
    failed: bool,
    last_quit: bool,
    interactive: bool,
}

/// Prints an error (escaped) on stderr.
fn error(msg: &str) {
    eprintln!("error: {}", escape::controls(msg));
}

fn pretty(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| escape::controls(text).into_owned())
}

/// What running a line asks of the loop.
enum Next {
    Go,
    Exit,
    End(ExitCode),
}

impl Session {
    /// The vocabulary, fetched on first use (its note shown once).
    fn vocab(&mut self) -> Result<Arc<Vocabulary>, Error> {
        if let Some(v) = &self.vocab {
            return Ok(v.clone());
        }
        let (v, note) = Vocabulary::fetch(&mut self.peer)?;
        if let Some(note) = note {
            eprintln!("{}", escape::controls(&note));
        }
        let v = Arc::new(v);
        self.vocab = Some(v.clone());
        Ok(v)
    }

    /// A failure of the connection ends the session; others are reported.
    fn lost(&mut self, e: &Error) -> Next {
        if e.is_closed() {
            Next::End(closed(e, self.last_quit, self.failed && !self.interactive))
        } else {
            self.failed = true;
            error(&e.to_string());
            Next::Go
        }
    }

    /// Runs one line.
    fn run(&mut self, text: &str) -> Next {
        let mut text = text.trim().to_owned();
        let mut parsed = line::parse(&text);
        if let Ok(Line::Rerun(n)) = parsed {
            let entry = match n {
                None => self.history.last(),
                Some(n) => n.checked_sub(1).and_then(|i| self.history.get(i)),
            };
            match entry {
                Some(e) => {
                    text = e.clone();
                    if self.interactive {
                        println!("{}", escape::controls(&text));
                    }
                    parsed = line::parse(&text);
                }
                None => parsed = Err("no such history entry".into()),
            }
        }
        let (name, args, oob) = match parsed {
            Err(e) => {
                self.failed = true;
                error(&e);
                return Next::Go;
            }
            Ok(Line::Empty | Line::Rerun(_)) => return Next::Go,
            Ok(Line::Exit) => return Next::Exit,
            Ok(Line::History) => {
                for (i, h) in self.history.iter().enumerate() {
                    println!("{:4}  {}", i + 1, escape::controls(h));
                }
                return Next::Go;
            }
            Ok(Line::Help(what)) => {
                let vocab = match self.vocab() {
                    Ok(v) => v,
                    Err(e) => return self.lost(&e),
                };
                let text = match what {
                    None => Ok(help::overview(&vocab)),
                    Some((name, words)) => help::command(&vocab, &name, &words),
                };
                match text {
                    // Line by line: the schema's names are the server's.
                    Ok(t) => {
                        for l in t.lines() {
                            println!("{}", escape::controls(l));
                        }
                    }
                    Err(e) => {
                        self.failed = true;
                        error(&e);
                    }
                }
                return Next::Go;
            }
            Ok(Line::Raw { name, args, oob }) => (name, args, oob),
            Ok(Line::Command { name, words }) => {
                self.history.push(text.clone());
                let args = if words.is_empty() && self.vocab.is_none() {
                    Ok(None)
                } else {
                    let vocab = match self.vocab() {
                        Ok(v) => v,
                        Err(e) => return self.lost(&e),
                    };
                    vocab
                        .with_schema(|index| args::typed(index, &name, &words))
                        .unwrap_or_else(|| args::untyped(&words))
                };
                match args {
                    Ok(args) => return self.call(&name, args.as_deref(), false),
                    Err(e) => {
                        self.failed = true;
                        error(&e);
                        return Next::Go;
                    }
                }
            }
        };
        self.history.push(text);
        self.call(&name, args.as_deref(), oob)
    }

    /// Sends one command and prints its result (and the events that came
    /// before it).
    fn call(&mut self, name: &str, args: Option<&str>, oob: bool) -> Next {
        self.last_quit = name == "quit";
        let mut call = Call::new(name);
        if let Some(a) = args {
            call = call.args_json(a);
        }
        if oob {
            call = call.oob();
        }
        let r = self.peer.call(call);
        for e in self.peer.take_events() {
            let _ = out_line(&format!("event: {e}"));
        }
        match r {
            Ok(v) => {
                if out_line(&pretty(&v)).is_err() {
                    return Next::End(ExitCode::SUCCESS);
                }
                Next::Go
            }
            Err(e) => self.lost(&e),
        }
    }
}

/// `qmp ... shell [--no-history]`: see the module docs.
pub fn run(target: &Target, keep_history: bool) -> ExitCode {
    let interactive = io::stdin().is_terminal();
    let editing = interactive && io::stdout().is_terminal();
    let warnings = Warnings::default();
    let w = warnings.clone();
    let peer = match open(target, Box::new(move |t| w.warn(t))) {
        Ok(p) => p,
        Err(e) => return fail_open(target, &e),
    };
    let mut s = Session {
        peer,
        vocab: None,
        history: Vec::new(),
        failed: false,
        last_quit: false,
        interactive,
    };
    if interactive {
        println!("Connected to {}. Type 'help' for help.", target.address);
    }
    let mut input = if editing {
        let vocab = match s.vocab() {
            Ok(v) => v,
            Err(e) => return fail(e),
        };
        let file = keep_history.then(editor::history_file).flatten();
        match Editor::start(vocab, file) {
            Ok(e) => {
                if let Ok(mut p) = warnings.0.lock() {
                    *p = Some(e.printer());
                }
                Input::Editor(e)
            }
            Err(e) => {
                eprintln!("warning: no line editing ({}): reading lines as typed", e);
                Input::plain(true)
            }
        }
    } else {
        Input::plain(interactive)
    };
    let printer = warnings.0.lock().ok().and_then(|p| p.clone());
    let show = |text: &str| match &printer {
        Some(p) => editor::print(p, text),
        None => {
            let _ = out_line(text);
        }
    };
    let mut prompt = true;
    loop {
        if input.prompts() && prompt {
            print!("{}", editor::PROMPT);
            let _ = io::stdout().flush();
            prompt = false;
        }
        // Wait for input, showing events meanwhile.
        let line = loop {
            if let Ok(l) = input.line(Duration::from_millis(40)) {
                break l;
            }
            let polled = s.peer.poll(Duration::from_millis(40));
            let events = s.peer.take_events();
            if !events.is_empty() {
                if input.prompts() {
                    println!();
                }
                for e in events {
                    show(&format!("event: {e}"));
                }
                prompt = true;
            }
            if let Err(e) = polled {
                return closed(&e, s.last_quit, s.failed && !interactive);
            }
            if prompt && input.prompts() {
                print!("{}", editor::PROMPT);
                let _ = io::stdout().flush();
                prompt = false;
            }
        };
        prompt = true;
        let Some(line) = line else {
            if input.prompts() {
                println!();
            }
            break;
        };
        let next = s.run(&line);
        input.done();
        match next {
            Next::Go => {}
            Next::Exit => break,
            Next::End(code) => return code,
        }
    }
    if s.failed && !interactive {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
