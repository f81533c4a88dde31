//! The shell's `help`: the built-ins and the syntax, the server's
//! commands, and `help COMMAND [key=value ...]`, a command's argument tree
//! from the live schema.
//!
//! The tree has one line a member: `name: TYPE`, `(optional)` and the
//! member's features after it. TYPE is a builtin's name (`str`, `int`,
//! `bool`, `number`, `null`, `any`), `one of: a, b` for an enum, `list of
//! TYPE`, `object`, or an alternate's branches joined by `or`. An object's
//! members follow indented beneath it; a union's variants follow its own
//! members, each as `tag=case:` with the members it adds. The tag values
//! given after the command pick variants (`help blockdev-add driver=qcow2`
//! shows only that one), at any depth (`file.driver=file`). A type met
//! again inside itself is not expanded again (`same as ... above`), and
//! the tree stops at [`MAX_DEPTH`] levels.

use super::args::{self, Node};
use super::types::{Form, Level, Ty, Types};
use super::vocab::Vocabulary;
use qmp_core::schema::Lookup;
use std::fmt::Write;

/// How many levels of members the tree shows.
pub const MAX_DEPTH: usize = 8;

/// The built-ins and the syntax.
pub const SHELL_HELP: &str = "\
Type a command as `NAME key=value ...`, or a JSON object such as
{\"execute\": \"query-status\"} or {\"exec-oob\": \"NAME\", \"arguments\": {...}},
or `NAME {JSON arguments}`. Values are typed by the server's schema:
strings as written (\"a b\" in JSON quotes for spaces), integers, numbers,
booleans (on/off, true/false, yes/no), null, enum values; dotted keys nest
objects (file.driver=file file.filename=/x) and number lists
(bitmaps.0=b0); a value may be JSON (bitmaps=[\"b0\"]). Arguments that do not
fit the schema are not sent. Without a schema, a value is JSON if it reads
as JSON, else a string.
Built-ins: help [COMMAND [key=value ...]], history, !N (rerun entry N),
!! (rerun the last), exit. Tab completes commands, argument names and
values; Up and Down walk the history.
Events are shown as they arrive. End of input (Ctrl-D) leaves.";

/// `help`: the built-ins, then the command names (wrapped at 78 columns).
pub fn overview(vocab: &Vocabulary) -> String {
    let mut out = String::from(SHELL_HELP);
    let commands = vocab.commands();
    if commands.is_empty() {
        return out;
    }
    let _ = write!(out, "\nCommands ({}):", commands.len());
    let mut col = 78;
    for c in commands {
        if col + 1 + c.len() > 78 {
            out.push_str("\n ");
            col = 1;
        }
        out.push(' ');
        out.push_str(c);
        col += 1 + c.len();
    }
    out
}

/// `help COMMAND [key=value ...]`.
///
/// # Errors
/// No schema, no such command, or words that are no `key=value`.
pub fn command(vocab: &Vocabulary, name: &str, words: &[String]) -> Result<String, String> {
    if name.is_empty() {
        return Ok(overview(vocab));
    }
    let level = args::tree(words)?;
    vocab
        .with_schema(|index| tree(index, name, &level))
        .unwrap_or_else(|| Err("no argument tree: the server has no usable schema".to_owned()))
}

fn tree<'s, L: Lookup<'s>>(lookup: &L, name: &str, level: &Node) -> Result<String, String> {
    let Some(cmd) = lookup.command(name) else {
        return Err(format!("no command {name} in the server's schema"));
    };
    let mut flags: Vec<String> = Vec::new();
    if cmd.allows_oob() {
        flags.push("allow-oob".into());
    }
    flags.extend(cmd.features().map(|f| f.to_string()));
    let mut out = name.to_owned();
    if !flags.is_empty() {
        let _ = write!(out, " ({})", flags.join(", "));
    }
    let types = Types::new(lookup);
    let Some(args) = cmd.arg_type() else {
        return Ok(out + ": no arguments");
    };
    let mut printer = Printer {
        types: &types,
        out: String::new(),
        stack: vec![(args, "the arguments".to_owned())],
    };
    printer.members(args, Some(level), "", 1);
    if printer.out.is_empty() {
        return Ok(out + ": no arguments");
    }
    out.push_str(&printer.out);
    Ok(out)
}

struct Printer<'t, 'l, 's, L> {
    types: &'t Types<'l, L>,
    out: String,
    /// The object types being expanded, with where they were met.
    stack: Vec<(Ty<'s>, String)>,
}

impl<'s, L: Lookup<'s>> Printer<'_, '_, 's, L> {
    fn line(&mut self, depth: usize, text: &str) {
        self.out.push('\n');
        for _ in 0..depth {
            self.out.push_str("  ");
        }
        self.out.push_str(text);
    }

    /// The members of object `ty` (the user gave `level` there; `path` is
    /// the object's member path), its variants after.
    fn members(&mut self, ty: Ty<'s>, level: Option<&Node>, path: &str, depth: usize) {
        let own = self.types.own_members(ty);
        for m in own {
            let name = m.name.to_string();
            let mut text = format!("{name}: {}", self.describe(m.ty));
            if m.optional {
                text.push_str(" (optional)");
            }
            self.line(depth, &text);
            let member_path = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}.{name}")
            };
            let below = level.and_then(|l| l.child(&name));
            self.expand(m.ty, below, &member_path, depth + 1);
        }
        let Some(tag) = self.types.tag(ty) else {
            return;
        };
        let chosen = level.and_then(|l| l.string(&tag));
        for (case, variant) in self.types.variants(ty) {
            if chosen.as_ref().is_some_and(|c| *c != case) {
                continue;
            }
            self.line(depth, &format!("{tag}={case}:"));
            let before = self.out.len();
            if depth + 1 > MAX_DEPTH {
                self.line(depth + 1, "...");
                continue;
            }
            self.members(variant, level, path, depth + 1);
            if self.out.len() == before {
                self.line(depth + 1, "(no more members)");
            }
        }
    }

    /// Expands what `ty` holds beneath its line: an object's members (of
    /// an alternate's object branch; of a list's element objects).
    fn expand(&mut self, ty: Ty<'s>, level: Option<&Node>, path: &str, depth: usize) {
        let object = match self.types.form(ty) {
            Some(Form::Object) => Some(ty),
            Some(Form::Alternate) => self.types.branch_of(ty, false),
            Some(Form::Array(element)) => match self.types.form(element) {
                Some(Form::Object) => Some(element),
                Some(Form::Alternate) => self.types.branch_of(element, false),
                _ => None,
            },
            _ => None,
        };
        let Some(object) = object else { return };
        if self.stack.iter().any(|(t, _)| *t == object) {
            return;
        }
        if depth > MAX_DEPTH {
            self.line(depth, "...");
            return;
        }
        self.stack.push((object, format!("'{path}'")));
        self.members(object, level, path, depth);
        self.stack.pop();
    }

    /// One line's TYPE.
    fn describe(&self, ty: Ty<'s>) -> String {
        match self.types.form(ty) {
            Some(Form::Builtin(_)) => ty.to_string(),
            Some(Form::Enum) => format!("one of: {}", self.types.values(ty).join(", ")),
            Some(Form::Array(element)) => format!("list of {}", self.describe_short(element)),
            Some(Form::Object) => self.object(ty),
            Some(Form::Alternate) => self
                .types
                .branches(ty)
                .into_iter()
                .map(|b| self.describe_short(b))
                .collect::<Vec<_>>()
                .join(" or "),
            None => "(a type the schema lacks)".to_owned(),
        }
    }

    /// TYPE inside a list or an alternate.
    fn describe_short(&self, ty: Ty<'s>) -> String {
        match self.types.form(ty) {
            Some(Form::Enum) => format!("enum ({})", self.types.values(ty).join(", ")),
            Some(Form::Object) => self.object(ty),
            Some(Form::Array(e)) => format!("list of {}", self.describe_short(e)),
            _ => self.describe(ty),
        }
    }

    /// `object`, and where it was shown when it is shown already.
    fn object(&self, ty: Ty<'s>) -> String {
        match self.stack.iter().find(|(t, _)| *t == ty) {
            Some((_, at)) => format!("object (same as {at} above)"),
            None => "object".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::types::tests::QSD;
    use super::*;

    fn qsd() -> Vocabulary {
        let reply: serde_json::Value = serde_json::from_slice(QSD).unwrap();
        Vocabulary::from_schema(reply["return"].to_string()).unwrap()
    }

    fn help(line: &str) -> Result<String, String> {
        let words: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        command(&qsd(), &words[0], &words[1..])
    }

    #[test]
    fn small_trees() {
        assert_eq!(
            help("blockdev-del").unwrap(),
            "blockdev-del\n  node-name: str"
        );
        assert_eq!(
            help("query-version").unwrap(),
            "query-version: no arguments"
        );
        assert_eq!(
            help("query-named-block-nodes").unwrap(),
            "query-named-block-nodes\n  flat: bool (optional)"
        );
        assert_eq!(
            help("block-dirty-bitmap-merge").unwrap(),
            "block-dirty-bitmap-merge\n  node: str\n  target: str\n  \
             bitmaps: list of str or object\n    node: str\n    name: str"
        );
        assert_eq!(
            help("nope"),
            Err("no command nope in the server's schema".into())
        );
        assert_eq!(
            command(&Vocabulary::empty(), "blockdev-del", &[]),
            Err("no argument tree: the server has no usable schema".into())
        );
    }

    #[test]
    fn unions_and_recursion() {
        let all = help("blockdev-add").unwrap();
        let lines: Vec<&str> = all.lines().collect();
        assert_eq!(lines[0], "blockdev-add");
        assert!(lines[1].starts_with("  driver: one of: blkdebug, blklogwrites, blkreplay,"));
        assert_eq!(lines[2], "  node-name: str (optional)");
        assert!(lines.contains(&"  driver=null-co:"), "{all}");
        assert!(lines.contains(&"    size: int (optional)"), "{all}");
        // The raw driver's file: a node name, or the arguments again.
        let raw = help("blockdev-add driver=raw").unwrap();
        assert!(
            raw.ends_with("\n  driver=raw:\n    file: object (same as the arguments above) or str\n    offset: int (optional)\n    size: int (optional)"),
            "{raw}"
        );
        assert!(!raw.contains("driver=qcow2:"), "{raw}");
        // Nested variants picked by dotted keys.
        let nested = help("blockdev-add driver=qcow2 encrypt.format=luks").unwrap();
        assert!(nested.contains("\n    encrypt: object (optional)\n      format: one of: aes, luks\n      format=luks:\n        key-secret: str (optional)\n    data-file: "), "{nested}");
        assert!(!nested.contains("format=aes:"), "{nested}");
        assert!(
            nested.contains("\n    overlap-check: object or enum (none, constant, cached, all) (optional)\n      template: "),
            "{nested}"
        );
    }

    #[test]
    fn overview_lists_commands() {
        let o = overview(&qsd());
        assert!(o.starts_with(SHELL_HELP));
        assert!(
            o.contains("\nCommands (76):\n  block-commit block-dirty-bitmap-add"),
            "{o}"
        );
        assert!(o.lines().all(|l| l.len() <= 78), "{o}");
        assert_eq!(overview(&Vocabulary::empty()), SHELL_HELP);
    }
}
