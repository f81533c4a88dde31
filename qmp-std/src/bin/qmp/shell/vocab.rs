//! What the server says it understands: its live schema
//! (`query-qmp-schema`), read through qmp-core's zero-copy schema views;
//! or, from a server without one (a guest agent, our own agent without
//! declared types), only its command names (`query-commands`; the guest
//! agent's `guest-info`).
//!
//! The reply is kept as received (about 117 KB from qemu-storage-daemon
//! 10); [`Vocabulary::with_schema`] views it and builds qmp-core's
//! [`Index`] for each use (about 0.3 ms here on the 117 KB schema: once
//! per Tab or command, nothing next to a round trip), so no
//! self-referential type is needed.

use crate::client_cmds::Peer;
use qmp_core::json::JsonKind;
use qmp_core::schema::{Index, Kind, Schema};
use qmp_std::client::Call;
use qmp_std::{Error, Json};

/// Where the vocabulary came from.
#[derive(Debug)]
enum Source {
    /// The live schema (validated JSON: the reply's `return` value).
    Schema(Json),
    /// Command names only.
    Names,
}

/// The server's commands, and its schema when it has one.
#[derive(Debug)]
pub struct Vocabulary {
    source: Source,
    /// Command names, sorted.
    commands: Vec<String>,
}

impl Vocabulary {
    /// Asks the server. `Ok` with a note to show once when only names (or
    /// nothing) could be had; `Err` when the connection failed.
    ///
    /// # Errors
    /// A connection failure (not a QMP error: those mean "not supported").
    pub fn fetch(peer: &mut Peer) -> Result<(Vocabulary, Option<String>), Error> {
        let why = match peer.call(Call::new("query-qmp-schema")) {
            Ok(text) => match Vocabulary::from_schema(text) {
                Ok(v) => return Ok((v, None)),
                Err(e) => format!("its query-qmp-schema is unusable ({e})"),
            },
            Err(Error::Qmp(e)) => format!("it has no query-qmp-schema ({}: {})", e.class, e.desc),
            Err(e) => return Err(e),
        };
        let (list, member) = if peer.is_qga() {
            ("guest-info", "supported_commands")
        } else {
            ("query-commands", "")
        };
        let names = match peer.call(Call::new(list)) {
            Ok(text) => names(&text, member),
            Err(Error::Qmp(_)) => None,
            Err(e) => return Err(e),
        };
        let note = match &names {
            Some(_) => format!(
                "note: the server has no usable schema: {why}; Tab completes command names \
                 from {list}, and key=value arguments are not typed (a value is JSON if it \
                 reads as JSON, else a string)"
            ),
            None => format!(
                "note: the server has no usable schema: {why}, nor {list}: no completion, \
                 and key=value arguments are not typed"
            ),
        };
        let vocab = Vocabulary {
            source: Source::Names,
            commands: names.unwrap_or_default(),
        };
        Ok((vocab, Some(note)))
    }

    /// A vocabulary from a `query-qmp-schema` return value.
    ///
    /// # Errors
    /// Why it is no schema.
    pub fn from_schema(text: String) -> Result<Vocabulary, String> {
        let json = Json::parse(text).map_err(|e| e.to_string())?;
        let schema = Schema::new(json.raw()).map_err(|e| e.to_string())?;
        let mut commands: Vec<String> = schema
            .entries()
            .filter_map(|e| match e.kind() {
                Kind::Command(c) => Some(c.name().to_string()),
                _ => None,
            })
            .collect();
        commands.sort();
        Ok(Vocabulary {
            source: Source::Schema(json),
            commands,
        })
    }

    /// No vocabulary (for tests).
    #[cfg(test)]
    pub fn empty() -> Vocabulary {
        Vocabulary {
            source: Source::Names,
            commands: Vec::new(),
        }
    }

    /// The command names, sorted.
    pub fn commands(&self) -> &[String] {
        &self.commands
    }

    /// Runs `f` on an index of the schema; `None` without a schema.
    pub fn with_schema<R>(&self, f: impl FnOnce(&Index<'_, '_>) -> R) -> Option<R> {
        let Source::Schema(json) = &self.source else {
            return None;
        };
        // Viewed and checked once in from_schema: these cannot fail.
        let schema = Schema::new(json.raw()).ok()?;
        let mut storage = vec![0u32; schema.len()];
        let index = schema.index(&mut storage).ok()?;
        Some(f(&index))
    }
}

/// The `name` members of the objects in a list (of `member` of an object,
/// when `member` is not empty): `query-commands`, `guest-info`.
fn names(text: &str, member: &str) -> Option<Vec<String>> {
    let json = Json::parse(text).ok()?;
    let list = if member.is_empty() {
        json.raw()
    } else {
        json.raw().get(member)?
    };
    if list.kind() != JsonKind::Array {
        return None;
    }
    let mut names: Vec<String> = list
        .elements()
        .filter_map(|e| e.get("name")?.as_json_str().map(|s| s.to_string()))
        .collect();
    names.sort();
    names.dedup();
    Some(names)
}

#[cfg(test)]
mod tests {
    use super::super::types::tests::QSD;
    use super::*;
    use qmp_core::schema::Lookup;
    use std::time::Instant;

    fn qsd() -> Vocabulary {
        let reply: serde_json::Value = serde_json::from_slice(QSD).unwrap();
        Vocabulary::from_schema(reply["return"].to_string()).unwrap()
    }

    #[test]
    fn commands_from_the_schema() {
        let v = qsd();
        assert_eq!(v.commands().len(), 76);
        assert_eq!(
            v.commands()[..2],
            ["block-commit", "block-dirty-bitmap-add"]
        );
        assert_eq!(v.with_schema(|i| i.schema().len()), Some(513));
        assert!(Vocabulary::from_schema("{}".into()).is_err());
        assert!(Vocabulary::empty().with_schema(|_| ()).is_none());
    }

    /// What the module docs say a use costs (a release build; debug
    /// builds are slower).
    #[test]
    fn a_use_is_cheap() {
        let v = qsd();
        let t = Instant::now();
        for _ in 0..20 {
            v.with_schema(|i| assert!(i.command("blockdev-add").is_some()));
        }
        let each = t.elapsed() / 20;
        println!("one with_schema: {each:?}");
        assert!(each.as_millis() < 20, "{each:?}");
    }

    #[test]
    fn names_from_lists() {
        assert_eq!(
            names(r#"[{"name": "b"}, {"name": "a"}, {"x": 1}]"#, ""),
            Some(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            names(
                r#"{"version": "10", "supported_commands": [{"name": "guest-ping", "enabled": true}]}"#,
                "supported_commands"
            ),
            Some(vec!["guest-ping".into()])
        );
        assert_eq!(names("{}", ""), None);
    }
}
