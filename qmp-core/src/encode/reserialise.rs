//! The non-recursive re-serialiser of validated JSON: QEMU's spacing,
//! escaping, numbers and QDict member order, with an explicit stack and a
//! fixed table of member slots.

use crate::json::{JsonKind, JsonStr, RawJson, Token, Tokens};

use super::number::write_number;
use super::qdict::json_str_bucket;
use super::{write_value, EncodeError, JsonWriter, Style};

/// Nesting levels reordered by [`write_value_qemu`]; deeper containers are
/// written in input order.
const MAX_REORDER_DEPTH: usize = 32;

/// Members whose QEMU order is held at once, for all the objects being
/// written (nested ones after their parents). An object that fits is
/// ordered in one pass; a larger one is written in batches of the next
/// members in QDict order, one pass over its members per batch.
pub(super) const ORDER_SLOTS: usize = 64;

/// One member of an object in [`write_raw`]'s order table.
#[derive(Clone, Copy)]
struct Slot {
    bucket: u16,
    /// Where the member starts in the object's text.
    pos: u32,
    /// Where its value ends.
    end: u32,
}

impl Slot {
    /// Its place in QEMU's output: bucket ascending, then input position
    /// (so input index) descending.
    fn rank(&self) -> u64 {
        u64::from(self.bucket) << 32 | u64::from(u32::MAX - self.pos)
    }
}

type Order = heapless::Vec<Slot, ORDER_SLOTS>;

enum Frame<'a> {
    Array(crate::json::Elements<'a>),
    /// An object whose next members are `order[next..end]`, sorted;
    /// `order` is cut back to `start` when it is closed. When `more`, the
    /// batch did not hold every member still to write: the next batch (at
    /// most `cap` members) is collected when this one runs out.
    Sorted {
        obj: RawJson<'a>,
        start: usize,
        next: usize,
        end: usize,
        cap: usize,
        more: bool,
    },
    /// An object met with the order table full (its ancestors hold it):
    /// ordered member by member.
    Object {
        obj: RawJson<'a>,
        /// (bucket, input index) of the member written last.
        last: Option<(u32, usize)>,
    },
}

/// The member of `obj` that QEMU writes after `last`: ordered by bucket
/// ascending, then input index descending. O(members) per call.
fn next_member<'a>(
    obj: RawJson<'a>,
    last: Option<(u32, usize)>,
) -> Option<(JsonStr<'a>, RawJson<'a>, u32, usize)> {
    let mut best: Option<(JsonStr<'a>, RawJson<'a>, u32, usize)> = None;
    for (i, (k, v)) in obj.members().enumerate() {
        let b = json_str_bucket(k);
        let after_last = match last {
            None => true,
            Some((lb, li)) => b > lb || (b == lb && i < li),
        };
        let before_best = match best {
            None => true,
            Some((_, _, bb, bi)) => b < bb || (b == bb && i > bi),
        };
        if after_last && before_best {
            best = Some((k, v, b, i));
        }
    }
    best
}

/// Appends to `order`, sorted, the first `cap` members of `obj` (at
/// least 1) that QEMU writes after the member ranked `after` (all when
/// `None`). Returns whether members after those are left. One pass over
/// the members; keeping the batch sorted costs at most `cap` slot moves
/// per member.
fn push_batch(
    obj: RawJson<'_>,
    after: Option<u64>,
    order: &mut Order,
    cap: usize,
) -> Result<bool, EncodeError> {
    let start = order.len();
    let cap = cap.min(ORDER_SLOTS.saturating_sub(start)).max(1);
    let mut more = false;
    let mut members = obj.members();
    loop {
        let pos = members.pos();
        let Some((k, _)) = members.next() else {
            break;
        };
        let (Ok(bucket), Ok(pos), Ok(end)) = (
            u16::try_from(json_str_bucket(k)),
            u32::try_from(pos),
            u32::try_from(members.pos()),
        ) else {
            // Objects of 4 GiB and more.
            return Err(EncodeError::Unsupported);
        };
        let slot = Slot { bucket, pos, end };
        let rank = slot.rank();
        if after.is_some_and(|a| rank <= a) {
            continue;
        }
        let len = order.len() - start;
        if len < cap {
            if order.push(slot).is_err() {
                return Err(EncodeError::Unsupported); // cap keeps it in range
            }
            if len + 1 == cap {
                if let Some(batch) = order.get_mut(start..) {
                    crate::sort::sort_by_key(batch, Slot::rank);
                }
            }
            continue;
        }
        // Full (and sorted): it displaces the batch's last member if it
        // comes before it.
        more = true;
        let Some(batch) = order.get_mut(start..) else {
            break;
        };
        if batch.last().is_some_and(|l| rank < l.rank()) {
            let at = batch.partition_point(|s| s.rank() < rank);
            // The slot in at `at`, the later ones one place on, the last
            // one out (`rotate_right`'s `memmove` costs 1.5 KB of flash).
            let mut carry = slot;
            for s in batch.iter_mut().skip(at) {
                core::mem::swap(s, &mut carry);
            }
        }
    }
    if let Some(batch) = order.get_mut(start..) {
        if batch.len() < cap {
            crate::sort::sort_by_key(batch, Slot::rank);
        }
    }
    Ok(more)
}

fn write_scalar(w: &mut JsonWriter<'_>, value: RawJson<'_>) -> Result<(), EncodeError> {
    match value.kind() {
        JsonKind::String => {
            let s = value.as_json_str().ok_or(EncodeError::InvalidJson)?;
            w.quoted_json_str(s);
        }
        JsonKind::Bool => match value.as_bool() {
            Some(true) => w.put(b"true"),
            Some(false) => w.put(b"false"),
            None => return Err(EncodeError::InvalidJson),
        },
        JsonKind::Null if value.is_null() => w.put(b"null"),
        JsonKind::Number => write_number(w, value.as_bytes())?,
        _ => return Err(EncodeError::InvalidJson),
    }
    Ok(())
}

/// Writes one value (its separator already written): scalars at once,
/// containers opened and pushed.
fn emit<'a>(
    w: &mut JsonWriter<'_>,
    value: RawJson<'a>,
    stack: &mut heapless::Vec<Frame<'a>, MAX_REORDER_DEPTH>,
    order: &mut Order,
) -> Result<(), EncodeError> {
    let (frame, opener) = match value.kind() {
        JsonKind::Object if stack.is_full() => return write_stream(w, value),
        JsonKind::Object => {
            let start = order.len();
            let free = ORDER_SLOTS - start;
            let frame = if free == 0 {
                Frame::Object {
                    obj: value,
                    last: None,
                }
            } else {
                // All of it when it fits; otherwise batches of half the
                // free slots, leaving the rest to its children (the first
                // half of the sorted full batch is the first such batch).
                let mut cap = free;
                let more = push_batch(value, None, order, cap)?;
                if more {
                    cap = (free / 2).max(1);
                    order.truncate(start + cap);
                }
                Frame::Sorted {
                    obj: value,
                    start,
                    next: start,
                    end: order.len(),
                    cap,
                    more,
                }
            };
            (frame, b'{')
        }
        JsonKind::Array if stack.is_full() => return write_stream(w, value),
        JsonKind::Array => (Frame::Array(value.elements()), b'['),
        _ => return write_scalar(w, value),
    };
    w.open(opener);
    stack.push(frame).map_err(|_| EncodeError::Unsupported)
}

/// Writes `value` in QEMU's form, and in QEMU's key order with the
/// `qdict-order` feature (input order without it), without recursion.
pub(super) fn write_raw(w: &mut JsonWriter<'_>, value: RawJson<'_>) -> Result<(), EncodeError> {
    write_raw_as(w, value, cfg!(feature = "qdict-order"))
}

/// [`write_raw`], in QDict order when `ordered` (both forms are tested
/// whatever the features).
pub(super) fn write_raw_as(
    w: &mut JsonWriter<'_>,
    value: RawJson<'_>,
    ordered: bool,
) -> Result<(), EncodeError> {
    if !ordered {
        return write_stream(w, value);
    }
    let mut stack = heapless::Vec::new();
    let mut order = Order::new();
    emit(w, value, &mut stack, &mut order)?;
    while let Some(top) = stack.last_mut() {
        let (next, closer) = match top {
            Frame::Array(elements) => (elements.next().map(|e| (None, e)), b']'),
            Frame::Sorted {
                obj,
                start,
                next,
                end,
                cap,
                more,
            } => {
                if *next == *end && *more {
                    // The batch is written: collect the next one.
                    let after = end
                        .checked_sub(1)
                        .and_then(|l| order.get(l))
                        .map(Slot::rank);
                    order.truncate(*start);
                    *more = push_batch(*obj, after, &mut order, *cap)?;
                    *next = *start;
                    *end = order.len();
                }
                let slot = order.get(*next).filter(|_| *next < *end);
                *next += 1;
                let member = slot.and_then(|s| obj.member_at(s.pos as usize, s.end as usize));
                (member.map(|(k, v)| (Some(k), v)), b'}')
            }
            Frame::Object { obj, last } => {
                let next = next_member(*obj, *last).map(|(k, v, b, i)| {
                    *last = Some((b, i));
                    (Some(k), v)
                });
                (next, b'}')
            }
        };
        match next {
            Some((key, value)) => {
                w.prefix();
                if let Some(key) = key {
                    w.quoted_json_str(key);
                    w.colon();
                }
                emit(w, value, &mut stack, &mut order)?;
            }
            None => {
                if let Some(Frame::Sorted { start, .. }) = stack.pop() {
                    order.truncate(start);
                }
                w.close(closer);
            }
        }
    }
    Ok(())
}

/// Writes `value` in input order with a flat token walk (for nesting
/// beyond [`MAX_REORDER_DEPTH`]); the value's own separator is written.
fn write_stream(w: &mut JsonWriter<'_>, value: RawJson<'_>) -> Result<(), EncodeError> {
    let mut tokens = Tokens::new(value.as_bytes());
    let mut depth = 0usize;
    let mut first = true;
    let mut after_key = false;
    loop {
        let token = tokens.next_token().ok_or(EncodeError::InvalidJson)?;
        let is_closer = matches!(token, Token::ObjectEnd | Token::ArrayEnd);
        if !first && !after_key && !is_closer {
            w.prefix();
        }
        first = false;
        after_key = false;
        match token {
            Token::ObjectStart => {
                w.open(b'{');
                depth += 1;
            }
            Token::ArrayStart => {
                w.open(b'[');
                depth += 1;
            }
            Token::ObjectEnd | Token::ArrayEnd => {
                w.close(if matches!(token, Token::ArrayEnd) {
                    b']'
                } else {
                    b'}'
                });
                depth = depth.checked_sub(1).ok_or(EncodeError::InvalidJson)?;
            }
            Token::String(s) => {
                w.quoted_json_str(s);
                if tokens.at_colon() {
                    w.colon();
                    after_key = true;
                }
            }
            Token::Number(n) => write_number(w, n)?,
            Token::True => w.put(b"true"),
            Token::False => w.put(b"false"),
            Token::Null => w.put(b"null"),
        }
        if depth == 0 && !after_key {
            return Ok(());
        }
    }
}

/// Re-serialises validated JSON exactly as QEMU would after parsing it (no
/// line ending): QEMU's spacing, strings re-escaped to ASCII, numbers
/// re-printed (`0.1` → `0.10000000000000001`, `-0` → `0`), and object
/// members in QDict order (`{"b":2,"a":1}` → `{"a": 1, "b": 2}`; feature
/// `qdict-order`, on by default: without it members keep their input
/// order).
///
/// No recursion and no allocation: an explicit stack of 32 levels
/// (containers nested deeper keep their input member order) and a table
/// of 64 member slots shared by the objects being written. An object that
/// fits in the free slots is ordered in one pass (n log n). A larger one
/// is written in batches of half the free slots, each collected by one
/// pass over its members: n²/batch member visits, so an object of
/// 10,000 members takes about 300 passes. With every slot held by its
/// ancestors (from the 8th level of large objects), an object picks each next
/// member by a scan (n² visits).
///
/// # Errors
/// [`EncodeError::InsufficientSize`] with the exact size;
/// [`EncodeError::InvalidJson`] if the bytes are not JSON.
pub fn write_value_qemu(
    out: &mut [u8],
    style: Style,
    value: RawJson<'_>,
) -> Result<usize, EncodeError> {
    write_value(out, style, &value)
}
