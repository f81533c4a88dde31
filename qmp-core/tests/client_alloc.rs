//! A counting global allocator shows that the client session (negotiation,
//! execute, routing, events, typed decoding, timeouts, EOF) allocates
//! nothing. One test in this binary, so nothing else runs while it counts.

#[path = "common/counting.rs"]
mod counting;

#[global_allocator]
static A: counting::Counting = counting::Counting;

use qmp_core::client::commands::{
    Cont, HumanMonitorCommand, QueryCommands, QueryStatus, QueryVersion, Quit, Stop,
    SystemPowerdown,
};
use qmp_core::client::events::{self, Shutdown};
use qmp_core::client::{Client, ClientEvent, ExecuteOptions, Outcome, State, Token};
use qmp_core::scan::{validate, FramerConfig};
use qmp_core::Instant;

const S2C: &[u8] = include_bytes!("data/qemu-system-7.2.s2c");

/// Replays the transcript like the recorded client (each command after the
/// previous reply); returns (resolutions, events, bytes sent).
fn replay(buf: &mut [u8], out: &mut [u8], chunk: usize) -> (usize, usize, usize) {
    let mut c: Client<&mut [u8], 4> =
        Client::with_config(buf, qmp_core::client::ClientConfig::new());
    let qom_args = validate(br#"{"path": "/"}"#, FramerConfig::new()).unwrap();
    let (mut resolved, mut evs, mut sent) = (0, 0, 0);
    let mut next = 0;
    let mut current: Option<Token> = None;
    for mut piece in S2C.chunks(chunk) {
        while !piece.is_empty() {
            let n = c.handle_input(Instant::ZERO, piece);
            piece = &piece[n..];
            while let Some(ev) = c.poll_event() {
                match ev {
                    ClientEvent::Resolved { token, outcome } => {
                        resolved += 1;
                        if Some(token) == current {
                            current = None;
                        }
                        match token.id() {
                            1 => {
                                assert_eq!(outcome.decode::<QueryVersion>().unwrap().qemu.major, 7)
                            }
                            2 => assert!(outcome
                                .decode::<QueryStatus>()
                                .unwrap()
                                .status
                                .eq_str("prelaunch")),
                            3 => {
                                assert!(outcome.decode::<QueryCommands>().unwrap().contains("quit"))
                            }
                            7 => {
                                let s = outcome.decode::<HumanMonitorCommand<'_>>().unwrap();
                                let mut scratch = [0u8; 64];
                                assert_eq!(
                                    s.unescape_str_into(&mut scratch).unwrap(),
                                    "No CPU available\r\n"
                                );
                            }
                            10 => assert!(matches!(outcome, Outcome::Error { .. })),
                            _ => assert!(outcome.is_return()),
                        }
                    }
                    ClientEvent::Event(e) => {
                        evs += 1;
                        if let Some(d) = events::decode::<Shutdown>(&e) {
                            assert!(d.unwrap().reason.eq_str("host-qmp-quit"));
                        }
                    }
                    _ => {}
                }
            }
            if let Some(n) = c.poll_transmit(out).unwrap() {
                sent += n;
            }
            if current.is_none() && c.state() != State::AwaitingGreeting && next < 12 {
                let o = ExecuteOptions::new().timeout_ms(1000);
                let (t, n) = match next {
                    0 => c.execute(Instant::ZERO, &QueryVersion, o, out),
                    1 => c.execute(Instant::ZERO, &QueryStatus, o, out),
                    2 => c.execute(Instant::ZERO, &QueryCommands, o, out),
                    3 => c.execute_raw(Instant::ZERO, "query-qmp-schema", None, o, out),
                    4 => c.execute(Instant::ZERO, &Cont, o, out),
                    5 => c.execute(Instant::ZERO, &Stop, o, out),
                    6 => c.execute(
                        Instant::ZERO,
                        &HumanMonitorCommand {
                            command_line: "info registers",
                        },
                        o,
                        out,
                    ),
                    7 => c.execute_raw(Instant::ZERO, "qom-list", Some(qom_args), o, out),
                    8 => c.execute_raw(Instant::ZERO, "query-chardev", None, o, out),
                    9 => c.execute_raw(Instant::ZERO, "nope", None, o, out),
                    10 => c.execute(Instant::ZERO, &SystemPowerdown, o, out),
                    _ => c.execute(Instant::ZERO, &Quit, o, out),
                }
                .unwrap();
                sent += n;
                current = Some(t);
                next += 1;
            }
        }
    }
    // A timeout and EOF, too.
    let (t, _) = c
        .execute(
            Instant::ZERO,
            &QueryStatus,
            ExecuteOptions::new().timeout_ms(5),
            out,
        )
        .unwrap();
    c.execute(Instant::ZERO, &QueryStatus, ExecuteOptions::new(), out)
        .unwrap();
    c.handle_timeout(Instant::from_millis(5));
    assert!(
        matches!(c.poll_event(), Some(ClientEvent::Resolved { token, outcome: Outcome::Timeout }) if token == t)
    );
    c.handle_eof();
    assert!(matches!(
        c.poll_event(),
        Some(ClientEvent::Resolved {
            outcome: Outcome::Disconnected,
            ..
        })
    ));
    assert!(c.poll_event().is_none());
    (resolved, evs, sent)
}

#[test]
fn client_allocates_nothing() {
    let mut buf = vec![0u8; 256 * 1024];
    let mut out = vec![0u8; 512];
    let before = counting::allocations();
    let mut totals = [(0, 0, 0); 4];
    for (i, chunk) in [S2C.len(), 1, 7, 4096].into_iter().enumerate() {
        totals[i] = replay(&mut buf, &mut out, chunk);
    }
    let after = counting::allocations();
    assert_eq!(after - before, 0, "allocations in the client");
    for t in totals {
        assert_eq!(t, totals[0]);
    }
    assert_eq!(totals[0].0, 12);
    assert_eq!(totals[0].1, 4);
}
