//! Files uploaded in pieces: the module keeps its own copy of what the backend assembles
//! ([`spool`]), applies each piece to it before the piece is forwarded, and scans the
//! assembled file before the request that completes it is forwarded.
//!
//! Protocols: tus 1.0 (creation with `Upload-Length`, learnt from the backend's `201` and its
//! `Location`, with the first bytes a creation-with-upload carried; `PATCH` with
//! `Upload-Offset`, and `Upload-Length` where the length was deferred; termination by `DELETE`;
//! concatenation: a final upload joins its partial uploads), chunking uploaders that describe
//! their pieces in fields ([`fields`]), and `Content-Range` on `PUT`/`PATCH` (Apache's mod_dav
//! writes the range into the file it serves: the file as it then stands is scanned after
//! every piece; a `PUT` without a range writes the file whole), and S3's multipart uploads
//! ([`s3`]).
//!
//! A piece of an upload the module holds no copy of, or whose offset does not fit the copy,
//! could complete a file that cannot be scanned whole: it is refused (409), as a failure that
//! `ometascan_on_error pass` lets through. A piece of a blocked upload is refused (403).

pub mod fields;
pub mod s3;
mod scan;
pub mod spool;

pub use spool::{PieceError, Spool, SpoolLimits};

use crate::headers::{self, HeaderList};

/// A request that writes a piece of an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// The upload's key: the path of the tus upload URL, or of the file a `PUT` writes.
    pub key: Vec<u8>,
    pub offset: u64,
    /// The upload's length, when this request announces it (tus's deferred length).
    pub total: Option<u64>,
    pub kind: Kind,
    /// Where a chunking uploader's piece says what it is ([`Kind::Fields`]).
    pub fields: Option<fields::FieldSpec>,
}

/// How the backend puts the pieces together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// tus: the file is exposed once complete; a piece resends from its offset (what the copy
    /// holds past it goes).
    Tus,
    /// A tus creation that carries the upload's first bytes (creation-with-upload): they are
    /// kept under a key of the request's own until the backend's answer names the upload
    /// ([`Spool::adopt`]).
    TusCreation,
    /// A tus final upload (concatenation): the partial uploads it names, in order, assembled.
    TusFinal { parts: Vec<Vec<u8>> },
    /// `Content-Range` on `PUT`/`PATCH`: the backend writes the piece into the file it serves,
    /// which is scanned as it then stands after every piece; `whole`: a `PUT` of the whole file
    /// (no `Content-Range`) replaces it.
    Range { whole: bool },
    /// An S3 part: kept, decoded, under its number.
    S3Part { number: u32 },
    /// An S3 completion: the parts it lists, assembled.
    S3Complete,
    /// A chunking uploader's piece, described by its form's fields or by values nginx
    /// evaluated: written at its offset; the file is scanned once it holds its length.
    Fields,
}

/// A decimal header value, strictly (digits only, no sign, no spaces inside).
fn number(v: &[u8]) -> Option<u64> {
    let v = v.trim_ascii();
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// The one value of a header, refusing two that differ.
fn single<'a>(headers: &'a HeaderList, name: &str) -> Result<Option<&'a [u8]>, String> {
    let mut values = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
        .map(|(_, v)| v.as_ref());
    let first = values.next();
    if values.any(|v| Some(v) != first) {
        return Err(format!("two \"{name}\" headers that differ"));
    }
    Ok(first)
}

/// The path of a URI or of an absolute URL (`http://host/files/x?y` → `/files/x`), the key of a
/// tus upload.
pub fn upload_key(uri: &[u8]) -> Vec<u8> {
    let rest = match memchr::memmem::find(uri, b"://") {
        Some(i) => {
            let after = &uri[i + 3..];
            match memchr::memchr(b'/', after) {
                Some(j) => &after[j..],
                None => b"/",
            }
        }
        None => uri,
    };
    let end = memchr::memchr2(b'?', b'#', rest).unwrap_or(rest.len());
    rest[..end].to_vec()
}

/// What a tus request is: a `PATCH` with `Upload-Offset` writes a piece; anything else is no
/// piece (`None`). A `PATCH` whose offset cannot be read is an error (refused).
pub fn tus_piece(method: &[u8], uri: &[u8], headers: &HeaderList) -> Result<Option<Piece>, String> {
    if !method.eq_ignore_ascii_case(b"PATCH") {
        return Ok(None);
    }
    let Some(offset) = single(headers, "upload-offset")? else {
        return Ok(None);
    };
    let offset = number(offset).ok_or("an \"Upload-Offset\" that is no number")?;
    let total = match single(headers, "upload-length")? {
        Some(v) => Some(number(v).ok_or("an \"Upload-Length\" that is no number")?),
        None => None,
    };
    Ok(Some(Piece {
        key: upload_key(uri),
        offset,
        total,
        kind: Kind::Tus,
        fields: None,
    }))
}

/// What a `PUT` or `PATCH` is to a backend that honours `Content-Range` (Apache's mod_dav): a
/// piece at the range's first byte, or (a `PUT` without one) the whole file. The range must
/// be `bytes first-last/length-or-*` with as many bytes as the body holds.
pub fn range_piece(
    method: &[u8],
    uri: &[u8],
    headers: &HeaderList,
    body_len: u64,
) -> Result<Option<Piece>, String> {
    let put = method.eq_ignore_ascii_case(b"PUT");
    if !put && !method.eq_ignore_ascii_case(b"PATCH") {
        return Ok(None);
    }
    let key = upload_key(uri);
    let Some(range) = single(headers, "content-range")? else {
        return Ok(put.then_some(Piece {
            key,
            offset: 0,
            total: None,
            kind: Kind::Range { whole: true },
            fields: None,
        }));
    };
    let bad = || {
        format!(
            "a \"Content-Range\" that is not \"bytes first-last/length\": \"{}\"",
            String::from_utf8_lossy(range).escape_debug()
        )
    };
    let rest = range.trim_ascii().strip_prefix(b"bytes ").ok_or_else(bad)?;
    let slash = memchr::memchr(b'/', rest).ok_or_else(bad)?;
    let span = &rest[..slash];
    let dash = memchr::memchr(b'-', span).ok_or_else(bad)?;
    let first = number(&span[..dash]).ok_or_else(bad)?;
    let last = number(&span[dash + 1..]).ok_or_else(bad)?;
    if last < first || last - first + 1 != body_len {
        return Err(format!(
            "a \"Content-Range\" of {} bytes for a body of {body_len}",
            last.saturating_sub(first).saturating_add(1)
        ));
    }
    Ok(Some(Piece {
        key,
        offset: first,
        total: None,
        kind: Kind::Range { whole: false },
        fields: None,
    }))
}

/// The length a tus creation request announces (`POST` with `Upload-Length`), if it is one
/// (a final upload of a concatenation is none: the module keeps no copy of it).
pub fn tus_creation(method: &[u8], headers: &HeaderList) -> Option<Option<u64>> {
    if !method.eq_ignore_ascii_case(b"POST") || headers::find(headers, "tus-resumable").is_none() {
        return None;
    }
    if headers::find(headers, "upload-concat").is_some_and(|v| is_final(v)) {
        return None;
    }
    match headers::find(headers, "upload-length") {
        Some(v) => number(v).map(Some),
        // Upload-Defer-Length: 1: the length comes with a later piece.
        None => Some(None),
    }
}

fn is_final(concat: &[u8]) -> bool {
    concat.trim_ascii().starts_with(b"final;")
}

/// A tus `POST` that is a piece: a final upload of a concatenation (the partial uploads it
/// names), or a creation that carries data (kept under `provisional` until the backend names
/// the upload).
pub fn tus_post(
    method: &[u8],
    headers: &HeaderList,
    body_len: u64,
    provisional: &[u8],
) -> Result<Option<Piece>, String> {
    if !method.eq_ignore_ascii_case(b"POST") || single(headers, "tus-resumable")?.is_none() {
        return Ok(None);
    }
    let piece = |kind| Piece {
        key: provisional.to_vec(),
        offset: 0,
        total: None,
        kind,
        fields: None,
    };
    if let Some(concat) = single(headers, "upload-concat")?.filter(|v| is_final(v)) {
        let list = &concat.trim_ascii()[b"final;".len()..];
        let parts: Vec<Vec<u8>> = list
            .split(|b| b.is_ascii_whitespace())
            .filter(|u| !u.is_empty())
            .map(upload_key)
            .collect();
        if parts.is_empty() || parts.len() > 10_000 {
            return Err("a final upload that names no partial uploads, or too many".into());
        }
        return Ok(Some(piece(Kind::TusFinal { parts })));
    }
    if body_len == 0 {
        return Ok(None);
    }
    let total = match single(headers, "upload-length")? {
        Some(v) => Some(number(v).ok_or("an \"Upload-Length\" that is no number")?),
        None => None,
    };
    Ok(Some(Piece {
        total,
        ..piece(Kind::TusCreation)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn h(pairs: &[(&str, &str)]) -> HeaderList {
        pairs
            .iter()
            .map(|(n, v)| {
                (
                    Bytes::copy_from_slice(n.as_bytes()),
                    Bytes::copy_from_slice(v.as_bytes()),
                )
            })
            .collect()
    }

    #[test]
    fn tus_requests_are_read_strictly() {
        let patch = h(&[("Tus-Resumable", "1.0.0"), ("Upload-Offset", "5")]);
        assert_eq!(
            tus_piece(b"PATCH", b"/files/x?y=1", &patch),
            Ok(Some(Piece {
                key: b"/files/x".to_vec(),
                offset: 5,
                total: None,
                kind: Kind::Tus,
                fields: None
            }))
        );
        assert_eq!(tus_piece(b"POST", b"/files/x", &patch), Ok(None));
        assert!(tus_piece(b"PATCH", b"/f", &h(&[("Upload-Offset", "-1")])).is_err());
        assert!(tus_piece(
            b"PATCH",
            b"/f",
            &h(&[("Upload-Offset", "1"), ("Upload-Offset", "2")])
        )
        .is_err());
        let deferred = h(&[("Upload-Offset", "0"), ("Upload-Length", "9")]);
        assert_eq!(
            tus_piece(b"PATCH", b"/f", &deferred)
                .unwrap()
                .unwrap()
                .total,
            Some(9)
        );
        let create = h(&[("Tus-Resumable", "1.0.0"), ("Upload-Length", "12")]);
        assert_eq!(tus_creation(b"POST", &create), Some(Some(12)));
        assert_eq!(tus_creation(b"POST", &h(&[("Upload-Length", "12")])), None);
        assert_eq!(upload_key(b"http://h:8080/files/abc"), b"/files/abc");
        let range = h(&[("Content-Range", "bytes 100-199/1000")]);
        assert_eq!(
            range_piece(b"PUT", b"/dav/f.bin", &range, 100)
                .unwrap()
                .unwrap(),
            Piece {
                key: b"/dav/f.bin".to_vec(),
                offset: 100,
                total: None,
                kind: Kind::Range { whole: false },
                fields: None
            }
        );
        assert!(range_piece(b"PUT", b"/f", &range, 99).is_err());
        assert!(range_piece(b"PUT", b"/f", &h(&[("Content-Range", "bytes 5-1/*")]), 0).is_err());
        assert!(range_piece(b"PUT", b"/f", &h(&[("Content-Range", "items 0-1/2")]), 2).is_err());
        assert_eq!(
            range_piece(b"PUT", b"/f", &h(&[]), 7)
                .unwrap()
                .unwrap()
                .kind,
            Kind::Range { whole: true }
        );
        assert_eq!(range_piece(b"PATCH", b"/f", &h(&[]), 7), Ok(None));
        assert_eq!(range_piece(b"POST", b"/f", &range, 100), Ok(None));
        assert_eq!(upload_key(b"https://h"), b"/");
        let fin = h(&[
            ("Tus-Resumable", "1.0.0"),
            ("Upload-Concat", "final;http://h/files/a /files/b"),
        ]);
        assert_eq!(tus_creation(b"POST", &fin), None);
        assert_eq!(
            tus_post(b"POST", &fin, 0, b"p").unwrap().unwrap().kind,
            Kind::TusFinal {
                parts: vec![b"/files/a".to_vec(), b"/files/b".to_vec()]
            }
        );
        assert!(tus_post(
            b"POST",
            &h(&[("Tus-Resumable", "1"), ("Upload-Concat", "final; ")]),
            0,
            b"p"
        )
        .is_err());
        let with_data = tus_post(b"POST", &create, 5, b"creation 1")
            .unwrap()
            .unwrap();
        assert_eq!(
            (with_data.kind, with_data.total, with_data.key),
            (Kind::TusCreation, Some(12), b"creation 1".to_vec())
        );
        assert_eq!(tus_post(b"POST", &create, 0, b"p"), Ok(None));
        assert_eq!(tus_post(b"PATCH", &create, 5, b"p"), Ok(None));
    }
}
