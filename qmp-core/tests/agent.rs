//! Agent tests: exact bytes out for bytes in, compared with what QEMU 10
//! answers (QMP-REFERENCE.md §0, §2, §3, §8, §9).

use qmp_core::agent::{
    Agent, AgentBuffers, AgentConfig, CommandSpec, Emitted, EventOut, Incoming, Reply, ReplyToken,
    Throttle,
};
use qmp_core::scan::{validate, FramerConfig};
use qmp_core::Instant;
use rand::{rngs::SmallRng, Rng, SeedableRng};

const GREETING: &[u8] = b"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 2, \"minor\": 0, \"major\": 10}, \"package\": \"Debian 1:10.0.2+ds-2+deb13u1~bpo12+1\"}, \"capabilities\": [\"oob\"]}}\r\n";
const VERSION: &[u8] =
    br#"{"qemu":{"major":10,"minor":0,"micro":2},"package":"Debian 1:10.0.2+ds-2+deb13u1~bpo12+1"}"#;
const VERSION_OUT: &str = r#"{"qemu": {"micro": 2, "minor": 0, "major": 10}, "package": "Debian 1:10.0.2+ds-2+deb13u1~bpo12+1"}"#;

const COMMANDS: &[CommandSpec<'static>] = &[
    CommandSpec::new("query-version"),
    CommandSpec::new("query-name"),
    CommandSpec::new("query-status"),
    CommandSpec::new("query-cpus-fast"),
    CommandSpec::new("human-monitor-command"),
    CommandSpec::new("blockdev-add"),
    CommandSpec::new("x-sleep").oob(),
    CommandSpec::new("migrate-pause").oob(),
    CommandSpec::new("stop"),
];

/// What the test application does with a request.
enum Act {
    Now,
    Defer,
}

/// A small application: answers like QEMU, except commands listed in
/// `slow`, which it leaves pending.
fn answer(agent: &mut Agent<'_, '_>, slow: &[&str], deferred: &mut Vec<ReplyToken>) {
    while let Some(req) = agent.poll_request() {
        let Incoming {
            token,
            name,
            arguments,
            ..
        } = req;
        let act = if slow.iter().any(|s| name.eq_str(s)) {
            Act::Defer
        } else {
            Act::Now
        };
        if let Act::Defer = act {
            deferred.push(token);
            continue;
        }
        // Argument checks as QEMU's generated marshallers do them.
        let unexpected = arguments
            .and_then(|a| a.members().next())
            .filter(|_| !name.eq_str("human-monitor-command"))
            .map(|(k, _)| k.to_string());
        let version = validate(VERSION, FramerConfig::new()).unwrap();
        let empty = validate(b"{}", FramerConfig::new()).unwrap();
        let r = if let Some(k) = unexpected {
            let desc = format!("Parameter '{k}' is unexpected");
            agent.complete(
                token,
                Reply::Error {
                    class: "GenericError",
                    desc: &desc,
                },
            )
        } else if name.eq_str("query-version") {
            agent.complete(token, Reply::Return(&version))
        } else if name.eq_str("human-monitor-command")
            && arguments.and_then(|a| a.get("command-line")).is_none()
        {
            agent.complete(
                token,
                Reply::Error {
                    class: "GenericError",
                    desc: "Parameter 'command-line' is missing",
                },
            )
        } else if name.eq_str("migrate-pause") {
            agent.complete(
                token,
                Reply::Error {
                    class: "GenericError",
                    desc: "migrate-pause is currently only supported during postcopy-active or postcopy-recover state",
                },
            )
        } else {
            agent.complete(token, Reply::Return(&empty))
        };
        r.unwrap();
    }
}

struct Harness {
    fb: Vec<u8>,
    qb: Vec<u8>,
    ob: Vec<u8>,
    tb: Vec<u8>,
}

impl Harness {
    fn new() -> Self {
        Harness {
            fb: vec![0; 4096],
            qb: vec![0; 16384],
            ob: vec![0; 16384],
            tb: vec![0; 1024],
        }
    }

    fn agent<'a>(&'a mut self, cfg: AgentConfig<'a>) -> Agent<'a, 'a> {
        let bufs =
            AgentBuffers::new(&mut self.fb, &mut self.qb, &mut self.ob).with_throttle(&mut self.tb);
        Agent::new(cfg, bufs).unwrap()
    }
}

fn config() -> AgentConfig<'static> {
    AgentConfig::new((10, 0, 2), "Debian 1:10.0.2+ds-2+deb13u1~bpo12+1", COMMANDS)
}

fn drain(agent: &mut Agent<'_, '_>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 97]; // an odd size: partial transmits
    while let Some(n) = agent.poll_transmit(&mut buf) {
        out.extend_from_slice(&buf[..n]);
    }
    out
}

/// Feeds `input` in chunks, answering requests as they come, and returns
/// all output (greeting included).
fn exchange(agent: &mut Agent<'_, '_>, input: &[u8], sizes: &mut dyn FnMut() -> usize) -> Vec<u8> {
    let mut out = drain(agent);
    let mut rest = input;
    let mut deferred = Vec::new();
    while !rest.is_empty() {
        let n = sizes().clamp(1, rest.len());
        let mut chunk = &rest[..n];
        rest = &rest[n..];
        while !chunk.is_empty() {
            let used = agent.handle_input(Instant::ZERO, chunk);
            chunk = &chunk[used..];
            answer(agent, &[], &mut deferred);
            out.extend(drain(agent));
        }
    }
    out
}

/// Runs a whole conversation in every chunking and checks they agree.
fn conversation(input: &[u8]) -> String {
    let mut h = Harness::new();
    let whole = exchange(&mut h.agent(config()), input, &mut || usize::MAX);
    let bytewise = exchange(&mut h.agent(config()), input, &mut || 1);
    assert_eq!(
        String::from_utf8_lossy(&whole),
        String::from_utf8_lossy(&bytewise)
    );
    let mut rng = SmallRng::seed_from_u64(7);
    for _ in 0..50 {
        let max = rng.random_range(2..40);
        let mut r = SmallRng::seed_from_u64(rng.random());
        let got = exchange(&mut h.agent(config()), input, &mut || {
            r.random_range(1..max)
        });
        assert_eq!(whole, got);
    }
    assert!(whole.starts_with(GREETING));
    String::from_utf8(whole[GREETING.len()..].to_vec()).expect("ASCII output")
}

const NEG: &str = "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"Expecting capabilities negotiation with 'qmp_capabilities'\"}}\r\n";

fn gen(desc: &str) -> String {
    format!("{{\"error\": {{\"class\": \"GenericError\", \"desc\": \"{desc}\"}}}}\r\n")
}

#[test]
fn greeting_exact() {
    let mut h = Harness::new();
    let mut agent = h.agent(config());
    assert_eq!(drain(&mut agent), GREETING);
    // Without oob offered, an empty list; pretty mode like pretty=on.
    let mut h = Harness::new();
    let cfg = config()
        .with_oob(false)
        .with_style(qmp_core::encode::Style::QMP_PRETTY);
    let mut agent = h.agent(cfg);
    let out = String::from_utf8(drain(&mut agent)).unwrap();
    assert_eq!(
        out,
        "{\r\n    \"QMP\": {\r\n        \"version\": {\r\n            \"qemu\": {\r\n                \"micro\": 2,\r\n                \"minor\": 0,\r\n                \"major\": 10\r\n            },\r\n            \"package\": \"Debian 1:10.0.2+ds-2+deb13u1~bpo12+1\"\r\n        },\r\n        \"capabilities\": [\r\n        ]\r\n    }\r\n}\r\n"
    );
}

#[test]
fn observed_before_negotiation() {
    let out = conversation(
        b"{\"execute\":\"query-version\"}{\"execute\":\"nope\",\"id\":1}\
          {\"execute\":\"qmp_capabilities\",\"arguments\":{\"enable\":\"oob\"},\"id\":\"bad-enable\"}\
          {\"execute\":\"qmp_capabilities\",\"arguments\":{\"enable\":[\"bogus\"]}}\
          {\"execute\":\"qmp_capabilities\",\"arguments\":{\"enable\":[1]}}\
          {\"execute\":\"qmp_capabilities\",\"arguments\":{\"enable\":[],\"x\":1}}\
          {\"exec-oob\":\"migrate-pause\",\"id\":2}\
          {\"execute\":\"qmp_capabilities\",\"arguments\":{\"enable\":[\"oob\"]}}\
          {\"execute\":\"qmp_capabilities\"}",
    );
    let expected = [
        NEG.to_string(),
        format!("{{\"id\": 1, {}", &NEG[1..]),
        "{\"id\": \"bad-enable\", \"error\": {\"class\": \"GenericError\", \"desc\": \"Invalid parameter type for 'enable', expected: array\"}}\r\n".to_string(),
        gen("Parameter 'null' does not accept value 'bogus'"),
        gen("Invalid parameter type for 'enable[0]', expected: string"),
        gen("Parameter 'x' is unexpected"),
        "{\"id\": 2, \"error\": {\"class\": \"GenericError\", \"desc\": \"QMP input member 'exec-oob' is unexpected\"}}\r\n".to_string(),
        "{\"return\": {}}\r\n".to_string(),
        "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"Capabilities negotiation is already complete, command ignored\"}}\r\n".to_string(),
    ]
    .concat();
    assert_eq!(out, expected);
}

#[test]
fn capability_not_offered() {
    let mut h = Harness::new();
    let cfg = config().with_oob(false);
    let mut agent = h.agent(cfg);
    let out = exchange(
        &mut agent,
        b"{\"execute\":\"qmp_capabilities\",\"arguments\":{\"enable\":[\"oob\",\"oob\"]},\"id\":3}{\"execute\":\"query-name\"}",
        &mut || 5,
    );
    let out = String::from_utf8(out).unwrap();
    assert!(out.ends_with(&format!(
        "{{\"id\": 3, \"error\": {{\"class\": \"GenericError\", \"desc\": \"Capability oob, oob not available\"}}}}\r\n{NEG}"
    )));
    assert!(
        !agent.is_negotiated(),
        "a failed negotiation leaves the session negotiating"
    );
}

fn malformed_matrix(recovered: &str) -> (Vec<u8>, String) {
    let mut input = Vec::new();
    let mut expected = String::new();
    let cases: &[(&[u8], &str)] = &[
        (b"{]\n", "JSON parse error, expecting value"),
        (b"{\xff", "JSON parse error, stray '\\uFFFD'"),
        (b"{\x01", "JSON parse error, stray '\\u0001'"),
        (b"{'bad \xff", "JSON parse error, stray ''bad \\uFFFD'"),
        (
            b"{'execute': 'nonexistent', 'id':'\n",
            "JSON parse error, stray ''\\n'",
        ),
        (b"%p", "JSON parse error, stray '%'"),
    ];
    for (bytes, desc) in cases {
        input.extend_from_slice(bytes);
        expected.push_str(&gen(desc));
        input.extend_from_slice(b"{ 'execute': 'no-such-cmd' }\n");
        expected.push_str(recovered);
    }
    let rest: &[(&[u8], &str)] = &[
        (b"null\n", "QMP input must be a JSON object"),
        (b"{}\n", "QMP input lacks member 'execute'"),
        (
            b"{\"execute\":true}\n",
            "QMP input member 'execute' must be a string",
        ),
        (
            b"{\"execute\":\"no-such-cmd\",\"arguments\":[]}\n",
            "QMP input member 'arguments' must be an object",
        ),
        (
            b"{\"execute\":\"no-such-cmd\",\"extra\":true}\n",
            "QMP input member 'extra' is unexpected",
        ),
    ];
    for (bytes, desc) in rest {
        input.extend_from_slice(bytes);
        expected.push_str(&gen(desc));
    }
    (input, expected)
}

#[test]
#[cfg_attr(
    not(feature = "qdict-order"),
    ignore = "asserts the behaviour of `qdict-order`"
)]
fn qmp_test_protocol_and_malformed_matrix() {
    // qmp-test.c test_qmp_protocol: before the handshake, the matrix, the
    // handshake, again, query-version, the matrix after, query-name with a
    // cookie id, human-monitor-command without its argument.
    let (m1, e1) = malformed_matrix(NEG);
    let after = "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command no-such-cmd has not been found\"}}\r\n";
    let (m2, e2) = malformed_matrix(after);
    let mut input = b"{ \"execute\": \"query-version\" }\n".to_vec();
    input.extend(&m1);
    input.extend_from_slice(b"{\"execute\":\"qmp_capabilities\"}\n{\"execute\":\"qmp_capabilities\"}\n{\"execute\":\"query-version\"}\n");
    input.extend(&m2);
    input.extend_from_slice(b"{\"execute\":\"query-name\",\"id\":\"cookie#1\"}\n{\"execute\":\"human-monitor-command\",\"id\":2}\n");
    let out = conversation(&input);
    let expected = [
        NEG,
        &e1,
        "{\"return\": {}}\r\n",
        "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"Capabilities negotiation is already complete, command ignored\"}}\r\n",
        &format!("{{\"return\": {VERSION_OUT}}}\r\n"),
        &e2,
        "{\"return\": {}, \"id\": \"cookie#1\"}\r\n",
        "{\"id\": 2, \"error\": {\"class\": \"GenericError\", \"desc\": \"Parameter 'command-line' is missing\"}}\r\n",
    ]
    .concat();
    assert_eq!(out, expected);
}

#[test]
#[cfg_attr(
    not(all(feature = "exact-floats", feature = "qdict-order")),
    ignore = "asserts the behaviour of `exact-floats` and `qdict-order`"
)]
fn observed_after_negotiation() {
    let input: &[u8] = b"{\"execute\":\"qmp_capabilities\",\"arguments\":{\"enable\":[\"oob\"]}}\
        [1,2]null\n42\n\"str\"\ntrue {\"exec\":1}{\"execute\":1}{}}}\
        {\"execute\":\"query-version\",\"id\":{\"a\":[1,\"x\"]},\"foo\":1}\
        {\"exec-oob\":\"query-version\",\"id\":5}\
        {\"exec-oob\":\"query-version\",\"execute\":\"query-version\",\"id\":6}\
        {\"execute\":\"query-version\",\"control\":{\"run-oob\":true},\"id\":8}\
        {\"execute\":\"\",\"id\":9}\
        {\"execute\":\"query-version\",\"arguments\":{\"x\":1},\"id\":10}\
        \xff\n%p\nAbc{\"execute\":\"z\"}\
        {\"execute\":\"nope\",\"id\":\"x\"}\
        {\"execute\":\"query-version\"} {\"execute\":\"query-version\",\"id\":2}\
        {\"execute\":\"query-version\",\"id\":\"\\u00e9\"}\
        {\"execute\":\"query-version\",\"id\":0.1}\
        {\"execute\":\"no-such-cmd\",\"id\":[1,{\"b\":2,\"a\":1}]}\
        {\"exec-oob\":\"x\",\"execute\":\"y\",\"id\":1}\
        1 2\n{\"a\": @}\
        {\"execute\":true,\"extra\":1}{\"exec-oob\":\"query-cpus-fast\"}\
        {\"execute\":\"x\",\"arguments\":null}";
    let out = conversation(input);
    let obj = gen("QMP input must be a JSON object");
    let expected = [
        "{\"return\": {}}\r\n",
        &obj,
        &obj,
        &obj,
        &obj,
        &obj,
        &gen("QMP input member 'exec' is unexpected"),
        &gen("QMP input member 'execute' must be a string"),
        &gen("QMP input lacks member 'execute'"),
        &gen("JSON parse error, expecting value"),
        &gen("JSON parse error, expecting value"),
        "{\"id\": {\"a\": [1, \"x\"]}, \"error\": {\"class\": \"GenericError\", \"desc\": \"QMP input member 'foo' is unexpected\"}}\r\n",
        "{\"id\": 5, \"error\": {\"class\": \"GenericError\", \"desc\": \"The command query-version does not support OOB\"}}\r\n",
        "{\"id\": 6, \"error\": {\"class\": \"GenericError\", \"desc\": \"QMP input member 'execute' clashes with 'exec-oob'\"}}\r\n",
        "{\"id\": 8, \"error\": {\"class\": \"GenericError\", \"desc\": \"QMP input member 'control' is unexpected\"}}\r\n",
        "{\"id\": 9, \"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command  has not been found\"}}\r\n",
        "{\"id\": 10, \"error\": {\"class\": \"GenericError\", \"desc\": \"Parameter 'x' is unexpected\"}}\r\n",
        &gen("JSON parse error, stray '\\uFFFD'"),
        &gen("JSON parse error, stray '%'"),
        &gen("JSON parse error, stray 'A'"),
        "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command z has not been found\"}}\r\n",
        "{\"id\": \"x\", \"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command nope has not been found\"}}\r\n",
        &format!("{{\"return\": {VERSION_OUT}}}\r\n"),
        &format!("{{\"return\": {VERSION_OUT}, \"id\": 2}}\r\n"),
        &format!("{{\"return\": {VERSION_OUT}, \"id\": \"\\u00E9\"}}\r\n"),
        &format!("{{\"return\": {VERSION_OUT}, \"id\": 0.10000000000000001}}\r\n"),
        "{\"id\": [1, {\"a\": 1, \"b\": 2}], \"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command no-such-cmd has not been found\"}}\r\n",
        "{\"id\": 1, \"error\": {\"class\": \"GenericError\", \"desc\": \"QMP input member 'execute' clashes with 'exec-oob'\"}}\r\n",
        &obj,
        &obj,
        &gen("JSON parse error, stray '@'"),
        &gen("JSON parse error, expecting value"),
        &gen("QMP input member 'extra' is unexpected"),
        &gen("The command query-cpus-fast does not support OOB"),
        &gen("QMP input member 'arguments' must be an object"),
    ]
    .concat();
    assert_eq!(out, expected);
}

fn negotiated_oob<'a>(h: &'a mut Harness) -> Agent<'a, 'a> {
    let mut agent = h.agent(config());
    let used = agent.handle_input(
        Instant::ZERO,
        b"{\"execute\":\"qmp_capabilities\",\"arguments\":{\"enable\":[\"oob\"]}}",
    );
    assert_eq!(used, 61);
    assert!(agent.oob_enabled());
    let out = drain(&mut agent);
    assert!(out.ends_with(b"{\"return\": {}}\r\n"));
    agent
}

#[test]
fn oob_overtakes_slow_in_band() {
    // qmp-test.c test_qmp_oob: a blocking in-band command, a quick in-band
    // command, then an OOB one; the OOB reply comes first.
    let mut h = Harness::new();
    let mut agent = negotiated_oob(&mut h);
    let mut deferred = Vec::new();
    let input = b"{\"execute\":\"blockdev-add\",\"id\":\"ib-blocks-1\",\"arguments\":{\"driver\":\"blkdebug\"}}\
        {\"execute\":\"query-name\",\"id\":\"ib-quick-1\"}\
        {\"exec-oob\":\"migrate-pause\",\"id\":\"oob-1\"}";
    let mut rest = &input[..];
    let mut out = Vec::new();
    while !rest.is_empty() {
        let used = agent.handle_input(Instant::ZERO, rest);
        rest = &rest[used..];
        answer(&mut agent, &["blockdev-add"], &mut deferred);
        out.extend(drain(&mut agent));
        assert!(used > 0, "stalled");
    }
    assert_eq!(
        String::from_utf8(out.clone()).unwrap(),
        "{\"id\": \"oob-1\", \"error\": {\"class\": \"GenericError\", \"desc\": \"migrate-pause is currently only supported during postcopy-active or postcopy-recover state\"}}\r\n"
    );
    // Unblock: the slow one completes, then the quick one runs.
    let empty = validate(b"{}", FramerConfig::new()).unwrap();
    agent
        .complete(deferred.pop().unwrap(), Reply::Return(&empty))
        .unwrap();
    answer(&mut agent, &[], &mut deferred);
    assert_eq!(
        String::from_utf8(drain(&mut agent)).unwrap(),
        "{\"return\": {}, \"id\": \"ib-blocks-1\"}\r\n{\"return\": {}, \"id\": \"ib-quick-1\"}\r\n"
    );

    // "Even malformed in-band command fails in-band", in order, with its id.
    let input = b"{\"execute\":\"blockdev-add\",\"id\":\"blocks-2\"}{\"id\":\"err-2\"}{ ]";
    assert_eq!(agent.handle_input(Instant::ZERO, input), input.len());
    answer(&mut agent, &["blockdev-add"], &mut deferred);
    assert!(
        drain(&mut agent).is_empty(),
        "nothing may overtake the slow in-band command"
    );
    agent
        .complete(deferred.pop().unwrap(), Reply::Return(&empty))
        .unwrap();
    assert_eq!(
        String::from_utf8(drain(&mut agent)).unwrap(),
        [
            "{\"return\": {}, \"id\": \"blocks-2\"}\r\n",
            "{\"id\": \"err-2\", \"error\": {\"class\": \"GenericError\", \"desc\": \"QMP input lacks member 'execute'\"}}\r\n",
            &gen("JSON parse error, expecting value"),
        ]
        .concat()
    );
}

#[test]
fn oob_request_can_complete_later() {
    let mut h = Harness::new();
    let mut agent = negotiated_oob(&mut h);
    let input = b"{\"exec-oob\":\"x-sleep\",\"arguments\":{\"ms\":5},\"id\":\"s\"}{\"execute\":\"query-name\",\"id\":1}";
    let used = agent.handle_input(Instant::ZERO, input);
    // Input pauses while the OOB request is being handled.
    assert_eq!(used, input.len() - 31);
    let req = agent.poll_request().unwrap();
    assert!(req.name.eq_str("x-sleep"));
    assert_eq!(req.arguments.unwrap().get("ms").unwrap().as_u64(), Some(5));
    let token = req.token;
    assert!(agent.poll_request().is_none());
    assert_eq!(agent.handle_input(Instant::ZERO, &input[used..]), 0);
    let empty = validate(b"{}", FramerConfig::new()).unwrap();
    // (A token is answered once: it is moved into complete.)
    agent.complete(token, Reply::Return(&empty)).unwrap();
    assert_eq!(agent.handle_input(Instant::ZERO, &input[used..]), 31);
    let mut d = Vec::new();
    answer(&mut agent, &[], &mut d);
    assert_eq!(
        String::from_utf8(drain(&mut agent)).unwrap(),
        "{\"return\": {}, \"id\": \"s\"}\r\n{\"return\": {}, \"id\": 1}\r\n"
    );
}

#[test]
fn backpressure_at_eight_in_band_requests() {
    let mut h = Harness::new();
    let mut agent = negotiated_oob(&mut h);
    let one = b"{\"execute\":\"blockdev-add\",\"id\":10}";
    let input: Vec<u8> = (10..22)
        .flat_map(|i| format!("{{\"execute\":\"blockdev-add\",\"id\":{i}}}").into_bytes())
        .collect();
    let mut deferred = Vec::new();
    let used = agent.handle_input(Instant::ZERO, &input);
    answer(&mut agent, &["blockdev-add"], &mut deferred);
    assert_eq!(used, 8 * one.len(), "exactly 8 requests consumed");
    assert_eq!(agent.queued(), 8);
    assert_eq!(deferred.len(), 1, "one runs, seven wait");
    assert_eq!(
        agent.handle_input(Instant::ZERO, &input[used..]),
        0,
        "no input while full"
    );
    // Completing one resumes consumption; nothing is dropped.
    let empty = validate(b"{}", FramerConfig::new()).unwrap();
    let mut consumed = used;
    let mut replies = 0;
    while replies < 12 {
        let t = deferred.remove(0);
        agent.complete(t, Reply::Return(&empty)).unwrap();
        consumed += agent.handle_input(Instant::ZERO, &input[consumed..]);
        answer(&mut agent, &["blockdev-add"], &mut deferred);
        replies += String::from_utf8(drain(&mut agent))
            .unwrap()
            .matches("return")
            .count();
    }
    assert_eq!(consumed, input.len());
    // Without OOB, QEMU's lock-step: one at a time.
    let mut h = Harness::new();
    let mut agent = h.agent(config());
    agent.handle_input(Instant::ZERO, b"{\"execute\":\"qmp_capabilities\"}");
    let used = agent.handle_input(Instant::ZERO, &input);
    assert_eq!(used, one.len());
}

#[test]
fn events_dropped_before_negotiation_and_throttled() {
    let mut h = Harness::new();
    let cfg = config();
    let rules = [Throttle::new("RTC_CHANGE", 1000)];
    let cfg = cfg.with_throttle(&rules);
    let mut agent = h.agent(cfg);
    drain(&mut agent);
    let stop = EventOut::new("STOP").timestamp(1700000000, 5);
    assert_eq!(agent.emit(Instant::ZERO, &stop), Ok(Emitted::NotNegotiated));
    assert!(drain(&mut agent).is_empty());
    agent.handle_input(Instant::ZERO, b"{\"execute\":\"qmp_capabilities\"}");
    drain(&mut agent);
    assert_eq!(agent.emit(Instant::ZERO, &stop), Ok(Emitted::Sent));
    assert_eq!(
        drain(&mut agent),
        b"{\"timestamp\": {\"seconds\": 1700000000, \"microseconds\": 5}, \"event\": \"STOP\"}\r\n"
    );
    // 100 throttled events in one window: the first at once, the last when
    // the window ends; exactly 2 messages.
    let mut offsets = Vec::new();
    for i in 0..100i64 {
        let text = format!("{{\"offset\":{i}}}");
        let data = validate(text.as_bytes(), FramerConfig::new()).unwrap();
        let ev = EventOut::new("RTC_CHANGE")
            .data(&data)
            .timestamp(1700000000 + i, 0);
        offsets.push(agent.emit(Instant::from_millis(i as u64 * 5), &ev).unwrap());
        agent.handle_timeout(Instant::from_millis(i as u64 * 5));
    }
    assert_eq!(offsets[0], Emitted::Sent);
    assert!(offsets[1..].iter().all(|e| *e == Emitted::Throttled));
    assert_eq!(agent.poll_timeout(), Some(Instant::from_millis(1000)));
    agent.handle_timeout(Instant::from_millis(999));
    let first = String::from_utf8(drain(&mut agent)).unwrap();
    assert_eq!(first, "{\"timestamp\": {\"seconds\": 1700000000, \"microseconds\": 0}, \"event\": \"RTC_CHANGE\", \"data\": {\"offset\": 0}}\r\n");
    agent.handle_timeout(Instant::from_millis(1000));
    let last = String::from_utf8(drain(&mut agent)).unwrap();
    assert_eq!(last, "{\"timestamp\": {\"seconds\": 1700000099, \"microseconds\": 0}, \"event\": \"RTC_CHANGE\", \"data\": {\"offset\": 99}}\r\n");
    // The window re-armed; with nothing pending it then closes.
    assert_eq!(agent.poll_timeout(), Some(Instant::from_millis(2000)));
    agent.handle_timeout(Instant::from_millis(2000));
    assert_eq!(agent.poll_timeout(), None);
    assert!(drain(&mut agent).is_empty());
}

#[test]
fn output_full_is_reported_not_dropped() {
    let mut fb = vec![0u8; 256];
    let mut qb = vec![0u8; 512];
    let mut ob = vec![0u8; 300];
    let mut agent = Agent::new(config(), AgentBuffers::new(&mut fb, &mut qb, &mut ob)).unwrap();
    agent.handle_input(Instant::ZERO, b"{\"execute\":\"qmp_capabilities\"}");
    let ev = EventOut::new("STOP").timestamp(1, 2);
    // Greeting and the negotiation reply are still pending: fill the rest.
    let mut sent = 0;
    let err = loop {
        match agent.emit(Instant::ZERO, &ev) {
            Ok(_) => sent += 1,
            Err(e) => break e,
        }
    };
    assert!(
        matches!(err, qmp_core::agent::EmitError::OutputFull { required: 67 }),
        "{err:?}"
    );
    let out = drain(&mut agent);
    assert_eq!(
        String::from_utf8(out).unwrap().matches("STOP").count(),
        sent
    );
    assert!(agent.emit(Instant::ZERO, &ev).is_ok());
    // Too small a queue buffer is refused up front.
    let mut qb = vec![0u8; 100];
    let mut ob = vec![0u8; 300];
    let mut fb = vec![0u8; 256];
    let e = Agent::new(config(), AgentBuffers::new(&mut fb, &mut qb, &mut ob)).unwrap_err();
    assert_eq!(
        e,
        qmp_core::agent::SetupError::Queue(qmp_core::InsufficientSize { required: 329 })
    );
}

#[test]
fn query_commands_from_table() {
    let cmds = [CommandSpec::new("query-commands"), CommandSpec::new("stop")];
    let mut h = Harness::new();
    let mut agent = h.agent(AgentConfig::new((10, 0, 2), "", &cmds));
    let out = exchange(
        &mut agent,
        b"{\"execute\":\"qmp_capabilities\"}{\"execute\":\"query-commands\",\"id\":1}",
        &mut || 7,
    );
    assert!(String::from_utf8(out).unwrap().ends_with(
        "{\"return\": [{\"name\": \"qmp_capabilities\"}, {\"name\": \"query-commands\"}, {\"name\": \"stop\"}], \"id\": 1}\r\n"
    ));
}

#[test]
fn report_agent_size() {
    // State beyond the caller's buffers (printed for the closing notes).
    let size = std::mem::size_of::<Agent<'static, 'static>>();
    println!("size_of::<Agent>() = {size} bytes");
    // 1,040: 16 bytes of it are the declared events (AgentConfig::with_events).
    assert!(size <= 1040, "{size}");
}

fn generic(desc: &str) -> String {
    format!("{{\"error\": {{\"class\": \"GenericError\", \"desc\": \"{desc}\"}}}}\r\n")
}

#[test]
#[cfg_attr(
    not(feature = "duplicate-keys"),
    ignore = "asserts the behaviour of `duplicate-keys`"
)]
fn qemu_lexer_streamer_parser_rules_exact_replies() {
    // Each answered as qemu-storage-daemon 10.0.2 answers it (the same
    // bytes are compared with the real daemon in
    // qmp-std/tests/conformance_qsd.rs).
    let dup = generic("JSON parse error, duplicate key");
    let expecting = generic("JSON parse error, expecting value");
    let mut input = b"{\"execute\":\"qmp_capabilities\"}".to_vec();
    let mut expected = String::from("{\"return\": {}}\r\n");
    // A duplicate key in `arguments`, and deep inside `id`: no `return`
    // echoing the duplicate, and no id (the request was never parsed).
    input.extend_from_slice(br#"{"execute":"query-status","arguments":{"a":1,"a":2},"id":3}"#);
    expected.push_str(&dup);
    input.extend_from_slice(br#"{"execute":"query-status","id":{"a":1,"b":{"c":1,"c":2}}}"#);
    expected.push_str(&dup);
    // Distinct keys at every depth are fine.
    input.extend_from_slice(br#"{"execute":"query-status","id":{"a":1,"b":{"a":1,"b":2}}}"#);
    expected.push_str("{\"return\": {}, \"id\": {\"a\": 1, \"b\": {\"a\": 1, \"b\": 2}}}\r\n");
    // 1025 `[` then 1025 `]`: the depth error, then each `]` on its own.
    input.extend(std::iter::repeat_n(b'[', 1025));
    input.extend(std::iter::repeat_n(b']', 1025));
    expected.push_str(&generic("JSON nesting depth limit exceeded"));
    expected.push_str(&expecting.repeat(1025));
    // NUL: C's `%s` ends the token text there.
    input.extend_from_slice(b"\x00\n\"ab\x00\n");
    expected.push_str(&generic("JSON parse error, stray ''"));
    expected.push_str(&generic("JSON parse error, stray '\\\"ab'"));
    input.extend_from_slice(br#"{"execute":"query-status","id":9}"#);
    expected.push_str("{\"return\": {}, \"id\": 9}\r\n");
    assert_eq!(conversation(&input), expected);
}

#[test]
#[cfg_attr(miri, ignore = "64 MiB of input")]
fn unterminated_string_past_64_mib_is_cut_and_the_next_command_answered() {
    // QEMU's lexer cuts a token at 64 MiB + 1 bytes and reports the size
    // limit; the 100 `a` after the cut are a keyword ended by `{`.
    let mut input = b"{\"execute\":\"qmp_capabilities\"}{\"execute\":\"x\",\"id\":\"".to_vec();
    input.extend(std::iter::repeat_n(b'a', (64 << 20) + 100));
    input.extend_from_slice(br#"{"execute":"query-status","id":1}"#);
    let expected = [
        "{\"return\": {}}\r\n".to_string(),
        generic("JSON token size limit exceeded"),
        generic(&format!(
            "JSON parse error, invalid keyword '{}'",
            "a".repeat(100)
        )),
        "{\"return\": {}, \"id\": 1}\r\n".to_string(),
    ]
    .concat();
    for size in [usize::MAX, 1 << 16, 4093] {
        let mut h = Harness::new();
        let out = exchange(&mut h.agent(config()), &input, &mut || size);
        assert_eq!(
            String::from_utf8_lossy(&out[GREETING.len()..]),
            expected,
            "chunks of {size}"
        );
    }
}
