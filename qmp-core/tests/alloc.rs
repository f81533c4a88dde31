//! A counting global allocator shows that framing, scanning, classifying and
//! encoding allocate nothing (counted per thread: see `common/counting.rs`).

#[path = "common/counting.rs"]
mod counting;

#[global_allocator]
static A: counting::Counting = counting::Counting;

use qmp_core::encode::{write_error, write_event, Style};
use qmp_core::message::Inbound;
use qmp_core::scan::{Frame, Framer};
use qmp_core::Instant;

const S2C: &[u8] = include_bytes!("data/qemu-system-7.2.s2c");
const C2S: &[u8] = include_bytes!("data/qemu-system-7.2.c2s");
const QGA: &[u8] = include_bytes!("data/qga-7.2.s2c");

#[test]
fn wire_layer_allocates_nothing() {
    let mut buf = vec![0u8; 4096];
    let mut out = vec![0u8; 8192];
    let before = counting::allocations();
    let mut counts = [0usize; 6];
    for data in [S2C, C2S, QGA] {
        let mut framer = Framer::new(&mut buf[..]);
        let mut rest = data;
        while !rest.is_empty() {
            let fed = framer.feed(rest);
            rest = &rest[fed.consumed..];
            match fed.frame {
                Some(Frame::Message(m)) => {
                    match m.classify() {
                        Inbound::Return { value, id } => {
                            counts[0] += 1;
                            let _ = qmp_core::encode::write_return(
                                &mut out,
                                Style::QMP,
                                &qmp_core::encode::Verbatim(value),
                                id.as_ref().map(|i| i as &dyn qmp_core::encode::WriteJson),
                            );
                        }
                        Inbound::Event(e) => {
                            counts[1] += 1;
                            let _ = write_event(
                                &mut out,
                                Style::QMP,
                                e.name.as_plain_str().unwrap_or("X"),
                                e.data
                                    .as_ref()
                                    .map(|d| d as &dyn qmp_core::encode::WriteJson),
                                1,
                                2,
                            );
                        }
                        Inbound::Error { .. } => counts[2] += 1,
                        _ => counts[3] += 1,
                    }
                    if let Err(bad) = m.request(true) {
                        let _ = bad.error.desc_parts();
                    }
                }
                Some(Frame::Error(e)) => {
                    counts[4] += 1;
                    let _ = write_error(
                        &mut out,
                        Style::QMP,
                        None,
                        b"GenericError",
                        &e.desc_pieces(),
                    );
                }
                _ => {}
            }
        }
    }
    let after = counting::allocations();
    assert_eq!(after - before, 0, "allocations in the wire layer");

    // An agent session: negotiation, requests, errors, events, OOB.
    let mut fb = vec![0u8; 1024];
    let mut qb = vec![0u8; 4096];
    let mut ob = vec![0u8; 8192];
    let mut tx = vec![0u8; 8192];
    let version = qmp_core::scan::validate(
        b"{\"qemu\":{\"major\":10,\"minor\":0,\"micro\":2},\"package\":\"\"}",
        Default::default(),
    )
    .unwrap();
    let input: &[u8] = b"{\"execute\":\"qmp_capabilities\",\"arguments\":{\"enable\":[\"oob\"]}}\
        {\"execute\":\"query-version\",\"id\":1}{\"exec-oob\":\"x-sleep\",\"id\":\"o\"}\
        {\"execute\":\"nope\",\"id\":[1,{\"b\":2,\"a\":1}]}{]\xff{\"id\":\"\\u00e9\"}";
    const CMDS: &[qmp_core::agent::CommandSpec<'static>] = &[
        qmp_core::agent::CommandSpec::new("query-version"),
        qmp_core::agent::CommandSpec::new("x-sleep").oob(),
    ];
    let before = counting::allocations();
    let mut agent = qmp_core::agent::Agent::new(
        qmp_core::agent::AgentConfig::new((10, 0, 2), "", CMDS),
        qmp_core::agent::AgentBuffers::new(&mut fb, &mut qb, &mut ob),
    )
    .unwrap();
    let mut rest = input;
    let mut sent = 0;
    while !rest.is_empty() {
        let used = agent.handle_input(Instant::ZERO, rest);
        rest = &rest[used..];
        while let Some(req) = agent.poll_request() {
            let t = req.token;
            agent
                .complete(t, qmp_core::agent::Reply::Return(&version))
                .unwrap();
        }
        let ev = qmp_core::agent::EventOut::new("STOP").timestamp(1, 0);
        let _ = agent.emit(Instant::ZERO, &ev);
        while let Some(n) = agent.poll_transmit(&mut tx) {
            sent += n;
        }
    }
    let after = counting::allocations();
    assert_eq!(after - before, 0, "allocations in the agent");
    assert!(sent > 700, "{sent}");
    // The work really happened.
    assert!(
        counts[0] > 10 && counts[1] >= 4 && counts[3] > 0 && counts[4] > 0,
        "{counts:?}"
    );
}
