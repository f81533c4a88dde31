//! [`LiveSchema`]: a server's `query-qmp-schema`, owned, indexed once, for
//! lookups, libvirt path queries and argument checks in std programs.
//!
//! This is qmp-core's [`qmp_core::schema`] with the storage owned: the
//! return value's bytes and the [`Index`]'s sorted offsets live in two
//! boxed slices, so the index is built once (about 0.5 ms for
//! qemu-storage-daemon's 117 KB schema, 1 ms for qemu-system-x86_64's)
//! and each lookup is a binary search (under a microsecond). Every view
//! ([`Lookup::command`], [`Lookup::arguments_of`], [`Lookup::query`], …)
//! comes from [`LiveSchema::index`].
//!
//! [`Client::load_schema`](crate::client::Client::load_schema) fetches and
//! builds it; [`Client::check_with`](crate::client::Client::check_with)
//! makes the client check every call's arguments against it before
//! sending, typed and raw calls alike, so a mistake fails at once with
//! QEMU's own text ([`Error::Rejected`]) rather than after a round trip —
//! or, for an `exec-oob`, rather than never.
//!
//! ```no_run
//! use qmp_std::client::{Client, Config};
//! use qmp_std::schema::Lookup;
//! use std::sync::Arc;
//!
//! let mut qmp = Client::connect_unix("/tmp/qsd.sock", Config::new())?;
//! let schema = Arc::new(qmp.load_schema()?);
//! assert!(schema.index().exists("blockdev-add/arg-type/+null-co"));
//! qmp.check_with(Some(schema));
//! let err = qmp
//!     .execute_raw("blockdev-add", Some(r#"{"driver": "null-co", "size": "1M"}"#))
//!     .unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "rejected before sending: GenericError: Invalid parameter type for 'size', expected: integer"
//! );
//! # Ok::<(), qmp_std::Error>(())
//! ```

use crate::error::{Error, QmpError};
use crate::machine::json_object;
use qmp_core::json::RawJson;
use qmp_core::scan::{validate, FramerConfig};
use std::fmt;

pub use qmp_core::schema::{
    Answer, CheckError, CheckErrorKind, Command, Entry, Index, Kind, Lookup, Object, Schema,
    SchemaError,
};

/// A server's schema (the `return` value of `query-qmp-schema`), owned and
/// indexed by name.
#[derive(Clone, PartialEq, Eq)]
pub struct LiveSchema {
    text: Box<[u8]>,
    offsets: Box<[u32]>,
}

impl fmt::Debug for LiveSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveSchema")
            .field("bytes", &self.text.len())
            .field("entries", &self.offsets.len())
            .finish()
    }
}

impl LiveSchema {
    /// Validates and indexes the `return` value of `query-qmp-schema` (an
    /// array of `SchemaInfo`), or a whole reply (`{"return": [...]}`).
    ///
    /// # Errors
    /// [`Error::Protocol`] when it is not JSON or not a schema.
    pub fn parse(text: impl Into<Vec<u8>>) -> Result<LiveSchema, Error> {
        let text: Box<[u8]> = text.into().into_boxed_slice();
        let bad = |what: &dyn fmt::Display| Error::Protocol(format!("not a QMP schema: {what}"));
        let value =
            validate(&text, FramerConfig::new().with_duplicate_keys(false)).map_err(|e| bad(&e))?;
        let schema = match Schema::new(value) {
            Err(SchemaError::NotAnArray) => Schema::from_reply(value),
            other => other,
        }
        .map_err(|e| bad(&e))?;
        // Keep only the array (offsets are relative to it), validated again
        // on its own.
        let text: Box<[u8]> = schema.raw().as_bytes().into();
        let value =
            validate(&text, FramerConfig::new().with_duplicate_keys(false)).map_err(|e| bad(&e))?;
        let schema = Schema::new(value).map_err(|e| bad(&e))?;
        let mut offsets = vec![0u32; schema.len()].into_boxed_slice();
        schema.index(&mut offsets).map_err(|e| bad(&e))?;
        Ok(LiveSchema { text, offsets })
    }

    /// The schema's views by binary search.
    pub fn index(&self) -> Index<'_, '_> {
        Index::from_offsets(self.schema(), &self.offsets)
    }

    /// The schema without the index (lookups by scan, entries in the
    /// server's order).
    pub fn schema(&self) -> Schema<'_> {
        // `parse` validated this text and checked it is a schema of this
        // many entries.
        Schema::assume_checked(RawJson::assume_validated(&self.text), self.offsets.len())
    }

    /// The schema's JSON text, as the server sent it.
    pub fn as_bytes(&self) -> &[u8] {
        &self.text
    }

    /// How many entries it has.
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// Whether it has no entries.
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// Checks the arguments of one command (JSON text of one object, or
    /// `None`) as the server would, with QEMU's class and text.
    ///
    /// # Errors
    /// [`Error::Rejected`] with what the server would answer;
    /// [`Error::Arguments`] when `args_json` is not one JSON object.
    pub fn check(&self, command: &str, args_json: Option<&str>) -> Result<(), Error> {
        let args = match args_json {
            None => None,
            Some(a) => Some(json_object(a.as_bytes())?),
        };
        self.check_raw(command, args)
    }

    /// [`LiveSchema::check`] of validated arguments.
    pub(crate) fn check_raw(&self, command: &str, args: Option<RawJson<'_>>) -> Result<(), Error> {
        self.index()
            .check(command, args)
            .map_err(|e| Error::Rejected {
                command: command.to_owned(),
                error: QmpError {
                    class: e.class().to_owned(),
                    desc: e.to_string(),
                },
            })
    }
}
