//! Agent session invariants: exactly-once answers, valid QMP output, in-band order, no lost requests.
//! See `../harness/sessions.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../harness/sessions.rs"]
mod sessions;

fuzz_target!(|data: &[u8]| sessions::agent(data));
