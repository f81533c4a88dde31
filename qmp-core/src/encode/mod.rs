//! The envelope writer: commands, returns, errors, events and the greeting,
//! byte-exact with QEMU 10's JSON writer (`qobject/json-writer.c`).
//!
//! Every function writes one complete message into a caller buffer and
//! returns the number of bytes written. When the buffer is too small the
//! result is [`EncodeError::InsufficientSize`] with the exact size needed; the
//! buffer contents are then meaningless (only an `Ok` length is output).
//!
//! What QEMU does, and so what these writers do:
//!
//! * strings are decoded as modified UTF-8 and written as ASCII with
//!   uppercase `\uXXXX` escapes; each invalid sequence becomes `\uFFFD`;
//! * integers print as `i64`/`u64`, every other number as C's `%.17g`;
//! * object members come out in QDict order ([`qdict_bucket`] ascending,
//!   the most recently inserted key first within a bucket). The envelopes
//!   and [`RawJson`] values (re-serialised by [`write_value_qemu`]) follow
//!   it (for `RawJson`, with the `qdict-order` feature, on by default;
//!   without it their members keep their input order). Values written through [`Ser`] (serde) keep their field order: a
//!   byte-exact QEMU imitation must declare its struct fields in QDict order.
//!
//! Values are passed as `&dyn` [`WriteJson`]: a [`RawJson`] (re-serialised
//! the QEMU way), [`Verbatim`] (copied as is), a [`JsonStr`], `&str`, `i64`,
//! `u64`, `bool`, or anything `Serialize` wrapped in [`Ser`].
//!
//! ```
//! use qmp_core::encode::{write_command, write_error, write_return, Ser, Style};
//!
//! let mut buf = [0u8; 256];
//! let n = write_return(&mut buf, Style::QMP, &Ser(&()), Some(&7i64)).unwrap();
//! assert_eq!(&buf[..n], b"{\"return\": null, \"id\": 7}\r\n");
//!
//! let n = write_error(&mut buf, Style::QMP, None, b"GenericError", &[b"stray '", b"\xFF", b"'"])
//!     .unwrap();
//! assert_eq!(
//!     &buf[..n],
//!     &b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"stray '\\uFFFD'\"}}\r\n"[..]
//! );
//!
//! #[derive(serde::Serialize)]
//! struct Enable<'a> { enable: &'a [&'a str] }
//! let args = Enable { enable: &["oob"] };
//! let n = write_command(&mut buf, Style::CLIENT, false, "qmp_capabilities", Some(&Ser(&args)), Some(&"c1"))
//!     .unwrap();
//! assert_eq!(
//!     &buf[..n],
//!     &b"{\"execute\":\"qmp_capabilities\",\"arguments\":{\"enable\":[\"oob\"]},\"id\":\"c1\"}"[..]
//! );
//! ```

//!
//! [`RawJson`]: crate::RawJson
//! [`JsonStr`]: crate::JsonStr

// One idea per file:
// * style       Style, Layout, LineEnding
// * error       EncodeError
// * writer      JsonWriter: the counting sink and QEMU's json-writer state
// * escape      QEMU's quoted_str(): modified UTF-8 in, ASCII out
// * number      integers and C's %.17g
// * qdict       tdb_hash and the QDict member order
// * reserialise validated JSON re-written the QEMU way, without recursion
// * value       WriteJson and its impls (Verbatim, Ser, ...)
// * serializer  the serde Serializer behind Ser
// * envelope    command, return, error, event and greeting

mod envelope;
mod error;
mod escape;
mod number;
mod qdict;
mod reserialise;
mod serializer;
mod style;
mod value;
mod writer;

pub use envelope::{write_command, write_error, write_event, write_greeting, write_return};
pub use error::EncodeError;
pub use escape::{escape_bytes, escape_json_str, write_quoted};
pub use qdict::{qdict_bucket, tdb_hash, QDICT_BUCKETS};
pub use reserialise::write_value_qemu;
pub use style::{Layout, LineEnding, Style};
pub use value::{write_value, Ser, Verbatim, WriteJson};
pub use writer::JsonWriter;

pub(crate) use qdict::json_str_bucket;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests;
