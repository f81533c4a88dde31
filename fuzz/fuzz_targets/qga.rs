#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../harness/qga.rs"]
mod harness;

fuzz_target!(|data: &[u8]| harness::qga(data));
