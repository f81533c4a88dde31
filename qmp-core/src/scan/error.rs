//! What a rejected message was: [`FrameError`] and [`SyntaxError`], with
//! QEMU's exact `desc` texts.

use core::fmt;

/// Why a message was rejected. Each variant carries what is needed to build
/// QEMU's exact `desc` text ([`FrameError::desc_pieces`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError<'a> {
    /// A lexical error: `JSON parse error, stray '<token>'`. `token` is the
    /// partial token up to and including the offending byte (raw bytes, not
    /// necessarily UTF-8).
    Stray {
        /// The token text.
        token: &'a [u8],
    },
    /// A grammar error: `JSON parse error, <detail>`.
    Syntax(SyntaxError<'a>),
    /// `JSON nesting depth limit exceeded`. Reported as soon as the limit is
    /// passed; like QEMU, the bytes after the offending `[` or `{` are read
    /// as new input.
    DepthLimit,
    /// `JSON token count limit exceeded`: the message reached QEMU's
    /// [`MAX_TOKEN_COUNT`](super::MAX_TOKEN_COUNT). Reported at once; the
    /// bytes after it are read as new input, as QEMU does.
    TokenCountLimit,
    /// `JSON token size limit exceeded`: the message did not fit the buffer
    /// (reported once it has been skipped to its end, or to a lexical error
    /// inside it), or it reached QEMU's [`MAX_TOKEN_SIZE`](super::MAX_TOKEN_SIZE)
    /// of tokens, or one token grew past it (reported at once; the bytes
    /// after it are read as new input, as QEMU does).
    Oversized {
        /// The size of the message in bytes, as far as it was read.
        len: usize,
    },
}

/// The first grammar error in a message, as QEMU's parser reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SyntaxError<'a> {
    /// `expecting value`
    ExpectingValue,
    /// `key is not a string in object`
    KeyNotString,
    /// `missing : in object pair`
    MissingColon,
    /// `duplicate key`
    DuplicateKey,
    /// `expected separator in dict`
    ExpectedDictSeparator,
    /// `expected separator in list`
    ExpectedListSeparator,
    /// `premature EOI`
    PrematureEoi,
    /// `invalid keyword '<word>'`
    InvalidKeyword(&'a [u8]),
    /// `invalid escape sequence in string`
    InvalidEscape,
    /// `<escape> is not a valid Unicode character`
    InvalidUnicode(&'a [u8]),
    /// `invalid UTF-8 sequence in string`
    InvalidUtf8,
}

impl<'a> FrameError<'a> {
    /// The `desc` text QEMU sends for this error, as byte pieces to be
    /// concatenated (the token pieces may hold any bytes; QEMU's writer turns
    /// invalid UTF-8 into `\uFFFD`). Unused pieces are empty.
    pub fn desc_pieces(&self) -> [&'a [u8]; 4] {
        const P: &[u8] = b"JSON parse error, ";
        match *self {
            // QEMU formats the token with `%s`: a NUL byte ends it.
            FrameError::Stray { token } => [P, b"stray '", until_nul(token), b"'"],
            FrameError::Syntax(s) => match s {
                SyntaxError::InvalidKeyword(w) => [P, b"invalid keyword '", w, b"'"],
                SyntaxError::InvalidUnicode(t) => [P, t, b" is not a valid Unicode character", b""],
                other => [P, other.detail(), b"", b""],
            },
            FrameError::DepthLimit => [b"JSON nesting depth limit exceeded", b"", b"", b""],
            FrameError::TokenCountLimit => [b"JSON token count limit exceeded", b"", b"", b""],
            FrameError::Oversized { .. } => [b"JSON token size limit exceeded", b"", b"", b""],
        }
    }
}

impl SyntaxError<'_> {
    fn detail(&self) -> &'static [u8] {
        match self {
            SyntaxError::ExpectingValue => b"expecting value",
            SyntaxError::KeyNotString => b"key is not a string in object",
            SyntaxError::MissingColon => b"missing : in object pair",
            SyntaxError::DuplicateKey => b"duplicate key",
            SyntaxError::ExpectedDictSeparator => b"expected separator in dict",
            SyntaxError::ExpectedListSeparator => b"expected separator in list",
            SyntaxError::PrematureEoi => b"premature EOI",
            SyntaxError::InvalidKeyword(_) => b"invalid keyword",
            SyntaxError::InvalidEscape => b"invalid escape sequence in string",
            SyntaxError::InvalidUnicode(_) => b"invalid Unicode escape",
            SyntaxError::InvalidUtf8 => b"invalid UTF-8 sequence in string",
        }
    }
}

impl fmt::Display for FrameError<'_> {
    /// QEMU's `desc` text; invalid UTF-8 shows as U+FFFD.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for piece in self.desc_pieces() {
            for chunk in piece.utf8_chunks() {
                f.write_str(chunk.valid())?;
                if !chunk.invalid().is_empty() {
                    f.write_str("\u{FFFD}")?;
                }
            }
        }
        if let FrameError::Oversized { len } = self {
            write!(f, " ({len} bytes)")?;
        }
        Ok(())
    }
}

impl core::error::Error for FrameError<'_> {}

#[cfg(feature = "defmt")]
impl defmt::Format for FrameError<'_> {
    fn format(&self, f: defmt::Formatter) {
        match self {
            FrameError::Stray { token } => defmt::write!(f, "stray {=[u8]}", token),
            FrameError::Syntax(_) => defmt::write!(f, "JSON syntax error"),
            FrameError::DepthLimit => defmt::write!(f, "JSON nesting depth limit exceeded"),
            FrameError::TokenCountLimit => defmt::write!(f, "JSON token count limit exceeded"),
            FrameError::Oversized { len } => {
                defmt::write!(f, "oversized message ({=usize} bytes)", len)
            }
        }
    }
}

/// The bytes of `token` before its first NUL, as C's `%s` prints them.
fn until_nul(token: &[u8]) -> &[u8] {
    match crate::find::find(0, token) {
        Some(n) => token.get(..n).unwrap_or(token),
        None => token,
    }
}
