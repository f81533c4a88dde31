//! The QDict member order: QEMU's `tdb_hash` of a key and its bucket.

use crate::json::JsonStr;

/// QEMU's `tdb_hash` (`qobject/qdict.c`) of a key's bytes.
pub fn tdb_hash(key: &[u8]) -> u32 {
    let mut h = TdbHash::default();
    key.iter().for_each(|&b| h.push(b));
    h.finish()
}

/// Number of buckets of a QEMU `QDict`.
pub const QDICT_BUCKETS: u32 = 512;

/// The QDict bucket of a key: `tdb_hash(key) % 512`. QEMU emits object
/// members by ascending bucket, most recently inserted first within one.
pub fn qdict_bucket(key: &[u8]) -> u32 {
    tdb_hash(key) % QDICT_BUCKETS
}

#[derive(Default)]
struct TdbHash {
    sum: u32,
    len: u32,
}

impl TdbHash {
    fn push(&mut self, b: u8) {
        let shift = self.len.wrapping_mul(5) % 24;
        self.sum = self.sum.wrapping_add(u32::from(b) << shift);
        self.len = self.len.wrapping_add(1);
    }

    fn finish(&self) -> u32 {
        let value = 0x238F_13AFu32.wrapping_mul(self.len).wrapping_add(self.sum);
        1_103_515_243u32.wrapping_mul(value).wrapping_add(12345)
    }
}

/// Bucket of a peer's key: hashed over its unescaped bytes as QEMU stores
/// them (modified UTF-8: `\u0000` is `C0 80`).
#[inline]
pub(crate) fn json_str_bucket(key: JsonStr<'_>) -> u32 {
    if !key.has_escapes() {
        // Literal bytes are stored as they are.
        return qdict_bucket(key.raw());
    }
    let mut h = TdbHash::default();
    key.qemu_bytes().for_each(|b| h.push(b));
    h.finish() % QDICT_BUCKETS
}
