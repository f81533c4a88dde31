//! Replays the committed `qga` fuzz corpus through the fuzz harness.
#![cfg(feature = "qga")]

#[path = "../../fuzz/harness/qga.rs"]
mod harness;

#[test]
fn corpus_qga() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/qga");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus dir") {
        let path = entry.expect("entry").path();
        let data = std::fs::read(&path).expect("read");
        let r = std::panic::catch_unwind(|| harness::qga(&data));
        assert!(r.is_ok(), "qga: {} fails", path.display());
        n += 1;
    }
    assert!(n > 0, "empty corpus");
}
