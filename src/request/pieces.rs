//! Uploads in pieces (`ometascan_pieces`), on nginx's side: what a tus request is to the
//! module's copy of the upload. A creation starts the copy when the backend answers it (its
//! `201` names the upload in `Location`); a termination drops it; a piece is scanned and
//! applied by the core ([`ometascan_core::pieces`]).

use ngx::ffi::*;
use ngx::http::{HttpModuleLocationConf, Request};
use ometascan_core::headers::HeaderList;
use ometascan_core::pieces::fields::{FieldSpec, Place, Size, Source};
use ometascan_core::pieces::s3::S3;
use ometascan_core::pieces::{self, Kind, Piece, Spool};
use ometascan_core::ScanError;

use crate::conf::pieces::{FieldSource, Pieces, PlaceConf, SizeConf};
use crate::ngx_ext::headers::{copy_headers_in, copy_headers_out, header_in};
use crate::ngx_ext::log;
use crate::ngx_ext::request::RequestExt;
use crate::Module;

/// The location's uploads in pieces, if any.
pub fn of(r: &Request) -> Option<&'static Pieces> {
    Module::location_conf(r)?.pieces().as_ref()
}

/// A `DELETE` of an upload (tus's termination) or of a file written in ranges: the copy goes
/// with it. `true` for a tus termination (nothing to scan).
pub fn terminated(r: &mut Request) -> bool {
    let Some(p) = of(r) else { return false };
    if r.method_name() != b"DELETE" {
        return false;
    }
    p.spool.remove(&pieces::upload_key(r.raw_uri()));
    p.tus && header_in(r, b"tus-resumable").is_some()
}

/// The piece the request writes, if it writes one (`Err`: a header that cannot be read, or a
/// piece that cannot be assembled).
pub fn piece(
    r: &Request,
    headers: &HeaderList,
    body_len: u64,
) -> Option<Result<(Piece, Spool), ScanError>> {
    let p = of(r)?;
    let found = find(r, p, headers, body_len);
    match found {
        Ok(Some(piece)) => Some(Ok((piece, p.spool.clone()))),
        Ok(None) => None,
        Err(e) => Some(Err(e)),
    }
}

fn find(
    r: &Request,
    p: &Pieces,
    headers: &HeaderList,
    body_len: u64,
) -> Result<Option<Piece>, ScanError> {
    let (method, uri) = (r.method_name(), r.raw_uri());
    if p.s3 {
        let copy = header_in(r, b"x-amz-copy-source").is_some();
        let s3 = pieces::s3::s3_request(method, uri, copy).map_err(ScanError::ambiguous)?;
        let kind = match s3 {
            Some(S3::Part { upload, number }) => Some((upload, Kind::S3Part { number })),
            Some(S3::Complete { upload }) => Some((upload, Kind::S3Complete)),
            Some(S3::Copy) => {
                return Err(ScanError::Unassembled(
                    "a part copied from another object (UploadPartCopy)".into(),
                ))
            }
            None => None,
        };
        if let Some((key, kind)) = kind {
            return Ok(Some(Piece {
                key,
                offset: 0,
                total: None,
                kind,
                fields: None,
            }));
        }
    }
    if p.tus {
        if let Some(piece) =
            pieces::tus_piece(method, uri, headers).map_err(ScanError::ambiguous)?
        {
            return Ok(Some(piece));
        }
        let post = pieces::tus_post(method, headers, body_len, &provisional(r));
        if let Some(piece) = post.map_err(ScanError::ambiguous)? {
            return Ok(Some(piece));
        }
    }
    if p.range {
        let range = pieces::range_piece(method, uri, headers, body_len);
        if let Some(piece) = range.map_err(ScanError::ambiguous)? {
            return Ok(Some(piece));
        }
    }
    match &p.fields {
        Some(f) if body_len > 0 => Ok(Some(Piece {
            key: pieces::upload_key(uri),
            offset: 0,
            total: None,
            kind: Kind::Fields,
            fields: Some(FieldSpec {
                key: source(r, &f.key)?,
                place: match &f.place {
                    PlaceConf::Offset(o) => Place::Offset(source(r, o)?),
                    PlaceConf::Numbered {
                        number,
                        first,
                        chunk,
                    } => Place::Numbered {
                        number: source(r, number)?,
                        first: *first,
                        chunk: source(r, chunk)?,
                    },
                },
                size: match &f.size {
                    SizeConf::Bytes(t) => Size::Bytes(source(r, t)?),
                    SizeConf::Pieces(c) => Size::Pieces(source(r, c)?),
                },
                parallel: f.parallel,
            }),
        })),
        _ => Ok(None),
    }
}

/// A field source with nginx's values evaluated for `r`.
fn source(r: &Request, s: &FieldSource) -> Result<Source, ScanError> {
    match s {
        FieldSource::Field(name) => Ok(Source::Field(name.clone())),
        FieldSource::Value(cv) => {
            let v = cv.evaluate(r).ok_or_else(|| {
                ScanError::Module("cannot evaluate a value of \"ometascan_pieces\"".into())
            })?;
            Ok(Source::Value(v))
        }
    }
}

/// Where a tus creation's first bytes are kept until the backend names the upload.
fn provisional(r: &Request) -> Vec<u8> {
    format!("~tus creation {}", r.serial()).into_bytes()
}

/// Whether the request may be a piece of an upload of the location (scanned whatever
/// `ometascan_methods` says: the piece completes a file).
pub fn claims(r: &Request) -> bool {
    of(r).is_some() && matches!(r.method_name(), b"POST" | b"PUT" | b"PATCH")
}

/// The backend's answer to a tus creation: `201` with the upload's `Location` starts the
/// module's copy of it, with the first bytes a creation-with-upload carried.
pub fn on_response(r: &mut Request) {
    let Some(p) = of(r) else { return };
    if !r.is_main() || !p.tus || !r.method_name().eq_ignore_ascii_case(b"POST") {
        return;
    }
    let headers = copy_headers_in(r);
    let Some(total) = pieces::tus_creation(r.method_name(), &headers) else {
        return;
    };
    let provisional = provisional(r);
    let out = copy_headers_out(r);
    let location = out
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(b"location"))
        .map(|(_, v)| v.clone());
    let created = r.as_ref().headers_out.status == NGX_HTTP_CREATED as ngx_uint_t;
    let Some(location) = location.filter(|_| created) else {
        p.spool.remove(&provisional);
        return;
    };
    let key = pieces::upload_key(&location);
    let held = out
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(b"upload-offset"))
        .and_then(|(_, v)| std::str::from_utf8(v).ok()?.trim().parse::<u64>().ok());
    let partial = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case(b"upload-concat") && v.trim_ascii() == b"partial");
    // A creation that carried the whole file: scanned whole as it came; nothing to keep (but
    // for a partial upload, which its final upload joins).
    let sent = u64::try_from(r.as_ref().headers_in.content_length_n).ok();
    if total.is_some() && sent == total && !partial {
        p.spool.remove(&provisional);
        return;
    }
    let made = match p.spool.adopt(&provisional, &key, held) {
        Ok(true) => Ok(()),
        Ok(false) => p.spool.create(&key, total),
        Err(e) => Err(e),
    }
    .and_then(|()| match partial {
        true => p.spool.set_partial(&key),
        false => Ok(()),
    });
    if let Err(e) = made {
        crate::error!(
            log::scan(r, ""),
            "upload \"{}\" cannot be kept for assembly: {e}; its pieces will be refused",
            String::from_utf8_lossy(&key)
        );
    }
}

/// Counts what a piece's scan did to its upload (the status page's `ometascan_pieces_total`).
pub fn count(outcome: &ometascan_core::ScanOutcome) {
    use crate::status::shm::{piece_event, PieceEvent};
    use ometascan_core::Verdict;
    let Some(upload) = &outcome.upload else {
        return;
    };
    if let Some(n) = upload.assembled {
        crate::status::shm::scanned_bytes(n);
    }
    match (&outcome.result, upload.assembled) {
        (Ok(Verdict::Allowed), Some(_)) => piece_event(PieceEvent::Completed),
        (Ok(Verdict::Blocked { .. }), Some(_)) => piece_event(PieceEvent::Blocked),
        (Err(ScanError::Unassembled(_)), _) => piece_event(PieceEvent::Refused),
        (Err(ScanError::Refused { status: 403, .. }), _) => piece_event(PieceEvent::Refused),
        _ => {}
    }
}
