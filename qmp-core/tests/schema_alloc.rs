//! The schema views allocate nothing: parsing, indexing, lookups, path
//! queries and argument checks over the real qemu-storage-daemon schema.

#[path = "common/counting.rs"]
mod counting;

use counting::{count_allocs, Counting};
use qmp_core::scan::validate;
use qmp_core::schema::{Lookup, Schema};

#[global_allocator]
static ALLOC: Counting = Counting;

const QSD: &[u8] = include_bytes!("data/qsd-10.0-schema.s2c");

#[test]
fn schema_views_allocate_nothing() {
    let args = br#"{"driver": "qcow2", "node-name": "d", "file": {"driver": "file", "filename": "/x", "aio": "nope"}}"#;
    let mut storage = [0u32; 600];
    let ((), allocs) = count_allocs(|| {
        let raw = validate(QSD, Default::default()).unwrap();
        let schema = Schema::from_reply(raw).unwrap();
        let index = schema.index(&mut storage).unwrap();
        let args = validate(args, Default::default()).unwrap();
        assert!(index.command("blockdev-add").is_some());
        assert!(schema.command("blockdev-add").is_some());
        assert!(index.exists("blockdev-add/arg-type/+file/aio/^threads"));
        let err = index.check("blockdev-add", Some(args)).unwrap_err();
        let mut text = [0u8; 128];
        let mut w = &mut text[..];
        use std::io::Write;
        write!(w, "{err}").unwrap();
        assert!(err.path().count() == 2);
        assert!(schema.check("blockdev-add", Some(args)).is_err());
        for e in schema.entries() {
            std::hint::black_box(e.kind());
        }
    });
    assert_eq!(allocs, 0);
}
