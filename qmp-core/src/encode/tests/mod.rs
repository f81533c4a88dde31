//! The encoder's unit tests, one file per idea, and the helpers they share.

use crate::json::RawJson;
use crate::InsufficientSize;
use std::string::String;
use std::vec;
use std::vec::Vec;

use super::{escape_bytes, write_value_qemu, EncodeError, Style};

mod envelope;
mod error;
mod escape;
mod number;
mod qdict;
mod reserialise;
mod serializer;
mod writer;

fn raw(s: &[u8]) -> RawJson<'_> {
    RawJson::from_validated(s)
}

/// Runs a writer at every buffer size: all short sizes must fail with
/// the same exact `required`, the full size must succeed.
fn all_sizes(f: impl Fn(&mut [u8]) -> Result<usize, EncodeError>) -> Vec<u8> {
    let mut big = vec![0u8; 1 << 16];
    let n = f(&mut big).unwrap();
    for size in 0..n {
        let mut buf = vec![0u8; size];
        assert_eq!(
            f(&mut buf),
            Err(EncodeError::InsufficientSize(InsufficientSize {
                required: n
            })),
            "size {size}"
        );
    }
    let mut exact = vec![0u8; n];
    assert_eq!(f(&mut exact), Ok(n));
    assert_eq!(exact[..], big[..n]);
    exact
}

fn text(f: impl Fn(&mut [u8]) -> Result<usize, EncodeError>) -> String {
    String::from_utf8(all_sizes(f)).unwrap()
}

fn qemu(input: &str, style: Style) -> String {
    text(|out| write_value_qemu(out, style, raw(input.as_bytes())))
}

/// Without the every-size check (for big inputs).
fn qemu_once(input: &str, style: Style) -> String {
    let mut buf = vec![0u8; (4 * input.len()).max(1 << 20)];
    let n = write_value_qemu(&mut buf, style, raw(input.as_bytes())).unwrap();
    buf.truncate(n);
    String::from_utf8(buf).unwrap()
}

fn esc(bytes: &[u8]) -> String {
    text(|out| escape_bytes(out, bytes))
}
