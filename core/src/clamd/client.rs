//! The clamd client of a worker: one `zINSTREAM` exchange per object on a fresh connection
//! (clamd closes a connection after its reply outside a session), and the database version
//! per server, asked again when older than the cache's revalidation time.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::body::FILE_CHUNK;
use crate::clamd::fildes;
use crate::clamd::reply::{self, Reply};
use crate::net::exchange::{io_error, read_more, write_all};
use crate::net::peer::PeerAddr;
use crate::net::timed_io::{IoClock, TimedIo};
use crate::net::transport::{self, BoxIo};
use crate::scan::{Failed, ResponsePage, ScanError, ScanOptions, ScanRequest, Verdict};

/// The end of an `INSTREAM` stream: a chunk of length 0.
const END_OF_STREAM: [u8; 4] = [0; 4];

/// The per-worker clamd client.
#[derive(Default)]
pub struct ClamdClient {
    /// Each server's database version and when it was asked.
    versions: Mutex<HashMap<PeerAddr, (String, Instant)>>,
}

/// A connection with its timers and the bytes read so far.
struct Conn {
    stream: TimedIo<BoxIo>,
    clock: Arc<IoClock>,
    buf: BytesMut,
}

async fn connect(addr: &PeerAddr, opts: &ScanOptions) -> Result<Conn, ScanError> {
    let stream = transport::connect(addr, opts.timeouts.connect, None).await?;
    let clock = IoClock::new();
    clock.begin(opts.timeouts.send, opts.timeouts.read);
    Ok(Conn {
        stream: TimedIo::new(stream, clock.clone()),
        clock,
        buf: BytesMut::with_capacity(reply::MAX_REPLY + 1),
    })
}

fn protocol(e: reply::ReplyError) -> ScanError {
    ScanError::Protocol(e.to_string())
}

impl ClamdClient {
    /// One attempt on the server at `addr`.
    pub(crate) async fn scan_one(
        &self,
        addr: &PeerAddr,
        req: &ScanRequest,
        opts: &ScanOptions,
    ) -> Result<Verdict, Failed> {
        let file = match addr {
            PeerAddr::Local(path) if opts.clamd_fildes => {
                fildes::file_of(&req.body).map(|f| (path, f))
            }
            _ => None,
        };
        let (reply, whole) = match file {
            Some((path, copy)) => {
                let file = copy.file().ok_or(Failed::Final(ScanError::Internal))?;
                (fildes::scan(path, file, opts).await?, true)
            }
            None => {
                let mut conn = connect(addr, opts).await.map_err(Failed::BeforeAnswer)?;
                let sent = instream(&mut conn, req).await;
                conn.clock.end();
                let Sent { text, whole } = sent?;
                tracing::debug!("clamd answered \"{text}\", whole stream sent: {whole}");
                let reply = reply::instream_reply(&text).map_err(|e| Failed::Final(protocol(e)))?;
                (reply, whole)
            }
        };
        match reply {
            // A scanner that did not see everything cannot call it clean.
            Reply::Clean if !whole => Err(Failed::Final(ScanError::Protocol(
                "clamd answered OK before it had the whole stream".into(),
            ))),
            Reply::Clean => Ok(Verdict::Allowed),
            Reply::Found(threat) => Ok(Verdict::Blocked {
                page: block_page(&threat, req.response.is_some()),
                threat: Some(threat),
            }),
            Reply::SizeLimit => Err(Failed::Final(ScanError::over_limit(
                "the body is over clamd's StreamMaxLength",
            ))),
            Reply::Error(e) => Err(Failed::Final(ScanError::Protocol(format!(
                "clamd could not scan: {e}"
            )))),
        }
    }

    /// The database version of the server at `addr` (asked again when older than `max_age`);
    /// `None` when it does not answer.
    pub(crate) async fn version(
        &self,
        addr: &PeerAddr,
        opts: &ScanOptions,
        max_age: Duration,
    ) -> Option<String> {
        let known = |versions: &HashMap<PeerAddr, (String, Instant)>| {
            versions
                .get(addr)
                .filter(|(_, at)| at.elapsed() < max_age)
                .map(|(v, _)| v.clone())
        };
        if let Some(v) = known(&self.versions.lock().unwrap_or_else(|e| e.into_inner())) {
            return Some(v);
        }
        match ask_version(addr, opts).await {
            Ok(v) => {
                let mut versions = self.versions.lock().unwrap_or_else(|e| e.into_inner());
                versions.insert(addr.clone(), (v.clone(), Instant::now()));
                Some(v)
            }
            Err(e) => {
                tracing::warn!("clamd {addr} did not tell its version: {e}");
                None
            }
        }
    }
}

async fn ask_version(addr: &PeerAddr, opts: &ScanOptions) -> Result<String, ScanError> {
    let mut conn = connect(addr, opts).await?;
    write_all(&mut conn.stream, b"zVERSION\0", &conn.clock).await?;
    conn.clock.arm_read();
    let text = read_reply(&mut conn).await;
    conn.clock.end();
    reply::version_reply(&text?)
        .map(str::to_string)
        .map_err(protocol)
}

/// Reads until a whole reply is in the buffer.
async fn read_reply(conn: &mut Conn) -> Result<String, ScanError> {
    loop {
        if let Some((text, _)) = reply::split_reply(&conn.buf).map_err(protocol)? {
            return Ok(text.to_string());
        }
        read_more(&mut conn.stream, &mut conn.buf, &conn.clock).await?;
    }
}

/// One step of sending: a read that completed (a reply arriving early), or a write.
enum Step {
    Read(std::io::Result<usize>),
    Wrote(std::io::Result<usize>),
}

/// Nothing of a reply arrived: another server may take the scan.
fn before_reply_or_final(e: ScanError, buf: &BytesMut) -> Failed {
    if buf.is_empty() && e.is_connection_loss() {
        Failed::BeforeAnswer(e)
    } else {
        Failed::Final(e)
    }
}

/// A reply to `zINSTREAM`, and whether the whole stream had been sent when it came.
struct Sent {
    text: String,
    whole: bool,
}

/// Sends `zINSTREAM` and the body in chunks, then reads the reply. A reply that arrives while
/// the body is still going out (clamd's size limit, after which it closes) ends the sending.
async fn instream(conn: &mut Conn, req: &ScanRequest) -> Result<Sent, Failed> {
    let early = |text: &str| Sent {
        text: text.to_string(),
        whole: false,
    };
    let mut out: VecDeque<Bytes> = VecDeque::from([Bytes::from_static(b"zINSTREAM\0")]);
    let mut body = req.body.reader(FILE_CHUNK);
    let mut finished = false;
    loop {
        if let Some((text, _)) =
            reply::split_reply(&conn.buf).map_err(|e| Failed::Final(protocol(e)))?
        {
            return Ok(early(text));
        }
        if out.is_empty() {
            if finished {
                break;
            }
            match body.next_chunk() {
                Some(Ok(chunk)) if chunk.is_empty() => {}
                Some(Ok(chunk)) => {
                    // FILE_CHUNK is far below u32::MAX.
                    let len = chunk.len() as u32;
                    out.push_back(Bytes::copy_from_slice(&len.to_be_bytes()));
                    out.push_back(chunk);
                }
                Some(Err(e)) => return Err(Failed::Final(ScanError::Body(e))),
                None => {
                    out.push_back(Bytes::from_static(&END_OF_STREAM));
                    finished = true;
                }
            }
            continue;
        }
        let Some(front) = out.front_mut() else {
            continue;
        };
        let (stream, buf) = (&mut conn.stream, &mut conn.buf);
        let step = std::future::poll_fn(|cx| {
            let mut tmp = [0u8; 1024];
            let mut rb = ReadBuf::new(&mut tmp);
            if let Poll::Ready(r) = Pin::new(&mut *stream).poll_read(cx, &mut rb) {
                buf.extend_from_slice(rb.filled());
                return Poll::Ready(Step::Read(r.map(|()| rb.filled().len())));
            }
            Pin::new(&mut *stream)
                .poll_write(cx, front)
                .map(Step::Wrote)
        })
        .await;
        match step {
            Step::Read(Ok(0)) => return Err(before_reply_or_final(ScanError::Closed, &conn.buf)),
            Step::Read(Ok(_)) => {}
            Step::Read(Err(e)) => {
                return Err(before_reply_or_final(io_error(e, &conn.clock), &conn.buf))
            }
            Step::Wrote(Ok(0)) => return Err(before_reply_or_final(ScanError::Closed, &conn.buf)),
            Step::Wrote(Ok(n)) => {
                front.advance(n);
                if front.is_empty() {
                    out.pop_front();
                }
            }
            Step::Wrote(Err(e)) => {
                // clamd may have replied and closed (its size limit): read what it said.
                let err = io_error(e, &conn.clock);
                conn.clock.arm_read();
                return match read_reply(conn).await {
                    Ok(text) => Ok(early(&text)),
                    Err(_) => Err(before_reply_or_final(err, &conn.buf)),
                };
            }
        }
    }
    conn.clock.arm_read();
    match read_reply(conn).await {
        Ok(text) => Ok(Sent { text, whole: true }),
        Err(e) => Err(before_reply_or_final(e, &conn.buf)),
    }
}

/// The module's page for a block by clamd: 403, naming the threat.
/// The module's page for a threat clamd found in a request (or, `download`, a response).
fn block_page(threat: &str, download: bool) -> ResponsePage {
    let name: String = threat
        .chars()
        .map(|c| match c {
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '&' => "&amp;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&#39;".to_string(),
            c => c.to_string(),
        })
        .collect();
    let what = if download { "file" } else { "request" };
    let body = format!(
        "<html>\r\n<head><title>403 Forbidden</title></head>\r\n<body>\r\n\
         <center><h1>403 Forbidden</h1></center>\r\n\
         <center>The {what} carries a threat: {name}</center>\r\n\
         </body>\r\n</html>\r\n"
    );
    ResponsePage {
        status: 403,
        headers: vec![(
            Bytes::from_static(b"Content-Type"),
            Bytes::from_static(b"text/html"),
        )],
        body: Bytes::from(body),
        head_length: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::{BodyPart, RequestBody};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn request(body: Vec<u8>) -> ScanRequest {
        let mut b = RequestBody::new();
        b.push(BodyPart::Memory(Bytes::from(body)));
        ScanRequest {
            method: Bytes::from_static(b"POST"),
            uri: Bytes::from_static(b"/"),
            headers: Vec::new(),
            host: None,
            client_addr: "127.0.0.1".into(),
            body: b,
            response: None,
        }
    }

    /// A clamd double: reads the command and, when `read_all`, the whole stream (to its
    /// terminating zero-length chunk), then writes `answer` and closes. Returns the bytes it
    /// read and the verdict the client made of it.
    async fn against(
        answer: &'static [u8],
        read_all: bool,
        body: Vec<u8>,
    ) -> (Vec<u8>, Result<Verdict, Failed>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 65536];
            while read_all && !(got.len() >= 14 && got.ends_with(&END_OF_STREAM)) {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            if !read_all {
                let n = s.read(&mut buf).await.unwrap_or(0);
                got.extend_from_slice(&buf[..n]);
            }
            let _ = s.write_all(answer).await;
            let _ = s.shutdown().await;
            got
        });
        let opts = ScanOptions::default();
        let result = ClamdClient::default()
            .scan_one(&addr.into(), &request(body), &opts)
            .await;
        (server.await.unwrap(), result)
    }

    #[tokio::test]
    async fn the_stream_is_the_command_then_length_prefixed_chunks_then_a_zero_chunk() {
        let (got, result) = against(b"stream: OK\0", true, b"hello".to_vec()).await;
        assert!(matches!(result, Ok(Verdict::Allowed)));
        assert_eq!(got, b"zINSTREAM\0\0\0\0\x05hello\0\0\0\0");
        let (_, result) = against(b"stream: Win.Test FOUND\0", true, b"x".to_vec()).await;
        assert!(
            matches!(result, Ok(Verdict::Blocked { threat: Some(ref t), .. }) if t == "Win.Test")
        );
    }

    #[tokio::test]
    async fn clean_before_the_whole_stream_is_not_clean() {
        let body = vec![7u8; 8 << 20];
        let (_, result) = against(b"stream: OK\0", false, body).await;
        assert!(
            matches!(result, Err(Failed::Final(ScanError::Protocol(ref m))) if m.contains("before")),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn hostile_replies_are_failures() {
        for answer in [
            &b"stream: OK"[..],               // no NUL, then closed
            b"stream: O\x07K\0",              // a control byte
            b"OK\0",                          // not a reply clamd makes
            b"Can't allocate memory ERROR\0", // clamd could not scan
            b"",                              // closed without a word
        ] {
            let (_, result) = against(answer, true, b"x".to_vec()).await;
            assert!(result.is_err(), "{answer:?}: {result:?}");
        }
        let endless: &'static [u8] = Box::leak(vec![b'a'; 4 * reply::MAX_REPLY].into_boxed_slice());
        let (_, result) = against(endless, true, b"x".to_vec()).await;
        assert!(
            matches!(result, Err(Failed::Final(ScanError::Protocol(_)))),
            "{result:?}"
        );
        let (_, result) = against(
            b"INSTREAM size limit exceeded. ERROR\0",
            true,
            b"x".to_vec(),
        )
        .await;
        assert!(
            matches!(
                result,
                Err(Failed::Final(ScanError::Refused { status: 413, .. }))
            ),
            "{result:?}"
        );
    }

    #[test]
    fn the_block_page_names_the_threat_as_text() {
        let page = block_page("Win.Test<b>&", false);
        assert_eq!(page.status, 403);
        let body = String::from_utf8_lossy(&page.body);
        assert!(body.contains("Win.Test&lt;b&gt;&amp;"), "{body}");
        assert!(!body.contains("<b>"));
    }
}
