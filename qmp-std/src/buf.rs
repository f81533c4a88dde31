//! Per-session buffers that cost memory only as far as they are used.
//!
//! A session's framer buffer is as large as the largest message it may
//! receive (16 MiB by default for a client, 1 MiB for each of an agent
//! session's three buffers), but an idle session has only ever held a few
//! hundred bytes in it. A zeroed heap allocation (`vec![0; n]`) is backed
//! lazily only while malloc hands out fresh memory: once buffers of that
//! size have been freed (a client reconnects, an agent session ends), glibc
//! raises its mmap threshold and serves the next ones from reused heap
//! memory, which `calloc` must clear — every page of it becomes resident
//! (ten 16 MiB clients that reconnected twenty times held 98 MB more than
//! fresh ones). So buffers from [`LAZY_MIN`] bytes up are anonymous
//! mappings of their own ([`memmap2::MmapMut::map_anon`], safe and well
//! kept): the kernel backs a page when it is first touched, whatever the
//! allocator did before, and the mapping is returned to the kernel on drop.

use memmap2::MmapMut;

/// From this size up, a buffer is an anonymous mapping (below it, the heap:
/// a mapping costs two system calls and at least a page).
pub(crate) const LAZY_MIN: usize = 16 << 10;

/// A zero-filled byte buffer: on the heap, or an anonymous mapping backed
/// page by page as it is touched. See the [module docs](self).
pub(crate) enum Buf {
    Heap(Vec<u8>),
    Mapped(MmapMut),
}

impl Buf {
    /// `len` zero bytes (a mapping from [`LAZY_MIN`] up; the heap if the
    /// system refuses the mapping).
    pub(crate) fn zeroed(len: usize) -> Buf {
        if len >= LAZY_MIN {
            if let Ok(m) = MmapMut::map_anon(len) {
                return Buf::Mapped(m);
            }
        }
        Buf::Heap(vec![0; len])
    }

    /// The length.
    pub(crate) fn len(&self) -> usize {
        self.as_ref().len()
    }

    /// Grows (or shrinks) to `len` bytes, keeping what fits.
    pub(crate) fn resize(&mut self, len: usize) {
        if let Buf::Heap(v) = self {
            if len < LAZY_MIN {
                v.resize(len, 0);
                return;
            }
        }
        let mut new = Buf::zeroed(len);
        let keep = len.min(self.len());
        new.as_mut()[..keep].copy_from_slice(&self.as_ref()[..keep]);
        *self = new;
    }
}

impl AsRef<[u8]> for Buf {
    fn as_ref(&self) -> &[u8] {
        match self {
            Buf::Heap(v) => v,
            Buf::Mapped(m) => m,
        }
    }
}

impl AsMut<[u8]> for Buf {
    fn as_mut(&mut self) -> &mut [u8] {
        match self {
            Buf::Heap(v) => v,
            Buf::Mapped(m) => m,
        }
    }
}

impl std::fmt::Debug for Buf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Buf").field("len", &self.len()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroed_resize_keeps_the_prefix() {
        for len in [0, 10, LAZY_MIN - 1, LAZY_MIN, 1 << 20] {
            let mut b = Buf::zeroed(len);
            assert_eq!(b.len(), len);
            assert!(b.as_ref().iter().all(|&x| x == 0));
            if len > 0 {
                b.as_mut()[0] = 7;
            }
            b.resize(len + LAZY_MIN);
            assert_eq!(b.len(), len + LAZY_MIN);
            assert_eq!(
                b.as_ref().first().copied(),
                Some(if len > 0 { 7 } else { 0 })
            );
            assert!(b.as_ref()[1..].iter().all(|&x| x == 0));
        }
    }
}
