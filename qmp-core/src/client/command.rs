//! Typed commands: the [`Command`] trait and [`command!`](crate::command),
//! which declares a command without arguments in one line.

use serde::Serialize;

use super::DecodeError;
use crate::json::RawJson;

/// A typed command. The value itself is serialised as `arguments` (when
/// [`Command::HAS_ARGUMENTS`]); the return value is decoded from the
/// validated [`RawJson`] (strings stay borrowed and escaped as
/// [`JsonStr`](crate::JsonStr), or use [`RawJson::parse`] with serde).
///
/// A command without arguments whose return value is read as [`RawJson`]
/// is one line with [`command!`](crate::command):
///
/// ```
/// qmp_core::command!(pub QueryKvm = "query-kvm");
/// # use qmp_core::client::Command;
/// assert_eq!(QueryKvm::NAME, "query-kvm");
/// ```
///
/// With arguments or a decoded return value, implement it by hand:
///
/// ```
/// use qmp_core::client::{Command, DecodeError};
/// use qmp_core::RawJson;
///
/// /// `query-kvm`, decoded.
/// #[derive(serde::Serialize)]
/// struct QueryKvm {}
/// impl Command for QueryKvm {
///     const NAME: &'static str = "query-kvm";
///     const HAS_ARGUMENTS: bool = false;
///     type Returns<'a> = (bool, bool);
///     fn decode_returns(v: RawJson<'_>) -> Result<(bool, bool), DecodeError> {
///         let b = |k| v.get(k).and_then(|x| x.as_bool()).ok_or(DecodeError::Missing(k));
///         Ok((b("enabled")?, b("present")?))
///     }
/// }
/// ```
pub trait Command: Serialize {
    /// The command name.
    const NAME: &'static str;
    /// Whether the command may be sent with `exec-oob`.
    const ALLOW_OOB: bool = false;
    /// Whether `arguments` is sent (false: the member is omitted).
    const HAS_ARGUMENTS: bool = true;
    /// The decoded return value.
    type Returns<'a>;
    /// Decodes the `return` value.
    ///
    /// # Errors
    /// A value of the wrong shape.
    fn decode_returns(value: RawJson<'_>) -> Result<Self::Returns<'_>, DecodeError>;
}

/// Declares a command without arguments: a unit struct implementing
/// [`Command`].
///
/// * `command!(pub Name = "wire-name");` — an in-band command whose return
///   value is the raw [`RawJson`];
/// * `command!(pub Name = "wire-name", oob);` — one that allows `exec-oob`;
/// * `command!(pub Name = "wire-name" -> Type = decode);` — the return
///   value decoded by `decode: fn(RawJson<'a>) -> Result<Type, DecodeError>`
///   (a `Type` that borrows the reply names its lifetime `'a`:
///   `-> StatusInfo<'a> = decode_status`).
///
/// Attributes (doc comments) may come first.
///
/// ```
/// use qmp_core::client::{Command, DecodeError};
/// use qmp_core::RawJson;
///
/// qmp_core::command!(
///     /// `query-name`
///     pub QueryName = "query-name"
/// );
/// qmp_core::command!(pub Yank = "query-yank", oob);
///
/// fn enabled(v: RawJson<'_>) -> Result<bool, DecodeError> {
///     v.get("enabled").and_then(|e| e.as_bool()).ok_or(DecodeError::Missing("enabled"))
/// }
/// qmp_core::command!(pub QueryKvm = "query-kvm" -> bool = enabled);
///
/// assert!(Yank::ALLOW_OOB && !QueryName::ALLOW_OOB);
/// let v = qmp_core::scan::validate(br#"{"enabled": true, "present": true}"#, Default::default()).unwrap();
/// assert_eq!(QueryKvm::decode_returns(v), Ok(true));
/// ```
#[macro_export]
macro_rules! command {
    ($(#[$meta:meta])* $vis:vis $name:ident = $wire:literal $(, $oob:ident)?
        -> $ret:ty = $decode:path) => {
        $crate::command!(@unit $(#[$meta])* $vis $name);

        impl $crate::client::Command for $name {
            const NAME: &'static str = $wire;
            const ALLOW_OOB: bool = $crate::command!(@oob $($oob)?);
            const HAS_ARGUMENTS: bool = false;
            type Returns<'a> = $ret;
            fn decode_returns(
                value: $crate::RawJson<'_>,
            ) -> Result<Self::Returns<'_>, $crate::client::DecodeError> {
                $decode(value)
            }
        }
    };
    ($(#[$meta:meta])* $vis:vis $name:ident = $wire:literal $(, $oob:ident)?) => {
        $crate::command!(@unit $(#[$meta])* $vis $name);

        impl $crate::client::Command for $name {
            const NAME: &'static str = $wire;
            const ALLOW_OOB: bool = $crate::command!(@oob $($oob)?);
            const HAS_ARGUMENTS: bool = false;
            type Returns<'a> = $crate::RawJson<'a>;
            fn decode_returns(
                value: $crate::RawJson<'_>,
            ) -> Result<$crate::RawJson<'_>, $crate::client::DecodeError> {
                Ok(value)
            }
        }
    };
    (@unit $(#[$meta:meta])* $vis:vis $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        $vis struct $name;

        impl $crate::__serde::Serialize for $name {
            fn serialize<S: $crate::__serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_unit()
            }
        }
    };
    (@oob oob) => { true };
    (@oob) => { false };
}
