//! A per-thread counting global allocator, shared by the allocation tests
//! (each includes this file with `#[path]`). The test harness runs tests
//! on several threads at once, so only the calling thread's allocations
//! are counted: another test's buffers never show up in a count.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

/// Counts allocations and reallocations per thread.
pub struct Counting;

fn note() {
    // `try_with`: a thread being torn down has no counter any more.
    let _ = ALLOCS.try_with(|a| a.set(a.get() + 1));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Allocations made so far by the calling thread.
pub fn allocations() -> usize {
    ALLOCS.with(Cell::get)
}

/// Runs `f` and returns how many allocations this thread made meanwhile.
pub fn count_allocs<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let before = allocations();
    let r = f();
    (r, allocations() - before)
}
