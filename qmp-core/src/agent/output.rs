//! The agent's output buffer: replies and events waiting for
//! `poll_transmit`, written all or nothing.

use crate::encode::EncodeError;
use crate::InsufficientSize;

/// Why a write into the output did not happen.
pub(crate) enum WriteFail {
    /// No room now (the size needed).
    Full(usize),
    /// Never fits (the size needed).
    TooLarge(usize),
    /// The value could not be encoded.
    Encode(EncodeError),
}

pub(crate) struct Output<'b> {
    buf: &'b mut [u8],
    start: usize,
    end: usize,
}

impl<'b> Output<'b> {
    pub(crate) fn new(buf: &'b mut [u8]) -> Self {
        Output {
            buf,
            start: 0,
            end: 0,
        }
    }

    /// Bytes waiting.
    pub(crate) fn pending(&self) -> usize {
        self.end - self.start
    }

    /// Forgets everything waiting.
    pub(crate) fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// Runs a writer on the free space; all or nothing.
    pub(crate) fn write(
        &mut self,
        f: impl FnOnce(&mut [u8]) -> Result<usize, EncodeError>,
    ) -> Result<usize, WriteFail> {
        let r = f(self.free_space());
        self.commit(r)
    }

    /// The free space, after what is waiting (moved to the front).
    // Not inlined, nor `commit`: `write` is, at each of its many callers.
    #[inline(never)]
    fn free_space(&mut self) -> &mut [u8] {
        if self.start > 0 {
            move_to_front(self.buf, self.start, self.end);
            self.end -= self.start;
            self.start = 0;
        }
        self.buf.get_mut(self.end..).unwrap_or(&mut [])
    }

    /// Takes in what a writer wrote into [`Output::free_space`].
    #[inline(never)]
    fn commit(&mut self, r: Result<usize, EncodeError>) -> Result<usize, WriteFail> {
        let cap = self.buf.len();
        match r {
            Ok(n) => {
                self.end += n;
                Ok(n)
            }
            Err(EncodeError::InsufficientSize(InsufficientSize { required })) if required > cap => {
                Err(WriteFail::TooLarge(required))
            }
            Err(EncodeError::InsufficientSize(InsufficientSize { required })) => {
                Err(WriteFail::Full(required))
            }
            Err(e) => Err(WriteFail::Encode(e)),
        }
    }

    /// Appends bytes as they are; all or nothing.
    pub(crate) fn raw(&mut self, bytes: &[u8]) -> Result<usize, WriteFail> {
        self.write(|out| match out.get_mut(..bytes.len()) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                Ok(bytes.len())
            }
            None => Err(EncodeError::InsufficientSize(InsufficientSize {
                required: bytes.len(),
            })),
        })
    }

    /// Moves up to `buf.len()` waiting bytes into `buf`.
    pub(crate) fn take(&mut self, buf: &mut [u8]) -> Option<usize> {
        let n = self.pending().min(buf.len());
        if n == 0 {
            return None;
        }
        let src = self.buf.get(self.start..self.start + n)?;
        crate::bytes::copy_prefix(buf.get_mut(..n)?, src);
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        Some(n)
    }
}

/// Moves `buf[start..end]` to the front of `buf`, as `copy_within` does,
/// in copies of at most `start` bytes (the two sides of each never
/// overlap): `memcpy`, no `memmove` (1.5 KB of flash on a Cortex-M).
pub(crate) fn move_to_front(buf: &mut [u8], start: usize, end: usize) {
    let n = end.saturating_sub(start);
    let mut at = 0;
    while at < n && start > 0 {
        let c = (n - at).min(start);
        let Some((lo, hi)) = buf.split_at_mut_checked(start + at) else {
            return;
        };
        match (lo.get_mut(at..at + c), hi.get(..c)) {
            (Some(dst), Some(src)) => dst.copy_from_slice(src),
            _ => return,
        }
        at += c;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn move_to_front_is_copy_within() {
        for len in 0..24 {
            for start in 0..=len {
                for end in start..=len {
                    let mut want: Vec<u8> = (0..len as u8).collect();
                    let mut got = want.clone();
                    want.copy_within(start..end, 0);
                    super::move_to_front(&mut got, start, end);
                    assert_eq!(got, want, "len {len} start {start} end {end}");
                }
            }
        }
    }
}
