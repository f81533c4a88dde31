//! String bodies: escapes, UTF-8 and Unicode validation, and the
//! word-at-a-time runs of plain bytes.

use super::*;

impl<B: AsRef<[u8]> + AsMut<[u8]>> Framer<B> {
    pub(super) fn begin_string(&mut self, quote: u8) {
        self.st.lex = Lex::Str;
        self.st.quote = quote;
        self.st.str_plain = true;
        self.st.esc = Esc::None;
        self.st.u8_need = 0;
    }

    /// One byte inside a string (already stored at `pos - 1`).
    pub(super) fn string_byte(&mut self, b: u8) -> StrStep {
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
    pub(super) fn close_string(&mut self, at: usize) {
        self.st.esc = Esc::None;
        if let Some(e) = &mut self.st.err {
            if let SynKind::InvalidUnicode { max } = e.kind {
                if e.end == e.start {
                    e.end = (e.start + usize::from(max)).min(at + 1);
                }
            }
        }
    }
}

pub(super) enum StrStep {
    Continue,
    End,
    LexError,
}

fn hex_val(b: u8) -> Option<u32> {
    char::from(b).to_digit(16)
}

/// Length of the prefix of a string body that needs no attention: printable
/// ASCII other than the quote and `\\`. Checked a machine word at a
/// time (4 bytes on a 32-bit core, where 64-bit arithmetic costs twice);
/// runs longer than 64 bytes are skipped with `memchr2` (`find.rs`) and
/// then checked.
// Out of line on bare-metal targets (one copy: flash), inlined on
// hosted ones (speed: it is called for almost every token).
#[cfg_attr(target_os = "none", inline(never))]
#[cfg_attr(not(target_os = "none"), inline(always))]
pub(super) fn string_run(rest: &[u8], quote: u8) -> usize {
    let mut n = 0;
    let mut chunks = rest.chunks_exact(WORD);
    for chunk in &mut chunks {
        let special = special_in(word(chunk), quote);
        if special != 0 {
            // Borrows only run towards more significant bytes, so the
            // lowest flagged byte is exact.
            return n + (special.trailing_zeros() / 8) as usize;
        }
        n += WORD;
        if n == 64 {
            let tail = rest.get(n..).unwrap_or(&[]);
            let stop = crate::find::find2(quote, b'\\', tail).unwrap_or(tail.len());
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

/// Bytes in a machine word.
pub(super) const WORD: usize = core::mem::size_of::<usize>();
const ONES: usize = usize::MAX / 0xFF;

/// The little-endian word in `chunk` (`WORD` bytes; 0 if it is not).
#[inline(always)]
pub(super) fn word(chunk: &[u8]) -> usize {
    // (Not `copy_from_slice` into an array: that is a `memcpy` call on a
    // Cortex-M, and a panic path where not inlined.)
    <[u8; WORD]>::try_from(chunk).map_or(0, usize::from_le_bytes)
}

/// The high bit of each byte of `x` that is `quote`, `\\`, a control byte
/// or not ASCII, exact up to the first one (0 if none).
#[inline(always)]
pub(super) fn special_in(x: usize, quote: u8) -> usize {
    let xq = x ^ (ONES * usize::from(quote));
    let xb = x ^ (ONES * usize::from(b'\\'));
    ((xq.wrapping_sub(ONES) & !xq)
        | (xb.wrapping_sub(ONES) & !xb)
        | x.wrapping_sub(ONES * 0x20)
        | x)
        & (ONES * 0x80)
}

/// Length of the prefix of `run` made of printable ASCII (0x20..0x7F),
/// checked a word at a time.
fn plain_prefix(run: &[u8]) -> usize {
    let mut n = 0;
    let mut chunks = run.chunks_exact(WORD);
    for chunk in &mut chunks {
        let x = word(chunk);
        if (x.wrapping_sub(ONES * 0x20) | x) & (ONES * 0x80) != 0 {
            break;
        }
        n += WORD;
    }
    n + run
        .get(n..)
        .unwrap_or(&[])
        .iter()
        .take_while(|&&b| (0x20..0x80).contains(&b))
        .count()
}
