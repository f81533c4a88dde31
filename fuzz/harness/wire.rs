//! Wire-layer invariants shared by the fuzz targets (`fuzz/fuzz_targets/`)
//! and the corpus replay test (`qmp-core/tests/fuzz_corpus.rs`), which
//! include this file with `#[path]`.
//!
//! Pure functions over `qmp_core`, `serde_json` and `std` only. Every
//! invariant is an `assert!`: a violation panics, which libFuzzer reports as
//! a crash and `cargo test` as a failure.
//!
//! * [`frame`] checks chunking independence, byte accounting, and that every
//!   delivered message is valid (our `validate`, the configured depth limit,
//!   and `serde_json` in the strict dialect).
//! * [`scan_differential`] compares `qmp_core::scan::validate` (strict)
//!   against `serde_json`, on inputs both can judge.
//!
//! serde_json is the reference wherever it gives a verdict. It gives none
//! (the input is skipped) when it stops at one of its own limits, which are
//! not JSON grammar:
//!
//! 1. "recursion limit exceeded": serde_json fails on its 128th nested
//!    container (so it judges nesting up to 127 only); RFC 8259 and our
//!    scanner (limit 1024) accept deeper values;
//! 2. "number out of range": `serde_json::Value` rejects numbers that
//!    overflow `f64` (`1e400`; without its `float_roundtrip` feature even
//!    `1.7976931348623158e308`, which rounds to `f64::MAX`); the grammar
//!    has no range.
//!
//! The skip keys on serde_json's error text, so it happens only when
//! serde_json itself stopped at a limit (the input is then not judged,
//! whatever follows the limit); no estimate of ours decides. Nothing else is
//! excluded: whitespace is space, tab, CR and LF on both sides, and
//! top-level scalars are judged on the whole input (`validate` feeds a
//! trailing space for the lookahead that ends a number or keyword).
//!
//! `serde_json::Value` is the reference, not `IgnoredAny`: `IgnoredAny`
//! skips `\uXXXX` escapes without pairing surrogates (it accepts
//! `"\ud800"`) and skips numbers without a range check (it accepts `1e400`),
//! while `Value` decodes strings and so rejects lone surrogates, as RFC 8259
//! text must (and as our scanner does).

#![allow(dead_code)]

use qmp_core::scan::{self, Dialect, Frame, FrameError, Framer, FramerConfig};

/// An owned outcome, comparable across chunkings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    /// A message, its bytes.
    Msg(Vec<u8>),
    /// An error other than `Oversized`: its `desc` text.
    Err(Vec<u8>),
    /// `Oversized { len }`.
    Oversized(usize),
}

/// What kind of error an outcome was (for the byte accounting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Msg,
    Stray,
    Syntax,
    Depth,
    Oversized,
}

/// One outcome with the absolute input offset at which it was returned.
#[derive(Debug, Clone)]
struct Event {
    out: Out,
    kind: Kind,
    /// Offset just past the last byte consumed when the frame was returned.
    end: usize,
    /// For messages and stray tokens: the bytes, to be found verbatim at
    /// `input[end - len..end]`.
    verbatim: Option<Vec<u8>>,
}

fn desc(e: &FrameError<'_>) -> Vec<u8> {
    e.desc_pieces().concat()
}

/// A tiny deterministic PRNG (xorshift64*), so the harness needs no crate.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Feeds `input` in chunks of the sizes `sizes` yields; returns the
/// outcomes with their offsets. Checks progress and linear work, and with
/// `check` every delivered message ([`check_message`]).
fn run(
    input: &[u8],
    cap: usize,
    cfg: FramerConfig,
    check: bool,
    sizes: &mut dyn FnMut() -> usize,
) -> Vec<Event> {
    let mut buf = vec![0u8; cap];
    let mut framer = Framer::with_config(&mut buf[..], cfg);
    let mut events = Vec::new();
    let mut offset = 0usize;
    let mut calls = 0usize;
    let mut zero_in_a_row = 0usize;
    while offset < input.len() {
        let n = sizes().clamp(1, input.len() - offset);
        let chunk_end = offset + n;
        while offset < chunk_end {
            let chunk = &input[offset..chunk_end];
            let fed = framer.feed(chunk);
            calls += 1;
            assert!(fed.consumed <= chunk.len(), "consumed more than given");
            let end = offset + fed.consumed;
            let had_frame = fed.frame.is_some();
            if fed.consumed == 0 {
                assert!(had_frame, "no progress: nothing consumed, no frame");
                zero_in_a_row += 1;
                assert!(zero_in_a_row <= 1, "two frames in a row without consuming");
            } else {
                zero_in_a_row = 0;
            }
            match fed.frame {
                Some(Frame::Message(m)) => {
                    let bytes = m.as_bytes().to_vec();
                    if check {
                        check_message(&m, cfg);
                    }
                    events.push(Event {
                        out: Out::Msg(bytes.clone()),
                        kind: Kind::Msg,
                        end,
                        verbatim: Some(bytes),
                    });
                }
                Some(Frame::Error(e)) => {
                    let (out, kind, verbatim) = match e {
                        FrameError::Oversized { len } => {
                            assert!(len > cap, "Oversized len {len} fits capacity {cap}");
                            (Out::Oversized(len), Kind::Oversized, None)
                        }
                        FrameError::Stray { token } => {
                            assert!(!token.is_empty(), "empty stray token");
                            (Out::Err(desc(&e)), Kind::Stray, Some(token.to_vec()))
                        }
                        FrameError::DepthLimit => (Out::Err(desc(&e)), Kind::Depth, None),
                        _ => (Out::Err(desc(&e)), Kind::Syntax, None),
                    };
                    events.push(Event {
                        out,
                        kind,
                        end,
                        verbatim,
                    });
                }
                Some(_) => panic!("unknown frame kind"),
                None => {}
            }
            offset = end;
        }
    }
    // Linear work: at most one call per byte plus one per outcome (a
    // zero-consumption call always returns a frame), plus the chunk count.
    assert!(
        calls <= 2 * input.len() + 1,
        "{calls} feed calls for {} bytes",
        input.len()
    );
    events
}

/// Is `b` a byte at which QEMU's lexer leaves recovery?
fn resync(b: u8) -> bool {
    matches!(b, 0..=0x08 | 0x0A..=0x1F | 0xFE | 0xFF | b'[' | b']' | b'{' | b'}' | b':' | b',')
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Every byte is accounted for: messages and stray tokens appear verbatim
/// where they were returned, and the bytes before a message are whitespace,
/// or what error recovery may skip after the preceding error.
fn check_accounting(input: &[u8], events: &[Event]) {
    let mut prev_end = 0usize;
    let mut prev_kind: Option<Kind> = None;
    for ev in events {
        assert!(ev.end >= prev_end, "outcomes out of order");
        assert!(ev.end <= input.len());
        if let Some(v) = &ev.verbatim {
            assert!(v.len() <= ev.end, "outcome longer than the input before it");
            let start = ev.end - v.len();
            assert_eq!(
                &input[start..ev.end],
                &v[..],
                "outcome bytes are not the input at [{start}, {})",
                ev.end
            );
            assert!(start >= prev_end, "outcome overlaps the previous one");
            if ev.kind == Kind::Msg {
                let gap = &input[prev_end..start];
                match prev_kind {
                    // After a limit (depth), QEMU reads the bytes after the
                    // error as new input: nothing is skipped either.
                    None | Some(Kind::Msg) | Some(Kind::Syntax) | Some(Kind::Depth) => assert!(
                        gap.iter().all(|&b| is_ws(b)),
                        "non-whitespace bytes {gap:?} skipped before a message"
                    ),
                    Some(Kind::Stray) | Some(Kind::Oversized) => assert!(
                        gap.iter().all(|&b| is_ws(b) || !resync(b)),
                        "recovery skipped a resynchronisation byte in {gap:?}"
                    ),
                }
            }
        }
        if let Out::Oversized(len) = ev.out {
            assert!(len <= ev.end, "Oversized len beyond the input read");
        }
        prev_end = ev.end;
        prev_kind = Some(ev.kind);
    }
}

/// Maximum nesting of `[`/`{` outside strings (`'` strings too in the QEMU
/// dialect), for validated JSON.
pub fn nesting(bytes: &[u8], single_quotes: bool) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    let mut quote: Option<u8> = None;
    let mut escaped = false;
    for &b in bytes {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == q {
                quote = None;
            }
            continue;
        }
        match b {
            b'"' => quote = Some(b),
            b'\'' if single_quotes => quote = Some(b),
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// serde_json's verdict on `bytes` as one JSON text: `Some(true)` valid,
/// `Some(false)` invalid, `None` when it stopped at one of its own limits
/// (see the module docs) and so cannot judge.
pub fn serde_verdict(bytes: &[u8]) -> Option<bool> {
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(_) => Some(true),
        Err(e) => {
            let text = e.to_string();
            let limit = text.starts_with("recursion limit exceeded")
                || text.starts_with("number out of range");
            (!limit).then_some(false)
        }
    }
}

/// Invariants of one delivered message.
fn check_message(m: &scan::Message<'_>, cfg: FramerConfig) {
    let bytes = m.as_bytes();
    assert!(!bytes.is_empty(), "empty message");
    assert!(
        !is_ws(bytes[0]) && !is_ws(bytes[bytes.len() - 1]),
        "message has surrounding whitespace"
    );
    let raw = match scan::validate(bytes, cfg) {
        Ok(raw) => raw,
        Err(e) => panic!("delivered message fails validate ({e}): {bytes:?}"),
    };
    assert_eq!(raw.as_bytes(), bytes);
    let single = cfg.dialect() == Dialect::Qemu;
    let depth = nesting(bytes, single);
    assert!(
        depth <= usize::from(cfg.max_depth()),
        "message nesting {depth} over the limit {}",
        cfg.max_depth()
    );

    // Members: each key is a validated string body, each value validates.
    let mut count = 0;
    for member in m.members() {
        count += 1;
        let key = member.key.raw();
        let mut quoted = vec![member.key.quote()];
        quoted.extend_from_slice(key);
        quoted.push(member.key.quote());
        assert!(
            scan::validate(&quoted, cfg).is_ok(),
            "member key {quoted:?}"
        );
        assert!(
            scan::validate(member.value.as_bytes(), cfg).is_ok(),
            "member value {:?}",
            member.value.as_bytes()
        );
        let mut scratch = vec![0u8; member.key.unescaped_len()];
        assert!(member.key.unescape_into(&mut scratch).is_ok());
    }
    assert_eq!(
        count,
        m.raw().members().count(),
        "Message::members and RawJson::members disagree"
    );
    // Exercise the classifiers (they must not panic).
    let _ = m.classify();
    let _ = m.request(false);
    let _ = m.request(true);

    if cfg.dialect() == Dialect::Strict && serde_verdict(bytes).is_some() {
        let value: serde_json::Value = match serde_json::from_slice(bytes) {
            Ok(v) => v,
            Err(e) => panic!("serde_json rejects a delivered message ({e}): {bytes:?}"),
        };
        // Member spans against serde_json (last duplicate wins there).
        if let serde_json::Value::Object(map) = &value {
            let members: Vec<_> = m.members().collect();
            assert!(members.len() >= map.len());
            for (i, member) in members.iter().enumerate() {
                let mut scratch = vec![0u8; member.key.unescaped_len()];
                let key = member.key.unescape_into(&mut scratch).unwrap();
                let key = std::str::from_utf8(key).expect("strict keys are UTF-8");
                let later = members[i + 1..]
                    .iter()
                    .any(|o| o.key.eq_json_str(&member.key));
                if later {
                    continue;
                }
                let expect = map
                    .get(key)
                    .expect("member key missing in serde_json's map");
                let got: serde_json::Value = serde_json::from_slice(member.value.as_bytes())
                    .expect("member value rejected by serde_json");
                assert_eq!(&got, expect, "member {key:?} value differs");
            }
        } else {
            assert_eq!(m.members().count(), 0, "members of a non-object");
        }
    }
}

/// Decoded fuzz parameters.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// Buffer capacity, 1..=512.
    pub cap: usize,
    /// The framer settings.
    pub cfg: FramerConfig,
    /// Seed of the random chunking.
    pub seed: u64,
}

/// Splits `data` into parameters (4 bytes) and input.
pub fn params(data: &[u8]) -> Option<(Params, &[u8])> {
    let (head, input) = data.split_at_checked(4)?;
    let cap = 1 + (usize::from(u16::from_le_bytes([head[0], head[1]])) % 512);
    let dialect = if head[2] & 1 == 0 {
        Dialect::Qemu
    } else {
        Dialect::Strict
    };
    // Mostly small limits (where the limit paths are), sometimes QEMU's.
    let depth = match head[2] >> 1 {
        127 => 1024,
        d => u16::from(d),
    };
    let cfg = FramerConfig::new()
        .with_dialect(dialect)
        .with_max_depth(depth);
    Some((
        Params {
            cap,
            cfg,
            seed: u64::from(head[3]),
        },
        input,
    ))
}

/// The `frame` target: 4 parameter bytes (capacity, dialect and depth
/// limit, chunking seed), then the input stream.
pub fn frame(data: &[u8]) {
    let Some((p, input)) = params(data) else {
        return;
    };
    frame_with(input, p);
}

/// [`frame`] with explicit parameters.
pub fn frame_with(input: &[u8], p: Params) {
    let whole = run(input, p.cap, p.cfg, true, &mut || usize::MAX);
    check_accounting(input, &whole);
    let outs = |evs: &[Event]| evs.iter().map(|e| e.out.clone()).collect::<Vec<_>>();
    let expected = outs(&whole);

    let bytewise = run(input, p.cap, p.cfg, false, &mut || 1);
    assert_eq!(expected, outs(&bytewise), "1-byte feeding differs");
    check_accounting(input, &bytewise);

    let mut rng = Rng::new(p.seed);
    let max = [2u64, 3, 7, 16, 64][(p.seed % 5) as usize];
    let random = run(input, p.cap, p.cfg, false, &mut || {
        (1 + rng.next() % max) as usize
    });
    assert_eq!(expected, outs(&random), "random chunking differs");
    check_accounting(input, &random);
}

/// The `scan_differential` target: `validate` (strict dialect, depth limit
/// 1024) against serde_json on the same bytes.
pub fn scan_differential(data: &[u8]) {
    let cfg = FramerConfig::new()
        .with_dialect(Dialect::Strict)
        .with_max_depth(1024);
    let ours = scan::validate(data, cfg);
    if let Ok(raw) = ours {
        // The span is the input without surrounding whitespace.
        let start = data.iter().position(|&b| !is_ws(b)).unwrap_or(0);
        let end = data.iter().rposition(|&b| !is_ws(b)).map_or(0, |i| i + 1);
        assert_eq!(raw.as_bytes(), &data[start..end], "validate span");
    }
    let Some(theirs) = serde_verdict(data) else {
        return;
    };
    assert_eq!(
        ours.is_ok(),
        theirs,
        "validate: {ours:?}, serde_json: {:?}, input {:?}",
        serde_json::from_slice::<serde_json::Value>(data).err(),
        String::from_utf8_lossy(data)
    );
}
