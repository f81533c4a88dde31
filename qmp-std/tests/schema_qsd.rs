//! qmp-core's schema checks against the real peers: qemu-storage-daemon 10
//! and qemu-system-x86_64 10 (`-machine none`) answer the same generated argument objects (valid ones, and ones
//! broken in each way: a required member missing, a member unexpected, a
//! value of the wrong JSON type, an enum value outside the set, a union
//! tag out of its enum, elements of arrays, alternates), and for each our
//! verdict (accepted by the argument check or not) must equal QEMU's, and
//! for the kinds QEMU words predictably (missing, unexpected, wrong type,
//! enum value) our text must equal QEMU's `desc`.
//!
//! QEMU's verdict on the arguments: a reply that is a `return`, or an
//! error that is not one of its input visitor's (`Cannot find device`,
//! `'node-name' must be specified ...`), means the arguments passed.
//!
//! Only commands whose success is harmless or that fail later for lack of
//! a device, job or node: `query-*`, `job-*`, `block-job-*`, `blockdev-del`
//! and `blockdev-add` of `null-co` nodes, which are deleted again.
//!
//! Each peer's test is skipped (with a `SKIP:` line) without it, unless
//! `QMP_REQUIRE_PEERS=1`.

use qmp_core::schema::{CheckErrorKind, Expected, Lookup, Schema};
use serde_json::{json, Map, Value};
use std::collections::HashMap;

mod common;

use common::monitor::Monitor;

/// Commands whose arguments are generated: harmless when they pass the
/// argument check (they fail later, or succeed without effect).
/// `blockdev-reopen` is not among them: `{"options": []}` aborts
/// qemu-storage-daemon 10.0 (`bdrv_reopen_multiple: Assertion
/// 'bs_queue != NULL' failed`).
const COMMANDS: &[&str] = &[
    "blockdev-add",
    "blockdev-del",
    "block_resize",
    "blockdev-snapshot-sync",
    "blockdev-snapshot-internal-sync",
    "block-commit",
    "drive-backup",
    "blockdev-backup",
    "drive-mirror",
    "blockdev-mirror",
    "block-stream",
    "block-dirty-bitmap-add",
    "block-dirty-bitmap-merge",
    "block-set-write-threshold",
    "block-job-set-speed",
    "block-job-cancel",
    "block-job-change",
    "block-job-complete",
    "job-pause",
    "job-dismiss",
    "query-block-jobs",
    "query-named-block-nodes",
    "query-blockstats",
    "query-jobs",
    "query-chardev",
    "qom-list",
    "qom-get",
    "qom-list-types",
    "qom-list-properties",
    "ringbuf-read",
    "chardev-send-break",
    "nbd-server-remove",
    "block-export-del",
    "object-del",
];

/// The schema as serde_json values, by name, for generating arguments.
struct Types(HashMap<String, Value>);

impl Types {
    fn get(&self, name: &str) -> &Value {
        &self.0[name]
    }
}

/// Deterministic choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// A valid value of type `name` (as far as introspection can tell), with
/// some optional members. `depth` bounds recursive types.
fn valid(types: &Types, name: &str, rng: &mut Rng, depth: usize) -> Value {
    let t = types.get(name);
    match t["meta-type"].as_str().unwrap() {
        "builtin" => match t["json-type"].as_str().unwrap() {
            "string" => json!("x"),
            "int" => json!(0),
            "number" => json!(1.5),
            "boolean" => json!(false),
            "null" => Value::Null,
            _ => json!(1),
        },
        "enum" => t["values"][0].clone(),
        "array" => {
            if depth > 3 || rng.chance(30) {
                json!([])
            } else {
                json!([valid(
                    types,
                    t["element-type"].as_str().unwrap(),
                    rng,
                    depth + 1
                )])
            }
        }
        "alternate" => {
            let branches = t["members"].as_array().unwrap();
            // Prefer a scalar branch deep down (recursive types).
            let pick = if depth > 2 {
                branches
                    .iter()
                    .find(|b| types.get(b["type"].as_str().unwrap())["meta-type"] == "builtin")
                    .unwrap_or(&branches[0])
            } else {
                &branches[(rng.next() % branches.len() as u64) as usize]
            };
            valid(types, pick["type"].as_str().unwrap(), rng, depth + 1)
        }
        "object" => {
            let mut obj = Map::new();
            fill(types, t, &mut obj, rng, depth);
            Value::Object(obj)
        }
        other => panic!("no values of meta-type {other}"),
    }
}

/// Fills the members of object type `t` (and of the variant its tag
/// selects) into `obj`.
fn fill(types: &Types, t: &Value, obj: &mut Map<String, Value>, rng: &mut Rng, depth: usize) {
    let tag = t.get("tag").and_then(Value::as_str);
    for m in t["members"].as_array().unwrap() {
        let name = m["name"].as_str().unwrap();
        let optional = m.get("default").is_some();
        if optional && (depth > 2 || !rng.chance(50)) {
            continue;
        }
        let value = if Some(name) == tag {
            // Union tags: the null-co driver for block nodes (harmless),
            // else any case with a variant.
            let values = types.get(m["type"].as_str().unwrap())["values"]
                .as_array()
                .unwrap();
            if values.iter().any(|v| v == "null-co") {
                json!("null-co")
            } else {
                values[(rng.next() % values.len() as u64) as usize].clone()
            }
        } else {
            valid(types, m["type"].as_str().unwrap(), rng, depth + 1)
        };
        obj.insert(name.to_string(), value);
    }
    if let Some(tag) = tag {
        if let Some(case) = obj.get(tag).and_then(Value::as_str).map(str::to_string) {
            if let Some(v) = t["variants"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["case"] == case.as_str())
            {
                fill(
                    types,
                    types.get(v["type"].as_str().unwrap()),
                    obj,
                    rng,
                    depth,
                );
            }
        }
    }
}

/// A value of the wrong JSON type for type `name` (`None`: every JSON type
/// fits, as for `any`).
fn wrong(types: &Types, name: &str) -> Option<Value> {
    let t = types.get(name);
    Some(match t["meta-type"].as_str().unwrap() {
        "builtin" => match t["json-type"].as_str().unwrap() {
            "string" => json!(1),
            "int" => json!("1"),
            "number" => json!("1.5"),
            "boolean" => json!("true"),
            "null" => json!(0),
            _ => return None,
        },
        "enum" => json!(true),
        "array" => json!({}),
        "object" => json!([]),
        // A JSON type no branch takes, if there is one.
        "alternate" => {
            let kinds: Vec<&str> = t["members"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| {
                    let bt = types.get(b["type"].as_str().unwrap());
                    match bt["meta-type"].as_str().unwrap() {
                        "builtin" => bt["json-type"].as_str().unwrap(),
                        "enum" => "string",
                        m => m,
                    }
                })
                .collect();
            if !kinds.contains(&"boolean") {
                json!(true)
            } else if !kinds.contains(&"array") {
                json!([])
            } else {
                return None;
            }
        }
        _ => return None,
    })
}

/// Where a member sits, for mutating it: a path of keys and indices.
#[derive(Clone)]
enum Step {
    Key(String),
    Index(usize),
}

fn at_mut<'v>(v: &'v mut Value, path: &[Step]) -> &'v mut Value {
    path.iter().fold(v, |v, s| match s {
        Step::Key(k) => &mut v[k.as_str()],
        Step::Index(i) => &mut v[*i],
    })
}

/// The members of object type `t` that apply to `obj` (base and the
/// selected variant's): (name, type, optional).
fn members_of(types: &Types, t: &Value, obj: &Map<String, Value>) -> Vec<(String, String, bool)> {
    let mut out: Vec<(String, String, bool)> = t["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap().to_string(),
                m["type"].as_str().unwrap().to_string(),
                m.get("default").is_some(),
            )
        })
        .collect();
    if let Some(tag) = t.get("tag").and_then(Value::as_str) {
        if let Some(case) = obj.get(tag).and_then(Value::as_str) {
            if let Some(v) = t["variants"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["case"] == case)
            {
                out.extend(members_of(
                    types,
                    types.get(v["type"].as_str().unwrap()),
                    obj,
                ));
            }
        }
    }
    out
}

/// The type a value of type `name` is checked as (an alternate's branch
/// for that JSON type), if it is an object type.
fn object_type_of<'t>(types: &'t Types, name: &str, v: &Value) -> Option<&'t Value> {
    let t = types.get(name);
    match t["meta-type"].as_str().unwrap() {
        "object" => Some(t),
        "alternate" if v.is_object() => t["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| types.get(b["type"].as_str().unwrap()))
            .find(|bt| bt["meta-type"] == "object"),
        _ => None,
    }
}

/// Every single-fault mutation of `root` at the object at `path` (of
/// object type `t`), recursing into member objects and arrays.
fn mutate(types: &Types, root: &Value, path: &[Step], t: &Value, out: &mut Vec<Value>) {
    let obj = at_mut(&mut root.clone(), path).as_object().unwrap().clone();
    // An unexpected member.
    let mut m = root.clone();
    at_mut(&mut m, path)["zz-unexpected"] = json!(1);
    out.push(m);
    for (name, ty, optional) in members_of(types, t, &obj) {
        let mut here = path.to_vec();
        here.push(Step::Key(name.clone()));
        let Some(value) = obj.get(&name) else {
            // Absent optional member: add it with a wrong type.
            if let Some(w) = wrong(types, &ty) {
                let mut m = root.clone();
                at_mut(&mut m, path)[name.as_str()] = w;
                out.push(m);
            }
            continue;
        };
        if !optional {
            let mut m = root.clone();
            at_mut(&mut m, path).as_object_mut().unwrap().remove(&name);
            out.push(m);
        }
        if let Some(w) = wrong(types, &ty) {
            let mut m = root.clone();
            *at_mut(&mut m, &here) = w;
            out.push(m);
        }
        let tt = types.get(&ty);
        match tt["meta-type"].as_str().unwrap() {
            "enum" => {
                let mut m = root.clone();
                *at_mut(&mut m, &here) = json!("no-such-value");
                out.push(m);
            }
            "builtin" if tt["json-type"] == "int" => {
                let mut m = root.clone();
                *at_mut(&mut m, &here) = json!(1.5);
                out.push(m);
            }
            "array" => {
                let el = tt["element-type"].as_str().unwrap();
                if let Some(first) = value.as_array().and_then(|a| a.first()) {
                    let mut elem = here.clone();
                    elem.push(Step::Index(0));
                    if let Some(w) = wrong(types, el) {
                        let mut m = root.clone();
                        *at_mut(&mut m, &elem) = w;
                        out.push(m);
                    }
                    if let Some(et) = object_type_of(types, el, first) {
                        mutate(types, root, &elem, et, out);
                    }
                }
            }
            _ => {
                if let Some(ot) = object_type_of(types, &ty, value) {
                    mutate(types, root, &here, ot, out);
                }
            }
        }
    }
}

/// Whether QEMU's error text is one of its argument visitor's.
fn visitor_error(desc: &str) -> bool {
    (desc.starts_with("Parameter '")
        && (desc.ends_with("' is missing")
            || desc.ends_with("' is unexpected")
            || desc.contains("' does not accept value '")
            || desc.contains("' expects ")))
        || desc.starts_with("Invalid parameter type for '")
}

#[test]
fn our_check_agrees_with_qemu_storage_daemon() {
    if let Some(qsd) = Monitor::start() {
        differential(qsd, "qemu-storage-daemon");
    }
}

#[test]
fn our_check_agrees_with_qemu_system_x86_64() {
    if let Some(system) = Monitor::start_system() {
        differential(system, "qemu-system-x86_64 -machine none");
    }
}

/// Generates the argument objects from the peer's own schema, sends each,
/// and compares the peer's verdicts and texts with our check's.
fn differential(mut qsd: Monitor, peer: &str) {
    let reply = qsd.send(br#"{"execute":"query-qmp-schema"}"#);
    let raw = qmp_core::scan::validate(&reply, Default::default()).unwrap();
    let schema = Schema::from_reply(raw).unwrap();
    let mut storage = vec![0u32; schema.len()];
    let index = schema.index(&mut storage).unwrap();

    let parsed: Value = serde_json::from_slice(&reply).unwrap();
    let types = Types(
        parsed["return"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["name"].as_str().unwrap().to_string(), e.clone()))
            .collect(),
    );

    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut cases: Vec<(&str, Value)> = Vec::new();
    for &cmd in COMMANDS {
        let arg_type = types.get(cmd)["arg-type"].as_str().unwrap().to_string();
        let t = types.get(&arg_type);
        for round in 0..3 {
            let base = valid(&types, &arg_type, &mut rng, 0);
            cases.push((cmd, base.clone()));
            if round == 0 || t["members"].as_array().unwrap().len() > 2 {
                let mut mutations = Vec::new();
                mutate(&types, &base, &[], t, &mut mutations);
                cases.extend(mutations.into_iter().map(|m| (cmd, m)));
            }
        }
    }

    let (mut agree, mut verdicts) = (0usize, 0usize);
    let (mut texts_equal, mut texts) = (0usize, 0usize);
    let mut text_by_kind: HashMap<&str, (usize, usize)> = HashMap::new();
    let mut disagreements = Vec::new();
    let mut text_differences = Vec::new();
    let mut commands_seen = std::collections::HashSet::new();
    for (n, (cmd, mut args)) in cases.into_iter().enumerate() {
        // Unique node names, so that nodes added can be deleted.
        let node = format!("n{n}");
        if cmd == "blockdev-add" && args.get("node-name").is_some_and(Value::is_string) {
            args["node-name"] = json!(node);
        }
        let args_text = serde_json::to_string(&args).unwrap();
        let request = format!(r#"{{"execute":"{cmd}","arguments":{args_text}}}"#);
        let answer = qsd.send(request.as_bytes());
        let answer: Value = serde_json::from_slice(&answer).unwrap();
        let qemu_desc = answer["error"]["desc"].as_str().map(str::to_string);
        let qemu_rejects = qemu_desc.as_deref().is_some_and(visitor_error);
        if cmd == "blockdev-add" && answer.get("return").is_some() {
            let del =
                format!(r#"{{"execute":"blockdev-del","arguments":{{"node-name":"{node}"}}}}"#);
            assert_eq!(qsd.send(del.as_bytes()), b"{\"return\": {}}\r\n");
        }

        let ours_args = qmp_core::scan::validate(args_text.as_bytes(), Default::default()).unwrap();
        let ours = index.check(cmd, Some(ours_args));
        commands_seen.insert(cmd);
        verdicts += 1;
        if ours.is_err() == qemu_rejects {
            agree += 1;
        } else {
            disagreements.push(format!(
                "{cmd} {args_text}: qemu {:?}, ours {:?}",
                qemu_desc,
                ours.as_ref().err().map(|e| e.to_string())
            ));
        }
        if let (Err(e), true) = (&ours, qemu_rejects) {
            let kind = match e.kind() {
                CheckErrorKind::Missing { .. } => "missing",
                CheckErrorKind::Unexpected => "unexpected",
                CheckErrorKind::WrongType {
                    expected: Expected::Alternate(_),
                } => continue,
                CheckErrorKind::WrongType { .. } => "wrong type",
                CheckErrorKind::NotInEnum => "enum value",
                _ => continue,
            };
            let ours_text = e.to_string();
            let entry = text_by_kind.entry(kind).or_default();
            texts += 1;
            entry.1 += 1;
            if Some(ours_text.as_str()) == qemu_desc.as_deref() {
                texts_equal += 1;
                entry.0 += 1;
            } else {
                // The only texts introspection cannot predict: QEMU's
                // uint64 and size members say `Parameter 'x' expects
                // uint64` (every integer type introspects as int).
                assert!(
                    qemu_desc
                        .as_deref()
                        .is_some_and(|d| d.contains("' expects ")),
                    "{cmd} {args_text}: qemu {qemu_desc:?}, ours {ours_text:?}"
                );
                text_differences.push(format!(
                    "{cmd} {args_text}: qemu {:?}, ours {ours_text:?}",
                    qemu_desc
                ));
            }
        }
    }
    println!(
        "{peer}: verdicts: {agree}/{verdicts} agree, over {} commands",
        commands_seen.len()
    );
    println!("texts: {texts_equal}/{texts} equal");
    let mut kinds: Vec<_> = text_by_kind.into_iter().collect();
    kinds.sort();
    for (kind, (eq, n)) in kinds {
        println!("  {kind}: {eq}/{n}");
    }
    for d in &disagreements {
        println!("DISAGREE {d}");
    }
    for d in &text_differences {
        println!("TEXT {d}");
    }
    assert!(
        verdicts >= 500 && commands_seen.len() >= 20,
        "{verdicts} cases"
    );
    assert!(
        disagreements.is_empty(),
        "{} disagreements",
        disagreements.len()
    );
}
