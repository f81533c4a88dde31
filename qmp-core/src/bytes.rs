//! Copying short byte runs.
//!
//! Copies have no panic path: `copy_from_slice`'s length check is one
//! wherever it is not inlined (opt-level "z"; see `no-panic/`). On
//! bare-metal targets a byte loop (about 7 instructions a byte on a
//! Cortex-M) or a `memcpy` call cost more than going a word at a time,
//! which is what these do there; hosted targets copy in a loop LLVM
//! vectorises.

/// Copies `src` to the start of `dst`, as many bytes as both have.
#[cfg_attr(target_os = "none", inline(never))]
#[cfg_attr(not(target_os = "none"), inline)]
pub(crate) fn copy_prefix(dst: &mut [u8], src: &[u8]) {
    let n = dst.len().min(src.len());
    if let (Some(dst), Some(src)) = (dst.get_mut(..n), src.get(..n)) {
        copy_same_len(dst, src);
    }
}

// Short copies (a request's tokens) by `memcpy`, cheaper than setting up
// a vector loop; long ones (a large reply's members) by the loop LLVM
// vectorises, not `memcpy`'s string instructions.
#[cfg(not(target_os = "none"))]
#[inline(always)]
fn copy_same_len(dst: &mut [u8], src: &[u8]) {
    if dst.len() <= 64 {
        dst.copy_from_slice(src);
    } else {
        dst.iter_mut().zip(src).for_each(|(d, s)| *d = *s);
    }
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
