//! The README's examples are real code: each block that begins with
//! `// qmp-core/examples/NAME.rs` (or `// qmp-std/examples/NAME.rs`) is
//! that file up to its line `// (end of the README block)`; `cargo test`
//! builds the file, whose `main` runs the example against a canned peer
//! (qmp-std's: against a qemu-storage-daemon of its own).

#[test]
fn readme_examples_are_compiled_examples() {
    let readme = include_str!("../../README.md");
    let mut found = 0;
    for block in readme.split("```rust,ignore\n").skip(1) {
        let block = &block[..block.find("```\n").expect("end of a block")];
        let Some(path) = block
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("// "))
            .filter(|p| p.starts_with("qmp-core/") || p.starts_with("qmp-std/"))
        else {
            continue;
        };
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(path);
        let example = std::fs::read_to_string(&file).expect("the example file");
        let end = example
            .find("\n// (end of the README block)\n")
            .expect("the end marker");
        assert_eq!(
            block,
            &example[..end + 1],
            "README block and {} differ",
            file.display()
        );
        found += 1;
    }
    assert_eq!(found, 5, "README examples checked");
}
