//! Scanning what the backend will see of a request: its body decoded from its
//! `Content-Encoding` (gzip, deflate, br, zstd, in the order listed), then every object a
//! parser hands to the application (see [`crate::scan::jobs`]) as a scan of its own, sent as
//! if it had been uploaded alone (the client's request line and headers, the object's
//! `Content-Type`, `Content-Disposition` and length, its bytes as the body). A generic
//! scanner unpacks a compressed file at offset 0 but not after a part header; this is what
//! lets it see the file.
//!
//! Fails closed: a coding that cannot be decoded fails the scan (502), a bomb is refused
//! (413), a body that parsers would read differently is refused (400); a whole-body scan is
//! never the answer to an odd body.

use std::sync::Arc;
use std::time::Instant;

use tokio::task::JoinSet;

use crate::body::decode::{self, Coding};
use crate::headers;
use crate::scan::combine::{combine, rebuilt, Combined, Done};
use crate::scan::jobs::{objects, Job, Place};
use crate::scan::{ScanError, ScanOptions, ScanOutcome, ScanRequest, Scanner, Target, Verdict};

/// Scans of one form running at once.
pub const PARALLEL_PARTS: usize = 4;

impl Scanner {
    /// Scans what the backend will see of `req`: decoded, and object by object unless
    /// `opts.objects` is off (see the module docs).
    pub async fn scan_decoded(
        self: Arc<Self>,
        target: Target,
        req: ScanRequest,
        opts: ScanOptions,
    ) -> ScanOutcome {
        if let Some(name) = headers::forbidden_body_field(&req.headers) {
            return ScanOutcome::failed(ScanError::ambiguous(format!(
                "header \"{name}\" is not valid HTTP but could be read as a body header"
            )));
        }
        if let Some(coding) = headers::find(&req.headers, "grpc-encoding")
            .filter(|c| !c.trim_ascii().eq_ignore_ascii_case(b"identity"))
        {
            // Each gRPC message may be compressed on its own; they are not decoded here, and
            // the compressed bytes are not what the service reads.
            return ScanOutcome::failed(ScanError::ambiguous(format!(
                "gRPC messages compressed with \"{}\" are not decoded for the scan",
                String::from_utf8_lossy(coding).escape_debug()
            )));
        }
        let encoded = headers::find(&req.headers, "content-encoding").is_some();
        let req = match decoded(req, &opts) {
            Ok(r) => r,
            Err(e) => return ScanOutcome::failed(e),
        };
        if !opts.objects {
            let outcome = self.scan_object(&target, &req, &opts).await;
            return refuse_sanitized_decoded(outcome, encoded);
        }
        let jobs = match objects(&req, &opts) {
            Ok(jobs) => jobs,
            Err(e) => return ScanOutcome::failed(e),
        };
        if let [Job {
            place: Some(Place::Whole),
            ..
        }] = jobs.as_slice()
        {
            // Nothing but the body as sent.
            let outcome = self.scan_object(&target, &req, &opts).await;
            return refuse_sanitized_decoded(outcome, encoded);
        }
        let started = Instant::now();
        let count = jobs.len();
        let target = Arc::new(target);
        let opts = Arc::new(opts);
        match self
            .clone()
            .scan_jobs(jobs, target.clone(), opts.clone())
            .await
        {
            Combined::Decided(outcome) => {
                let mut outcome = *outcome;
                outcome.elapsed = started.elapsed();
                outcome.objects = count;
                refuse_sanitized_decoded(outcome, encoded)
            }
            Combined::Rebuild(done) => {
                let mut outcome = rebuilt(&req.body, done);
                outcome.elapsed = started.elapsed();
                outcome.objects = count;
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
        let mut done: Vec<Done> = Vec::new();
        loop {
            while running.len() < PARALLEL_PARTS {
                let Some(job) = pending.next() else { break };
                let (me, target, opts) = (self.clone(), target.clone(), opts.clone());
                running.spawn(async move {
                    let outcome = me.scan_object(&target, &job.request, &opts).await;
                    Done {
                        label: job.label,
                        place: job.place,
                        outcome,
                    }
                });
            }
            let Some(next) = running.join_next().await else {
                break;
            };
            let finished = match next {
                Ok(r) => r,
                Err(_) => {
                    return Combined::Decided(Box::new(ScanOutcome::failed(ScanError::Internal)))
                }
            };
            if let Ok(Verdict::Blocked { .. }) = finished.outcome.result {
                let label = &finished.label;
                tracing::debug!("part {label} blocked, the other scans are stopped");
                done.push(finished);
                // Scans that finished meanwhile count (their threats are named too); dropping
                // the set aborts those still running.
                while let Some(Ok(finished)) = running.try_join_next() {
                    done.push(finished);
                }
                return combine(done);
            }
            done.push(finished);
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

/// The request with its body decoded from its `Content-Encoding` list (`aws-chunked` first,
/// wherever S3's clients list it; then the others, last coding first), those headers dropped;
/// within the location's decoding limits.
pub(crate) fn decoded(req: ScanRequest, opts: &ScanOptions) -> Result<ScanRequest, ScanError> {
    let values = req
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(b"content-encoding"))
        .map(|(_, v)| v.as_ref());
    let mut codings = Coding::of_content_encoding(values).map_err(ScanError::Decode)?;
    let limits = &opts.body_limits.decode;
    let mut body = req.body.clone();
    if let Some(at) = codings.iter().position(|&c| c == Coding::AwsChunked) {
        codings.remove(at);
        if codings.contains(&Coding::AwsChunked) {
            return Err(ScanError::ambiguous(
                "Content-Encoding lists aws-chunked twice",
            ));
        }
        body = decode::decode_within(&body, Coding::AwsChunked, &opts.spill_dir, limits)?;
        let declared = req
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(b"x-amz-decoded-content-length"))
            .map(|(_, v)| {
                std::str::from_utf8(v)
                    .ok()
                    .and_then(|v| v.trim().parse::<u64>().ok())
            });
        match declared {
            Some(Some(n)) if n == body.len() => {}
            None => {}
            Some(_) => {
                return Err(ScanError::ambiguous(format!(
                    "the aws-chunked body holds {} bytes, not what x-amz-decoded-content-length \
                     says",
                    body.len()
                )))
            }
        }
        tracing::debug!("request body decoded (aws-chunked): {} bytes", body.len());
    }
    for &coding in codings.iter().rev() {
        body = decode::decode_within(&body, coding, &opts.spill_dir, limits)?;
        tracing::debug!(
            "request body decoded ({coding:?}): {} bytes to scan",
            body.len()
        );
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::testing::{bytes_of, mem};
    use bytes::Bytes;

    fn request(headers: &[(&str, &str)], body: &[u8]) -> ScanRequest {
        ScanRequest {
            method: Bytes::from_static(b"PUT"),
            uri: Bytes::from_static(b"/bucket/key"),
            headers: headers
                .iter()
                .map(|(n, v)| {
                    (
                        Bytes::copy_from_slice(n.as_bytes()),
                        Bytes::copy_from_slice(v.as_bytes()),
                    )
                })
                .collect(),
            host: None,
            client_addr: "127.0.0.1".into(),
            body: mem(&[body]),
            response: None,
        }
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn aws(data: &[u8]) -> Vec<u8> {
        let mut v = format!("{:x};chunk-signature=ab\r\n", data.len()).into_bytes();
        v.extend_from_slice(data);
        v.extend_from_slice(b"\r\n0;chunk-signature=cd\r\n\r\n");
        v
    }

    #[test]
    fn aws_chunked_is_undone_first_wherever_it_is_listed_and_its_length_checked() {
        let opts = ScanOptions::default();
        let text = b"the file as the store keeps it".repeat(100);
        let gz = gzip(&text);
        let len = gz.len().to_string();
        for ce in [
            "aws-chunked,gzip",
            "gzip, aws-chunked",
            "AWS-Chunked , gzip",
        ] {
            let req = request(
                &[
                    ("Content-Encoding", ce),
                    ("x-amz-decoded-content-length", &len),
                ],
                &aws(&gz),
            );
            let got = decoded(req, &opts).unwrap();
            assert_eq!(bytes_of(&got.body), text, "{ce}");
            assert!(!got
                .headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(b"content-encoding")));
        }
        let wrong = request(
            &[
                ("Content-Encoding", "aws-chunked"),
                ("x-amz-decoded-content-length", "5"),
            ],
            &aws(b"abcdef"),
        );
        assert!(matches!(
            decoded(wrong, &opts),
            Err(ScanError::Refused { status: 400, .. })
        ));
        let twice = request(
            &[("Content-Encoding", "aws-chunked, aws-chunked")],
            &aws(b"x"),
        );
        assert!(matches!(
            decoded(twice, &opts),
            Err(ScanError::Refused { status: 400, .. })
        ));
    }
}
