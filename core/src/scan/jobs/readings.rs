//! How backends read an object — the request body, or anything a reading of it hands over —
//! by its declared type and by its content: the readings [`crate::scan::jobs`] applies to it.
//!
//! One rule, at every depth: an object is read as a multipart body when its type is
//! `multipart/*` with a boundary, as url-encoded when its type says so (and, where Rack
//! would, when it has none), as JSON when its type says so or its first character opens a
//! JSON value, as XML likewise, and as text in the charset its type names. What a reading
//! hands over is an object again, read the same way one level deeper, up to the location's
//! `depth=` (over it: 413).

use crate::body::nested::{json_start, looks_urlencoded};
use crate::body::{boundary, charset, json_check, xml, RequestBody};
use crate::disposition;
use crate::scan::ScanError;

/// Bytes of an object looked at to tell what it is.
const HEAD: usize = 1024;

/// What an object is read as besides being scanned as it is.
#[derive(Debug, Default)]
pub(super) struct Readings {
    /// A multipart body with this boundary.
    pub multipart: Option<Vec<u8>>,
    pub urlencoded: bool,
    /// A JSON document whose value lies in the first this many bytes.
    pub json: Option<u64>,
    pub xml: bool,
    /// Text in this charset (not UTF-8 nor ASCII), decoded by the backends that read it.
    pub charset: Option<String>,
}

impl Readings {
    pub fn any(&self) -> bool {
        self.multipart.is_some()
            || self.urlencoded
            || self.json.is_some()
            || self.xml
            || self.charset.is_some()
    }
}

/// A media type's essence, lowercased: `application/json` of `Application/JSON; charset=x`.
pub(super) fn essence(ct: &[u8]) -> Vec<u8> {
    ct.split(|&b| b == b';')
        .next()
        .unwrap_or(&[])
        .trim_ascii()
        .to_ascii_lowercase()
}

/// The charset a type names, unless it is one whose decoding is the bytes themselves for
/// the backends that read it (UTF-8, ASCII).
pub(super) fn charset_of(ct: &[u8]) -> Option<String> {
    let ct = String::from_utf8_lossy(ct);
    let cs = disposition::param(&ct, "charset")?;
    let cs = cs.trim().trim_matches('"').to_ascii_lowercase();
    match cs.as_str() {
        "" | "utf-8" | "utf8" | "unicode-1-1-utf-8" | "unicode11utf8" | "unicode20utf8"
        | "x-unicode20utf8" => None,
        _ => Some(cs),
    }
}

/// The first bytes of an object.
pub(super) fn head(body: &RequestBody) -> Result<Vec<u8>, ScanError> {
    let mut r = body.reader(HEAD);
    let mut out = Vec::with_capacity(HEAD.min(body.len() as usize));
    while out.len() < HEAD {
        match r.next_chunk_max(HEAD - out.len()) {
            Some(c) => out.extend_from_slice(&c.map_err(ScanError::Body)?),
            None => break,
        }
    }
    Ok(out)
}

/// What the object `body`, declared as `ct` (empty: no type), is read as. `untyped_form`:
/// whether a body without a type is a url-encoded form (for the request's own body: Rack's
/// reading of a `POST` without one); `None`: when its content looks like one (an object a
/// reading handed over, which an application may decode again).
pub(super) fn readings(
    body: &RequestBody,
    ct: &[u8],
    untyped_form: Option<bool>,
) -> Result<Readings, ScanError> {
    let mut r = Readings::default();
    let essence = essence(ct);
    if boundary::is_multipart(ct) {
        r.multipart = boundary::boundary(ct).map_err(|e| ScanError::ambiguous(e.to_string()))?;
        if r.multipart.is_some() {
            return Ok(r);
        }
    }
    let head = head(body)?;
    r.urlencoded = essence == b"application/x-www-form-urlencoded"
        || (essence.is_empty()
            && match untyped_form {
                Some(rack) => rack && rack_decodes(body)?,
                None => looks_urlencoded(&head),
            });
    let json_type = essence == b"application/json" || essence.ends_with(b"+json");
    if json_type || json_start(&head) {
        r.json = json_check::accepted(body, !json_type).map_err(ScanError::Body)?;
    }
    r.xml = essence == b"text/xml"
        || essence == b"application/xml"
        || essence.ends_with(b"+xml")
        || xml::looks_like(&head);
    r.charset = charset_of(ct).filter(|_| !r.urlencoded);
    if let Some(cs) = &r.charset {
        // A charset no backend could decode this with is no reading; one the module cannot
        // decode is refused rather than passed.
        charset::to_utf8(cs.as_bytes(), b"")
            .map_err(|e| ScanError::ambiguous(format!("a body in charset \"{}\"", e.0)))?;
    }
    Ok(r)
}

/// Whether Rack hands a form over for this body: it decodes every name and value with
/// `URI.decode_www_form_component`, which raises on a `%` without two hex digits after it, and
/// then the application gets no form at all (a binary body nearly always has one).
fn rack_decodes(body: &RequestBody) -> Result<bool, ScanError> {
    let mut reader = body.reader(crate::body::FILE_CHUNK);
    // The bytes after a `%` still to be seen, across pieces.
    let mut owed = 0usize;
    while let Some(chunk) = reader.next_chunk() {
        let chunk = chunk.map_err(ScanError::Body)?;
        let mut i = 0;
        while owed > 0 && i < chunk.len() {
            if !chunk[i].is_ascii_hexdigit() {
                return Ok(false);
            }
            owed -= 1;
            i += 1;
        }
        for at in memchr::memchr_iter(b'%', &chunk[i..]) {
            let rest = &chunk[i + at + 1..];
            let seen = rest.len().min(2);
            if !rest[..seen].iter().all(u8::is_ascii_hexdigit) {
                return Ok(false);
            }
            owed = 2 - seen;
        }
    }
    Ok(owed == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rack_decodes_only_bodies_without_a_bad_escape() {
        use crate::body::testing::mem;
        assert!(rack_decodes(&mem(&[b"a=%1f%8B&b=c+d"])).unwrap());
        assert!(rack_decodes(&mem(&[b"a=%1", b"f&b"])).unwrap());
        assert!(!rack_decodes(&mem(&[b"a=%1", b"g"])).unwrap());
        assert!(!rack_decodes(&mem(&[b"a=100%"])).unwrap());
        assert!(!rack_decodes(&mem(&[b"\x00%zz binary"])).unwrap());
        assert!(rack_decodes(&mem(&[b"no escapes at all"])).unwrap());
    }

    #[test]
    fn charsets_that_decode_to_the_bytes_are_none() {
        assert_eq!(charset_of(b"text/plain; charset=UTF-8"), None);
        assert_eq!(charset_of(b"text/plain; charset=\"utf8\""), None);
        assert_eq!(charset_of(b"text/plain"), None);
        assert_eq!(
            charset_of(b"text/plain; charset=\"UTF-16\""),
            Some("utf-16".into())
        );
    }
}
