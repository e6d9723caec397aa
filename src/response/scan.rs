//! Starting the scan of a held response: the client's request line and headers, the
//! response's status and headers, the body as held.

use bytes::Bytes;
use ngx::ffi::*;
use ngx::http::{HttpModuleLocationConf, Request};
use ometascan_core::{ResponseHead, ResultKind, ScanError, ScanRequest};

use super::held::Phase;
use super::release;
use crate::ngx_ext::headers::{copy_headers_in, copy_headers_out};
use crate::ngx_ext::request::RequestExt;
use crate::request::ctx;
use crate::request::job::{module_error, scan_options};
use crate::runtime;
use crate::Module;

/// Starts the scan of the whole held response; the filter's answer to nginx.
pub fn start(r: &mut Request) -> ngx_int_t {
    match try_start(r) {
        Ok(()) => NGX_OK as ngx_int_t,
        Err(e) => release::refuse(r, e, ResultKind::Error),
    }
}

fn try_start(r: &mut Request) -> Result<(), ScanError> {
    let lcf = Module::location_conf(r).ok_or_else(|| module_error("no configuration"))?;
    let (pass, built) = lcf
        .response_target()
        .ok_or_else(|| module_error("no scanner for the response"))?;
    let scanner =
        runtime::scanner().ok_or_else(|| module_error("the scanner runtime is not running"))?;
    let body = ctx::held(r, |h| h.body.clone())
        .ok_or_else(|| module_error("the held response is gone"))?;
    let bytes = body.len();
    // Nothing of the request's memory is lent: the held body is the module's own.
    let build = |r: &mut Request, _: &runtime::Lender| {
        let mut options = scan_options(r, lcf)?;
        options.tls = built.tls.clone();
        // A sanitized response may be larger than what a client may upload.
        options.max_sanitized = Some(body.len().max(1 << 20).saturating_mul(2));
        let target = crate::conf::scanner::scan_target(pass, built);
        let host = r.host();
        let request = ScanRequest {
            method: Bytes::copy_from_slice(r.method_name()),
            uri: Bytes::copy_from_slice(r.raw_uri()),
            headers: copy_headers_in(r),
            host: (!host.is_empty()).then(|| Bytes::copy_from_slice(host)),
            client_addr: String::from_utf8_lossy(r.client_addr()).into_owned(),
            body,
            response: Some(ResponseHead {
                status: r.as_ref().headers_out.status as u16,
                headers: copy_headers_out(r),
            }),
        };
        Ok(async move { scanner.scan_response(target, request, options).await })
    };
    let slot = runtime::start(r, build, release::on_done)?;
    ctx::held(r, |held| held.phase = Phase::Scanning(slot));
    crate::status::started(bytes);
    Ok(())
}
