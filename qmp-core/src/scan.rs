//! The structural framer and JSON scanner shared by every role.
//!
//! [`Framer`] takes arbitrary byte chunks and yields complete top-level JSON
//! values, each validated and stored in the caller's buffer together with the
//! spans of its top-level members, or one [`FrameError`] per bad message.
//!
//! Semantics follow QEMU 10's JSON lexer, streamer and parser
//! (`qobject/json-lexer.c`, `json-streamer.c`, `json-parser.c`), byte for
//! byte as far as our own buffer allows:
//!
//! * a message ends when its braces and brackets balance, or as soon as
//!   either count goes negative, counted the way QEMU's streamer counts
//!   them; a top-level scalar ends at the first byte that cannot continue it
//!   (any byte, 0x80..0xFF included; that byte is not consumed);
//! * a byte that cannot start or continue a token (0xFE/0xFF, control bytes,
//!   `%`, uppercase letters outside strings, …) is a lexical error
//!   ([`FrameError::Stray`], reported at once with the token text, which
//!   QEMU prints with `%s`: the text stops at a NUL byte); the framer then
//!   skips input to QEMU's resynchronisation point: a structural character,
//!   a control byte other than tab, or 0xFE/0xFF;
//! * grammar errors ([`FrameError::Syntax`]) are reported when the message
//!   ends, with the text of the first error in parse order, like QEMU's
//!   parser; that includes `duplicate key` in any object at any depth (see
//!   `dups.rs`; feature `duplicate-keys`, see [`FramerConfig::duplicate_keys`]);
//! * QEMU's streamer limits are checked on every token, whatever our buffer
//!   made of the message: nesting deeper than the limit (1024 by default,
//!   [`FrameError::DepthLimit`]), [`MAX_TOKEN_SIZE`] bytes of tokens in a
//!   message or in one token (QEMU's lexer cuts a token there;
//!   [`FrameError::Oversized`], whose text is QEMU's), and
//!   [`MAX_TOKEN_COUNT`] tokens ([`FrameError::TokenCountLimit`]). Like
//!   QEMU, each drops the message so far with one error and reads the bytes
//!   after it as new input, so `[` x 1025 then `]` x 1025 gives the depth
//!   error and 1025 `expecting value`;
//! * a message that QEMU would take but that does not fit the caller's
//!   buffer yields one [`FrameError::Oversized`] (with its size) once it has
//!   been skipped to its end (or to a lexical error in it, or to one of
//!   QEMU's limits): there is no QEMU answer to match for it.
//!
//! After any error, [`Framer::rejected`] tells what the rejected message
//! looked like (its first key, its `id`), for a client that must end the
//! call a bad reply belongs to.
//!
//! No recursion: nesting is kept in a bit stack, so 10⁵ nested `[` cost
//! linear time and constant stack. The duplicate-key check keeps its keys
//! in the free end of the buffer and costs O(n log n) steps on any input
//! (`dups.rs` gives the bound). String bodies are skipped with `memchr`
//! (on hosts; `find.rs`) and a word-at-a-time check for control and
//! non-ASCII bytes. Between the
//! first and last token of a message, a fast path with the grammar laid out
//! as code takes the common tokens (plain strings, integers, keywords,
//! structure) and hands anything else back to the state machine at a token
//! boundary, so every chunking still gives the same frames (feature
//! `fast-path`, on by default; without it the state machine takes every
//! byte).
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

use crate::json::JsonStr;

mod config;
mod dups;
mod error;
mod fast;
mod grammar;
mod machine;
mod message;
mod rejected;
mod strings;
#[cfg(test)]
mod tests;
mod validate;

use config::DEPTH_WORDS;
pub use config::{
    Dialect, FramerConfig, MAX_DEPTH, MAX_TOKEN_COUNT, MAX_TOKEN_SIZE, MAX_TRACKED_MEMBERS,
};
pub use error::{FrameError, SyntaxError};
use grammar::{bit, set_bit};
pub use machine::{Feed, Frame};
pub(crate) use message::MemberSpan;
pub use message::{Member, Message, MessageMembers};
use rejected::RejInfo;
pub use rejected::{FirstKey, Rejected};
use strings::{string_run, StrStep};
pub use validate::{validate, ValidateError};

// ---------------------------------------------------------------------------
// The state machine's data
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
    /// One of QEMU's streamer limits ended the message (its error has
    /// been returned); the next feed starts afresh.
    Limit,
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
    TokenCount,
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
    // (32 bits: a message ends at the nesting limit or when either goes
    // negative, and 64-bit arithmetic costs twice on a 32-bit core.)
    braces: i32,
    brackets: i32,
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
    /// Whitespace bytes between the tokens of the message so far (`pos -
    /// ws` is QEMU's `token_size`).
    ws: usize,
    /// Tokens of the message so far (QEMU's queue length).
    ntok: u32,
    /// The first top-level key: start and end of its body, its quote.
    first: Option<(u32, u32, u8)>,
    /// The value of the first top-level `id` member, once complete.
    id: Option<(u32, u32)>,
    /// Bytes of the duplicate-key stack at the end of the buffer.
    stack_len: usize,
    /// A spill or an immediate check happened in this message: objects may
    /// have members before their segment.
    spilled: bool,
    /// 1 + the level of the object whose segment is on top of that stack
    /// (0: empty).
    top: u16,
    /// 1 + the deepest level whose member being read repeats an earlier key
    /// of its object (0: none): a duplicate once that member completes.
    dup_at: u16,
    /// The grammar position when the first grammar error was recorded.
    err_gram: Gram,
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
            ws: 0,
            ntok: 0,
            first: None,
            id: None,
            stack_len: 0,
            top: 0,
            spilled: false,
            dup_at: 0,
            err_gram: Gram::Value,
            all_tracked: true,
            kw: [0; 5],
            kw_len: 0,
        }
    }
    /// `*self = State::new()`, field by field: the assignment is a `memcpy`
    /// and a `memclr` call on a Cortex-M, and runs once a message. (The
    /// pattern names every field: a new one must be reset here too.)
    #[inline]
    fn reset(&mut self) {
        let State {
            in_msg,
            ended,
            pos,
            skip,
            lex,
            tok_start,
            braces,
            brackets,
            gram,
            depth,
            err,
            quote,
            esc,
            esc_start,
            u8_need,
            u8_len,
            u8_cp,
            key_start,
            key_end,
            key_quote,
            key_plain,
            str_plain,
            val_start,
            nmem,
            ws,
            ntok,
            first,
            id,
            stack_len,
            spilled,
            top,
            dup_at,
            err_gram,
            all_tracked,
            kw,
            kw_len,
        } = self;
        *in_msg = false;
        *ended = false;
        *pos = 0;
        *skip = Skip::No;
        *lex = Lex::Start;
        *tok_start = 0;
        *braces = 0;
        *brackets = 0;
        *gram = Gram::Value;
        *depth = 0;
        *err = None;
        *quote = b'"';
        *esc = Esc::None;
        *esc_start = 0;
        *u8_need = 0;
        *u8_len = 0;
        *u8_cp = 0;
        *key_start = 0;
        *key_end = 0;
        *key_quote = b'"';
        *key_plain = true;
        *str_plain = true;
        *val_start = 0;
        *nmem = 0;
        *ws = 0;
        *ntok = 0;
        *first = None;
        *id = None;
        *stack_len = 0;
        *spilled = false;
        *top = 0;
        *dup_at = 0;
        *err_gram = Gram::Value;
        *all_tracked = true;
        *kw = [0; 5];
        *kw_len = 0;
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
    arrays: [usize; DEPTH_WORDS],
    /// Bit per nesting level: the container sits where an object key belongs.
    keys: [usize; DEPTH_WORDS],
    members: [MemberSpan; MAX_TRACKED_MEMBERS],
    /// Whether duplicate keys are checked (QEMU's rule, message bytes kept).
    dups: bool,
    /// What the message rejected by the last feed looked like.
    rej: Option<RejInfo>,
    /// Whether message bytes are kept (false only for [`validate`]).
    keep: bool,
    /// What the last [`Framer::feed`] produced, for `Framer::last_frame`.
    last: Option<Out>,
}
