//! The framer's fast path (`scan/fast.rs`) against its general state
//! machine. Whole-input feeding runs almost everything through the fast
//! path; 1-byte feeding runs almost nothing through it (no token but a
//! single byte completes within one byte of input). Both must give the same
//! frames, member spans included, for every buffer size around each
//! message's length (where the fast path's window is cut by the limit).

use qmp_core::scan::{Dialect, Frame, FrameError, Framer, FramerConfig};
use rand::{rngs::SmallRng, Rng, SeedableRng};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Out {
    Msg {
        bytes: Vec<u8>,
        members: Vec<(Vec<u8>, Vec<u8>)>,
    },
    Err(Vec<u8>),
    Oversized(usize),
}

fn run(input: &[u8], cap: usize, cfg: FramerConfig, sizes: &mut dyn FnMut() -> usize) -> Vec<Out> {
    let mut buf = vec![0u8; cap];
    let mut framer = Framer::with_config(&mut buf[..], cfg);
    let mut outs = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        let n = sizes().clamp(1, rest.len());
        let mut chunk = &rest[..n];
        rest = &rest[n..];
        while !chunk.is_empty() {
            let fed = framer.feed(chunk);
            match fed.frame {
                Some(Frame::Message(m)) => outs.push(Out::Msg {
                    bytes: m.as_bytes().to_vec(),
                    members: m
                        .members()
                        .map(|mm| (mm.key.raw().to_vec(), mm.value.as_bytes().to_vec()))
                        .collect(),
                }),
                Some(Frame::Error(FrameError::Oversized { len })) => outs.push(Out::Oversized(len)),
                Some(Frame::Error(e)) => outs.push(Out::Err(
                    e.desc_pieces()
                        .iter()
                        .flat_map(|p| p.iter().copied())
                        .collect(),
                )),
                Some(_) => unreachable!(),
                None => {}
            }
            chunk = &chunk[fed.consumed..];
        }
    }
    outs
}

fn check(input: &[u8], cap: usize, cfg: FramerConfig, seed: u64) -> Vec<Out> {
    let whole = run(input, cap, cfg, &mut || usize::MAX);
    let bytewise = run(input, cap, cfg, &mut || 1);
    assert_eq!(
        whole,
        bytewise,
        "whole vs 1-byte, cap {cap}, input {:?}",
        String::from_utf8_lossy(input)
    );
    let mut r = SmallRng::seed_from_u64(seed);
    let chunked = run(input, cap, cfg, &mut || r.random_range(1..=9));
    assert_eq!(whole, chunked, "whole vs random chunks, cap {cap}");
    whole
}

/// A random JSON-ish value: mostly what the fast path takes, with the
/// things it leaves to the general machine mixed in.
fn value(r: &mut SmallRng, depth: u32, out: &mut Vec<u8>) {
    let pick = if depth > 5 {
        r.random_range(0..6)
    } else {
        r.random_range(0..9)
    };
    match pick {
        0 => string(r, out),
        1 => {
            let n = [
                "0",
                "-0",
                "7",
                "-12",
                "123456789012345678901",
                "1.5",
                "-0.25e3",
                "1E+2",
                "01",
                "-",
                "2.",
                "1e",
                "18446744073709551615",
            ];
            out.extend_from_slice(n[r.random_range(0..n.len())].as_bytes());
        }
        2 => {
            let k = ["true", "false", "null", "nul", "truex", "True"];
            out.extend_from_slice(k[r.random_range(0..k.len())].as_bytes());
        }
        3..=5 => string(r, out),
        6 | 7 => {
            out.push(b'{');
            let n = r.random_range(0..5);
            for i in 0..n {
                if i > 0 {
                    sep(r, out, b',');
                }
                ws(r, out);
                if r.random_range(0..20) == 0 {
                    value(r, depth + 1, out); // a non-string key (error)
                } else {
                    string(r, out);
                }
                sep(r, out, b':');
                value(r, depth + 1, out);
            }
            ws(r, out);
            out.push(if r.random_range(0..30) == 0 {
                b']'
            } else {
                b'}'
            });
        }
        _ => {
            out.push(b'[');
            let n = r.random_range(0..5);
            for i in 0..n {
                if i > 0 {
                    sep(r, out, b',');
                }
                ws(r, out);
                value(r, depth + 1, out);
            }
            ws(r, out);
            out.push(if r.random_range(0..30) == 0 {
                b'}'
            } else {
                b']'
            });
        }
    }
}

fn ws(r: &mut SmallRng, out: &mut Vec<u8>) {
    match r.random_range(0..6) {
        0 => out.push(b' '),
        1 => out.extend_from_slice(b"\r\n  "),
        2 => out.push(b'\t'),
        _ => {}
    }
}

fn sep(r: &mut SmallRng, out: &mut Vec<u8>, c: u8) {
    ws(r, out);
    if r.random_range(0..40) != 0 {
        out.push(c);
    }
    ws(r, out);
}

fn string(r: &mut SmallRng, out: &mut Vec<u8>) {
    let keys = [
        "execute",
        "id",
        "return",
        "a",
        "name",
        "meta-type",
        "arguments",
        "data",
    ];
    let quote = if r.random_range(0..15) == 0 {
        b'\''
    } else {
        b'"'
    };
    out.push(quote);
    match r.random_range(0..10) {
        0..=4 => out.extend_from_slice(keys[r.random_range(0..keys.len())].as_bytes()),
        5 => {
            let pieces: [&[u8]; 9] = [
                b"\\n",
                b"\\u0041",
                b"\\ud83d\\ude00",
                b"\\ud800",
                b"\xc3\xa9",
                b"\xff",
                b"\x01",
                b"\\'",
                b"\\x",
            ];
            out.extend_from_slice(b"x");
            out.extend_from_slice(pieces[r.random_range(0..pieces.len())]);
        }
        _ => {
            let n = r.random_range(0..40);
            out.extend((0..n).map(|_| b"abcdefghij-_ ./:,{}[]"[r.random_range(0..21)]));
        }
    }
    if r.random_range(0..60) != 0 {
        out.push(quote);
    }
}

#[test]
fn fast_and_general_paths_agree_around_every_limit() {
    let mut r = SmallRng::seed_from_u64(0xfa57);
    let mut clean = 0;
    for case in 0..1500u64 {
        let mut input = Vec::new();
        for _ in 0..r.random_range(1..4) {
            // Mostly objects (where the fast path runs), sometimes a scalar.
            if r.random_range(0..8) == 0 {
                value(&mut r, 0, &mut input);
            } else {
                value(&mut r, 4, &mut input);
                let mut obj = b"{\"return\": ".to_vec();
                obj.append(&mut input);
                obj.extend_from_slice(b", \"id\": 1}");
                input = obj;
            }
            ws(&mut r, &mut input);
            input.push(b'\n');
        }
        let dialect = if case % 3 == 0 {
            Dialect::Strict
        } else {
            Dialect::Qemu
        };
        let depth = [3u16, 6, 1024][r.random_range(0..3)];
        let cfg = FramerConfig::new()
            .with_dialect(dialect)
            .with_max_depth(depth);
        let reference = check(&input, 1 << 16, cfg, case);
        // Every buffer size around each delivered message's length, and a
        // few small ones.
        let mut caps: Vec<usize> = vec![1, 2, 8, 17];
        for o in &reference {
            if let Out::Msg { bytes, .. } = o {
                let l = bytes.len();
                caps.extend([l.saturating_sub(2), l.saturating_sub(1), l, l + 1]);
            }
        }
        for cap in caps.into_iter().filter(|&c| c > 0) {
            let got = check(&input, cap, cfg, case ^ cap as u64);
            // (After an error, what a cut message leaves behind may split
            // differently: the limit is only checked on clean input.)
            if !reference.iter().all(|o| matches!(o, Out::Msg { .. })) {
                continue;
            }
            clean += 1;
            // Messages that fit are delivered as with a large buffer;
            // those that do not are reported with their length.
            let fitting: Vec<&Out> = reference
                .iter()
                .filter(|o| matches!(o, Out::Msg { bytes, .. } if bytes.len() <= cap))
                .collect();
            for f in fitting {
                assert!(got.contains(f), "cap {cap}: {f:?} missing from {got:?}");
            }
            for o in &reference {
                if let Out::Msg { bytes, .. } = o {
                    // An object just too big for the buffer (smaller
                    // buffers also cut the messages around it).
                    if bytes.len() > cap && bytes.len() <= cap + 2 && bytes.first() == Some(&b'{') {
                        assert!(
                            got.contains(&Out::Oversized(bytes.len())),
                            "cap {cap}: no Oversized({}) in {got:?}",
                            bytes.len()
                        );
                    }
                }
            }
        }
    }
    assert!(clean > 1000, "only {clean} clean buffer-size checks");
}

#[test]
#[cfg_attr(
    not(feature = "duplicate-keys"),
    ignore = "asserts the behaviour of `duplicate-keys`"
)]
fn pretty_printed_and_escaped_keys_agree() {
    let inputs: [&[u8]; 6] = [
        b"{\n    \"return\": {\n        \"a\": [\n            1,\n            true\n        ]\n    }\n}\n",
        b"{\"id\": 1, \"i\\u0064\": 2}",
        b"{\"return\": {\"a\": 1, \"a\": 2}, \"id\": 3}",
        b"{\"x\": 1, \"x\": 2}",
        b"{\"a\": {\"b\": {\"c\": {\"d\": []}}}, \"e\": {}}",
        b"{\"a\": [[], {}, [{}], \"\"], \"b\": -0, \"c\": 0.5}",
    ];
    for input in inputs {
        for cfg in [
            FramerConfig::new(),
            FramerConfig::new().with_dialect(Dialect::Strict),
            FramerConfig::new().with_max_depth(3),
        ] {
            let whole = check(input, 1 << 12, cfg, 7);
            let depth = Out::Err(b"JSON nesting depth limit exceeded".to_vec());
            if cfg.max_depth() == 3 && whole[0] == depth {
                // Too deep: QEMU's error, then the rest read as new input
                // (one outcome per stray closer and per scalar).
                assert!(whole.len() > 1 && whole.iter().filter(|o| **o == depth).count() == 1);
            } else {
                assert_eq!(whole.len(), 1, "{whole:?}");
            }
        }
    }
    // A duplicate top-level key found by the fast path is QEMU's error.
    let outs = check(b"{\"x\": 1, \"x\": 2}", 64, FramerConfig::new(), 1);
    assert_eq!(
        outs,
        vec![Out::Err(b"JSON parse error, duplicate key".to_vec())]
    );
}
