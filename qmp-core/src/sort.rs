//! A small heapsort: no recursion, no extra memory, O(n log n) whatever
//! the input (the sorted items can be a peer's), and none of
//! `core::slice::sort`'s machinery (ipnsort, quicksort, the small sorts:
//! about 2.4 KB of flash on a Cortex-M).

/// Sorts the `n` items of `ctx` ascending (unstable), through
/// `less(ctx, i, j)` (whether item `i` sorts before item `j`) and
/// `swap(ctx, i, j)`.
pub(crate) fn heapsort<C: ?Sized>(
    ctx: &mut C,
    n: usize,
    less: impl Fn(&C, usize, usize) -> bool,
    swap: impl Fn(&mut C, usize, usize),
) {
    // Moves the item at `root` down the heap `[0, end)`.
    let sift = |ctx: &mut C, mut root: usize, end: usize| loop {
        let mut child = 2 * root + 1;
        if child >= end {
            return;
        }
        if child + 1 < end && less(ctx, child, child + 1) {
            child += 1;
        }
        if !less(ctx, root, child) {
            return;
        }
        swap(ctx, root, child);
        root = child;
    };
    for start in (0..n / 2).rev() {
        sift(ctx, start, n);
    }
    for end in (1..n).rev() {
        swap(ctx, 0, end);
        sift(ctx, 0, end);
    }
}

/// Sorts `v` ascending by `key` (unstable), with [`heapsort`].
pub(crate) fn sort_by_key<T, K: Ord>(v: &mut [T], key: impl Fn(&T) -> K) {
    heapsort(
        v,
        v.len(),
        |v, i, j| match (v.get(i), v.get(j)) {
            (Some(a), Some(b)) => key(a) < key(b),
            _ => false,
        },
        // Not `slice::swap`: a `memmove` (1.5 KB of flash on a Cortex-M).
        |v, i, j| {
            let (i, j) = (i.min(j), i.max(j));
            if let Some((lo, hi)) = v.split_at_mut_checked(j) {
                if let (Some(a), Some(b)) = (lo.get_mut(i), hi.first_mut()) {
                    core::mem::swap(a, b);
                }
            }
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_like_core() {
        let mut seed = 0x2545_f491_u32;
        for n in 0..200 {
            for modulus in [3u32, 1000, u32::MAX] {
                let mut v: Vec<u32> = (0..n)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 17;
                        seed ^= seed << 5;
                        seed % modulus
                    })
                    .collect();
                let mut want = v.clone();
                want.sort_unstable();
                sort_by_key(&mut v, |x| *x);
                assert_eq!(v, want, "n {n} modulus {modulus}");
            }
        }
    }
}
