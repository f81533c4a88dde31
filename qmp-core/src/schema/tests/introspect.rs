//! The agent's `query-qmp-schema` writer.

use crate::encode::qdict_bucket;
use crate::schema::introspect::ENTRY_KEYS;

#[test]
fn entry_keys_are_in_qdict_order() {
    let buckets = ENTRY_KEYS.map(|k| qdict_bucket(k.as_bytes()));
    assert!(buckets.windows(2).all(|w| w[0] < w[1]), "{buckets:?}");
}
