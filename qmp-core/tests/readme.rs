//! The README's firmware example is real code: `examples/uart_agent.rs`
//! (built by `cargo test`) holds it verbatim.

#[test]
fn readme_agent_example_is_the_compiled_example() {
    let readme = include_str!("../../README.md");
    let example = include_str!("../examples/uart_agent.rs");
    let start = readme
        .find("```rust,ignore\nuse core::ops::ControlFlow;")
        .expect("the README's agent example")
        + "```rust,ignore\n".len();
    let len = readme[start..].find("```\n").expect("end of the block");
    let block = &readme[start..start + len];
    let body = example
        .split_once("\n\n")
        .map_or(example, |(_, rest)| rest)
        .trim_start();
    assert!(
        body.starts_with(block.trim_start()),
        "README block and examples/uart_agent.rs differ"
    );
}
