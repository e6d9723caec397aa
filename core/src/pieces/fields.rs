//! Chunking uploaders that describe each piece in form fields or query arguments (Dropzone's
//! `dzuuid`/`dzchunkbyteoffset`/`dztotalfilesize`, resumable.js, Fine Uploader, plupload): the
//! operator names where the upload's key, the piece's offset and the file's length are, each a
//! form field of the piece's multipart body or a value nginx evaluated (`$arg_...`). The piece
//! is the body's file part (or the whole body when it is no form).

use super::spool::PieceError;
use crate::body::multipart::{self, part_body};
use crate::body::{boundary, RequestBody, FILE_CHUNK};
use crate::disposition;
use crate::headers::{self, HeaderList};
use crate::scan::ScanError;

/// Where a value of the piece's description is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A form field of that name.
    Field(String),
    /// A value nginx evaluated.
    Value(Vec<u8>),
}

/// Where the upload's key, the piece's offset and the file's length are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSpec {
    pub key: Source,
    pub offset: Source,
    pub total: Source,
}

/// A piece as its form describes it.
pub struct Described {
    pub key: Vec<u8>,
    pub offset: u64,
    pub total: u64,
    pub data: RequestBody,
}

/// Longest form field read for a value.
const MAX_VALUE: u64 = 1024;

fn number(v: &[u8], what: &str) -> Result<u64, ScanError> {
    super::number(v).ok_or_else(|| {
        ScanError::ambiguous(format!(
            "the piece's {what} \"{}\" is no number",
            String::from_utf8_lossy(v).escape_debug()
        ))
    })
}

/// Reads the piece's description and data from its request; `None` when it names no upload
/// (an uploader sends a file smaller than a piece whole, without the fields).
pub fn describe(
    spec: &FieldSpec,
    headers: &HeaderList,
    body: &RequestBody,
    limits: multipart::Limits,
) -> Result<Option<Described>, ScanError> {
    let ct = headers::find(headers, "content-type").map_or(&[][..], |v| v.as_ref());
    let boundary = boundary::boundary(ct).map_err(|e| ScanError::ambiguous(e.to_string()))?;
    let mut fields: Vec<(String, RequestBody)> = Vec::new();
    let mut file: Option<RequestBody> = None;
    if let Some(b) = boundary {
        let form = multipart::split(body, &b, FILE_CHUNK, limits).map_err(|e| match e {
            multipart::SplitError::Body(e) => ScanError::Body(e),
            e => ScanError::ambiguous(format!("multipart body: {e}")),
        })?;
        for p in &form.parts {
            let cd = p
                .header("content-disposition")
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default();
            let data = part_body(body, p.offset, p.len);
            if disposition::param(&cd, "filename").is_some() {
                if file.is_some() {
                    return Err(ScanError::ambiguous("a piece with two files"));
                }
                file = Some(data);
            } else if let Some(name) = disposition::param(&cd, "name") {
                fields.push((name, data));
            }
        }
    }
    let value = |s: &Source, what: &str| -> Result<Vec<u8>, ScanError> {
        match s {
            Source::Value(v) => Ok(v.clone()),
            Source::Field(name) => {
                let mut found = fields.iter().filter(|(n, _)| n == name);
                let (_, v) = found.next().ok_or_else(|| {
                    ScanError::Unassembled(format!("no \"{name}\" field ({what})"))
                })?;
                if found.next().is_some() || v.len() > MAX_VALUE {
                    return Err(ScanError::ambiguous(format!(
                        "the field \"{name}\" twice, or too long"
                    )));
                }
                v.to_vec().map_err(ScanError::Body)
            }
        }
    };
    let absent = match &spec.key {
        Source::Value(v) => v.is_empty(),
        Source::Field(name) => !fields.iter().any(|(n, _)| n == name),
    };
    if absent {
        return Ok(None);
    }
    let key = value(&spec.key, "the upload's key")?;
    let offset = number(&value(&spec.offset, "the piece's offset")?, "offset")?;
    let total = number(&value(&spec.total, "the file's length")?, "length")?;
    let data = match file {
        Some(f) => f,
        None if boundary::is_multipart(ct) => {
            return Err(ScanError::Unassembled("a piece without a file part".into()))
        }
        None => body.clone(),
    };
    if offset.checked_add(data.len()).is_none_or(|end| end > total) {
        return Err(PieceError::Limit(format!(
            "a piece at {offset} of {} bytes past the file's {total}",
            data.len()
        ))
        .into());
    }
    Ok(Some(Described {
        key,
        offset,
        total,
        data,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::testing::{bytes_of, mem};
    use bytes::Bytes;

    fn dropzone(uuid: &str, offset: usize, total: usize, data: &[u8]) -> (HeaderList, RequestBody) {
        let mut body = Vec::new();
        for (n, v) in [
            ("dzuuid", uuid.to_string()),
            ("dzchunkbyteoffset", offset.to_string()),
            ("dztotalfilesize", total.to_string()),
        ] {
            body.extend_from_slice(
                format!("--B\r\nContent-Disposition: form-data; name=\"{n}\"\r\n\r\n{v}\r\n")
                    .as_bytes(),
            );
        }
        body.extend_from_slice(
            b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"blob\"\r\n\r\n",
        );
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n--B--\r\n");
        let headers = vec![(
            Bytes::from_static(b"Content-Type"),
            Bytes::from_static(b"multipart/form-data; boundary=B"),
        )];
        (headers, mem(&[&body]))
    }

    fn spec() -> FieldSpec {
        FieldSpec {
            key: Source::Field("dzuuid".into()),
            offset: Source::Field("dzchunkbyteoffset".into()),
            total: Source::Field("dztotalfilesize".into()),
        }
    }

    #[test]
    fn a_dropzone_chunk_is_described_by_its_fields() {
        let (h, b) = dropzone("u-1", 4, 10, b"chunk");
        let d = describe(&spec(), &h, &b, multipart::Limits::default())
            .unwrap()
            .unwrap();
        assert_eq!((d.key.as_slice(), d.offset, d.total), (&b"u-1"[..], 4, 10));
        assert_eq!(bytes_of(&d.data), b"chunk");
        let (h, b) = dropzone("u-1", 8, 10, b"chunk");
        assert!(describe(&spec(), &h, &b, multipart::Limits::default()).is_err());
        let values = FieldSpec {
            key: Source::Value(b"k".to_vec()),
            offset: Source::Value(b"0".to_vec()),
            total: Source::Value(b"3".to_vec()),
        };
        let d = describe(
            &values,
            &Vec::new(),
            &mem(&[b"raw"]),
            multipart::Limits::default(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(bytes_of(&d.data), b"raw");
        // A file sent whole, without the fields: no piece.
        let whole = FieldSpec {
            key: Source::Field("nope".into()),
            ..spec()
        };
        let (h, b) = dropzone("u-1", 0, 5, b"chunk");
        assert!(describe(&whole, &h, &b, multipart::Limits::default())
            .unwrap()
            .is_none());
    }
}
