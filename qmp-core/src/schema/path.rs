//! Path queries in libvirt's form (`virQEMUQAPISchemaPathGet`):
//! `blockdev-add/arg-type/+file/aio/^io_uring`.
//!
//! # Grammar
//!
//! ```text
//! query     = entry-name *( "/" component )
//! component = [ modifier ] name
//! modifier  = "*" / "+" / "^" / "!" / "$" / any other non-letter
//! ```
//!
//! The first component names an entry (a command or an event, or any
//! type). Each later component steps from the current entry by its
//! meta-type:
//!
//! * **command, event**: `arg-type` or `ret-type` (any string member of the
//!   entry, in fact) steps to the type it names; `$feature` is true if the
//!   command or event has that feature;
//! * **object**: `member` steps to the member's type; `*member` likewise,
//!   but only if the member is optional; `+case` steps to the type of the
//!   union variant for tag value `case`; `$feature` is true if the type has
//!   that feature;
//! * **enum**: `^value` is true if the enum has that value;
//!   `^value/$feature` if that value has that feature;
//! * **builtin**: `!json-type` is true if the builtin's JSON type is that
//!   (`string`, `number`, `int`, `boolean`, `null`, `value`);
//! * **array**: steps through to its element type without consuming a
//!   component (arrays are flattened);
//! * **alternate**: each branch is tried in order with the rest of the
//!   query; the first that finds something (or fails) answers.
//!
//! A component whose modifier does not fit the entry (`^x` on an object,
//! `+x` on a command, ...) answers no. A name that starts with a
//! non-letter is written with one extra leading character (libvirt uses a
//! space): the first character of a component is dropped whenever it is
//! not an ASCII letter. `^`, `!` and `$` components end a query (only
//! `^value/$feature` has two); anything after them is
//! [`QueryError::TrailingComponent`].
//!
//! The answer is the entry reached ([`Answer::Type`]) or, for `^`, `!`
//! and `$`, [`Answer::Yes`]; anything not found is [`Answer::No`]. libvirt
//! returns 1 for the first two and 0 for the last.

use super::{Entry, Kind, Lookup, Name};
use crate::json::JsonStr;
use core::fmt;
use core::str::Split;

/// How many steps a query may take (each entry visited, alternate
/// branches included): a bound on recursion for any schema.
const MAX_STEPS: usize = 64;

/// What a path query found ([`Lookup::query`]).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer<'s> {
    /// The query is a type query and found this entry.
    Type(Entry<'s>),
    /// A boolean query (`^`, `!`, `$`) that holds.
    Yes,
    /// Nothing found, or a boolean query that does not hold.
    No,
}

/// A query that cannot be answered.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum QueryError {
    /// The query is empty.
    Empty,
    /// A `^`, `!` or `$` component is followed by another component.
    TrailingComponent,
    /// The schema names a type it does not have, or an entry lacks what
    /// its meta-type requires (libvirt: malformed QAPI schema).
    BrokenSchema,
    /// The query took more than 64 steps (a looping schema).
    TooDeep,
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            QueryError::Empty => "malformed query string",
            QueryError::TrailingComponent => "terminal query component must not have followers",
            QueryError::BrokenSchema => "malformed QAPI schema",
            QueryError::TooDeep => "query too deep: possible loop in the schema",
        })
    }
}

impl core::error::Error for QueryError {}

/// The state of a query walk.
struct Walk<'q> {
    rest: Split<'q, char>,
    steps: usize,
}

/// See the module docs.
pub(crate) fn query<'s, L: Lookup<'s>>(lookup: &L, query: &str) -> Result<Answer<'s>, QueryError> {
    if query.is_empty() {
        return Err(QueryError::Empty);
    }
    let mut rest = query.split('/');
    let first = rest.next().ok_or(QueryError::Empty)?;
    let Some(entry) = lookup.get(first) else {
        return Ok(Answer::No);
    };
    let mut walk = Walk { rest, steps: 0 };
    step(lookup, entry, &mut walk)
}

/// A component: its modifier (its first character, when not a letter) and
/// the name after it.
fn split_modifier(component: &str) -> (Option<char>, &str) {
    let mut chars = component.chars();
    match chars.next() {
        Some(c) if !c.is_ascii_alphabetic() => (Some(c), chars.as_str()),
        _ => (None, component),
    }
}

/// Whether a string array member of `raw` (e.g. `features`) holds `name`.
fn has<'f>(features: impl Iterator<Item = JsonStr<'f>>, name: &str) -> Answer<'static> {
    if features.into_iter().any(|f| f.eq_str(name)) {
        Answer::Yes
    } else {
        Answer::No
    }
}

/// The answer of a terminal component: it must be the last.
fn terminal<'s>(walk: &mut Walk<'_>, answer: Answer<'s>) -> Result<Answer<'s>, QueryError> {
    if walk.rest.next().is_some() {
        return Err(QueryError::TrailingComponent);
    }
    Ok(answer)
}

/// Steps to the type named `type_name`.
fn enter<'s, L: Lookup<'s>>(
    lookup: &L,
    type_name: JsonStr<'_>,
    walk: &mut Walk<'_>,
) -> Result<Answer<'s>, QueryError> {
    let entry = lookup
        .entry(Name::Json(type_name))
        .ok_or(QueryError::BrokenSchema)?;
    step(lookup, entry, walk)
}

/// Answers the rest of the query from `entry`.
fn step<'s, L: Lookup<'s>>(
    lookup: &L,
    entry: Entry<'s>,
    walk: &mut Walk<'_>,
) -> Result<Answer<'s>, QueryError> {
    walk.steps += 1;
    if walk.steps > MAX_STEPS {
        return Err(QueryError::TooDeep);
    }
    // Arrays and alternates do not consume a component.
    match entry.kind() {
        Kind::Array(a) => {
            if walk.rest.clone().next().is_none() {
                return Ok(Answer::Type(entry));
            }
            let element = a.element_type().ok_or(QueryError::BrokenSchema)?;
            return enter(lookup, element, walk);
        }
        Kind::Alternate(alt) => {
            if walk.rest.clone().next().is_none() {
                return Ok(Answer::Type(entry));
            }
            let saved = walk.rest.clone();
            for branch in alt.members() {
                walk.rest = saved.clone();
                match enter(lookup, branch, walk)? {
                    Answer::No => {}
                    found => return Ok(found),
                }
            }
            return Ok(Answer::No);
        }
        _ => {}
    }
    let Some(component) = walk.rest.next() else {
        return Ok(Answer::Type(entry));
    };
    let (modifier, name) = split_modifier(component);
    match entry.kind() {
        Kind::Command(_) | Kind::Event(_) => match modifier {
            Some('$') => terminal(walk, has(entry.features(), name)),
            Some('^' | '!' | '+' | '*') => Ok(Answer::No),
            _ => match entry.raw().get(name).and_then(|v| v.as_json_str()) {
                Some(t) => enter(lookup, t, walk),
                None => Ok(Answer::No),
            },
        },
        Kind::Object(o) => match modifier {
            Some('^' | '!') => Ok(Answer::No),
            Some('$') => terminal(walk, has(entry.features(), name)),
            Some('+') => match o.variant(name) {
                Some(v) => enter(lookup, v.type_name(), walk),
                None => Ok(Answer::No),
            },
            m => match o.member(name) {
                Some(member) if m != Some('*') || member.is_optional() => {
                    enter(lookup, member.type_name(), walk)
                }
                _ => Ok(Answer::No),
            },
        },
        Kind::Enum(e) => {
            if modifier != Some('^') {
                return Ok(Answer::No);
            }
            let feature = match walk.rest.next() {
                None => None,
                Some(next) => match split_modifier(next) {
                    (Some('$'), f) => Some(f),
                    _ => return Err(QueryError::TrailingComponent),
                },
            };
            let feature = match feature {
                Some(f) => Some(terminal(walk, Answer::No).map(|_| f)?),
                None => None,
            };
            Ok(match (e.value(name), feature) {
                (None, _) => Answer::No,
                (Some(_), None) => Answer::Yes,
                (Some(v), Some(f)) => has(v.features(), f),
            })
        }
        Kind::Builtin(_) => {
            if modifier != Some('!') {
                return Ok(Answer::No);
            }
            let json_type = entry
                .raw()
                .get("json-type")
                .and_then(|v| v.as_json_str())
                .ok_or(QueryError::BrokenSchema)?;
            terminal(
                walk,
                if json_type.eq_str(name) {
                    Answer::Yes
                } else {
                    Answer::No
                },
            )
        }
        _ => Ok(Answer::No),
    }
}
