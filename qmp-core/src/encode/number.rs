//! Numbers as QEMU prints them: integers as `i64`/`u64`, every other
//! number as C's `%.17g`.

use core::fmt::{self, Write as _};

use super::{EncodeError, JsonWriter};

/// A small stack buffer for `core::fmt`.
struct FmtBuf {
    buf: [u8; 40],
    len: usize,
}

impl FmtBuf {
    const fn new() -> Self {
        FmtBuf {
            buf: [0; 40],
            len: 0,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }
}

impl fmt::Write for FmtBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        dst.iter_mut().zip(s.as_bytes()).for_each(|(d, s)| *d = *s);
        self.len = end;
        Ok(())
    }
}

pub(super) fn write_display(
    w: &mut JsonWriter<'_>,
    v: impl fmt::Display,
) -> Result<(), EncodeError> {
    let mut buf = FmtBuf::new();
    write!(buf, "{v}").map_err(|_| EncodeError::Unsupported)?;
    w.put(buf.as_bytes());
    Ok(())
}

fn strip_zeros(mut s: &[u8]) -> &[u8] {
    while let [rest @ .., b'0'] = s {
        s = rest;
    }
    s
}

/// Writes `v` like C's `printf("%.17g", v)` (`inf`, `-inf`, `nan` included,
/// as QEMU does not guard against them).
pub(super) fn write_g17(w: &mut JsonWriter<'_>, v: f64) -> Result<(), EncodeError> {
    if v.is_nan() {
        w.put(if v.is_sign_negative() {
            b"-nan"
        } else {
            b"nan"
        });
        return Ok(());
    }
    if v.is_infinite() {
        w.put(if v < 0.0 { b"-inf" } else { b"inf" });
        return Ok(());
    }
    let mut buf = FmtBuf::new();
    write!(buf, "{v:.16e}").map_err(|_| EncodeError::Unsupported)?;
    let s = buf.as_bytes();
    let (neg, s) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    let e = s
        .iter()
        .position(|&b| b == b'e')
        .ok_or(EncodeError::Unsupported)?;
    let (mantissa, exp) = s.split_at_checked(e).ok_or(EncodeError::Unsupported)?;
    let exp: i32 = core::str::from_utf8(exp.get(1..).unwrap_or_default())
        .ok()
        .and_then(|x| x.parse().ok())
        .ok_or(EncodeError::Unsupported)?;
    let mut digits = [b'0'; 17];
    for (d, m) in digits
        .iter_mut()
        .zip(mantissa.iter().filter(|b| b.is_ascii_digit()))
    {
        *d = *m;
    }
    if neg {
        w.put_byte(b'-');
    }
    if (-4..17).contains(&exp) {
        if exp >= 0 {
            let (int, frac) = digits
                .split_at_checked(exp.unsigned_abs() as usize + 1)
                .ok_or(EncodeError::Unsupported)?;
            w.put(int);
            let frac = strip_zeros(frac);
            if !frac.is_empty() {
                w.put_byte(b'.');
                w.put(frac);
            }
        } else {
            w.put(b"0.");
            for _ in 1..exp.unsigned_abs() {
                w.put_byte(b'0');
            }
            w.put(strip_zeros(&digits));
        }
    } else {
        let (first, frac) = digits.split_at_checked(1).ok_or(EncodeError::Unsupported)?;
        w.put(first);
        let frac = strip_zeros(frac);
        if !frac.is_empty() {
            w.put_byte(b'.');
            w.put(frac);
        }
        w.put_byte(b'e');
        w.put_byte(if exp < 0 { b'-' } else { b'+' });
        if exp.unsigned_abs() < 10 {
            w.put_byte(b'0');
        }
        write_display(w, exp.unsigned_abs())?;
    }
    Ok(())
}

/// Writes a number token the way QEMU re-prints it after parsing: an
/// integer that fits `i64` or `u64` as such, anything else as a double.
pub(super) fn write_number(w: &mut JsonWriter<'_>, text: &[u8]) -> Result<(), EncodeError> {
    // An integer already as QEMU prints it (no leading zero, no `-0`) that
    // surely fits `i64` (at most 18 digits) is written as it is.
    let digits = text.strip_prefix(b"-").unwrap_or(text);
    if (digits == b"0" && digits.len() == text.len())
        || (matches!(digits.first(), Some(b'1'..=b'9'))
            && digits.len() <= 18
            && digits.iter().all(u8::is_ascii_digit))
    {
        w.put(text);
        return Ok(());
    }
    let s = core::str::from_utf8(text).map_err(|_| EncodeError::InvalidJson)?;
    if !s.bytes().any(|b| matches!(b, b'.' | b'e' | b'E')) {
        if let Ok(v) = s.parse::<i64>() {
            return write_display(w, v);
        }
        if !s.starts_with('-') {
            if let Ok(v) = s.parse::<u64>() {
                return write_display(w, v);
            }
        }
    }
    let v: f64 = s.parse().map_err(|_| EncodeError::InvalidJson)?;
    write_g17(w, v)
}

pub(super) fn int128(w: &mut JsonWriter<'_>, v: i128) -> Result<(), EncodeError> {
    if let Ok(v) = i64::try_from(v) {
        write_display(w, v)
    } else if let Ok(v) = u64::try_from(v) {
        write_display(w, v)
    } else {
        Err(EncodeError::Unsupported)
    }
}
