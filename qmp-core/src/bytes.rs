//! Copying and searching short byte runs.
//!
//! Copies have no panic path: `copy_from_slice`'s length check is one
//! wherever it is not inlined (opt-level "z"; see `no-panic/`). On
//! bare-metal targets a byte loop (about 7 instructions a byte on a
//! Cortex-M), a `memcpy` call (about 90 for a few bytes) or `memchr`'s
//! setup cost more than going a word at a time, which is what these do
//! there; hosted targets use the library's routines.

/// Copies `src` to the start of `dst`, as many bytes as both have.
#[cfg_attr(target_os = "none", inline(never))]
#[cfg_attr(not(target_os = "none"), inline)]
pub(crate) fn copy_prefix(dst: &mut [u8], src: &[u8]) {
    let n = dst.len().min(src.len());
    if let (Some(dst), Some(src)) = (dst.get_mut(..n), src.get(..n)) {
        copy_same_len(dst, src);
    }
}

#[cfg(not(target_os = "none"))]
#[inline(always)]
fn copy_same_len(dst: &mut [u8], src: &[u8]) {
    dst.copy_from_slice(src);
}

#[cfg(target_os = "none")]
#[inline(always)]
fn copy_same_len(dst: &mut [u8], src: &[u8]) {
    let mut d = dst.chunks_exact_mut(4);
    let mut s = src.chunks_exact(4);
    for (dc, sc) in (&mut d).zip(&mut s) {
        if let (Ok(dc), Ok(sc)) = (<&mut [u8; 4]>::try_from(dc), <&[u8; 4]>::try_from(sc)) {
            *dc = *sc;
        }
    }
    // (The same length: the remainders correspond.)
    d.into_remainder()
        .iter_mut()
        .zip(s.remainder())
        .for_each(|(a, b)| *a = *b);
}

/// The first byte of `hay` that is `a` or `b`.
#[cfg(not(target_os = "none"))]
#[inline]
pub(crate) fn find2(a: u8, b: u8, hay: &[u8]) -> Option<usize> {
    memchr::memchr2(a, b, hay)
}

/// The first byte of `hay` that is `a`, a word at a time.
#[cfg(target_os = "none")]
#[inline(never)]
pub(crate) fn find1(a: u8, hay: &[u8]) -> Option<usize> {
    const WORD: usize = core::mem::size_of::<usize>();
    const ONES: usize = usize::MAX / 0xFF;
    const HI: usize = ONES * 0x80;
    let wa = ONES * usize::from(a);
    let mut n = 0;
    for chunk in hay.chunks_exact(WORD) {
        let xa = <[u8; WORD]>::try_from(chunk).map_or(0, usize::from_le_bytes) ^ wa;
        // The high bit of each zero byte of `xa`, exact up to the first.
        let z = xa.wrapping_sub(ONES) & !xa & HI;
        if z != 0 {
            return Some(n + (z.trailing_zeros() / 8) as usize);
        }
        n += WORD;
    }
    let k = hay.get(n..)?.iter().position(|&c| c == a)?;
    Some(n + k)
}

/// The first byte of `hay` that is `a` or `b`, a word at a time.
#[cfg(target_os = "none")]
#[inline(never)]
pub(crate) fn find2(a: u8, b: u8, hay: &[u8]) -> Option<usize> {
    const WORD: usize = core::mem::size_of::<usize>();
    const ONES: usize = usize::MAX / 0xFF;
    const HI: usize = ONES * 0x80;
    let (wa, wb) = (ONES * usize::from(a), ONES * usize::from(b));
    let mut n = 0;
    for chunk in hay.chunks_exact(WORD) {
        let x = <[u8; WORD]>::try_from(chunk).map_or(0, usize::from_le_bytes);
        let (xa, xb) = (x ^ wa, x ^ wb);
        // The high bit of each zero byte of `xa` or `xb`, exact up to the
        // first one (borrows only run towards more significant bytes).
        let z = ((xa.wrapping_sub(ONES) & !xa) | (xb.wrapping_sub(ONES) & !xb)) & HI;
        if z != 0 {
            return Some(n + (z.trailing_zeros() / 8) as usize);
        }
        n += WORD;
    }
    let k = hay.get(n..)?.iter().position(|&c| c == a || c == b)?;
    Some(n + k)
}

/// Whether `a` and `b` are the same bytes.
#[cfg(not(target_os = "none"))]
#[inline]
pub(crate) fn eq(a: &[u8], b: &[u8]) -> bool {
    a == b
}

/// Whether `a` and `b` are the same bytes, a word at a time (`memcmp` goes
/// a byte at a time on a Cortex-M, after its own setup).
#[cfg(target_os = "none")]
#[inline(never)]
pub(crate) fn eq(a: &[u8], b: &[u8]) -> bool {
    const WORD: usize = core::mem::size_of::<usize>();
    if a.len() != b.len() {
        return false;
    }
    let word = |c: &[u8]| <[u8; WORD]>::try_from(c).map_or(0, usize::from_le_bytes);
    let (mut ac, mut bc) = (a.chunks_exact(WORD), b.chunks_exact(WORD));
    for (x, y) in (&mut ac).zip(&mut bc) {
        if word(x) != word(y) {
            return false;
        }
    }
    ac.remainder()
        .iter()
        .zip(bc.remainder())
        .all(|(x, y)| x == y)
}
