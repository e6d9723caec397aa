//! An ICAP connection and the reads and writes of an exchange on it. The send and read
//! timeouts are the transport's ([`TimedIo`]), as for the HTTP scan protocol: a read is timed
//! once the clock is armed (everything to send before the answer was handed over), a write
//! whenever it waits.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::body::BodyReader;
use crate::icap::codec::{self as icap, IcapHead};
use crate::net::timed_io::{Fired, IoClock, TimedIo};
use crate::net::transport::{self, BoxIo};
use crate::scan::{Failed, ScanError, ScanOptions};

/// A connection with its timers and the bytes read past the last answer.
pub(super) struct IcapConn {
    pub stream: TimedIo<BoxIo>,
    pub clock: Arc<IoClock>,
    pub buf: BytesMut,
}

pub(super) async fn connect(addr: SocketAddr, opts: &ScanOptions) -> Result<IcapConn, ScanError> {
    let stream = transport::connect(addr, opts.timeouts.connect, opts.tls.as_deref()).await?;
    let clock = IoClock::new();
    Ok(IcapConn {
        stream: TimedIo::new(stream, clock.clone()),
        clock,
        buf: BytesMut::with_capacity(16 * 1024),
    })
}

/// An I/O error of the transport, told apart from the timers that caused it.
pub(super) fn io_error(e: io::Error, clock: &IoClock) -> ScanError {
    match clock.fired() {
        Fired::Send => ScanError::SendTimeout,
        Fired::Read => ScanError::ReadTimeout,
        _ => ScanError::Io(e),
    }
}

/// Nothing of an answer arrived yet: another server may take the scan.
pub(super) fn before_answer_or_final(e: ScanError, buf: &BytesMut) -> Failed {
    if buf.is_empty() && e.is_connection_loss() {
        Failed::BeforeAnswer(e)
    } else {
        Failed::Final(e)
    }
}

pub(super) async fn write_all<W: AsyncWrite + Unpin>(
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
pub(super) async fn read_more<R: AsyncRead + Unpin>(
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

pub(super) async fn read_head<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut BytesMut,
    clock: &IoClock,
) -> Result<IcapHead, ScanError> {
    loop {
        if let Some((head, used)) = icap::parse_head(buf)? {
            buf.advance(used);
            return Ok(head);
        }
        read_more(r, buf, clock).await?;
    }
}

pub(super) async fn read_exact_into<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    n: usize,
    clock: &IoClock,
) -> Result<(), ScanError> {
    while buf.len() < n {
        read_more(rd, buf, clock).await?;
    }
    Ok(())
}

/// Queues one chunk of body data.
pub(super) fn push_chunk(out: &mut VecDeque<Bytes>, data: Bytes) {
    out.push_back(Bytes::from(icap::chunk_header(data.len())));
    out.push_back(data);
    out.push_back(Bytes::from_static(b"\r\n"));
}

/// Sends what is queued in `out` (refilled as chunks from `body`, then the last chunk), while
/// watching for an answer. Returns the answer head if a final one arrived before all was sent.
pub(super) async fn send_watching<R, W>(
    rd: &mut R,
    wr: &mut W,
    buf: &mut BytesMut,
    out: &mut VecDeque<Bytes>,
    mut body: Option<&mut BodyReader>,
    clock: &IoClock,
) -> Result<Option<IcapHead>, Failed>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut finished_body = body.is_none();
    loop {
        if out.is_empty() {
            if finished_body {
                return Ok(None);
            }
            match body.as_mut().and_then(|b| b.next_chunk()) {
                Some(Ok(c)) => push_chunk(out, c),
                Some(Err(e)) => return Err(Failed::Final(ScanError::Body(e))),
                None => {
                    out.push_back(Bytes::from_static(b"0\r\n\r\n"));
                    finished_body = true;
                }
            }
            continue;
        }
        let Some(front) = out.front_mut() else {
            continue;
        };
        buf.reserve(16 * 1024);
        tokio::select! {
            biased;
            r = rd.read_buf(buf) => {
                if let Some(head) = early_answer(r, buf, clock)? {
                    return Ok(Some(head));
                }
            }
            w = wr.write(front) => match w {
                Err(e) => return Err(before_answer_or_final(io_error(e, clock), buf)),
                Ok(0) => return Err(Failed::Final(ScanError::Closed)),
                Ok(n) => {
                    front.advance(n);
                    if front.is_empty() {
                        out.pop_front();
                    }
                }
            },
        }
    }
}

/// What a read while sending brought: a final answer head, or nothing yet.
fn early_answer(
    r: io::Result<usize>,
    buf: &mut BytesMut,
    clock: &IoClock,
) -> Result<Option<IcapHead>, Failed> {
    let n = r.map_err(|e| before_answer_or_final(io_error(e, clock), buf))?;
    match icap::parse_head(buf) {
        Ok(Some((head, used))) => {
            buf.advance(used);
            if head.status == 100 {
                return Err(Failed::Final(ScanError::Protocol(
                    "unexpected 100 Continue".into(),
                )));
            }
            Ok(Some(head))
        }
        Ok(None) if n == 0 => Err(before_answer_or_final(ScanError::Closed, buf)),
        Ok(None) => Ok(None),
        Err(_) if n == 0 => Err(before_answer_or_final(ScanError::Closed, buf)),
        Err(e) => Err(Failed::Final(e.into())),
    }
}
