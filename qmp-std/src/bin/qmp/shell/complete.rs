//! Tab completion from the live schema: command names (and the shell's
//! built-ins), argument names at any depth (`file.driver=`), and enum,
//! boolean and `null` values after `=`.
//!
//! [`complete`] is a pure function of the vocabulary and the line (tested
//! here without a terminal); `editor.rs` hands it to the line editor.
//! Where the server has no schema only command names complete.

use super::args::{self, Node};
use super::line::spans;
use super::types::{Form, Level, Ty, Types};
use super::vocab::Vocabulary;
use qmp_core::schema::{JsonType, Lookup};

/// The shell's own words, completed with the command names.
const BUILTINS: [&str; 3] = ["exit", "help", "history"];

/// One candidate: what a listing shows, what replaces the word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub display: String,
    pub replacement: String,
}

fn candidate(display: &str, replacement: String) -> Candidate {
    Candidate {
        display: display.to_owned(),
        replacement,
    }
}

/// The completions of `line` with the cursor at byte `pos`: where the
/// replaced text starts, and the candidates (in schema order; command
/// names sorted).
pub fn complete(vocab: &Vocabulary, line: &str, pos: usize) -> (usize, Vec<Candidate>) {
    let Some(before) = line.get(..pos) else {
        return (pos, Vec::new());
    };
    // Inside a string: nothing to complete.
    let Ok(spans) = spans(before) else {
        return (pos, Vec::new());
    };
    let (start, index) = match spans.last() {
        Some(last) if last.end == pos => (last.start, spans.len() - 1),
        _ => (pos, spans.len()),
    };
    let word = &before[start..];
    let words: Vec<&str> = spans[..index].iter().map(|r| &before[r.clone()]).collect();
    match words.first() {
        None => (start, commands(vocab, word, true)),
        Some(&("help" | "?")) if index == 1 => (start, commands(vocab, word, false)),
        Some(command) if !command.starts_with('{') => {
            let tree = args::tree_lenient(words[1..].iter().copied());
            vocab
                .with_schema(|index| arguments(index, command, &tree, word, start))
                .unwrap_or((pos, Vec::new()))
        }
        Some(_) => (pos, Vec::new()),
    }
}

/// Command names (and with `builtins`, the shell's words) that start with
/// `prefix`, each followed by a space.
fn commands(vocab: &Vocabulary, prefix: &str, builtins: bool) -> Vec<Candidate> {
    let mut names: Vec<&str> = vocab.commands().iter().map(String::as_str).collect();
    if builtins {
        names.extend(BUILTINS);
        names.sort_unstable();
    }
    names
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .map(|n| candidate(n, format!("{n} ")))
        .collect()
}

/// Completions of `word` (at `start`) among the arguments of `command`,
/// where `tree` is what the line gave so far.
fn arguments<'s, L: Lookup<'s>>(
    lookup: &L,
    command: &str,
    tree: &Node,
    word: &str,
    start: usize,
) -> (usize, Vec<Candidate>) {
    let types = Types::new(lookup);
    let Some(args) = types.arguments(command) else {
        return (start, Vec::new());
    };
    if let Some((key, prefix)) = word.split_once('=') {
        let path: Vec<&str> = key.split('.').collect();
        let values = types
            .at(args, &path, Some(tree))
            .map(|t| values(&types, t))
            .unwrap_or_default();
        let found = values
            .iter()
            .filter(|v| v.starts_with(prefix))
            .map(|v| candidate(v, format!("{v} ")))
            .collect();
        return (start + key.len() + 1, found);
    }
    let (parent, partial) = match word.rsplit_once('.') {
        Some((p, rest)) => (p.split('.').collect::<Vec<_>>(), rest),
        None => (Vec::new(), word),
    };
    let at = start + word.len() - partial.len();
    let level = parent.iter().try_fold(tree, |l, k| l.child(k));
    let Some(mut ty) = types.at(args, &parent, Some(tree)) else {
        return (at, Vec::new());
    };
    if types.form(ty) == Some(Form::Alternate) {
        match types.branch_of(ty, false) {
            Some(object) => ty = object,
            None => return (at, Vec::new()),
        }
    }
    if types.form(ty) != Some(Form::Object) {
        return (at, Vec::new());
    }
    let members = match level {
        Some(l) => types.members(ty, l),
        None => types.members(ty, &super::types::Nothing),
    };
    let given = |name: &str| matches!(level.and_then(|l| l.child(name)), Some(Node::Leaf(_)));
    let mut found = Vec::new();
    for m in members {
        let name = m.name.to_string();
        if !name.starts_with(partial) || given(&name) {
            continue;
        }
        let (value, nested) = ways(&types, m.ty);
        if nested {
            found.push(candidate(&format!("{name}."), format!("{name}.")));
        }
        if value {
            found.push(candidate(&format!("{name}="), format!("{name}=")));
        }
    }
    (at, found)
}

/// How a member of type `ty` is written: with a value (`name=`), with
/// nested keys (`name.`), or both.
fn ways<'s, L: Lookup<'s>>(types: &Types<'_, L>, ty: Ty<'s>) -> (bool, bool) {
    match types.form(ty) {
        Some(Form::Object) => (false, true),
        Some(Form::Array(_)) => (true, true),
        Some(Form::Alternate) => {
            let branches = types.branches(ty);
            let nested = branches
                .iter()
                .any(|b| matches!(types.form(*b), Some(Form::Object | Form::Array(_))));
            let value = branches
                .iter()
                .any(|b| !matches!(types.form(*b), Some(Form::Object)));
            (value, nested)
        }
        _ => (true, false),
    }
}

/// The values to offer after `key=` for type `ty`: an enum's, `on`/`off`
/// for a boolean, `null`; an alternate's branches' together.
fn values<'s, L: Lookup<'s>>(types: &Types<'_, L>, ty: Ty<'s>) -> Vec<String> {
    let of = |t: Ty<'s>| match types.form(t) {
        Some(Form::Enum) => types.values(t),
        Some(Form::Builtin(JsonType::Boolean)) => vec!["on".into(), "off".into()],
        Some(Form::Builtin(JsonType::Null)) => vec!["null".into()],
        _ => Vec::new(),
    };
    match types.form(ty) {
        Some(Form::Alternate) => types.branches(ty).into_iter().flat_map(of).collect(),
        _ => of(ty),
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

    /// The replacements for the line with the cursor at its end, and
    /// where they start.
    fn at_end(v: &Vocabulary, line: &str) -> (usize, Vec<String>) {
        let (start, c) = complete(v, line, line.len());
        (start, c.into_iter().map(|c| c.replacement).collect())
    }

    #[test]
    fn command_names() {
        let v = qsd();
        assert_eq!(
            at_end(&v, "query-named-bl"),
            (0, vec!["query-named-block-nodes ".into()])
        );
        assert_eq!(at_end(&v, "  he"), (2, vec!["help ".into()]));
        assert_eq!(
            at_end(&v, "help blockdev-ad"),
            (5, vec!["blockdev-add ".into()])
        );
        assert_eq!(at_end(&v, "query-v").1, ["query-version "]);
        assert_eq!(at_end(&v, "nope").1, Vec::<String>::new());
        // Without a schema, nothing but the built-ins.
        assert_eq!(at_end(&Vocabulary::empty(), "h").1, ["help ", "history "]);
        assert_eq!(at_end(&Vocabulary::empty(), "x a").1, Vec::<String>::new());
    }

    #[test]
    fn argument_names() {
        let v = qsd();
        assert_eq!(
            at_end(&v, "blockdev-add driver=null-co node-na"),
            (28, vec!["node-name=".into()])
        );
        assert_eq!(at_end(&v, "blockdev-del ").1, ["node-name="]);
        // Given ones are not offered again.
        assert_eq!(
            at_end(&v, "blockdev-del node-name=a ").1,
            Vec::<String>::new()
        );
        // A variant's members, once the tag is given: `file` is an
        // alternate (an object, or a node name).
        assert_eq!(
            at_end(&v, "blockdev-add driver=raw fi").1,
            ["file.", "file="]
        );
        assert_eq!(at_end(&v, "blockdev-add fi").1, Vec::<String>::new());
        // Nested keys.
        let line = "blockdev-add driver=raw file.dri";
        assert_eq!(at_end(&v, line), (line.len() - 3, vec!["driver=".into()]));
        assert_eq!(
            at_end(&v, "blockdev-add driver=raw file.driver=file file.filen").1,
            ["filename="]
        );
        // Inside a string, or after raw JSON: nothing.
        assert_eq!(
            at_end(&v, "blockdev-del node-name=\"a b").1,
            Vec::<String>::new()
        );
        assert_eq!(at_end(&v, "{\"execute\": \"x\" ").1, Vec::<String>::new());
    }

    #[test]
    fn values_after_the_equals_sign() {
        let v = qsd();
        let line = "blockdev-add driver=raw file.driver=null-c";
        assert_eq!(at_end(&v, line), (line.len() - 6, vec!["null-co ".into()]));
        assert_eq!(
            at_end(&v, "blockdev-add driver=null-co read-only=").1,
            ["on ", "off "]
        );
        assert_eq!(
            at_end(&v, "blockdev-add driver=file aio=").1,
            ["threads ", "native ", "io_uring "]
        );
        assert_eq!(
            at_end(&v, "blockdev-add node-name=").1,
            Vec::<String>::new()
        );
        // In the middle of the line: up to the cursor.
        let line = "blockdev-add driver=nu node-name=x";
        let (start, c) = complete(&v, line, 22);
        assert_eq!(start, 20);
        let got: Vec<_> = c.into_iter().map(|c| c.display).collect();
        assert_eq!(got, ["null-aio", "null-co"]);
    }
}
