//! Framer invariants: chunking independence, byte accounting, validity of
//! every delivered message. See `../harness/wire.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../harness/wire.rs"]
mod wire;

fuzz_target!(|data: &[u8]| wire::frame(data));
