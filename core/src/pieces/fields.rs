//! Chunking uploaders that describe each piece in form fields or query arguments (Dropzone's
//! `dzuuid`/`dzchunkbyteoffset`/`dztotalfilesize`, resumable.js, Fine Uploader, plupload): the
//! operator names where the upload's key, the piece's place and the file's size are, each a
//! form field of the piece's multipart body or a value nginx evaluated (`$arg_...`). The piece
//! is the body's file part (or the whole body when it is no form).
//!
//! A piece's place is its byte offset, or its number and the uploader's chunk size
//! (resumable.js's `resumableChunkNumber`, plupload's `chunk`); the file's size is its length in
//! bytes, or its number of pieces (plupload's `chunks`: the file ends with the last piece). A
//! numbered piece that is not the last must be one chunk long: then a backend that writes each
//! piece at its offset and one that joins the pieces in the order of their numbers assemble the
//! same file.

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

/// Where a piece is in its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// Its first byte's offset.
    Offset(Source),
    /// Its number (the first is `first`: 0 or 1) times the chunk size.
    Numbered {
        number: Source,
        first: u64,
        chunk: Source,
    },
}

/// How big the file is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Size {
    /// In bytes.
    Bytes(Source),
    /// In pieces (with [`Place::Numbered`]).
    Pieces(Source),
}

/// Where the upload's key, the piece's place and the file's size are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSpec {
    pub key: Source,
    pub place: Place,
    pub size: Size,
    /// The uploader sends several pieces at once: they may come in any order.
    pub parallel: bool,
}

/// A piece as its form describes it.
pub struct Described {
    pub key: Vec<u8>,
    pub offset: u64,
    /// The file's length, when the piece tells it (by bytes, or being the last piece).
    pub total: Option<u64>,
    pub data: RequestBody,
}

/// Longest form field read for a value.
const MAX_VALUE: u64 = 1024;

fn number_of(v: &[u8], what: &str) -> Result<u64, ScanError> {
    super::number(v).ok_or_else(|| {
        ScanError::ambiguous(format!(
            "{what} \"{}\" is no number",
            String::from_utf8_lossy(v).escape_debug()
        ))
    })
}

/// A piece's form: its named fields and its file part, if any.
struct Form {
    fields: Vec<(String, RequestBody)>,
    file: Option<RequestBody>,
}

impl Form {
    /// The multipart form of the body, when it is one (else no fields, no file).
    fn read(
        body: &RequestBody,
        boundary: Option<&[u8]>,
        limits: multipart::Limits,
    ) -> Result<Form, ScanError> {
        let mut form = Form {
            fields: Vec::new(),
            file: None,
        };
        let Some(b) = boundary else {
            return Ok(form);
        };
        let split = multipart::split(body, b, FILE_CHUNK, limits).map_err(|e| match e {
            multipart::SplitError::Body(e) => ScanError::Body(e),
            e => ScanError::ambiguous(format!("multipart body: {e}")),
        })?;
        for p in &split.parts {
            let cd = p
                .header("content-disposition")
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default();
            let data = part_body(body, p.offset, p.len);
            if disposition::param(&cd, "filename").is_some() {
                if form.file.is_some() {
                    return Err(ScanError::ambiguous("a piece with two files"));
                }
                form.file = Some(data);
            } else if let Some(name) = disposition::param(&cd, "name") {
                form.fields.push((name, data));
            }
        }
        Ok(form)
    }

    /// The value `s` names: the one field of that name, or the value nginx evaluated.
    fn value(&self, s: &Source, what: &str) -> Result<Vec<u8>, ScanError> {
        match s {
            Source::Value(v) => Ok(v.clone()),
            Source::Field(name) => {
                let mut found = self.fields.iter().filter(|(n, _)| n == name);
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
    }

    /// A number the spec names.
    fn number(&self, s: &Source, what: &str) -> Result<u64, ScanError> {
        number_of(&self.value(s, what)?, what)
    }
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
    let form = Form::read(body, boundary.as_deref(), limits)?;
    let absent = match &spec.key {
        Source::Value(v) => v.is_empty(),
        Source::Field(name) => !form.fields.iter().any(|(n, _)| n == name),
    };
    if absent {
        return Ok(None);
    }
    let key = form.value(&spec.key, "the upload's key")?;
    let data = match &form.file {
        Some(f) => f.clone(),
        None if boundary::is_multipart(ct) => {
            return Err(ScanError::Unassembled("a piece without a file part".into()))
        }
        None => body.clone(),
    };
    let (offset, total) = place(spec, &form, data.len())?;
    Ok(Some(Described {
        key,
        offset,
        total,
        data,
    }))
}

/// Where a piece of `len` bytes goes, and the file's length when the piece tells it.
fn place(spec: &FieldSpec, form: &Form, len: u64) -> Result<(u64, Option<u64>), ScanError> {
    let numbered = match &spec.place {
        Place::Offset(_) => None,
        Place::Numbered {
            number,
            first,
            chunk,
        } => {
            let n = form.number(number, "the piece's number")?;
            let index = n.checked_sub(*first).ok_or_else(|| {
                ScanError::ambiguous(format!("a piece numbered {n}, before the first"))
            })?;
            let chunk = form.number(chunk, "the chunk size")?;
            if chunk == 0 {
                return Err(ScanError::ambiguous("a chunk size of 0"));
            }
            Some((index, chunk))
        }
    };
    let offset = match (&spec.place, numbered) {
        (Place::Offset(o), _) => form.number(o, "the piece's offset")?,
        (_, Some((index, chunk))) => index.checked_mul(chunk).ok_or_else(|| {
            ScanError::ambiguous(format!("a piece numbered {index} of {chunk} bytes"))
        })?,
        (_, None) => return Err(ScanError::Internal),
    };
    let end = offset
        .checked_add(len)
        .ok_or_else(|| ScanError::ambiguous("a piece past any file"))?;
    let (total, last) = match &spec.size {
        Size::Bytes(t) => {
            let total = form.number(t, "the file's length")?;
            (Some(total), end >= total)
        }
        Size::Pieces(c) => {
            let count = form.number(c, "the number of pieces")?;
            let index = numbered.ok_or(ScanError::Internal)?.0;
            if index >= count {
                return Err(ScanError::ambiguous(format!(
                    "piece {index} of a file of {count} pieces"
                )));
            }
            let last = index + 1 == count;
            (last.then_some(end), last)
        }
    };
    if let Some(t) = total.filter(|&t| end > t) {
        return Err(PieceError::Limit(format!(
            "a piece at {offset} of {len} bytes past the file's {t}"
        ))
        .into());
    }
    if let Some((_, chunk)) = numbered.filter(|&(_, chunk)| !last && len != chunk) {
        return Err(ScanError::ambiguous(format!(
            "a piece of {len} bytes, not the chunk size {chunk}, before the last: backends that \
             write pieces at their offsets and those that join them by number differ"
        )));
    }
    Ok((offset, total))
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
            place: Place::Offset(Source::Field("dzchunkbyteoffset".into())),
            size: Size::Bytes(Source::Field("dztotalfilesize".into())),
            parallel: false,
        }
    }

    fn values(number: &str, chunk: &str, count: &str) -> FieldSpec {
        FieldSpec {
            key: Source::Value(b"k".to_vec()),
            place: Place::Numbered {
                number: Source::Value(number.into()),
                first: 1,
                chunk: Source::Value(chunk.into()),
            },
            size: Size::Pieces(Source::Value(count.into())),
            parallel: true,
        }
    }

    #[test]
    fn a_numbered_piece_is_placed_by_its_number_and_the_chunk_size() {
        let describe = |spec: &FieldSpec, data: &[u8]| {
            describe(
                spec,
                &Vec::new(),
                &mem(&[data]),
                multipart::Limits::default(),
            )
        };
        let d = describe(&values("2", "4", "3"), b"abcd").unwrap().unwrap();
        assert_eq!((d.offset, d.total), (4, None));
        // The last piece gives the file's length; it may be longer than a chunk.
        let d = describe(&values("3", "4", "3"), b"abcdef")
            .unwrap()
            .unwrap();
        assert_eq!((d.offset, d.total), (8, Some(14)));
        // A piece before the last that is not one chunk long: the readings differ.
        assert!(describe(&values("1", "4", "3"), b"abc").is_err());
        assert!(describe(&values("0", "4", "3"), b"abcd").is_err());
        assert!(describe(&values("4", "4", "3"), b"abcd").is_err());
        assert!(describe(&values("1", "0", "3"), b"").is_err());
    }

    #[test]
    fn a_dropzone_chunk_is_described_by_its_fields() {
        let (h, b) = dropzone("u-1", 4, 10, b"chunk");
        let d = describe(&spec(), &h, &b, multipart::Limits::default())
            .unwrap()
            .unwrap();
        assert_eq!(
            (d.key.as_slice(), d.offset, d.total),
            (&b"u-1"[..], 4, Some(10))
        );
        assert_eq!(bytes_of(&d.data), b"chunk");
        let (h, b) = dropzone("u-1", 8, 10, b"chunk");
        assert!(describe(&spec(), &h, &b, multipart::Limits::default()).is_err());
        let values = FieldSpec {
            key: Source::Value(b"k".to_vec()),
            place: Place::Offset(Source::Value(b"0".to_vec())),
            size: Size::Bytes(Source::Value(b"3".to_vec())),
            parallel: false,
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
