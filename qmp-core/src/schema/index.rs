//! Lookups by binary search: [`Index`], entry offsets sorted by name in
//! storage the caller lends.
//!
//! One `u32` per entry (513 entries, 2 KB, for qemu-storage-daemon 10;
//! 1,051 for qemu-system-x86_64 7.2). Building sorts the offsets by name
//! once (n log n comparisons, each reading the `name` member at the start
//! of an entry); a lookup is then about log2(n) such reads and the walk of
//! the entry found. No allocation, and nothing is copied out of the reply.

use super::{Entry, Lookup, Name, Schema};
use crate::InsufficientSize;
use core::cmp::Ordering;

/// A [`Schema`] with its entries' offsets sorted by name
/// ([`Schema::index`]).
#[derive(Debug)]
pub struct Index<'s, 'i> {
    schema: Schema<'s>,
    offsets: &'i [u32],
}

impl<'s, 'i> Index<'s, 'i> {
    pub(super) fn build(
        schema: Schema<'s>,
        storage: &'i mut [u32],
    ) -> Result<Self, InsufficientSize> {
        let required = schema.len();
        let array = schema.raw();
        let mut n = 0usize;
        for e in array.elements() {
            let slot = storage.get_mut(n).ok_or(InsufficientSize { required })?;
            // Schema::new checked that the array's length fits a u32.
            let offset = array.offset_of(&e).and_then(|o| u32::try_from(o).ok());
            *slot = offset.ok_or(InsufficientSize { required })?;
            n += 1;
        }
        let offsets = match storage.get_mut(..n) {
            Some(o) => o,
            None => return Err(InsufficientSize { required }),
        };
        offsets.sort_unstable_by(|&a, &b| cmp_at(&schema, a, b));
        Ok(Index { schema, offsets })
    }

    /// An index over offsets an earlier [`Schema::index`] of the same
    /// schema text sorted ([`Index::offsets`]), kept by a caller that owns
    /// both (qmp-std keeps them next to the schema's bytes) so that the
    /// sort is not repeated per lookup.
    ///
    /// Offsets that do not come from this schema give wrong answers (a
    /// lookup finds nothing or another entry), never a panic: every offset
    /// is checked when it is read.
    pub const fn from_offsets(schema: Schema<'s>, offsets: &'i [u32]) -> Self {
        Index { schema, offsets }
    }

    /// The schema.
    pub const fn schema(&self) -> Schema<'s> {
        self.schema
    }

    /// The entry offsets, sorted by name.
    pub const fn offsets(&self) -> &'i [u32] {
        self.offsets
    }
}

/// Orders two entries by name (a nameless entry first).
fn cmp_at(schema: &Schema<'_>, a: u32, b: u32) -> Ordering {
    match (schema.name_at(a), schema.name_at(b)) {
        (Some(x), Some(y)) => Name::Json(x).cmp_name(&Name::Json(y)),
        (x, y) => x.is_some().cmp(&y.is_some()),
    }
}

impl<'s> Lookup<'s> for Index<'s, '_> {
    fn entry(&self, name: Name<'_>) -> Option<Entry<'s>> {
        let at = self
            .offsets
            .binary_search_by(|&o| match self.schema.name_at(o) {
                Some(n) => Name::Json(n).cmp_name(&name),
                None => Ordering::Less,
            })
            .ok()?;
        self.schema.entry_at(*self.offsets.get(at)?)
    }
}
