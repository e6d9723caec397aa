//! The objects of a request to scan, each as a request of its own: everything a mainstream
//! parser hands to the application, as it hands it over.
//!
//! - A `multipart/*` body: each part's data alone (files, binary fields, fields over
//!   [`JOIN_MAX`]), short text fields together, each part decoded from every transfer
//!   encoding a parser applies (base64, quoted-printable) and from base64 when it is base64,
//!   and a preamble or an epilogue with content in it; no scan of the whole body (no parser
//!   hands it over as one object).
//! - Any other body as sent (every framework exposes it raw), and besides:
//!   - `application/x-www-form-urlencoded`: every name and value decoded, short text ones
//!     together, the rest alone, base64 ones decoded;
//!   - JSON (by type or by content): every string unescaped, short text ones together, long
//!     or binary ones alone, base64 ones decoded.
//!
//! A body that parsers would read differently is refused (400), one over a limit of this
//! reading too (413): see [`crate::body::multipart`] and [`crate::body::boundary`].

use bytes::Bytes;

use crate::body::bundle::Bundle;
use crate::body::decode::Coding;
use crate::body::multipart::Part;
use crate::body::text::{is_text, Joined, JOIN_MAX};
use crate::body::{base64, RequestBody, FILE_CHUNK};
use crate::disposition;
use crate::headers::HeaderList;
use crate::scan::{ScanError, ScanOptions, ScanRequest};

mod read;
mod readings;

/// Where a scanned object is in the request: what a sanitized version of it replaces.
#[derive(Debug, Clone)]
pub enum Place {
    /// The whole body, as sent.
    Whole,
    /// A multipart part's data, as it is in the body.
    Part(Part),
}

/// One object to scan.
pub(super) struct Job {
    /// `field "name", file "a.gz"` for log lines.
    pub label: String,
    pub request: ScanRequest,
    /// Where it is in the request, when it is scanned as it is there (not decoded, not
    /// joined): a sanitized version of it can be put in its place.
    pub place: Option<Place>,
}

const OCTETS: &[u8] = b"application/octet-stream";

/// Collects the jobs of a request, counting those scanned alone.
struct Jobs<'a> {
    req: &'a ScanRequest,
    opts: &'a ScanOptions,
    jobs: Vec<Job>,
    joined: Joined<'a>,
    bundle: Bundle<'a>,
}

impl<'a> Jobs<'a> {
    fn new(req: &'a ScanRequest, opts: &'a ScanOptions) -> Self {
        Jobs {
            req,
            opts,
            jobs: Vec::new(),
            joined: Joined::new(&opts.spill_dir),
            bundle: Bundle::new(&opts.spill_dir),
        }
    }

    fn push(&mut self, mut job: Job) -> Result<(), ScanError> {
        let max = self.opts.body_limits.max_objects;
        if self.jobs.len() >= max {
            return Err(ScanError::over_limit(format!(
                "more than {max} objects to scan in one request"
            )));
        }
        job.label = printable(&job.label);
        self.jobs.push(job);
        Ok(())
    }

    /// An object of the module's making (decoded, unescaped), sent as a file.
    fn object(
        &mut self,
        label: String,
        body: RequestBody,
        ct: &'static [u8],
    ) -> Result<(), ScanError> {
        let headers = as_file(self.req, Bytes::from_static(ct), None);
        self.push(Job {
            label,
            request: ScanRequest {
                headers,
                body,
                ..self.req.clone()
            },
            place: None,
        })
    }

    /// A value at `depth`, declared as `ct` (empty: no type): scanned together with the other
    /// text values when short text (and `join`: not seen as it is elsewhere), in a bundle when
    /// short binary, else alone; its base64 decoding too (`sniff`); and read as a body in
    /// turn. `label` names it, made only when an object needs it.
    fn value(
        &mut self,
        label: &dyn Fn() -> String,
        body: RequestBody,
        ct: &[u8],
        join: bool,
        sniff: bool,
        depth: usize,
    ) -> Result<(), ScanError> {
        if body.len() <= JOIN_MAX as u64 {
            let bytes = body.to_vec().map_err(ScanError::Body)?;
            return self.short_value(label, &bytes, ct, join, sniff, depth);
        }
        if sniff {
            for decoded in base64::sniff(&body, &self.opts.spill_dir)? {
                self.decoded(format!("{} (base64)", label()), decoded, depth + 1)?;
            }
        }
        self.read(label, &body, ct, depth)?;
        self.object(label(), body, OCTETS)
    }

    /// A value of at most [`JOIN_MAX`] bytes, in memory (as [`Jobs::value`]).
    fn short_value(
        &mut self,
        label: &dyn Fn() -> String,
        bytes: &[u8],
        ct: &[u8],
        join: bool,
        sniff: bool,
        depth: usize,
    ) -> Result<(), ScanError> {
        if sniff {
            for decoded in base64::sniff_bytes(bytes, &self.opts.spill_dir)? {
                self.decoded(format!("{} (base64)", label()), decoded, depth + 1)?;
            }
        }
        if !ct.is_empty() || crate::body::nested::may_be_body(bytes) {
            self.read(label, &RequestBody::memory(bytes), ct, depth)?;
        }
        if is_text(bytes) {
            if join {
                self.joined.push(bytes)?;
            }
        } else {
            self.bundle.push(bytes)?;
        }
        Ok(())
    }

    /// A decoding the module made of a value (base64, a transfer encoding): scanned alone,
    /// and read by its content (and `ct`) in turn.
    fn decoded(&mut self, label: String, body: RequestBody, depth: usize) -> Result<(), ScanError> {
        self.decoded_as(label, body, b"", depth)
    }

    fn decoded_as(
        &mut self,
        label: String,
        body: RequestBody,
        ct: &[u8],
        depth: usize,
    ) -> Result<(), ScanError> {
        self.read(&|| label.clone(), &body, ct, depth)?;
        self.object(label, body, OCTETS)
    }

    fn finish(mut self, label: &str) -> Result<Vec<Job>, ScanError> {
        let dir = &self.opts.spill_dir;
        let joined = std::mem::replace(&mut self.joined, Joined::new(dir));
        if let Some(body) = joined.finish()? {
            self.object(label.to_string(), body, b"text/plain")?;
        }
        let bundle = std::mem::replace(&mut self.bundle, Bundle::new(dir));
        for (i, tar) in bundle.finish()?.into_iter().enumerate() {
            self.object(
                format!("short binary values ({})", i + 1),
                tar,
                b"application/x-tar",
            )?;
        }
        Ok(self.jobs)
    }
}

/// A label for the error log: names, keys and file names are the client's, so control
/// characters (an escaped newline in a JSON key) are written as `\xNN`, never as themselves.
fn printable(label: &str) -> String {
    let mut out = String::with_capacity(label.len());
    for c in label.chars() {
        if c.is_control() {
            out.push_str(&format!("\\x{:02x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// Every object of the request to scan (at least one).
pub(super) fn objects(req: &ScanRequest, opts: &ScanOptions) -> Result<Vec<Job>, ScanError> {
    let types: Vec<&Bytes> = req
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(b"content-type"))
        .map(|(_, v)| v)
        .collect();
    if types.iter().any(|t| *t != types[0]) {
        return Err(ScanError::ambiguous(
            "two Content-Type headers that differ (parsers take either)",
        ));
    }
    let ct: &[u8] = types.first().map_or(&[], |t| t.as_ref());
    // Rack reads a POST body without a type (or with an empty one) as a url-encoded form.
    let rack = req.method.eq_ignore_ascii_case(b"POST") && req.response.is_none();
    let found = readings::readings(&req.body, ct, Some(rack))?;
    let mut jobs = Jobs::new(req, opts);
    if found.multipart.is_none() {
        // No parser hands a multipart body over as one object; any other body is handed
        // over as sent by every framework.
        jobs.push(Job {
            label: "the body".into(),
            request: req.clone(),
            place: Some(Place::Whole),
        })?;
    }
    let label = if found.multipart.is_some() {
        "the text fields"
    } else if found.urlencoded {
        "the form fields"
    } else {
        "the text values"
    };
    jobs.read_as(&|| "the body".into(), &req.body, ct, found, 0)?;
    jobs.finish(label)
}

/// Whether a part declares a file: a file name, or a type other than plain text, in any of
/// its headers.
fn is_file(p: &Part) -> bool {
    let named = p.headers_named("content-disposition").any(|cd| {
        let cd = String::from_utf8_lossy(cd);
        disposition::param(&cd, "filename").is_some()
            || disposition::param(&cd, "filename*").is_some()
            || cd.to_ascii_lowercase().contains("filename")
    });
    named
        || p.headers_named("content-type").any(|t| {
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

/// The transfer encodings some parser applies to the part (Django decodes base64; the
/// lenient ones take the first word of any of its `Content-Transfer-Encoding` headers).
fn codings(p: &Part) -> Vec<Coding> {
    let mut out = Vec::new();
    for te in p.headers_named("content-transfer-encoding") {
        let te = String::from_utf8_lossy(te).to_ascii_lowercase();
        let word = te.split([';', ' ', '\t', ',']).next().unwrap_or("").trim();
        let coding = match word {
            "base64" => Coding::Base64,
            "quoted-printable" => Coding::QuotedPrintable,
            _ => continue,
        };
        if !out.contains(&coding) {
            out.push(coding);
            if coding == Coding::QuotedPrintable {
                out.push(Coding::QuotedPrintableBinascii);
            }
        }
    }
    out
}

/// Whether a range holds only white space (an ordinary preamble or epilogue).
fn blank(body: &RequestBody) -> Result<bool, ScanError> {
    let mut r = body.reader(FILE_CHUNK);
    while let Some(c) = r.next_chunk() {
        if !c
            .map_err(ScanError::Body)?
            .iter()
            .all(u8::is_ascii_whitespace)
        {
            return Ok(false);
        }
    }
    Ok(true)
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
/// part's `Content-Type` and `Content-Disposition`, `data` as the body.
fn file_request(req: &ScanRequest, p: &Part, data: RequestBody) -> ScanRequest {
    let ct = p
        .header("content-type")
        .cloned()
        .unwrap_or_else(|| Bytes::from_static(b"application/octet-stream"));
    let headers = as_file(req, ct, p.header("content-disposition"));
    ScanRequest {
        headers,
        body: data,
        ..req.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::testing::{bytes_of, mem};
    use ::base64::Engine as _;

    const PAYLOAD: &[u8] =
        b"\x1f\x8b a binary payload the scanner must see alone, long enough to be taken for a file";

    fn b64(data: &[u8]) -> String {
        ::base64::engine::general_purpose::STANDARD.encode(data)
    }

    fn post(ct: Option<&str>, body: &[u8]) -> ScanRequest {
        let mut headers: HeaderList = Vec::new();
        if let Some(ct) = ct {
            headers.push((
                Bytes::from_static(b"Content-Type"),
                Bytes::copy_from_slice(ct.as_bytes()),
            ));
        }
        ScanRequest {
            method: Bytes::from_static(b"POST"),
            uri: Bytes::from_static(b"/upload"),
            headers,
            host: None,
            client_addr: "127.0.0.1".into(),
            body: mem(&[body]),
            response: None,
        }
    }

    /// The bodies of every job, or the refusal's status.
    fn scanned(req: &ScanRequest, opts: &ScanOptions) -> Result<Vec<Vec<u8>>, u16> {
        match objects(req, opts) {
            Ok(jobs) => Ok(jobs.iter().map(|j| bytes_of(&j.request.body)).collect()),
            Err(ScanError::Refused { status, .. }) => Err(status),
            Err(e) => panic!("{e}"),
        }
    }

    fn alone(req: &ScanRequest) -> bool {
        scanned(req, &ScanOptions::default())
            .unwrap()
            .iter()
            .any(|b| b.as_slice() == PAYLOAD)
    }

    fn form(parts: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (head, data) in parts {
            out.extend_from_slice(b"--XyZ\r\n");
            out.extend_from_slice(head.as_bytes());
            out.extend_from_slice(b"\r\n\r\n");
            out.extend_from_slice(data);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"--XyZ--\r\n");
        out
    }

    #[test]
    fn json_in_a_form_field_is_read_as_json() {
        let ops = format!(
            r#"{{"query":"mutation($f: Upload!)","variables":{{"file":"data:application/gzip;base64,{}"}}}}"#,
            b64(PAYLOAD)
        );
        let body = form(&[
            (
                "Content-Disposition: form-data; name=\"operations\"",
                ops.as_bytes(),
            ),
            ("Content-Disposition: form-data; name=\"map\"", b"{}"),
        ]);
        assert!(alone(&post(
            Some("multipart/form-data; boundary=XyZ"),
            &body
        )));
        let url = format!(
            "payload={}",
            urlencoding(&format!(r#"{{"f":"{}"}}"#, b64(PAYLOAD)))
        );
        assert!(alone(&post(
            Some("application/x-www-form-urlencoded"),
            url.as_bytes()
        )));
    }

    fn urlencoding(s: &str) -> String {
        s.bytes().map(|b| format!("%{b:02X}")).collect()
    }

    #[test]
    fn a_document_that_is_one_string_is_json() {
        let doc = format!("\"{}\"", b64(PAYLOAD));
        assert!(alone(&post(Some("text/plain"), doc.as_bytes())));
        assert!(alone(&post(None, doc.as_bytes())));
    }

    #[test]
    fn a_multipart_part_inside_a_form_is_split() {
        let mut inner = b"--in\r\nContent-Disposition: file; filename=\"a.bin\"\r\n\r\n".to_vec();
        inner.extend_from_slice(PAYLOAD);
        inner.extend_from_slice(b"\r\n--in--\r\n");
        let body = form(&[(
            "Content-Disposition: form-data; name=\"files\"\r\nContent-Type: multipart/mixed; boundary=in",
            &inner,
        )]);
        assert!(alone(&post(
            Some("multipart/form-data; boundary=XyZ"),
            &body
        )));
    }

    #[test]
    fn a_post_without_a_type_is_read_as_a_form_as_rack_does() {
        let encoded: String = PAYLOAD.iter().map(|b| format!("%{b:02X}")).collect();
        let raw = format!("a=1&file={encoded}");
        let seen = |req: &ScanRequest| {
            scanned(req, &ScanOptions::default())
                .unwrap()
                .iter()
                .any(|b| b.windows(PAYLOAD.len()).any(|w| w == PAYLOAD))
        };
        assert!(seen(&post(None, raw.as_bytes())));
        assert!(seen(&post(Some(""), raw.as_bytes())));
        let mut put = post(None, raw.as_bytes());
        put.method = Bytes::from_static(b"PUT");
        assert!(!seen(&put));
    }

    #[test]
    fn bodies_nested_deeper_than_the_limit_are_refused() {
        let mut v = format!("\"{}\"", b64(PAYLOAD));
        for _ in 0..3 {
            v = format!("{{\"v\":{}}}", json_string(&v));
        }
        let req = post(Some("application/json"), v.as_bytes());
        assert!(alone(&req));
        let mut opts = ScanOptions::default();
        opts.body_limits.max_depth = 3;
        assert_eq!(scanned(&req, &opts), Err(413));
    }

    fn json_string(s: &str) -> String {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    }

    #[test]
    fn labels_carry_no_control_characters() {
        assert_eq!(
            printable("JSON key \"a\nforged [error] line\u{1b}[31m\""),
            "JSON key \"a\\x0aforged [error] line\\x1b[31m\""
        );
    }
}
