//! The framer's fast path: the common tokens of a message in progress,
//! with the grammar laid out as code rather than as a table.
//!
//! [`Framer::fast`] is entered between tokens of a message that is still
//! valid, stored and not too deep. It consumes whole tokens that it can
//! judge entirely within the input it was given — whitespace, structural
//! characters, double-quoted strings of printable ASCII without escapes,
//! integers, `true`/`false`/`null` — and leaves everything else (the first
//! and last token of a message, escapes, UTF-8, single quotes, fractions,
//! errors, a token cut by the end of the input or by the size limit) to the
//! general state machine, at a token boundary and with the state the
//! general machine would have reached itself. So every chunking of the
//! input still gives the same frames: the fast path only changes how fast
//! they come.

#[cfg(not(target_pointer_width = "64"))]
use super::strings::WORD;
use super::strings::{special_in, word};
use super::{
    bit, set_bit, string_run, Framer, Gram, Skip, MAX_TOKEN_COUNT, MAX_TOKEN_SIZE,
    MAX_TRACKED_MEMBERS,
};

/// The grammar position, as the fast path keeps it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum At {
    /// A key (`Gram::Key`), or a key or `}` (`Gram::KeyOrEnd`).
    Key { or_end: bool },
    /// A `:`.
    Colon,
    /// A value (`Gram::Value`), or a value or `]` (`Gram::ValueOrEnd`).
    Value { or_end: bool },
    /// A `,` or the container's closer (`Gram::CommaOrEnd`).
    After,
}

impl At {
    fn of(gram: Gram) -> Option<At> {
        Some(match gram {
            Gram::Key => At::Key { or_end: false },
            Gram::KeyOrEnd => At::Key { or_end: true },
            Gram::Colon => At::Colon,
            Gram::Value => At::Value { or_end: false },
            Gram::ValueOrEnd => At::Value { or_end: true },
            Gram::CommaOrEnd => At::After,
            Gram::Done | Gram::Errored => return None,
        })
    }

    fn gram(self) -> Gram {
        match self {
            At::Key { or_end: false } => Gram::Key,
            At::Key { or_end: true } => Gram::KeyOrEnd,
            At::Colon => Gram::Colon,
            At::Value { or_end: false } => Gram::Value,
            At::Value { or_end: true } => Gram::ValueOrEnd,
            At::After => Gram::CommaOrEnd,
        }
    }
}

#[inline(always)]
fn is_ws(b: u8) -> bool {
    // A bit test, not a jump table: this is asked of almost every byte.
    const WS: u64 = 1 << b' ' | 1 << b'\t' | 1 << b'\r' | 1 << b'\n';
    b <= b' ' && WS >> b & 1 == 1
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> Framer<B> {
    /// Whether [`Framer::fast`] may run: between tokens of a message being
    /// stored and validated.
    #[inline(always)]
    pub(super) fn fast_ok(&self) -> bool {
        cfg!(feature = "fast-path")
            && self.st.in_msg
            && self.st.depth > 0
            && self.st.skip == Skip::No
            && self.st.err.is_none()
    }

    /// Consumes the tokens it can from `input[start..]` (see the module
    /// docs) and returns where it stopped.
    #[inline(never)]
    pub(super) fn fast(&mut self, input: &[u8], start: usize, seg: &mut usize) -> usize {
        let Some(mut at) = At::of(self.st.gram) else {
            return start;
        };
        // No byte past `end` may be consumed: the message would no longer
        // fit, which the general machine decides token by token.
        let room = if self.keep {
            self.buf.as_ref().len().saturating_sub(self.st.pos)
        } else {
            usize::MAX
        };
        // Nor may it reach QEMU's token limits, which the general machine
        // checks token by token (every token is at least one byte).
        let tokens_left = (MAX_TOKEN_COUNT - self.st.ntok.min(MAX_TOKEN_COUNT)) as usize;
        let bytes_left = (MAX_TOKEN_SIZE - 1).saturating_sub(self.st.pos - self.st.ws);
        let room = room.min(tokens_left).min(bytes_left);
        let end = input.len().min(start.saturating_add(room));
        let win = input.get(..end).unwrap_or(&[]);
        // `pos` advances with `i`: pos = i + base (mod 2^n).
        let base = self.st.pos.wrapping_sub(start);
        let max_depth = i32::from(self.cfg.max_depth);
        let mut i = start;
        let mut depth = self.st.depth;
        // The innermost container is an array; it is the top-level object.
        let mut arr = depth > 0 && bit(&self.arrays, depth - 1);
        let mut top = depth == 1 && !arr;
        // Tokens and whitespace bytes consumed (QEMU's counts).
        let mut ntok = 0u32;
        let mut ws = 0usize;
        'tokens: while let Some(&c) = win.get(i) {
            let mut b = c;
            if at == At::After {
                if b == b',' {
                    i += 1;
                    ntok += 1;
                    at = if arr {
                        At::Value { or_end: false }
                    } else {
                        At::Key { or_end: false }
                    };
                    let Some(&c) = win.get(i) else { break };
                    b = c;
                } else if b == if arr { b']' } else { b'}' } {
                    // Closing the message, or a container that sat where
                    // a key belongs (an error): the general machine's job.
                    if depth <= 1 || bit(&self.keys, depth - 1) {
                        break;
                    }
                    if arr {
                        self.st.brackets -= 1;
                    } else {
                        self.st.braces -= 1;
                    }
                    i += 1;
                    ntok += 1;
                    if !arr && self.dups_on() && self.st.top == depth {
                        self.st.pos = i.wrapping_add(base);
                        self.st.depth = depth;
                        self.st.gram = Gram::CommaOrEnd;
                        self.dup_close(depth - 1, input, seg, i);
                        if self.st.err.is_some() {
                            break;
                        }
                    }
                    depth -= 1;
                    arr = bit(&self.arrays, depth - 1);
                    top = depth == 1 && !arr;
                    if !arr && self.member_repeats(depth) {
                        break;
                    }
                    if top && !self.fast_member(input, seg, i, base, depth) {
                        at = At::After;
                        break;
                    }
                    continue;
                } else if is_ws(b) {
                    i += 1;
                    ws += 1;
                    continue;
                } else {
                    break;
                }
            }
            if is_ws(b) {
                i += 1;
                ws += 1;
                // Usually one space: look at once at what follows.
                let Some(&c) = win.get(i) else { break };
                if is_ws(c) {
                    continue;
                }
                b = c;
            }
            match at {
                At::Key { or_end } => {
                    if b == b'"' {
                        let Some(e) = plain_string(win, i) else { break };
                        if top {
                            self.st.key_start = i.wrapping_add(base) + 1;
                            self.st.key_end = e.wrapping_add(base) - 1;
                            self.st.key_quote = b'"';
                            self.st.key_plain = true;
                            self.note_first_key();
                        }
                        self.st.quote = b'"';
                        let key_at = i;
                        i = e;
                        ntok += 1;
                        if self.dups_on()
                            && (!top || usize::from(self.st.nmem) >= MAX_TRACKED_MEMBERS)
                        {
                            self.st.pos = i.wrapping_add(base);
                            self.st.depth = depth;
                            self.st.gram = at.gram();
                            self.dup_key(depth - 1, key_at.wrapping_add(base), input, seg, i);
                            if self.st.err.is_some() {
                                break;
                            }
                        }
                        // Usually `": "` follows at once.
                        if win.get(i) != Some(&b':') {
                            at = At::Colon;
                            continue;
                        }
                        i += 1;
                        ntok += 1;
                        at = At::Value { or_end: false };
                        let Some(&c) = win.get(i) else { break };
                        b = c;
                        if b == b' ' {
                            i += 1;
                            ws += 1;
                            let Some(&c) = win.get(i) else { break };
                            b = c;
                        }
                        if is_ws(b) {
                            continue;
                        }
                    } else if b == b'}' && or_end {
                        // `{}`
                        if depth <= 1 || bit(&self.keys, depth - 1) {
                            break;
                        }
                        self.st.braces -= 1;
                        i += 1;
                        ntok += 1;
                        depth -= 1;
                        arr = bit(&self.arrays, depth - 1);
                        top = depth == 1 && !arr;
                        at = At::After;
                        if !arr && self.member_repeats(depth) {
                            break;
                        }
                        if top && !self.fast_member(input, seg, i, base, depth) {
                            break;
                        }
                        continue;
                    } else {
                        break;
                    }
                }
                At::Colon => {
                    if b != b':' {
                        break;
                    }
                    i += 1;
                    ntok += 1;
                    at = At::Value { or_end: false };
                    continue;
                }
                At::Value { .. } | At::After => {}
            }
            // A value (or `]`) at `i`, which holds `b`.
            let value_start = i;
            match b {
                b'"' => {
                    let Some(e) = plain_string(win, i) else { break };
                    self.st.quote = b'"';
                    i = e;
                }
                b'{' | b'[' => {
                    if self.st.braces + self.st.brackets >= max_depth {
                        break;
                    }
                    if top {
                        self.st.val_start = i.wrapping_add(base);
                    }
                    arr = b == b'[';
                    if arr {
                        self.st.brackets += 1;
                        at = At::Value { or_end: true };
                    } else {
                        self.st.braces += 1;
                        at = At::Key { or_end: true };
                    }
                    set_bit(&mut self.arrays, depth, arr);
                    set_bit(&mut self.keys, depth, false);
                    depth += 1;
                    top = false;
                    i += 1;
                    ntok += 1;
                    continue 'tokens;
                }
                b']' if at == (At::Value { or_end: true }) => {
                    // `[]`
                    if depth <= 1 || bit(&self.keys, depth - 1) {
                        break;
                    }
                    self.st.brackets -= 1;
                    i += 1;
                    ntok += 1;
                    depth -= 1;
                    arr = bit(&self.arrays, depth - 1);
                    top = depth == 1 && !arr;
                    at = At::After;
                    if !arr && self.member_repeats(depth) {
                        break;
                    }
                    if top && !self.fast_member(input, seg, i, base, depth) {
                        break;
                    }
                    continue 'tokens;
                }
                b'-' | b'0'..=b'9' => {
                    let Some(e) = number(win, input, i) else {
                        break;
                    };
                    i = e;
                }
                b't' | b'f' | b'n' => {
                    let Some(e) = keyword(win, input, i) else {
                        break;
                    };
                    i = e;
                }
                _ => break,
            }
            // A scalar value ended at `i`.
            ntok += 1;
            at = At::After;
            if !arr && self.member_repeats(depth) {
                break;
            }
            if top {
                self.st.val_start = value_start.wrapping_add(base);
                if !self.fast_member(input, seg, i, base, depth) {
                    break;
                }
            }
        }
        self.st.pos = i.wrapping_add(base);
        self.st.depth = depth;
        self.st.ntok += ntok;
        self.st.ws += ws;
        if self.st.err.is_none() {
            self.st.gram = at.gram();
        }
        i
    }

    /// A member of the object at depth `depth` is complete: whether its key
    /// was found to repeat an earlier one (the error is then recorded).
    #[inline(always)]
    fn member_repeats(&mut self, depth: u16) -> bool {
        if self.st.dup_at == depth {
            self.dup_member_done(depth - 1);
            return self.st.err.is_some();
        }
        false
    }

    /// A top-level member's value ended at input `i`: records it (its key
    /// is compared with the earlier ones in the buffer, so what has been
    /// consumed is stored first). False when that found a duplicate key.
    #[inline(always)]
    fn fast_member(
        &mut self,
        input: &[u8],
        seg: &mut usize,
        i: usize,
        base: usize,
        depth: u16,
    ) -> bool {
        self.st.pos = i.wrapping_add(base);
        self.st.depth = depth;
        self.st.gram = Gram::CommaOrEnd;
        self.flush(input, seg, i);
        self.member(self.st.pos);
        self.st.err.is_none()
    }
}

/// The end (just past the closing quote) of a plain string starting at
/// `win[i]` (a `"`), if it closes within `win` with nothing but printable
/// ASCII other than `\` in between.
// Out of line on bare-metal targets (one copy: flash), inlined on
// hosted ones (speed: it is called for almost every token).
#[cfg_attr(target_os = "none", inline(never))]
#[cfg_attr(not(target_os = "none"), inline(always))]
fn plain_string(win: &[u8], i: usize) -> Option<usize> {
    let body = i + 1;
    if let Some(w) = win.get(body..body + 16) {
        // Strings of up to 15 bytes (most keys and names): the first
        // flagged byte of 16, a machine word at a time.
        if let Some(at) = first_special(w) {
            return (w.get(at) == Some(&b'"')).then_some(body + at + 1);
        }
    }
    let rest = win.get(body..)?;
    let run = string_run(rest, b'"');
    (rest.get(run) == Some(&b'"')).then_some(body + run + 1)
}

/// The first byte of `w` (16 bytes) that is `"`, `\\`, a control byte or
/// not ASCII; without a data-dependent branch on 64-bit targets.
#[cfg(target_pointer_width = "64")]
#[inline(always)]
fn first_special(w: &[u8]) -> Option<usize> {
    let (lo, hi) = w.split_at_checked(8)?;
    let a = special_in(word(lo), b'"');
    let b = special_in(word(hi), b'"');
    let (ta, tb) = (a.trailing_zeros(), b.trailing_zeros());
    // ta + tb when the first word has nothing flagged (ta == 64).
    let at = ((ta + (tb & 0u32.wrapping_sub(ta >> 6))) / 8) as usize;
    (at < 16).then_some(at)
}

/// The first byte of `w` (16 bytes) that is `"`, `\\`, a control byte or
/// not ASCII, a word at a time (64-bit arithmetic costs twice on a 32-bit
/// core).
#[cfg(not(target_pointer_width = "64"))]
#[inline(always)]
fn first_special(w: &[u8]) -> Option<usize> {
    let mut at = 0;
    for chunk in w.chunks_exact(WORD) {
        let s = special_in(word(chunk), b'"');
        if s != 0 {
            return Some(at + (s.trailing_zeros() / 8) as usize);
        }
        at += WORD;
    }
    None
}

/// Whether `b` ends a number or keyword in a way the fast path handles: a
/// byte that starts the next token or is whitespace.
#[inline(always)]
fn clean_end(b: u8) -> bool {
    matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n')
}

/// The end of an integer (`-?(0|[1-9][0-9]*)`) starting at `win[i]`, if it
/// lies within `win` and the byte after it (looked at, not consumed) is in
/// `input` and ends it cleanly. Fractions and exponents are left to the
/// general machine.
// Out of line on bare-metal targets (one copy: flash), inlined on
// hosted ones (speed: it is called for almost every token).
#[cfg_attr(target_os = "none", inline(never))]
#[cfg_attr(not(target_os = "none"), inline(always))]
fn number(win: &[u8], input: &[u8], i: usize) -> Option<usize> {
    let mut j = i;
    if win.get(j) == Some(&b'-') {
        j += 1;
    }
    match *win.get(j)? {
        b'0' => j += 1,
        b'1'..=b'9' => {
            j += 1;
            while win.get(j).is_some_and(u8::is_ascii_digit) {
                j += 1;
            }
        }
        _ => return None,
    }
    if j > win.len() {
        return None;
    }
    clean_end(*input.get(j)?).then_some(j)
}

/// The end of `true`, `false` or `null` starting at `win[i]`, if it lies
/// within `win` and the byte after it is in `input` and ends it cleanly.
// Out of line on bare-metal targets (one copy: flash), inlined on
// hosted ones (speed: it is called for almost every token).
#[cfg_attr(target_os = "none", inline(never))]
#[cfg_attr(not(target_os = "none"), inline(always))]
fn keyword(win: &[u8], input: &[u8], i: usize) -> Option<usize> {
    let rest = win.get(i..)?;
    let len = if rest.starts_with(b"true") || rest.starts_with(b"null") {
        4
    } else if rest.starts_with(b"false") {
        5
    } else {
        return None;
    };
    let j = i + len;
    clean_end(*input.get(j)?).then_some(j)
}
