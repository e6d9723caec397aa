//! Scanning a `multipart/form-data` request part by part: each file is one scan, sent as if it
//! had been uploaded alone (the client's request line and headers, the part's
//! `Content-Type`, `Content-Disposition` and length, the part's bytes as the body), and the
//! plain fields together as one more scan. A generic scanner unpacks a compressed file at
//! offset 0 but not after a part header; this is what lets it see the file.
//!
//! Fails closed: a body that does not split cleanly, a part in a transfer encoding, or a part
//! the scanner sanitized or could not parse makes the whole body one scan, as without this.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::task::JoinSet;

use crate::body::multipart::{self, part_body, Part};
use crate::body::{BodyPart, RequestBody, FILE_CHUNK};
use crate::disposition;
use crate::headers::{self, HeaderList};
use crate::scan::{ScanError, ScanOptions, ScanOutcome, ScanRequest, Scanner, Target, Verdict};

/// Scans of one form running at once.
pub const PARALLEL_PARTS: usize = 4;

/// One object to scan: a file part, or the fields together.
struct Job {
    /// `field "name", file "a.gz"` for log lines.
    label: String,
    request: ScanRequest,
}

impl Scanner {
    /// Scans `req`, part by part when it is a multipart form (see the module docs).
    pub async fn scan_form(
        self: Arc<Self>,
        target: Target,
        req: ScanRequest,
        opts: ScanOptions,
    ) -> ScanOutcome {
        let jobs = match form_jobs(&req) {
            Ok(Some(jobs)) => jobs,
            Ok(None) => return self.scan_report(&target, &req, &opts).await,
            Err(why) => {
                tracing::info!("multipart body scanned as one object: {why}");
                return self.scan_report(&target, &req, &opts).await;
            }
        };
        let started = Instant::now();
        let count = jobs.len();
        let target = Arc::new(target);
        let opts = Arc::new(opts);
        match self
            .clone()
            .scan_jobs(jobs, target.clone(), opts.clone())
            .await
        {
            Combined::Decided(mut outcome) => {
                outcome.elapsed = started.elapsed();
                outcome.objects = count;
                outcome
            }
            Combined::Whole(why) => {
                tracing::info!("multipart body scanned as one object: {why}");
                self.scan_report(&target, &req, &opts).await
            }
        }
    }

    /// Runs the scans, [`PARALLEL_PARTS`] at a time; the first block ends them all.
    async fn scan_jobs(
        self: Arc<Self>,
        jobs: Vec<Job>,
        target: Arc<Target>,
        opts: Arc<ScanOptions>,
    ) -> Combined {
        let mut pending = jobs.into_iter();
        let mut running = JoinSet::new();
        let mut done: Vec<(String, ScanOutcome)> = Vec::new();
        loop {
            while running.len() < PARALLEL_PARTS {
                let Some(job) = pending.next() else { break };
                let (me, target, opts) = (self.clone(), target.clone(), opts.clone());
                running.spawn(async move {
                    let outcome = me.scan_report(&target, &job.request, &opts).await;
                    (job.label, outcome)
                });
            }
            let Some(next) = running.join_next().await else {
                break;
            };
            let (label, outcome) = match next {
                Ok(r) => r,
                Err(_) => return Combined::Decided(failed(ScanError::Internal)),
            };
            if let Ok(Verdict::Blocked { .. }) = outcome.result {
                tracing::debug!("part {label} blocked, the other scans are stopped");
                done.push((label, outcome));
                // Dropping the set aborts the scans still running.
                return combine(done);
            }
            done.push((label, outcome));
        }
        combine(done)
    }
}

enum Combined {
    Decided(ScanOutcome),
    /// Scan the whole body instead, for this reason.
    Whole(String),
}

fn failed(e: ScanError) -> ScanOutcome {
    ScanOutcome {
        result: Err(e),
        server: None,
        status: None,
        elapsed: Default::default(),
        queued: false,
        objects: 0,
        part: None,
    }
}

/// The request's result from its parts': blocked if any is, failed if any failed, allowed if
/// all are; a sanitized part or a 400 sends the whole body to the scanner instead.
fn combine(done: Vec<(String, ScanOutcome)>) -> Combined {
    let blocked = done
        .iter()
        .position(|(_, o)| matches!(o.result, Ok(Verdict::Blocked { .. })));
    if let Some(i) = blocked {
        let mut done = done;
        let (label, mut outcome) = done.swap_remove(i);
        outcome.part = Some(label);
        return Combined::Decided(outcome);
    }
    if let Some(i) = done.iter().position(|(_, o)| o.result.is_err()) {
        let mut done = done;
        let (label, mut outcome) = done.swap_remove(i);
        outcome.part = Some(label);
        return Combined::Decided(outcome);
    }
    if let Some((label, _)) = done
        .iter()
        .find(|(_, o)| !matches!(o.result, Ok(Verdict::Allowed)))
    {
        return Combined::Whole(format!("the scanner did not simply allow {label}"));
    }
    let queued = done.iter().any(|(_, o)| o.queued);
    let last = done.into_iter().last();
    Combined::Decided(ScanOutcome {
        result: Ok(Verdict::Allowed),
        server: last.as_ref().and_then(|(_, o)| o.server),
        status: last.as_ref().and_then(|(_, o)| o.status),
        elapsed: Default::default(),
        queued,
        objects: 0,
        part: None,
    })
}

/// Whether a part carries a file: a file name, or a type other than plain text.
fn is_file(p: &Part) -> bool {
    let cd = p
        .header("content-disposition")
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default();
    if disposition::param(&cd, "filename").is_some()
        || disposition::param(&cd, "filename*").is_some()
    {
        return true;
    }
    p.header("content-type").is_some_and(|t| {
        let t = String::from_utf8_lossy(t).to_ascii_lowercase();
        !t.trim().starts_with("text/plain")
    })
}

fn label(p: &Part) -> String {
    let cd = p
        .header("content-disposition")
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default();
    let name = disposition::param(&cd, "name").unwrap_or_default();
    match disposition::param(&cd, "filename").or_else(|| disposition::param(&cd, "filename*")) {
        Some(f) => format!("field \"{name}\", file \"{f}\""),
        None => format!("field \"{name}\""),
    }
}

/// The scans of a form: `Ok(None)` when the request is no multipart form with a file in it,
/// `Err` when it must be scanned whole (why).
fn form_jobs(req: &ScanRequest) -> Result<Option<Vec<Job>>, String> {
    let Some(ct) = headers::find(&req.headers, "content-type") else {
        return Ok(None);
    };
    if !ct.to_ascii_lowercase().starts_with(b"multipart/") {
        return Ok(None);
    }
    let boundary = multipart::boundary(ct).ok_or("no usable boundary")?;
    let parts = multipart::split(&req.body, &boundary, FILE_CHUNK).map_err(|e| e.to_string())?;
    for p in &parts {
        if let Some(te) = p.header("content-transfer-encoding") {
            let te = String::from_utf8_lossy(te).to_ascii_lowercase();
            if !matches!(te.trim(), "7bit" | "8bit" | "binary") {
                return Err(format!("a part in the \"{te}\" transfer encoding"));
            }
        }
    }
    let (files, fields): (Vec<&Part>, Vec<&Part>) = parts.iter().partition(|p| is_file(p));
    if files.is_empty() {
        return Ok(None);
    }
    let mut jobs: Vec<Job> = files
        .iter()
        .map(|p| Job {
            label: label(p),
            request: file_request(req, p),
        })
        .collect();
    if !fields.is_empty() {
        jobs.push(Job {
            label: "the form fields".into(),
            request: fields_request(req, &fields, &boundary),
        });
    }
    Ok(Some(jobs))
}

/// A file part as a request of its own: the client's request line and headers, with the
/// part's `Content-Type` and `Content-Disposition` (the length follows from the body).
fn file_request(req: &ScanRequest, p: &Part) -> ScanRequest {
    let mut headers: HeaderList = req
        .headers
        .iter()
        .filter(|(n, _)| {
            !n.eq_ignore_ascii_case(b"content-type")
                && !n.eq_ignore_ascii_case(b"content-disposition")
                && !n.eq_ignore_ascii_case(b"content-length")
        })
        .cloned()
        .collect();
    let ct = p
        .header("content-type")
        .cloned()
        .unwrap_or_else(|| Bytes::from_static(b"application/octet-stream"));
    headers.push((Bytes::from_static(b"Content-Type"), ct));
    if let Some(cd) = p.header("content-disposition") {
        headers.push((Bytes::from_static(b"Content-Disposition"), cd.clone()));
    }
    ScanRequest {
        headers,
        body: part_body(&req.body, p.offset, p.len),
        ..req.clone()
    }
}

/// The plain fields as one multipart body of their own (same boundary, same headers).
fn fields_request(req: &ScanRequest, fields: &[&Part], boundary: &[u8]) -> ScanRequest {
    let mut body = RequestBody::new();
    for p in fields {
        let mut head = b"--".to_vec();
        head.extend_from_slice(boundary);
        head.extend_from_slice(b"\r\n");
        for (n, v) in &p.headers {
            head.extend_from_slice(n);
            head.extend_from_slice(b": ");
            head.extend_from_slice(v);
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(b"\r\n");
        body.push(BodyPart::Memory(Bytes::from(head)));
        for part in part_body(&req.body, p.offset, p.len).parts() {
            body.push(part.clone());
        }
        body.push(BodyPart::Memory(Bytes::from_static(b"\r\n")));
    }
    let mut end = b"--".to_vec();
    end.extend_from_slice(boundary);
    end.extend_from_slice(b"--\r\n");
    body.push(BodyPart::Memory(Bytes::from(end)));
    ScanRequest {
        body,
        ..req.clone()
    }
}
