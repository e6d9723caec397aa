//! The objects of a form to scan, each as a request of its own: the files of a multipart form
//! (decoded from base64 or quoted-printable), its plain fields together, the long values of a
//! url-encoded form, the base64 strings of a JSON body.

use bytes::Bytes;

use crate::body::decode::{self, Coding};
use crate::body::multipart::{self, part_body, Part};
use crate::body::{BodyPart, RequestBody, FILE_CHUNK};
use crate::disposition;
use crate::headers::{self, HeaderList};
use crate::scan::{ScanOptions, ScanRequest};

/// A url-encoded field value at least this long (encoded) is scanned decoded, on its own
/// (the EICAR test file is 68 bytes)...
pub const URLENCODED_FILE: u64 = 64;
/// ... the longest of them, up to this many.
pub const URLENCODED_MAX_VALUES: usize = 16;

/// One object to scan: a file part, or the fields together.
pub(super) struct Job {
    /// `field "name", file "a.gz"` for log lines.
    pub label: String,
    pub request: ScanRequest,
    /// The multipart part scanned as it is in the body (not decoded): a sanitized version of
    /// it can be put back into the form.
    pub place: Option<Part>,
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
pub(super) fn form_jobs(req: &ScanRequest, opts: &ScanOptions) -> Result<Option<Vec<Job>>, String> {
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
            place: coding_of(p).is_none().then(|| (*p).clone()),
        });
    }
    if !fields.is_empty() {
        jobs.push(Job {
            label: "the form fields".into(),
            request: fields_request(req, &fields, &boundary),
            place: None,
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
            place: None,
        });
    }
    jobs.push(Job {
        label: "the other form fields".into(),
        request: ScanRequest {
            body: urlencoded::without(&req.body, &long),
            ..req.clone()
        },
        place: None,
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
            place: None,
        });
    }
    if jobs.is_empty() {
        return None;
    }
    jobs.push(Job {
        label: "the JSON body".into(),
        request: req.clone(),
        place: None,
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
