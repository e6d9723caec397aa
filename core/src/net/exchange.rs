//! Reads and writes of one exchange with a scanner under the transport's timers
//! ([`TimedIo`](super::timed_io::TimedIo)): an I/O error told apart from the timer that caused
//! it, a whole write, a read of more bytes.

use std::io;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::net::timed_io::{Fired, IoClock};
use crate::scan::ScanError;

/// An I/O error of the transport, told apart from the timers that caused it.
pub(crate) fn io_error(e: io::Error, clock: &IoClock) -> ScanError {
    match clock.fired() {
        Fired::Send => ScanError::SendTimeout,
        Fired::Read => ScanError::ReadTimeout,
        _ => ScanError::Io(e),
    }
}

pub(crate) async fn write_all<W: AsyncWrite + Unpin>(
    w: &mut W,
    data: &[u8],
    clock: &IoClock,
) -> Result<(), ScanError> {
    w.write_all(data).await.map_err(|e| {
        if e.kind() == io::ErrorKind::WriteZero {
            ScanError::Closed
        } else {
            io_error(e, clock)
        }
    })
}

/// Reads more bytes; 0 bytes (the server closed) is an error here.
pub(crate) async fn read_more<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut BytesMut,
    clock: &IoClock,
) -> Result<(), ScanError> {
    buf.reserve(64 * 1024);
    match r.read_buf(buf).await {
        Err(e) => Err(io_error(e, clock)),
        Ok(0) => Err(ScanError::Closed),
        Ok(_) => Ok(()),
    }
}
