//! Typed guest-agent commands: `guest-ping`, `guest-get-time`,
//! `guest-info`.

use crate::client::commands::{empty_object, str_member};
use crate::client::DecodeError;
use crate::json::{JsonKind, JsonStr, RawJson};

crate::command!(
    /// `guest-ping`: returns nothing.
    pub GuestPing = "guest-ping" -> () = empty_object
);

crate::command!(
    /// `guest-get-time`: the guest's time in nanoseconds since the epoch
    /// (above 2^53: kept as an exact `i64`).
    pub GuestGetTime = "guest-get-time" -> i64 = decode_time
);

crate::command!(
    /// `guest-info`: returns the agent's `version` (the command list is in
    /// the raw value: use
    /// [`QgaClient::execute_raw`](crate::qga::QgaClient::execute_raw) for
    /// it).
    pub GuestInfo = "guest-info" -> JsonStr<'a> = decode_info
);

fn decode_time(v: RawJson<'_>) -> Result<i64, DecodeError> {
    v.as_i64().ok_or(DecodeError::Type(""))
}

fn decode_info(v: RawJson<'_>) -> Result<JsonStr<'_>, DecodeError> {
    if v.kind() != JsonKind::Object {
        return Err(DecodeError::Type(""));
    }
    str_member(v, "version")
}
