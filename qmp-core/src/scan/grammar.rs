//! The streamer's counting and the parser's grammar: tokens in, message
//! ends and the first grammar error out.

use super::*;

impl<B: AsRef<[u8]> + AsMut<[u8]>> Framer<B> {
    pub(super) fn is_array(&self, level: u16) -> bool {
        bit(&self.arrays, level)
    }

    pub(super) fn push(&mut self, array: bool, key: bool) {
        let level = self.st.depth;
        set_bit(&mut self.arrays, level, array);
        set_bit(&mut self.keys, level, key);
        self.st.depth += 1;
    }

    /// A token of the current message, from `start` to `end`.
    #[inline]
    pub(super) fn token(
        &mut self,
        tok: Tok,
        start: usize,
        end: usize,
        input: &[u8],
        seg: &mut usize,
        i: usize,
    ) -> Option<Out> {
        // Overflow is decided here (and at lexical errors), not where bytes
        // happen to be flushed, so that every chunking agrees.
        if self.st.skip == Skip::No && self.keep && self.st.pos > self.buf.as_ref().len() {
            // What fits is stored first (a flush may not have been due).
            self.flush(input, seg, i);
            self.st.skip = Skip::Oversized;
        }
        let opens = match tok {
            Tok::LCurly => {
                self.st.braces += 1;
                true
            }
            Tok::RCurly => {
                self.st.braces -= 1;
                false
            }
            Tok::LSquare => {
                self.st.brackets += 1;
                true
            }
            Tok::RSquare => {
                self.st.brackets -= 1;
                false
            }
            _ => false,
        };
        // QEMU's limits (`json-streamer.c`), checked in its order before the
        // token is queued, whatever our own buffer made of the message. Each
        // drops the message so far, the current token included, and the
        // bytes after it are read as new input. The two token limits cannot
        // be reached before the message has that many bytes (`end` is
        // `pos`; every token has a byte, whitespace is not counted, and
        // `MAX_TOKEN_COUNT` is the smaller), so they are asked only then;
        // the nesting only grows with an opener.
        if end >= MAX_TOKEN_COUNT as usize {
            if end.saturating_sub(self.st.ws) >= MAX_TOKEN_SIZE {
                return self.limit(Out::Oversized(self.st.pos));
            }
            if self.st.ntok >= MAX_TOKEN_COUNT {
                return self.limit(Out::TokenCount);
            }
        }
        if opens && self.st.braces + self.st.brackets > i32::from(self.cfg.max_depth) {
            return self.limit(Out::Depth);
        }
        self.st.ntok += 1;
        if self.st.skip == Skip::No && self.st.err.is_none() {
            self.grammar(tok, start, end, input, seg, i);
        }
        let (c, k) = (self.st.braces, self.st.brackets);
        if (c > 0 || k > 0) && c >= 0 && k >= 0 {
            return None;
        }
        Some(self.finish())
    }

    /// One of QEMU's limits was hit: the message ends here with `out`.
    pub(super) fn limit(&mut self, out: Out) -> Option<Out> {
        self.st.skip = Skip::Limit;
        self.st.ended = true;
        self.st.lex = Lex::Start;
        Some(out)
    }

    #[inline]
    fn grammar(
        &mut self,
        tok: Tok,
        start: usize,
        end: usize,
        input: &[u8],
        seg: &mut usize,
        i: usize,
    ) {
        match self.st.gram {
            Gram::Value | Gram::ValueOrEnd => {
                if tok == Tok::RSquare && self.st.gram == Gram::ValueOrEnd {
                    self.close(end, input, seg, i);
                } else {
                    self.value(tok, start, end);
                }
            }
            Gram::Key | Gram::KeyOrEnd => match tok {
                Tok::RCurly if self.st.gram == Gram::KeyOrEnd => self.close(end, input, seg, i),
                Tok::Str => {
                    // The top level's first members are checked against each
                    // other as they complete (`member`).
                    if self.dups_on()
                        && (self.st.depth > 1 || usize::from(self.st.nmem) >= MAX_TRACKED_MEMBERS)
                    {
                        self.dup_key(self.st.depth - 1, start, input, seg, i);
                    }
                    if self.st.depth == 1 {
                        self.st.key_start = start + 1;
                        self.st.key_end = end - 1;
                        self.st.key_quote = self.st.quote;
                        self.st.key_plain = self.st.str_plain;
                        self.note_first_key();
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
                    (Tok::RCurly, false) | (Tok::RSquare, true) => self.close(end, input, seg, i),
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

    fn close(&mut self, end: usize, input: &[u8], seg: &mut usize, i: usize) {
        let level = self.st.depth - 1;
        if self.dups_on() && !self.is_array(level) {
            self.dup_close(level, input, seg, i);
            if self.st.err.is_some() {
                return;
            }
        }
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
        let level = self.st.depth - 1;
        if !self.is_array(level) {
            self.dup_member_done(level);
            if level == 0 {
                self.member(end);
            }
        }
    }

    /// A top-level member ended at `end`.
    pub(super) fn member(&mut self, end: usize) {
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
        self.note_id(&span);
        let n = usize::from(self.st.nmem);
        if self.dups_on() && n < MAX_TRACKED_MEMBERS && self.repeats_tracked(&span, n) {
            self.dup_found();
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

    pub(super) fn keyword_ok(&self) -> bool {
        matches!(
            self.st.kw.get(..usize::from(self.st.kw_len)),
            Some(b"true" | b"false" | b"null")
        )
    }
}

// (Machine words: a 64-bit shift is a library call on a 32-bit core.)
const WORD_BITS: usize = usize::BITS as usize;

pub(super) fn bit(words: &[usize; DEPTH_WORDS], level: u16) -> bool {
    let level = usize::from(level);
    words
        .get(level / WORD_BITS)
        .is_some_and(|w| w >> (level % WORD_BITS) & 1 == 1)
}

pub(super) fn set_bit(words: &mut [usize; DEPTH_WORDS], level: u16, on: bool) {
    let level = usize::from(level);
    if let Some(w) = words.get_mut(level / WORD_BITS) {
        let mask = 1usize << (level % WORD_BITS);
        if on {
            *w |= mask;
        } else {
            *w &= !mask;
        }
    }
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> Framer<B> {
    /// Whether the key of a completed top-level member repeats one of the
    /// first `n` (tracked) ones.
    fn repeats_tracked(&self, span: &MemberSpan, n: usize) -> bool {
        let buf = self.buf.as_ref();
        let key_of = |m: &MemberSpan| {
            buf.get(m.key_start as usize..m.key_end as usize)
                .unwrap_or(&[])
        };
        let key = key_of(span);
        let tracked = self.members.get(..n).unwrap_or(&[]);
        tracked.iter().any(|m| {
            let other = key_of(m);
            if span.plain && m.plain {
                key == other
            } else {
                JsonStr::from_validated(key, span.quote)
                    .eq_json_str(&JsonStr::from_validated(other, m.quote))
            }
        })
    }
}
