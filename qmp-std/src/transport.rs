//! What the clients run over: the [`Transport`] trait (a byte stream whose
//! reads and writes can time out), its implementations for Unix and TCP
//! sockets and, through [`FdTransport`], any file descriptor (a pty, a
//! serial port, a virtio-serial port opened as a file); and connecting with
//! retries within a deadline.

use crate::addr::{Address, Stream};
use crate::{Config, Error};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// A byte stream the client can run over.
///
/// `set_read_timeout` must make a blocked `read` return
/// [`io::ErrorKind::WouldBlock`] or [`io::ErrorKind::TimedOut`] after the
/// given time: that is how per-call timeouts pre-empt a hung peer.
pub trait Transport: Read + Write {
    /// Limits how long one `read` blocks (`None`: forever).
    ///
    /// # Errors
    /// The transport's error.
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()>;

    /// Limits how long one `write` blocks (`None`: forever).
    ///
    /// # Errors
    /// The transport's error.
    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let _ = timeout;
        Ok(())
    }

    /// Whether [`Transport::send_with_fds`] works (Unix sockets).
    fn supports_fds(&self) -> bool {
        false
    }

    /// Sends `bytes` with `fds` attached; returns the bytes sent (the rest
    /// goes out with `write`).
    ///
    /// # Errors
    /// `Unsupported` unless the transport is a Unix socket.
    fn send_with_fds(&mut self, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<usize> {
        let _ = (bytes, fds);
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "file descriptor passing needs a Unix socket",
        ))
    }
}

impl Transport for UnixStream {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        UnixStream::set_read_timeout(self, timeout)
    }
    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        UnixStream::set_write_timeout(self, timeout)
    }
    fn supports_fds(&self) -> bool {
        true
    }
    fn send_with_fds(&mut self, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<usize> {
        crate::fd::send_with_fds(&*self, bytes, fds)
    }
}

impl Transport for TcpStream {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }
    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_write_timeout(self, timeout)
    }
}

impl Transport for Stream {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Unix(s) => UnixStream::set_read_timeout(s, timeout),
            Stream::Tcp(s) => TcpStream::set_read_timeout(s, timeout),
        }
    }
    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Unix(s) => UnixStream::set_write_timeout(s, timeout),
            Stream::Tcp(s) => TcpStream::set_write_timeout(s, timeout),
        }
    }
    fn supports_fds(&self) -> bool {
        matches!(self, Stream::Unix(_))
    }
    fn send_with_fds(&mut self, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => crate::fd::send_with_fds(&*s, bytes, fds),
            Stream::Tcp(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "file descriptor passing needs a Unix socket",
            )),
        }
    }
}

/// Any readable, writable file descriptor (a pty, a serial port, a pipe
/// pair's fd…) with timeouts implemented by `poll(2)`.
#[derive(Debug)]
pub struct FdTransport<T> {
    inner: T,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
}

impl<T> FdTransport<T> {
    /// Wraps `inner`.
    pub fn new(inner: T) -> Self {
        FdTransport {
            inner,
            read_timeout: None,
            write_timeout: None,
        }
    }

    /// Gives `inner` back.
    pub fn into_inner(self) -> T {
        self.inner
    }
}

fn wait_fd(
    fd: BorrowedFd<'_>,
    flags: rustix::event::PollFlags,
    t: Option<Duration>,
) -> io::Result<()> {
    let Some(t) = t else { return Ok(()) };
    let ts = rustix::event::Timespec {
        tv_sec: i64::try_from(t.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: t.subsec_nanos().into(),
    };
    loop {
        let mut fds = [rustix::event::PollFd::new(&fd, flags)];
        match rustix::event::poll(&mut fds, Some(&ts)) {
            Ok(0) => return Err(io::ErrorKind::TimedOut.into()),
            Ok(_) => return Ok(()),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

impl<T: Read + AsFd> Read for FdTransport<T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        wait_fd(
            self.inner.as_fd(),
            rustix::event::PollFlags::IN,
            self.read_timeout,
        )?;
        self.inner.read(buf)
    }
}

impl<T: Write + AsFd> Write for FdTransport<T> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        wait_fd(
            self.inner.as_fd(),
            rustix::event::PollFlags::OUT,
            self.write_timeout,
        )?;
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<T: Read + Write + AsFd> Transport for FdTransport<T> {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.read_timeout = timeout;
        Ok(())
    }
    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.write_timeout = timeout;
        Ok(())
    }
}

fn is_retryable(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
    )
}

/// Whether a connect failed only because the listener's backlog is full (a
/// Unix socket whose server serves another client, as QEMU's monitor
/// does): tried again until the deadline, whatever
/// [`Config::retry_connect`] says — a blocking connect would wait for it
/// in the kernel.
pub(crate) fn is_busy(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

/// The error of a connect still refused (busy, missing, refusing) at the
/// deadline.
pub(crate) fn connect_error(address: &Address, cfg: &Config, source: io::Error) -> Error {
    let source = if is_busy(&source) {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "not accepted within {} (the server's backlog is full: is it busy with another client?)",
                crate::error::secs(cfg.connect_timeout)
            ),
        )
    } else {
        source
    };
    Error::Connect {
        address: address.to_string(),
        source,
    }
}

/// Whether to try a failed connect again (after a pause) while time is
/// left.
pub(crate) fn should_retry(e: &io::Error, cfg: &Config) -> bool {
    is_busy(e) || (cfg.retry_connect && is_retryable(e))
}

/// The pause before the next connect attempt (doubling from 5 ms to
/// 100 ms).
pub(crate) fn backoff(previous: Option<Duration>) -> Duration {
    previous.map_or(Duration::from_millis(5), |b| {
        (b * 2).min(Duration::from_millis(100))
    })
}

/// A non-blocking Unix-socket connect: it completes at once, or fails —
/// with `WouldBlock` when the listener's backlog is full, where a blocking
/// connect would wait in the kernel for as long as the server takes to
/// accept (forever, for a QEMU monitor serving another client).
pub(crate) fn connect_unix_nonblocking(path: &Path) -> io::Result<UnixStream> {
    use rustix::net::{socket_with, AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let fd = socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?;
    rustix::net::connect(&fd, &SocketAddrUnix::new(path)?)?;
    Ok(UnixStream::from(fd))
}

/// Connects to `address` and runs `handshake` on the stream, all within
/// [`Config::connect_timeout`].
pub(crate) fn open<C>(
    address: &Address,
    cfg: Config,
    handshake: impl FnOnce(Stream, Config, Instant) -> Result<C, Error>,
) -> Result<C, Error> {
    let deadline = Instant::now() + cfg.connect_timeout;
    let stream = connect(address, &cfg, deadline)?;
    handshake(stream, cfg, deadline)
}

/// Connects to `address` by the deadline, retrying while the socket is
/// missing or refuses (QEMU creates the socket file before it listens)
/// when [`Config::retry_connect`] says so, and while a Unix socket's
/// backlog is full.
fn connect(address: &Address, cfg: &Config, deadline: Instant) -> Result<Stream, Error> {
    let retry = |attempt: &mut dyn FnMut(Duration) -> io::Result<Stream>| {
        let mut pause = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match attempt(left.max(Duration::from_millis(1))) {
                Ok(s) => return Ok(s),
                Err(e) if should_retry(&e, cfg) && !left.is_zero() => {
                    let b = backoff(pause);
                    pause = Some(b);
                    std::thread::sleep(b.min(left));
                }
                Err(source) => return Err(connect_error(address, cfg, source)),
            }
        }
    };
    match address {
        Address::Unix(path) => {
            let s = retry(&mut |_| connect_unix_nonblocking(path).map(Stream::Unix))?;
            if let Stream::Unix(u) = &s {
                u.set_nonblocking(false).map_err(Error::Io)?;
            }
            Ok(s)
        }
        Address::Tcp(host_port) => {
            let addr = crate::agent::resolve(host_port).map_err(|source| Error::Connect {
                address: address.to_string(),
                source,
            })?;
            let s = retry(&mut |left| TcpStream::connect_timeout(&addr, left).map(Stream::Tcp))?;
            if let Stream::Tcp(t) = &s {
                let _ = t.set_nodelay(true);
            }
            Ok(s)
        }
    }
}
