//! Typed protocol commands: `qmp_capabilities`, `query-version`,
//! `query-commands`, `query-status`, `stop`, `cont`, `system_powerdown`,
//! `quit` and `human-monitor-command`.
//!
//! Return values borrow the reply: strings are [`JsonStr`] (escaped as
//! received; compare with [`JsonStr::eq_str`], print with `Display`, copy
//! with [`JsonStr::unescape_into`]). Unknown members are ignored.
//!
//! ```
//! use qmp_core::client::Command;
//! use qmp_core::client::commands::{QueryCommands, QueryVersion};
//! use qmp_core::scan::{validate, FramerConfig};
//!
//! let v = validate(br#"{"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian"}"#,
//!                  FramerConfig::new()).unwrap();
//! let info = QueryVersion::decode_returns(v).unwrap();
//! assert_eq!((info.qemu.major, info.qemu.minor, info.qemu.micro), (7, 2, 22));
//! assert!(info.package.eq_str("Debian"));
//!
//! let v = validate(br#"[{"name": "stop"}, {"name": "cont"}]"#, FramerConfig::new()).unwrap();
//! let list = QueryCommands::decode_returns(v).unwrap();
//! assert!(list.contains("cont"));
//! assert_eq!(list.names().count(), 2);
//! ```

use serde::ser::{SerializeStruct, Serializer};
use serde::Serialize;

use super::{Command, DecodeError};
use crate::json::{JsonKind, JsonStr, RawJson};

pub(crate) fn member<'a>(v: RawJson<'a>, key: &'static str) -> Result<RawJson<'a>, DecodeError> {
    if v.kind() != JsonKind::Object {
        return Err(DecodeError::Type(""));
    }
    v.get(key).ok_or(DecodeError::Missing(key))
}

pub(crate) fn str_member<'a>(
    v: RawJson<'a>,
    key: &'static str,
) -> Result<JsonStr<'a>, DecodeError> {
    member(v, key)?.as_json_str().ok_or(DecodeError::Type(key))
}

pub(crate) fn bool_member(v: RawJson<'_>, key: &'static str) -> Result<bool, DecodeError> {
    member(v, key)?.as_bool().ok_or(DecodeError::Type(key))
}

fn u64_member(v: RawJson<'_>, key: &'static str) -> Result<u64, DecodeError> {
    member(v, key)?.as_u64().ok_or(DecodeError::Type(key))
}

pub(crate) fn empty_object(v: RawJson<'_>) -> Result<(), DecodeError> {
    // QEMU returns `{}`; accept any object.
    if v.kind() == JsonKind::Object {
        Ok(())
    } else {
        Err(DecodeError::Type(""))
    }
}

crate::command!(
    /// `stop`: pause the guest.
    pub Stop = "stop" -> () = empty_object
);
crate::command!(
    /// `cont`: resume the guest.
    pub Cont = "cont" -> () = empty_object
);
crate::command!(
    /// `system_powerdown`: press the ACPI power button.
    pub SystemPowerdown = "system_powerdown" -> () = empty_object
);
crate::command!(
    /// `quit`: QEMU exits (`SHUTDOWN` comes before the reply).
    pub Quit = "quit" -> () = empty_object
);

/// `qmp_capabilities`: arguments `{"enable": ["oob"]}` when `oob`, else `{}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QmpCapabilities {
    /// Enable the `oob` capability.
    pub oob: bool,
}

impl Serialize for QmpCapabilities {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("QmpCapabilities", usize::from(self.oob))?;
        if self.oob {
            st.serialize_field("enable", &["oob"])?;
        }
        st.end()
    }
}

impl Command for QmpCapabilities {
    const NAME: &'static str = "qmp_capabilities";
    type Returns<'a> = ();
    fn decode_returns(value: RawJson<'_>) -> Result<(), DecodeError> {
        empty_object(value)
    }
}

crate::command!(
    /// `query-version`.
    pub QueryVersion = "query-version" -> VersionInfo<'a> = decode_version
);

/// QEMU's version triple.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct VersionTriple {
    /// Major.
    pub major: u64,
    /// Minor.
    pub minor: u64,
    /// Micro (50: development branch; ≥ 90: release candidate).
    pub micro: u64,
}

/// `query-version`'s return value (also the greeting's `version`).
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct VersionInfo<'a> {
    /// `qemu`.
    pub qemu: VersionTriple,
    /// `package` (often empty).
    pub package: JsonStr<'a>,
}

fn decode_version(v: RawJson<'_>) -> Result<VersionInfo<'_>, DecodeError> {
    let q = member(v, "qemu")?;
    Ok(VersionInfo {
        qemu: VersionTriple {
            major: u64_member(q, "major")?,
            minor: u64_member(q, "minor")?,
            micro: u64_member(q, "micro")?,
        },
        package: str_member(v, "package")?,
    })
}

crate::command!(
    /// `query-commands`.
    pub QueryCommands = "query-commands" -> CommandList<'a> = decode_commands
);

/// `query-commands`'s return value: a borrowed view of the array (no
/// capacity limit, nothing copied).
#[derive(Clone, Copy, Debug)]
pub struct CommandList<'a>(RawJson<'a>);

impl<'a> CommandList<'a> {
    /// The command names, in the server's order (elements without a string
    /// `name` are skipped).
    pub fn names(&self) -> impl Iterator<Item = JsonStr<'a>> + 'a {
        self.0
            .elements()
            .filter_map(|e| e.get("name").and_then(|n| n.as_json_str()))
    }

    /// Whether `name` is listed.
    pub fn contains(&self, name: &str) -> bool {
        self.names().any(|n| n.eq_str(name))
    }

    /// The raw array.
    pub fn raw(&self) -> RawJson<'a> {
        self.0
    }
}

fn decode_commands(v: RawJson<'_>) -> Result<CommandList<'_>, DecodeError> {
    if v.kind() == JsonKind::Array {
        Ok(CommandList(v))
    } else {
        Err(DecodeError::Type(""))
    }
}

crate::command!(
    /// `query-status`.
    pub QueryStatus = "query-status" -> StatusInfo<'a> = decode_status
);

/// `query-status`'s return value.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct StatusInfo<'a> {
    /// `status`: the run state (`"running"`, `"paused"`, `"prelaunch"`, …;
    /// open).
    pub status: JsonStr<'a>,
    /// `running`.
    pub running: bool,
    /// `singlestep` (gone in newer QEMU).
    pub singlestep: Option<bool>,
}

fn decode_status(v: RawJson<'_>) -> Result<StatusInfo<'_>, DecodeError> {
    Ok(StatusInfo {
        status: str_member(v, "status")?,
        running: bool_member(v, "running")?,
        singlestep: match v.get("singlestep") {
            None => None,
            Some(b) => Some(b.as_bool().ok_or(DecodeError::Type("singlestep"))?),
        },
    })
}

/// `human-monitor-command`: runs an HMP command line; returns its output
/// (escaped as received: `"No CPU available\r\n"`; `Display` and
/// [`JsonStr::unescape_into`] decode it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HumanMonitorCommand<'a> {
    /// `command-line`.
    pub command_line: &'a str,
}

impl Serialize for HumanMonitorCommand<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("HumanMonitorCommand", 1)?;
        st.serialize_field("command-line", self.command_line)?;
        st.end()
    }
}

impl Command for HumanMonitorCommand<'_> {
    const NAME: &'static str = "human-monitor-command";
    type Returns<'a> = JsonStr<'a>;
    fn decode_returns(v: RawJson<'_>) -> Result<JsonStr<'_>, DecodeError> {
        v.as_json_str().ok_or(DecodeError::Type(""))
    }
}
