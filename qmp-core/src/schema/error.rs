//! Why a value is no schema: [`SchemaError`].

use core::fmt;

/// A `query-qmp-schema` value that cannot be viewed ([`super::Schema::new`]).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SchemaError {
    /// The value is not an array.
    NotAnArray,
    /// The reply has no `return` member.
    NoReturn,
    /// Entry `index` is not an object with a string `name` and a string
    /// `meta-type`.
    BadEntry {
        /// Its position in the array.
        index: usize,
    },
    /// The value is 4 GiB or more (offsets are `u32`).
    TooLarge,
}

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SchemaError::NotAnArray => f.write_str("schema is not an array"),
            SchemaError::NoReturn => f.write_str("reply has no return value"),
            SchemaError::BadEntry { index } => write!(
                f,
                "schema entry {index} is not an object with a name and a meta-type"
            ),
            SchemaError::TooLarge => f.write_str("schema is 4 GiB or larger"),
        }
    }
}

impl core::error::Error for SchemaError {}
