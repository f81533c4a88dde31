//! Unit tests of the schema views, one file per idea.

mod check;
mod entry;
#[cfg(feature = "introspection")]
mod introspect;
mod path;

use crate::json::RawJson;
use crate::scan::validate;

/// The qemu-storage-daemon 10.0 reply, as sent.
pub(super) const QSD: &[u8] = include_bytes!("../../../tests/data/qsd-10.0-schema.s2c");

/// Validates test JSON.
pub(super) fn json(bytes: &[u8]) -> RawJson<'_> {
    validate(bytes, Default::default()).expect("valid JSON")
}
