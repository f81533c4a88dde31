//! [`validate`]: one JSON value checked in place, without a buffer.

use super::{Frame, Framer, FramerConfig};
use crate::json::RawJson;
use core::fmt;

/// Checks that `bytes` hold exactly one JSON value (surrounding whitespace
/// allowed), without copying it anywhere.
pub fn validate(bytes: &[u8], cfg: FramerConfig) -> Result<RawJson<'_>, ValidateError> {
    // An empty `&mut [u8]` that stores nothing (`keep` off): the framer type
    // most users have already, so firmware links one copy of the scanner.
    let mut none: [u8; 0] = [];
    let mut framer = Framer::with_config(&mut none[..], cfg);
    framer.keep = false;
    framer.dups = false;
    let mut rest = bytes;
    let mut found: Option<(usize, usize)> = None;
    let mut offset = 0;
    loop {
        let at_end = rest.is_empty();
        let input: &[u8] = if at_end { b" " } else { rest };
        let fed = framer.feed(input);
        let consumed = fed.consumed;
        match fed.frame {
            Some(Frame::Message(_)) => {
                if found.is_some() {
                    return Err(ValidateError::TrailingData);
                }
                let len = framer.st.pos;
                found = Some((offset + consumed - len, offset + consumed));
            }
            Some(Frame::Error(_)) => return Err(ValidateError::Invalid),
            None => {}
        }
        if at_end {
            break;
        }
        offset += consumed;
        rest = rest.get(consumed..).unwrap_or(&[]);
    }
    if !framer.is_idle() {
        return Err(ValidateError::Incomplete);
    }
    let (a, b) = found.ok_or(ValidateError::Empty)?;
    bytes
        .get(a..b)
        .map(RawJson::from_validated)
        .ok_or(ValidateError::Invalid)
}

/// Why [`validate`] rejected its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ValidateError {
    /// Not valid JSON.
    Invalid,
    /// Nothing but whitespace.
    Empty,
    /// The value is cut short.
    Incomplete,
    /// More than one value.
    TrailingData,
}

impl fmt::Display for ValidateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ValidateError::Invalid => "invalid JSON",
            ValidateError::Empty => "no JSON value",
            ValidateError::Incomplete => "incomplete JSON value",
            ValidateError::TrailingData => "more than one JSON value",
        })
    }
}

impl core::error::Error for ValidateError {}
