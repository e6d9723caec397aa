//! `sendfile(2)` from a file to a plain TCP connection: the bytes of a request body kept in
//! nginx's temp file go from the page cache to the socket without passing through user memory.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::task::{Context, Poll};

use tokio::io::Interest;
use tokio::net::TcpStream;

/// One `sendfile` of at most `len` bytes of `file` from `*offset`, when the socket can take
/// them; `*offset` moves past what was sent.
pub fn poll_sendfile(
    tcp: &TcpStream,
    cx: &mut Context<'_>,
    file: &File,
    offset: &mut u64,
    len: usize,
) -> Poll<io::Result<usize>> {
    loop {
        if let Err(e) = std::task::ready!(tcp.poll_write_ready(cx)) {
            return Poll::Ready(Err(e));
        }
        let sent = tcp.try_io(Interest::WRITABLE, || {
            let mut off = libc::off_t::try_from(*offset)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))?;
            // SAFETY: both descriptors are open for the call (the socket and the file are
            // borrowed); the kernel writes only `off`, a local.
            let n = unsafe { libc::sendfile(tcp.as_raw_fd(), file.as_raw_fd(), &mut off, len) };
            usize::try_from(n).map_err(|_| io::Error::last_os_error())
        });
        match sent {
            Ok(n) => {
                *offset += n as u64;
                return Poll::Ready(Ok(n));
            }
            // Readiness was stale: wait again.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Poll::Ready(Err(e)),
        }
    }
}
