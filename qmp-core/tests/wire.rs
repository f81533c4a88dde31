//! Wire-layer tests: framing, scanning and QEMU's error semantics.

use qmp_core::scan::{Dialect, Frame, FrameError, Framer, FramerConfig};
use rand::{rngs::SmallRng, Rng, SeedableRng};

/// An owned outcome, comparable across chunkings.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Out {
    Msg(Vec<u8>),
    Err(Vec<u8>),
    Oversized(usize),
}

fn desc(e: &FrameError<'_>) -> Vec<u8> {
    let mut v = Vec::new();
    for p in e.desc_pieces() {
        v.extend_from_slice(p);
    }
    v
}

/// Feeds `input` in the chunks given by `sizes` (cycled), collecting outcomes.
fn run_chunked(
    input: &[u8],
    cap: usize,
    cfg: FramerConfig,
    sizes: &mut dyn FnMut() -> usize,
) -> Vec<Out> {
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
            assert!(fed.consumed <= chunk.len());
            let frame_seen = fed.frame.is_some();
            match fed.frame {
                Some(Frame::Message(m)) => outs.push(Out::Msg(m.as_bytes().to_vec())),
                Some(Frame::Error(FrameError::Oversized { len })) => outs.push(Out::Oversized(len)),
                Some(Frame::Error(e)) => outs.push(Out::Err(desc(&e))),
                Some(_) => unreachable!(),
                None => {}
            }
            assert!(fed.consumed > 0 || frame_seen, "no progress");
            chunk = &chunk[fed.consumed..];
        }
    }
    outs
}

fn run(input: &[u8]) -> Vec<Out> {
    run_chunked(input, 1 << 20, FramerConfig::new(), &mut || usize::MAX)
}

fn all_chunkings(input: &[u8], cap: usize, cfg: FramerConfig, random_runs: usize) -> Vec<Out> {
    let whole = run_chunked(input, cap, cfg, &mut || usize::MAX);
    let bytewise = run_chunked(input, cap, cfg, &mut || 1);
    assert_eq!(whole, bytewise, "1-byte feeding differs");
    let mut rng = SmallRng::seed_from_u64(0x5eed);
    for _ in 0..random_runs {
        let max = [2usize, 7, 64, 4096][rng.random_range(0..4)];
        let mut r = SmallRng::seed_from_u64(rng.random());
        let got = run_chunked(input, cap, cfg, &mut || r.random_range(1..=max));
        assert_eq!(whole, got, "random chunking differs");
    }
    whole
}

fn msg(s: &[u8]) -> Out {
    Out::Msg(s.to_vec())
}

fn err(s: &[u8]) -> Out {
    Out::Err(s.to_vec())
}

const S2C: &[u8] = include_bytes!("data/qemu-system-7.2.s2c");
const C2S: &[u8] = include_bytes!("data/qemu-system-7.2.c2s");
const QGA_S2C: &[u8] = include_bytes!("data/qga-7.2.s2c");
const QGA_C2S: &[u8] = include_bytes!("data/qga-7.2.c2s");

/// Splits a transcript at its line endings (each recorded message is one
/// line), for an independent reference.
fn lines(data: &[u8]) -> Vec<Vec<u8>> {
    data.split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l).to_vec())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn transcript_qemu_system_every_chunking() {
    let outs = all_chunkings(S2C, 1 << 20, FramerConfig::new(), 1000);
    let expected: Vec<Out> = lines(S2C).into_iter().map(Out::Msg).collect();
    assert_eq!(outs, expected);
    for o in &outs {
        let Out::Msg(m) = o else { unreachable!() };
        let v: serde_json::Value = serde_json::from_slice(m).unwrap();
        assert!(v.is_object());
    }
    let c2s = all_chunkings(C2S, 4096, FramerConfig::new(), 200);
    assert_eq!(
        c2s,
        lines(C2S).into_iter().map(Out::Msg).collect::<Vec<_>>()
    );
}

#[test]
fn transcript_schema_oversized_with_small_buffer() {
    // query-commands (6.5 KB) and query-qmp-schema (207 KB) exceed 4 KiB;
    // with 8 KiB only the schema does. Each yields one Oversized with its
    // exact size; every other message is delivered.
    for (cap, expected_oversized) in [(4096usize, vec![6500usize, 207_007]), (8192, vec![207_007])]
    {
        let outs = all_chunkings(S2C, cap, FramerConfig::new(), 500);
        let reference = lines(S2C);
        assert_eq!(outs.len(), reference.len());
        let mut oversized = Vec::new();
        for (o, r) in outs.iter().zip(&reference) {
            match o {
                Out::Oversized(len) => {
                    assert_eq!(*len, r.len());
                    assert!(r.len() > cap);
                    oversized.push(*len);
                }
                Out::Msg(m) => assert_eq!(m, r),
                Out::Err(e) => panic!("unexpected error {}", String::from_utf8_lossy(e)),
            }
        }
        assert_eq!(oversized, expected_oversized);
    }
}

#[test]
fn transcript_qga_every_chunking() {
    // The guest agent's replies: one starts with a raw 0xFF delimiter, which
    // is a lexical error for the framer (the QGA client treats it as a sync
    // marker); everything else is delivered.
    let outs = all_chunkings(QGA_S2C, 4096, FramerConfig::new(), 1000);
    let errors: Vec<_> = outs.iter().filter(|o| matches!(o, Out::Err(_))).collect();
    assert_eq!(errors, vec![&err(b"JSON parse error, stray '\xff'")]);
    let mut expected: Vec<Out> = lines(&QGA_S2C[1..]).into_iter().map(Out::Msg).collect();
    expected.insert(0, err(b"JSON parse error, stray '\xff'"));
    assert_eq!(outs, expected);
    // The big integer keeps all its digits.
    assert!(outs.contains(&msg(b"{\"return\": 1795285339653786000}")));
    // What the client sent, as qemu-ga's parser saw it: `garbage` is a
    // keyword ended by `{`, and the 0xFF discards the half-open object.
    let c2s = all_chunkings(QGA_C2S, 4096, FramerConfig::new(), 200);
    assert_eq!(c2s[3], err(b"JSON parse error, invalid keyword 'garbage'"));
    assert_eq!(c2s[4], err(b"JSON parse error, stray '\xff'"));
    assert_eq!(c2s[5], msg(b"{\"execute\":\"guest-ping\",\"id\":3}"));
    assert_eq!(c2s.len(), 11);
}

#[test]
fn qmp_test_malformed_matrix() {
    // qmp-test.c test_malformed, each followed by a valid request that must
    // still be delivered (assert_recovered).
    let recovered: &[u8] = b"{ \"execute\": \"no-such-cmd\" }";
    let cases: &[(&[u8], &[u8])] = &[
        (b"{]\n", b"JSON parse error, expecting value"),
        (b"{\xff", b"JSON parse error, stray '\xff'"),
        (b"{\x01", b"JSON parse error, stray '\x01'"),
        (b"{'bad \xff", b"JSON parse error, stray ''bad \xff'"),
        (
            b"{'execute': 'nonexistent', 'id':'\n",
            b"JSON parse error, stray ''\n'",
        ),
        (b"%p", b"JSON parse error, stray '%'"),
    ];
    for (input, text) in cases {
        let mut all = input.to_vec();
        all.extend_from_slice(recovered);
        let outs = all_chunkings(&all, 4096, FramerConfig::new(), 50);
        assert_eq!(
            outs,
            vec![err(text), msg(recovered)],
            "input {:?}",
            String::from_utf8_lossy(input)
        );
    }
    // `null` and friends are values; the agent rejects them later.
    assert_eq!(run(b"null\n"), vec![msg(b"null")]);
    assert_eq!(run(b"{}"), vec![msg(b"{}")]);
}

#[test]
fn observed_lexer_vectors() {
    assert_eq!(run(b"\xff"), vec![err(b"JSON parse error, stray '\xff'")]);
    // The `p` is swallowed by recovery.
    assert_eq!(run(b"%p"), vec![err(b"JSON parse error, stray '%'")]);
    assert_eq!(
        run(b"Abc{\"execute\":\"z\"}"),
        vec![
            err(b"JSON parse error, stray 'A'"),
            msg(b"{\"execute\":\"z\"}")
        ]
    );
    // `{` then `}}}`: `{}`, then two stray closers.
    assert_eq!(
        run(b"{}}}"),
        vec![
            msg(b"{}"),
            err(b"JSON parse error, expecting value"),
            err(b"JSON parse error, expecting value")
        ]
    );
    // Two top-level scalars, each ended by the following byte.
    assert_eq!(run(b"1 2\n"), vec![msg(b"1"), msg(b"2")]);
    assert_eq!(run(b"true "), vec![msg(b"true")]);
    assert_eq!(run(b"\"str\"\n"), vec![msg(b"\"str\"")]);
    // `{"a": @}`: a stray token, then the `}` that ended recovery.
    assert_eq!(
        run(b"{\"a\": @}"),
        vec![
            err(b"JSON parse error, stray '@'"),
            err(b"JSON parse error, expecting value")
        ]
    );
    // Every 0xFF or control byte while idle is its own error.
    assert_eq!(run(b"\xff\xff").len(), 2);
    assert_eq!(run(b"\x01\n\x02").len(), 2);
    // A number or keyword running into a non-ASCII byte: the byte is part of
    // the stray token.
    // QEMU 10 ends a number or keyword on any byte that cannot continue it
    // (its `TERMINAL` covers 0x80..0xFF too), so the 0xFF is a stray of its
    // own; older QEMU put it into the number's token.
    assert_eq!(
        run(b"1\xff"),
        vec![msg(b"1"), err(b"JSON parse error, stray '\xff'")]
    );
    assert_eq!(run(b"00 "), vec![err(b"JSON parse error, stray '00'")]);
    assert_eq!(run(b"-x"), vec![err(b"JSON parse error, stray '-x'")]);
    assert_eq!(run(b"[1e]"), vec![err(b"JSON parse error, stray '1e]'")]);
    // Several messages in one chunk, one message over many lines.
    assert_eq!(
        run(b"{\"a\":1}{\"b\":2}\r\n{\n  \"c\": [\n 1\n ]\n}\r\n"),
        vec![
            msg(b"{\"a\":1}"),
            msg(b"{\"b\":2}"),
            msg(b"{\n  \"c\": [\n 1\n ]\n}")
        ]
    );
}

#[test]
#[cfg_attr(
    not(feature = "duplicate-keys"),
    ignore = "asserts the behaviour of `duplicate-keys`"
)]
fn parser_error_texts() {
    let cases: &[(&[u8], &[u8])] = &[
        (b"{ \"execute\": }", b"expecting value"),
        (b"{]", b"expecting value"),
        (b"[{\"a\"]}", b"missing : in object pair"),
        (b"{\"a\":1,}", b"expecting value"),
        (b"{1:2}", b"key is not a string in object"),
        (b"{\"a\" 1}", b"missing : in object pair"),
        (b"{\"a\":1 \"b\":2}", b"expected separator in dict"),
        (b"[1 2]", b"expected separator in list"),
        (b"{\"a\":nul}", b"invalid keyword 'nul'"),
        (b"{\"a\":1,\"a\":2}", b"duplicate key"),
        (b"{\"a\":1,\"\\u0061\":2}", b"duplicate key"),
        (b"{'abc':32,}", b"expecting value"),
        (b"{32:'abc'}", b"key is not a string in object"),
        (b"{[1]:2}", b"key is not a string in object"),
        (b"{[1 2]:2}", b"expected separator in list"),
        (b"{true:1}", b"key is not a string in object"),
        (b"{nope:1}", b"invalid keyword 'nope'"),
        (b"truer ", b"invalid keyword 'truer'"),
        (b"\"\\q\"", b"invalid escape sequence in string"),
        (b"\"\\u00e9\\x\"", b"invalid escape sequence in string"),
        (b"\"\xc3\x28\"", b"invalid UTF-8 sequence in string"),
        (b"\"\xed\xa0\x80\"", b"invalid UTF-8 sequence in string"),
        (b"\"\xef\xbf\xbf\"", b"invalid UTF-8 sequence in string"),
        (b"\"\\uD800\"", b"\\uD800 is not a valid Unicode character"),
        (b"\"\\uDC00x\"", b"\\uDC00 is not a valid Unicode character"),
        (
            b"\"\\uD800\\u0041\"",
            b"\\uD800 is not a valid Unicode character",
        ),
        (b"\"\\uFFFF\"", b"\\uFFFF is not a valid Unicode character"),
        (
            b"\"\\uD83F\\uDFFE\"",
            b"\\uD83F\\uDFFE is not a valid Unicode character",
        ),
        (b"\"\\u12\"", b"\\u12\" is not a valid Unicode character"),
        (
            b"\"\\u12x45678\"",
            b"\\u12x4 is not a valid Unicode character",
        ),
    ];
    for (input, detail) in cases {
        let mut text = b"JSON parse error, ".to_vec();
        text.extend_from_slice(detail);
        let outs = all_chunkings(input, 256, FramerConfig::new(), 20);
        assert_eq!(
            outs,
            vec![err(&text)],
            "input {:?}",
            String::from_utf8_lossy(input)
        );
    }
    // QEMU 10's streamer ends a message as soon as either count goes
    // negative: `}` ends `[32,` (expecting value), and `]` is a stray closer
    // of its own (observed on qemu-storage-daemon 10.0.2).
    assert_eq!(
        all_chunkings(b"[32,}]", 256, FramerConfig::new(), 20),
        vec![
            err(b"JSON parse error, expecting value"),
            err(b"JSON parse error, expecting value")
        ]
    );
    // An error in a message is reported at its end; the next one is fine.
    assert_eq!(
        run(b"[1 2]{}"),
        vec![
            err(b"JSON parse error, expected separator in list"),
            msg(b"{}")
        ]
    );
    // A lexical error later in the same message wins over a grammar error.
    assert_eq!(
        run(b"[1 2 @]"),
        vec![
            err(b"JSON parse error, stray '@'"),
            err(b"JSON parse error, expecting value")
        ]
    );
}

#[test]
fn valid_strings_both_dialects() {
    let strict = FramerConfig::new().with_dialect(Dialect::Strict);
    for input in [
        &b"\"\\u00e9\""[..],
        b"\"\\uD83D\\uDE00\"",
        b"\"caf\xc3\xa9 \xf0\x9f\x98\x80\"",
        b"\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"",
        b"{\"a\":[1,-0,0.5,1e10,-2E-3,true,false,null,{}]}",
    ] {
        let mut with_ws = input.to_vec();
        with_ws.push(b' ');
        assert_eq!(run(&with_ws), vec![msg(input)]);
        assert_eq!(
            run_chunked(&with_ws, 256, strict, &mut || 1),
            vec![msg(input)]
        );
    }
    // QEMU's extensions.
    assert_eq!(run(b"{'a': 'it\\'s'}"), vec![msg(b"{'a': 'it\\'s'}")]);
    assert_eq!(run(b"\"\xc0\x80\" "), vec![msg(b"\"\xc0\x80\"")]);
    // Not in strict mode; noncharacters are fine there.
    assert!(matches!(
        run_chunked(b"\"\xc0\x80\" ", 64, strict, &mut || 9)[0],
        Out::Err(_)
    ));
    assert!(matches!(
        run_chunked(b"'a' ", 64, strict, &mut || 9)[0],
        Out::Err(_)
    ));
    assert_eq!(
        run_chunked(b"\"\\uFFFF\" ", 64, strict, &mut || 9),
        vec![msg(b"\"\\uFFFF\"")]
    );
}

#[test]
fn nesting_limit() {
    let nested = |n: usize| {
        let mut v = vec![b'['; n];
        v.extend(std::iter::repeat_n(b']', n));
        v
    };
    let ok = nested(1024);
    assert_eq!(run(&ok), vec![Out::Msg(ok.clone())]);
    // Like QEMU, the 1025th `[` is the error and is dropped with the message
    // so far; the rest is read as new input: each `]` is a stray closer.
    let expecting = err(b"JSON parse error, expecting value");
    let mut deep = nested(1025);
    deep.extend_from_slice(b"{\"x\":1}");
    let mut expected = vec![err(b"JSON nesting depth limit exceeded")];
    expected.extend(std::iter::repeat_n(expecting.clone(), 1025));
    expected.push(msg(b"{\"x\":1}"));
    assert_eq!(
        all_chunkings(&deep, 4096, FramerConfig::new(), 20),
        expected
    );
    // A configured lower limit: the third `[` is the error, then `1` is a
    // message of its own (ended by `]`) and each `]` a stray closer.
    let cfg = FramerConfig::new().with_max_depth(2);
    assert_eq!(
        run_chunked(b"[[1]][[[1]]]", 64, cfg, &mut || 100),
        vec![
            msg(b"[[1]]"),
            err(b"JSON nesting depth limit exceeded"),
            msg(b"1"),
            expecting.clone(),
            expecting.clone(),
            expecting.clone()
        ]
    );
    // Objects count too.
    let mut objs = b"{\"a\":".repeat(1025);
    objs.extend(b"1".iter().chain(b"}".repeat(1025).iter()));
    // The 1025th `{` is the error; then `"a"`, `:` and `1` are read anew.
    let mut expected = vec![
        err(b"JSON nesting depth limit exceeded"),
        msg(b"\"a\""),
        expecting.clone(),
        msg(b"1"),
    ];
    expected.extend(std::iter::repeat_n(expecting, 1025));
    assert_eq!(run(&objs), expected);
}

#[test]
fn hundred_thousand_brackets_linear_no_overflow() {
    // Runs on the test thread's default stack: a recursive scanner would
    // overflow it. Time is checked by the benchmark, not here.
    // QEMU restarts after each depth error: every 1025th `[` is one, and
    // 575 stay open (100,000 = 97 x 1025 + 575).
    let depth = err(b"JSON nesting depth limit exceeded");
    let mut input = vec![b'['; 100_000];
    let outs = run(&input);
    assert_eq!(outs, vec![depth.clone(); 97]);
    // The first 575 `]` close them (one message), each later one is a
    // stray closer.
    input.extend(vec![b']'; 100_000]);
    input.extend_from_slice(b"{}");
    let outs = run(&input);
    assert_eq!(outs.len(), 97 + 1 + 99_425 + 1);
    assert!(outs[..97].iter().all(|o| *o == depth));
    let mut open = vec![b'['; 575];
    open.extend(vec![b']'; 575]);
    assert_eq!(outs[97], Out::Msg(open));
    assert!(outs[98..99_523]
        .iter()
        .all(|o| *o == err(b"JSON parse error, expecting value")));
    assert_eq!(outs[99_523], msg(b"{}"));
}

#[test]
fn oversized_then_next_message() {
    let mut input = b"{\"return\": \"".to_vec();
    input.extend(vec![b'x'; 10_000]);
    input.extend_from_slice(b"\"}\r\n{\"return\": {}}\r\n");
    let outs = all_chunkings(&input, 100, FramerConfig::new(), 100);
    assert_eq!(outs, vec![Out::Oversized(10_014), msg(b"{\"return\": {}}")]);
    // A buffer exactly the size of the message is enough.
    assert_eq!(
        run_chunked(b"{\"a\":1}", 7, FramerConfig::new(), &mut || 1),
        vec![msg(b"{\"a\":1}")]
    );
    assert_eq!(
        run_chunked(b"{\"a\":1} ", 6, FramerConfig::new(), &mut || 1),
        vec![Out::Oversized(7)]
    );
    // A lexical error inside an oversized message ends it there; the bad
    // byte is lexed again on its own (a 0xFF delimiter stays visible).
    assert_eq!(
        all_chunkings(b"[\"aaaaaaaaaa\xff{}", 4, FramerConfig::new(), 50),
        vec![
            Out::Oversized(12),
            err(b"JSON parse error, stray '\xff'"),
            msg(b"{}")
        ]
    );
}

#[test]
fn scalar_waits_for_lookahead() {
    let mut buf = [0u8; 16];
    let mut f = Framer::new(&mut buf[..]);
    let fed = f.feed(b"42");
    assert_eq!(fed.consumed, 2);
    assert!(fed.frame.is_none());
    assert!(!f.is_idle());
    let fed = f.feed(b"\n");
    assert_eq!(fed.consumed, 0, "the lookahead byte is not consumed");
    assert!(matches!(fed.frame, Some(Frame::Message(m)) if m.as_bytes() == b"42"));
    let fed = f.feed(b"\n");
    assert_eq!(fed.consumed, 1);
    assert!(f.is_idle());
}

#[test]
fn members_spans() {
    let mut buf = [0u8; 512];
    let mut f = Framer::new(&mut buf[..]);
    let input = br#"{"execute" : "x", "arguments": {"a": [1, {"b": 2}]}, "id": 7}"#;
    let fed = f.feed(input);
    let Some(Frame::Message(m)) = fed.frame else {
        panic!()
    };
    let got: Vec<(Vec<u8>, Vec<u8>)> = m
        .members()
        .map(|m| (m.key.raw().to_vec(), m.value.as_bytes().to_vec()))
        .collect();
    assert_eq!(
        got,
        vec![
            (b"execute".to_vec(), b"\"x\"".to_vec()),
            (b"arguments".to_vec(), b"{\"a\": [1, {\"b\": 2}]}".to_vec()),
            (b"id".to_vec(), b"7".to_vec()),
        ]
    );
    // More members than are tracked: the rest are found by a re-scan.
    let mut many = String::from("{");
    for i in 0..20 {
        if i > 0 {
            many.push_str(", ");
        }
        many.push_str(&format!("\"k{i}\": {{\"v\": [{i}, \"}}\"]}}"));
    }
    many.push('}');
    let fed = f.feed(many.as_bytes());
    let Some(Frame::Message(m)) = fed.frame else {
        panic!()
    };
    let keys: Vec<String> = m
        .members()
        .map(|m| String::from_utf8(m.key.raw().to_vec()).unwrap())
        .collect();
    assert_eq!(keys, (0..20).map(|i| format!("k{i}")).collect::<Vec<_>>());
    let v: Vec<Vec<u8>> = m.members().map(|m| m.value.as_bytes().to_vec()).collect();
    assert_eq!(v[19], b"{\"v\": [19, \"}\"]}".to_vec());
}

#[test]
fn validate_one_value() {
    use qmp_core::scan::{validate, ValidateError};
    let cfg = FramerConfig::new();
    assert_eq!(
        validate(b"  {\"a\": 1} ", cfg).unwrap().as_bytes(),
        b"{\"a\": 1}"
    );
    assert_eq!(validate(b"42", cfg).unwrap().as_bytes(), b"42");
    assert_eq!(validate(b"1 2", cfg), Err(ValidateError::TrailingData));
    assert_eq!(validate(b"[1", cfg), Err(ValidateError::Incomplete));
    assert_eq!(validate(b"", cfg), Err(ValidateError::Empty));
    assert_eq!(validate(b"[1,]", cfg), Err(ValidateError::Invalid));
}

#[test]
fn regression_overflow_decided_per_token_not_per_flush() {
    // Found by the fuzz corpus replay: with bulk copies, a deep message that
    // also overflowed reported DepthLimit when fed whole but Oversized when
    // fed byte by byte. The buffer overflows first (byte 65), but QEMU's
    // depth limit is checked whatever our buffer made of the message: the
    // 1025th `[` is QEMU's error, and the rest is read as new input, as QEMU
    // does (this used to be one `Oversized(2050)`).
    let mut input = vec![b'['; 1025];
    input.extend(vec![b']'; 1025]);
    input.extend_from_slice(b"{}");
    let mut expected = vec![err(b"JSON nesting depth limit exceeded")];
    expected.extend(std::iter::repeat_n(
        err(b"JSON parse error, expecting value"),
        1025,
    ));
    expected.push(msg(b"{}"));
    assert_eq!(
        all_chunkings(&input, 64, FramerConfig::new(), 100),
        expected
    );
}

#[test]
fn regression_only_the_bad_byte_overflows() {
    // Found by the CI fuzz smoke (`frame`): with a 1-byte buffer, `"` then a
    // control byte. The message without the bad byte fits, so the bad byte
    // is part of the oversized message (not lexed again): Oversized(2).
    assert_eq!(
        all_chunkings(b"\"\x05{}", 1, FramerConfig::new(), 20),
        vec![Out::Oversized(2), Out::Oversized(2)]
    );
    // Already too big before the bad byte: the byte is lexed again.
    assert_eq!(
        all_chunkings(b"\"ab\xff{}", 2, FramerConfig::new(), 20),
        vec![
            Out::Oversized(3),
            err(b"JSON parse error, stray '\xff'"),
            msg(b"{}")
        ]
    );
}

/// With duplicate keys not checked (the clients' setting, and every framer
/// built without the `duplicate-keys` feature), what `FramerConfig::
/// duplicate_keys` documents is read: the envelope's last `execute`,
/// `arguments` and `id`, and lookups' first occurrence.
#[test]
fn repeated_keys_unchecked_read_as_documented() {
    let input = br#"{"execute":"stop","id":1,"execute":"cont","arguments":{"x":1,"x":2},"id":2}"#;
    let mut buf = [0u8; 256];
    let cfg = FramerConfig::new();
    #[cfg(feature = "duplicate-keys")]
    let cfg = cfg.with_duplicate_keys(false);
    assert!(!cfg.duplicate_keys());
    let mut framer = Framer::with_config(&mut buf[..], cfg);
    let fed = framer.feed(input);
    assert_eq!(fed.consumed, input.len());
    let Some(Frame::Message(m)) = fed.frame else {
        panic!("taken as a message: {:?}", fed.frame.is_some());
    };
    assert_eq!(m.get("execute").unwrap().as_bytes(), br#""stop""#);
    let req = m.request(false).expect("a request");
    assert!(req.name.eq_str("cont"));
    assert_eq!(req.id.unwrap().as_bytes(), b"2");
    let args = req.arguments.unwrap();
    assert_eq!(args.get("x").unwrap().as_bytes(), b"1");
}
