//! libvirt's path queries over qemu-storage-daemon 10.0's schema.

use super::{json, QSD};
use crate::schema::{Answer, Lookup, QueryError, Schema};

fn answer(schema: &Schema<'_>, q: &str) -> &'static str {
    match schema.query(q) {
        Ok(Answer::Type(_)) => "type",
        Ok(Answer::Yes) => "yes",
        Ok(Answer::No) => "no",
        Err(QueryError::TrailingComponent) => "trailing",
        Err(QueryError::Empty) => "empty",
        Err(QueryError::BrokenSchema) => "broken",
        Err(_) => "error",
    }
}

#[test]
#[cfg_attr(miri, ignore = "walks of a 117 KB schema are slow under miri")]
fn libvirt_queries() {
    let s = Schema::from_reply(json(QSD)).unwrap();
    for (q, want) in [
        ("blockdev-add", "type"),
        ("blockdev-add/arg-type", "type"),
        ("blockdev-add/arg-type/+file/aio/^threads", "yes"),
        ("blockdev-add/arg-type/+file/aio/^nonesuch", "no"),
        ("blockdev-add/arg-type/+file/filename", "type"),
        ("blockdev-add/arg-type/+nonesuch/filename", "no"),
        ("blockdev-add/arg-type/driver/^null-co", "yes"),
        ("blockdev-add/arg-type/*node-name", "type"),
        ("blockdev-add/arg-type/*driver", "no"),
        ("blockdev-add/arg-type/node-name/!string", "yes"),
        ("blockdev-add/arg-type/node-name/!int", "no"),
        ("blockdev-add/arg-type/node-name/^x", "no"),
        // BlockdevRef is an alternate: its object branch has the variant.
        ("blockdev-add/arg-type/+qcow2/file/+file/filename", "type"),
        ("blockdev-add/arg-type/+qcow2/file/!string", "yes"),
        ("drive-backup/$deprecated", "yes"),
        ("blockdev-add/$deprecated", "no"),
        ("x-debug-query-block-graph/$unstable", "yes"),
        ("blockdev-add/ret-type", "type"),
        ("blockdev-add/nonesuch", "no"),
        ("blockdev-add/+x", "no"),
        // Arrays are flattened.
        ("query-block-jobs/ret-type/type", "type"),
        ("query-qmp-schema/ret-type/+enum/values", "type"),
        ("query-qmp-schema/ret-type/meta-type/^alternate", "yes"),
        ("JOB_STATUS_CHANGE/arg-type/status/^running", "yes"),
        ("nonesuch/arg-type", "no"),
        ("blockdev-add/arg-type/driver/^null-co/x", "trailing"),
        ("blockdev-add/arg-type/driver/^null-co/$x", "no"),
        ("drive-backup/$deprecated/x", "trailing"),
        ("blockdev-add/arg-type/node-name/!string/x", "trailing"),
        ("", "empty"),
    ] {
        assert_eq!(answer(&s, q), want, "{q}");
    }
    assert!(s.exists("blockdev-add/arg-type/+file/aio/^threads"));
    assert!(!s.exists("blockdev-add/arg-type/+file/aio/^nonesuch"));
}

#[test]
fn enum_value_features_and_leading_non_letters() {
    let s = Schema::new(json(
        br#"[{"name": "c", "meta-type": "command", "arg-type": "0", "ret-type": "0"},
             {"name": "0", "meta-type": "object", "members": [
                {"name": "1st", "type": "1"}, {"name": "loop", "type": "2"}]},
             {"name": "1", "meta-type": "enum", "members": [
                {"name": "a", "features": ["deprecated"]}, {"name": "b"}]},
             {"name": "2", "meta-type": "alternate", "members": [{"type": "2"}]},
             {"name": "d", "meta-type": "command", "arg-type": "9", "ret-type": "0"}]"#,
    ))
    .unwrap();
    assert_eq!(answer(&s, "c/arg-type/ 1st/^a/$deprecated"), "yes");
    assert_eq!(answer(&s, "c/arg-type/ 1st/^b/$deprecated"), "no");
    assert_eq!(answer(&s, "c/arg-type/ 1st/^a/$deprecated/x"), "trailing");
    assert_eq!(answer(&s, "c/arg-type/ 1st/^a/x"), "trailing");
    assert_eq!(answer(&s, "c/arg-type/1st"), "no");
    // An alternate that is its own branch is cut off.
    assert_eq!(s.query("c/arg-type/loop/x"), Err(QueryError::TooDeep));
    assert_eq!(answer(&s, "d/arg-type/x"), "broken");
}
