//! Unit tests of the framer's QEMU semantics: duplicate keys at any depth
//! (through every spill path), QEMU's limits and recovery, NUL in stray
//! tokens, QEMU's token counts kept by the fast path. Every input is fed
//! whole, byte by byte and in random chunks, which must agree.

use super::*;
use rand::{rngs::SmallRng, Rng, SeedableRng};
use std::vec::Vec;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Out {
    Msg(Vec<u8>),
    Err(Vec<u8>),
}

fn run(input: &[u8], cap: usize, cfg: FramerConfig, sizes: &mut dyn FnMut() -> usize) -> Vec<Out> {
    let mut buf = std::vec![0u8; cap];
    let mut f = Framer::with_config(&mut buf[..], cfg);
    let mut outs = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        let n = sizes().clamp(1, rest.len());
        let mut chunk = &rest[..n];
        rest = &rest[n..];
        while !chunk.is_empty() {
            let fed = f.feed(chunk);
            match fed.frame {
                Some(Frame::Message(m)) => outs.push(Out::Msg(m.as_bytes().to_vec())),
                Some(Frame::Error(e)) => outs.push(Out::Err(e.desc_pieces().concat())),
                None => {}
            }
            chunk = &chunk[fed.consumed..];
        }
    }
    outs
}

/// Whole, byte by byte and random chunks agree; returns the outcome.
fn all(input: &[u8], cap: usize, cfg: FramerConfig) -> Vec<Out> {
    let whole = run(input, cap, cfg, &mut || usize::MAX);
    assert_eq!(whole, run(input, cap, cfg, &mut || 1), "1-byte feeding");
    let mut r = SmallRng::seed_from_u64(input.len() as u64);
    for max in [3usize, 17, 300] {
        let got = run(input, cap, cfg, &mut || r.random_range(1..=max));
        assert_eq!(whole, got, "random chunks up to {max}");
    }
    whole
}

fn err(s: &str) -> Out {
    Out::Err(s.as_bytes().to_vec())
}

fn msg(s: &[u8]) -> Out {
    Out::Msg(s.to_vec())
}

const DUP: &str = "JSON parse error, duplicate key";

#[test]
#[cfg_attr(
    not(feature = "duplicate-keys"),
    ignore = "asserts the behaviour of `duplicate-keys`"
)]
fn duplicate_keys_at_any_depth_in_qemu_order() {
    let cfg = FramerConfig::new();
    let cases: &[(&[u8], &str)] = &[
        // The brief's two cases (qemu-storage-daemon 10.0.2 answers both so).
        (
            br#"{"execute":"query-status","arguments":{"a":1,"a":2},"id":3}"#,
            DUP,
        ),
        (
            br#"{"execute":"query-status","id":{"a":1,"b":{"c":1,"c":2}}}"#,
            DUP,
        ),
        // QEMU checks a key once its value is parsed: the value's error wins.
        (
            br#"{"a":1,"a":[1 2]}"#,
            "JSON parse error, expected separator in list",
        ),
        // A nested duplicate before a later grammar error wins.
        (br#"{"a":{"b":1,"b":2},"c":[1 2]}"#, DUP),
        (br#"[{"x":1},{"y":[{"z":0,"z":0}]}, 1 2]"#, DUP),
        // A grammar error before the duplicate wins.
        (
            br#"{"a":[1 2],"b":{"c":1,"c":2}}"#,
            "JSON parse error, expected separator in list",
        ),
        // Escapes decode to QEMU's modified UTF-8; quote styles do not matter.
        (br#"{"a":1,"\u0061":2}"#, DUP),
        (b"{\"\\u0000\":1,\"\xc0\x80\":2}", DUP),
        (br#"{"x":{'k':1,"k":2}}"#, DUP),
        (
            b"{\"x\":{\"\\ud83d\\ude00\":1,\"\\u00e9\":2,\"\xc3\xa9\":3}}",
            DUP,
        ),
        // A member still being read when the grammar fails is not compared.
        (br#"{"a":1,"a":}"#, "JSON parse error, expecting value"),
        (
            br#"{"a":{"k":1,"k":nul}}"#,
            "JSON parse error, invalid keyword 'nul'",
        ),
    ];
    for (input, want) in cases {
        for cap in [input.len(), input.len() + 3, input.len() + 9, 4096] {
            assert_eq!(
                all(input, cap, cfg),
                std::vec![err(want)],
                "{} with cap {cap}",
                String::from_utf8_lossy(input)
            );
        }
    }
    // Distinct keys pass, in every shape; the strict dialect and the switch
    // allow duplicates.
    let ok = br#"{"a":{"a":{"a":1},"b":[{"a":1,"b":2}]},"b":{"\u0061":1,"b":"a"}}"#;
    assert_eq!(all(ok, 4096, cfg), std::vec![msg(ok)]);
    let dup = br#"{"a":{"b":1,"b":2}}"#;
    let strict = FramerConfig::new().with_dialect(Dialect::Strict);
    assert_eq!(all(dup, 64, strict), std::vec![msg(dup)]);
    #[cfg(feature = "duplicate-keys")]
    {
        let off = FramerConfig::new().with_duplicate_keys(false);
        assert_eq!(all(dup, 64, off), std::vec![msg(dup)]);
    }
}

#[cfg(feature = "duplicate-keys")]
/// A random object tree; `dups` makes duplicate keys likely.
fn tree(r: &mut SmallRng, depth: u32, dups: bool, out: &mut Vec<u8>) {
    let pick = if depth > 4 {
        r.random_range(0..3)
    } else {
        r.random_range(0..6)
    };
    match pick {
        0 => out.extend_from_slice(b"1"),
        1 => out.extend_from_slice(b"\"s\""),
        2 => out.extend_from_slice(b"[]"),
        3 => {
            out.push(b'[');
            for j in 0..r.random_range(1..4) {
                if j > 0 {
                    out.push(b',');
                }
                tree(r, depth + 1, dups, out);
            }
            out.push(b']');
        }
        _ => {
            out.push(b'{');
            let n = r.random_range(0..8);
            let space = if dups { 12 } else { 1000 };
            let mut used = std::collections::HashSet::new();
            for j in 0..n {
                let mut k = r.random_range(0..space);
                if !dups {
                    while !used.insert(k) {
                        k = r.random_range(0..space);
                    }
                }
                if j > 0 {
                    out.extend_from_slice(if r.random_bool(0.3) { b" , " } else { b"," });
                }
                // Some keys escaped: `\u006b` is `k`.
                if r.random_bool(0.2) {
                    out.extend_from_slice(std::format!("\"\\u006b{k}\"").as_bytes());
                } else {
                    out.extend_from_slice(std::format!("\"k{k}\"").as_bytes());
                }
                out.extend_from_slice(if r.random_bool(0.3) { b" : " } else { b":" });
                tree(r, depth + 1, dups, out);
            }
            out.push(b'}');
        }
    }
}

#[cfg(feature = "duplicate-keys")]
/// Whether a valid tree has a duplicate key (serde_json's map size against
/// the member count of each object).
fn has_dup(v: &[u8]) -> bool {
    fn walk(v: &serde_json::Value, raw: &mut &[u8]) -> bool {
        let _ = raw;
        match v {
            serde_json::Value::Array(a) => a.iter().any(|x| walk(x, raw)),
            serde_json::Value::Object(m) => m.values().any(|x| walk(x, raw)),
            _ => false,
        }
    }
    // Count members per object by a scan; serde_json keeps the last of
    // equal keys, so a smaller map means a duplicate.
    let value: serde_json::Value = serde_json::from_slice(v).unwrap();
    let mut raw = v;
    let _ = walk(&value, &mut raw);
    count_members(v) != count_map_entries(&value)
}

#[cfg(feature = "duplicate-keys")]
fn count_members(v: &[u8]) -> usize {
    // Every `:` outside strings is one member (keys hold no `:` here).
    v.iter().filter(|&&b| b == b':').count()
}

#[cfg(feature = "duplicate-keys")]
fn count_map_entries(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::Array(a) => a.iter().map(count_map_entries).sum(),
        serde_json::Value::Object(m) => m.len() + m.values().map(count_map_entries).sum::<usize>(),
        _ => 0,
    }
}

#[test]
#[cfg(feature = "duplicate-keys")]
fn duplicate_keys_match_a_reference_through_every_spill() {
    // Buffers just big enough for the message leave the key stack no room:
    // spills, checks against the prefix walked backwards, keys checked at
    // once with an empty stack.
    let mut r = SmallRng::seed_from_u64(0xd0b1e);
    let runs = if cfg!(miri) { 20 } else { 400 };
    let (mut seen_dup, mut seen_ok) = (0, 0);
    for t in 0..runs {
        let mut v = Vec::new();
        v.push(b'{');
        v.extend_from_slice(b"\"root\":");
        tree(&mut r, 0, t % 2 == 0, &mut v);
        v.push(b'}');
        let want = if has_dup(&v) {
            seen_dup += 1;
            err(DUP)
        } else {
            seen_ok += 1;
            msg(&v)
        };
        for extra in [0usize, 1, 5, 13, 40, 4096] {
            let cap = v.len() + extra;
            let got = run(&v, cap, FramerConfig::new(), &mut || usize::MAX);
            assert_eq!(
                got,
                std::vec![want.clone()],
                "{} cap {cap}",
                String::from_utf8_lossy(&v)
            );
            let got = run(&v, cap, FramerConfig::new(), &mut || 1);
            assert_eq!(got, std::vec![want.clone()], "bytewise, cap {cap}");
        }
    }
    assert!(
        seen_dup > runs / 10 && seen_ok > runs / 10,
        "{seen_dup} {seen_ok}"
    );
}

/// `{"k0":0,"k1":0,…}` with `n` keys, optionally ending in a repeat of `k0`.
fn wide(n: usize, dup: bool) -> Vec<u8> {
    let mut v = b"{\"execute\":\"x\",\"arguments\":{".to_vec();
    for i in 0..n {
        if i > 0 {
            v.push(b',');
        }
        v.extend_from_slice(std::format!("\"{i:x}\":0").as_bytes());
    }
    if dup {
        v.extend_from_slice(b",\"0\":1");
    }
    v.extend_from_slice(b"}}");
    v
}

#[test]
#[cfg_attr(miri, ignore = "large inputs")]
#[cfg_attr(
    not(feature = "duplicate-keys"),
    ignore = "asserts the behaviour of `duplicate-keys`"
)]
fn many_keys_filling_the_buffer() {
    for n in [2_000usize, 30_000] {
        for dup in [false, true] {
            let v = wide(n, dup);
            // Exactly full, and with some room for the key stack.
            for cap in [v.len(), v.len() + 1000, v.len() * 2] {
                let got = run(&v, cap, FramerConfig::new(), &mut || usize::MAX);
                let want = if dup { err(DUP) } else { msg(&v) };
                assert_eq!(got, std::vec![want], "n {n} cap {cap}");
            }
        }
    }
    // 1024 nested objects, each with two members: `{"a":0,"b":{…}}`.
    let mut v = Vec::new();
    for _ in 0..1024 {
        v.extend_from_slice(b"{\"a\":0,\"b\":");
    }
    v.extend_from_slice(b"0");
    v.extend(std::iter::repeat_n(b'}', 1024));
    for cap in [v.len(), v.len() + 100, 1 << 16] {
        assert_eq!(all(&v, cap, FramerConfig::new()), std::vec![msg(&v)]);
    }
    let mut d = v.clone();
    let at = d.len() - 1024 - 1;
    d.splice(at..at + 1, b"0,\"a\":1".iter().copied());
    for cap in [d.len(), d.len() + 100, 1 << 16] {
        assert_eq!(all(&d, cap, FramerConfig::new()), std::vec![err(DUP)]);
    }
}

#[test]
fn depth_error_then_the_rest_as_new_input() {
    let mut v = std::vec![b'['; 1025];
    v.extend(std::vec![b']'; 1025]);
    let mut want = std::vec![err("JSON nesting depth limit exceeded")];
    want.extend(std::iter::repeat_n(
        err("JSON parse error, expecting value"),
        1025,
    ));
    for cap in [64, 4096] {
        assert_eq!(all(&v, cap, FramerConfig::new()), want);
    }
}

#[test]
fn nul_in_a_stray_token_ends_its_text() {
    let cfg = FramerConfig::new();
    let stray = |s: &str| err(&std::format!("JSON parse error, stray '{s}'"));
    assert_eq!(all(b"\x00\n", 64, cfg), std::vec![stray("")]);
    assert_eq!(all(b"\"ab\x00\n", 64, cfg), std::vec![stray("\"ab")]);
    assert_eq!(all(b"\"\\\x00\"\n", 64, cfg), std::vec![stray("\"\\")]);
    assert_eq!(all(b"1\x00\n", 64, cfg), std::vec![msg(b"1"), stray("")]);
    assert_eq!(
        all(b"tru\x00e\n", 64, cfg),
        std::vec![err("JSON parse error, invalid keyword 'tru'"), stray("")]
    );
    // The token itself keeps every byte.
    let mut buf = [0u8; 16];
    let mut f = Framer::new(&mut buf[..]);
    let fed = f.feed(b"\"a\x00");
    assert!(
        matches!(fed.frame, Some(Frame::Error(FrameError::Stray { token })) if token == b"\"a\x00")
    );
}

#[test]
fn token_counts_agree_between_the_fast_path_and_the_state_machine() {
    let inputs: [&[u8]; 4] = [
        b"{\"a\": [1, 2, {\"b\": null}], \"c\" : \"d\" ,\"e\":{}}",
        b"{\n  \"return\": {\n    \"x\": [\n      true\n    ]\n  }\n}",
        b"[ [], {}, [[ ]], \"s\", -0, 1.5e3 ]",
        include_bytes!("../../tests/data/qemu-system-7.2.c2s"),
    ];
    for input in inputs {
        let counts = |sizes: &mut dyn FnMut() -> usize| {
            let mut buf = std::vec![0u8; 1 << 16];
            let mut f = Framer::new(&mut buf[..]);
            let mut got = Vec::new();
            let mut rest = input;
            while !rest.is_empty() {
                let n = sizes().clamp(1, rest.len());
                let mut chunk = &rest[..n];
                rest = &rest[n..];
                while !chunk.is_empty() {
                    let fed = f.feed(chunk);
                    let done = fed.frame.is_some();
                    chunk = &chunk[fed.consumed..];
                    if done {
                        got.push((f.st.ntok, f.st.ws, f.st.pos));
                    }
                }
            }
            got
        };
        let whole = counts(&mut || usize::MAX);
        assert_eq!(whole, counts(&mut || 1));
        assert!(!whole.is_empty());
    }
    // `{"a": [1]}`: 8 tokens, 1 whitespace byte.
    let mut buf = [0u8; 64];
    let mut f = Framer::new(&mut buf[..]);
    assert!(f.feed(b"{\"a\": [1]}").frame.is_some());
    assert_eq!((f.st.ntok, f.st.ws), (7, 1));
}

#[test]
#[cfg_attr(miri, ignore = "2 MiB of input")]
fn token_count_limit_then_the_rest_as_new_input() {
    // `[` and 1,048,576 x `1,` are 2,097,153 tokens: the last `,` is one
    // too many. Then `1]` reads anew: `1` (ended by `]`) and a stray `]`.
    let mut v = b"[".to_vec();
    v.extend(b"1,".repeat(1 << 20));
    v.extend_from_slice(b"1]");
    let got = run(&v, 4096, FramerConfig::new(), &mut || 65536);
    assert_eq!(
        got,
        std::vec![
            err("JSON token count limit exceeded"),
            msg(b"1"),
            err("JSON parse error, expecting value")
        ]
    );
}

#[test]
#[cfg_attr(miri, ignore = "64 MiB of input")]
fn a_token_past_64_mib_is_cut_and_the_next_command_answered() {
    // An unterminated string: QEMU's lexer cuts the token after 64 MiB + 1
    // bytes (the quote and 64 MiB of `x`), the message is dropped with the
    // size error, and what follows is new input.
    let mut v = b"{\"execute\":\"x\",\"id\":\"".to_vec();
    v.extend(std::iter::repeat_n(b' ', MAX_TOKEN_SIZE));
    v.extend_from_slice(b"{\"execute\":\"query-status\"}");
    let got = run(&v, 4096, FramerConfig::new(), &mut || 1 << 20);
    assert_eq!(
        got,
        std::vec![
            err("JSON token size limit exceeded"),
            msg(b"{\"execute\":\"query-status\"}")
        ]
    );
    // A message whose tokens reach 64 MiB: the token that crosses it is the
    // error; the rest (`,"b"]`) is new input.
    let mut v = b"[\"".to_vec();
    v.extend(std::iter::repeat_n(b'a', MAX_TOKEN_SIZE - 10));
    v.extend_from_slice(b"\",\"bbbbbbbbbb\",\"c\"]");
    let got = run(&v, 4096, FramerConfig::new(), &mut || 1 << 20);
    assert_eq!(
        got,
        std::vec![
            err("JSON token size limit exceeded"),
            err("JSON parse error, expecting value"),
            msg(b"\"c\""),
            err("JSON parse error, expecting value")
        ]
    );
}

#[test]
fn framer_size() {
    let size = core::mem::size_of::<Framer<&mut [u8]>>();
    std::println!("size_of::<Framer<&mut [u8]>>() = {size} bytes");
    assert!(size <= 800, "{size}");
}

#[test]
fn rejected_tells_where_a_bad_reply_stood() {
    let look = |input: &[u8], cap: usize| -> (Option<FirstKey>, Option<Vec<u8>>) {
        let mut buf = std::vec![0u8; cap];
        let mut f = Framer::new(&mut buf[..]);
        let mut rest = input;
        loop {
            let fed = f.feed(rest);
            rest = &rest[fed.consumed..];
            if let Some(Frame::Error(_)) = fed.frame {
                let r = f.rejected().expect("an error frame has a rejected message");
                return (r.first_key, r.id.map(|v| v.as_bytes().to_vec()));
            }
            assert!(f.rejected().is_none());
            assert!(!rest.is_empty(), "no error");
        }
    };
    let id7 = Some(b"7".to_vec());
    // Invalid UTF-8 (a lexical error: 0xFF), before and after `id`.
    assert_eq!(
        look(b"{\"return\": \"a\xff\xfeb\xc3\x28c\", \"id\": 7}", 256),
        (Some(FirstKey::Return), None)
    );
    assert_eq!(
        look(b"{\"id\": 7, \"return\": \"a\xff\xfeb\xc3\x28c\"}", 256),
        (Some(FirstKey::Other), id7.clone())
    );
    // Invalid UTF-8 without a lexical error, and a lone surrogate: grammar
    // errors, reported when the message ends, with `id` read.
    assert_eq!(
        look(b"{\"error\": \"b\xc3\x28c\", \"id\": 7}", 256),
        (Some(FirstKey::Error), None)
    );
    assert_eq!(
        look(b"{\"error\": 1, \"id\": 7, \"x\": \"b\xc3\x28c\"}", 256),
        (Some(FirstKey::Error), id7.clone())
    );
    assert_eq!(
        look(
            b"{\"return\": {}, \"id\": {\"x\": [1]}, \"y\": \"\\ud800\"}",
            256
        ),
        (Some(FirstKey::Return), Some(b"{\"x\": [1]}".to_vec()))
    );
    // Nesting 100,000 deep inside a reply: the depth error at the 1025th.
    let mut deep = b"{\"id\": \"c1\", \"return\": ".to_vec();
    deep.extend(std::vec![b'['; 100_000]);
    assert_eq!(
        look(&deep, 4096),
        (Some(FirstKey::Other), Some(b"\"c1\"".to_vec()))
    );
    // Far too big for the buffer and never ending: QEMU's token limit ends
    // it, and the first key is still known.
    if !cfg!(miri) {
        let mut big = b"{\"return\": \"".to_vec();
        big.extend(std::iter::repeat_n(b'g', MAX_TOKEN_SIZE + 10));
        assert_eq!(look(&big, 4096), (Some(FirstKey::Return), None));
    }
    // Events, greetings; a stray byte outside any message has nothing.
    assert_eq!(look(b"{\"event\": @}", 64), (Some(FirstKey::Event), None));
    assert_eq!(
        look(b"{\"QMP\": {} \"x\"}", 64),
        (Some(FirstKey::Qmp), None)
    );
    assert_eq!(look(b"\xff", 64), (None, None));
    // An oversized reply: the key and `id` that fit are kept.
    let mut over = b"{\"id\": 5, \"return\": \"".to_vec();
    over.extend(std::iter::repeat_n(b'x', 500));
    over.extend_from_slice(b"\"}");
    assert_eq!(
        look(&over, 64),
        (Some(FirstKey::Other), Some(b"5".to_vec()))
    );
}

#[test]
#[cfg_attr(
    not(feature = "duplicate-keys"),
    ignore = "asserts the behaviour of `duplicate-keys`"
)]
fn wide_objects_with_escaped_keys_match_a_reference() {
    // Objects beyond the small-segment size: heapsort, binary searches and
    // backward prefix walks, with escaped keys (`\u006b` is `k`) among
    // plain ones, in buffers that force spills.
    let mut r = SmallRng::seed_from_u64(0x5ca1e);
    let runs = if cfg!(miri) { 4 } else { 120 };
    for t in 0..runs {
        let n = r.random_range(13..120);
        let space = if t % 2 == 0 { n * 2 } else { 100_000 };
        let mut keys: Vec<usize> = (0..n).map(|_| r.random_range(0..space)).collect();
        if t % 2 == 1 {
            keys.sort_unstable();
            keys.dedup();
        }
        let mut v = b"{\"x\":[1,{\"y\":0}],\"o\":{".to_vec();
        for (j, k) in keys.iter().enumerate() {
            if j > 0 {
                v.push(b',');
            }
            let key = if r.random_bool(0.3) {
                std::format!("\"\\u006b{k}\"")
            } else {
                std::format!("\"k{k}\"")
            };
            v.extend_from_slice(key.as_bytes());
            v.push(b':');
            if r.random_bool(0.2) {
                v.extend_from_slice(b"{\"a\":[\"}\"],\"b\":\"\\\"\"}");
            } else {
                v.push(b'0');
            }
        }
        v.extend_from_slice(b"}}");
        let mut distinct = keys.clone();
        distinct.sort_unstable();
        distinct.dedup();
        let want = if distinct.len() < keys.len() {
            err(DUP)
        } else {
            msg(&v)
        };
        for extra in [0usize, 7, 64, 1 << 12] {
            let cap = v.len() + extra;
            let whole = run(&v, cap, FramerConfig::new(), &mut || usize::MAX);
            assert_eq!(
                whole,
                std::vec![want.clone()],
                "cap {cap}: {}",
                String::from_utf8_lossy(&v)
            );
            let mut c = SmallRng::seed_from_u64(t as u64);
            let got = run(&v, cap, FramerConfig::new(), &mut || c.random_range(1..40));
            assert_eq!(got, whole, "chunked, cap {cap}");
        }
    }
}
