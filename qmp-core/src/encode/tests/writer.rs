//! Pretty layout and line endings.

use super::{qemu, raw, text};
use crate::encode::{write_return, Layout, LineEnding, Style};

#[test]
#[cfg_attr(
    not(feature = "qdict-order"),
    ignore = "asserts the behaviour of `qdict-order`"
)]
fn pretty() {
    assert_eq!(qemu("{}", Style::QMP_PRETTY), "{\r\n}");
    assert_eq!(
        qemu(r#"{"b":{},"a":[1,2]}"#, Style::QMP_PRETTY),
        "{\r\n    \"a\": [\r\n        1,\r\n        2\r\n    ],\r\n    \"b\": {\r\n    }\r\n}"
    );
    let pretty_nl = Style::new(Layout::Pretty, LineEnding::Lf);
    assert_eq!(
        text(|o| write_return(o, Style::QMP_PRETTY, &raw(b"{}"), None)),
        "{\r\n    \"return\": {\r\n    }\r\n}\r\n"
    );
    assert_eq!(
        text(|o| write_return(o, pretty_nl, &raw(b"[]"), Some(&1i64))),
        "{\n    \"return\": [\n    ],\n    \"id\": 1\n}\n"
    );
}
