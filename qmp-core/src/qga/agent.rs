//! The guest-agent server side: `guest-sync` and `guest-sync-delimited`,
//! answered by the [`Agent`](crate::agent::Agent) itself when its
//! [`Protocol`](crate::agent::Protocol) is `Qga` and they are listed among
//! its commands (as `qemu-ga` does: `qga/commands.c`).
//!
//! `guest-sync-delimited` puts the raw [`DELIMITER`] byte
//! in front of its reply, so a client can discard everything before it. The
//! rest of the dialect — no greeting, no negotiation, no OOB, `\n` line
//! endings — is the agent's configuration ([`AgentConfig::qga`](crate::agent::AgentConfig::qga)).

use super::DELIMITER;
use crate::agent::replies::{generic, id_ref, unexpected};
use crate::encode::{self, EncodeError, Style};
use crate::message::Request;
use crate::InsufficientSize;

/// Writes the reply to `guest-sync` (`delimited`: `guest-sync-delimited`)
/// with QEMU's argument checks: `{"return": id}`, the `id` echoed exactly.
pub(crate) fn guest_sync(
    o: &mut [u8],
    style: Style,
    req: &Request<'_>,
    delimited: bool,
) -> Result<usize, EncodeError> {
    let id_member = id_ref(&req.id);
    let args = req.arguments;
    let value = args.and_then(|a| a.get("id"));
    let error: Option<&[&[u8]]> = match value {
        None => Some(&[b"Parameter 'id' is missing"]),
        Some(v) if v.as_i64().is_none() => {
            Some(&[b"Invalid parameter type for 'id', expected: integer"])
        }
        Some(_) => None,
    };
    if let Some(desc) = error {
        return generic(o, style, id_member, desc);
    }
    if let Some((k, _)) = args.and_then(|a| a.members().find(|(k, _)| !k.eq_str("id"))) {
        return unexpected(o, style, id_member, k);
    }
    let Some(v) = value else {
        return Ok(0);
    };
    let (prefix, rest) = if delimited {
        match o.split_first_mut() {
            Some((first, rest)) => {
                *first = DELIMITER;
                (1, rest)
            }
            None => {
                return Err(EncodeError::InsufficientSize(InsufficientSize {
                    required: 1,
                }))
            }
        }
    } else {
        (0, o)
    };
    match encode::write_return(rest, style, &v, id_member) {
        Ok(n) => Ok(n + prefix),
        Err(EncodeError::InsufficientSize(InsufficientSize { required })) => {
            Err(EncodeError::InsufficientSize(InsufficientSize {
                required: required + prefix,
            }))
        }
        Err(e) => Err(e),
    }
}
