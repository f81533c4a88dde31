//! Socket addresses for the agent runner and the client.

use std::fmt;
use std::path::PathBuf;

/// Where an agent listens or a client connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// A Unix-domain stream socket path.
    Unix(PathBuf),
    /// A TCP `HOST:PORT` (resolved when used; IPv6 as `[::1]:4444`).
    Tcp(String),
}

impl Address {
    /// A TCP address, checked for the `HOST:PORT` shape (numeric port).
    ///
    /// # Errors
    /// A one-line description when the text is not `HOST:PORT`.
    pub fn tcp(host_port: &str) -> Result<Address, String> {
        let (host, port) = host_port
            .rsplit_once(':')
            .ok_or_else(|| format!("'{host_port}' is not HOST:PORT"))?;
        if host.is_empty() {
            return Err(format!("'{host_port}' has no host"));
        }
        port.parse::<u16>()
            .map_err(|_| format!("'{port}' is not a valid port"))?;
        Ok(Address::Tcp(host_port.to_owned()))
    }

    /// A Unix socket path.
    pub fn unix(path: impl Into<PathBuf>) -> Address {
        Address::Unix(path.into())
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Unix(p) => write!(f, "unix:{}", p.display()),
            Address::Tcp(hp) => write!(f, "tcp:{hp}"),
        }
    }
}

/// A connected Unix or TCP socket: what the client, the guest-agent client
/// and the agent runner read and write.
#[derive(Debug)]
pub enum Stream {
    /// A Unix-domain socket.
    Unix(std::os::unix::net::UnixStream),
    /// A TCP socket.
    Tcp(std::net::TcpStream),
}

impl Stream {
    /// Another handle to the same socket.
    ///
    /// # Errors
    /// The system refused to duplicate the descriptor.
    pub fn try_clone(&self) -> std::io::Result<Stream> {
        Ok(match self {
            Stream::Unix(s) => Stream::Unix(s.try_clone()?),
            Stream::Tcp(s) => Stream::Tcp(s.try_clone()?),
        })
    }

    /// Shuts both directions down (errors ignored: the peer may be gone).
    pub fn shutdown(&self) {
        let _ = match self {
            Stream::Unix(s) => s.shutdown(std::net::Shutdown::Both),
            Stream::Tcp(s) => s.shutdown(std::net::Shutdown::Both),
        };
    }

    /// Shuts the writing half down (the peer reads end of stream after
    /// what was sent); errors are ignored.
    pub fn shutdown_write(&self) {
        let _ = match self {
            Stream::Unix(s) => s.shutdown(std::net::Shutdown::Write),
            Stream::Tcp(s) => s.shutdown(std::net::Shutdown::Write),
        };
    }
}

impl std::os::fd::AsFd for Stream {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match self {
            Stream::Unix(s) => s.as_fd(),
            Stream::Tcp(s) => s.as_fd(),
        }
    }
}

impl std::io::Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }
}

impl std::io::Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(buf),
            Stream::Tcp(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Unix(s) => s.flush(),
            Stream::Tcp(s) => s.flush(),
        }
    }
}
