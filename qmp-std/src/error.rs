//! The one error vocabulary of the QMP client ([`crate::client`]) and the
//! guest-agent client ([`crate::qga`]): [`Error`], with [`QmpError`] for an
//! error reply of the peer and [`Handshake`] for the step that opens a
//! session.

use std::fmt;
use std::io;
use std::time::Duration;

/// An error reply from a QMP server or guest agent:
/// `{"error": {"class": …, "desc": …}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QmpError {
    /// The error class (`GenericError`, `CommandNotFound`, …; any class a
    /// newer peer sends is kept as it came).
    pub class: String,
    /// The description, unescaped.
    pub desc: String,
}

impl fmt::Display for QmpError {
    /// `CLASS: DESC`, as the `qmp` tool prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.class, self.desc)
    }
}

impl std::error::Error for QmpError {}

/// The step that opens a session: the QMP greeting and capabilities
/// negotiation, or the guest-agent sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Handshake {
    /// QMP: the server's greeting.
    Greeting,
    /// QMP: the reply to `qmp_capabilities`.
    Capabilities,
    /// Guest agent: the reply to `guest-sync-delimited`.
    Sync,
}

/// Why a call of a client failed. A QMP error reply is [`Error::Qmp`]
/// ([`Error::is_qmp`]); everything else is a failure of the connection,
/// the peer or the request.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The peer answered the command with an error.
    Qmp(QmpError),
    /// Could not connect.
    Connect {
        /// Where to.
        address: String,
        /// Why.
        source: io::Error,
    },
    /// The handshake did not complete within its time (the connect timeout,
    /// or the guest-agent sync timeout).
    HandshakeTimeout {
        /// What was waited for.
        step: Handshake,
        /// The time allowed.
        after: Duration,
    },
    /// The peer answered the handshake with an error (`qmp_capabilities`,
    /// or the guest-agent sync, failed).
    HandshakeRefused {
        /// Which step.
        step: Handshake,
        /// The peer's error.
        error: QmpError,
    },
    /// No reply within the call's timeout. The connection stays usable; a
    /// late reply is reported as a
    /// [`Notice::Unmatched`](crate::client::Notice::Unmatched) (the guest
    /// agent syncs again before the next command).
    Timeout {
        /// The command.
        command: String,
        /// The timeout.
        after: Duration,
    },
    /// The peer closed the connection (before answering `command`).
    Disconnected {
        /// The command waiting for a reply, if any.
        command: Option<String>,
    },
    /// The connection was closed earlier; nothing more can be sent.
    Closed,
    /// The transport failed; the connection is unusable.
    Io(io::Error),
    /// The reply was larger than
    /// [`Config::max_message`](crate::Config::max_message); it was skipped
    /// and the session goes on.
    Oversized {
        /// The command.
        command: String,
        /// The reply's size in bytes.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The return value did not deserialize into the requested type.
    Decode {
        /// The command.
        command: String,
        /// serde_json's error.
        source: serde_json::Error,
    },
    /// The arguments are not one JSON object.
    Arguments(String),
    /// The client's schema ([`Client::check_with`](crate::client::Client::check_with))
    /// rejected the call before it was sent; `error` is what the server
    /// would have answered (QEMU's class and text). Nothing was sent.
    Rejected {
        /// The command.
        command: String,
        /// The server's answer, predicted.
        error: QmpError,
    },
    /// The request cannot be sent this way (e.g. `exec-oob` without `oob`
    /// negotiated or to a guest agent, or file descriptors over TCP).
    Unsupported(String),
    /// The peer does not speak the protocol (e.g. a first message that is
    /// not a QMP greeting, or a QMP monitor where a guest agent was
    /// expected).
    Protocol(String),
}

impl Error {
    /// Whether this is an error reply of the peer to the command
    /// ([`Error::Qmp`]).
    pub fn is_qmp(&self) -> bool {
        matches!(self, Error::Qmp(_))
    }

    /// The peer's error reply to the command, if this is one.
    pub fn qmp(&self) -> Option<&QmpError> {
        match self {
            Error::Qmp(e) => Some(e),
            _ => None,
        }
    }

    /// Whether the connection is gone ([`Error::Disconnected`],
    /// [`Error::Closed`]).
    pub fn is_closed(&self) -> bool {
        matches!(self, Error::Disconnected { .. } | Error::Closed)
    }
}

/// `0.3 s`, `10 s`, `1.25 s`.
pub(crate) fn secs(d: Duration) -> String {
    let s = format!("{:.3}", d.as_secs_f64());
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s} s")
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Qmp(e) => write!(f, "{e}"),
            Error::Connect { address, source } => {
                write!(f, "cannot connect to {address}: {source}")
            }
            Error::HandshakeTimeout { step, after } => {
                let after = secs(*after);
                match step {
                    Handshake::Greeting => {
                        write!(f, "no QMP greeting within {after} (not a QMP monitor, or one busy with another client)")
                    }
                    Handshake::Capabilities => {
                        write!(f, "no reply to qmp_capabilities within {after}")
                    }
                    Handshake::Sync => write!(
                        f,
                        "no reply to the guest-agent sync within {after} (is this a guest agent?)"
                    ),
                }
            }
            Error::HandshakeRefused { step, error } => match step {
                Handshake::Sync => write!(f, "the guest agent refused the sync: {error}"),
                _ => write!(f, "capabilities negotiation failed: {error}"),
            },
            Error::Timeout { command, after } => write!(
                f,
                "timed out after {} waiting for the reply to '{command}'",
                secs(*after)
            ),
            Error::Disconnected { command: Some(c) } => {
                write!(f, "connection closed by the peer before the reply to '{c}'")
            }
            Error::Disconnected { command: None } => f.write_str("connection closed by the peer"),
            Error::Closed => f.write_str("the connection is closed"),
            Error::Io(e) => write!(f, "connection failed: {e}"),
            Error::Oversized {
                command,
                len,
                limit,
            } => write!(
                f,
                "the reply to '{command}' is {len} bytes, over the {limit}-byte limit"
            ),
            Error::Decode { command, source } => {
                write!(f, "unexpected return value of '{command}': {source}")
            }
            Error::Arguments(e) => write!(f, "bad arguments: {e}"),
            Error::Rejected { error, .. } => write!(f, "rejected before sending: {error}"),
            Error::Unsupported(e) => f.write_str(e),
            Error::Protocol(e) => write!(f, "protocol error: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Qmp(e)
            | Error::HandshakeRefused { error: e, .. }
            | Error::Rejected { error: e, .. } => Some(e),
            Error::Connect { source, .. } | Error::Io(source) => Some(source),
            Error::Decode { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<QmpError> for Error {
    fn from(e: QmpError) -> Self {
        Error::Qmp(e)
    }
}
