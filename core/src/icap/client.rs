//! The ICAP client (`icap://` scanners): OPTIONS per service, cached for its TTL; REQMOD with
//! preview; answers read while the body is still being sent; keep-alive connections reused
//! only after a complete exchange; at most `Max-Connections` exchanges per service at once.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Semaphore;
use tokio::time::timeout;

use crate::body::sink::{BodySink, PageSink};
use crate::body::{BodyReader, FILE_CHUNK};
use crate::headers;
use crate::icap::codec::{
    self as icap, ChunkDecoder, Decoded, IcapError, IcapHead, Options, Section, Transfer,
};
use crate::net::pool::IdlePool;
use crate::net::transport::{self, BoxIo, PoolKey};
use crate::scan::report::note_status;
use crate::scan::{
    Failed, ResponsePage, ScanError, ScanOptions, ScanRequest, Target, Verdict, SPILL_THRESHOLD,
};

type ServiceKey = (PoolKey, String);

/// Largest OPTIONS body skipped before the answer is refused.
const MAX_OPTIONS_BODY: usize = 64 * 1024;

struct CachedOptions {
    options: Options,
    expires: Instant,
}

/// A connection with the bytes read past the last answer.
struct IcapConn {
    stream: BoxIo,
    buf: BytesMut,
}

/// The per-worker ICAP client.
pub struct IcapClient {
    idle: IdlePool<IcapConn>,
    options: Mutex<HashMap<ServiceKey, CachedOptions>>,
    limits: Mutex<HashMap<ServiceKey, (usize, Arc<Semaphore>)>>,
}

impl Default for IcapClient {
    fn default() -> Self {
        Self::new()
    }
}

/// Converts codec errors into scan failures.
impl From<IcapError> for ScanError {
    fn from(e: IcapError) -> Self {
        match e {
            IcapError::TooLarge(_) => ScanError::HeaderTooLarge,
            e => ScanError::Protocol(e.to_string()),
        }
    }
}

impl IcapClient {
    pub fn new() -> Self {
        IcapClient {
            idle: IdlePool::default(),
            options: Mutex::new(HashMap::new()),
            limits: Mutex::new(HashMap::new()),
        }
    }

    /// One attempt on the server at `addr`.
    pub(crate) async fn scan_one(
        &self,
        addr: SocketAddr,
        target: &Target,
        req: &ScanRequest,
        opts: &ScanOptions,
    ) -> Result<Verdict, Failed> {
        let service = if target.url.path.is_empty() {
            "/".to_string()
        } else {
            target.url.path.clone()
        };
        let pool_key = PoolKey::new(addr, opts.tls.as_ref());
        let key = (pool_key, service);
        let options = match self.options_for(&key, target, opts).await {
            Ok(o) => o,
            // Nothing was scanned yet: another server may do it.
            Err(e) => return Err(Failed::BeforeAnswer(e)),
        };
        let transfer = if req.body.is_empty() {
            Transfer::Complete
        } else {
            icap::transfer_for(&options, &String::from_utf8_lossy(&req.uri))
        };
        let permits = self.limit(&key, options.max_connections);
        let _permit = match &permits {
            Some(s) => Some(
                s.acquire()
                    .await
                    .map_err(|_| Failed::Final(ScanError::Closed))?,
            ),
            None => None,
        };
        if let Some(conn) = self.take(pool_key, opts) {
            match self
                .reqmod(conn, pool_key, target, &key, &options, transfer, req, opts)
                .await
            {
                Ok(v) => return Ok(v),
                // A kept-alive connection lost before a complete answer (FIN or RST, also
                // after 100 Continue): nothing was decided or forwarded, so the scan is
                // repeated once on a fresh connection.
                Err(f) if f.retry_on_fresh_connection() => {
                    let e = f.into_error();
                    tracing::debug!("pooled ICAP connection failed ({e}), retrying")
                }
                Err(f) => return Err(Failed::Final(f.into_error())),
            }
        }
        let conn = connect(addr, opts).await.map_err(Failed::BeforeAnswer)?;
        self.reqmod(conn, pool_key, target, &key, &options, transfer, req, opts)
            .await
    }

    fn limit(&self, key: &ServiceKey, max: Option<usize>) -> Option<Arc<Semaphore>> {
        let max = max?;
        let mut limits = self.limits.lock().unwrap_or_else(|e| e.into_inner());
        let entry = limits
            .entry(key.clone())
            .or_insert_with(|| (max, Arc::new(Semaphore::new(max))));
        if entry.0 != max {
            *entry = (max, Arc::new(Semaphore::new(max)));
        }
        Some(entry.1.clone())
    }

    fn take(&self, addr: PoolKey, opts: &ScanOptions) -> Option<IcapConn> {
        self.idle.take(addr, opts.keepalive_timeout, |_| true)
    }

    fn put(&self, addr: PoolKey, conn: IcapConn, opts: &ScanOptions) {
        self.idle.put(addr, conn, opts.keepalive);
    }

    fn forget_options(&self, key: &ServiceKey) {
        self.options
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    /// The service's OPTIONS, from the cache or asked now.
    async fn options_for(
        &self,
        key: &ServiceKey,
        target: &Target,
        opts: &ScanOptions,
    ) -> Result<Options, ScanError> {
        if let Some(c) = self
            .options
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
        {
            if c.expires > Instant::now() {
                return Ok(c.options.clone());
            }
        }
        let mut attempt = 0;
        let (options, conn) = loop {
            let (conn, reused) = match self.take(key.0, opts) {
                Some(c) => (c, true),
                None => (connect(key.0.addr, opts).await?, false),
            };
            match ask_options(conn, target, &key.1, opts).await {
                Ok(r) => break r,
                Err(Failed::BeforeAnswer(_)) if reused && attempt == 0 => attempt += 1,
                Err(Failed::BeforeAnswer(e)) | Err(Failed::Final(e)) => return Err(e),
            }
        };
        if let Some(conn) = conn {
            self.put(key.0, conn, opts);
        }
        self.options
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                key.clone(),
                CachedOptions {
                    options: options.clone(),
                    expires: Instant::now() + options.ttl,
                },
            );
        Ok(options)
    }

    #[allow(clippy::too_many_arguments)]
    async fn reqmod(
        &self,
        mut conn: IcapConn,
        addr: PoolKey,
        target: &Target,
        key: &ServiceKey,
        options: &Options,
        transfer: Transfer,
        req: &ScanRequest,
        opts: &ScanOptions,
    ) -> Result<Verdict, Failed> {
        let t = opts.timeouts;
        let has_body = !req.body.is_empty();
        let http_headers = headers::scan_headers(
            &req.headers,
            &target.url.authority(),
            Some(req.body.len()),
            &req.client_addr,
            &headers::HeaderRules {
                x_forwarded_for: opts.rules.x_forwarded_for,
                set_headers: vec![],
            },
        );
        let block = icap::http_request_block(&req.method, &req.uri, &http_headers);
        let mut icap_headers: Vec<(String, String)> = Vec::new();
        if options.allow_204 {
            icap_headers.push(("Allow".into(), "204".into()));
        }
        let preview = match transfer {
            Transfer::Preview(p) if has_body => Some((p as u64).min(req.body.len()) as usize),
            _ => None,
        };
        if let Some(p) = preview {
            icap_headers.push(("Preview".into(), p.to_string()));
        }
        if opts.rules.x_forwarded_for {
            icap_headers.push(("X-Client-IP".into(), req.client_addr.clone()));
        }
        for (n, v) in &opts.rules.set_headers {
            let name = String::from_utf8_lossy(n).into_owned();
            if name.eq_ignore_ascii_case("encapsulated") || name.eq_ignore_ascii_case("host") {
                continue;
            }
            icap_headers.retain(|(have, _)| !have.eq_ignore_ascii_case(&name));
            if !v.is_empty() {
                icap_headers.push((name, String::from_utf8_lossy(v).into_owned()));
            }
        }
        let encapsulated = if has_body {
            format!("req-hdr=0, req-body={}", block.len())
        } else {
            format!("req-hdr=0, null-body={}", block.len())
        };
        icap_headers.push(("Encapsulated".into(), encapsulated));
        let mut head = icap::request_head("REQMOD", &target.url.authority(), &key.1, &icap_headers);
        head.extend_from_slice(&block);

        let mut body = req.body.reader(FILE_CHUNK);
        let mut sent_everything = true;
        // An answer that came while the body after the preview (or the whole body, without
        // preview) was still being sent: only a block may be decided on part of the body.
        let mut early_past_preview = false;
        let answer = {
            let (mut rd, mut wr) = tokio::io::split(&mut conn.stream);
            let buf = &mut conn.buf;
            let mut out: VecDeque<Bytes> = VecDeque::new();
            out.push_back(Bytes::from(head));
            let first = if let Some(p) = preview {
                // The preview: the first p bytes, then `0; ieof` when they are the whole body.
                let mut got = 0;
                while got < p {
                    match body.next_chunk_max(p - got) {
                        Some(Ok(c)) => {
                            got += c.len();
                            push_chunk(&mut out, c);
                        }
                        Some(Err(e)) => return Err(Failed::Final(ScanError::Body(e))),
                        None => break,
                    }
                }
                let whole = p as u64 == req.body.len();
                out.push_back(Bytes::from_static(if whole {
                    b"0; ieof\r\n\r\n"
                } else {
                    b"0\r\n\r\n"
                }));
                let early = send_watching(&mut rd, &mut wr, buf, &mut out, None, t.send).await?;
                let head = match early {
                    Some(h) => {
                        sent_everything = false;
                        h
                    }
                    None => read_head(&mut rd, buf, t.read)
                        .await
                        .map_err(|e| stale_or_final(e, buf))?,
                };
                if head.status == 100 {
                    if whole {
                        return Err(Failed::Final(ScanError::Protocol(
                            "100 Continue after the whole body was sent".into(),
                        )));
                    }
                    // The body cursor is past the preview: send the rest.
                    let early =
                        send_watching(&mut rd, &mut wr, buf, &mut out, Some(&mut body), t.send)
                            .await?;
                    match early {
                        Some(h) => {
                            sent_everything = false;
                            early_past_preview = true;
                            h
                        }
                        None => read_head(&mut rd, buf, t.read)
                            .await
                            .map_err(Failed::Final)?,
                    }
                } else {
                    // A final answer to the preview ends the exchange cleanly.
                    head
                }
            } else {
                // Without preview: the whole body, chunked, then the last chunk.
                let source = if has_body { Some(&mut body) } else { None };
                let early = send_watching(&mut rd, &mut wr, buf, &mut out, source, t.send).await?;
                match early {
                    Some(h) => {
                        sent_everything = false;
                        early_past_preview = has_body;
                        h
                    }
                    None => read_head(&mut rd, buf, t.read)
                        .await
                        .map_err(|e| stale_or_final(e, buf))?,
                }
            };
            if first.status == 100 {
                return Err(Failed::Final(ScanError::Protocol(
                    "unexpected 100 Continue".into(),
                )));
            }
            read_answer(&mut rd, buf, first, opts)
                .await
                .map_err(Failed::Final)?
        };
        let (verdict, head) = answer;
        if early_past_preview && !matches!(verdict, Verdict::Blocked { .. }) {
            return Err(Failed::Final(ScanError::Protocol(format!(
                "ICAP server answered {} before it had the whole body",
                head.status
            ))));
        }
        if let (Some(now), Some(cached)) = (head.header("istag"), options.istag.as_deref()) {
            if now != cached {
                self.forget_options(key);
            }
        }
        let close = head
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        if sent_everything && !close {
            self.put(addr, conn, opts);
        }
        Ok(verdict)
    }
}

fn stale_or_final(e: ScanError, buf: &BytesMut) -> Failed {
    if buf.is_empty() && matches!(e, ScanError::Closed | ScanError::Io(_)) {
        Failed::BeforeAnswer(e)
    } else {
        Failed::Final(e)
    }
}

fn push_chunk(out: &mut VecDeque<Bytes>, data: Bytes) {
    out.push_back(Bytes::from(icap::chunk_header(data.len())));
    out.push_back(data);
    out.push_back(Bytes::from_static(b"\r\n"));
}

async fn connect(addr: SocketAddr, opts: &ScanOptions) -> Result<IcapConn, ScanError> {
    let stream = transport::connect(addr, opts.timeouts.connect, opts.tls.as_deref()).await?;
    Ok(IcapConn {
        stream,
        buf: BytesMut::with_capacity(16 * 1024),
    })
}

async fn write_all_timed<W: AsyncWrite + Unpin>(
    w: &mut W,
    data: &[u8],
    t: Duration,
) -> Result<(), ScanError> {
    let mut off = 0;
    while off < data.len() {
        match timeout(t, w.write(&data[off..])).await {
            Err(_) => return Err(ScanError::SendTimeout),
            Ok(Err(e)) => return Err(ScanError::Io(e)),
            Ok(Ok(0)) => return Err(ScanError::Closed),
            Ok(Ok(n)) => off += n,
        }
    }
    Ok(())
}

/// Reads more bytes; 0 bytes (the server closed) is an error here.
async fn read_more<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut BytesMut,
    t: Duration,
) -> Result<(), ScanError> {
    buf.reserve(64 * 1024);
    match timeout(t, r.read_buf(buf)).await {
        Err(_) => Err(ScanError::ReadTimeout),
        Ok(Err(e)) => Err(ScanError::Io(e)),
        Ok(Ok(0)) => Err(ScanError::Closed),
        Ok(Ok(_)) => Ok(()),
    }
}

async fn read_head<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut BytesMut,
    t: Duration,
) -> Result<IcapHead, ScanError> {
    loop {
        if let Some((head, used)) = icap::parse_head(buf)? {
            buf.advance(used);
            return Ok(head);
        }
        read_more(r, buf, t).await?;
    }
}

/// Sends what is queued in `out` (refilled as chunks from `body`, then the last chunk), while
/// watching for an answer. Returns the answer head if a final one arrived before all was sent.
async fn send_watching<R, W>(
    rd: &mut R,
    wr: &mut W,
    buf: &mut BytesMut,
    out: &mut VecDeque<Bytes>,
    mut body: Option<&mut BodyReader>,
    send_timeout: Duration,
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
                match r {
                    Ok(0) => {
                        if let Ok(Some((head, used))) = icap::parse_head(buf) {
                            buf.advance(used);
                            return Ok(Some(head));
                        }
                        return Err(stale_or_final(ScanError::Closed, buf));
                    }
                    Err(e) => return Err(stale_or_final(ScanError::Io(e), buf)),
                    Ok(_) => {
                        match icap::parse_head(buf) {
                            Ok(Some((head, used))) => {
                                buf.advance(used);
                                if head.status == 100 {
                                    return Err(Failed::Final(ScanError::Protocol("unexpected 100 Continue".into())));
                                }
                                return Ok(Some(head));
                            }
                            Ok(None) => {}
                            Err(e) => return Err(Failed::Final(e.into())),
                        }
                    }
                }
            }
            w = timeout(send_timeout, wr.write(front)) => {
                match w {
                    Err(_) => return Err(Failed::Final(ScanError::SendTimeout)),
                    Ok(Err(e)) => return Err(stale_or_final(ScanError::Io(e), buf)),
                    Ok(Ok(0)) => return Err(Failed::Final(ScanError::Closed)),
                    Ok(Ok(n)) => {
                        front.advance(n);
                        if front.is_empty() {
                            out.pop_front();
                        }
                    }
                }
            }
        }
    }
}

/// Reads the rest of an answer whose head is `head` and turns it into a verdict.
async fn read_answer<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    head: IcapHead,
    opts: &ScanOptions,
) -> Result<(Verdict, IcapHead), ScanError> {
    note_status(head.status);
    let t = opts.timeouts.read;
    match head.status {
        204 => {
            // A 204 may still announce an (empty) encapsulated part: skip what it declares.
            if let Some(enc) = head.header("encapsulated") {
                let sections = icap::parse_encapsulated(enc)?;
                if let Some(&(Section::NullBody, off)) = sections.last() {
                    if off > icap::MAX_HTTP_HEAD {
                        return Err(ScanError::HeaderTooLarge);
                    }
                    read_exact_into(rd, buf, off, t).await?;
                    buf.advance(off);
                }
            }
            return Ok((Verdict::Allowed, head));
        }
        200 => {}
        s => return Err(ScanError::Protocol(format!("ICAP server answered {s}"))),
    }
    let enc = head
        .header("encapsulated")
        .ok_or(IcapError::NoEncapsulated)?;
    let sections = icap::parse_encapsulated(enc)?;
    let (hdr_kind, hdr_off) = sections[0];
    let (body_kind, body_off) = *sections.last().ok_or(IcapError::NoEncapsulated)?;
    if sections.len() != 2 || hdr_off != 0 || !matches!(hdr_kind, Section::ReqHdr | Section::ResHdr)
    {
        return Err(IcapError::Encapsulated(enc.to_string()).into());
    }
    if body_off > icap::MAX_HTTP_HEAD {
        return Err(ScanError::HeaderTooLarge);
    }
    read_exact_into(rd, buf, body_off, t).await?;
    let http = icap::parse_http_head(&buf[..body_off])?;
    buf.advance(body_off);
    let threat = icap::threat(&head);
    match (hdr_kind, body_kind) {
        (Section::ReqHdr, Section::ReqBody | Section::NullBody) => {
            let mut sink =
                BodySink::new(SPILL_THRESHOLD, &opts.spill_dir).limited(opts.max_sanitized);
            if body_kind == Section::ReqBody {
                read_chunked(rd, buf, t, |c| sink.push(c)).await?;
            }
            let content = sink.finish();
            let content_type = http.header("content-type").cloned();
            let content_disposition = http.header("content-disposition").cloned();
            Ok((
                Verdict::Sanitized {
                    body: content,
                    content_type,
                    content_disposition,
                    headers: Some(http.headers),
                },
                head,
            ))
        }
        (Section::ResHdr, Section::ResBody | Section::NullBody) => {
            let status = http.status().ok_or(IcapError::HttpHead)?;
            let mut page = PageSink::new(opts.max_page);
            if body_kind == Section::ResBody {
                read_chunked(rd, buf, t, |c| page.push(c)).await?;
            }
            let headers = http
                .headers
                .into_iter()
                .filter(|(n, _)| {
                    !headers::is_hop_by_hop(n) && !n.eq_ignore_ascii_case(b"content-length")
                })
                .collect();
            Ok((
                Verdict::Blocked {
                    page: ResponsePage {
                        status,
                        headers,
                        body: page.finish(),
                        head_length: None,
                    },
                    threat,
                },
                head,
            ))
        }
        _ => Err(IcapError::Encapsulated(enc.to_string()).into()),
    }
}

async fn read_exact_into<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    n: usize,
    t: Duration,
) -> Result<(), ScanError> {
    while buf.len() < n {
        read_more(rd, buf, t).await?;
    }
    Ok(())
}

async fn read_chunked<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    t: Duration,
    mut sink: impl FnMut(&[u8]) -> Result<(), ScanError>,
) -> Result<(), ScanError> {
    let mut dec = ChunkDecoder::default();
    loop {
        let (what, used) = dec.decode(buf)?;
        match what {
            Decoded::Data(r) => sink(&buf[r])?,
            Decoded::End => {
                buf.advance(used);
                return Ok(());
            }
            Decoded::NeedMore if used == 0 => {
                read_more(rd, buf, t).await?;
                continue;
            }
            Decoded::NeedMore => {}
        }
        buf.advance(used);
    }
}

/// OPTIONS on `conn`; returns the options and the connection if it can be reused.
async fn ask_options(
    mut conn: IcapConn,
    target: &Target,
    service: &str,
    opts: &ScanOptions,
) -> Result<(Options, Option<IcapConn>), Failed> {
    let t = opts.timeouts;
    let head = icap::request_head(
        "OPTIONS",
        &target.url.authority(),
        service,
        &[("Encapsulated".to_string(), "null-body=0".to_string())],
    );
    let (mut rd, mut wr) = tokio::io::split(&mut conn.stream);
    write_all_timed(&mut wr, &head, t.send)
        .await
        .map_err(|e| stale_or_final(e, &conn.buf))?;
    let answer = read_head(&mut rd, &mut conn.buf, t.read)
        .await
        .map_err(|e| stale_or_final(e, &conn.buf))?;
    if answer.status != 200 {
        return Err(Failed::Final(ScanError::Protocol(format!(
            "ICAP OPTIONS for \"{service}\" answered {}",
            answer.status
        ))));
    }
    if let Some(enc) = answer.header("encapsulated") {
        match icap::parse_encapsulated(enc)
            .map_err(|e| Failed::Final(e.into()))?
            .last()
        {
            Some(&(_, off)) if off > icap::MAX_HTTP_HEAD => {
                return Err(Failed::Final(ScanError::HeaderTooLarge));
            }
            Some(&(Section::OptBody, off)) => {
                read_exact_into(&mut rd, &mut conn.buf, off, t.read)
                    .await
                    .map_err(Failed::Final)?;
                conn.buf.advance(off);
                // The options body means nothing to us; it is skipped, up to a bound.
                let mut left = MAX_OPTIONS_BODY;
                read_chunked(&mut rd, &mut conn.buf, t.read, |c| {
                    left = left
                        .checked_sub(c.len())
                        .ok_or(ScanError::PageTooLarge(MAX_OPTIONS_BODY))?;
                    Ok(())
                })
                .await
                .map_err(Failed::Final)?;
            }
            Some(&(_, off)) => {
                read_exact_into(&mut rd, &mut conn.buf, off, t.read)
                    .await
                    .map_err(Failed::Final)?;
                conn.buf.advance(off);
            }
            None => {}
        }
    }
    let close = answer
        .header("connection")
        .is_some_and(|v| v.eq_ignore_ascii_case("close"));
    let options = icap::parse_options(&answer);
    Ok((options, if close { None } else { Some(conn) }))
}
