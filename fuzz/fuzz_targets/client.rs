//! Client session invariants: routing by shape and id, tokens resolve once, EOF resolves all.
//! See `../harness/sessions.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../harness/sessions.rs"]
mod sessions;

fuzz_target!(|data: &[u8]| sessions::client(data));
