//! Numbers as QEMU prints them: integers as `i64`/`u64`, every other
//! number as C's `%.17g` (feature `exact-floats`, on by default).
//!
//! Without `exact-floats` (about 25 KB less flash on a Cortex-M: no float
//! parsing or formatting is linked), integers are printed exactly as
//! QEMU does, and every other number token received from a peer is
//! echoed as received (`1.5` stays `1.5`, where QEMU prints
//! `0.10000000000000001` for `0.1`, `1e+300` for `1E300` and `1` for
//! `1.0`). `f32`/`f64` values of the application ([`Ser`](super::Ser))
//! are then printed when they are integers below 10^17 in magnitude (as
//! `%.17g` prints them: `-0` for negative zero); any other float is
//! [`EncodeError::Unsupported`].

#[cfg(any(feature = "exact-floats", test))]
use core::fmt::{self, Write as _};

use super::{EncodeError, JsonWriter};

/// A small stack buffer for `core::fmt`.
#[cfg(any(feature = "exact-floats", test))]
struct FmtBuf {
    buf: [u8; 40],
    len: usize,
}

#[cfg(any(feature = "exact-floats", test))]
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

#[cfg(any(feature = "exact-floats", test))]
impl fmt::Write for FmtBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        dst.iter_mut().zip(s.as_bytes()).for_each(|(d, s)| *d = *s);
        self.len = end;
        Ok(())
    }
}

/// An integer, as its sign and magnitude.
pub(super) trait Decimal: Copy {
    /// Whether it is negative, and its magnitude.
    fn split(self) -> (bool, u64);
}

macro_rules! decimal_unsigned {
    ($($t:ty),*) => {$(
        impl Decimal for $t {
            #[inline]
            fn split(self) -> (bool, u64) {
                (false, self as u64)
            }
        }
    )*};
}
macro_rules! decimal_signed {
    ($($t:ty),*) => {$(
        impl Decimal for $t {
            #[inline]
            fn split(self) -> (bool, u64) {
                (self < 0, self.unsigned_abs() as u64)
            }
        }
    )*};
}
decimal_unsigned!(u8, u16, u32, u64, usize);
decimal_signed!(i8, i16, i32, i64, isize);

/// `n / 10` and `n % 10` in 32-bit steps (16 bits of `n` at a time): no
/// 64-bit division routine (about 1 KB of flash on a 32-bit core).
#[inline]
fn div_rem_10(n: u64) -> (u64, u8) {
    let mut q = 0u64;
    let mut r = 0u32;
    let mut shift = 64;
    while shift > 0 {
        shift -= 16;
        // `r < 10`: at most 20 bits.
        let cur = (r << 16) | ((n >> shift) as u32 & 0xFFFF);
        q |= u64::from(cur / 10) << shift;
        r = cur % 10;
    }
    (q, r as u8)
}

/// Writes an integer in decimal (no `core::fmt`: its machinery costs flash
/// and time on small targets; 64-bit division only above `u32::MAX`).
pub(super) fn write_display(w: &mut JsonWriter<'_>, v: impl Decimal) -> Result<(), EncodeError> {
    let (neg, n) = v.split();
    write_sign_magnitude(w, neg, n)
}

/// Writes `-` (if `neg`) and `n` in decimal.
fn write_sign_magnitude(w: &mut JsonWriter<'_>, neg: bool, mut n: u64) -> Result<(), EncodeError> {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut push = |d: u8| {
        i -= 1;
        if let Some(slot) = buf.get_mut(i) {
            *slot = b'0' + d;
        }
    };
    while n > u64::from(u32::MAX) {
        let (q, r) = div_rem_10(n);
        push(r);
        n = q;
    }
    let mut m = n as u32;
    loop {
        push((m % 10) as u8);
        m /= 10;
        if m == 0 {
            break;
        }
    }
    if neg {
        w.put_byte(b'-');
    }
    w.put(buf.get(i..).unwrap_or_default());
    Ok(())
}

#[cfg(any(feature = "exact-floats", test))]
fn strip_zeros(mut s: &[u8]) -> &[u8] {
    while let [rest @ .., b'0'] = s {
        s = rest;
    }
    s
}

/// Writes `v` like C's `printf("%.17g", v)` (`inf`, `-inf`, `nan` included,
/// as QEMU does not guard against them).
#[cfg(any(feature = "exact-floats", test))]
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

/// Writes a finite `f64` of the application: `%.17g` with `exact-floats`,
/// else only an integer below 10^17 in magnitude (what `%.17g` prints
/// without exponent or fraction).
pub(super) fn write_f64(w: &mut JsonWriter<'_>, v: f64) -> Result<(), EncodeError> {
    write_f64_as(w, v, cfg!(feature = "exact-floats"))
}

pub(super) fn write_f64_as(w: &mut JsonWriter<'_>, v: f64, exact: bool) -> Result<(), EncodeError> {
    if exact {
        #[cfg(any(feature = "exact-floats", test))]
        return write_g17(w, v);
    }
    // Exact: |v| < 10^17 < 2^63, so the cast keeps every digit.
    if v.is_finite() && v == (v as i64) as f64 && v.abs() < 1e17 {
        if v == 0.0 && v.is_sign_negative() {
            w.put(b"-0");
            return Ok(());
        }
        return write_display(w, v as i64);
    }
    Err(EncodeError::Unsupported)
}

/// Writes a number token the way QEMU re-prints it after parsing: an
/// integer that fits `i64` or `u64` as such, anything else as a double
/// (`exact-floats`) or as received (without it).
pub(super) fn write_number(w: &mut JsonWriter<'_>, text: &[u8]) -> Result<(), EncodeError> {
    write_number_as(w, text, cfg!(feature = "exact-floats"))
}

/// [`write_number`], with or without `%.17g` for non-integers (`exact`;
/// both ways are compiled for the tests).
pub(super) fn write_number_as(
    w: &mut JsonWriter<'_>,
    text: &[u8],
    exact: bool,
) -> Result<(), EncodeError> {
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
    // (A number token is ASCII.)
    if !text.is_ascii() {
        return Err(EncodeError::InvalidJson);
    }
    if !text.iter().any(|b| matches!(b, b'.' | b'e' | b'E')) {
        // As `str::parse` to `i64`, else (without `-`) to `u64`.
        match crate::json::parse_integer(text, true) {
            Some((true, v)) if v <= 1 << 63 => return write_sign_magnitude(w, v != 0, v),
            Some((false, v)) => return write_sign_magnitude(w, false, v),
            _ => {}
        }
    }
    if exact {
        #[cfg(any(feature = "exact-floats", test))]
        {
            let v: f64 = core::str::from_utf8(text)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or(EncodeError::InvalidJson)?;
            return write_g17(w, v);
        }
    }
    // A validated number token: valid JSON as it stands.
    w.put(text);
    Ok(())
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

#[cfg(test)]
mod div_tests {
    #[test]
    fn div_rem_10_is_exact() {
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        for v in [
            0,
            9,
            10,
            u64::from(u32::MAX),
            u64::from(u32::MAX) + 1,
            u64::MAX,
        ]
        .into_iter()
        .chain((0..10_000).map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x >> (x % 64)
        })) {
            assert_eq!(super::div_rem_10(v), (v / 10, (v % 10) as u8), "{v}");
        }
    }
}
