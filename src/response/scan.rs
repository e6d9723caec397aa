//! Starting the scan of a held response: the client's request line and headers, the
//! response's status and headers, the body as held.

use bytes::Bytes;
use ngx::ffi::*;
use ngx::http::{HttpModuleLocationConf, Request};
use ometascan_core::{ResponseHead, ScanRequest};

use super::held::{self, Phase};
use super::release;
use crate::ngx_ext::headers::{copy_headers_in, copy_headers_out};
use crate::ngx_ext::request::RequestExt;
use crate::request::job::{module_error, scan_options};
use crate::runtime::{self, Loan};
use crate::Module;

/// The request's cleanup: nginx terminates the request (the client went away, ...) while its
/// response is scanned; the scan is cancelled.
unsafe extern "C" fn cleanup_handler(data: *mut std::ffi::c_void) {
    // SAFETY: data is the request this cleanup was added to; nginx runs request cleanups on
    // its thread while the request is allocated.
    let r = unsafe { Request::from_ngx_http_request(data as *mut ngx_http_request_t) };
    // SAFETY: the borrow ends in this call.
    if let Some(held) = unsafe { held::get(r) } {
        if let Phase::Scanning(slot) = held.phase {
            runtime::cancel(slot);
        }
    }
}

/// Starts the scan of the whole held response; the filter's answer to nginx.
pub fn start(r: &mut Request) -> ngx_int_t {
    match try_start(r) {
        Ok(()) => NGX_OK as ngx_int_t,
        Err(e) => release::refuse(r, e, ometascan_core::ResultKind::Error),
    }
}

/// The held response is borrowed only where no nginx code runs (which may evaluate the
/// module's variables, which read it).
fn try_start(r: &mut Request) -> Result<(), ometascan_core::ScanError> {
    let lcf = Module::location_conf(r).ok_or_else(|| module_error("no configuration"))?;
    let (pass, built) = lcf
        .response_target()
        .ok_or_else(|| module_error("no scanner for the response"))?;
    let scanner =
        runtime::scanner().ok_or_else(|| module_error("the scanner runtime is not running"))?;
    r.add_cleanup(cleanup_handler)
        .ok_or_else(|| module_error("no memory for the request cleanup"))?;
    let mut options = scan_options(r, lcf)?;
    options.tls = built.tls.clone();
    // SAFETY: the borrow ends in this statement.
    let body = unsafe { held::get(r) }
        .map(|h| h.body.clone())
        .ok_or_else(|| module_error("the held response is gone"))?;
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
    let bytes = request.body.len();
    let future = async move { scanner.scan_response(target, request, options).await };
    // SAFETY: a live main request on nginx's thread with the cancelling cleanup added above;
    // nothing of its memory is lent (the held body is the module's own).
    let slot = unsafe { runtime::start(r.raw(), Loan::new(), future, release::on_done) }
        .ok_or_else(|| module_error("the scanner runtime is not running"))?;
    // SAFETY: the borrow ends in this statement.
    if let Some(held) = unsafe { held::get(r) } {
        held.phase = Phase::Scanning(slot);
    }
    crate::status::started(bytes);
    Ok(())
}
