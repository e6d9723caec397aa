//! The HTTP scan protocol client: one exchange on a kept-alive or fresh connection, and the
//! answer read into a verdict.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body::Body as _;
use hyper::body::Incoming;

use crate::body::sink::{BodySink, PageSink};
use crate::body::StreamBody;
use crate::http::answer::{plan, relay_headers, value_bytes, Plan};
use crate::http::request::build_request;
use crate::net::peer::PeerAddr;
use crate::net::pool::{Conn, ConnPool};
use crate::net::timed_io::{Fired, IoClock, TimedIo};
use crate::net::transport::{self, PoolKey};
use crate::scan::report::note_status;
use crate::scan::{
    Failed, ResponsePage, SanitizedBody, ScanError, ScanOptions, ScanRequest, Target, Verdict,
    SPILL_THRESHOLD,
};

/// Largest scanner response header block accepted.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Interim (1xx) answers tolerated before the final one; more is a protocol failure, so that
/// a scanner cannot hold a request with an endless stream of them.
pub const MAX_INTERIM: usize = 8;
/// The HTTP scan protocol client of a worker: its keep-alive pool and the exchange.
#[derive(Default)]
pub struct HttpClient {
    pool: ConnPool,
}

impl HttpClient {
    pub fn idle_count(&self) -> usize {
        self.pool.idle_count()
    }

    /// One attempt on one server of the group.
    pub(crate) async fn scan_one(
        &self,
        addr: &PeerAddr,
        target: &Target,
        req: &ScanRequest,
        opts: &ScanOptions,
    ) -> Result<Verdict, Failed> {
        // A pooled connection may have been closed or reset by the scanner meanwhile: one
        // that fails before a complete answer is replaced by a fresh one, once.
        let key = PoolKey::new(addr.clone(), opts.tls.as_ref());
        if let Some(conn) = self.pool.take(key.clone(), opts.keepalive_timeout, |c| {
            !c.sender.is_closed()
        }) {
            let tried = self.exchange(conn, key.clone(), target, req, opts).await;
            if let Some(result) = Failed::after_pooled_try(tried, "scanner") {
                return result;
            }
        }
        let conn = self
            .connect(addr, opts)
            .await
            .map_err(Failed::BeforeAnswer)?;
        self.exchange(conn, key, target, req, opts).await
    }

    async fn connect(&self, addr: &PeerAddr, opts: &ScanOptions) -> Result<Conn, ScanError> {
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
    ) -> Result<Verdict, Failed> {
        let request = build_request(target, req, opts).map_err(Failed::Final)?;
        if conn.sender.ready().await.is_err() {
            return Err(Failed::BeforeAnswer(ScanError::Closed));
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
                    Failed::BeforeAnswer(err)
                } else {
                    Failed::Final(err)
                });
            }
        };
        if interim.load(Ordering::Acquire) > MAX_INTERIM {
            clock.end();
            return Err(Failed::Final(ScanError::Protocol(format!(
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
        let verdict = result.map_err(Failed::Final)?;
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
        tracing::debug!("scanner answered {status}, whole body sent: {whole_body_sent}");
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
        sink.finish()
    }
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
