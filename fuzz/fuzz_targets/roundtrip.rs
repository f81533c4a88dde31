//! Client -> agent -> client round trip of names, arguments, ids, values, errors and events.
//! See `../harness/sessions.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../harness/sessions.rs"]
mod sessions;

fuzz_target!(|data: &[u8]| sessions::roundtrip(data));
