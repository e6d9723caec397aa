//! The HTTP scan protocol (`http://` scanners): the client's request goes to the scanner as an
//! HTTP/1.1 request, and the scanner's answer is the verdict. See `docs/protocol.md`.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http_body::Body as _;
use hyper::body::Incoming;

use crate::balancer::{Balancer, PeerSpec};
use crate::body::{RequestBody, StreamBody};
use crate::error::ScanError;
use crate::headers::{self, HeaderList, HeaderRules};
use crate::notices::Notices;
use crate::pool::{Conn, ConnPool};
use crate::sink::{BodySink, PageSink};
use crate::timed_io::{Fired, IoClock, TimedIo};
use crate::transport::{self, PoolKey};
use crate::url::{ScannerUrl, Scheme};
use crate::verdict::{ResponsePage, SanitizedBody, Verdict};

/// Largest scanner response header block accepted.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Interim (1xx) answers tolerated before the final one; more is a protocol failure, so that
/// a scanner cannot hold a request with an endless stream of them.
pub const MAX_INTERIM: usize = 8;
/// Sanitized bodies up to this size stay in memory; larger ones go to a temp file.
pub const SPILL_THRESHOLD: usize = 1024 * 1024;

/// The three scanner timeouts of a location.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    pub send: Duration,
    pub read: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        let d = Duration::from_secs(60);
        Timeouts {
            connect: d,
            send: d,
            read: d,
        }
    }
}

/// How a location scans, in plain values.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    pub timeouts: Timeouts,
    pub rules: HeaderRules,
    /// `ometascan_pre_cache`: the module forwards its own copy after an allowed verdict.
    pub pre_cache: bool,
    /// Where a large sanitized body is spilled (nginx's client body temp path).
    pub spill_dir: PathBuf,
    /// Largest block page accepted.
    pub max_page: usize,
    /// TLS to the scanner (`https://`, `icaps://`).
    pub tls: Option<std::sync::Arc<crate::tls::TlsClient>>,
    /// Largest sanitized body accepted (the location's `client_max_body_size`; `None`: no
    /// limit): a scanner cannot fill the disk with an endless replacement.
    pub max_sanitized: Option<u64>,
    /// Idle connections kept per server (`ometascan_keepalive`; 0: none).
    pub keepalive: usize,
    /// How long an idle connection is kept (`ometascan_keepalive_timeout`).
    pub keepalive_timeout: Duration,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            timeouts: Timeouts::default(),
            rules: HeaderRules::default(),
            pre_cache: false,
            spill_dir: std::env::temp_dir(),
            max_page: 1024 * 1024,
            tls: None,
            max_sanitized: None,
            keepalive: 32,
            keepalive_timeout: Duration::from_secs(60),
        }
    }
}

/// The client's request, copied out of nginx.
#[derive(Debug, Clone)]
pub struct ScanRequest {
    pub method: Bytes,
    /// The original request URI, path and query (`$request_uri`).
    pub uri: Bytes,
    pub headers: HeaderList,
    /// The client's address as text (for `X-Forwarded-For`).
    pub client_addr: String,
    pub body: RequestBody,
}

/// Where a scan goes: the URL and the servers of its group.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: ScannerUrl,
    /// Identifies the group for the balancer (the adapter uses nginx's upstream).
    pub group: usize,
    pub peers: std::sync::Arc<Vec<PeerSpec>>,
}

impl Target {
    /// A group of plain addresses, each of weight 1 (for tests and simple setups).
    pub fn from_addrs(url: ScannerUrl, addrs: &[SocketAddr]) -> Self {
        let peers = addrs
            .iter()
            .map(|a| PeerSpec {
                addr: *a,
                name: a.to_string(),
                weight: 1,
                max_fails: 1,
                fail_timeout: std::time::Duration::from_secs(10),
                backup: false,
            })
            .collect();
        Target {
            url,
            group: 0,
            peers: std::sync::Arc::new(peers),
        }
    }
}

/// The outcome of one attempt on one server that produced no verdict.
pub(crate) enum One {
    /// Nothing of an answer came from this server: the next one may be tried.
    Next(ScanError),
    /// The server answered (or the failure is not the server's): this is the result.
    Final(ScanError),
}

tokio::task_local! {
    /// The server tried last and the status of its answer, for the scan's report.
    static ANSWER: std::cell::Cell<(Option<SocketAddr>, Option<u16>)>;
}

/// Records the status line of the scanner's answer (HTTP or ICAP).
pub(crate) fn note_status(status: u16) {
    let _ = ANSWER.try_with(|c| c.set((c.get().0, Some(status))));
}

fn note_server(addr: SocketAddr) {
    let _ = ANSWER.try_with(|c| c.set((Some(addr), None)));
}

/// A scan's result with what the access log wants to know about it.
#[derive(Debug)]
pub struct ScanOutcome {
    pub result: Result<Verdict, ScanError>,
    /// The server that decided (or was tried last).
    pub server: Option<SocketAddr>,
    /// The status of its answer.
    pub status: Option<u16>,
}

/// The per-worker scanner client.
pub struct Scanner {
    pool: ConnPool,
    icap: crate::icap_client::IcapClient,
    balancer: std::sync::Arc<Balancer>,
    notices: std::sync::Arc<Notices>,
}

impl Default for Scanner {
    fn default() -> Self {
        Self::new()
    }
}

/// What the scanner's status line and headers call for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Allowed, no body to read (204).
    Allow,
    /// Read the body: empty → allowed, otherwise the sanitized content.
    Sanitize,
    /// Discard the body, then allowed (pre_cache on, no sanitized mark).
    AllowDiscard,
    /// 400: the scanner could not parse the request.
    BadRequest,
    /// Any other status: relay the page.
    Block,
    /// A final answer cannot be informational.
    Invalid,
}

/// The verdict table of the HTTP scan protocol, for a status and the result header.
pub fn plan(status: u16, sanitized_mark: bool, pre_cache: bool) -> Plan {
    match status {
        100..=199 | 600.. => Plan::Invalid,
        204 => Plan::Allow,
        200..=299 if !pre_cache || sanitized_mark => Plan::Sanitize,
        200..=299 => Plan::AllowDiscard,
        400 => Plan::BadRequest,
        _ => Plan::Block,
    }
}

impl Scanner {
    pub fn new() -> Self {
        Scanner {
            pool: ConnPool::default(),
            icap: crate::icap_client::IcapClient::new(),
            balancer: std::sync::Arc::new(Balancer::new()),
            notices: std::sync::Arc::new(Notices::default()),
        }
    }

    /// The worker's balancer, shared with the health checker.
    pub fn balancer(&self) -> std::sync::Arc<Balancer> {
        self.balancer.clone()
    }

    /// Lines for the error log from the scanner side (servers going down or up).
    pub fn notices(&self) -> std::sync::Arc<Notices> {
        self.notices.clone()
    }

    pub fn idle_connections(&self) -> usize {
        self.pool.idle_count()
    }

    /// Scans one request and returns the scanner's verdict.
    /// Scans and reports which server answered with which status.
    pub async fn scan_report(
        &self,
        target: &Target,
        req: &ScanRequest,
        opts: &ScanOptions,
    ) -> ScanOutcome {
        ANSWER
            .scope(std::cell::Cell::new((None, None)), async {
                let result = self.scan(target, req, opts).await;
                let (server, status) = ANSWER.with(|c| c.get());
                ScanOutcome {
                    result,
                    server,
                    status,
                }
            })
            .await
    }

    pub async fn scan(
        &self,
        target: &Target,
        req: &ScanRequest,
        opts: &ScanOptions,
    ) -> Result<Verdict, ScanError> {
        if target.url.scheme.is_tls() && opts.tls.is_none() {
            return Err(ScanError::Tls("no TLS settings for this scanner".into()));
        }
        let icap = matches!(target.url.scheme, Scheme::Icap | Scheme::Icaps);
        // Each server of the group at most once; another one only while no byte of an
        // answer arrived (a server that answered decides).
        let mut tried = Vec::new();
        let mut last_err = None;
        loop {
            let Some(idx) = self.balancer.pick(target.group, &target.peers, &tried) else {
                return Err(last_err.unwrap_or(ScanError::NoLiveScanner));
            };
            tried.push(idx);
            let peer = &target.peers[idx];
            note_server(peer.addr);
            let result = if icap {
                self.icap.scan_one(peer.addr, target, req, opts).await
            } else {
                self.scan_one(peer.addr, target, req, opts).await
            };
            match result {
                Ok(v) => {
                    if let Some(change) = self.balancer.succeeded(target.group, &target.peers, idx)
                    {
                        self.notices.push_change(change, "(a scan succeeded)");
                    }
                    return Ok(v);
                }
                Err(One::Next(e)) => {
                    self.server_failed(target, idx, &e);
                    tracing::debug!("scanner {} failed ({e}), trying the next one", peer.name);
                    last_err = Some(e);
                }
                Err(One::Final(e)) => {
                    if e.is_server_failure() {
                        self.server_failed(target, idx, &e);
                    }
                    return Err(e);
                }
            }
        }
    }

    fn server_failed(&self, target: &Target, idx: usize, e: &ScanError) {
        if let Some(change) = self.balancer.failed(target.group, &target.peers, idx) {
            self.notices.push_change(change, &format!("after: {e}"));
        }
    }

    /// One attempt on one server of the group.
    async fn scan_one(
        &self,
        addr: SocketAddr,
        target: &Target,
        req: &ScanRequest,
        opts: &ScanOptions,
    ) -> Result<Verdict, One> {
        // A pooled connection may have been closed by the scanner meanwhile: one that fails
        // before any byte of an answer is replaced by a fresh one, once.
        let key = PoolKey::new(addr, opts.tls.as_ref());
        if let Some(conn) = self
            .pool
            .take(key, opts.keepalive_timeout, |c| !c.sender.is_closed())
        {
            match self.exchange(conn, key, target, req, opts).await {
                Ok(v) => return Ok(v),
                // A kept-alive connection lost before a complete answer (FIN or RST):
                // nothing was decided or forwarded, so the scan goes once more on a fresh one.
                Err(Attempt::BeforeAnswer(e) | Attempt::Final(e)) if e.is_connection_loss() => {
                    tracing::debug!(
                        "pooled scanner connection failed ({e}), retrying on a new one"
                    );
                }
                Err(Attempt::BeforeAnswer(e) | Attempt::Final(e)) => return Err(One::Final(e)),
            }
        }
        let conn = self.connect(addr, opts).await.map_err(One::Next)?;
        match self.exchange(conn, key, target, req, opts).await {
            Ok(v) => Ok(v),
            Err(Attempt::BeforeAnswer(e)) => Err(One::Next(e)),
            Err(Attempt::Final(e)) => Err(One::Final(e)),
        }
    }

    async fn connect(&self, addr: SocketAddr, opts: &ScanOptions) -> Result<Conn, ScanError> {
        let stream = transport::connect(addr, opts.timeouts.connect, opts.tls.as_deref()).await?;
        let clock = IoClock::new();
        let io = TimedIo::new(stream, clock.clone());
        let (sender, conn) = hyper::client::conn::http1::Builder::new()
            .title_case_headers(true)
            .max_buf_size(MAX_HEADER_BYTES)
            .handshake(io)
            .await
            .map_err(|e| ScanError::Io(io::Error::other(e)))?;
        let task = tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("scanner connection ended: {e}");
            }
        })
        .abort_handle();
        Ok(Conn {
            sender,
            clock,
            task,
        })
    }

    async fn exchange(
        &self,
        mut conn: Conn,
        key: PoolKey,
        target: &Target,
        req: &ScanRequest,
        opts: &ScanOptions,
    ) -> Result<Verdict, Attempt> {
        let request = build_request(target, req, opts).map_err(Attempt::Final)?;
        if conn.sender.ready().await.is_err() {
            return Err(Attempt::BeforeAnswer(ScanError::Closed));
        }
        let clock = conn.clock.clone();
        clock.begin(opts.timeouts.send, opts.timeouts.read);
        let sent = Arc::new(AtomicBool::new(false));
        let on_end = {
            let clock = clock.clone();
            let sent = sent.clone();
            Box::new(move || {
                sent.store(true, Ordering::Release);
                clock.arm_read();
            })
        };
        let body = StreamBody::new(&req.body, on_end);
        if req.body.is_empty() {
            sent.store(true, Ordering::Release);
            clock.arm_read();
        }
        let mut request = request.map(|()| body);
        // Interim answers are counted: past the bound the transport refuses to read on (an
        // endless stream), and a final answer that came after too many is refused as well.
        let interim = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        hyper::ext::on_informational(&mut request, {
            let clock = clock.clone();
            let interim = interim.clone();
            move |_| {
                if interim.fetch_add(1, Ordering::AcqRel) >= MAX_INTERIM {
                    clock.refuse();
                }
            }
        });
        let response = match conn.sender.send_request(request).await {
            Ok(r) => r,
            Err(e) => {
                let err = map_hyper_error(&e, &clock);
                clock.end();
                // Nothing of an answer arrived; only a connection that was reused is retried.
                return Err(if e.is_canceled() || e.is_incomplete_message() {
                    Attempt::BeforeAnswer(err)
                } else {
                    Attempt::Final(err)
                });
            }
        };
        if interim.load(Ordering::Acquire) > MAX_INTERIM {
            clock.end();
            return Err(Attempt::Final(ScanError::Protocol(format!(
                "more than {MAX_INTERIM} interim (1xx) answers"
            ))));
        }
        let head = req.method.eq_ignore_ascii_case(b"HEAD");
        // Taken when the answer's head arrived: anything but a block decided before the whole
        // body was handed over is a scanner that did not see what it allowed.
        let whole_body_sent = sent.load(Ordering::Acquire);
        let result = self
            .read_answer(response, head, whole_body_sent, &clock, opts)
            .await;
        clock.end();
        let verdict = result.map_err(Attempt::Final)?;
        if sent.load(Ordering::Acquire) {
            self.pool.put(key, conn, opts.keepalive);
        }
        Ok(verdict)
    }

    async fn read_answer(
        &self,
        response: hyper::Response<Incoming>,
        head: bool,
        whole_body_sent: bool,
        clock: &IoClock,
        opts: &ScanOptions,
    ) -> Result<Verdict, ScanError> {
        let (parts, mut body) = response.into_parts();
        let status = parts.status.as_u16();
        note_status(status);
        for name in ["x-ometascan-result", "content-type", "content-disposition"] {
            if parts.headers.get_all(name).iter().nth(1).is_some() {
                return Err(ScanError::Protocol(format!("duplicate \"{name}\" header")));
            }
        }
        let mark = parts
            .headers
            .get("x-ometascan-result")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"sanitized"));
        let plan = plan(status, mark, opts.pre_cache);
        if !whole_body_sent && !matches!(plan, Plan::Block | Plan::BadRequest | Plan::Invalid) {
            return Err(ScanError::Protocol(format!(
                "the scanner answered {status} before it had the whole body"
            )));
        }
        match plan {
            Plan::Invalid => Err(ScanError::Protocol(format!("unexpected status {status}"))),
            Plan::Allow => {
                drain(&mut body, clock).await?;
                Ok(Verdict::Allowed)
            }
            Plan::AllowDiscard => {
                drain(&mut body, clock).await?;
                Ok(Verdict::Allowed)
            }
            Plan::Sanitize => {
                let content = self.collect_sanitized(&mut body, clock, opts).await?;
                if content.is_empty() {
                    return Ok(Verdict::Allowed);
                }
                Ok(Verdict::Sanitized {
                    body: content,
                    content_type: parts.headers.get("content-type").map(value_bytes),
                    content_disposition: parts.headers.get("content-disposition").map(value_bytes),
                    headers: None,
                })
            }
            Plan::BadRequest | Plan::Block => {
                let page = collect_page(&mut body, clock, opts.max_page).await?;
                // An answer to HEAD has no body; its length is the page's.
                let head_length = head
                    .then(|| parts.headers.get("content-length"))
                    .flatten()
                    .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
                let page = ResponsePage {
                    status,
                    headers: relay_headers(&parts.headers),
                    body: page,
                    head_length,
                };
                if status == 400 {
                    Ok(Verdict::BadRequest { page })
                } else {
                    Ok(Verdict::Blocked { page, threat: None })
                }
            }
        }
    }

    async fn collect_sanitized(
        &self,
        body: &mut Incoming,
        clock: &IoClock,
        opts: &ScanOptions,
    ) -> Result<SanitizedBody, ScanError> {
        let mut sink = BodySink::new(SPILL_THRESHOLD, &opts.spill_dir).limited(opts.max_sanitized);
        while let Some(chunk) = next_data(body, clock).await? {
            sink.push(&chunk)?;
        }
        Ok(sink.finish())
    }
}

enum Attempt {
    /// Failed before any byte of an answer: a reused connection may be retried.
    BeforeAnswer(ScanError),
    Final(ScanError),
}

fn value_bytes(v: &HeaderValue) -> Bytes {
    Bytes::copy_from_slice(v.as_bytes())
}

/// Builds the request to the scanner (SPEC §3).
pub fn build_request(
    target: &Target,
    req: &ScanRequest,
    opts: &ScanOptions,
) -> Result<http::Request<()>, ScanError> {
    let method = http::Method::from_bytes(&req.method)
        .map_err(|_| ScanError::Request("invalid method".into()))?;
    let mut path = Vec::with_capacity(target.url.path.len() + req.uri.len());
    path.extend_from_slice(target.url.path.as_bytes());
    path.extend_from_slice(&req.uri);
    if path.is_empty() || path[0] != b'/' {
        path.insert(0, b'/');
    }
    let uri = http::Uri::from_maybe_shared(Bytes::from(escape_target(&path)))
        .map_err(|e| ScanError::Request(format!("invalid request URI ({e})")))?;
    let fields = headers::scan_headers(
        &req.headers,
        &target.url.authority(),
        Some(req.body.len()),
        &req.client_addr,
        &opts.rules,
    );
    let mut builder = http::Request::builder().method(method).uri(uri);
    let map = builder
        .headers_mut()
        .ok_or_else(|| ScanError::Request("invalid request".into()))?;
    for (n, v) in fields {
        let name = HeaderName::from_bytes(&n).map_err(|_| {
            ScanError::Request(format!(
                "invalid header name \"{}\"",
                String::from_utf8_lossy(&n)
            ))
        })?;
        let value = HeaderValue::from_maybe_shared(v)
            .map_err(|_| ScanError::Request(format!("invalid value of header \"{name}\"")))?;
        map.append(name, value);
    }
    builder
        .body(())
        .map_err(|e| ScanError::Request(e.to_string()))
}

/// Percent-encodes the bytes a request target may not carry as they are.
fn escape_target(path: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.len());
    for &b in path {
        let ok = b.is_ascii_graphic()
            && !matches!(
                b,
                b'"' | b'<' | b'>' | b'\\' | b'^' | b'`' | b'{' | b'|' | b'}'
            );
        if ok {
            out.push(b);
        } else {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
    out
}

/// The scanner's header fields to relay to the client: hop-by-hop fields and the framing
/// (`Content-Length`) removed, names in the usual capitalisation.
pub fn relay_headers(map: &http::HeaderMap) -> HeaderList {
    map.iter()
        .filter(|(n, _)| {
            !headers::is_hop_by_hop(n.as_str().as_bytes()) && n.as_str() != "content-length"
        })
        .map(|(n, v)| (Bytes::from(title_case(n.as_str())), value_bytes(v)))
        .collect()
}

fn title_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut up = true;
    for c in name.chars() {
        out.push(if up { c.to_ascii_uppercase() } else { c });
        up = c == '-';
    }
    out
}

fn map_hyper_error(e: &hyper::Error, clock: &IoClock) -> ScanError {
    match clock.fired() {
        Fired::Send => return ScanError::SendTimeout,
        Fired::Read => return ScanError::ReadTimeout,
        Fired::Refused => {
            return ScanError::Protocol(format!("more than {MAX_INTERIM} interim (1xx) answers"))
        }
        Fired::None => {}
    }
    if e.is_parse() && e.to_string().contains("too large") {
        ScanError::HeaderTooLarge
    } else if e.is_parse() || e.is_parse_status() {
        ScanError::Protocol(e.to_string())
    } else if e.is_incomplete_message() || e.is_canceled() || e.is_closed() {
        ScanError::Closed
    } else if let Some(io) =
        std::error::Error::source(e).and_then(|s| s.downcast_ref::<io::Error>())
    {
        if io.kind() == io::ErrorKind::UnexpectedEof {
            ScanError::Closed
        } else if let Some(code) = io.raw_os_error() {
            ScanError::Io(io::Error::from_raw_os_error(code))
        } else {
            ScanError::Io(io::Error::new(io.kind(), io.to_string()))
        }
    } else {
        ScanError::Io(io::Error::other(e.to_string()))
    }
}

async fn next_data(body: &mut Incoming, clock: &IoClock) -> Result<Option<Bytes>, ScanError> {
    loop {
        let frame = poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await;
        match frame {
            None => return Ok(None),
            Some(Err(e)) => return Err(map_hyper_error(&e, clock)),
            Some(Ok(f)) => {
                if let Ok(data) = f.into_data() {
                    if !data.is_empty() {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }
}

async fn drain(body: &mut Incoming, clock: &IoClock) -> Result<(), ScanError> {
    while next_data(body, clock).await?.is_some() {}
    Ok(())
}

async fn collect_page(
    body: &mut Incoming,
    clock: &IoClock,
    max: usize,
) -> Result<Bytes, ScanError> {
    let mut page = PageSink::new(max);
    while let Some(chunk) = next_data(body, clock).await? {
        page.push(&chunk)?;
    }
    Ok(page.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_table() {
        assert_eq!(plan(204, false, false), Plan::Allow);
        assert_eq!(plan(204, false, true), Plan::Allow);
        assert_eq!(plan(200, false, false), Plan::Sanitize);
        assert_eq!(plan(201, false, true), Plan::AllowDiscard);
        assert_eq!(plan(200, true, true), Plan::Sanitize);
        assert_eq!(plan(400, false, false), Plan::BadRequest);
        assert_eq!(plan(403, false, false), Plan::Block);
        assert_eq!(plan(302, false, true), Plan::Block);
        assert_eq!(plan(500, false, false), Plan::Block);
        assert_eq!(plan(101, false, false), Plan::Invalid);
        assert_eq!(plan(600, false, false), Plan::Invalid);
        assert_eq!(plan(999, false, false), Plan::Invalid);
    }

    #[test]
    fn request_target_and_headers() {
        let target =
            Target::from_addrs(ScannerUrl::parse("http://127.0.0.1:9/scan/").unwrap(), &[]);
        let mut body = RequestBody::new();
        body.push(crate::BodyPart::Memory(Bytes::from_static(b"hello")));
        let req = ScanRequest {
            method: Bytes::from_static(b"PUT"),
            uri: Bytes::from_static(b"/up/a b?x=1|2"),
            headers: vec![(Bytes::from_static(b"Host"), Bytes::from_static(b"front"))],
            client_addr: "10.1.1.1".into(),
            body,
        };
        let r = build_request(&target, &req, &ScanOptions::default()).unwrap();
        assert_eq!(r.method(), "PUT");
        assert_eq!(r.uri(), "/scan/up/a%20b?x=1%7C2");
        assert_eq!(r.headers()["host"], "front");
        assert_eq!(r.headers()["content-length"], "5");
    }

    #[test]
    fn relayed_headers_are_cleaned() {
        let mut m = http::HeaderMap::new();
        m.insert("content-type", HeaderValue::from_static("text/html"));
        m.insert("connection", HeaderValue::from_static("close"));
        m.insert("content-length", HeaderValue::from_static("3"));
        m.insert("x-block-reason", HeaderValue::from_static("virus"));
        let h = relay_headers(&m);
        assert_eq!(
            h,
            vec![
                (
                    Bytes::from_static(b"Content-Type"),
                    Bytes::from_static(b"text/html")
                ),
                (
                    Bytes::from_static(b"X-Block-Reason"),
                    Bytes::from_static(b"virus")
                ),
            ]
        );
    }
}
