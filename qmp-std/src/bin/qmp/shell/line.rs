//! What one shell line says: a built-in (`help`, `history`, `!N`, `!!`,
//! `exit`), a raw JSON request, or a command with its words; and the word
//! spans completion works on.
//!
//! Words are split at whitespace outside JSON strings and brackets, so
//! `command-line="info status"` and `x=[1, 2]` are one word each. The
//! words after the command are typed by `args.rs`.

use std::ops::Range;

/// One parsed shell line.
#[derive(Debug, PartialEq)]
pub enum Line {
    Empty,
    /// `help` (`None`) or `help COMMAND [key=value ...]`.
    Help(Option<(String, Vec<String>)>),
    History,
    Exit,
    /// `!!` (`None`) or `!N`.
    Rerun(Option<usize>),
    /// `{"execute": ...}` or `NAME {JSON}`: sent as written.
    Raw {
        name: String,
        args: Option<String>,
        oob: bool,
    },
    /// `NAME key=value ...`: typed by the schema before it is sent.
    Command {
        name: String,
        words: Vec<String>,
    },
}

/// Why a line could not be split into words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unterminated;

/// The byte ranges of the words of `line`: split at whitespace outside
/// strings (`"..."`, with `\` escapes) and brackets (`{}`, `[]`).
///
/// # Errors
/// [`Unterminated`] when the line ends inside a string.
pub fn spans(line: &str) -> Result<Vec<Range<usize>>, Unterminated> {
    let mut out = Vec::new();
    let mut start = None;
    let (mut depth, mut in_str, mut esc) = (0i32, false, false);
    for (i, c) in line.char_indices() {
        if in_str {
            match (esc, c) {
                (true, _) => esc = false,
                (false, '\\') => esc = true,
                (false, '"') => in_str = false,
                _ => {}
            }
            continue;
        }
        if c.is_whitespace() && depth <= 0 {
            if let Some(s) = start.take() {
                out.push(s..i);
            }
            continue;
        }
        start.get_or_insert(i);
        match c {
            '"' => in_str = true,
            '{' | '[' => depth += 1,
            '}' | ']' => depth -= 1,
            _ => {}
        }
    }
    if in_str {
        return Err(Unterminated);
    }
    if let Some(s) = start {
        out.push(s..line.len());
    }
    Ok(out)
}

/// The words of `line`.
fn words(line: &str) -> Result<Vec<String>, String> {
    let spans = spans(line).map_err(|_| "unterminated string".to_owned())?;
    Ok(spans.into_iter().map(|r| line[r].to_owned()).collect())
}

/// Parses one line.
///
/// # Errors
/// A message for a line that says nothing runnable.
pub fn parse(line: &str) -> Result<Line, String> {
    let line = line.trim();
    match line {
        "" => return Ok(Line::Empty),
        "help" | "?" => return Ok(Line::Help(None)),
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
        return request(line);
    }
    let words = words(line)?;
    let Some((name, rest)) = words.split_first() else {
        return Ok(Line::Empty);
    };
    if name == "help" || name == "?" {
        let (command, rest) = rest.split_first().map_or_else(
            || (String::new(), Vec::new()),
            |(c, r)| (c.clone(), r.to_vec()),
        );
        return Ok(Line::Help(Some((command, rest))));
    }
    if let [json] = rest {
        if json.starts_with('{') {
            if !crate::cli::is_object(json) {
                return Err(format!("'{json}': not one JSON object"));
            }
            return Ok(Line::Raw {
                name: name.clone(),
                args: Some(json.clone()),
                oob: false,
            });
        }
    }
    Ok(Line::Command {
        name: name.clone(),
        words: rest.to_vec(),
    })
}

/// A whole request as a JSON object: `execute` or `exec-oob`, optional
/// `arguments` (an object) and `id` (ignored: the client assigns ids).
fn request(line: &str) -> Result<Line, String> {
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
            ("id", _) => {}
            (k @ ("execute" | "exec-oob"), _) => return Err(format!("'{k}' must be a string")),
            (k, _) => return Err(format!("unexpected member '{k}'")),
        }
    }
    let name = name.ok_or("the object needs 'execute' or 'exec-oob'")?;
    Ok(Line::Raw { name, args, oob })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(line: &str) -> (String, Vec<String>) {
        match parse(line) {
            Ok(Line::Command { name, words }) => (name, words),
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn lines() {
        assert_eq!(command("query-status"), ("query-status".into(), vec![]));
        assert_eq!(
            command(r#"human-monitor-command command-line="info status" cpu-index=0"#).1,
            [r#"command-line="info status""#, "cpu-index=0"]
        );
        assert_eq!(
            command("blockdev-add driver=null-co x.y=[1, 2]").1,
            ["driver=null-co", "x.y=[1, 2]"]
        );
        assert_eq!(
            parse(r#"{"exec-oob": "x-sleep", "arguments": {"ms": 1}, "id": 7}"#),
            Ok(Line::Raw {
                name: "x-sleep".into(),
                args: Some(r#"{"ms":1}"#.into()),
                oob: true
            })
        );
        assert_eq!(
            parse(r#"blockdev-del {"node-name": "n0"}"#),
            Ok(Line::Raw {
                name: "blockdev-del".into(),
                args: Some(r#"{"node-name": "n0"}"#.into()),
                oob: false
            })
        );
        assert_eq!(
            parse("help blockdev-add driver=qcow2"),
            Ok(Line::Help(Some((
                "blockdev-add".into(),
                vec!["driver=qcow2".into()]
            ))))
        );
        assert_eq!(parse("help"), Ok(Line::Help(None)));
        assert_eq!(parse("  "), Ok(Line::Empty));
        assert_eq!(parse("!2"), Ok(Line::Rerun(Some(2))));
        assert!(parse("!x").is_err());
        assert!(parse(r#"{"execute": 1}"#).is_err());
        assert!(parse(r#"{"foo": "x"}"#).is_err());
        assert!(parse(r#"a b="x"#).is_err());
        assert!(parse(r#"a {"x""#).is_err());
    }

    #[test]
    fn word_spans() {
        assert_eq!(spans("  a b=\"x y\"  c"), Ok(vec![2..3, 4..11, 13..14]));
        assert_eq!(spans("a x=[1, 2] "), Ok(vec![0..1, 2..10]));
        assert_eq!(spans("a b=\"x "), Err(Unterminated));
    }
}
