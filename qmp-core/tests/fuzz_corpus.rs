//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) through the
//! same harness functions the fuzz targets call, so `cargo test` keeps every
//! fixed finding fixed.

#[path = "../../fuzz/harness/wire.rs"]
mod harness;

#[path = "../../fuzz/harness/sessions.rs"]
mod sessions;

use std::path::PathBuf;

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus directory {}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("corpus entry").path();
            let bytes = std::fs::read(&path).expect("corpus file");
            (path, bytes)
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "corpus {} is empty", dir.display());
    files
}

fn replay(target: &str, f: fn(&[u8])) {
    for (path, bytes) in corpus(target) {
        let result = std::panic::catch_unwind(|| f(&bytes));
        assert!(result.is_ok(), "{target}: {} fails", path.display());
    }
}

#[test]
fn corpus_frame() {
    replay("frame", harness::frame);
}

#[test]
fn corpus_scan_differential() {
    replay("scan_differential", harness::scan_differential);
}

#[test]
fn corpus_agent() {
    replay("agent", sessions::agent);
}

#[test]
fn corpus_client() {
    replay("client", sessions::client);
}

#[test]
fn corpus_roundtrip() {
    replay("roundtrip", sessions::roundtrip);
}
