//! Byte search: `memchr`'s word-at-a-time routines on hosts; on bare-metal
//! targets (`target_os = "none"`), where the strings a firmware session
//! searches are short and the crate's routines cost about 400 bytes of
//! flash, a word at a time here (a byte loop costs about 6 instructions a
//! byte on a Cortex-M; this about 2 for one needle, 3 for two).

/// The first `a` in `s`.
#[cfg(not(target_os = "none"))]
#[inline]
pub(crate) fn find(a: u8, s: &[u8]) -> Option<usize> {
    memchr::memchr(a, s)
}

/// The first `a` or `b` in `s`.
#[cfg(not(target_os = "none"))]
#[inline]
pub(crate) fn find2(a: u8, b: u8, s: &[u8]) -> Option<usize> {
    memchr::memchr2(a, b, s)
}

#[cfg(target_os = "none")]
const WORD: usize = core::mem::size_of::<usize>();
#[cfg(target_os = "none")]
const ONES: usize = usize::MAX / 0xFF;
#[cfg(target_os = "none")]
const HI: usize = ONES * 0x80;

/// The little-endian word in `chunk` (`WORD` bytes; 0 if it is not).
#[cfg(target_os = "none")]
#[inline(always)]
fn word(chunk: &[u8]) -> usize {
    <[u8; WORD]>::try_from(chunk).map_or(0, usize::from_le_bytes)
}

/// The high bit of each zero byte of `x`, exact up to the first one
/// (borrows only run towards more significant bytes).
#[cfg(target_os = "none")]
#[inline(always)]
fn zero_bytes(x: usize) -> usize {
    x.wrapping_sub(ONES) & !x & HI
}

/// The first `a` in `s`, a word at a time.
#[cfg(target_os = "none")]
#[inline(never)]
pub(crate) fn find(a: u8, s: &[u8]) -> Option<usize> {
    let wa = ONES * usize::from(a);
    let mut n = 0;
    for chunk in s.chunks_exact(WORD) {
        let z = zero_bytes(word(chunk) ^ wa);
        if z != 0 {
            return Some(n + (z.trailing_zeros() / 8) as usize);
        }
        n += WORD;
    }
    let k = s.get(n..)?.iter().position(|&c| c == a)?;
    Some(n + k)
}

/// The first `a` or `b` in `s`, a word at a time.
#[cfg(target_os = "none")]
#[inline(never)]
pub(crate) fn find2(a: u8, b: u8, s: &[u8]) -> Option<usize> {
    let (wa, wb) = (ONES * usize::from(a), ONES * usize::from(b));
    let mut n = 0;
    for chunk in s.chunks_exact(WORD) {
        let x = word(chunk);
        let z = zero_bytes(x ^ wa) | zero_bytes(x ^ wb);
        if z != 0 {
            return Some(n + (z.trailing_zeros() / 8) as usize);
        }
        n += WORD;
    }
    let k = s.get(n..)?.iter().position(|&c| c == a || c == b)?;
    Some(n + k)
}
