//! The client's next deadline as requests come and go: replied, cancelled,
//! timed out, or joined by one with an earlier deadline.

use qmp_core::client::{Client, ClientEvent, ExecuteOptions, Outcome, Token};
use qmp_core::Instant;

const GREETING: &[u8] = b"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 0, \"major\": 10}, \"package\": \"\"}, \"capabilities\": []}}";

fn feed(c: &mut Client<Vec<u8>>, now: Instant, mut input: &[u8]) -> Vec<(Token, String)> {
    let mut out = Vec::new();
    loop {
        while let Some(ev) = c.poll_event() {
            if let ClientEvent::Resolved { token, outcome } = ev {
                let what = match outcome {
                    Outcome::Return(_) => "return",
                    Outcome::Timeout => "timeout",
                    Outcome::Cancelled => "cancelled",
                    _ => "other",
                };
                out.push((token, what.to_owned()));
            }
        }
        if input.is_empty() {
            return out;
        }
        input = &input[c.handle_input(now, input)..];
    }
}

fn send(c: &mut Client<Vec<u8>>, now: Instant, timeout_ms: u64) -> Token {
    let mut out = [0u8; 128];
    let opts = ExecuteOptions::new().timeout_ms(timeout_ms);
    c.execute_raw(now, "x", None, opts, &mut out).unwrap().0
}

#[test]
fn the_next_deadline_follows_the_waiting_requests() {
    let t = Instant::from_millis;
    let mut c = Client::new(vec![0u8; 1024]);
    feed(&mut c, t(0), GREETING);
    let mut caps = [0u8; 128];
    c.poll_transmit(&mut caps).unwrap();
    feed(&mut c, t(0), b"{\"return\": {}}");
    assert_eq!(c.poll_timeout(), None);

    let a = send(&mut c, t(0), 100);
    let b = send(&mut c, t(0), 300);
    let d = send(&mut c, t(0), 200);
    assert_eq!(c.poll_timeout(), Some(t(100)));
    // The earliest is answered: the next one is looked up.
    assert_eq!(
        feed(&mut c, t(10), b"{\"return\": {}, \"id\": 1}"),
        [(a, "return".to_owned())]
    );
    assert_eq!(c.poll_timeout(), Some(t(200)));
    // One with an earlier deadline joins.
    let e = send(&mut c, t(20), 50);
    assert_eq!(c.poll_timeout(), Some(t(70)));
    // Cancelled: gone from the deadlines.
    assert!(c.cancel(e));
    assert_eq!(c.poll_timeout(), Some(t(200)));
    assert_eq!(feed(&mut c, t(20), b""), [(e, "cancelled".to_owned())]);
    // Nothing is due before its time, then it times out.
    c.handle_timeout(t(199));
    assert_eq!(feed(&mut c, t(199), b""), []);
    c.handle_timeout(t(200));
    assert_eq!(feed(&mut c, t(200), b""), [(d, "timeout".to_owned())]);
    assert_eq!(c.poll_timeout(), Some(t(300)));
    // Input applies deadlines too.
    assert_eq!(feed(&mut c, t(300), b" "), [(b, "timeout".to_owned())]);
    assert_eq!(c.poll_timeout(), None);
    assert_eq!(c.in_flight(), 0);
}
