//! The state machine: feeding, the lexer loop, message ends, lexical
//! errors and recovery.

use super::*;

/// What one [`Framer::feed`] call produced.
#[must_use = "`consumed` says how much of the input was used; `frame` may hold a message"]
#[derive(Debug)]
#[non_exhaustive]
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
            dups: cfg.duplicate_keys && cfg.dialect == Dialect::Qemu,
            rej: None,
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
        self.rej = None;
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
            self.st.reset();
        }
        self.rej = None;
        let (consumed, out) = self.run(input);
        if out.as_ref().is_some_and(|o| !matches!(o, Out::Message)) && self.rej.is_none() {
            self.note_rejected();
        }
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
            Out::TokenCount => Frame::Error(FrameError::TokenCountLimit),
            Out::Oversized(len) => Frame::Error(FrameError::Oversized { len }),
        }
    }

    /// Copies the message bytes consumed since the last flush (input
    /// `seg..i`, the last `i - seg` bytes counted in `pos`) to the buffer,
    /// or notes that the message no longer fits.
    #[inline]
    pub(super) fn flush(&mut self, input: &[u8], seg: &mut usize, i: usize) {
        let n = i.saturating_sub(*seg);
        if n > 0 && self.st.in_msg && self.keep {
            let src = input.get(*seg..i).unwrap_or(&[]);
            if self.st.skip == Skip::No {
                let end = self.st.pos;
                let lo = self.buf.as_ref().len() - self.st.stack_len.min(self.buf.as_ref().len());
                if end > lo {
                    self.flush_slow(src, end - n, lo);
                } else if let Some(dst) = self.buf.as_mut().get_mut(end - n..end) {
                    crate::bytes::copy_prefix(dst, src);
                }
            } else if self.st.skip == Skip::Limit {
                // A limit error: what fits is kept for `rejected`.
                self.copy_to(self.st.pos - n, src);
            }
        }
        *seg = i;
    }

    /// Whether the message bytes read so far must be in the buffer before
    /// `tok` is taken: the duplicate-key check reads the keys of the top
    /// two levels, and a top-level member that `tok` completes is recorded
    /// from the buffer (its key compared with `id`). Otherwise they wait
    /// for the next flush that is due, the end of the input or the moment
    /// the message stops fitting (`token`), which all read the same bytes.
    #[inline(always)]
    fn flush_due(&self, tok: Tok) -> bool {
        self.st.depth <= 2
            && (self.dups_on()
                || match tok {
                    // A value at the top level (a key there waits for its
                    // value).
                    Tok::Str | Tok::Number | Tok::Keyword => {
                        self.st.depth == 1 && !matches!(self.st.gram, Gram::Key | Gram::KeyOrEnd)
                    }
                    // Closes a value of the top level.
                    Tok::RCurly | Tok::RSquare => self.st.depth == 2,
                    _ => false,
                })
    }

    /// [`Framer::flush`] when the bytes reach the duplicate-key stack (at
    /// `lo`) or the end of the buffer.
    #[cold]
    #[inline(never)]
    fn flush_slow(&mut self, mut src: &[u8], mut at: usize, lo: usize) {
        if self.dups_on() && self.st.stack_len > 0 {
            // Copy what lies below the stack (every key it refers to), let
            // it spill, and copy the rest.
            let below = lo.saturating_sub(at).min(src.len());
            let (first, rest) = src.split_at_checked(below).unwrap_or((src, &[]));
            self.copy_to(at, first);
            at += below;
            src = rest;
            self.dup_spill(self.st.err.is_some());
        }
        self.copy_to(at, src);
    }

    /// Copies `src` to the buffer at `at`, as far as it fits (the first key
    /// and `id` of a rejected message stay readable); what does not fit
    /// makes the message oversized.
    fn copy_to(&mut self, at: usize, src: &[u8]) {
        let buf = self.buf.as_mut();
        let dst = buf.get_mut(at..).unwrap_or(&mut []);
        if dst.len() < src.len() && self.st.skip == Skip::No {
            self.st.skip = Skip::Oversized;
        }
        crate::bytes::copy_prefix(dst, src);
    }

    /// The length of the token being lexed. QEMU's lexer cuts a token that
    /// grows past [`MAX_TOKEN_SIZE`] and its streamer drops the message with
    /// the size error; the next byte starts a new token.
    #[inline(always)]
    fn token_len(&self) -> usize {
        self.st.pos - self.st.tok_start
    }

    pub(super) fn validating(&self) -> bool {
        self.st.skip == Skip::No && self.st.err.is_none()
    }

    pub(super) fn syn(&mut self, kind: SynKind, start: usize, end: usize) {
        if self.st.err.is_none() {
            self.st.err_gram = self.st.gram;
            self.st.err = Some(SynErr { kind, start, end });
            self.st.gram = Gram::Errored;
        }
    }

    /// The message ended at the current position: what to report.
    pub(super) fn finish(&mut self) -> Out {
        self.st.ended = true;
        self.st.lex = Lex::Start;
        match self.st.skip {
            Skip::Oversized => Out::Oversized(self.st.pos),
            // Never reached: a limit ends the message where it is hit.
            Skip::Limit => Out::Depth,
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
            self.note_rejected();
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
        self.note_rejected();
        self.st = State {
            lex: Lex::Recovery,
            ..State::new()
        };
        match skip {
            Skip::No => Some(Out::Stray { start, end }),
            Skip::Oversized => Some(Out::Oversized(len)),
            Skip::Limit => None,
        }
    }

    fn run(&mut self, input: &[u8]) -> (usize, Option<Out>) {
        let mut seg = 0;
        let (i, mut out) = self.scan(input, &mut seg);
        self.flush(input, &mut seg, i);
        if let Some(Out::Syntax(e)) = &mut out {
            if self.st.stack_len > 0 && self.dups_on() {
                // A grammar error: QEMU parsed the members completed before
                // it, and a duplicate among them came first.
                self.dup_spill(true);
                if let Some(found) = self.st.err {
                    *e = found;
                }
            }
        }
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
                    let mut b = b;
                    if self.fast_ok() {
                        let j = self.fast(input, i, seg);
                        if j != i {
                            // The byte that stopped the fast path is the
                            // general machine's (the fast path would stop
                            // there again, but for the limits' window).
                            i = j;
                            let Some(&c) = input.get(i) else { break };
                            b = c;
                        }
                    }
                    if matches!(b, b' ' | b'\t' | b'\r' | b'\n') {
                        if self.st.in_msg {
                            self.st.pos += 1;
                            self.st.ws += 1;
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
                            // (A string longer than QEMU's token limit is
                            // cut by the general path.)
                            if rest.get(run) == Some(&b'"') && run + 2 <= MAX_TOKEN_SIZE {
                                self.st.quote = b'"';
                                self.st.str_plain = true;
                                self.st.pos += run + 1;
                                i += run + 1;
                                let start = self.st.tok_start;
                                if self.flush_due(Tok::Str) {
                                    self.flush(input, seg, i);
                                }
                                if let Some(out) =
                                    self.token(Tok::Str, start, self.st.pos, input, seg, i)
                                {
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
                    if self.flush_due(tok) {
                        self.flush(input, seg, i);
                    }
                    if let Some(out) = self.token(tok, start, self.st.pos, input, seg, i) {
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
                        let room = (MAX_TOKEN_SIZE + 1).saturating_sub(self.token_len());
                        let plain = string_run(rest, self.st.quote).min(room);
                        if plain > 0 {
                            self.st.pos += plain;
                            i += plain;
                            if self.token_len() > MAX_TOKEN_SIZE {
                                return (i, self.limit(Out::Oversized(self.st.pos)));
                            }
                            continue;
                        }
                    }
                    self.st.pos += 1;
                    i += 1;
                    match self.string_byte(b) {
                        StrStep::Continue => {
                            if self.token_len() > MAX_TOKEN_SIZE {
                                return (i, self.limit(Out::Oversized(self.st.pos)));
                            }
                        }
                        StrStep::End => {
                            self.st.lex = Lex::Start;
                            let start = self.st.tok_start;
                            if self.flush_due(Tok::Str) {
                                self.flush(input, seg, i);
                            }
                            if let Some(out) =
                                self.token(Tok::Str, start, self.st.pos, input, seg, i)
                            {
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
                        if self.token_len() > MAX_TOKEN_SIZE {
                            return (i, self.limit(Out::Oversized(self.st.pos)));
                        }
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
                    // QEMU 10's `TERMINAL` covers every byte: any byte that
                    // cannot continue the token ends it (and is lexed again).
                    let ends = terminal && !(lex == Lex::Zero && b.is_ascii_digit());
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
                    if self.flush_due(tok) {
                        self.flush(input, seg, i);
                    }
                    if let Some(out) = self.token(tok, start, self.st.pos, input, seg, i) {
                        return (i, Some(out));
                    }
                }
            }
        }
        (i, None)
    }
}
