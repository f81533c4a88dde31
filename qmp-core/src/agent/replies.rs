//! The replies the agent writes itself, with QEMU's exact texts: the
//! negotiation (`qmp_capabilities`), unknown commands, invalid requests,
//! `query-commands`.

use crate::encode::{self, EncodeError, JsonWriter, Style, WriteJson};
use crate::json::{JsonKind, JsonStr, RawJson};
use crate::message::{BadRequest, Request};

use super::config::CommandSpec;
use crate::schema::CheckError;

/// The id member as the writers take it.
pub(crate) fn id_ref<'r>(id: &'r Option<RawJson<'_>>) -> Option<&'r dyn WriteJson> {
    id.as_ref().map(|i| i as &dyn WriteJson)
}

/// An error whose `desc` is `before`, the unescaped bytes of `name` (raw
/// if it has no escapes or does not fit a 256-byte scratch) and `after`.
/// One copy, not inlined: every reply naming a command or member uses it.
#[inline(never)]
fn error_naming(
    o: &mut [u8],
    style: Style,
    id: Option<&dyn WriteJson>,
    class: &[u8],
    [before, after]: [&[u8]; 2],
    name: JsonStr<'_>,
) -> Result<usize, EncodeError> {
    let mut scratch = [0u8; 256];
    let mut bytes = name.raw();
    if name.has_escapes() {
        if let Ok(unescaped) = name.unescape_into(&mut scratch) {
            bytes = unescaped;
        }
    }
    encode::write_error(o, style, id, class, &[before, bytes, after])
}

/// `GenericError` with `desc` pieces.
pub(crate) fn generic(
    o: &mut [u8],
    style: Style,
    id: Option<&dyn WriteJson>,
    desc: &[&[u8]],
) -> Result<usize, EncodeError> {
    encode::write_error(o, style, id, b"GenericError", desc)
}

/// `The command NAME has not been found`.
pub(crate) fn not_found(
    o: &mut [u8],
    style: Style,
    id: Option<RawJson<'_>>,
    name: JsonStr<'_>,
) -> Result<usize, EncodeError> {
    error_naming(
        o,
        style,
        id_ref(&id),
        b"CommandNotFound",
        [b"The command ", b" has not been found"],
        name,
    )
}

/// Negotiation mode: every command but `qmp_capabilities`.
pub(crate) fn expecting_negotiation(
    o: &mut [u8],
    style: Style,
    id: Option<RawJson<'_>>,
) -> Result<usize, EncodeError> {
    encode::write_error(
        o,
        style,
        id_ref(&id),
        b"CommandNotFound",
        &[b"Expecting capabilities negotiation with 'qmp_capabilities'"],
    )
}

/// A second `qmp_capabilities`.
pub(crate) fn already_negotiated(
    o: &mut [u8],
    style: Style,
    id: Option<RawJson<'_>>,
) -> Result<usize, EncodeError> {
    encode::write_error(
        o,
        style,
        id_ref(&id),
        b"CommandNotFound",
        &[b"Capabilities negotiation is already complete, command ignored"],
    )
}

/// `exec-oob` for a command that does not allow it.
pub(crate) fn no_oob(
    o: &mut [u8],
    style: Style,
    id: Option<RawJson<'_>>,
    name: JsonStr<'_>,
) -> Result<usize, EncodeError> {
    error_naming(
        o,
        style,
        id_ref(&id),
        b"GenericError",
        [b"The command ", b" does not support OOB"],
        name,
    )
}

/// A request that failed structural validation.
pub(crate) fn bad_request(
    o: &mut [u8],
    style: Style,
    bad: &BadRequest<'_>,
) -> Result<usize, EncodeError> {
    let (a, key, b) = bad.error.desc_parts();
    let id = id_ref(&bad.id);
    match key {
        Some(k) => error_naming(
            o,
            style,
            id,
            b"GenericError",
            [a.as_bytes(), b.as_bytes()],
            k,
        ),
        None => generic(o, style, id, &[a.as_bytes()]),
    }
}

/// `Parameter 'KEY' is unexpected`.
pub(crate) fn unexpected(
    o: &mut [u8],
    style: Style,
    id: Option<&dyn WriteJson>,
    key: JsonStr<'_>,
) -> Result<usize, EncodeError> {
    error_naming(
        o,
        style,
        id,
        b"GenericError",
        [b"Parameter '", b"' is unexpected"],
        key,
    )
}

/// Text of at most [`CHECK_TEXT`] bytes, cut there.
struct Text {
    buf: [u8; CHECK_TEXT],
    len: usize,
}

/// The longest argument error text the agent sends (longer ones are cut).
const CHECK_TEXT: usize = 256;

impl Text {
    fn put(&mut self, s: &str) {
        for &b in s.as_bytes() {
            if let Some(d) = self.buf.get_mut(self.len) {
                *d = b;
                self.len += 1;
            }
        }
    }
}

/// An argument error found against a command's declared arguments, with
/// QEMU's text.
pub(crate) fn check_failed(
    o: &mut [u8],
    style: Style,
    id: Option<&dyn WriteJson>,
    err: &CheckError<'_, '_>,
) -> Result<usize, EncodeError> {
    let mut text = Text {
        buf: [0; CHECK_TEXT],
        len: 0,
    };
    err.write_desc(&mut |s| text.put(s));
    let desc = text.buf.get(..text.len).unwrap_or_default();
    encode::write_error(o, style, id, err.class().as_bytes(), &[desc])
}

/// `qmp_capabilities`: the reply, and `Some(oob)` when negotiation
/// succeeds (QEMU's `qmp_qmp_capabilities` and its argument visitor).
pub(crate) fn negotiate(
    o: &mut [u8],
    style: Style,
    req: &Request<'_>,
    offer_oob: bool,
) -> (Result<usize, EncodeError>, Option<bool>) {
    let id = id_ref(&req.id);
    let mut enable_oob = false;
    let mut unavailable = 0usize;
    if let Some(args) = req.arguments {
        if let Some(enable) = args.get("enable") {
            if enable.kind() != JsonKind::Array {
                let r = generic(
                    o,
                    style,
                    id,
                    &[b"Invalid parameter type for 'enable', expected: array"],
                );
                return (r, None);
            }
            for (i, e) in enable.elements().enumerate() {
                let Some(s) = e.as_json_str() else {
                    let mut num = [0u8; 20];
                    let digits = fmt_usize(i, &mut num);
                    let r = generic(
                        o,
                        style,
                        id,
                        &[
                            b"Invalid parameter type for 'enable[",
                            digits,
                            b"]', expected: string",
                        ],
                    );
                    return (r, None);
                };
                if !s.eq_str("oob") {
                    let r = error_naming(
                        o,
                        style,
                        id,
                        b"GenericError",
                        [b"Parameter 'null' does not accept value '", b"'"],
                        s,
                    );
                    return (r, None);
                }
                enable_oob = true;
                if !offer_oob {
                    unavailable += 1;
                }
            }
        }
        if let Some((key, _)) = args.members().find(|(k, _)| !k.eq_str("enable")) {
            return (unexpected(o, style, id, key), None);
        }
    }
    if unavailable > 0 {
        // "Capability oob, oob not available": every unavailable entry.
        let mut list = [0u8; 64];
        let mut n = 0;
        for i in 0..unavailable.min(12) {
            let piece: &[u8] = if i == 0 { b"oob" } else { b", oob" };
            if let Some(dst) = list.get_mut(n..n + piece.len()) {
                dst.copy_from_slice(piece);
                n += piece.len();
            }
        }
        let r = generic(
            o,
            style,
            id,
            &[
                b"Capability ",
                list.get(..n).unwrap_or(&[]),
                b" not available",
            ],
        );
        return (r, None);
    }
    (
        encode::write_return(o, style, &EmptyObject, id),
        Some(enable_oob),
    )
}

/// The decimal digits of `v`.
fn fmt_usize(mut v: usize, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        if let Some(d) = buf.get_mut(i) {
            *d = b'0' + (v % 10) as u8;
        }
        v /= 10;
        if v == 0 || i == 0 {
            break;
        }
    }
    buf.get(i..).unwrap_or(&[])
}

/// `{}`.
pub(crate) struct EmptyObject;

impl WriteJson for EmptyObject {
    fn write_json(&self, w: &mut JsonWriter<'_>) -> Result<(), EncodeError> {
        w.open(b'{');
        w.close(b'}');
        Ok(())
    }
}

/// `query-commands`: `[{"name": …}, …]`, qmp_capabilities included (QMP).
pub(crate) struct CommandList<'a> {
    pub(crate) commands: &'a [CommandSpec<'a>],
    pub(crate) qmp: bool,
}

impl WriteJson for CommandList<'_> {
    fn write_json(&self, w: &mut JsonWriter<'_>) -> Result<(), EncodeError> {
        w.open(b'[');
        let builtin: &[&str] = if self.qmp { &["qmp_capabilities"] } else { &[] };
        for name in builtin
            .iter()
            .copied()
            .chain(self.commands.iter().map(|c| c.name()))
        {
            w.prefix();
            w.open(b'{');
            w.key(b"name");
            w.quoted(name.as_bytes());
            w.close(b'}');
        }
        w.close(b']');
        Ok(())
    }
}
