//! The live schema: zero-copy views of a server's `query-qmp-schema`.
//!
//! QEMU describes, at run time, every command, argument, return type,
//! event, enum value and feature it has (`qapi/introspect.json`). This
//! module reads that description where it lies — the reply in the
//! framer's (or the caller's) buffer — without copying or allocating:
//!
//! * [`Schema`] — the validated return value (an array of `SchemaInfo`),
//!   looked up by name with a scan ([`Schema::get`]);
//! * [`Index`] — the same lookups by binary search over entry offsets the
//!   caller lends (`&mut [u32]`, one per entry, sorted by name once:
//!   [`Schema::index`]);
//! * [`Entry`] and its typed views ([`Command`], [`Event`], [`Object`],
//!   [`Enum`], [`Array`], [`Alternate`], [`Builtin`]) — members, optional
//!   members, union tags and variants, enum values, features;
//! * [`Lookup::query`] — libvirt's path queries
//!   (`blockdev-add/arg-type/+file/aio/^io_uring`, see [`path`]);
//! * [`Lookup::check`] — argument checks with QEMU's error texts
//!   ([`CheckError`]);
//! * [`decl`] — `const` declarations of argument and return types, for
//!   the agent: its own `query-qmp-schema` and argument checks.
//!
//! Both the views over a peer's schema and the declarations implement one
//! type model ([`model::TypeModel`]), and the checker is written once over
//! it. A code generator of typed Rust views can target the same model: a
//! generated struct per object type holding a [`RawJson`] and one accessor
//! per member, checked once with [`Lookup::check`] (or against generated
//! [`decl`] constants) before its accessors are trusted.
//!
//! Every accessor is total: a schema is peer input, so a malformed entry
//! reads as absent members, never as a panic.
//!
//! ```
//! use qmp_core::schema::{Lookup, Schema, Answer};
//! use qmp_core::scan::validate;
//!
//! let reply = validate(br#"[
//!   {"name": "blockdev-del", "meta-type": "command", "arg-type": "0", "ret-type": "1"},
//!   {"name": "0", "meta-type": "object", "members": [{"name": "node-name", "type": "str"}]},
//!   {"name": "1", "meta-type": "object", "members": []},
//!   {"name": "str", "meta-type": "builtin", "json-type": "string"}
//! ]"#, Default::default()).unwrap();
//! let schema = Schema::new(reply).unwrap();
//! let mut storage = [0u32; 4];
//! let index = schema.index(&mut storage).unwrap();
//! assert!(index.command("blockdev-del").is_some());
//! assert!(matches!(index.query("blockdev-del/arg-type/node-name"), Ok(Answer::Type(_))));
//!
//! let args = validate(br#"{"node-name": 1}"#, Default::default()).unwrap();
//! let err = index.check("blockdev-del", Some(args)).unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "Invalid parameter type for 'node-name', expected: string"
//! );
//! ```

mod check;
pub mod decl;
mod entry;
mod error;
mod index;
#[cfg(feature = "introspection")]
pub(crate) mod introspect;
pub mod model;
pub mod path;

#[cfg(test)]
mod tests;

pub use check::{check_arguments, CheckError, CheckErrorKind, Expected, Segment, Segments};
pub use entry::{
    Alternate, Array, Builtin, Command, Entry, Enum, EnumMember, EnumMembers, Event, Features,
    JsonType, Kind, Member, Members, MetaType, Object, TypeNames, Variant, Variants,
};
pub use error::SchemaError;
pub use index::Index;
pub use path::{Answer, QueryError};

use crate::json::{Elements, JsonKind, JsonStr, RawJson};
use crate::InsufficientSize;
use core::cmp::Ordering;

/// How deep [`Lookup::check`] follows nested types (objects, arrays,
/// alternates) before it gives up with [`CheckErrorKind::TooDeep`]: the
/// checker recurses, and this bounds its stack whatever the schema and the
/// arguments say.
pub const MAX_CHECK_DEPTH: usize = 32;

/// A name to look up: a Rust string, or a string from a schema or a
/// message (compared after unescaping).
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Name<'a> {
    /// A plain string.
    Str(&'a str),
    /// A JSON string body.
    Json(JsonStr<'a>),
}

impl<'a> From<&'a str> for Name<'a> {
    fn from(s: &'a str) -> Self {
        Name::Str(s)
    }
}

impl<'a> From<JsonStr<'a>> for Name<'a> {
    fn from(s: JsonStr<'a>) -> Self {
        Name::Json(s)
    }
}

impl Name<'_> {
    /// Compares the decoded bytes of two names.
    pub fn cmp_name(&self, other: &Name<'_>) -> Ordering {
        match (self, other) {
            (Name::Str(a), Name::Str(b)) => a.as_bytes().cmp(b.as_bytes()),
            (Name::Json(a), Name::Json(b)) if !a.has_escapes() && !b.has_escapes() => {
                a.raw().cmp(b.raw())
            }
            (Name::Json(a), Name::Str(b)) if !a.has_escapes() => a.raw().cmp(b.as_bytes()),
            (Name::Str(a), Name::Json(b)) if !b.has_escapes() => a.as_bytes().cmp(b.raw()),
            (Name::Json(a), Name::Json(b)) => a.qemu_bytes().cmp(b.qemu_bytes()),
            (Name::Json(a), Name::Str(b)) => a.qemu_bytes().cmp(b.bytes()),
            (Name::Str(a), Name::Json(b)) => a.bytes().cmp(b.qemu_bytes()),
        }
    }

    /// Whether the two names are equal after decoding.
    pub fn eq_name(&self, other: &Name<'_>) -> bool {
        self.cmp_name(other) == Ordering::Equal
    }
}

impl PartialEq for Name<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.eq_name(other)
    }
}

impl Eq for Name<'_> {}

impl Name<'_> {
    /// The decoded name as pieces of UTF-8 text, what `Display` writes,
    /// without `core::fmt`.
    pub(crate) fn write_lossy(&self, put: &mut dyn FnMut(&str)) {
        match self {
            Name::Str(s) => put(s),
            Name::Json(s) => s.write_lossy(put),
        }
    }
}

impl core::fmt::Display for Name<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Name::Str(s) => f.write_str(s),
            Name::Json(s) => core::fmt::Display::fmt(s, f),
        }
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Name<'_> {
    fn format(&self, f: defmt::Formatter<'_>) {
        match self {
            Name::Str(s) => defmt::write!(f, "{=str}", s),
            Name::Json(s) => defmt::write!(f, "{}", s),
        }
    }
}

/// A validated `query-qmp-schema` return value: an array of `SchemaInfo`
/// objects, borrowed.
///
/// Lookups by name scan the array ([`Schema::get`]: every entry before the
/// one found is skipped token by token, about 0.2 ms for a 200 KB schema);
/// build an [`Index`] for repeated lookups.
#[derive(Clone, Copy, Debug)]
pub struct Schema<'s> {
    array: RawJson<'s>,
    len: usize,
}

impl<'s> Schema<'s> {
    /// Views `value`, the `return` member of a `query-qmp-schema` reply.
    ///
    /// # Errors
    /// [`SchemaError`] when the value is not an array of objects that each
    /// have a string `name` and a string `meta-type`.
    pub fn new(value: RawJson<'s>) -> Result<Self, SchemaError> {
        if value.kind() != JsonKind::Array {
            return Err(SchemaError::NotAnArray);
        }
        let mut len = 0usize;
        for (i, e) in value.elements().enumerate() {
            if e.kind() != JsonKind::Object {
                return Err(SchemaError::BadEntry { index: i });
            }
            let mut name = false;
            let mut meta = false;
            for (k, v) in e.members() {
                if k.eq_str("name") {
                    name = v.kind() == JsonKind::String;
                } else if k.eq_str("meta-type") {
                    meta = v.kind() == JsonKind::String;
                }
            }
            if !(name && meta) {
                return Err(SchemaError::BadEntry { index: i });
            }
            len += 1;
        }
        if u32::try_from(value.as_bytes().len()).is_err() {
            return Err(SchemaError::TooLarge);
        }
        Ok(Schema { array: value, len })
    }

    /// Views the schema in a whole reply (`{"return": [...], ...}`).
    ///
    /// # Errors
    /// [`SchemaError::NoReturn`] without a `return` member, else as
    /// [`Schema::new`].
    pub fn from_reply(reply: RawJson<'s>) -> Result<Self, SchemaError> {
        Schema::new(reply.get("return").ok_or(SchemaError::NoReturn)?)
    }

    /// A schema [`Schema::new`] accepted before, from its [`Schema::raw`]
    /// text and its [`Schema::len`], without walking it again: for a
    /// caller that keeps the bytes and an [`Index`]'s offsets of a checked
    /// schema (qmp-std's `LiveSchema`). Anything else gives wrong answers
    /// (absent entries), never a panic.
    pub const fn assume_checked(array: RawJson<'s>, len: usize) -> Self {
        Schema { array, len }
    }

    /// The array as received.
    pub const fn raw(&self) -> RawJson<'s> {
        self.array
    }

    /// How many entries it has (the [`Index`] storage it needs).
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether it has no entries.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The entries, in the server's order.
    pub fn entries(&self) -> Entries<'s> {
        Entries {
            elements: self.array.elements(),
        }
    }

    /// Sorts the offsets of the entries by name into `storage` (at least
    /// [`Schema::len`] slots) for lookups by binary search: n log n name
    /// comparisons once, then about log2(n) per lookup.
    ///
    /// # Errors
    /// [`InsufficientSize`] with the slots needed.
    pub fn index<'i>(&self, storage: &'i mut [u32]) -> Result<Index<'s, 'i>, InsufficientSize> {
        Index::build(*self, storage)
    }

    /// The entry at an offset into the array's text (from an [`Index`]).
    pub(crate) fn entry_at(&self, offset: u32) -> Option<Entry<'s>> {
        self.array.value_at(offset as usize).map(Entry::new)
    }

    /// The name of the entry at an offset, read without walking the rest of
    /// the entry when `name` comes first (as QEMU sends it).
    pub(crate) fn name_at(&self, offset: u32) -> Option<JsonStr<'s>> {
        let rest = self.array.as_bytes().get(offset as usize..)?;
        RawJson::from_validated(rest)
            .get("name")
            .and_then(|n| n.as_json_str())
    }
}

/// Iterator over a schema's entries ([`Schema::entries`]).
#[derive(Clone, Debug)]
pub struct Entries<'s> {
    elements: Elements<'s>,
}

impl<'s> Iterator for Entries<'s> {
    type Item = Entry<'s>;

    fn next(&mut self) -> Option<Entry<'s>> {
        self.elements.next().map(Entry::new)
    }
}

/// Lookups by name, by scan ([`Schema`]) or by binary search ([`Index`]),
/// and what is built on them: typed lookups, path queries, argument
/// checks.
pub trait Lookup<'s> {
    /// The entry named `name`, if any.
    fn entry(&self, name: Name<'_>) -> Option<Entry<'s>>;

    /// The entry named `name` (a Rust string).
    fn get(&self, name: &str) -> Option<Entry<'s>> {
        self.entry(Name::Str(name))
    }

    /// The command `name`.
    fn command(&self, name: &str) -> Option<Command<'s>> {
        match self.get(name)?.kind() {
            Kind::Command(c) => Some(c),
            _ => None,
        }
    }

    /// The event `name`.
    fn event(&self, name: &str) -> Option<Event<'s>> {
        match self.get(name)?.kind() {
            Kind::Event(e) => Some(e),
            _ => None,
        }
    }

    /// The type a member, variant, array or command refers to.
    fn resolve(&self, type_name: JsonStr<'_>) -> Option<Entry<'s>> {
        self.entry(Name::Json(type_name))
    }

    /// The argument object type of a command or event (`arg-type`).
    fn arguments_of(&self, name: &str) -> Option<Object<'s>> {
        let entry = self.get(name)?;
        let arg = match entry.kind() {
            Kind::Command(c) => c.arg_type()?,
            Kind::Event(e) => e.arg_type()?,
            _ => return None,
        };
        match self.resolve(arg)?.kind() {
            Kind::Object(o) => Some(o),
            _ => None,
        }
    }

    /// Answers a libvirt path query (grammar: [`path`]).
    ///
    /// # Errors
    /// [`QueryError`] for a malformed query or a schema that breaks off.
    fn query(&self, query: &str) -> Result<Answer<'s>, QueryError>
    where
        Self: Sized,
    {
        path::query(self, query)
    }

    /// Whether a path query holds: a type is found or a boolean query is
    /// true (libvirt's `virQEMUQAPISchemaPathExists`).
    fn exists(&self, query: &str) -> bool
    where
        Self: Sized,
    {
        matches!(self.query(query), Ok(Answer::Type(_) | Answer::Yes))
    }

    /// Checks `arguments` (`None`: absent, as `{}`) of command `command`
    /// as QEMU's input visitor would.
    ///
    /// # Errors
    /// The first problem, in QEMU's order ([`CheckError`]).
    fn check<'a>(
        &self,
        command: &'a str,
        arguments: Option<RawJson<'a>>,
    ) -> Result<(), CheckError<'a, 's>>
    where
        Self: Sized,
    {
        check::check_command(self, command, arguments)
    }
}

impl<'s> Lookup<'s> for Schema<'s> {
    fn entry(&self, name: Name<'_>) -> Option<Entry<'s>> {
        self.entries().find(|e| Name::Json(e.name()).eq_name(&name))
    }
}
