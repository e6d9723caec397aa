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
use crate::body::decode::{self, Coding};
use crate::body::multipart::{self, part_body, Part};
use crate::body::text::{is_text, Joined, JOIN_MAX};
use crate::body::{base64, boundary, json, json_check, urlencoded, RequestBody, FILE_CHUNK};
use crate::disposition;
use crate::headers::HeaderList;
use crate::scan::{ScanError, ScanOptions, ScanRequest};

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

    /// A value: together with the other text values when short text (and `join`: not seen as
    /// it is elsewhere), in a bundle when short binary, else alone; its base64 decoding alone
    /// too. `label` names it, made only when an object needs it.
    fn value(
        &mut self,
        label: &dyn Fn() -> String,
        body: RequestBody,
        join: bool,
        sniff: bool,
    ) -> Result<(), ScanError> {
        if body.len() <= JOIN_MAX as u64 {
            let bytes = body.to_vec().map_err(ScanError::Body)?;
            return self.short_value(label, &bytes, join, sniff);
        }
        if sniff {
            for decoded in base64::sniff(&body, &self.opts.spill_dir)? {
                self.object(format!("{} (base64)", label()), decoded, OCTETS)?;
            }
        }
        self.object(label(), body, OCTETS)
    }

    /// A value of at most [`JOIN_MAX`] bytes, in memory (as [`Jobs::value`]).
    fn short_value(
        &mut self,
        label: &dyn Fn() -> String,
        bytes: &[u8],
        join: bool,
        sniff: bool,
    ) -> Result<(), ScanError> {
        if sniff {
            for decoded in base64::sniff_bytes(bytes, &self.opts.spill_dir)? {
                self.object(format!("{} (base64)", label()), decoded, OCTETS)?;
            }
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
    if boundary::is_multipart(ct) {
        match boundary::boundary(ct) {
            Err(e) => return Err(ScanError::ambiguous(e.to_string())),
            Ok(Some(b)) => return multipart_jobs(req, opts, &b),
            // No parser splits it: the body is what they all see.
            Ok(None) => {}
        }
    }
    let mut jobs = Jobs::new(req, opts);
    jobs.push(Job {
        label: "the body".into(),
        request: req.clone(),
        place: Some(Place::Whole),
    })?;
    let ct_lower = ct.trim_ascii_start().to_ascii_lowercase();
    let form = ct_lower.starts_with(b"application/x-www-form-urlencoded");
    if form {
        urlencoded_jobs(&mut jobs)?;
    }
    let essence = ct_lower
        .split(|&b| b == b';')
        .next()
        .unwrap_or(&[])
        .trim_ascii();
    let by_type = essence == b"application/json" || essence.ends_with(b"+json");
    // Read as JSON too whatever the type says (PHP's json_decode(php://input) and Django's
    // json.loads(request.body) do not look at it) when it begins with `{` or `[` — but only a
    // body that some parser takes for JSON has a JSON reading, and only as far as its value.
    let json = json_check::accepted(&req.body, !by_type).map_err(ScanError::Body)?;
    if let Some(len) = json {
        json_jobs(&mut jobs, len)?;
    }
    jobs.finish(if form {
        "the form fields"
    } else {
        "the text values"
    })
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
        }
    }
    out
}

/// A multipart form, part by part.
fn multipart_jobs(
    req: &ScanRequest,
    opts: &ScanOptions,
    boundary: &[u8],
) -> Result<Vec<Job>, ScanError> {
    let form = multipart::split(&req.body, boundary, FILE_CHUNK, opts.body_limits.multipart)
        .map_err(|e| match e {
            multipart::SplitError::Body(e) => ScanError::Body(e),
            e if e.is_limit() => ScanError::over_limit(format!("multipart body: {e}")),
            e => ScanError::ambiguous(format!("multipart body: {e}")),
        })?;
    let mut jobs = Jobs::new(req, opts);
    for (what, (offset, len)) in [
        ("the preamble", form.preamble),
        ("the epilogue", form.epilogue),
    ] {
        let range = part_body(&req.body, offset, len);
        if len > 0 && !blank(&range)? {
            jobs.value(&|| what.to_string(), range, true, true)?;
        }
    }
    for p in &form.parts {
        let data = part_body(&req.body, p.offset, p.len);
        let label = label(p);
        let codings = codings(p);
        let b64 = codings.contains(&Coding::Base64);
        for &coding in &codings {
            let decoded = match coding {
                Coding::Base64 => base64::declared(&data, &opts.spill_dir)?,
                c => vec![decode::decode_within(
                    &data,
                    c,
                    &opts.spill_dir,
                    &opts.body_limits.decode,
                )?],
            };
            for d in decoded {
                jobs.object(
                    format!("{label} ({coding:?}-decoded)"),
                    d,
                    b"application/octet-stream",
                )?;
            }
        }
        if !is_file(p) && p.len <= JOIN_MAX as u64 {
            jobs.value(&|| label.clone(), data, true, !b64)?;
            continue;
        }
        if !b64 {
            for decoded in base64::sniff(&data, &opts.spill_dir)? {
                let label = format!("{label} (base64)");
                jobs.object(label, decoded, b"application/octet-stream")?;
            }
        }
        let mut request = file_request(req, p);
        request.body = data;
        jobs.push(Job {
            label,
            request,
            place: Some(Place::Part(p.clone())),
        })?;
    }
    jobs.finish("the text fields")
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

/// A url-encoded form: every name and value decoded.
fn urlencoded_jobs(jobs: &mut Jobs<'_>) -> Result<(), ScanError> {
    let (req, opts) = (jobs.req, jobs.opts);
    let max = opts.body_limits.max_fields;
    let each = urlencoded::each_field(&req.body, max, |f| {
        let name = || {
            let raw = part_body(&req.body, f.name.0, f.name.1.min(64 * 3))
                .to_vec()
                .unwrap_or_default();
            String::from_utf8_lossy(&urlencoded::decode_bytes(&raw))
                .chars()
                .take(64)
                .collect::<String>()
        };
        for (what, range) in [("name of", Some(f.name)), ("field", f.value)] {
            let Some(range) = range.filter(|r| r.1 > 0) else {
                continue;
            };
            let label = || format!("{what} \"{}\"", name());
            if range.1 <= JOIN_MAX as u64 {
                let raw = part_body(&req.body, range.0, range.1)
                    .to_vec()
                    .map_err(ScanError::Body)?;
                let changed = urlencoded::changes(&raw);
                let decoded = urlencoded::decode_bytes(&raw);
                jobs.short_value(&label, &decoded, changed, true)?;
            } else {
                let decoded = urlencoded::decode_range(&req.body, range, &opts.spill_dir)?;
                jobs.value(&label, decoded, true, true)?;
            }
        }
        Ok(())
    })?;
    each.map_err(|max| ScanError::over_limit(format!("more than {max} url-encoded fields")))
}

/// A JSON body: every string unescaped.
fn json_jobs(jobs: &mut Jobs<'_>, len: u64) -> Result<(), ScanError> {
    let (req, opts) = (jobs.req, jobs.opts);
    // Past this many alone, strings are scanned in archives: room is left for the archives
    // and for the jobs of the rest of the request.
    let alone = opts.body_limits.max_objects.saturating_sub(jobs.jobs.len()) / 2;
    let value = req.body.slice(0, len);
    let strings = json::strings(&value, &opts.spill_dir, alone)?;
    if let Some(body) = strings.joined {
        jobs.object("the escaped JSON strings".into(), body, b"text/plain")?;
    }
    for (key, body) in strings.alone {
        jobs.object(
            format!("JSON key \"{key}\""),
            body,
            b"application/octet-stream",
        )?;
    }
    for (key, body) in strings.decoded {
        jobs.object(
            format!("JSON key \"{key}\" (base64)"),
            body,
            b"application/octet-stream",
        )?;
    }
    for (i, tar) in strings.bundled.into_iter().enumerate() {
        jobs.object(
            format!("JSON strings ({})", i + 1),
            tar,
            b"application/x-tar",
        )?;
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_carry_no_control_characters() {
        assert_eq!(
            printable("JSON key \"a\nforged [error] line\u{1b}[31m\""),
            "JSON key \"a\\x0aforged [error] line\\x1b[31m\""
        );
    }
}
