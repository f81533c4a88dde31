//! QDict buckets of known keys, plain and escaped.

use super::raw;
use crate::encode::qdict::json_str_bucket;
use crate::encode::qdict_bucket;

#[test]
fn buckets() {
    let table = [
        ("seconds", 5),
        ("timestamp", 26),
        ("extra", 41),
        ("QMP", 99),
        ("exec-oob", 162),
        ("version", 184),
        ("class", 211),
        ("capabilities", 216),
        ("minor", 225),
        ("micro", 225),
        ("qemu", 232),
        ("a", 233),
        ("enable", 252),
        ("control", 263),
        ("execute", 299),
        ("package", 326),
        ("b", 340),
        ("event", 361),
        ("microseconds", 374),
        ("desc", 377),
        ("return", 401),
        ("arguments", 447),
        ("major", 481),
        ("id", 486),
        ("error", 489),
        ("data", 505),
    ];
    for (key, bucket) in table {
        assert_eq!(qdict_bucket(key.as_bytes()), bucket, "{key}");
        let quoted = std::format!("\"{key}\"");
        let s = raw(quoted.as_bytes()).as_json_str().unwrap();
        assert_eq!(json_str_bucket(s), bucket, "{key}");
    }
    // Escaped keys hash their unescaped bytes.
    let s = raw(br#""\u0069\u0064""#).as_json_str().unwrap();
    assert_eq!(json_str_bucket(s), 486);
}
