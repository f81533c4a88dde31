//! `qmp_core::scan::validate` (strict dialect) against serde_json. See
//! `../harness/wire.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../harness/wire.rs"]
mod wire;

fuzz_target!(|data: &[u8]| wire::scan_differential(data));
