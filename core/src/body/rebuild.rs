//! What reaches the backend when the scanner sanitized files of a form: the body as the client
//! sent it, byte for byte, except for each sanitized part, whose data is the scanner's and
//! whose header block is written again with the scanner's `Content-Type` and the file name of
//! the scanner's `Content-Disposition` (the rename rule of a whole body).
//!
//! The result holds no memory lent by nginx: kept memory ranges are copied (a body in memory is
//! at most nginx's body buffer), file ranges stay ranges of the same temp file, so a 1 GB form
//! with one sanitized part is never read into memory.

use bytes::Bytes;

use crate::body::multipart::{part_body, Part};
use crate::body::{BodyPart, RequestBody};
use crate::disposition::rename_filename;
use crate::scan::SanitizedBody;

/// One sanitized part: where it is, and what the scanner gave for it.
pub struct Replacement<'a> {
    pub part: &'a Part,
    pub body: SanitizedBody,
    pub content_type: Option<Bytes>,
    pub content_disposition: Option<Bytes>,
}

/// The form `original` with the parts of `replacements` replaced.
pub fn rebuild(original: &RequestBody, mut replacements: Vec<Replacement<'_>>) -> RequestBody {
    replacements.sort_by_key(|r| r.part.head_offset);
    let mut out = RequestBody::new();
    let mut at = 0u64;
    for r in replacements {
        keep(
            &mut out,
            original,
            at,
            r.part.head_offset.saturating_sub(at),
        );
        let len = r.body.len();
        out.push(BodyPart::Memory(Bytes::from(head_block(&r, len))));
        for piece in RequestBody::from(r.body).parts() {
            out.push(piece.clone());
        }
        at = r.part.offset + r.part.len;
    }
    keep(&mut out, original, at, original.len().saturating_sub(at));
    out
}

/// `len` bytes of the original from `offset`: memory copied, file ranges as they are.
fn keep(out: &mut RequestBody, original: &RequestBody, offset: u64, len: u64) {
    for p in part_body(original, offset, len).parts() {
        out.push(match p {
            BodyPart::Memory(b) => BodyPart::Memory(Bytes::copy_from_slice(b)),
            file => file.clone(),
        });
    }
}

/// The part's header block with the scanner's type (added when the part had none) and file
/// name (and the new length, if the part named one).
fn head_block(r: &Replacement<'_>, len: u64) -> Vec<u8> {
    let eol: &[u8] = if r.part.lf { b"\n" } else { b"\r\n" };
    let mut out = Vec::new();
    for (name, value) in &r.part.headers {
        let value = if name.eq_ignore_ascii_case(b"content-type") {
            r.content_type.clone().unwrap_or_else(|| value.clone())
        } else if name.eq_ignore_ascii_case(b"content-disposition") {
            renamed(value, r.content_disposition.as_deref())
        } else if name.eq_ignore_ascii_case(b"content-length") {
            Bytes::from(len.to_string())
        } else {
            value.clone()
        };
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(&value);
        out.extend_from_slice(eol);
    }
    let has_type = r
        .part
        .headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case(b"content-type"));
    if let (Some(ct), false) = (&r.content_type, has_type) {
        out.extend_from_slice(b"Content-Type: ");
        out.extend_from_slice(ct);
        out.extend_from_slice(eol);
    }
    out.extend_from_slice(eol);
    out
}

fn renamed(client: &Bytes, scanner: Option<&[u8]>) -> Bytes {
    let Some(scanner) = scanner else {
        return client.clone();
    };
    let client_text = String::from_utf8_lossy(client);
    match rename_filename(&client_text, &String::from_utf8_lossy(scanner)) {
        Some(v) => Bytes::from(v),
        None => client.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::multipart::split;
    use crate::body::testing::*;

    const FORM: &[u8] = b"--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n\
--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"bad.doc\"\r\n\
Content-Type: application/msword\r\n\r\nMACRO-INFECTED\r\n--XyZ--\r\n";

    #[test]
    fn only_the_sanitized_part_changes_and_its_name_and_type_follow_the_scanner() {
        // The body in three pieces, split across the part to replace.
        let body = mem(&[&FORM[..60], &FORM[60..150], &FORM[150..]]);
        let parts = split(&body, b"XyZ", 7, Default::default()).unwrap().parts;
        let r = Replacement {
            part: &parts[1],
            body: SanitizedBody::Memory(Bytes::from_static(b"clean")),
            content_type: Some(Bytes::from_static(b"text/plain")),
            content_disposition: Some(Bytes::from_static(b"attachment; filename=\"bad.doc.txt\"")),
        };
        let out = bytes_of(&rebuild(&body, vec![r]));
        let want: &[u8] =
            b"--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n\
--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"bad.doc.txt\"\r\n\
Content-Type: text/plain\r\n\r\nclean\r\n--XyZ--\r\n";
        assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(want));
        // Nothing lent is kept: every memory part is a copy.
        let rebuilt = rebuild(
            &body,
            vec![Replacement {
                part: &parts[1],
                body: SanitizedBody::Memory(Bytes::from_static(b"x")),
                content_type: None,
                content_disposition: None,
            }],
        );
        for p in rebuilt.parts() {
            if let BodyPart::Memory(m) = p {
                assert!(
                    body.parts().iter().all(|o| match o {
                        BodyPart::Memory(b) =>
                            !std::ptr::eq(b.as_ptr(), m.as_ptr()) || m.is_empty(),
                        _ => true,
                    }),
                    "a lent piece is kept"
                );
            }
        }
    }
}
