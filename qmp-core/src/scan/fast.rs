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

use super::{bit, string_run, Framer, Gram, Skip};

impl<B: AsRef<[u8]> + AsMut<[u8]>> Framer<B> {
    /// Whether [`Framer::fast`] may run: between tokens of a message being
    /// stored and validated.
    #[inline(always)]
    pub(super) fn fast_ok(&self) -> bool {
        self.st.in_msg && self.st.depth > 0 && self.st.skip == Skip::No && self.st.err.is_none()
    }

    /// Consumes the tokens it can from `input[start..]` (see the module
    /// docs) and returns where it stopped.
    #[inline(never)]
    pub(super) fn fast(&mut self, input: &[u8], start: usize, seg: &mut usize) -> usize {
        // No byte past `end` may be consumed: the message would no longer
        // fit, which the general machine decides token by token.
        let room = if self.keep {
            self.buf.as_ref().len().saturating_sub(self.st.pos)
        } else {
            usize::MAX
        };
        let end = input.len().min(start.saturating_add(room));
        let win = input.get(..end).unwrap_or(&[]);
        // `pos` advances with `i`: pos = i + base (mod 2^n).
        let base = self.st.pos.wrapping_sub(start);
        let max_depth = i64::from(self.cfg.max_depth);
        let mut i = start;
        let mut gram = self.st.gram;
        'tokens: loop {
            let Some(&b) = win.get(i) else { break };
            if matches!(b, b' ' | b'\t' | b'\r' | b'\n') {
                i += 1;
                continue;
            }
            match gram {
                Gram::CommaOrEnd => {
                    let array = self.st.depth > 0 && bit(&self.arrays, self.st.depth - 1);
                    match (b, array) {
                        (b',', false) => gram = Gram::Key,
                        (b',', true) => gram = Gram::Value,
                        (b'}', false) | (b']', true) => {
                            if !self.fast_close(b) {
                                break;
                            }
                            i += 1;
                            gram = self.fast_after_value(input, seg, i, base);
                            if gram != Gram::CommaOrEnd {
                                break;
                            }
                            continue;
                        }
                        _ => break,
                    }
                    i += 1;
                }
                Gram::Key | Gram::KeyOrEnd => {
                    if b == b'"' {
                        let Some(e) = plain_string(win, i) else { break };
                        if self.st.depth == 1 {
                            self.st.key_start = i.wrapping_add(base) + 1;
                            self.st.key_end = e.wrapping_add(base) - 1;
                            self.st.key_quote = b'"';
                        }
                        self.st.quote = b'"';
                        i = e;
                        // Usually `": "` follows at once.
                        if win.get(i) == Some(&b':') {
                            i += 1;
                            gram = Gram::Value;
                            if win.get(i) == Some(&b' ') {
                                i += 1;
                            }
                        } else {
                            gram = Gram::Colon;
                        }
                        continue;
                    }
                    if b == b'}' && gram == Gram::KeyOrEnd {
                        if !self.fast_close(b) {
                            break;
                        }
                        i += 1;
                        gram = self.fast_after_value(input, seg, i, base);
                        if gram != Gram::CommaOrEnd {
                            break;
                        }
                        continue;
                    }
                    break;
                }
                Gram::Colon => {
                    if b != b':' {
                        break;
                    }
                    i += 1;
                    gram = Gram::Value;
                }
                Gram::Value | Gram::ValueOrEnd => {
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
                            if self.st.depth == 1 && !bit(&self.arrays, 0) {
                                self.st.val_start = i.wrapping_add(base);
                            }
                            let array = b == b'[';
                            if array {
                                self.st.brackets += 1;
                                gram = Gram::ValueOrEnd;
                            } else {
                                self.st.braces += 1;
                                gram = Gram::KeyOrEnd;
                            }
                            self.push(array, false);
                            i += 1;
                            continue 'tokens;
                        }
                        b']' if gram == Gram::ValueOrEnd => {
                            if !self.fast_close(b) {
                                break;
                            }
                            i += 1;
                            gram = self.fast_after_value(input, seg, i, base);
                            if gram != Gram::CommaOrEnd {
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
                    if self.st.depth == 1 && !bit(&self.arrays, 0) {
                        self.st.val_start = value_start.wrapping_add(base);
                    }
                    gram = self.fast_after_value(input, seg, i, base);
                    if gram != Gram::CommaOrEnd {
                        break;
                    }
                }
                Gram::Done | Gram::Errored => break,
            }
        }
        self.st.pos = i.wrapping_add(base);
        if self.st.err.is_none() {
            self.st.gram = gram;
        }
        i
    }

    /// Closes the innermost container with `b` (which matches it), unless
    /// that is the general machine's job: the message's last token, or a
    /// container that sits where a key belongs (an error).
    #[inline(always)]
    fn fast_close(&mut self, b: u8) -> bool {
        let depth = self.st.depth;
        if depth <= 1 || bit(&self.keys, depth - 1) {
            return false;
        }
        if b == b']' {
            self.st.brackets -= 1;
        } else {
            self.st.braces -= 1;
        }
        self.st.depth = depth - 1;
        true
    }

    /// A value ended at input `i`: the next grammar state, after recording
    /// a top-level member (which may find a duplicate key and so end the
    /// fast path with an error recorded).
    #[inline(always)]
    fn fast_after_value(&mut self, input: &[u8], seg: &mut usize, i: usize, base: usize) -> Gram {
        if self.st.depth == 1 && !bit(&self.arrays, 0) {
            self.st.pos = i.wrapping_add(base);
            // The member's key is compared with the earlier ones in the
            // buffer: store what has been consumed so far.
            self.flush(input, seg, i);
            self.st.gram = Gram::CommaOrEnd;
            self.member(self.st.pos);
            if self.st.err.is_some() {
                return Gram::Errored;
            }
        }
        Gram::CommaOrEnd
    }
}

/// The end (just past the closing quote) of a plain string starting at
/// `win[i]` (a `"`), if it closes within `win` with nothing but printable
/// ASCII other than `\` in between.
#[inline(always)]
fn plain_string(win: &[u8], i: usize) -> Option<usize> {
    let rest = win.get(i + 1..)?;
    let run = string_run(rest, b'"');
    (rest.get(run) == Some(&b'"')).then_some(i + run + 2)
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
#[inline(always)]
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
#[inline(always)]
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
