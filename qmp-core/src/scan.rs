//! The structural framer and JSON scanner shared by every role.
//!
//! [`Framer`] takes arbitrary byte chunks and yields complete top-level JSON
//! values, each validated and stored in the caller's buffer together with the
//! spans of its top-level members, or one [`FrameError`] per bad message.
//!
//! Semantics follow QEMU's classic JSON lexer, streamer and parser
//! (`qobject/json-lexer.c`, `json-streamer.c`, `json-parser.c`):
//!
//! * a message ends when its braces and brackets balance, counted the way
//!   QEMU's streamer counts them; a top-level scalar ends at the first byte
//!   that cannot continue it (that byte is not consumed);
//! * a byte that cannot start or continue a token (0xFE/0xFF, control bytes,
//!   `%`, uppercase letters outside strings, …) is a lexical error
//!   ([`FrameError::Stray`], reported at once with the token text); the
//!   framer then skips input to QEMU's resynchronisation point: a structural
//!   character, a control byte other than tab, or 0xFE/0xFF;
//! * grammar errors ([`FrameError::Syntax`]) are reported when the message
//!   ends, with the text of the first error in parse order, like QEMU's
//!   parser;
//! * nesting deeper than the limit (default 1024, like QEMU) yields one
//!   [`FrameError::DepthLimit`] and the rest of that message is skipped;
//! * a message larger than the buffer yields one [`FrameError::Oversized`]
//!   (with its size) once it has been skipped to its end.
//!
//! Two deliberate differences from QEMU, both in its limit paths: QEMU resets
//! its counters after a nesting error, so the rest of a too-deep message
//! produces follow-on errors (one per stray closer); we skip to the end of the
//! message and report one error. QEMU's size limit is 64 MiB of tokens; ours
//! is the caller's buffer. Duplicate keys are detected among the first
//! [`MAX_TRACKED_MEMBERS`] top-level members only (QEMU checks every object).
//!
//! No recursion: nesting is kept in a bit stack, so 10⁵ nested `[` cost
//! linear time and constant stack. String bodies are skipped with `memchr`
//! and a word-at-a-time check for control and non-ASCII bytes. Between the
//! first and last token of a message, a fast path with the grammar laid out
//! as code takes the common tokens (plain strings, integers, keywords,
//! structure) and hands anything else back to the state machine at a token
//! boundary, so every chunking still gives the same frames.
//!
//! ```
//! use qmp_core::scan::{Frame, FrameError, Framer};
//!
//! let mut buf = [0u8; 64];
//! let mut framer = Framer::new(&mut buf[..]);
//! let input = b"{\"execute\": \"stop\"}{\xff{\"execute\": \"cont\"}";
//! let mut rest = &input[..];
//! let mut seen = 0;
//! while !rest.is_empty() {
//!     let fed = framer.feed(rest);
//!     rest = &rest[fed.consumed..];
//!     match fed.frame {
//!         Some(Frame::Message(m)) => {
//!             assert!(m.get("execute").is_some());
//!             seen += 1;
//!         }
//!         Some(Frame::Error(e)) => assert_eq!(e.desc_pieces()[1], b"stray '"),
//!         Some(_) => {}
//!         None => {}
//!     }
//! }
//! assert_eq!(seen, 2);
//! ```

use crate::json::{JsonStr, RawJson};
use core::fmt;

mod fast;

/// QEMU's nesting limit (`MAX_NESTING` in `json-streamer.c`), and the largest
/// limit a [`FramerConfig`] accepts.
pub const MAX_DEPTH: u16 = 1024;

/// How many top-level members a message keeps spans for. Further members are
/// found by a re-scan of the (already validated) message.
pub const MAX_TRACKED_MEMBERS: usize = 8;

const DEPTH_WORDS: usize = MAX_DEPTH as usize / 64;

/// Which JSON the scanner accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Dialect {
    /// QEMU's parser: RFC 8259 plus single-quoted strings and the `\'`
    /// escape; strings are *modified* UTF-8 (`C0 80` is U+0000) and Unicode
    /// noncharacters are rejected, as `util/unicode.c` does.
    Qemu,
    /// Plain RFC 8259: double quotes only, standard UTF-8, noncharacters
    /// allowed (what `serde_json` accepts).
    Strict,
}

/// Framer settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct FramerConfig {
    max_depth: u16,
    dialect: Dialect,
}

impl Default for FramerConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl FramerConfig {
    /// QEMU's rules: nesting limit 1024, [`Dialect::Qemu`].
    pub const fn new() -> Self {
        FramerConfig {
            max_depth: MAX_DEPTH,
            dialect: Dialect::Qemu,
        }
    }

    /// Sets the nesting limit; values above [`MAX_DEPTH`] are clamped to it.
    #[must_use]
    pub const fn with_max_depth(mut self, depth: u16) -> Self {
        self.max_depth = if depth > MAX_DEPTH { MAX_DEPTH } else { depth };
        self
    }

    /// Sets the dialect.
    #[must_use]
    pub const fn with_dialect(mut self, dialect: Dialect) -> Self {
        self.dialect = dialect;
        self
    }

    /// The nesting limit.
    pub const fn max_depth(&self) -> u16 {
        self.max_depth
    }

    /// The dialect.
    pub const fn dialect(&self) -> Dialect {
        self.dialect
    }
}

/// What one [`Framer::feed`] call produced.
#[must_use = "`consumed` says how much of the input was used; `frame` may hold a message"]
#[derive(Debug)]
pub struct Feed<'a> {
    /// How many bytes of the input were consumed. Feed the rest again.
    pub consumed: usize,
    /// A complete message or an error, if one ended within the consumed bytes.
    pub frame: Option<Frame<'a>>,
}

/// A framing outcome.
#[derive(Debug)]
#[non_exhaustive]
pub enum Frame<'a> {
    /// A complete, valid top-level JSON value.
    Message(Message<'a>),
    /// A bad message; the framer has already moved past it.
    Error(FrameError<'a>),
}

/// Why a message was rejected. Each variant carries what is needed to build
/// QEMU's exact `desc` text ([`FrameError::desc_pieces`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError<'a> {
    /// A lexical error: `JSON parse error, stray '<token>'`. `token` is the
    /// partial token up to and including the offending byte (raw bytes, not
    /// necessarily UTF-8).
    Stray {
        /// The token text.
        token: &'a [u8],
    },
    /// A grammar error: `JSON parse error, <detail>`.
    Syntax(SyntaxError<'a>),
    /// `JSON nesting depth limit exceeded`. Reported as soon as the limit is
    /// passed; the rest of the message is skipped silently.
    DepthLimit,
    /// The message did not fit the buffer. Reported once the message has
    /// been skipped to its end (or to a lexical error inside it).
    Oversized {
        /// The size of the message in bytes, as far as it was read.
        len: usize,
    },
}

/// The first grammar error in a message, as QEMU's parser reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SyntaxError<'a> {
    /// `expecting value`
    ExpectingValue,
    /// `key is not a string in object`
    KeyNotString,
    /// `missing : in object pair`
    MissingColon,
    /// `duplicate key`
    DuplicateKey,
    /// `expected separator in dict`
    ExpectedDictSeparator,
    /// `expected separator in list`
    ExpectedListSeparator,
    /// `premature EOI`
    PrematureEoi,
    /// `invalid keyword '<word>'`
    InvalidKeyword(&'a [u8]),
    /// `invalid escape sequence in string`
    InvalidEscape,
    /// `<escape> is not a valid Unicode character`
    InvalidUnicode(&'a [u8]),
    /// `invalid UTF-8 sequence in string`
    InvalidUtf8,
}

impl<'a> FrameError<'a> {
    /// The `desc` text QEMU sends for this error, as byte pieces to be
    /// concatenated (the token pieces may hold any bytes; QEMU's writer turns
    /// invalid UTF-8 into `\uFFFD`). Unused pieces are empty.
    pub fn desc_pieces(&self) -> [&'a [u8]; 4] {
        const P: &[u8] = b"JSON parse error, ";
        match *self {
            FrameError::Stray { token } => [P, b"stray '", token, b"'"],
            FrameError::Syntax(s) => match s {
                SyntaxError::InvalidKeyword(w) => [P, b"invalid keyword '", w, b"'"],
                SyntaxError::InvalidUnicode(t) => [P, t, b" is not a valid Unicode character", b""],
                other => [P, other.detail(), b"", b""],
            },
            FrameError::DepthLimit => [b"JSON nesting depth limit exceeded", b"", b"", b""],
            FrameError::Oversized { .. } => [b"JSON token size limit exceeded", b"", b"", b""],
        }
    }
}

impl SyntaxError<'_> {
    fn detail(&self) -> &'static [u8] {
        match self {
            SyntaxError::ExpectingValue => b"expecting value",
            SyntaxError::KeyNotString => b"key is not a string in object",
            SyntaxError::MissingColon => b"missing : in object pair",
            SyntaxError::DuplicateKey => b"duplicate key",
            SyntaxError::ExpectedDictSeparator => b"expected separator in dict",
            SyntaxError::ExpectedListSeparator => b"expected separator in list",
            SyntaxError::PrematureEoi => b"premature EOI",
            SyntaxError::InvalidKeyword(_) => b"invalid keyword",
            SyntaxError::InvalidEscape => b"invalid escape sequence in string",
            SyntaxError::InvalidUnicode(_) => b"invalid Unicode escape",
            SyntaxError::InvalidUtf8 => b"invalid UTF-8 sequence in string",
        }
    }
}

impl fmt::Display for FrameError<'_> {
    /// QEMU's `desc` text; invalid UTF-8 shows as U+FFFD.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for piece in self.desc_pieces() {
            for chunk in piece.utf8_chunks() {
                f.write_str(chunk.valid())?;
                if !chunk.invalid().is_empty() {
                    f.write_str("\u{FFFD}")?;
                }
            }
        }
        if let FrameError::Oversized { len } = self {
            write!(f, " ({len} bytes)")?;
        }
        Ok(())
    }
}

impl core::error::Error for FrameError<'_> {}

#[cfg(feature = "defmt")]
impl defmt::Format for FrameError<'_> {
    fn format(&self, f: defmt::Formatter) {
        match self {
            FrameError::Stray { token } => defmt::write!(f, "stray {=[u8]}", token),
            FrameError::Syntax(_) => defmt::write!(f, "JSON syntax error"),
            FrameError::DepthLimit => defmt::write!(f, "JSON nesting depth limit exceeded"),
            FrameError::Oversized { len } => {
                defmt::write!(f, "oversized message ({=usize} bytes)", len)
            }
        }
    }
}

/// The span of one top-level member: key body (without quotes) and value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct MemberSpan {
    key_start: u32,
    key_end: u32,
    val_start: u32,
    val_end: u32,
    quote: u8,
    /// The key has no escapes (raw bytes compare as values).
    plain: bool,
}

/// One top-level member of an object message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member<'a> {
    /// The key (escaped body).
    pub key: JsonStr<'a>,
    /// The value.
    pub value: RawJson<'a>,
}

/// A complete, validated top-level JSON value, borrowed from the framer's
/// buffer, with the spans of its top-level members when it is an object.
#[derive(Clone, Copy)]
pub struct Message<'a> {
    bytes: &'a [u8],
    spans: &'a [MemberSpan],
    all_tracked: bool,
}

impl fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Message").field(&self.raw()).finish()
    }
}

impl<'a> Message<'a> {
    /// A message over bytes validated earlier (members found by re-scan).
    pub(crate) fn from_validated(bytes: &'a [u8]) -> Self {
        Message {
            bytes,
            spans: &[],
            all_tracked: false,
        }
    }

    /// The message bytes, exactly as received (no surrounding whitespace).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The message as a [`RawJson`] value.
    pub fn raw(&self) -> RawJson<'a> {
        RawJson::from_validated(self.bytes)
    }

    /// Whether the message is a JSON object.
    pub fn is_object(&self) -> bool {
        self.bytes.first() == Some(&b'{')
    }

    /// The top-level members, in input order (empty unless an object).
    pub fn members(&self) -> MessageMembers<'a> {
        let resume = if self.all_tracked || !self.is_object() {
            None
        } else {
            Some(self.spans.last().map_or(1, |s| s.val_end as usize))
        };
        MessageMembers {
            bytes: self.bytes,
            spans: self.spans.iter(),
            resume,
        }
    }

    /// The value of the first top-level member named `key`.
    pub fn get(&self, key: &str) -> Option<RawJson<'a>> {
        self.members().find(|m| m.key.eq_str(key)).map(|m| m.value)
    }
}

/// Iterator over the top-level members of a [`Message`].
#[derive(Clone, Debug)]
pub struct MessageMembers<'a> {
    bytes: &'a [u8],
    spans: core::slice::Iter<'a, MemberSpan>,
    resume: Option<usize>,
}

impl<'a> Iterator for MessageMembers<'a> {
    type Item = Member<'a>;

    fn next(&mut self) -> Option<Member<'a>> {
        if let Some(s) = self.spans.next() {
            return member_at(self.bytes, s);
        }
        let pos = self.resume?;
        match next_member(self.bytes, pos) {
            Some((span, next)) => {
                self.resume = Some(next);
                member_at(self.bytes, &span)
            }
            None => {
                self.resume = None;
                None
            }
        }
    }
}

fn member_at<'a>(bytes: &'a [u8], s: &MemberSpan) -> Option<Member<'a>> {
    let key = bytes.get(s.key_start as usize..s.key_end as usize)?;
    let value = bytes.get(s.val_start as usize..s.val_end as usize)?;
    Some(Member {
        key: JsonStr::from_validated(key, s.quote),
        value: RawJson::from_validated(value),
    })
}

/// Finds the next member of a validated top-level object after `pos` (the
/// end of the previous member's value, or 1 just after `{`).
fn next_member(bytes: &[u8], pos: usize) -> Option<(MemberSpan, usize)> {
    let mut i = skip_ws_and(bytes, pos, b',');
    let quote = *bytes.get(i)?;
    if quote != b'"' && quote != b'\'' {
        return None;
    }
    let key_end = skip_string(bytes, i + 1, quote)?;
    let key_start = i + 1;
    i = skip_ws_and(bytes, key_end + 1, b':');
    let val_start = i;
    let val_end = skip_value(bytes, i)?;
    Some((
        MemberSpan {
            key_start: key_start as u32,
            key_end: key_end as u32,
            val_start: val_start as u32,
            val_end: val_end as u32,
            quote,
            plain: false,
        },
        val_end,
    ))
}

fn skip_ws_and(bytes: &[u8], mut i: usize, sep: u8) -> usize {
    while let Some(&b) = bytes.get(i) {
        if matches!(b, b' ' | b'\t' | b'\r' | b'\n') || b == sep {
            i += 1;
        } else {
            break;
        }
    }
    i
}

/// Returns the index of the closing quote of a validated string whose body
/// starts at `i`.
fn skip_string(bytes: &[u8], mut i: usize, quote: u8) -> Option<usize> {
    loop {
        let rest = bytes.get(i..)?;
        let k = memchr::memchr2(quote, b'\\', rest)?;
        i += k;
        if bytes.get(i) == Some(&quote) {
            return Some(i);
        }
        i += 2;
    }
}

/// Returns the end of the validated value starting at `i`.
fn skip_value(bytes: &[u8], mut i: usize) -> Option<usize> {
    let mut depth = 0usize;
    loop {
        let b = *bytes.get(i)?;
        match b {
            b'"' | b'\'' => i = skip_string(bytes, i + 1, b)? + 1,
            b'{' | b'[' => {
                depth += 1;
                i += 1;
            }
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                i += 1;
            }
            b' ' | b'\t' | b'\r' | b'\n' | b',' | b':' if depth > 0 => i += 1,
            _ if depth > 0 => i += 1,
            _ => {
                // A scalar at the member level: runs to a delimiter.
                while let Some(&c) = bytes.get(i) {
                    if matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n') {
                        break;
                    }
                    i += 1;
                }
                return Some(i);
            }
        }
        if depth == 0 {
            return Some(i);
        }
    }
}

// ---------------------------------------------------------------------------
// The state machine
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lex {
    Start,
    Recovery,
    Str,
    Zero,
    Digits,
    Sign,
    Mantissa,
    MantissaDigits,
    ExpE,
    ExpSign,
    ExpDigits,
    Keyword,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Esc {
    None,
    Backslash,
    /// Reading `\uXXXX` digits; `hi` is a pending high surrogate.
    Hex {
        n: u8,
        cp: u32,
        hi: Option<u32>,
    },
    /// After a high surrogate escape, expecting `\`.
    PairBackslash {
        hi: u32,
    },
    /// After a high surrogate escape and `\`, expecting `u`.
    PairU {
        hi: u32,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Gram {
    Value,
    ValueOrEnd,
    Key,
    KeyOrEnd,
    Colon,
    CommaOrEnd,
    Done,
    /// A grammar error was recorded: only counting from here on.
    Errored,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Skip {
    No,
    Oversized,
    Depth,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SynKind {
    ExpectingValue,
    KeyNotString,
    MissingColon,
    DuplicateKey,
    ExpectedDictSeparator,
    ExpectedListSeparator,
    PrematureEoi,
    InvalidKeyword,
    InvalidEscape,
    /// Text starts at `start`, at most `max` bytes, cut at the string's end.
    InvalidUnicode {
        max: u8,
    },
    InvalidUtf8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SynErr {
    kind: SynKind,
    start: usize,
    end: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok {
    LCurly,
    RCurly,
    LSquare,
    RSquare,
    Colon,
    Comma,
    Str,
    Number,
    Keyword,
}

/// What the loop found.
#[derive(Clone, Copy)]
enum Out {
    Message,
    Stray { start: usize, end: usize },
    Syntax(SynErr),
    Depth,
    Oversized(usize),
}

#[derive(Clone, Copy)]
struct State {
    /// A message (token list) is in progress.
    in_msg: bool,
    /// The last frame returned ended a message: reset on the next feed.
    ended: bool,
    /// Bytes of the current message so far (stored while `pos <= cap`).
    pos: usize,
    skip: Skip,
    lex: Lex,
    tok_start: usize,
    braces: i64,
    brackets: i64,
    gram: Gram,
    depth: u16,
    err: Option<SynErr>,
    // strings
    quote: u8,
    esc: Esc,
    esc_start: usize,
    u8_need: u8,
    u8_len: u8,
    u8_cp: u32,
    // top-level members
    key_start: usize,
    key_end: usize,
    key_quote: u8,
    /// The key has no escapes.
    key_plain: bool,
    /// The current string has had no escape so far.
    str_plain: bool,
    val_start: usize,
    nmem: u8,
    all_tracked: bool,
    // keyword text (only true/false/null are valid: 5 bytes suffice)
    kw: [u8; 5],
    kw_len: u8,
}

impl State {
    const fn new() -> Self {
        State {
            in_msg: false,
            ended: false,
            pos: 0,
            skip: Skip::No,
            lex: Lex::Start,
            tok_start: 0,
            braces: 0,
            brackets: 0,
            gram: Gram::Value,
            depth: 0,
            err: None,
            quote: b'"',
            esc: Esc::None,
            esc_start: 0,
            u8_need: 0,
            u8_len: 0,
            u8_cp: 0,
            key_start: 0,
            key_end: 0,
            key_quote: b'"',
            key_plain: true,
            str_plain: true,
            val_start: 0,
            nmem: 0,
            all_tracked: true,
            kw: [0; 5],
            kw_len: 0,
        }
    }
}

/// The streaming framer and scanner. `B` is the message buffer (any
/// `AsMut<[u8]>`: `&mut [u8]`, `[u8; N]`, `Vec<u8>`…); its length is the
/// message size limit.
///
/// Call [`Framer::feed`] with input until it has consumed all of it; each call
/// returns at most one [`Frame`], which borrows the buffer until the next call.
pub struct Framer<B> {
    buf: B,
    cfg: FramerConfig,
    st: State,
    /// Bit per nesting level: the container is an array.
    arrays: [u64; DEPTH_WORDS],
    /// Bit per nesting level: the container sits where an object key belongs.
    keys: [u64; DEPTH_WORDS],
    members: [MemberSpan; MAX_TRACKED_MEMBERS],
    /// Whether message bytes are kept (false only for [`validate`]).
    keep: bool,
    /// What the last [`Framer::feed`] produced, for [`Framer::last_frame`].
    last: Option<Out>,
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> Framer<B> {
    /// A framer with QEMU's rules ([`FramerConfig::new`]).
    pub fn new(buf: B) -> Self {
        Self::with_config(buf, FramerConfig::new())
    }

    /// A framer with the given settings.
    pub fn with_config(buf: B, cfg: FramerConfig) -> Self {
        Framer {
            buf,
            cfg,
            st: State::new(),
            arrays: [0; DEPTH_WORDS],
            keys: [0; DEPTH_WORDS],
            members: [MemberSpan::default(); MAX_TRACKED_MEMBERS],
            keep: true,
            last: None,
        }
    }

    /// The settings.
    pub fn config(&self) -> FramerConfig {
        self.cfg
    }

    /// The message size limit (the buffer's length).
    pub fn capacity(&self) -> usize {
        self.buf.as_ref().len()
    }

    /// Whether no message is in progress (nothing half-read, not recovering).
    pub fn is_idle(&self) -> bool {
        self.st.ended || (!self.st.in_msg && self.st.lex == Lex::Start)
    }

    /// Discards any half-read message and recovery state, as a fresh
    /// connection would.
    pub fn reset(&mut self) {
        self.st = State::new();
        self.last = None;
    }

    /// The frame the last [`Framer::feed`] returned, lent again (with the
    /// message's member spans, or the error's token text), while the framer
    /// has not been fed again: the one way a session lends a message out
    /// after it returned from `feed`.
    pub(crate) fn last_frame(&self) -> Option<Frame<'_>> {
        self.last.map(|o| self.frame(o))
    }

    /// The bytes of the message the last [`Framer::feed`] delivered, while
    /// the framer has not been fed again (empty otherwise).
    pub(crate) fn last_message(&self) -> &[u8] {
        if self.st.ended && self.st.skip == Skip::No && self.st.err.is_none() {
            self.buf.as_ref().get(..self.st.pos).unwrap_or(&[])
        } else {
            &[]
        }
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> B {
        self.buf
    }

    /// Consumes input up to the end of the next complete message or error,
    /// or all of it. The returned frame borrows the buffer until the next
    /// call. Call again with `&input[consumed..]` until all is consumed.
    pub fn feed(&mut self, input: &[u8]) -> Feed<'_> {
        if self.st.ended {
            self.st = State::new();
        }
        let (consumed, out) = self.run(input);
        self.last = out;
        let frame = out.map(|o| self.frame(o));
        Feed { consumed, frame }
    }

    fn frame(&self, out: Out) -> Frame<'_> {
        let buf = self.buf.as_ref();
        let slice = |a: usize, b: usize| buf.get(a..b.min(buf.len())).unwrap_or(&[]);
        match out {
            Out::Message => Frame::Message(Message {
                bytes: slice(0, self.st.pos),
                spans: self.members.get(..self.st.nmem as usize).unwrap_or(&[]),
                all_tracked: self.st.all_tracked,
            }),
            Out::Stray { start, end } => Frame::Error(FrameError::Stray {
                token: slice(start, end),
            }),
            Out::Syntax(e) => {
                let text = slice(e.start, e.end);
                Frame::Error(FrameError::Syntax(match e.kind {
                    SynKind::ExpectingValue => SyntaxError::ExpectingValue,
                    SynKind::KeyNotString => SyntaxError::KeyNotString,
                    SynKind::MissingColon => SyntaxError::MissingColon,
                    SynKind::DuplicateKey => SyntaxError::DuplicateKey,
                    SynKind::ExpectedDictSeparator => SyntaxError::ExpectedDictSeparator,
                    SynKind::ExpectedListSeparator => SyntaxError::ExpectedListSeparator,
                    SynKind::PrematureEoi => SyntaxError::PrematureEoi,
                    SynKind::InvalidKeyword => SyntaxError::InvalidKeyword(text),
                    SynKind::InvalidEscape => SyntaxError::InvalidEscape,
                    SynKind::InvalidUnicode { .. } => SyntaxError::InvalidUnicode(text),
                    SynKind::InvalidUtf8 => SyntaxError::InvalidUtf8,
                }))
            }
            Out::Depth => Frame::Error(FrameError::DepthLimit),
            Out::Oversized(len) => Frame::Error(FrameError::Oversized { len }),
        }
    }

    /// Copies the message bytes consumed since the last flush (input
    /// `seg..i`, the last `i - seg` bytes counted in `pos`) to the buffer,
    /// or notes that the message no longer fits.
    fn flush(&mut self, input: &[u8], seg: &mut usize, i: usize) {
        let n = i.saturating_sub(*seg);
        if n > 0 && self.st.in_msg && self.st.skip == Skip::No && self.keep {
            let end = self.st.pos;
            let src = input.get(*seg..i).unwrap_or(&[]);
            match self.buf.as_mut().get_mut(end - n..end) {
                // Not `copy_from_slice`: its length check is a panic path
                // wherever it is not inlined (opt-level "z"); see no-panic/.
                Some(dst) => dst.iter_mut().zip(src).for_each(|(d, s)| *d = *s),
                None => self.st.skip = Skip::Oversized,
            }
        }
        *seg = i;
    }

    fn validating(&self) -> bool {
        self.st.skip == Skip::No && self.st.err.is_none()
    }

    fn syn(&mut self, kind: SynKind, start: usize, end: usize) {
        if self.st.err.is_none() {
            self.st.err = Some(SynErr { kind, start, end });
            self.st.gram = Gram::Errored;
        }
    }

    /// The message ended at the current position: what to report.
    fn finish(&mut self) -> Out {
        self.st.ended = true;
        self.st.lex = Lex::Start;
        match self.st.skip {
            Skip::Oversized => Out::Oversized(self.st.pos),
            Skip::Depth => Out::Depth, // never reached: reported when it happened
            Skip::No => match self.st.err {
                Some(e) => Out::Syntax(e),
                None if self.st.gram == Gram::Done => Out::Message,
                None => Out::Syntax(SynErr {
                    kind: SynKind::PrematureEoi,
                    start: 0,
                    end: 0,
                }),
            },
        }
    }

    /// A lexical error at input byte `i - 1` (already counted). Returns
    /// where to resume and what to report.
    fn flushed_lex_error(
        &mut self,
        input: &[u8],
        seg: &mut usize,
        i: usize,
    ) -> (usize, Option<Out>) {
        self.flush(input, seg, i);
        let before = self.st.pos.saturating_sub(1);
        if self.st.skip == Skip::Oversized && self.keep && before > self.buf.as_ref().len() {
            // The bad byte ends a message that was already too big, but is
            // not part of it: it is lexed again on its own, so a 0xFF sent
            // to resynchronise (the guest agent's delimiter) is still seen.
            // (When only the bad byte does not fit, it belongs to the
            // oversized message, as for any other byte.)
            self.st = State::new();
            return (i.saturating_sub(1), Some(Out::Oversized(before)));
        }
        (i, self.lex_error())
    }

    /// A lexical error at the current byte (already stored): report it and
    /// enter recovery.
    fn lex_error(&mut self) -> Option<Out> {
        let start = self.st.tok_start;
        let end = self.st.pos;
        let skip = self.st.skip;
        let len = self.st.pos;
        self.st = State {
            lex: Lex::Recovery,
            ..State::new()
        };
        match skip {
            Skip::No => Some(Out::Stray { start, end }),
            Skip::Oversized => Some(Out::Oversized(len)),
            Skip::Depth => None,
        }
    }

    fn run(&mut self, input: &[u8]) -> (usize, Option<Out>) {
        let mut seg = 0;
        let (i, out) = self.scan(input, &mut seg);
        self.flush(input, &mut seg, i);
        (i, out)
    }

    /// The state machine proper. Consumed message bytes are only counted
    /// (`pos`); [`Framer::flush`] copies them in bulk.
    #[inline(always)]
    fn scan(&mut self, input: &[u8], seg: &mut usize) -> (usize, Option<Out>) {
        let mut i = 0;
        while let Some(&b) = input.get(i) {
            match self.st.lex {
                Lex::Start => {
                    if self.fast_ok() {
                        let j = self.fast(input, i, seg);
                        if j != i {
                            i = j;
                            continue;
                        }
                    }
                    if matches!(b, b' ' | b'\t' | b'\r' | b'\n') {
                        if self.st.in_msg {
                            self.st.pos += 1;
                        }
                        i += 1;
                        continue;
                    }
                    if !self.st.in_msg {
                        self.st.in_msg = true;
                        self.st.pos = 0;
                        *seg = i;
                    }
                    self.st.tok_start = self.st.pos;
                    self.st.pos += 1;
                    i += 1;
                    let tok = match b {
                        b'{' => Tok::LCurly,
                        b'}' => Tok::RCurly,
                        b'[' => Tok::LSquare,
                        b']' => Tok::RSquare,
                        b':' => Tok::Colon,
                        b',' => Tok::Comma,
                        b'"' => {
                            // Fast path: a plain string closing in this input.
                            let rest = input.get(i..).unwrap_or(&[]);
                            let run = string_run(rest, b'"');
                            if rest.get(run) == Some(&b'"') {
                                self.st.quote = b'"';
                                self.st.str_plain = true;
                                self.st.pos += run + 1;
                                i += run + 1;
                                let start = self.st.tok_start;
                                if self.st.depth <= 2 {
                                    self.flush(input, seg, i);
                                }
                                if let Some(out) = self.token(Tok::Str, start, self.st.pos) {
                                    return (i, Some(out));
                                }
                                continue;
                            }
                            self.begin_string(b);
                            continue;
                        }
                        b'\'' if self.cfg.dialect == Dialect::Qemu => {
                            self.begin_string(b);
                            continue;
                        }
                        b'0' => {
                            self.st.lex = Lex::Zero;
                            continue;
                        }
                        b'1'..=b'9' => {
                            self.st.lex = Lex::Digits;
                            continue;
                        }
                        b'-' => {
                            self.st.lex = Lex::Sign;
                            continue;
                        }
                        b'a'..=b'z' => {
                            self.st.lex = Lex::Keyword;
                            self.st.kw[0] = b;
                            self.st.kw_len = 1;
                            continue;
                        }
                        _ => match self.flushed_lex_error(input, seg, i) {
                            (j, Some(out)) => return (j, Some(out)),
                            (_, None) => continue,
                        },
                    };
                    let start = self.st.tok_start;
                    if self.st.depth <= 2 {
                        self.flush(input, seg, i);
                    }
                    if let Some(out) = self.token(tok, start, self.st.pos) {
                        return (i, Some(out));
                    }
                }
                Lex::Recovery => {
                    if matches!(b, 0..=0x08 | 0x0A..=0x1F | 0xFE | 0xFF | b'[' | b']' | b'{' | b'}' | b':' | b',')
                    {
                        self.st.lex = Lex::Start;
                    } else {
                        i += 1;
                    }
                }
                Lex::Str => {
                    if self.st.esc == Esc::None && self.st.u8_need == 0 {
                        // Fast path: a run of plain printable ASCII.
                        let rest = input.get(i..).unwrap_or(&[]);
                        let plain = string_run(rest, self.st.quote);
                        if plain > 0 {
                            self.st.pos += plain;
                            i += plain;
                            continue;
                        }
                    }
                    self.st.pos += 1;
                    i += 1;
                    match self.string_byte(b) {
                        StrStep::Continue => {}
                        StrStep::End => {
                            self.st.lex = Lex::Start;
                            let start = self.st.tok_start;
                            if self.st.depth <= 2 {
                                self.flush(input, seg, i);
                            }
                            if let Some(out) = self.token(Tok::Str, start, self.st.pos) {
                                return (i, Some(out));
                            }
                        }
                        StrStep::LexError => match self.flushed_lex_error(input, seg, i) {
                            (j, Some(out)) => return (j, Some(out)),
                            (_, None) => continue,
                        },
                    }
                }
                Lex::Zero
                | Lex::Digits
                | Lex::Sign
                | Lex::Mantissa
                | Lex::MantissaDigits
                | Lex::ExpE
                | Lex::ExpSign
                | Lex::ExpDigits
                | Lex::Keyword => {
                    let lex = self.st.lex;
                    let next = match (lex, b) {
                        (Lex::Zero, b'0'..=b'9') => None,
                        (Lex::Zero | Lex::Digits, b'.') => Some(Lex::Mantissa),
                        (Lex::Zero | Lex::Digits | Lex::MantissaDigits, b'e' | b'E') => {
                            Some(Lex::ExpE)
                        }
                        (Lex::Digits, b'0'..=b'9') => Some(Lex::Digits),
                        (Lex::Sign, b'0') => Some(Lex::Zero),
                        (Lex::Sign, b'1'..=b'9') => Some(Lex::Digits),
                        (Lex::Mantissa | Lex::MantissaDigits, b'0'..=b'9') => {
                            Some(Lex::MantissaDigits)
                        }
                        (Lex::ExpE, b'+' | b'-') => Some(Lex::ExpSign),
                        (Lex::ExpE | Lex::ExpSign | Lex::ExpDigits, b'0'..=b'9') => {
                            Some(Lex::ExpDigits)
                        }
                        (Lex::Keyword, b'a'..=b'z') => Some(Lex::Keyword),
                        _ => None,
                    };
                    if let Some(next) = next {
                        if next == Lex::Keyword {
                            if let Some(slot) = self.st.kw.get_mut(usize::from(self.st.kw_len)) {
                                *slot = b;
                            }
                            self.st.kw_len = self.st.kw_len.saturating_add(1);
                        }
                        self.st.pos += 1;
                        i += 1;
                        self.st.lex = next;
                        continue;
                    }
                    let terminal = matches!(
                        lex,
                        Lex::Zero
                            | Lex::Digits
                            | Lex::MantissaDigits
                            | Lex::ExpDigits
                            | Lex::Keyword
                    );
                    let ends = terminal && b < 0x80 && !(lex == Lex::Zero && b.is_ascii_digit());
                    if !ends {
                        // The offending byte is part of the error token.
                        self.st.pos += 1;
                        i += 1;
                        match self.flushed_lex_error(input, seg, i) {
                            (j, Some(out)) => return (j, Some(out)),
                            (_, None) => continue,
                        }
                    }
                    // Token ends on lookahead: `b` is not consumed.
                    self.st.lex = Lex::Start;
                    let tok = if lex == Lex::Keyword {
                        Tok::Keyword
                    } else {
                        Tok::Number
                    };
                    let start = self.st.tok_start;
                    if self.st.depth <= 2 {
                        self.flush(input, seg, i);
                    }
                    if let Some(out) = self.token(tok, start, self.st.pos) {
                        return (i, Some(out));
                    }
                }
            }
        }
        (i, None)
    }

    fn begin_string(&mut self, quote: u8) {
        self.st.lex = Lex::Str;
        self.st.quote = quote;
        self.st.str_plain = true;
        self.st.esc = Esc::None;
        self.st.u8_need = 0;
    }

    /// One byte inside a string (already stored at `pos - 1`).
    fn string_byte(&mut self, b: u8) -> StrStep {
        let at = self.st.pos - 1;
        let check = self.validating();
        match self.st.esc {
            Esc::None => {}
            Esc::Backslash => {
                self.st.esc = Esc::None;
                if !(0x20..=0xFD).contains(&b) {
                    return StrStep::LexError;
                }
                if check {
                    match b {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                        b'\'' if self.cfg.dialect == Dialect::Qemu => {}
                        b'u' => {
                            self.st.esc = Esc::Hex {
                                n: 0,
                                cp: 0,
                                hi: None,
                            };
                        }
                        _ => self.syn(SynKind::InvalidEscape, 0, 0),
                    }
                }
                return StrStep::Continue;
            }
            Esc::Hex { n, cp, hi } => {
                if let Some(v) = hex_val(b) {
                    let cp = cp << 4 | v;
                    if n < 3 {
                        self.st.esc = Esc::Hex { n: n + 1, cp, hi };
                        return StrStep::Continue;
                    }
                    self.st.esc = Esc::None;
                    match hi {
                        None if (0xD800..=0xDBFF).contains(&cp) => {
                            self.st.esc = Esc::PairBackslash { hi: cp };
                        }
                        None => {
                            if !self.valid_cp(cp) {
                                self.unicode_error(6);
                            }
                        }
                        Some(hi) if (0xDC00..=0xDFFF).contains(&cp) => {
                            let full = 0x10000 + ((hi & 0x3FF) << 10) + (cp & 0x3FF);
                            if !self.valid_cp(full) {
                                self.unicode_error(12);
                            }
                        }
                        Some(_) => self.unicode_error(6),
                    }
                    return StrStep::Continue;
                }
                // Not a hex digit: QEMU's cvt4hex fails; re-lex the byte.
                self.unicode_error(6);
                self.st.esc = Esc::None;
            }
            Esc::PairBackslash { hi } => {
                self.st.esc = Esc::None;
                if b == b'\\' {
                    self.st.esc = Esc::PairU { hi };
                    return StrStep::Continue;
                }
                // A lone high surrogate; re-lex the byte.
                self.unicode_error(6);
            }
            Esc::PairU { hi } => {
                if b == b'u' {
                    self.st.esc = Esc::Hex {
                        n: 0,
                        cp: 0,
                        hi: Some(hi),
                    };
                    return StrStep::Continue;
                }
                // `\` then not `u`: a lone surrogate, and the `\` starts an
                // ordinary escape whose character is `b`.
                self.unicode_error(6);
                self.st.esc = Esc::Backslash;
                return self.string_byte(b);
            }
        }
        // Plain string byte (UTF-8 validation when still checking).
        if self.st.u8_need > 0 {
            if b & 0xC0 == 0x80 {
                self.st.u8_cp = self.st.u8_cp << 6 | u32::from(b & 0x3F);
                self.st.u8_need -= 1;
                if self.st.u8_need == 0 && !self.valid_utf8_seq() {
                    self.syn(SynKind::InvalidUtf8, 0, 0);
                }
                return StrStep::Continue;
            }
            self.st.u8_need = 0;
            if self.validating() {
                self.syn(SynKind::InvalidUtf8, 0, 0);
            }
        }
        if b == self.st.quote {
            self.close_string(at);
            return StrStep::End;
        }
        if b == b'\\' {
            self.st.esc = Esc::Backslash;
            self.st.str_plain = false;
            self.st.esc_start = at;
            return StrStep::Continue;
        }
        if !(0x20..0xFE).contains(&b) {
            return StrStep::LexError;
        }
        if b >= 0x80 && self.validating() {
            let (len, bits) = match b {
                0xC0..=0xDF => (2, b & 0x1F),
                0xE0..=0xEF => (3, b & 0x0F),
                0xF0..=0xF7 => (4, b & 0x07),
                _ => (0, 0),
            };
            if len == 0 {
                self.syn(SynKind::InvalidUtf8, 0, 0);
            } else {
                self.st.u8_len = len;
                self.st.u8_need = len - 1;
                self.st.u8_cp = u32::from(bits);
            }
        }
        StrStep::Continue
    }
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> Framer<B> {
    fn valid_cp(&self, cp: u32) -> bool {
        if cp > 0x10FFFF || (0xD800..=0xDFFF).contains(&cp) {
            return false;
        }
        if self.cfg.dialect == Dialect::Qemu
            && ((0xFDD0..=0xFDEF).contains(&cp) || cp & 0xFFFE == 0xFFFE)
        {
            return false;
        }
        true
    }

    fn valid_utf8_seq(&self) -> bool {
        let cp = self.st.u8_cp;
        let min = match self.st.u8_len {
            2 => 0x80,
            3 => 0x800,
            _ => 0x10000,
        };
        if cp < min {
            // Overlong; QEMU's modified UTF-8 allows C0 80 for U+0000.
            return self.cfg.dialect == Dialect::Qemu && cp == 0 && self.st.u8_len == 2;
        }
        self.valid_cp(cp)
    }

    fn unicode_error(&mut self, max: u8) {
        let start = self.st.esc_start;
        self.syn(SynKind::InvalidUnicode { max }, start, start);
    }

    /// The closing quote is at `at`: an invalid `\u` escape's text runs to at
    /// most the end of this string.
    fn close_string(&mut self, at: usize) {
        self.st.esc = Esc::None;
        if let Some(e) = &mut self.st.err {
            if let SynKind::InvalidUnicode { max } = e.kind {
                if e.end == e.start {
                    e.end = (e.start + usize::from(max)).min(at + 1);
                }
            }
        }
    }

    fn is_array(&self, level: u16) -> bool {
        bit(&self.arrays, level)
    }

    fn push(&mut self, array: bool, key: bool) {
        let level = self.st.depth;
        set_bit(&mut self.arrays, level, array);
        set_bit(&mut self.keys, level, key);
        self.st.depth += 1;
    }

    /// A token of the current message, from `start` to `end`.
    #[inline]
    fn token(&mut self, tok: Tok, start: usize, end: usize) -> Option<Out> {
        // Overflow is decided here (and at lexical errors), not where bytes
        // happen to be flushed, so that every chunking agrees.
        if self.st.skip == Skip::No && self.keep && self.st.pos > self.buf.as_ref().len() {
            self.st.skip = Skip::Oversized;
        }
        match tok {
            Tok::LCurly => self.st.braces += 1,
            Tok::RCurly => self.st.braces -= 1,
            Tok::LSquare => self.st.brackets += 1,
            Tok::RSquare => self.st.brackets -= 1,
            _ => {}
        }
        if self.st.skip == Skip::No {
            if self.st.braces + self.st.brackets > i64::from(self.cfg.max_depth) {
                self.st.skip = Skip::Depth;
                return Some(Out::Depth);
            }
            if self.st.err.is_none() {
                self.grammar(tok, start, end);
            }
        }
        let (c, k) = (self.st.braces, self.st.brackets);
        if (c > 0 || k > 0) && k >= 0 {
            return None;
        }
        match self.finish() {
            Out::Depth => {
                // Its error was reported when the limit was passed.
                self.st = State::new();
                None
            }
            out => Some(out),
        }
    }

    #[inline]
    fn grammar(&mut self, tok: Tok, start: usize, end: usize) {
        match self.st.gram {
            Gram::Value | Gram::ValueOrEnd => {
                if tok == Tok::RSquare && self.st.gram == Gram::ValueOrEnd {
                    self.close(end);
                } else {
                    self.value(tok, start, end);
                }
            }
            Gram::Key | Gram::KeyOrEnd => match tok {
                Tok::RCurly if self.st.gram == Gram::KeyOrEnd => self.close(end),
                Tok::Str => {
                    if self.st.depth == 1 {
                        self.st.key_start = start + 1;
                        self.st.key_end = end - 1;
                        self.st.key_quote = self.st.quote;
                        self.st.key_plain = self.st.str_plain;
                    }
                    self.st.gram = Gram::Colon;
                }
                Tok::LCurly | Tok::LSquare => {
                    self.push(tok == Tok::LSquare, true);
                    self.st.gram = if tok == Tok::LSquare {
                        Gram::ValueOrEnd
                    } else {
                        Gram::KeyOrEnd
                    };
                }
                Tok::Number => self.syn(SynKind::KeyNotString, 0, 0),
                Tok::Keyword => {
                    if self.keyword_ok() {
                        self.syn(SynKind::KeyNotString, 0, 0);
                    } else {
                        self.syn(SynKind::InvalidKeyword, start, end);
                    }
                }
                _ => self.syn(SynKind::ExpectingValue, 0, 0),
            },
            Gram::Colon => {
                if tok == Tok::Colon {
                    self.st.gram = Gram::Value;
                } else {
                    self.syn(SynKind::MissingColon, 0, 0);
                }
            }
            Gram::CommaOrEnd => {
                let array = self.st.depth > 0 && self.is_array(self.st.depth - 1);
                match (tok, array) {
                    (Tok::Comma, false) => self.st.gram = Gram::Key,
                    (Tok::Comma, true) => self.st.gram = Gram::Value,
                    (Tok::RCurly, false) | (Tok::RSquare, true) => self.close(end),
                    (_, false) => self.syn(SynKind::ExpectedDictSeparator, 0, 0),
                    (_, true) => self.syn(SynKind::ExpectedListSeparator, 0, 0),
                }
            }
            Gram::Done | Gram::Errored => {}
        }
    }

    /// A token where a value is expected.
    fn value(&mut self, tok: Tok, start: usize, end: usize) {
        if self.st.depth == 1 && !self.is_array(0) {
            self.st.val_start = start;
        }
        match tok {
            Tok::LCurly => {
                self.push(false, false);
                self.st.gram = Gram::KeyOrEnd;
            }
            Tok::LSquare => {
                self.push(true, false);
                self.st.gram = Gram::ValueOrEnd;
            }
            Tok::Str | Tok::Number => self.after_value(end),
            Tok::Keyword => {
                if self.keyword_ok() {
                    self.after_value(end);
                } else {
                    self.syn(SynKind::InvalidKeyword, start, end);
                }
            }
            _ => self.syn(SynKind::ExpectingValue, 0, 0),
        }
    }

    fn close(&mut self, end: usize) {
        self.st.depth -= 1;
        if bit(&self.keys, self.st.depth) {
            self.syn(SynKind::KeyNotString, 0, 0);
            return;
        }
        self.after_value(end);
    }

    /// A value ended at `end`.
    #[inline]
    fn after_value(&mut self, end: usize) {
        if self.st.depth == 0 {
            self.st.gram = Gram::Done;
            return;
        }
        self.st.gram = Gram::CommaOrEnd;
        if self.st.depth == 1 && !self.is_array(0) {
            self.member(end);
        }
    }

    /// A top-level member ended at `end`.
    fn member(&mut self, end: usize) {
        if !self.keep || self.st.skip != Skip::No {
            return;
        }
        let span = MemberSpan {
            key_start: self.st.key_start as u32,
            key_end: self.st.key_end as u32,
            val_start: self.st.val_start as u32,
            val_end: end as u32,
            quote: self.st.key_quote,
            plain: self.st.key_plain,
        };
        let buf = self.buf.as_ref();
        let key = JsonStr::from_validated(
            buf.get(span.key_start as usize..span.key_end as usize)
                .unwrap_or(&[]),
            span.quote,
        );
        let n = usize::from(self.st.nmem);
        let tracked = self.members.get(..n).unwrap_or(&[]);
        let check = self.cfg.dialect == Dialect::Qemu;
        let duplicate = check
            && tracked.iter().any(|m| {
                let other = buf
                    .get(m.key_start as usize..m.key_end as usize)
                    .unwrap_or(&[]);
                if span.plain && m.plain {
                    key.raw == other
                } else {
                    key.eq_json_str(&JsonStr::from_validated(other, m.quote))
                }
            });
        if duplicate {
            self.syn(SynKind::DuplicateKey, 0, 0);
            return;
        }
        match self.members.get_mut(n) {
            Some(slot) => {
                *slot = span;
                self.st.nmem += 1;
            }
            None => self.st.all_tracked = false,
        }
    }

    fn keyword_ok(&self) -> bool {
        matches!(
            self.st.kw.get(..usize::from(self.st.kw_len)),
            Some(b"true" | b"false" | b"null")
        )
    }
}

enum StrStep {
    Continue,
    End,
    LexError,
}

fn bit(words: &[u64; DEPTH_WORDS], level: u16) -> bool {
    let level = usize::from(level);
    words
        .get(level / 64)
        .is_some_and(|w| w >> (level % 64) & 1 == 1)
}

fn set_bit(words: &mut [u64; DEPTH_WORDS], level: u16, on: bool) {
    let level = usize::from(level);
    if let Some(w) = words.get_mut(level / 64) {
        let mask = 1u64 << (level % 64);
        if on {
            *w |= mask;
        } else {
            *w &= !mask;
        }
    }
}

fn hex_val(b: u8) -> Option<u32> {
    char::from(b).to_digit(16)
}

/// Length of the prefix of a string body that needs no attention: printable
/// ASCII other than the quote and `\\`. Checked a word at a time; runs
/// longer than 64 bytes are skipped with `memchr2` and then checked.
#[inline(always)]
fn string_run(rest: &[u8], quote: u8) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const LO: u64 = 0x2020_2020_2020_2020;
    const HI: u64 = 0x8080_8080_8080_8080;
    let q = ONES * u64::from(quote);
    let bs = ONES * u64::from(b'\\');
    let mut n = 0;
    let mut chunks = rest.chunks_exact(8);
    for chunk in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        let x = u64::from_le_bytes(w);
        let xq = x ^ q;
        let xb = x ^ bs;
        let special =
            (xq.wrapping_sub(ONES) & !xq) | (xb.wrapping_sub(ONES) & !xb) | x.wrapping_sub(LO) | x;
        if special & HI != 0 {
            // Borrows only run towards more significant bytes, so the
            // lowest flagged byte is exact.
            return n + ((special & HI).trailing_zeros() / 8) as usize;
        }
        n += 8;
        if n == 64 {
            let tail = rest.get(n..).unwrap_or(&[]);
            let stop = memchr::memchr2(quote, b'\\', tail).unwrap_or(tail.len());
            return n + plain_prefix(tail.get(..stop).unwrap_or(&[]));
        }
    }
    n + rest
        .get(n..)
        .unwrap_or(&[])
        .iter()
        .take_while(|&&b| (0x20..0x80).contains(&b) && b != quote && b != b'\\')
        .count()
}

/// Length of the prefix of `run` made of printable ASCII (0x20..0x7F),
/// checked a word at a time.
fn plain_prefix(run: &[u8]) -> usize {
    const LO: u64 = 0x2020_2020_2020_2020;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut n = 0;
    let mut chunks = run.chunks_exact(8);
    for chunk in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        let x = u64::from_le_bytes(w);
        if (x.wrapping_sub(LO) | x) & HI != 0 {
            break;
        }
        n += 8;
    }
    n + run
        .get(n..)
        .unwrap_or(&[])
        .iter()
        .take_while(|&&b| (0x20..0x80).contains(&b))
        .count()
}

/// Checks that `bytes` hold exactly one JSON value (surrounding whitespace
/// allowed), without copying it anywhere.
pub fn validate(bytes: &[u8], cfg: FramerConfig) -> Result<RawJson<'_>, ValidateError> {
    let mut framer = Framer::with_config(Unbounded, cfg);
    framer.keep = false;
    let mut rest = bytes;
    let mut found: Option<(usize, usize)> = None;
    let mut offset = 0;
    loop {
        let at_end = rest.is_empty();
        let input: &[u8] = if at_end { b" " } else { rest };
        let fed = framer.feed(input);
        let consumed = fed.consumed;
        match fed.frame {
            Some(Frame::Message(_)) => {
                if found.is_some() {
                    return Err(ValidateError::TrailingData);
                }
                let len = framer.st.pos;
                found = Some((offset + consumed - len, offset + consumed));
            }
            Some(Frame::Error(_)) => return Err(ValidateError::Invalid),
            None => {}
        }
        if at_end {
            break;
        }
        offset += consumed;
        rest = rest.get(consumed..).unwrap_or(&[]);
    }
    if !framer.is_idle() {
        return Err(ValidateError::Incomplete);
    }
    let (a, b) = found.ok_or(ValidateError::Empty)?;
    bytes
        .get(a..b)
        .map(RawJson::from_validated)
        .ok_or(ValidateError::Invalid)
}

/// Why [`validate`] rejected its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ValidateError {
    /// Not valid JSON.
    Invalid,
    /// Nothing but whitespace.
    Empty,
    /// The value is cut short.
    Incomplete,
    /// More than one value.
    TrailingData,
}

impl fmt::Display for ValidateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ValidateError::Invalid => "invalid JSON",
            ValidateError::Empty => "no JSON value",
            ValidateError::Incomplete => "incomplete JSON value",
            ValidateError::TrailingData => "more than one JSON value",
        })
    }
}

impl core::error::Error for ValidateError {}

/// A buffer that stores nothing (for [`validate`]).
struct Unbounded;

impl AsRef<[u8]> for Unbounded {
    fn as_ref(&self) -> &[u8] {
        &[]
    }
}

impl AsMut<[u8]> for Unbounded {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut []
    }
}
