//! The envelope writers: one complete QMP message (command, return, error,
//! event, greeting) into a caller buffer.

use super::escape::escape_pieces;
use super::number::write_display;
use super::{EncodeError, JsonWriter, Style, WriteJson};

fn message(
    out: &mut [u8],
    style: Style,
    body: impl FnOnce(&mut JsonWriter<'_>) -> Result<(), EncodeError>,
) -> Result<usize, EncodeError> {
    let mut w = JsonWriter::new(out, style);
    w.open(b'{');
    body(&mut w)?;
    w.close(b'}');
    w.end_message();
    w.finish()
}

/// Writes a command: `{"execute": N, "arguments": A, "id": I}` (or
/// `exec-oob`), in that order, like python `qemu.qmp` (use
/// [`Style::CLIENT`] for its exact spacing).
///
/// # Errors
/// [`EncodeError::InsufficientSize`] with the exact size, or an error of a
/// value.
pub fn write_command(
    out: &mut [u8],
    style: Style,
    exec_oob: bool,
    name: &str,
    arguments: Option<&dyn WriteJson>,
    id: Option<&dyn WriteJson>,
) -> Result<usize, EncodeError> {
    message(out, style, |w| {
        w.plain_key(if exec_oob { b"exec-oob" } else { b"execute" });
        w.quoted(name.as_bytes());
        if let Some(arguments) = arguments {
            w.plain_key(b"arguments");
            arguments.write_json(w)?;
        }
        if let Some(id) = id {
            w.plain_key(b"id");
            id.write_json(w)?;
        }
        Ok(())
    })
}

/// Writes a success response: `{"return": R, "id": I}` (`id` omitted when
/// `None`).
///
/// # Errors
/// [`EncodeError::InsufficientSize`] with the exact size, or an error of a
/// value.
pub fn write_return(
    out: &mut [u8],
    style: Style,
    value: &dyn WriteJson,
    id: Option<&dyn WriteJson>,
) -> Result<usize, EncodeError> {
    message(out, style, |w| {
        w.plain_key(b"return");
        value.write_json(w)?;
        if let Some(id) = id {
            w.plain_key(b"id");
            id.write_json(w)?;
        }
        Ok(())
    })
}

/// Writes an error response: `{"id": I, "error": {"class": C, "desc": D}}`.
/// `desc` is the concatenation of its pieces, decoded as one modified-UTF-8
/// string (a raw `0xFF` becomes `\uFFFD`).
///
/// # Errors
/// [`EncodeError::InsufficientSize`] with the exact size, or an error of the
/// id.
pub fn write_error(
    out: &mut [u8],
    style: Style,
    id: Option<&dyn WriteJson>,
    class: &[u8],
    desc: &[&[u8]],
) -> Result<usize, EncodeError> {
    message(out, style, |w| {
        if let Some(id) = id {
            w.plain_key(b"id");
            id.write_json(w)?;
        }
        w.plain_key(b"error");
        w.open(b'{');
        w.plain_key(b"class");
        w.quoted(class);
        w.plain_key(b"desc");
        w.put_byte(b'"');
        escape_pieces(w, desc);
        w.put_byte(b'"');
        w.close(b'}');
        Ok(())
    })
}

/// Writes an event: `{"timestamp": {"seconds": S, "microseconds": U},
/// "event": E, "data": D}` (`data` omitted when `None`).
///
/// # Errors
/// [`EncodeError::InsufficientSize`] with the exact size, or an error of the
/// data.
pub fn write_event(
    out: &mut [u8],
    style: Style,
    name: &str,
    data: Option<&dyn WriteJson>,
    seconds: i64,
    microseconds: i64,
) -> Result<usize, EncodeError> {
    message(out, style, |w| {
        w.plain_key(b"timestamp");
        w.open(b'{');
        w.plain_key(b"seconds");
        write_display(w, seconds)?;
        w.plain_key(b"microseconds");
        write_display(w, microseconds)?;
        w.close(b'}');
        w.plain_key(b"event");
        w.quoted(name.as_bytes());
        if let Some(data) = data {
            w.plain_key(b"data");
            data.write_json(w)?;
        }
        Ok(())
    })
}

/// Writes the greeting: `{"QMP": {"version": {"qemu": {"micro": 2, "minor":
/// 0, "major": 10}, "package": P}, "capabilities": [..]}}`.
///
/// # Errors
/// [`EncodeError::InsufficientSize`] with the exact size.
pub fn write_greeting(
    out: &mut [u8],
    style: Style,
    major: u64,
    minor: u64,
    micro: u64,
    package: &str,
    capabilities: &[&str],
) -> Result<usize, EncodeError> {
    message(out, style, |w| {
        w.plain_key(b"QMP");
        w.open(b'{');
        w.plain_key(b"version");
        w.open(b'{');
        w.plain_key(b"qemu");
        w.open(b'{');
        w.plain_key(b"micro");
        write_display(w, micro)?;
        w.plain_key(b"minor");
        write_display(w, minor)?;
        w.plain_key(b"major");
        write_display(w, major)?;
        w.close(b'}');
        w.plain_key(b"package");
        w.quoted(package.as_bytes());
        w.close(b'}');
        w.plain_key(b"capabilities");
        w.open(b'[');
        for cap in capabilities {
            w.prefix();
            w.quoted(cap.as_bytes());
        }
        w.close(b']');
        w.close(b'}');
        Ok(())
    })
}
