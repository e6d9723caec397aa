//! An ICAP connection and the reads and writes of an exchange on it. The send and read
//! timeouts are the transport's ([`TimedIo`]), as for the HTTP scan protocol: a read is timed
//! once the clock is armed (everything to send before the answer was handed over), a write
//! whenever it waits.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use std::pin::Pin;
use std::task::Poll;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::body::{BodyReader, Piece};
use crate::icap::codec::{self as icap, IcapHead};
pub(super) use crate::net::exchange::{io_error, read_more, write_all};
use crate::net::peer::PeerAddr;
use crate::net::timed_io::{IoClock, TimedIo};
use crate::net::transport::{self, BoxIo};
use crate::scan::{Failed, ScanError, ScanOptions};

/// A connection with its timers and the bytes read past the last answer.
pub(super) struct IcapConn {
    pub stream: TimedIo<BoxIo>,
    pub clock: Arc<IoClock>,
    pub buf: BytesMut,
}

pub(super) async fn connect(addr: &PeerAddr, opts: &ScanOptions) -> Result<IcapConn, ScanError> {
    let stream = transport::connect(addr, opts.timeouts.connect, opts.tls.as_deref()).await?;
    let clock = IoClock::new();
    Ok(IcapConn {
        stream: TimedIo::new(stream, clock.clone()),
        clock,
        buf: BytesMut::with_capacity(16 * 1024),
    })
}

/// Nothing of an answer arrived yet: another server may take the scan.
pub(super) fn before_answer_or_final(e: ScanError, buf: &BytesMut) -> Failed {
    if buf.is_empty() && e.is_connection_loss() {
        Failed::BeforeAnswer(e)
    } else {
        Failed::Final(e)
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

/// What is queued to be sent: bytes, or a range of a file (sent with `sendfile`).
pub(super) enum Out {
    Bytes(Bytes),
    File {
        file: Arc<std::fs::File>,
        offset: u64,
        left: u64,
    },
}

/// Largest range handed to one `sendfile` call.
const SENDFILE_MAX: u64 = 1 << 30;

/// Queues one chunk of body data.
pub(super) fn push_chunk(out: &mut VecDeque<Out>, data: Bytes) {
    out.push_back(Out::Bytes(Bytes::from(crate::icap::chunked::chunk_header(
        data.len(),
    ))));
    out.push_back(Out::Bytes(data));
    out.push_back(Out::Bytes(Bytes::from_static(b"\r\n")));
}

/// Queues one piece of the body as a chunk.
fn push_piece(out: &mut VecDeque<Out>, piece: Piece) {
    match piece {
        Piece::Bytes(b) => push_chunk(out, b),
        Piece::File { file, offset, len } => {
            let header = format!("{len:x}\r\n");
            out.push_back(Out::Bytes(Bytes::from(header)));
            out.push_back(Out::File {
                file,
                offset,
                left: len,
            });
            out.push_back(Out::Bytes(Bytes::from_static(b"\r\n")));
        }
    }
}

/// One step of sending: a read that completed (an answer arriving), or a write.
enum Step {
    Read(io::Result<usize>),
    Wrote(io::Result<usize>),
}

/// Sends what is queued in `out` (refilled as chunks from `body`, then the last chunk), while
/// watching for an answer. Returns the answer head if a final one arrived before all was sent.
/// On plain TCP, file parts of the body go with `sendfile`.
pub(super) async fn send_watching(
    stream: &mut TimedIo<BoxIo>,
    buf: &mut BytesMut,
    out: &mut VecDeque<Out>,
    mut body: Option<&mut BodyReader>,
    clock: &IoClock,
) -> Result<Option<IcapHead>, Failed> {
    let files = stream.sends_files();
    let mut finished_body = body.is_none();
    loop {
        if out.is_empty() {
            if finished_body {
                return Ok(None);
            }
            match body.as_mut().and_then(|b| b.next_piece(files)) {
                Some(Ok(piece)) => push_piece(out, piece),
                Some(Err(e)) => return Err(Failed::Final(ScanError::Body(e))),
                None => {
                    out.push_back(Out::Bytes(Bytes::from_static(b"0\r\n\r\n")));
                    finished_body = true;
                }
            }
            continue;
        }
        let Some(front) = out.front_mut() else {
            continue;
        };
        let step = std::future::poll_fn(|cx| {
            // An answer first (biased): a block may come while the body is still going out.
            let mut tmp = [0u8; 4096];
            let mut rb = ReadBuf::new(&mut tmp);
            if let Poll::Ready(r) = Pin::new(&mut *stream).poll_read(cx, &mut rb) {
                let n = rb.filled().len();
                buf.extend_from_slice(rb.filled());
                return Poll::Ready(Step::Read(r.map(|()| n)));
            }
            let w = match front {
                Out::Bytes(b) => Pin::new(&mut *stream).poll_write(cx, b),
                Out::File { file, offset, left } => Pin::new(&mut *stream).poll_sendfile(
                    cx,
                    file,
                    offset,
                    (*left).min(SENDFILE_MAX) as usize,
                ),
            };
            w.map(Step::Wrote)
        })
        .await;
        match step {
            Step::Read(r) => {
                if let Some(head) = early_answer(r, buf, clock)? {
                    return Ok(Some(head));
                }
            }
            Step::Wrote(Err(e)) => return Err(before_answer_or_final(io_error(e, clock), buf)),
            Step::Wrote(Ok(n)) => {
                if wrote(front, n)? {
                    out.pop_front();
                }
            }
        }
    }
}

/// Accounts for `n` bytes written of `front`; true when it is all sent.
fn wrote(front: &mut Out, n: usize) -> Result<bool, Failed> {
    match front {
        Out::Bytes(_) if n == 0 => Err(Failed::Final(ScanError::Closed)),
        Out::Bytes(b) => {
            b.advance(n);
            Ok(b.is_empty())
        }
        // The file ends before nginx said it would: the body is broken, never sent short.
        Out::File { .. } if n == 0 => Err(Failed::Final(ScanError::Body(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "request body file is shorter than expected",
        )))),
        Out::File { left, .. } => {
            *left -= n as u64;
            Ok(*left == 0)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::{BodyPart, RequestBody};
    use std::io::Write;
    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpStream};

    /// A file part of `len` bytes over a file holding `data`.
    fn file_body(data: &[u8], len: u64) -> RequestBody {
        let mut f = crate::body::testing::temp_file();
        f.write_all(data).unwrap();
        let mut b = RequestBody::new();
        b.push(BodyPart::File {
            file: Arc::new(f),
            offset: 0,
            len,
        });
        b
    }

    /// Sends `body` as chunks over a plain TCP connection; returns what was sent (or the
    /// failure) and what the peer received.
    async fn send(body: &RequestBody) -> (Result<Option<IcapHead>, Failed>, Vec<u8>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let peer = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut got = Vec::new();
            let _ = s.read_to_end(&mut got).await;
            got
        });
        let tcp = TcpStream::connect(addr).await.unwrap();
        let clock = IoClock::new();
        clock.begin(
            std::time::Duration::from_secs(5),
            std::time::Duration::from_secs(5),
        );
        let mut stream = TimedIo::new(Box::new(tcp) as BoxIo, clock.clone());
        assert!(stream.sends_files());
        let mut reader = body.reader(crate::body::FILE_CHUNK);
        let mut out = VecDeque::new();
        let mut buf = BytesMut::new();
        let r = send_watching(&mut stream, &mut buf, &mut out, Some(&mut reader), &clock).await;
        drop(stream);
        (r, peer.await.unwrap())
    }

    #[tokio::test]
    async fn a_file_part_goes_out_as_one_chunk_byte_for_byte() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let (r, got) = send(&file_body(&data, data.len() as u64)).await;
        assert!(matches!(r, Ok(None)));
        let mut want = format!("{:x}\r\n", data.len()).into_bytes();
        want.extend_from_slice(&data);
        want.extend_from_slice(b"\r\n0\r\n\r\n");
        assert!(
            got == want,
            "{} bytes received, {} expected",
            got.len(),
            want.len()
        );
    }

    #[tokio::test]
    async fn a_file_shorter_than_its_part_fails_the_scan_and_is_never_finished() {
        let (r, got) = send(&file_body(&[7u8; 1000], 5000)).await;
        assert!(
            matches!(r, Err(Failed::Final(ScanError::Body(_)))),
            "{:?}",
            r.err().map(|f| f.into_error())
        );
        assert!(!got.ends_with(b"0\r\n\r\n"), "no last chunk");
    }
}
