//! Byte search: `memchr`'s word-at-a-time routines on hosts; a plain loop
//! on bare-metal targets (`target_os = "none"`), where the strings a
//! firmware session searches are short and the crate's routines cost
//! about 400 bytes of flash.

/// The first `a` in `s`.
#[inline]
pub(crate) fn find(a: u8, s: &[u8]) -> Option<usize> {
    #[cfg(target_os = "none")]
    {
        s.iter().position(|&c| c == a)
    }
    #[cfg(not(target_os = "none"))]
    {
        memchr::memchr(a, s)
    }
}

/// The first `a` or `b` in `s`.
#[inline]
pub(crate) fn find2(a: u8, b: u8, s: &[u8]) -> Option<usize> {
    #[cfg(target_os = "none")]
    {
        s.iter().position(|&c| c == a || c == b)
    }
    #[cfg(not(target_os = "none"))]
    {
        memchr::memchr2(a, b, s)
    }
}
