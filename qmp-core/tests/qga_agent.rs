//! The agent in guest-agent mode, against the recorded qemu-ga 7.2 session:
//! the same request bytes must produce byte-identical replies.
#![cfg(feature = "qga")]

use qmp_core::agent::{Agent, AgentBuffers, AgentConfig, CommandSpec, Reply};
use qmp_core::encode::Verbatim;
use qmp_core::scan::{validate, FramerConfig};
use qmp_core::Instant;
use rand::{rngs::SmallRng, Rng, SeedableRng};

const C2S: &[u8] = include_bytes!("data/qga-7.2.c2s");
const S2C: &[u8] = include_bytes!("data/qga-7.2.s2c");

const COMMANDS: &[CommandSpec<'static>] = &[
    CommandSpec::new("guest-sync-delimited"),
    CommandSpec::new("guest-sync"),
    CommandSpec::new("guest-ping"),
    CommandSpec::new("guest-info"),
    CommandSpec::new("guest-get-time"),
    CommandSpec::new("guest-get-host-name"),
    CommandSpec::new("guest-get-osinfo"),
    CommandSpec::new("guest-shutdown").no_success_response(),
];

/// The recorded reply line (without `\n`) whose text contains `needle`.
fn recorded_return(needle: &str) -> &'static [u8] {
    let line = S2C
        .split(|&b| b == b'\n')
        .find(|l| l.windows(needle.len()).any(|w| w == needle.as_bytes()))
        .expect("recorded");
    // {"return": VALUE} or {"return": VALUE, "id": ...}
    let start = b"{\"return\": ".len();
    let end = line
        .windows(8)
        .rposition(|w| w == b", \"id\": ")
        .unwrap_or(line.len() - 1);
    &line[start..end]
}

fn run(input: &[u8], sizes: &mut dyn FnMut() -> usize) -> Vec<u8> {
    let (mut f, mut q, mut o) = (vec![0u8; 4096], vec![0u8; 8192], vec![0u8; 8192]);
    let mut agent = Agent::new(
        AgentConfig::qga(COMMANDS),
        AgentBuffers::new(&mut f, &mut q, &mut o),
    )
    .unwrap();
    let mut out = Vec::new();
    let mut tx = [0u8; 333];
    let mut rest = input;
    let info = validate(recorded_return("supported_commands"), FramerConfig::new()).unwrap();
    let osinfo = validate(recorded_return("kernel-release"), FramerConfig::new()).unwrap();
    let host = validate(recorded_return("{\"host-name\""), FramerConfig::new()).unwrap();
    let empty = validate(b"{}", FramerConfig::new()).unwrap();
    while !rest.is_empty() {
        let n = sizes().clamp(1, rest.len());
        let mut chunk = &rest[..n];
        rest = &rest[n..];
        while !chunk.is_empty() {
            let used = agent.handle_input(Instant::ZERO, chunk);
            chunk = &chunk[used..];
            while let Some(req) = agent.poll_request() {
                let t = req.token;
                let n = req.name;
                let r = if n.eq_str("guest-info") {
                    agent.complete(t, Reply::Return(&Verbatim(info)))
                } else if n.eq_str("guest-get-osinfo") {
                    agent.complete(t, Reply::Return(&Verbatim(osinfo)))
                } else if n.eq_str("guest-get-host-name") {
                    agent.complete(t, Reply::Return(&Verbatim(host)))
                } else if n.eq_str("guest-get-time") {
                    agent.complete(t, Reply::Return(&1795285339653786000u64))
                } else {
                    agent.complete(t, Reply::Return(&empty))
                };
                r.unwrap();
            }
            while let Some(k) = agent.poll_transmit(&mut tx) {
                out.extend_from_slice(&tx[..k]);
            }
        }
    }
    out
}

#[test]
fn replies_byte_identical_to_qemu_ga() {
    let whole = run(C2S, &mut || usize::MAX);
    assert_eq!(
        String::from_utf8_lossy(&whole),
        String::from_utf8_lossy(S2C)
    );
    assert_eq!(whole, S2C);
    assert_eq!(run(C2S, &mut || 1), S2C);
    let mut rng = SmallRng::seed_from_u64(3);
    for _ in 0..200 {
        let max = rng.random_range(2..64);
        let mut r = SmallRng::seed_from_u64(rng.random());
        assert_eq!(run(C2S, &mut || r.random_range(1..max)), S2C);
    }
}

#[test]
fn qga_specifics() {
    let out = run(
        b"{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":\"notint\"}}\
          {\"execute\":\"guest-ping\",\"arguments\":{\"foo\":1}}\
          {\"exec-oob\":\"guest-ping\"}\
          {\"execute\":\"guest-shutdown\"}\
          {\"execute\":\"guest-sync\",\"arguments\":{\"id\":18446744073709551615}}\
          {\"execute\":\"guest-sync\",\"arguments\":{\"id\":-5}}\
          {\"execute\":\"guest-sync-delimited\",\"arguments\":{}}\
          {\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":123}}\
          {\"execute\":\"qmp_capabilities\"}\xff",
        &mut || 9,
    );
    let expected: &[u8] = b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"Invalid parameter type for 'id', expected: integer\"}}\n\
        {\"return\": {}}\n\
        {\"error\": {\"class\": \"GenericError\", \"desc\": \"QMP input member 'exec-oob' is unexpected\"}}\n\
        {\"error\": {\"class\": \"GenericError\", \"desc\": \"Invalid parameter type for 'id', expected: integer\"}}\n\
        {\"return\": -5}\n\
        {\"error\": {\"class\": \"GenericError\", \"desc\": \"Parameter 'id' is missing\"}}\n\
        \xff{\"return\": 123}\n\
        {\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command qmp_capabilities has not been found\"}}\n\
        {\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, stray '\\uFFFD'\"}}\n";
    // guest-ping with an unexpected argument is the application's to check;
    // this test application accepts it. guest-shutdown sends nothing.
    assert_eq!(
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(expected)
    );
}
