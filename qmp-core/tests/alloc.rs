//! A counting global allocator shows that framing, scanning, classifying and
//! encoding allocate nothing. One test per binary, so nothing else runs
//! concurrently while it counts.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::SeqCst);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::SeqCst);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static A: Counting = Counting;

use qmp_core::encode::{write_error, write_event, Style};
use qmp_core::message::Inbound;
use qmp_core::scan::{Frame, Framer};

const S2C: &[u8] = include_bytes!("data/qemu-system-7.2.s2c");
const C2S: &[u8] = include_bytes!("data/qemu-system-7.2.c2s");
const QGA: &[u8] = include_bytes!("data/qga-7.2.s2c");

#[test]
fn wire_layer_allocates_nothing() {
    let mut buf = vec![0u8; 4096];
    let mut out = vec![0u8; 8192];
    let before = ALLOCS.load(Ordering::SeqCst);
    let mut counts = [0usize; 6];
    for data in [S2C, C2S, QGA] {
        let mut framer = Framer::new(&mut buf[..]);
        let mut rest = data;
        while !rest.is_empty() {
            let fed = framer.feed(rest);
            rest = &rest[fed.consumed..];
            match fed.frame {
                Some(Frame::Message(m)) => {
                    match m.classify() {
                        Inbound::Return { value, id } => {
                            counts[0] += 1;
                            let _ = qmp_core::encode::write_return(
                                &mut out,
                                Style::QMP,
                                &qmp_core::encode::Verbatim(value),
                                id.as_ref().map(|i| i as &dyn qmp_core::encode::WriteJson),
                            );
                        }
                        Inbound::Event(e) => {
                            counts[1] += 1;
                            let _ = write_event(
                                &mut out,
                                Style::QMP,
                                e.name.as_plain_str().unwrap_or("X"),
                                e.data
                                    .as_ref()
                                    .map(|d| d as &dyn qmp_core::encode::WriteJson),
                                1,
                                2,
                            );
                        }
                        Inbound::Error { .. } => counts[2] += 1,
                        _ => counts[3] += 1,
                    }
                    if let Err(bad) = m.request(true) {
                        let _ = bad.error.desc_parts();
                    }
                }
                Some(Frame::Error(e)) => {
                    counts[4] += 1;
                    let _ = write_error(
                        &mut out,
                        Style::QMP,
                        None,
                        b"GenericError",
                        &e.desc_pieces(),
                    );
                }
                _ => {}
            }
        }
    }
    let after = ALLOCS.load(Ordering::SeqCst);
    assert_eq!(after - before, 0, "allocations in the wire layer");
    // The work really happened.
    assert!(
        counts[0] > 10 && counts[1] >= 4 && counts[3] > 0 && counts[4] > 0,
        "{counts:?}"
    );
}
