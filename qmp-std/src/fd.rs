//! File-descriptor passing over Unix sockets (`SCM_RIGHTS`), as QEMU's
//! `getfd` and `add-fd` expect: the descriptors ride on the same `sendmsg`
//! as (the first bytes of) the command that names them.
//!
//! This is independent of the `oob` capability (go-qemu wrongly ties the
//! two together).

use rustix::net::{sendmsg, SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd};

/// Most descriptors one message may carry (Linux's `SCM_MAX_FD` is 253).
pub const MAX_FDS: usize = 253;

/// Sends `bytes` with `fds` attached (`SCM_RIGHTS`) on the Unix stream
/// socket `socket`; returns how many bytes went out (at least one, unless
/// `bytes` is empty). The descriptors are attached to the first byte: write
/// the rest with an ordinary `write_all`. Retries on `EINTR`; never raises
/// `SIGPIPE`.
///
/// # Errors
/// `InvalidInput` for an empty `bytes` with descriptors, or more than
/// [`MAX_FDS`] descriptors; otherwise the `sendmsg` error.
pub fn send_with_fds(socket: impl AsFd, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<usize> {
    if fds.len() > MAX_FDS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("at most {MAX_FDS} file descriptors per message"),
        ));
    }
    if bytes.is_empty() && !fds.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "file descriptors need at least one byte to ride on",
        ));
    }
    let mut space = vec![MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(fds.len()))];
    let iov = [IoSlice::new(bytes)];
    loop {
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
            return Err(io::Error::other("control message buffer too small"));
        }
        match sendmsg(socket.as_fd(), &iov, &mut control, SendFlags::NOSIGNAL) {
            Ok(n) => return Ok(n),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}
