//! A delivered message: the validated bytes and the spans of its top-level
//! members.

use crate::json::{JsonStr, RawJson};
use core::fmt;

/// The span of one top-level member: key body (without quotes) and value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct MemberSpan {
    pub(super) key_start: u32,
    pub(super) key_end: u32,
    pub(super) val_start: u32,
    pub(super) val_end: u32,
    pub(super) quote: u8,
    /// The key has no escapes (raw bytes compare as values).
    pub(super) plain: bool,
}

/// One top-level member of an object message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Member<'a> {
    /// The key (escaped body).
    pub key: JsonStr<'a>,
    /// The value.
    pub value: RawJson<'a>,
}

/// A complete, validated top-level JSON value, borrowed from the framer's
/// buffer, with the spans of its top-level members when it is an object.
#[derive(Clone, Copy)]
pub struct Message<'a> {
    pub(super) bytes: &'a [u8],
    pub(super) spans: &'a [MemberSpan],
    pub(super) all_tracked: bool,
}

impl fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Message").field(&self.raw()).finish()
    }
}

impl<'a> Message<'a> {
    /// A message over bytes validated earlier (members found by re-scan).
    pub(crate) fn from_validated(bytes: &'a [u8]) -> Self {
        Message {
            bytes,
            spans: &[],
            all_tracked: false,
        }
    }

    /// The message bytes, exactly as received (no surrounding whitespace).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The message as a [`RawJson`] value.
    pub fn raw(&self) -> RawJson<'a> {
        RawJson::from_validated(self.bytes)
    }

    /// Whether the message is a JSON object.
    pub fn is_object(&self) -> bool {
        self.bytes.first() == Some(&b'{')
    }

    /// The top-level members, in input order (empty unless an object).
    pub fn members(&self) -> MessageMembers<'a> {
        let resume = if self.all_tracked || !self.is_object() {
            None
        } else {
            Some(self.spans.last().map_or(1, |s| s.val_end as usize))
        };
        MessageMembers {
            bytes: self.bytes,
            spans: self.spans.iter(),
            resume,
        }
    }

    /// The value of the first top-level member named `key`.
    pub fn get(&self, key: &str) -> Option<RawJson<'a>> {
        self.members().find(|m| m.key.eq_str(key)).map(|m| m.value)
    }
}

/// Iterator over the top-level members of a [`Message`].
#[derive(Clone, Debug)]
pub struct MessageMembers<'a> {
    bytes: &'a [u8],
    spans: core::slice::Iter<'a, MemberSpan>,
    resume: Option<usize>,
}

impl<'a> Iterator for MessageMembers<'a> {
    type Item = Member<'a>;

    fn next(&mut self) -> Option<Member<'a>> {
        if let Some(s) = self.spans.next() {
            return member_at(self.bytes, s);
        }
        let pos = self.resume?;
        match next_member(self.bytes, pos) {
            Some((span, next)) => {
                self.resume = Some(next);
                member_at(self.bytes, &span)
            }
            None => {
                self.resume = None;
                None
            }
        }
    }
}

fn member_at<'a>(bytes: &'a [u8], s: &MemberSpan) -> Option<Member<'a>> {
    let key = bytes.get(s.key_start as usize..s.key_end as usize)?;
    let value = bytes.get(s.val_start as usize..s.val_end as usize)?;
    Some(Member {
        key: JsonStr::from_validated(key, s.quote),
        value: RawJson::from_validated(value),
    })
}

/// Finds the next member of a validated top-level object after `pos` (the
/// end of the previous member's value, or 1 just after `{`).
fn next_member(bytes: &[u8], pos: usize) -> Option<(MemberSpan, usize)> {
    let mut i = skip_ws_and(bytes, pos, b',');
    let quote = *bytes.get(i)?;
    if quote != b'"' && quote != b'\'' {
        return None;
    }
    let key_end = skip_string(bytes, i + 1, quote)?;
    let key_start = i + 1;
    i = skip_ws_and(bytes, key_end + 1, b':');
    let val_start = i;
    let val_end = skip_value(bytes, i)?;
    Some((
        MemberSpan {
            key_start: key_start as u32,
            key_end: key_end as u32,
            val_start: val_start as u32,
            val_end: val_end as u32,
            quote,
            plain: false,
        },
        val_end,
    ))
}

fn skip_ws_and(bytes: &[u8], mut i: usize, sep: u8) -> usize {
    while let Some(&b) = bytes.get(i) {
        if matches!(b, b' ' | b'\t' | b'\r' | b'\n') || b == sep {
            i += 1;
        } else {
            break;
        }
    }
    i
}

/// Returns the index of the closing quote of a validated string whose body
/// starts at `i`.
fn skip_string(bytes: &[u8], mut i: usize, quote: u8) -> Option<usize> {
    loop {
        let rest = bytes.get(i..)?;
        let k = crate::find::find2(quote, b'\\', rest)?;
        i += k;
        if bytes.get(i) == Some(&quote) {
            return Some(i);
        }
        i += 2;
    }
}

/// Returns the end of the validated value starting at `i`.
fn skip_value(bytes: &[u8], mut i: usize) -> Option<usize> {
    let mut depth = 0usize;
    loop {
        let b = *bytes.get(i)?;
        match b {
            b'"' | b'\'' => i = skip_string(bytes, i + 1, b)? + 1,
            b'{' | b'[' => {
                depth += 1;
                i += 1;
            }
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                i += 1;
            }
            b' ' | b'\t' | b'\r' | b'\n' | b',' | b':' if depth > 0 => i += 1,
            _ if depth > 0 => i += 1,
            _ => {
                // A scalar at the member level: runs to a delimiter.
                while let Some(&c) = bytes.get(i) {
                    if matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n') {
                        break;
                    }
                    i += 1;
                }
                return Some(i);
            }
        }
        if depth == 0 {
            return Some(i);
        }
    }
}
