//! The envelope writers against messages observed from QEMU and python
//! `qemu.qmp`.

use super::{raw, text};
use crate::encode::{
    write_command, write_error, write_event, write_greeting, write_return, Style, Verbatim,
};

#[test]
#[cfg_attr(
    not(all(feature = "exact-floats", feature = "qdict-order")),
    ignore = "asserts the behaviour of `exact-floats` and `qdict-order`"
)]
fn observed_vectors() {
    assert_eq!(
        text(|o| write_greeting(
            o,
            Style::QMP,
            10,
            0,
            2,
            "Debian 1:10.0.2+ds-2+deb13u1~bpo12+1",
            &["oob"]
        )),
        "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 2, \"minor\": 0, \"major\": 10}, \"package\": \"Debian 1:10.0.2+ds-2+deb13u1~bpo12+1\"}, \"capabilities\": [\"oob\"]}}\r\n"
    );
    assert_eq!(
        text(|o| write_greeting(o, Style::QMP, 10, 2, 0, "", &[])),
        "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 10}, \"package\": \"\"}, \"capabilities\": []}}\r\n"
    );
    assert_eq!(
        text(|o| write_error(
            o,
            Style::QMP,
            None,
            b"CommandNotFound",
            &[b"Expecting capabilities negotiation with 'qmp_capabilities'"]
        )),
        "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"Expecting capabilities negotiation with 'qmp_capabilities'\"}}\r\n"
    );
    assert_eq!(
        text(|o| write_error(
            o,
            Style::QMP,
            Some(&raw(b"1")),
            b"CommandNotFound",
            &[b"Expecting capabilities negotiation with 'qmp_capabilities'"]
        )),
        "{\"id\": 1, \"error\": {\"class\": \"CommandNotFound\", \"desc\": \"Expecting capabilities negotiation with 'qmp_capabilities'\"}}\r\n"
    );
    assert_eq!(
        text(|o| write_error(
            o,
            Style::QMP,
            None,
            b"GenericError",
            &[b"JSON parse error, stray '", b"\xFF", b"'"]
        )),
        "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, stray '\\uFFFD'\"}}\r\n"
    );
    // A multi-byte character split across pieces is one character.
    assert_eq!(
        text(|o| write_error(o, Style::QGA, None, b"E", &[b"\xC3", b"\xA9", b""])),
        "{\"error\": {\"class\": \"E\", \"desc\": \"\\u00E9\"}}\n"
    );
    assert_eq!(
        text(|o| write_error(
            o,
            Style::QMP,
            Some(&raw(br#"{"a":[1,"x"]}"#)),
            b"GenericError",
            &[b"QMP input member 'foo' is unexpected"]
        )),
        "{\"id\": {\"a\": [1, \"x\"]}, \"error\": {\"class\": \"GenericError\", \"desc\": \"QMP input member 'foo' is unexpected\"}}\r\n"
    );
    assert_eq!(
        text(|o| write_error(
            o,
            Style::QMP,
            Some(&raw(br#"[1,{"b":2,"a":1}]"#)),
            b"CommandNotFound",
            &[b"The command no-such-cmd has not been found"]
        )),
        "{\"id\": [1, {\"a\": 1, \"b\": 2}], \"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command no-such-cmd has not been found\"}}\r\n"
    );
    assert_eq!(
        text(|o| write_return(o, Style::QMP, &"No CPU available\r\n", Some(&raw(b"7")))),
        "{\"return\": \"No CPU available\\r\\n\", \"id\": 7}\r\n"
    );
    assert_eq!(
        text(|o| write_return(o, Style::QMP, &raw(b"{}"), None)),
        "{\"return\": {}}\r\n"
    );
    assert_eq!(
        text(|o| write_return(o, Style::QMP, &raw(b"{}"), Some(&raw(br#""\u00e9""#)))),
        "{\"return\": {}, \"id\": \"\\u00E9\"}\r\n"
    );
    assert_eq!(
        text(|o| write_return(o, Style::QMP, &raw(b"{}"), Some(&raw(b"0.1")))),
        "{\"return\": {}, \"id\": 0.10000000000000001}\r\n"
    );
    assert_eq!(
        text(|o| write_return(o, Style::QGA, &raw(b"{}"), Some(&"p"))),
        "{\"return\": {}, \"id\": \"p\"}\n"
    );
    assert_eq!(
        text(|o| write_return(o, Style::QGA, &raw(b"1795285234267252000"), None)),
        "{\"return\": 1795285234267252000}\n"
    );
    assert_eq!(
        text(|o| write_event(o, Style::QMP, "STOP", None, 1700000000, 5)),
        "{\"timestamp\": {\"seconds\": 1700000000, \"microseconds\": 5}, \"event\": \"STOP\"}\r\n"
    );
    assert_eq!(
        text(|o| write_event(
            o,
            Style::QMP,
            "JOB_STATUS_CHANGE",
            Some(&raw(br#"{"id":"j1","status":"created"}"#)),
            1795285163,
            709520
        )),
        "{\"timestamp\": {\"seconds\": 1795285163, \"microseconds\": 709520}, \"event\": \"JOB_STATUS_CHANGE\", \"data\": {\"status\": \"created\", \"id\": \"j1\"}}\r\n"
    );
    assert_eq!(
        text(|o| write_event(
            o,
            Style::QMP,
            "SHUTDOWN",
            Some(&raw(br#"{"reason":"host-qmp-quit","guest":false}"#)),
            -1,
            -1
        )),
        "{\"timestamp\": {\"seconds\": -1, \"microseconds\": -1}, \"event\": \"SHUTDOWN\", \"data\": {\"guest\": false, \"reason\": \"host-qmp-quit\"}}\r\n"
    );
}

#[test]
#[cfg_attr(
    not(feature = "qdict-order"),
    ignore = "asserts the behaviour of `qdict-order`"
)]
fn commands() {
    assert_eq!(
        text(|o| write_command(o, Style::CLIENT, false, "query-version", None, None)),
        r#"{"execute":"query-version"}"#
    );
    assert_eq!(
        text(|o| write_command(
            o,
            Style::CLIENT,
            true,
            "migrate-pause",
            Some(&raw(br#"{ "b" : 1 , "a" : 2 }"#)),
            Some(&5i64)
        )),
        r#"{"exec-oob":"migrate-pause","arguments":{"a":2,"b":1},"id":5}"#
    );
    assert_eq!(
        text(|o| write_command(
            o,
            Style::QGA,
            false,
            "x",
            Some(&Verbatim(raw(br#"{ "b" : 1 }"#))),
            Some(&raw(br#"{"n":[1]}"#))
        )),
        "{\"execute\": \"x\", \"arguments\": { \"b\" : 1 }, \"id\": {\"n\": [1]}}\n"
    );
    assert_eq!(
        text(|o| write_command(o, Style::CLIENT, false, "é", None, Some(&u64::MAX))),
        "{\"execute\":\"\\u00E9\",\"id\":18446744073709551615}"
    );
}
