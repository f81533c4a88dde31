//! The agent's own introspection and argument checks, against the real
//! peer and the official client: commands declared like
//! qemu-storage-daemon's are listed by `query-qmp-schema` with the same
//! types (compared with the daemon's own, masked names aside), their
//! argument errors are byte-identical to the daemon's for the same
//! requests, and python `qemu.qmp` reads the schema.
//!
//! Skipped (with a `SKIP:` line) without qemu-storage-daemon or python
//! `qemu.qmp`, unless `QMP_REQUIRE_PEERS=1`.

use qmp_core::agent::{Agent, AgentBuffers, AgentConfig, CommandSpec, Reply};
use qmp_core::schema::decl::{
    AlternateDecl, EnumDecl, EnumValueDecl, EventDecl, MemberDecl, ObjectDecl, TypeDecl,
};
use qmp_core::Instant;
use serde_json::Value;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::process::{Command, Stdio};

mod common;

use common::monitor::Monitor;
use common::{skip, TempDir};

static NODE_NAME: ObjectDecl<'static> = ObjectDecl::new(
    "q_obj_blockdev-del-arg",
    &[MemberDecl::new("node-name", TypeDecl::STR)],
);
static JOB_ID: ObjectDecl<'static> = ObjectDecl::new(
    "q_obj_job-pause-arg",
    &[MemberDecl::new("id", TypeDecl::STR)],
);
static PATH: ObjectDecl<'static> = ObjectDecl::new(
    "q_obj_qom-list-arg",
    &[MemberDecl::new("path", TypeDecl::STR)],
);
static DATA_FORMAT: EnumDecl<'static> = EnumDecl::new(
    "DataFormat",
    &[EnumValueDecl::new("utf8"), EnumValueDecl::new("base64")],
);
static RINGBUF_READ: ObjectDecl<'static> = ObjectDecl::new(
    "q_obj_ringbuf-read-arg",
    &[
        MemberDecl::new("device", TypeDecl::STR),
        MemberDecl::new("size", TypeDecl::INT),
        MemberDecl::optional("format", TypeDecl::Enum(&DATA_FORMAT)),
    ],
);
static BITMAP_ADD: ObjectDecl<'static> = ObjectDecl::new(
    "BlockDirtyBitmapAdd",
    &[
        MemberDecl::new("node", TypeDecl::STR),
        MemberDecl::new("name", TypeDecl::STR),
        MemberDecl::optional("granularity", TypeDecl::INT),
        MemberDecl::optional("persistent", TypeDecl::BOOL),
        MemberDecl::optional("disabled", TypeDecl::BOOL),
    ],
);
static BITMAP: ObjectDecl<'static> = ObjectDecl::new(
    "BlockDirtyBitmap",
    &[
        MemberDecl::new("node", TypeDecl::STR),
        MemberDecl::new("name", TypeDecl::STR),
    ],
);
static BITMAP_OR_STR: AlternateDecl<'static> = AlternateDecl::new(
    "BlockDirtyBitmapOrStr",
    &[TypeDecl::STR, TypeDecl::Object(&BITMAP)],
);
static BITMAP_MERGE: ObjectDecl<'static> = ObjectDecl::new(
    "BlockDirtyBitmapMerge",
    &[
        MemberDecl::new("node", TypeDecl::STR),
        MemberDecl::new("target", TypeDecl::STR),
        MemberDecl::new(
            "bitmaps",
            TypeDecl::Array(&TypeDecl::Alternate(&BITMAP_OR_STR)),
        ),
    ],
);
static JOB_STATUS: EnumDecl<'static> = EnumDecl::new(
    "JobStatus",
    &[EnumValueDecl::new("created"), EnumValueDecl::new("running")],
);
static JOB_STATUS_CHANGE: ObjectDecl<'static> = ObjectDecl::new(
    "q_obj_JOB_STATUS_CHANGE-arg",
    &[
        MemberDecl::new("id", TypeDecl::STR),
        MemberDecl::new("status", TypeDecl::Enum(&JOB_STATUS)),
    ],
);

/// Commands declared as qemu-storage-daemon 10.0 declares them.
static COMMANDS: &[CommandSpec<'static>] = &[
    CommandSpec::new("query-commands"),
    CommandSpec::new("query-qmp-schema"),
    CommandSpec::new("blockdev-del").with_arguments(&NODE_NAME),
    CommandSpec::new("job-pause").with_arguments(&JOB_ID),
    CommandSpec::new("qom-list").with_arguments(&PATH),
    CommandSpec::new("ringbuf-read")
        .with_arguments(&RINGBUF_READ)
        .with_returns(TypeDecl::STR),
    CommandSpec::new("block-dirty-bitmap-add").with_arguments(&BITMAP_ADD),
    CommandSpec::new("block-dirty-bitmap-merge").with_arguments(&BITMAP_MERGE),
    CommandSpec::new("query-block-jobs").with_arguments(&ObjectDecl::EMPTY),
];
static EVENTS: &[EventDecl<'static>] =
    &[EventDecl::new("JOB_STATUS_CHANGE").with_data(&JOB_STATUS_CHANGE)];

/// The same mistakes, sent to both.
const MISTAKES: &[&str] = &[
    r#"{"execute":"blockdev-del","arguments":{},"id":1}"#,
    r#"{"execute":"blockdev-del","id":"a"}"#,
    r#"{"execute":"blockdev-del","arguments":{"node-name":1},"id":{"x":[1,2]}}"#,
    r#"{"execute":"blockdev-del","arguments":{"node-name":"x","zz":1},"id":2}"#,
    r#"{"execute":"blockdev-del","arguments":{"node-name":null}}"#,
    r#"{"execute":"job-pause","arguments":{"id":["x"]},"id":3}"#,
    r#"{"execute":"qom-list","arguments":{"path":true},"id":4}"#,
    r#"{"execute":"query-block-jobs","arguments":{"x":1},"id":5}"#,
    r#"{"execute":"ringbuf-read","arguments":{"device":"x"},"id":6}"#,
    r#"{"execute":"ringbuf-read","arguments":{"device":"x","size":"1"},"id":7}"#,
    r#"{"execute":"ringbuf-read","arguments":{"device":"x","size":1.5},"id":8}"#,
    r#"{"execute":"ringbuf-read","arguments":{"device":"x","size":1,"format":"zz"},"id":9}"#,
    r#"{"execute":"ringbuf-read","arguments":{"device":"x","size":1,"format":7},"id":10}"#,
    r#"{"execute":"block-dirty-bitmap-add","arguments":{"node":"x","name":"y","persistent":"no"},"id":11}"#,
    r#"{"execute":"block-dirty-bitmap-add","arguments":{"name":"y"},"id":12}"#,
    r#"{"execute":"block-dirty-bitmap-merge","arguments":{"node":"x","target":"y","bitmaps":{}},"id":13}"#,
    r#"{"execute":"block-dirty-bitmap-merge","arguments":{"node":"x","target":"y","bitmaps":[{"node":"a"}]},"id":14}"#,
    r#"{"execute":"block-dirty-bitmap-merge","arguments":{"node":"x","target":"y","bitmaps":["b",{"node":"a","name":1}]},"id":15}"#,
    r#"{"execute":"block-dirty-bitmap-merge","arguments":{"node":"x","target":"y","bitmaps":["b",{"node":"a","name":"c","d":0}]},"id":16}"#,
    r#"{"execute":"block-dirty-bitmap-merge","arguments":{"node":"x","target":"y","bitmaps":[1]},"id":17}"#,
    r#"{"execute":"block-dirty-bitmap-merge","arguments":{"node":"x","target":"y","bitmaps":[true]},"id":18}"#,
];

fn config() -> AgentConfig<'static> {
    AgentConfig::new((10, 0, 2), "qmp-rs test", COMMANDS).with_events(EVENTS)
}

/// An in-memory agent: the replies (greeting and negotiation dropped) to
/// `requests`, each request answered `{}` by the application if the
/// agent hands it out.
fn agent_replies(requests: &[&str]) -> Vec<Vec<u8>> {
    let (mut f, mut q, mut o) = (vec![0u8; 4096], vec![0u8; 8192], vec![0u8; 65536]);
    let mut agent = Agent::new(config(), AgentBuffers::new(&mut f, &mut q, &mut o)).unwrap();
    let mut tx = vec![0u8; 65536];
    let mut out = Vec::new();
    let mut drain = |agent: &mut Agent<'_, '_>, out: &mut Vec<u8>| {
        let empty = qmp_core::scan::validate(b"{}", Default::default()).unwrap();
        while let Some(token) = agent.poll_request().map(|r| r.token) {
            agent.complete(token, Reply::Return(&empty)).unwrap();
        }
        while let Some(n) = agent.poll_transmit(&mut tx) {
            out.extend_from_slice(&tx[..n]);
        }
    };
    drain(&mut agent, &mut Vec::new());
    agent.handle_input(Instant::ZERO, br#"{"execute":"qmp_capabilities"}"#);
    drain(&mut agent, &mut Vec::new());
    let mut replies = Vec::new();
    for r in requests {
        assert_eq!(agent.handle_input(Instant::ZERO, r.as_bytes()), r.len());
        drain(&mut agent, &mut out);
        replies.push(std::mem::take(&mut out));
    }
    replies
}

#[test]
fn argument_errors_are_byte_identical_to_qemu_storage_daemon() {
    let Some(mut qsd) = Monitor::start() else {
        return;
    };
    let ours = agent_replies(MISTAKES);
    for (req, ours) in MISTAKES.iter().zip(ours) {
        let theirs = qsd.send(req.as_bytes());
        assert!(theirs.starts_with(b"{\"id\"") || theirs.starts_with(b"{\"error\""));
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs),
            "{req}"
        );
    }
}

/// A type with its references replaced by what they name (masked names
/// dropped), `seen` cutting cycles.
fn canonical(types: &HashMap<String, Value>, name: &str, seen: &mut Vec<String>) -> Value {
    let Some(t) = types.get(name) else {
        return Value::String(format!("missing {name}"));
    };
    let mut t = t.clone();
    if t["meta-type"] == "builtin" {
        return t;
    }
    if seen.iter().any(|s| s == name) {
        return Value::String("(cycle)".into());
    }
    seen.push(name.to_string());
    let obj = t.as_object_mut().unwrap();
    obj.remove("name");
    for key in ["arg-type", "ret-type", "element-type"] {
        if let Some(r) = obj.get(key).and_then(Value::as_str).map(str::to_string) {
            obj.insert(key.into(), canonical(types, &r, seen));
        }
    }
    for list in ["members", "variants"] {
        if let Some(Value::Array(items)) = obj.get_mut(list) {
            for item in items {
                if let Some(r) = item.get("type").and_then(Value::as_str).map(str::to_string) {
                    item["type"] = canonical(types, &r, seen);
                }
            }
        }
    }
    seen.pop();
    t
}

fn by_name(reply: &[u8]) -> HashMap<String, Value> {
    let v: Value = serde_json::from_slice(reply).unwrap();
    v["return"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_string(), e.clone()))
        .collect()
}

#[test]
fn query_qmp_schema_describes_the_commands_as_qemu_storage_daemon_does() {
    let schema_req = r#"{"execute":"query-qmp-schema"}"#;
    let ours = agent_replies(&[schema_req]).remove(0);
    // Our own views read it, and its masked names are QEMU's numbering.
    let raw = qmp_core::scan::validate(&ours, Default::default()).unwrap();
    let schema = qmp_core::schema::Schema::from_reply(raw).unwrap();
    use qmp_core::schema::Lookup;
    assert!(!schema.exists("block-dirty-bitmap-merge/arg-type/bitmaps/+x"));
    assert!(schema.exists("ringbuf-read/arg-type/format/^base64"));
    assert!(schema.exists("JOB_STATUS_CHANGE/arg-type/status/^running"));
    assert!(schema.exists("query-qmp-schema/ret-type/+enum/values"));
    let ours_text = String::from_utf8(ours.clone()).unwrap();
    assert!(
        ours_text.starts_with(
            r#"{"return": [{"name": "qmp_capabilities", "ret-type": "1", "meta-type": "command", "arg-type": "0"}, {"name": "query-commands", "ret-type": "[2]", "meta-type": "command", "arg-type": "1"}"#
        ),
        "{}",
        &ours_text[..300]
    );
    let Some(mut qsd) = Monitor::start() else {
        return;
    };
    let theirs = qsd.send(schema_req.as_bytes());
    let (ours, theirs) = (by_name(&ours), by_name(&theirs));
    let mut names: Vec<&str> = COMMANDS.iter().map(|c| c.name()).collect();
    names.extend(["qmp_capabilities", "JOB_STATUS_CHANGE"]);
    for name in names {
        let a = canonical(&ours, name, &mut Vec::new());
        let mut b = canonical(&theirs, name, &mut Vec::new());
        if name == "JOB_STATUS_CHANGE" {
            // Our JobStatus declares two of QEMU's values.
            b["arg-type"]["members"][1]["type"] = a["arg-type"]["members"][1]["type"].clone();
        }
        let declared_return = COMMANDS.iter().find(|c| c.name() == name).is_none_or(|c| {
            c.returns().is_some() || name.starts_with("query-c") || name == "query-qmp-schema"
        });
        if declared_return {
            assert_eq!(a, b, "{name}");
        } else {
            // Return types not declared here: the arguments alone.
            assert_eq!(a["arg-type"], b["arg-type"], "{name}");
            assert_eq!(a["ret-type"]["members"], serde_json::json!([]), "{name}");
        }
    }
}

const PYTHON: &str = r#"
import asyncio, sys
from qemu.qmp import QMPClient, ExecuteError

async def main(path):
    qmp = QMPClient('schema-test')
    await qmp.connect(path)
    schema = await qmp.execute('query-qmp-schema')
    by_name = {e['name']: e for e in schema}
    assert len(by_name) == len(schema), 'names are unique'
    def ref(n):
        assert n in by_name, n
    for e in schema:
        mt = e['meta-type']
        if mt == 'command':
            ref(e['arg-type']); ref(e['ret-type'])
        elif mt == 'event':
            ref(e['arg-type'])
        elif mt == 'object':
            for m in e['members']:
                ref(m['type'])
            for v in e.get('variants', []):
                ref(v['type'])
        elif mt == 'array':
            ref(e['element-type'])
            assert e['name'] == '[' + e['element-type'] + ']', e
        elif mt == 'alternate':
            for m in e['members']:
                ref(m['type'])
        elif mt == 'enum':
            assert [m['name'] for m in e['members']] == e['values'], e
        else:
            assert mt == 'builtin', e
    arg = by_name[by_name['ringbuf-read']['arg-type']]
    assert [m['name'] for m in arg['members']] == ['device', 'size', 'format'], arg
    assert 'default' in arg['members'][2] and 'default' not in arg['members'][0], arg
    try:
        await qmp.execute('ringbuf-read', {'device': 'x'})
    except ExecuteError as e:
        assert str(e) == "Parameter 'size' is missing", str(e)
    else:
        raise AssertionError('ringbuf-read without size succeeded')
    r = await qmp.execute('ringbuf-read', {'device': 'x', 'size': 1})
    assert r == {}, r
    await qmp.disconnect()
    print('OK', len(schema))

asyncio.run(main(sys.argv[1]))
"#;

/// Serves one connection with the in-process agent (requests the agent
/// hands out are answered `{}`).
fn serve_one(listener: UnixListener) {
    let (mut stream, _) = listener.accept().unwrap();
    let (mut f, mut q, mut o) = (vec![0u8; 4096], vec![0u8; 8192], vec![0u8; 65536]);
    let mut agent = Agent::new(config(), AgentBuffers::new(&mut f, &mut q, &mut o)).unwrap();
    let empty = qmp_core::scan::validate(b"{}", Default::default()).unwrap();
    let mut tx = vec![0u8; 65536];
    let mut buf = vec![0u8; 4096];
    let mut held = Vec::new();
    loop {
        while let Some(token) = agent.poll_request().map(|r| r.token) {
            agent.complete(token, Reply::Return(&empty)).unwrap();
        }
        while let Some(n) = agent.poll_transmit(&mut tx) {
            stream.write_all(&tx[..n]).unwrap();
        }
        if !held.is_empty() && agent.wants_input() {
            let used = agent.handle_input(Instant::ZERO, &held);
            held.drain(..used);
            continue;
        }
        let n = match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        held.extend_from_slice(&buf[..n]);
        let used = agent.handle_input(Instant::ZERO, &held);
        held.drain(..used);
    }
}

#[test]
fn python_qemu_qmp_reads_the_agents_schema() {
    let has_qemu_qmp = Command::new("python3")
        .args(["-c", "import qemu.qmp"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_qemu_qmp {
        skip("python qemu.qmp not installed");
        return;
    }
    let dir = TempDir::new("schema-python");
    let sock = dir.path("agent.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let server = std::thread::spawn(move || serve_one(listener));
    let out = Command::new("python3")
        .args(["-c", PYTHON, sock.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.starts_with("OK "),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    server.join().unwrap();
}
