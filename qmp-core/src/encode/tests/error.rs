//! `EncodeError`'s messages.

use crate::encode::EncodeError;
use crate::InsufficientSize;

#[test]
fn display() {
    assert_eq!(
        std::format!(
            "{}",
            EncodeError::InsufficientSize(InsufficientSize { required: 3 })
        ),
        "output buffer too small: 3 bytes required"
    );
    let e: &dyn core::error::Error = &EncodeError::KeyMustBeString;
    assert!(!std::format!("{e}").is_empty());
}
