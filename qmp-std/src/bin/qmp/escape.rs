//! Control characters made visible in whatever `qmp` echoes back.
//!
//! Error messages quote what the user typed (a command name, a value) and
//! what the server sent (an error's `desc`, a string it returned); either
//! may hold control characters — an Up-arrow typed where no line editor
//! reads the terminal arrives as `ESC [ A`. Written raw they move the
//! cursor, recolour or clear the terminal. [`controls`] writes each as a
//! JSON-style escape instead: `\t`, `\n`, `\r`, other C0 and C1 controls
//! and DEL as `\u001b`; the Unicode line/paragraph separators and the
//! bidirectional overrides and isolates (which reorder what the terminal
//! shows) likewise. Everything else, backslashes included, is kept.

use std::borrow::Cow;

/// Whether `c` is written as an escape.
fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with its control characters escaped (borrowed when it has none).
pub fn controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_hidden) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if is_hidden(c) => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::controls;

    #[test]
    fn escapes_what_moves_the_terminal() {
        assert_eq!(controls("plain \\ text é"), "plain \\ text é");
        assert!(matches!(controls("plain"), std::borrow::Cow::Borrowed(_)));
        assert_eq!(controls("nope\x1b[A"), "nope\\u001b[A");
        assert_eq!(
            controls("a\tb\nc\rd\0e\x7f"),
            "a\\tb\\nc\\rd\\u0000e\\u007f"
        );
        assert_eq!(controls("\u{9b}2J"), "\\u009b2J");
        assert_eq!(controls("x\u{202e}y\u{2028}"), "x\\u202ey\\u2028");
    }
}
