//! `key=value` words typed by the live schema into a command's arguments,
//! then checked by qmp-core's argument check before they are sent.
//!
//! Syntax (also in the shell's `help`):
//!
//! * `key=value`; dotted keys nest objects: `file.driver=file
//!   file.filename=/x` gives `{"file": {"driver": "file", "filename":
//!   "/x"}}`; numeric parts index lists: `bitmaps.0=b0 bitmaps.1.node=n1`
//!   (from 0 up, no gaps); a value may also be written as JSON
//!   (`bitmaps=["b0"]`, `file={"driver": "null-co"}`).
//! * A value is read as its member's type says: a string as written (a
//!   JSON string `"a b"` for spaces), an integer, a number, a boolean
//!   (`on`/`off`, `true`/`false`, `yes`/`no`), `null`, an enum value; for
//!   an alternate, the first of its non-string branches the text reads as
//!   (`null`, a boolean, a number, JSON for a list or an object), else its
//!   string branch. Where the type says nothing (`any`, a member the schema
//!   lacks, no schema at all) a value that reads as JSON is that JSON, else
//!   a string.
//!
//! A value that does not read as its type is sent as a string, so that
//! the check names the member and the type expected, in QEMU's words
//! (`Invalid parameter type for 'size', expected: integer`); unknown
//! members, missing ones and enum values outside the set likewise, with
//! the members or values there are. Nothing that fails the check is sent.

use super::types::{Form, Level, Ty, Types};
use qmp_core::json::RawJson;
use qmp_core::schema::{CheckError, CheckErrorKind, JsonType, Lookup, Segment};
use serde_json::Value;

/// The words as a tree of dotted keys, in the order given.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// A value as written (`key=TEXT`).
    Leaf(String),
    /// Members (or list elements) by name.
    Tree(Vec<(String, Node)>),
}

impl Level for Node {
    fn string(&self, name: &str) -> Option<String> {
        match self.child(name)? {
            Node::Leaf(text) => Some(unquote(text)),
            Node::Tree(_) => None,
        }
    }
    fn child(&self, name: &str) -> Option<&Node> {
        match self {
            Node::Tree(members) => members.iter().find(|(k, _)| k == name).map(|(_, n)| n),
            Node::Leaf(_) => None,
        }
    }
}

/// A JSON string's contents, or the text as it is.
fn unquote(text: &str) -> String {
    if text.starts_with('"') {
        if let Ok(s) = serde_json::from_str::<String>(text) {
            return s;
        }
    }
    text.to_owned()
}

/// Builds the tree of `words` (each `key=value`).
///
/// # Errors
/// A word without `=`, an empty key or key part, a key given twice, or
/// given both a value and members.
pub fn tree(words: &[String]) -> Result<Node, String> {
    let mut root = Node::Tree(Vec::new());
    for w in words {
        let (key, value) = w
            .split_once('=')
            .ok_or_else(|| format!("'{w}': expected key=value"))?;
        if key.split('.').any(str::is_empty) {
            return Err(format!("'{w}': empty key"));
        }
        insert(&mut root, key, key, value)?;
    }
    Ok(root)
}

/// The tree of those `words` that fit one (for completion: the line is
/// still being written).
pub fn tree_lenient<'w>(words: impl IntoIterator<Item = &'w str>) -> Node {
    let mut root = Node::Tree(Vec::new());
    for w in words {
        if let Some((key, value)) = w.split_once('=') {
            if !key.split('.').any(str::is_empty) {
                let _ = insert(&mut root, key, key, value);
            }
        }
    }
    root
}

fn insert(node: &mut Node, key: &str, rest: &str, value: &str) -> Result<(), String> {
    let Node::Tree(members) = node else {
        let given = &key[..key.len() - rest.len() - 1];
        return Err(format!("'{key}': '{given}' is given a value already"));
    };
    let (head, tail) = match rest.split_once('.') {
        Some((h, t)) => (h, Some(t)),
        None => (rest, None),
    };
    let at = members.iter().position(|(k, _)| k == head);
    match (tail, at) {
        (None, Some(_)) => Err(format!("'{key}' given twice")),
        (None, None) => {
            members.push((head.to_owned(), Node::Leaf(value.to_owned())));
            Ok(())
        }
        (Some(tail), Some(i)) => match &mut members[i].1 {
            Node::Leaf(_) => Err(format!(
                "'{key}': '{}' is given a value already",
                &key[..key.len() - tail.len() - 1]
            )),
            child => insert(child, key, tail, value),
        },
        (Some(tail), None) => {
            members.push((head.to_owned(), Node::Tree(Vec::new())));
            let last = members.len() - 1;
            insert(&mut members[last].1, key, tail, value)
        }
    }
}

/// A value as written, where the type says nothing: JSON if it reads as
/// JSON, else a string.
fn guess(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

/// A tree where the types say nothing: objects of guessed values.
fn guessed(node: &Node) -> Value {
    match node {
        Node::Leaf(text) => guess(text),
        Node::Tree(members) => Value::Object(
            members
                .iter()
                .map(|(k, child)| (k.clone(), guessed(child)))
                .collect(),
        ),
    }
}

/// `on`/`off`, `true`/`false`, `yes`/`no`.
fn boolean(text: &str) -> Option<bool> {
    match text {
        "on" | "true" | "yes" => Some(true),
        "off" | "false" | "no" => Some(false),
        _ => None,
    }
}

/// A JSON number (`12`, `-3`, `1.5e3`).
fn number(text: &str) -> Option<Value> {
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Number(_)) => Some(v),
        _ => None,
    }
}

/// An integer QEMU takes (within `i64` or `u64`).
fn integer(text: &str) -> Option<Value> {
    if let Ok(i) = text.parse::<i64>() {
        return Some(i.into());
    }
    text.parse::<u64>().ok().map(Value::from)
}

/// JSON of `kind` (an object or a list), if the text is that.
fn json_of(text: &str, list: bool) -> Option<Value> {
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Array(_)) if list => Some(v),
        Ok(v @ Value::Object(_)) if !list => Some(v),
        _ => None,
    }
}

/// Types a tree by the schema's types.
struct Typer<'t, 'l, L> {
    types: &'t Types<'l, L>,
}

impl<'s, L: Lookup<'s>> Typer<'_, '_, L> {
    /// `node`, of type `ty` (`None`: unknown), at member path `path`.
    fn node(
        &self,
        node: &Node,
        ty: Option<Ty<'s>>,
        path: &str,
        depth: usize,
    ) -> Result<Value, String> {
        let Some(ty) = ty.filter(|_| depth < qmp_core::schema::MAX_CHECK_DEPTH) else {
            return Ok(guessed(node));
        };
        let ty = Some(ty);
        match node {
            Node::Leaf(text) => Ok(self.leaf(text, ty)),
            Node::Tree(members) => {
                let form = ty.and_then(|t| self.types.form(t));
                let ty = match (ty, form) {
                    (Some(t), Some(Form::Alternate)) => {
                        let list = is_list(members);
                        self.types.branch_of(t, list)
                    }
                    _ => ty,
                };
                match ty.and_then(|t| self.types.form(t).map(|f| (t, f))) {
                    Some((_, Form::Array(element))) if is_list(members) => {
                        self.list(members, element, path, depth)
                    }
                    Some((t, Form::Object)) => {
                        let known = self.types.members(t, node);
                        let mut out = serde_json::Map::new();
                        for (k, child) in members {
                            let ty = known
                                .iter()
                                .find(|m| m.name.to_string() == *k)
                                .map(|m| m.ty);
                            let path = join(path, k);
                            out.insert(k.clone(), self.node(child, ty, &path, depth + 1)?);
                        }
                        Ok(Value::Object(out))
                    }
                    _ => Ok(guessed(node)),
                }
            }
        }
    }

    /// A list given as `key.0=...`, `key.1=...`.
    fn list(
        &self,
        members: &[(String, Node)],
        element: Ty<'s>,
        path: &str,
        depth: usize,
    ) -> Result<Value, String> {
        let mut items: Vec<(usize, &Node)> = Vec::new();
        for (k, child) in members {
            let i = k
                .parse::<usize>()
                .map_err(|_| format!("'{}': not a list index", join(path, k)))?;
            items.push((i, child));
        }
        items.sort_by_key(|(i, _)| *i);
        let mut out = Vec::new();
        for (want, (i, child)) in items.into_iter().enumerate() {
            if i != want {
                return Err(format!(
                    "'{}': list elements go from 0 up without gaps ('{}' is missing)",
                    join(path, &i.to_string()),
                    join(path, &want.to_string())
                ));
            }
            out.push(self.node(child, Some(element), &join(path, &i.to_string()), depth + 1)?);
        }
        Ok(Value::Array(out))
    }

    /// A value as written, of type `ty`.
    fn leaf(&self, text: &str, ty: Option<Ty<'s>>) -> Value {
        let Some(ty) = ty else { return guess(text) };
        let quoted = text.starts_with('"');
        let as_string = || Value::String(unquote(text));
        match self.types.form(ty) {
            Some(Form::Builtin(t)) => match t {
                JsonType::String => as_string(),
                JsonType::Int if !quoted => integer(text).unwrap_or_else(as_string),
                JsonType::Number if !quoted => number(text).unwrap_or_else(as_string),
                JsonType::Boolean if !quoted => boolean(text).map_or_else(as_string, Value::Bool),
                JsonType::Null if text == "null" => Value::Null,
                JsonType::Int | JsonType::Number | JsonType::Boolean | JsonType::Null => {
                    as_string()
                }
                _ => guess(text),
            },
            Some(Form::Enum) => as_string(),
            Some(Form::Array(_)) => json_of(text, true).unwrap_or_else(as_string),
            Some(Form::Object) => json_of(text, false).unwrap_or_else(as_string),
            Some(Form::Alternate) => {
                let branches = self.types.branches(ty);
                if !quoted {
                    for b in &branches {
                        if let Some(v) = self.reads_as(text, *b) {
                            return v;
                        }
                    }
                }
                let string = branches.iter().find(|b| {
                    matches!(
                        self.types.form(**b),
                        Some(Form::Builtin(JsonType::String) | Form::Enum)
                    )
                });
                match string {
                    Some(_) => as_string(),
                    None => guess(text),
                }
            }
            _ => guess(text),
        }
    }

    /// `text` as branch `ty` of an alternate, if it reads as that and the
    /// branch is not a string.
    fn reads_as(&self, text: &str, ty: Ty<'s>) -> Option<Value> {
        match self.types.form(ty)? {
            Form::Builtin(JsonType::Null) => (text == "null").then_some(Value::Null),
            Form::Builtin(JsonType::Boolean) => boolean(text).map(Value::Bool),
            Form::Builtin(JsonType::Int) => integer(text),
            Form::Builtin(JsonType::Number) => number(text),
            Form::Array(_) => json_of(text, true),
            Form::Object => json_of(text, false),
            _ => None,
        }
    }
}

/// Whether the members are list indexes.
fn is_list(members: &[(String, Node)]) -> bool {
    !members.is_empty()
        && members
            .iter()
            .all(|(k, _)| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()))
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// The arguments of `words` without a schema: JSON where a value reads as
/// JSON, else strings (`None` without words).
///
/// # Errors
/// As [`tree`].
pub fn untyped(words: &[String]) -> Result<Option<String>, String> {
    if words.is_empty() {
        return Ok(None);
    }
    Ok(Some(guessed(&tree(words)?).to_string()))
}

/// The arguments of `words` for `command`, typed by the schema `lookup`
/// and checked against it (`None` without words).
///
/// # Errors
/// As [`tree`]; the check's error, with what would fit there.
pub fn typed<'s, L: Lookup<'s>>(
    lookup: &L,
    command: &str,
    words: &[String],
) -> Result<Option<String>, String> {
    let types = Types::new(lookup);
    let Some(args) = types.arguments(command) else {
        // Not in the schema: the server says what it thinks of it.
        return untyped(words);
    };
    let tree = tree(words)?;
    let value = Typer { types: &types }.node(&tree, Some(args), "", 0)?;
    let text = value.to_string();
    let raw = qmp_core::scan::validate(text.as_bytes(), qmp_core::scan::FramerConfig::new())
        .map_err(|e| format!("internal error: the arguments are no JSON ({e:?})"))?;
    match lookup.check(command, Some(raw)) {
        Ok(()) => Ok((!words.is_empty()).then_some(text)),
        Err(e) => Err(explain(&types, args, &value, &e)),
    }
}

/// The check's text, and what fits where it failed.
fn explain<'s, L: Lookup<'s>>(
    types: &Types<'_, L>,
    args: Ty<'s>,
    value: &Value,
    e: &CheckError<'_, 's>,
) -> String {
    let path: Vec<String> = e
        .path()
        .map(|s| match s {
            Segment::Member(k) => k.to_string(),
            Segment::Index(i) => i.to_string(),
            _ => String::new(),
        })
        .collect();
    let path: Vec<&str> = path.iter().map(String::as_str).collect();
    let got = |v: Option<RawJson<'_>>| {
        v.and_then(|v| std::str::from_utf8(v.as_bytes()).ok().map(str::to_owned))
            .unwrap_or_default()
    };
    let hint = match e.kind() {
        CheckErrorKind::NotInEnum => types
            .at(args, &path, Some(value))
            .map(|t| format!(" (expected one of: {})", types.values(t).join(", "))),
        CheckErrorKind::Unexpected => {
            let parent = &path[..path.len().saturating_sub(1)];
            let level = parent.iter().try_fold(value, |v, k| v.child(k));
            types.at(args, parent, Some(value)).map(|t| {
                let t = match types.form(t) {
                    Some(Form::Alternate) => types.branch_of(t, false).unwrap_or(t),
                    _ => t,
                };
                let names: Vec<String> = match level {
                    Some(l) => types.members(t, l),
                    None => types.members(t, &super::types::Nothing),
                }
                .iter()
                .map(|m| m.name.to_string())
                .collect();
                if names.is_empty() {
                    " (no members here)".to_owned()
                } else {
                    format!(" (expected one of: {})", names.join(", "))
                }
            })
        }
        CheckErrorKind::WrongType { .. } => Some(format!(" (got {})", got(e.value()))),
        _ => None,
    };
    format!("not sent: {e}{}", hint.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::super::types::tests::with_qsd;
    use super::*;

    fn w(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    fn qsd(command: &str, words: &str) -> Result<Option<String>, String> {
        with_qsd(|index| typed(index, command, &w(words)))
    }

    #[test]
    fn types_by_the_schema() {
        assert_eq!(
            qsd(
                "blockdev-add",
                "driver=null-co node-name=n0 size=1024 read-only=on"
            ),
            Ok(Some(
                r#"{"driver":"null-co","node-name":"n0","size":1024,"read-only":true}"#.into()
            ))
        );
        // A string member stays a string, whatever it looks like.
        assert_eq!(
            qsd("blockdev-add", "driver=null-co node-name=123"),
            Ok(Some(r#"{"driver":"null-co","node-name":"123"}"#.into()))
        );
        // Nested keys; an alternate (BlockdevRef) takes its object branch.
        assert_eq!(
            qsd(
                "blockdev-add",
                "driver=raw node-name=r0 file.driver=null-co file.size=4096"
            ),
            Ok(Some(
                r#"{"driver":"raw","node-name":"r0","file":{"driver":"null-co","size":4096}}"#
                    .into()
            ))
        );
        // ... and its string branch for a node name.
        assert_eq!(
            qsd("blockdev-add", "driver=raw file=n0"),
            Ok(Some(r#"{"driver":"raw","file":"n0"}"#.into()))
        );
        // Lists by index, of an alternate (str | object).
        assert_eq!(
            qsd(
                "block-dirty-bitmap-merge",
                "node=n0 target=b bitmaps.0=b0 bitmaps.1.node=n1 bitmaps.1.name=b1"
            ),
            Ok(Some(
                r#"{"node":"n0","target":"b","bitmaps":["b0",{"node":"n1","name":"b1"}]}"#.into()
            ))
        );
        // JSON for a list; `no` for a boolean.
        assert_eq!(
            qsd("query-named-block-nodes", "flat=no"),
            Ok(Some(r#"{"flat":false}"#.into()))
        );
        assert_eq!(qsd("query-named-block-nodes", ""), Ok(None));
    }

    #[test]
    fn names_what_is_wrong() {
        assert_eq!(
            qsd("blockdev-add", "driver=null-co node-name=n0 size=big"),
            Err(
                r#"not sent: Invalid parameter type for 'size', expected: integer (got "big")"#
                    .into()
            )
        );
        assert_eq!(
            qsd("blockdev-del", "node-name=n0 force=on"),
            Err("not sent: Parameter 'force' is unexpected (expected one of: node-name)".into())
        );
        assert_eq!(
            qsd("blockdev-del", ""),
            Err("not sent: Parameter 'node-name' is missing".into())
        );
        let e = qsd("blockdev-add", "driver=raw file.driver=nul").unwrap_err();
        assert!(
            e.starts_with(
                "not sent: Parameter 'driver' does not accept value 'nul' (expected one of: blkdebug, blklogwrites, blkreplay, blkverify, bochs,"
            ),
            "{e}"
        );
        assert_eq!(
            qsd("blockdev-add", "driver=null-co read-only=maybe"),
            Err(r#"not sent: Invalid parameter type for 'read-only', expected: boolean (got "maybe")"#.into())
        );
        assert_eq!(
            qsd("block-dirty-bitmap-merge", "node=n target=b bitmaps.1=b1"),
            Err(
                "'bitmaps.1': list elements go from 0 up without gaps ('bitmaps.0' is missing)"
                    .into()
            )
        );
        assert_eq!(
            qsd("blockdev-del", "node-name"),
            Err("'node-name': expected key=value".into())
        );
        assert_eq!(
            qsd("blockdev-del", "a..b=1"),
            Err("'a..b=1': empty key".into())
        );
        assert_eq!(
            qsd("blockdev-del", "a=1 a=2"),
            Err("'a' given twice".into())
        );
        assert_eq!(
            qsd("blockdev-del", "a=1 a.b=2"),
            Err("'a.b': 'a' is given a value already".into())
        );
        assert_eq!(
            qsd("blockdev-del", "a.b=1 a=2"),
            Err("'a' given twice".into())
        );
    }

    #[test]
    fn untyped_guesses() {
        assert_eq!(
            untyped(&w(
                r#"command-line="info-status" cpu-index=0 x.y=[1,2] s=abc"#
            )),
            Ok(Some(
                r#"{"command-line":"info-status","cpu-index":0,"x":{"y":[1,2]},"s":"abc"}"#.into()
            ))
        );
        // Not in the schema: guessed, for the server to judge.
        assert_eq!(qsd("nope", "a=1"), Ok(Some(r#"{"a":1}"#.into())));
    }
}
