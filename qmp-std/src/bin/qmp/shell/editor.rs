//! Line editing and persistent history for the shell on a terminal,
//! through `rustyline`.
//!
//! Why rustyline: it is the maintained, widely used readline for Rust
//! (Emacs and vi keys, history search, completion listing, bracketed
//! paste, an external printer for output that arrives while a line is
//! being edited), small with its default features off (`with-file-history`
//! only: no `home`, `radix_trie`, `regex` or sqlite), and it works on the
//! plain file descriptors a test's pseudo-terminal gives. Writing a line
//! editor by hand is exactly what the rules say not to do.
//!
//! The editor runs on a thread of its own, so the session thread keeps
//! reading the connection while a line is edited: events and warnings that
//! arrive meanwhile go through rustyline's external printer, which clears
//! the line being edited, prints, and redraws it. After each line the
//! editor waits for [`Editor::done`] (the command's output printed) before
//! it prompts again.
//!
//! History: [`history_file`] says where (documented in `qmp --help`);
//! each accepted line is appended to the file at once (rustyline's format:
//! a `#V2` line, then one entry a line with `\` and newlines escaped), so
//! a session that is killed keeps what it ran; repeated lines are kept
//! once, 1000 entries at most.

use super::complete;
use super::vocab::Vocabulary;
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::FileHistory;
use rustyline::validate::Validator;
use rustyline::{CompletionType, Config, Context, EditMode, ExternalPrinter, Helper};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The prompt.
pub const PROMPT: &str = "qmp> ";

/// History entries kept.
const HISTORY_SIZE: usize = 1000;

/// Where the history is kept: `$QMP_HISTORY` (set but empty: nowhere),
/// else `$XDG_STATE_HOME/qmp/history`, else `~/.local/state/qmp/history`.
pub fn history_file() -> Option<PathBuf> {
    history_file_from(|name| std::env::var_os(name))
}

fn history_file_from(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> Option<PathBuf> {
    if let Some(p) = var("QMP_HISTORY") {
        return (!p.is_empty()).then(|| PathBuf::from(p));
    }
    let absolute = |name| var(name).map(PathBuf::from).filter(|p| p.is_absolute());
    if let Some(state) = absolute("XDG_STATE_HOME") {
        return Some(state.join("qmp/history"));
    }
    absolute("HOME").map(|home| home.join(".local/state/qmp/history"))
}

/// The editor's helper: completion from the vocabulary; no hints,
/// highlighting or validation.
struct Shell {
    vocab: Arc<Vocabulary>,
}

impl Completer for Shell {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let (start, found) = complete::complete(&self.vocab, line, pos);
        Ok((
            start,
            found
                .into_iter()
                .map(|c| Pair {
                    display: c.display,
                    replacement: c.replacement,
                })
                .collect(),
        ))
    }
}

impl Hinter for Shell {
    type Hint = String;
}
impl Highlighter for Shell {}
impl Validator for Shell {}
impl Helper for Shell {}

/// What the editor thread hands over.
enum Input {
    Line(String),
    End,
}

/// Prints through the editor (or straight out while no line is edited).
pub type Printer = Arc<Mutex<Box<dyn ExternalPrinter + Send>>>;

/// A line editor on its own thread.
pub struct Editor {
    lines: Receiver<Input>,
    next: SyncSender<()>,
    printer: Printer,
    /// Whether a line was handed over and [`Editor::done`] is owed.
    busy: bool,
}

impl Editor {
    /// Starts the editor on the terminal (stdin and stdout), completing
    /// from `vocab` and keeping the history in `history`.
    ///
    /// # Errors
    /// The terminal cannot be set up.
    pub fn start(vocab: Arc<Vocabulary>, history: Option<PathBuf>) -> Result<Editor, String> {
        let config = Config::builder()
            .completion_type(CompletionType::List)
            .edit_mode(EditMode::Emacs)
            .auto_add_history(false)
            .max_history_size(HISTORY_SIZE)
            .and_then(|b| b.history_ignore_dups(true))
            .map_err(|e| e.to_string())?
            .build();
        let mut rl: rustyline::Editor<Shell, FileHistory> =
            rustyline::Editor::with_config(config).map_err(|e| e.to_string())?;
        rl.set_helper(Some(Shell { vocab }));
        if let Some(path) = &history {
            match rl.load_history(path) {
                Ok(()) => {}
                Err(ReadlineError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => eprintln!(
                    "warning: cannot read the history {}: {e}",
                    crate::escape::controls(&path.display().to_string())
                ),
            }
        }
        let printer = rl.create_external_printer().map_err(|e| e.to_string())?;
        let printer: Printer = Arc::new(Mutex::new(Box::new(printer)));
        let (tx, lines) = mpsc::channel();
        let (next, wait) = mpsc::sync_channel(1);
        std::thread::spawn(move || run(rl, history, &tx, &wait));
        Ok(Editor {
            lines,
            next,
            printer,
            busy: false,
        })
    }

    /// The next line, waiting up to `t` (`Ok(None)`: end of input).
    ///
    /// # Errors
    /// [`RecvTimeoutError::Timeout`] when no line came in time.
    pub fn line(&mut self, t: Duration) -> Result<Option<String>, RecvTimeoutError> {
        match self.lines.recv_timeout(t) {
            Ok(Input::Line(l)) => {
                self.busy = true;
                Ok(Some(l))
            }
            Ok(Input::End) | Err(RecvTimeoutError::Disconnected) => Ok(None),
            Err(RecvTimeoutError::Timeout) => Err(RecvTimeoutError::Timeout),
        }
    }

    /// The line's output is printed: prompt for the next.
    pub fn done(&mut self) {
        if std::mem::take(&mut self.busy) {
            let _ = self.next.send(());
        }
    }

    /// The printer for output that arrives while a line is edited.
    pub fn printer(&self) -> Printer {
        self.printer.clone()
    }
}

/// Prints `text` (a line) through `printer`.
pub fn print(printer: &Printer, text: &str) {
    if let Ok(mut p) = printer.lock() {
        let _ = p.print(format!("{text}\n"));
    }
}

/// The editor thread: reads lines until end of input.
fn run(
    mut rl: rustyline::Editor<Shell, FileHistory>,
    history: Option<PathBuf>,
    lines: &mpsc::Sender<Input>,
    next: &Receiver<()>,
) {
    let mut warned = false;
    loop {
        match rl.readline(PROMPT) {
            Ok(line) => {
                let entry = line.trim();
                if !entry.is_empty() && rl.add_history_entry(entry).unwrap_or(false) {
                    if let Some(path) = &history {
                        if let Err(e) = append(&mut rl, path) {
                            if !std::mem::replace(&mut warned, true) {
                                eprintln!(
                                    "warning: cannot write the history {}: {e}",
                                    crate::escape::controls(&path.display().to_string())
                                );
                            }
                        }
                    }
                }
                if lines.send(Input::Line(line)).is_err() || next.recv().is_err() {
                    return;
                }
            }
            // Ctrl-C: a fresh line.
            Err(ReadlineError::Interrupted) => {}
            Err(_) => {
                let _ = lines.send(Input::End);
                return;
            }
        }
    }
}

/// Appends the new entries to the history file (creating its folder).
fn append(rl: &mut rustyline::Editor<Shell, FileHistory>, path: &Path) -> Result<(), String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    rl.append_history(path).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::history_file_from;
    use std::path::PathBuf;

    #[test]
    fn where_the_history_is() {
        let at = |vars: &[(&str, &str)]| {
            let vars: Vec<(String, String)> = vars
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            history_file_from(|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.into()))
        };
        let p = |s: &str| Some(PathBuf::from(s));
        assert_eq!(at(&[("QMP_HISTORY", "/h"), ("HOME", "/home/u")]), p("/h"));
        assert_eq!(at(&[("QMP_HISTORY", ""), ("HOME", "/home/u")]), None);
        assert_eq!(
            at(&[("XDG_STATE_HOME", "/st"), ("HOME", "/home/u")]),
            p("/st/qmp/history")
        );
        assert_eq!(
            at(&[("XDG_STATE_HOME", "rel"), ("HOME", "/home/u")]),
            p("/home/u/.local/state/qmp/history")
        );
        assert_eq!(at(&[]), None);
    }
}
