//! One REQMOD or RESPMOD, in named steps: the head (ICAP head and the encapsulated HTTP
//! request head, and for RESPMOD the response head), the preview (or the whole body), the rest after `100 Continue`, and the answer.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::body::{BodyReader, FILE_CHUNK};
use crate::headers;
use crate::icap::answer::read_answer;
use crate::icap::codec::{self as icap, IcapHead, Options, Transfer};
use crate::icap::io::{
    before_answer_or_final, push_chunk, read_head, send_watching, IcapConn, Out,
};
use crate::scan::{Failed, ScanError, ScanOptions, ScanRequest, Target, Verdict};

/// A REQMOD under way on a connection.
pub(super) struct Reqmod<'a> {
    conn: &'a mut IcapConn,
    req: &'a ScanRequest,
    opts: &'a ScanOptions,
    body: BodyReader,
    out: VecDeque<Out>,
    /// An answer came before everything was sent: the connection is not reused.
    pub cut_short: bool,
    /// ... and it came while the body after the preview (or the whole body, without preview)
    /// was being sent: only a block may be decided on part of the body.
    early_past_preview: bool,
    /// The server said `100 Continue`: it has answered, another server may not take over.
    continued: bool,
}

impl<'a> Reqmod<'a> {
    /// Queues the request head; the body follows in [`Reqmod::preview`] or
    /// [`Reqmod::whole`].
    pub fn head(
        conn: &'a mut IcapConn,
        target: &Target,
        service: &str,
        options: &Options,
        preview: Option<usize>,
        req: &'a ScanRequest,
        opts: &'a ScanOptions,
    ) -> Self {
        let has_body = !req.body.is_empty();
        // The request's own body is not sent with a response: no length is claimed for it.
        let request_length = req.response.is_none().then(|| req.body.len());
        let http_headers = headers::scan_headers(
            &req.headers,
            &req.default_host(target),
            request_length,
            &req.client_addr,
            &headers::HeaderRules {
                x_forwarded_for: opts.rules.x_forwarded_for,
                set_headers: vec![],
            },
        );
        let mut block = icap::http_request_block(&req.method, &req.uri, &http_headers);
        let mut icap_headers = icap_headers(options, preview, req, opts);
        let (method, encapsulated) = match &req.response {
            None if has_body => ("REQMOD", format!("req-hdr=0, req-body={}", block.len())),
            None => ("REQMOD", format!("req-hdr=0, null-body={}", block.len())),
            Some(res) => {
                let res_at = block.len();
                block.extend_from_slice(&icap::http_response_block(res.status, &res.headers));
                let body = if has_body { "res-body" } else { "null-body" };
                let at = block.len();
                (
                    "RESPMOD",
                    format!("req-hdr=0, res-hdr={res_at}, {body}={at}"),
                )
            }
        };
        icap_headers.push(("Encapsulated".into(), encapsulated));
        let authority = target.url.authority();
        let mut head = icap::request_head(method, &authority, service, &icap_headers);
        head.extend_from_slice(&block);
        let t = opts.timeouts;
        conn.clock.begin(t.send, t.read);
        Reqmod {
            conn,
            req,
            opts,
            body: req.body.reader(FILE_CHUNK),
            out: VecDeque::from([Out::Bytes(Bytes::from(head))]),
            cut_short: false,
            early_past_preview: false,
            continued: false,
        }
    }

    /// Sends the first `p` bytes, closed by `0; ieof` when they are the whole body, and
    /// returns the answer head (a final answer to the preview, or `100 Continue`).
    pub async fn preview(&mut self, p: usize) -> Result<(IcapHead, bool), Failed> {
        let mut got = 0;
        while got < p {
            match self.body.next_chunk_max(p - got) {
                Some(Ok(c)) => {
                    got += c.len();
                    push_chunk(&mut self.out, c);
                }
                Some(Err(e)) => return Err(Failed::Final(ScanError::Body(e))),
                None => break,
            }
        }
        let whole = p as u64 == self.req.body.len();
        self.out.push_back(Out::Bytes(Bytes::from_static(if whole {
            b"0; ieof\r\n\r\n"
        } else {
            b"0\r\n\r\n"
        })));
        let head = self.send(false).await?;
        Ok((head, whole))
    }

    /// After `100 Continue`: the rest of the body, then the answer head.
    pub async fn rest(&mut self) -> Result<IcapHead, Failed> {
        self.continued = true;
        self.conn.clock.disarm_read();
        self.send(true).await
    }

    /// Without preview: the whole body (if any), then the answer head.
    pub async fn whole(&mut self) -> Result<IcapHead, Failed> {
        let has_body = !self.req.body.is_empty();
        self.send(has_body).await
    }

    /// Sends what is queued (and, with `body`, the body after it) while watching for an early
    /// answer; then waits for the answer head.
    async fn send(&mut self, body: bool) -> Result<IcapHead, Failed> {
        let conn = &mut *self.conn;
        let clock = conn.clock.clone();
        let source = if body { Some(&mut self.body) } else { None };
        let early = send_watching(
            &mut conn.stream,
            &mut conn.buf,
            &mut self.out,
            source,
            &clock,
        );
        if let Some(head) = early.await? {
            self.cut_short = true;
            self.early_past_preview = body;
            return Ok(head);
        }
        clock.arm_read();
        let continued = self.continued;
        read_head(&mut conn.stream, &mut conn.buf, &clock)
            .await
            .map_err(|e| match continued {
                true => Failed::Final(e),
                false => before_answer_or_final(e, &conn.buf),
            })
    }

    /// Reads the answer whose head is `head` into a verdict.
    pub async fn answer(&mut self, head: &IcapHead) -> Result<Verdict, Failed> {
        if head.status == 100 {
            return Err(Failed::Final(ScanError::Protocol(
                "unexpected 100 Continue".into(),
            )));
        }
        let conn = &mut *self.conn;
        let clock = conn.clock.clone();
        let (mut rd, _) = tokio::io::split(&mut conn.stream);
        let respmod = self.req.response.as_ref().map(|r| r.status);
        let verdict = read_answer(&mut rd, &mut conn.buf, head, respmod, self.opts, &clock)
            .await
            .map_err(Failed::Final)?;
        clock.end();
        if self.early_past_preview && !matches!(verdict, Verdict::Blocked { .. }) {
            return Err(Failed::Final(ScanError::Protocol(format!(
                "ICAP server answered {} before it had the whole body",
                head.status
            ))));
        }
        Ok(verdict)
    }
}

/// The ICAP header fields of a REQMOD (without `Encapsulated`).
fn icap_headers(
    options: &Options,
    preview: Option<usize>,
    req: &ScanRequest,
    opts: &ScanOptions,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    if options.allow_204 {
        out.push(("Allow".into(), "204".into()));
    }
    if let Some(p) = preview {
        out.push(("Preview".into(), p.to_string()));
    }
    if opts.rules.x_forwarded_for {
        out.push(("X-Client-IP".into(), req.client_addr.clone()));
    }
    for (n, v) in &opts.rules.set_headers {
        let name = String::from_utf8_lossy(n).into_owned();
        if name.eq_ignore_ascii_case("encapsulated") || name.eq_ignore_ascii_case("host") {
            continue;
        }
        out.retain(|(have, _)| !have.eq_ignore_ascii_case(&name));
        if !v.is_empty() {
            out.push((name, String::from_utf8_lossy(v).into_owned()));
        }
    }
    out
}

/// How much of the body goes in the preview, if one is used.
pub(super) fn preview_size(transfer: Transfer, req: &ScanRequest) -> Option<usize> {
    match transfer {
        Transfer::Preview(p) if !req.body.is_empty() => {
            Some((p as u64).min(req.body.len()) as usize)
        }
        _ => None,
    }
}
