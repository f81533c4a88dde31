//! The guest-agent sync procedure under hostile streams: stale replies,
//! half messages, 0xFF bytes, garbage, timeouts.
//!
//! Input: 8 bytes of sync id (little endian, masked to i64), 1 byte of
//! chunk-size seed, 1 byte of flags, then the stale stream.
//!
//! Invariants:
//! * safety: a sync never completes with an id other than its own, and each
//!   token resolves at most once;
//! * termination: every call returns; after the deadline the sync is
//!   resolved (success or `Timeout`);
//! * liveness: when a well-formed delimited reply (`\xFF{"return": ID}`)
//!   is the last thing fed, the sync completes with its id.

use qmp_core::client::Outcome;
use qmp_core::client::{ClientEvent, Token};
use qmp_core::qga::QgaClient;
use qmp_core::Instant;

struct Resolved {
    token: Token,
    ok_id: Option<Option<u64>>,
}

fn pump(
    client: &mut QgaClient<&mut [u8], 4>,
    now: u64,
    bytes: &[u8],
    chunk: usize,
    seen: &mut Vec<Resolved>,
) {
    let mut rest = bytes;
    let mut spins = 0usize;
    while !rest.is_empty() {
        let n = chunk.clamp(1, rest.len());
        let used = client.handle_input(Instant::from_millis(now), &rest[..n]);
        rest = &rest[used..];
        drain(client, seen);
        spins += 1;
        assert!(spins <= 4 * bytes.len() + 16, "no progress");
    }
}

fn drain(client: &mut QgaClient<&mut [u8], 4>, seen: &mut Vec<Resolved>) {
    let mut n = 0;
    while let Some(ev) = client.poll_event() {
        if let ClientEvent::Resolved { token, outcome } = ev {
            let ok_id = match outcome {
                Outcome::Return(v) => Some(v.as_u64()),
                _ => None,
            };
            seen.push(Resolved { token, ok_id });
        }
        n += 1;
        assert!(n < 1 << 16, "endless events");
    }
}

/// Runs one hostile stream.
pub fn qga(data: &[u8]) {
    if data.len() < 10 {
        return;
    }
    let mut id_bytes = [0u8; 8];
    id_bytes.copy_from_slice(&data[..8]);
    let id = u64::from_le_bytes(id_bytes) & (i64::MAX as u64);
    let chunk = 1 + usize::from(data[8] % 64);
    let flags = data[9];
    let stale = &data[10..];

    let mut buf = vec![0u8; 256];
    let mut client: QgaClient<&mut [u8], 4> =
        QgaClient::with_config(&mut buf[..], qmp_core::qga::QgaConfig::new());
    let mut out = [0u8; 512];
    let token = client
        .sync(Instant::ZERO, id, Instant::from_millis(1000))
        .expect("sync starts");
    let n = client
        .poll_transmit(&mut out)
        .expect("transmit")
        .expect("sync bytes");
    assert_eq!(out[0], 0xFF, "the sync starts with the delimiter");
    assert!(n > 1);
    let mut seen = Vec::new();
    // Hostile stream (may contain fake delimiters and replies with other ids).
    pump(&mut client, 1, stale, chunk, &mut seen);
    if flags & 1 == 1 {
        // Liveness: our reply, delimited, comes last.
        let mut bytes = vec![0xFFu8];
        bytes.extend_from_slice(format!("{{\"return\": {id}}}\n").as_bytes());
        pump(&mut client, 2, &bytes, chunk, &mut seen);
        // Whatever state the stale bytes left (an open string, a number, an
        // oversized message, recovery), the 0xFF ends it: the sync completes.
        let mine: Vec<_> = seen.iter().filter(|r| r.token == token).collect();
        assert_eq!(mine.len(), 1, "the sync completes once its reply arrives");
        assert_eq!(mine[0].ok_id, Some(Some(id)), "with its own id");
    } else {
        client.handle_timeout(Instant::from_millis(2000));
        drain(&mut client, &mut seen);
        let mine: Vec<_> = seen.iter().filter(|r| r.token == token).collect();
        assert_eq!(mine.len(), 1, "resolved exactly once by the deadline");
    }
    for r in &seen {
        if let Some(Some(got)) = r.ok_id {
            if r.token == token {
                assert_eq!(got, id, "a sync completed with a wrong id");
            }
        }
    }
}
