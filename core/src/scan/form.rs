//! Scanning a `multipart/form-data` request part by part: each file is one scan, sent as if it
//! had been uploaded alone (the client's request line and headers, the part's
//! `Content-Type`, `Content-Disposition` and length, the part's bytes as the body), and the
//! plain fields together as one more scan. A generic scanner unpacks a compressed file at
//! offset 0 but not after a part header; this is what lets it see the file.
//!
//! Before that, a body in a `Content-Encoding` (gzip, deflate, br, zstd) is decoded, and a
//! base64 or quoted-printable part too: the scanner gets what the backend will use.
//!
//! Fails closed: a body that does not split cleanly, a part in another transfer encoding, or a
//! part the scanner sanitized or could not parse makes the whole body one scan, as without
//! this; a coding that cannot be decoded fails the scan (502), a bomb is refused (413).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::task::JoinSet;

use crate::body::decode::{self, Coding};
use crate::body::multipart::{self, part_body, Part};
use crate::body::{BodyPart, RequestBody, FILE_CHUNK};
use crate::cache::CacheStatus;
use crate::disposition;
use crate::headers::{self, HeaderList};
use crate::scan::{ScanError, ScanOptions, ScanOutcome, ScanRequest, Scanner, Target, Verdict};

/// A url-encoded field value at least this long (encoded) is scanned decoded, on its own
/// (the EICAR test file is 68 bytes)...
pub const URLENCODED_FILE: u64 = 64;
/// ... the longest of them, up to this many.
pub const URLENCODED_MAX_VALUES: usize = 16;

/// Scans of one form running at once.
pub const PARALLEL_PARTS: usize = 4;

/// One object to scan: a file part, or the fields together.
struct Job {
    /// `field "name", file "a.gz"` for log lines.
    label: String,
    request: ScanRequest,
}

impl Scanner {
    /// Scans what the backend will see of `req`: decoded, and part by part when it is a
    /// multipart form and `multipart` is on (see the module docs).
    pub async fn scan_decoded(
        self: Arc<Self>,
        target: Target,
        req: ScanRequest,
        opts: ScanOptions,
        multipart: bool,
    ) -> ScanOutcome {
        let encoded = headers::find(&req.headers, "content-encoding").is_some();
        let req = match decoded(req, &opts) {
            Ok(r) => r,
            Err(e) => return ScanOutcome::failed(e),
        };
        if !multipart {
            let outcome = self.scan_object(&target, &req, &opts).await;
            return refuse_sanitized_decoded(outcome, encoded);
        }
        let jobs = match form_jobs(&req, &opts) {
            Ok(Some(jobs)) => jobs,
            Ok(None) => {
                let outcome = self.scan_object(&target, &req, &opts).await;
                return refuse_sanitized_decoded(outcome, encoded);
            }
            Err(why) => {
                tracing::info!("multipart body scanned as one object: {why}");
                let outcome = self.scan_object(&target, &req, &opts).await;
                return refuse_sanitized_decoded(outcome, encoded);
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
                let outcome = self.scan_object(&target, &req, &opts).await;
                refuse_sanitized_decoded(outcome, encoded)
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
                    let outcome = me.scan_object(&target, &job.request, &opts).await;
                    (job.label, outcome)
                });
            }
            let Some(next) = running.join_next().await else {
                break;
            };
            let (label, outcome) = match next {
                Ok(r) => r,
                Err(_) => return Combined::Decided(ScanOutcome::failed(ScanError::Internal)),
            };
            if let Ok(Verdict::Blocked { .. }) = outcome.result {
                tracing::debug!("part {label} blocked, the other scans are stopped");
                done.push((label, outcome));
                // Scans that finished meanwhile count (their threats are named too); dropping
                // the set aborts those still running.
                while let Some(Ok(finished)) = running.try_join_next() {
                    done.push(finished);
                }
                return combine(done);
            }
            done.push((label, outcome));
        }
        combine(done)
    }
}

/// A body that was decoded for scanning cannot take the scanner's replacement: the backend
/// would get it under the client's `Content-Encoding`. That is a failure, not a pass.
fn refuse_sanitized_decoded(outcome: ScanOutcome, encoded: bool) -> ScanOutcome {
    if encoded && matches!(outcome.result, Ok(Verdict::Sanitized { .. })) {
        return ScanOutcome {
            result: Err(ScanError::Decode(
                "the scanner sanitized a body decoded from its Content-Encoding".into(),
            )),
            ..outcome
        };
    }
    outcome
}

enum Combined {
    Decided(ScanOutcome),
    /// Scan the whole body instead, for this reason.
    Whole(String),
}

/// The request's result from its parts': blocked if any is, failed if any failed, allowed if
/// all are; a sanitized part or a 400 sends the whole body to the scanner instead.
fn combine(done: Vec<(String, ScanOutcome)>) -> Combined {
    let blocked = done
        .iter()
        .position(|(_, o)| matches!(o.result, Ok(Verdict::Blocked { .. })));
    if let Some(i) = blocked {
        // Every threat known when the scans stopped (those still running were not waited for).
        let threats: Vec<String> = done
            .iter()
            .filter_map(|(_, o)| match &o.result {
                Ok(Verdict::Blocked {
                    threat: Some(t), ..
                }) => Some(t.clone()),
                _ => None,
            })
            .collect();
        let mut done = done;
        let (label, mut outcome) = done.swap_remove(i);
        if let Ok(Verdict::Blocked { threat, .. }) = &mut outcome.result {
            if threats.len() > 1 {
                *threat = Some(threats.join(", "));
            }
        }
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
    let cache = done
        .iter()
        .fold(None, |c, (_, o)| CacheStatus::worst(c, o.cache));
    let last = done.into_iter().last();
    Combined::Decided(ScanOutcome {
        result: Ok(Verdict::Allowed),
        server: last.as_ref().and_then(|(_, o)| o.server),
        status: last.as_ref().and_then(|(_, o)| o.status),
        elapsed: Default::default(),
        queued,
        objects: 0,
        part: None,
        cache,
    })
}

/// The request with its body decoded from its `Content-Encoding`, that header dropped.
fn decoded(req: ScanRequest, opts: &ScanOptions) -> Result<ScanRequest, ScanError> {
    let Some(ce) = headers::find(&req.headers, "content-encoding") else {
        return Ok(req);
    };
    let Some(coding) = Coding::of_content_encoding(ce).map_err(ScanError::Decode)? else {
        return Ok(req);
    };
    let body = decode::decode(&req.body, coding, &opts.spill_dir)?;
    tracing::debug!(
        "request body decoded ({coding:?}): {} bytes to scan",
        body.len()
    );
    let headers = req
        .headers
        .iter()
        .filter(|(n, _)| !n.eq_ignore_ascii_case(b"content-encoding"))
        .cloned()
        .collect();
    Ok(ScanRequest {
        headers,
        body,
        ..req
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
fn form_jobs(req: &ScanRequest, opts: &ScanOptions) -> Result<Option<Vec<Job>>, String> {
    let Some(ct) = headers::find(&req.headers, "content-type") else {
        return Ok(None);
    };
    let ct_lower = ct.to_ascii_lowercase();
    if ct_lower.starts_with(b"application/x-www-form-urlencoded") {
        return urlencoded_jobs(req, opts);
    }
    let essence = ct_lower
        .split(|&b| b == b';')
        .next()
        .unwrap_or(&[])
        .trim_ascii();
    if essence == b"application/json" || essence.ends_with(b"+json") {
        return Ok(json_jobs(req, opts));
    }
    if !ct_lower.starts_with(b"multipart/") {
        return Ok(None);
    }
    let boundary = multipart::boundary(ct).ok_or("no usable boundary")?;
    let parts = multipart::split(&req.body, &boundary, FILE_CHUNK).map_err(|e| e.to_string())?;
    // A part in base64 or quoted-printable is scanned decoded, as a file of its own.
    let mut encoded: Vec<(u64, Coding)> = Vec::new();
    for p in &parts {
        if let Some(te) = p.header("content-transfer-encoding") {
            let te = String::from_utf8_lossy(te).trim().to_ascii_lowercase();
            match te.as_str() {
                "7bit" | "8bit" | "binary" => {}
                "base64" => encoded.push((p.offset, Coding::Base64)),
                "quoted-printable" => encoded.push((p.offset, Coding::QuotedPrintable)),
                _ => return Err(format!("a part in the \"{te}\" transfer encoding")),
            }
        }
    }
    let coding_of = |p: &Part| encoded.iter().find(|(o, _)| *o == p.offset).map(|e| e.1);
    let (files, fields): (Vec<&Part>, Vec<&Part>) = parts
        .iter()
        .partition(|p| is_file(p) || coding_of(p).is_some());
    if files.is_empty() {
        return Ok(None);
    }
    let mut jobs = Vec::with_capacity(files.len() + 1);
    for p in &files {
        let mut request = file_request(req, p);
        if let Some(coding) = coding_of(p) {
            request.body = decode::decode(&request.body, coding, &opts.spill_dir)
                .map_err(|e| format!("{} could not be decoded ({e})", label(p)))?;
        }
        jobs.push(Job {
            label: label(p),
            request,
        });
    }
    if !fields.is_empty() {
        jobs.push(Job {
            label: "the form fields".into(),
            request: fields_request(req, &fields, &boundary),
        });
    }
    Ok(Some(jobs))
}

/// A url-encoded form: each long value decoded as an object of its own (a file sent as a
/// field), the rest of the form as sent.
fn urlencoded_jobs(req: &ScanRequest, opts: &ScanOptions) -> Result<Option<Vec<Job>>, String> {
    use crate::body::urlencoded;
    let Some(fields) = urlencoded::fields(&req.body).map_err(|e| e.to_string())? else {
        return Err("too many fields or a field name too long".into());
    };
    let mut long: Vec<&urlencoded::Field> =
        fields.iter().filter(|f| f.len >= URLENCODED_FILE).collect();
    long.sort_by_key(|f| std::cmp::Reverse(f.len));
    long.truncate(URLENCODED_MAX_VALUES);
    long.sort_by_key(|f| f.offset);
    if long.is_empty() {
        return Ok(None);
    }
    let mut jobs = Vec::with_capacity(long.len() + 1);
    for f in &long {
        let name = String::from_utf8_lossy(&f.name).into_owned();
        let body = urlencoded::decode_value(&req.body, f, &opts.spill_dir)
            .map_err(|e| format!("field \"{name}\" could not be decoded ({e})"))?;
        let headers = as_file(req, Bytes::from_static(b"application/octet-stream"), None);
        jobs.push(Job {
            label: format!("field \"{name}\""),
            request: ScanRequest {
                headers,
                body,
                ..req.clone()
            },
        });
    }
    jobs.push(Job {
        label: "the other form fields".into(),
        request: ScanRequest {
            body: urlencoded::without(&req.body, &long),
            ..req.clone()
        },
    });
    Ok(Some(jobs))
}

/// A JSON body: each long base64 string decoded as a file of its own (named by its key), and
/// the body as sent. A string that does not decode is no file: it is scanned with the body.
fn json_jobs(req: &ScanRequest, opts: &ScanOptions) -> Option<Vec<Job>> {
    use crate::body::json;
    let strings = json::base64_strings(&req.body).ok()?;
    let mut jobs = Vec::new();
    for s in strings {
        let range = part_body(&req.body, s.offset, s.len);
        let Ok(body) = decode::decode(&range, Coding::Base64, &opts.spill_dir) else {
            continue;
        };
        let headers = as_file(req, Bytes::from_static(b"application/octet-stream"), None);
        jobs.push(Job {
            label: format!("JSON key \"{}\"", s.key),
            request: ScanRequest {
                headers,
                body,
                ..req.clone()
            },
        });
    }
    if jobs.is_empty() {
        return None;
    }
    jobs.push(Job {
        label: "the JSON body".into(),
        request: req.clone(),
    });
    Some(jobs)
}

/// The client's headers for an object sent as a file of its own: its `Content-Type` and
/// `Content-Disposition` instead of the client's (the length follows from the body).
fn as_file(req: &ScanRequest, content_type: Bytes, disposition: Option<&Bytes>) -> HeaderList {
    let mut headers: HeaderList = req
        .headers
        .iter()
        .filter(|(n, _)| {
            !n.eq_ignore_ascii_case(b"content-type")
                && !n.eq_ignore_ascii_case(b"content-disposition")
                && !n.eq_ignore_ascii_case(b"content-length")
                && !n.eq_ignore_ascii_case(b"content-transfer-encoding")
        })
        .cloned()
        .collect();
    headers.push((Bytes::from_static(b"Content-Type"), content_type));
    if let Some(cd) = disposition {
        headers.push((Bytes::from_static(b"Content-Disposition"), cd.clone()));
    }
    headers
}

/// A file part as a request of its own: the client's request line and headers, with the
/// part's `Content-Type` and `Content-Disposition`.
fn file_request(req: &ScanRequest, p: &Part) -> ScanRequest {
    let ct = p
        .header("content-type")
        .cloned()
        .unwrap_or_else(|| Bytes::from_static(b"application/octet-stream"));
    let headers = as_file(req, ct, p.header("content-disposition"));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::ResponsePage;

    fn outcome(result: Result<Verdict, ScanError>) -> ScanOutcome {
        ScanOutcome {
            result,
            ..ScanOutcome::failed(ScanError::Internal)
        }
    }

    fn blocked(threat: &str) -> ScanOutcome {
        outcome(Ok(Verdict::Blocked {
            page: ResponsePage {
                status: 403,
                headers: vec![],
                body: Bytes::from_static(b"blocked"),
                head_length: None,
            },
            threat: Some(threat.into()),
        }))
    }

    #[test]
    fn every_blocked_part_known_is_named_in_the_threat_and_the_first_decides() {
        let done = vec![
            ("a".to_string(), outcome(Ok(Verdict::Allowed))),
            ("b".to_string(), blocked("Eicar.A")),
            ("c".to_string(), blocked("Eicar.B")),
        ];
        let Combined::Decided(o) = combine(done) else {
            panic!("not decided");
        };
        assert_eq!(o.part.as_deref(), Some("b"));
        match o.result {
            Ok(Verdict::Blocked { threat, page }) => {
                assert_eq!(threat.as_deref(), Some("Eicar.A, Eicar.B"));
                assert_eq!(page.status, 403);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_failed_part_fails_the_form_and_all_allowed_allow_it() {
        let done = vec![
            ("a".to_string(), outcome(Ok(Verdict::Allowed))),
            ("b".to_string(), outcome(Err(ScanError::ReadTimeout))),
        ];
        let Combined::Decided(o) = combine(done) else {
            panic!("not decided");
        };
        assert!(matches!(o.result, Err(ScanError::ReadTimeout)));
        let done = vec![("a".to_string(), outcome(Ok(Verdict::Allowed)))];
        let Combined::Decided(o) = combine(done) else {
            panic!("not decided");
        };
        assert!(matches!(o.result, Ok(Verdict::Allowed)));
    }
}
