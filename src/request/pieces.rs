//! Uploads in pieces (`ometascan_pieces`), on nginx's side: what a tus request is to the
//! module's copy of the upload. A creation starts the copy when the backend answers it (its
//! `201` names the upload in `Location`); a termination drops it; a piece is scanned and
//! applied by the core ([`ometascan_core::pieces`]).

use ngx::ffi::*;
use ngx::http::{HttpModuleLocationConf, Request};
use ometascan_core::pieces::{self, Piece};

use crate::conf::pieces::Pieces;
use crate::ngx_ext::headers::{copy_headers_in, copy_headers_out, header_in};
use crate::ngx_ext::log;
use crate::ngx_ext::request::RequestExt;
use crate::Module;

/// The location's uploads in pieces, if any.
pub fn of(r: &Request) -> Option<&'static Pieces> {
    Module::location_conf(r)?.pieces.as_ref()?.as_ref()
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

/// The piece the request writes, if it writes one (`Err`: a header that cannot be read).
pub fn piece(
    r: &Request,
    body_len: u64,
) -> Option<Result<(Piece, ometascan_core::pieces::Spool), String>> {
    let p = of(r)?;
    let headers = copy_headers_in(r);
    let (method, uri) = (r.method_name(), r.raw_uri());
    let found = match pieces::tus_piece(method, uri, &headers) {
        Ok(None) | Err(_) if !p.tus => Ok(None),
        tus => tus,
    };
    let found = match found {
        Ok(None) if p.range => pieces::range_piece(method, uri, &headers, body_len),
        other => other,
    };
    match found {
        Ok(Some(piece)) => Some(Ok((piece, p.spool.clone()))),
        Ok(None) => None,
        Err(e) => Some(Err(e)),
    }
}

/// The backend's answer to a tus creation: `201` with the upload's `Location` starts the
/// module's copy of it.
pub fn on_response(r: &mut Request) {
    let Some(p) = of(r) else { return };
    let raw = r.as_ref();
    if !std::ptr::eq(raw.main, raw) || raw.headers_out.status != NGX_HTTP_CREATED as ngx_uint_t {
        return;
    }
    let headers = copy_headers_in(r);
    let Some(total) = pieces::tus_creation(r.method_name(), &headers) else {
        return;
    };
    let out = copy_headers_out(r);
    let Some(location) = out
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(b"location"))
        .map(|(_, v)| v.clone())
    else {
        return;
    };
    let key = pieces::upload_key(&location);
    if let Err(e) = p.spool.create(&key, total) {
        let msg = format!(
            "upload \"{}\" cannot be kept for assembly: {e}; its pieces will be refused",
            String::from_utf8_lossy(&key)
        );
        log::error(r, NGX_LOG_ERR, "", &msg);
    }
}
