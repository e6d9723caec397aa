//! Scanning a backend's response before the client gets it (`ometascan_response`): the body
//! as the client will read it, decoded from the response's `Content-Encoding`, sent as one
//! object with the client's request line and the response's status and header fields
//! (ICAP RESPMOD; for the HTTP protocol and clamd see docs/protocol.md and docs/clamd.md).
//! A response whose status is interim (`1xx`, which nginx relays as final with the final
//! response in its body) is scanned as the final response clients read behind it.

use std::sync::Arc;

use bytes::Bytes;

use crate::body::decode::{self, Coding};
use crate::scan::{ScanError, ScanOptions, ScanOutcome, ScanRequest, Scanner, Target};

impl Scanner {
    /// Scans the response that `req.response` describes and `req.body` holds.
    pub async fn scan_response(
        self: Arc<Self>,
        target: Target,
        req: ScanRequest,
        opts: ScanOptions,
    ) -> ScanOutcome {
        match decoded(req, &opts) {
            Ok(req) => self.scan_object(&target, &req, &opts).await,
            Err(e) => ScanOutcome::failed(e),
        }
    }
}

/// The response with its body decoded from its `Content-Encoding` list (last coding first),
/// that field dropped; bounded as a request body's decoding is.
fn decoded(mut req: ScanRequest, opts: &ScanOptions) -> Result<ScanRequest, ScanError> {
    let Some(res) = req.response.as_mut() else {
        return Err(ScanError::Module(
            "a response scan without a response".into(),
        ));
    };
    let limits = &opts.body_limits.decode;
    if (100..200).contains(&res.status) {
        let (head, body) = super::relayed::final_response(
            res.status,
            &req.body,
            &opts.spill_dir,
            limits.max_bytes,
        )?;
        tracing::debug!(
            "response relayed behind status {}: the final response {} with {} bytes",
            res.status,
            head.status,
            body.len()
        );
        *res = head;
        req.body = body;
    }
    let values = res
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(b"content-encoding"))
        .map(|(_, v)| v.as_ref());
    let codings = Coding::of_content_encoding(values).map_err(ScanError::Decode)?;
    for &coding in codings.iter().rev() {
        req.body = decode::decode_within(&req.body, coding, &opts.spill_dir, limits)?;
        tracing::debug!(
            "response body decoded ({coding:?}): {} bytes to scan",
            req.body.len()
        );
    }
    // The fields describe what is scanned: no coding left, its own length.
    res.headers.retain(|(n, _)| {
        !n.eq_ignore_ascii_case(b"content-encoding") && !n.eq_ignore_ascii_case(b"content-length")
    });
    res.headers.push((
        Bytes::from_static(b"Content-Length"),
        Bytes::from(req.body.len().to_string()),
    ));
    Ok(req)
}
