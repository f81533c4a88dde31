//! The clients' argument checks against the live schema
//! ([`Client::load_schema`], [`Client::check_with`], and the same on
//! [`AsyncClient`]): a fake server proves a rejected call sends nothing; qemu-storage-daemon 10 proves the
//! predicted answer is the daemon's own (`SKIP:` without it, unless
//! `QMP_REQUIRE_PEERS=1`).

use qmp_std::client::{Call, Client, Config, Error, QmpError};
use qmp_std::schema::{LiveSchema, Lookup};
use qmp_std::tokio::AsyncClient;
use std::io::Write;
use std::os::unix::net::UnixListener;
use std::sync::Arc;
use std::time::Duration;

mod common;

use common::{qsd, rt, TempDir};

/// The real qemu-storage-daemon 10.0 reply to `query-qmp-schema`.
const SCHEMA_REPLY: &[u8] = include_bytes!("../../qmp-core/tests/data/qsd-10.0-schema.s2c");

fn config() -> Config {
    Config::new().timeout(Some(Duration::from_secs(10)))
}

fn rejected(command: &str, class: &str, desc: &str) -> String {
    Error::Rejected {
        command: command.into(),
        error: QmpError {
            class: class.into(),
            desc: desc.into(),
        },
    }
    .to_string()
}

#[test]
fn live_schema_parses_reply_or_return_value() {
    let whole = LiveSchema::parse(SCHEMA_REPLY).unwrap();
    let text = std::str::from_utf8(SCHEMA_REPLY).unwrap().trim();
    let inner = text
        .strip_prefix("{\"return\": ")
        .and_then(|t| t.strip_suffix('}'))
        .unwrap();
    let value = LiveSchema::parse(inner).unwrap();
    assert_eq!(whole, value);
    assert_eq!(whole.as_bytes(), inner.as_bytes());
    assert_eq!(whole.len(), 513);
    let index = whole.index();
    assert!(index.command("blockdev-add").is_some());
    assert!(index.exists("blockdev-add/arg-type/+null-co/size"));
    assert!(!index.exists("blockdev-add/arg-type/+null-co/no-such-member"));
    assert_eq!(
        whole
            .check("blockdev-add", Some(r#"{"node-name": "x"}"#))
            .unwrap_err()
            .to_string(),
        rejected(
            "blockdev-add",
            "GenericError",
            "Parameter 'driver' is missing"
        )
    );
    assert!(matches!(
        whole.check("blockdev-add", Some("[1]")),
        Err(Error::Arguments(_))
    ));
    for bad in [&b"[1, 2]"[..], b"{\"return\": 1}", b"{", b""] {
        let err = LiveSchema::parse(bad).unwrap_err();
        assert!(
            matches!(&err, Error::Protocol(t) if t.starts_with("not a QMP schema: ")),
            "{err:?}"
        );
    }
}

/// A fake server: greeting, `qmp_capabilities`, then `query-qmp-schema`
/// with the daemon's schema and `{"return": {}}` to anything else; it
/// returns every request line it read after the negotiation.
fn fake_server(listener: UnixListener) -> std::thread::JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut out = stream.try_clone().unwrap();
        out.write_all(
            b"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 2, \"minor\": 0, \"major\": 10}, \
              \"package\": \"\"}, \"capabilities\": []}}\r\n",
        )
        .unwrap();
        let mut seen = Vec::new();
        // Our client ends commands with no newline (as python qemu.qmp):
        // read a stream of JSON values.
        for request in
            serde_json::Deserializer::from_reader(stream).into_iter::<serde_json::Value>()
        {
            let request = request.unwrap();
            let id = match request.get("id") {
                Some(i) => format!(", \"id\": {i}"),
                None => String::new(),
            };
            if request["execute"] == "qmp_capabilities" {
                out.write_all(format!("{{\"return\": {{}}{id}}}\r\n").as_bytes())
                    .unwrap();
                continue;
            }
            seen.push(request.to_string());
            if request["execute"] == "query-qmp-schema" {
                let body = std::str::from_utf8(SCHEMA_REPLY).unwrap().trim_end();
                let body = body.strip_suffix('}').unwrap();
                out.write_all(format!("{body}{id}}}\r\n").as_bytes())
                    .unwrap();
            } else {
                out.write_all(format!("{{\"return\": {{}}{id}}}\r\n").as_bytes())
                    .unwrap();
            }
        }
        seen
    })
}

#[test]
fn rejected_calls_send_nothing_typed_raw_and_pipelined() {
    let dir = TempDir::new("schema-client");
    let sock = dir.path("fake.sock");
    let server = fake_server(UnixListener::bind(&sock).unwrap());
    let mut qmp = Client::connect_unix(&sock, config()).unwrap();
    let schema = Arc::new(qmp.load_schema().unwrap());
    assert_eq!(schema.len(), 513);

    // Without checks the fake server takes anything.
    qmp.execute_raw("blockdev-add", Some(r#"{"driver": 7}"#))
        .unwrap();

    qmp.check_with(Some(schema.clone()));
    assert!(Arc::ptr_eq(qmp.checked_against().unwrap(), &schema));
    let missing = rejected(
        "blockdev-add",
        "GenericError",
        "Parameter 'driver' is missing",
    );
    let raw = qmp.execute_raw("blockdev-add", Some(r#"{"node-name": "n0"}"#));
    assert_eq!(raw.unwrap_err().to_string(), missing);
    #[derive(serde::Serialize)]
    struct Add<'a> {
        driver: &'a str,
        #[serde(rename = "node-name")]
        node_name: &'a str,
        size: &'a str,
    }
    let typed = qmp.execute::<serde_json::Value, _>(
        "blockdev-add",
        &Add {
            driver: "null-co",
            node_name: "n0",
            size: "1M",
        },
    );
    assert_eq!(
        typed.unwrap_err().to_string(),
        rejected(
            "blockdev-add",
            "GenericError",
            "Invalid parameter type for 'size', expected: integer"
        )
    );
    let piped = qmp.send(Call::new("blockdev-del"));
    assert_eq!(
        piped.unwrap_err().to_string(),
        rejected(
            "blockdev-del",
            "GenericError",
            "Parameter 'node-name' is missing"
        )
    );
    let unknown = qmp.execute_raw("no-such-command", None);
    assert_eq!(
        unknown.unwrap_err().to_string(),
        rejected(
            "no-such-command",
            "CommandNotFound",
            "The command no-such-command has not been found"
        )
    );
    // A valid call still goes out, and the session goes on.
    let ok = qmp
        .send(Call::new("blockdev-add").args_json(r#"{"driver": "null-co", "node-name": "n0"}"#));
    qmp.wait(ok.unwrap()).unwrap();
    qmp.check_with(None);
    qmp.execute_raw("no-such-command", None).unwrap();
    drop(qmp);

    let seen = server.join().unwrap();
    let names: Vec<&str> = seen
        .iter()
        .map(|l| l.split('"').nth(3).unwrap_or(""))
        .collect();
    assert_eq!(
        names,
        [
            "query-qmp-schema",
            "blockdev-add",
            "blockdev-add",
            "no-such-command"
        ],
        "{seen:#?}"
    );
    assert!(seen[2].contains(r#""node-name":"n0""#), "{}", seen[2]);
}

#[test]
fn async_client_checks_on_every_clone_and_sends_nothing_rejected() {
    let dir = TempDir::new("schema-client-async");
    let sock = dir.path("fake.sock");
    let server = fake_server(UnixListener::bind(&sock).unwrap());
    rt().block_on(async {
        let qmp = AsyncClient::connect_unix(&sock, config()).await.unwrap();
        let other = qmp.clone();
        assert!(qmp.checked_against().is_none());
        let schema = Arc::new(qmp.load_schema().await.unwrap());
        assert_eq!(schema.len(), 513);
        // The setting is the connection's: set on one handle, it holds
        // for every clone.
        qmp.check_with(Some(schema.clone()));
        assert!(Arc::ptr_eq(&other.checked_against().unwrap(), &schema));
        let missing = other
            .execute_raw("blockdev-add", Some(r#"{"node-name": "n0"}"#))
            .await;
        assert_eq!(
            missing.unwrap_err().to_string(),
            rejected(
                "blockdev-add",
                "GenericError",
                "Parameter 'driver' is missing"
            )
        );
        let typed = qmp
            .execute::<serde_json::Value, _>(
                "blockdev-del",
                &serde_json::json!({"node-name": true}),
            )
            .await;
        assert_eq!(
            typed.unwrap_err().to_string(),
            rejected(
                "blockdev-del",
                "GenericError",
                "Invalid parameter type for 'node-name', expected: string"
            )
        );
        let unknown = qmp.call(Call::new("no-such-command")).await;
        assert_eq!(
            unknown.unwrap_err().to_string(),
            rejected(
                "no-such-command",
                "CommandNotFound",
                "The command no-such-command has not been found"
            )
        );
        other
            .execute_raw("blockdev-del", Some(r#"{"node-name": "n0"}"#))
            .await
            .unwrap();
        other.check_with(None);
        qmp.execute_raw("no-such-command", None).await.unwrap();
    });
    let seen = server.join().unwrap();
    let names: Vec<&str> = seen
        .iter()
        .map(|l| l.split('"').nth(3).unwrap_or(""))
        .collect();
    assert_eq!(
        names,
        ["query-qmp-schema", "blockdev-del", "no-such-command"],
        "{seen:#?}"
    );
}

#[test]
fn predicted_answers_are_the_daemons() {
    let Some(daemon) = qsd() else {
        return;
    };
    let sock = &daemon.sock;
    let mut qmp = Client::connect_unix(sock, config()).unwrap();
    let schema = Arc::new(qmp.load_schema().unwrap());
    let mistakes: &[(&str, Option<&str>)] = &[
        ("blockdev-add", Some(r#"{"node-name": "x"}"#)),
        (
            "blockdev-add",
            Some(r#"{"driver": "nope", "node-name": "x"}"#),
        ),
        (
            "blockdev-add",
            Some(r#"{"driver": "null-co", "node-name": "x", "size": "1"}"#),
        ),
        (
            "blockdev-add",
            Some(r#"{"driver": "null-co", "node-name": "x", "bogus": 1}"#),
        ),
        (
            "blockdev-add",
            Some(r#"{"driver": "file", "node-name": "x", "filename": "/dev/null", "aio": "x"}"#),
        ),
        ("blockdev-del", None),
        ("blockdev-del", Some(r#"{"node-name": true}"#)),
        ("query-named-block-nodes", Some(r#"{"flat": "yes"}"#)),
        ("job-cancel", Some(r#"{"id": "j", "force": 1}"#)),
        ("no-such-command", None),
    ];
    for &(command, args) in mistakes {
        qmp.check_with(None);
        let theirs = match qmp.execute_raw(command, args) {
            Err(Error::Qmp(e)) => e,
            other => panic!("{command} {args:?}: the daemon answered {other:?}"),
        };
        qmp.check_with(Some(schema.clone()));
        match qmp.execute_raw(command, args) {
            Err(Error::Rejected { command: c, error }) => {
                assert_eq!(c, command);
                assert_eq!(error, theirs, "{command} {args:?}");
            }
            other => panic!("{command} {args:?}: checked call gave {other:?}"),
        }
    }
    // Valid calls pass the check and run.
    qmp.execute_raw(
        "blockdev-add",
        Some(r#"{"driver": "null-co", "node-name": "n0", "size": 4096}"#),
    )
    .unwrap();
    let nodes = qmp.execute_raw("query-named-block-nodes", None).unwrap();
    assert!(nodes.contains(r#""node-name": "n0""#), "{nodes}");
    qmp.execute_raw("blockdev-del", Some(r#"{"node-name": "n0"}"#))
        .unwrap();
    drop(qmp);
}
