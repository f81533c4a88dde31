//! Picks the board from the target: its memory map and a `board` cfg.
use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    let target = env::var("TARGET").unwrap();
    let (board, memory) = if target.starts_with("thumbv6m") {
        ("microbit", "memory-microbit.x")
    } else {
        ("mps2_an386", "memory-mps2-an386.x")
    };
    fs::copy(memory, out.join("memory.x")).unwrap();
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rustc-check-cfg=cfg(board, values(\"mps2_an386\", \"microbit\"))");
    println!("cargo:rustc-cfg=board=\"{board}\"");
    println!("cargo:rerun-if-changed={memory}");
}
