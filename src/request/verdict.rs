//! Applying a scan's result: what reaches the backend (the body as it is, the scanner's body,
//! or nothing) and what the client gets (the normal answer, the scanner's page, `error_page`,
//! 502/504/500).

use bytes::Bytes;
use ngx::ffi::*;
use ometascan_core::disposition::rename_filename;
use ometascan_core::{ResponsePage, SanitizedBody, ScanError, Verdict};

use super::ctx::{Ctx, State};
use super::{log_debug, log_error, NGX_DECLINED_, NGX_DONE_};
use crate::conf::{LocConf, OnError};
use crate::ngx_ext::buf::{
    body_chain, body_in_new_temp_file, body_in_one_buffer, forget_body, set_body,
};
use crate::ngx_ext::headers::{headers_in_named, pool_str, push_header_out, set_header_in};
use crate::ngx_ext::page::{has_error_page, send_page};

const INTERNAL_ERROR: ngx_int_t = NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t;

/// Applies the result kept in `ctx`; returns what the phase handler returns.
///
/// # Safety
/// `r` must be the live main request of `ctx`, on the nginx thread, with no scan in flight.
pub unsafe fn apply(r: *mut ngx_http_request_t, ctx: &mut Ctx, lcf: &LocConf) -> ngx_int_t {
    let result = match std::mem::replace(&mut ctx.state, State::Applied { passed: false }) {
        State::Done(result) => result,
        _ => return NGX_DECLINED_,
    };
    let passed = match &result {
        Ok(Verdict::Allowed | Verdict::Sanitized { .. }) => true,
        Ok(Verdict::BadRequest { .. }) => lcf.settings.allow_bad_request,
        Ok(Verdict::Blocked { .. }) => false,
        Err(e) => lcf.settings.on_error == OnError::Pass && e.may_pass_unscanned(),
    };
    ctx.state = State::Applied { passed };
    let ms = ctx.report.scan_time.unwrap_or_default().as_millis();
    if !passed {
        // Before anything else runs (error_page, the page being sent): from here on no later
        // step of nginx can find the body.
        // SAFETY: r is live for this call, on nginx's thread, no scan holding it.
        unsafe { drop_body(r) };
    }
    match result {
        Ok(Verdict::Allowed) => {
            // SAFETY: r is live for this call, on nginx's thread, no scan holding it.
            unsafe { log_debug(r, &format!("ometascan: allowed in {ms} ms")) };
            NGX_DECLINED_
        }
        Ok(Verdict::Sanitized {
            body,
            content_type,
            content_disposition,
            ..
        }) => {
            let len = body.len();
            // SAFETY: r is live for this call, on nginx's thread, no scan holding it.
            if unsafe { replace_body(r, body, content_type, content_disposition) }.is_some() {
                // SAFETY: r is live for this call, on nginx's thread, no scan holding it.
                unsafe { log_debug(r, &format!("ometascan: sanitized in {ms} ms, {len} bytes")) };
                return NGX_DECLINED_;
            }
            ctx.state = State::Applied { passed: false };
            // SAFETY: r is live for this call, on nginx's thread, no scan holding it.
            unsafe { out_of_memory(r) }
        }
        Ok(Verdict::Blocked { page, threat }) => {
            // SAFETY: r is live for this call, on nginx's thread, no scan holding it.
            unsafe { blocked(r, ctx, lcf, &page, threat) }
        }
        Ok(Verdict::BadRequest { page }) if passed => {
            let msg = "scanner could not parse the request (400), forwarding it unscanned \
                       because of \"ometascan_allow_bad_request_traffic on\"";
            // SAFETY: r is live for this call, on nginx's thread, no scan holding it.
            unsafe { log_error(r, NGX_LOG_WARN, msg) };
            drop(page);
            NGX_DECLINED_
        }
        Ok(Verdict::BadRequest { page }) => {
            // SAFETY: r is live for this call, on nginx's thread, no scan holding it.
            unsafe {
                log_debug(r, "ometascan: scanner answered 400");
                relay(r, lcf, &page)
            }
        }
        Err(e) if passed => {
            let msg = format!(
                "scan failed: {e}; forwarding the request unscanned because of \
                 \"ometascan_on_error pass\""
            );
            // SAFETY: r is live for this call, on nginx's thread, no scan holding it.
            unsafe { log_error(r, NGX_LOG_WARN, &msg) };
            NGX_DECLINED_
        }
        // SAFETY: r is live for this call, on nginx's thread, no scan holding it.
        Err(e) => unsafe { failed(r, &e) },
    }
}

/// The sanitized body could not be put in place: 500, and nothing of the body goes on.
///
/// # Safety
/// `r` must be a live main request, no scan in flight.
unsafe fn out_of_memory(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: r is live for this call, on nginx's thread, no scan holding it.
    unsafe {
        log_error(
            r,
            NGX_LOG_ERR,
            "cannot forward the sanitized body: out of memory",
        );
        drop_body(r);
    }
    INTERNAL_ERROR
}

/// A block: logged (with the threat and the part of a form that decided), then the page.
///
/// # Safety
/// `r` must be the live request of `ctx`, its header not sent.
unsafe fn blocked(
    r: *mut ngx_http_request_t,
    ctx: &Ctx,
    lcf: &LocConf,
    page: &ResponsePage,
    threat: Option<String>,
) -> ngx_int_t {
    if lcf.settings.log_blocked {
        let mut threat = threat
            .map(|t| format!(", threat \"{t}\""))
            .unwrap_or_default();
        if let Some(part) = &ctx.report.part {
            threat.push_str(&format!(", in {part}"));
        }
        let status = page.status;
        let msg = format!("request blocked by the scanner with status {status}{threat}");
        // SAFETY: r is live for this call, on nginx's thread, no scan holding it.
        unsafe { log_error(r, NGX_LOG_NOTICE, &msg) };
    }
    let ms = ctx.report.scan_time.unwrap_or_default().as_millis();
    // SAFETY: r is live for this call, on nginx's thread, no scan holding it.
    unsafe {
        log_debug(r, &format!("ometascan: blocked in {ms} ms"));
        relay(r, lcf, page)
    }
}

/// A failed scan: the reason in the error log, 502/504 (500 when the module could not start
/// the scan) to the client.
///
/// # Safety
/// `r` must be a live request.
unsafe fn failed(r: *mut ngx_http_request_t, e: &ScanError) -> ngx_int_t {
    let (level, msg) = match e {
        ScanError::Module(m) => (NGX_LOG_ERR, m.clone()),
        // The client's doing, not a fault: logged as nginx logs a client's bad request.
        ScanError::Refused { status, reason } => (
            NGX_LOG_INFO,
            format!("request refused with status {status}: {reason}"),
        ),
        e => (NGX_LOG_ERR, format!("scan failed: {e}")),
    };
    // SAFETY: r is live for this call, on nginx's thread, no scan holding it.
    unsafe { log_error(r, level, &msg) };
    if let ScanError::Busy(wait, _) = e {
        // When to try again: the longest wait for a turn, in whole seconds.
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        // SAFETY: r is live and its header not sent; nginx keeps the field on its 503 page.
        let _ = unsafe { push_header_out(r, b"Retry-After", secs.max(1).to_string().as_bytes()) };
    }
    e.status() as ngx_int_t
}

/// Sends the scanner's page, or lets `error_page` answer when intercepting.
///
/// # Safety
/// `r` must be a live request whose header is not sent.
unsafe fn relay(r: *mut ngx_http_request_t, lcf: &LocConf, page: &ResponsePage) -> ngx_int_t {
    // SAFETY: r is live for this call, on nginx's thread, no scan holding it.
    unsafe {
        if lcf.settings.intercept_errors && page.status >= 300 && has_error_page(r, page.status) {
            return page.status as ngx_int_t;
        }
        let rc = send_page(r, page);
        ngx_http_finalize_request(r, rc);
    }
    NGX_DONE_
}

/// Replaces the request body with the scanner's, fixing `Content-Length`, `Content-Type` and
/// the `Content-Disposition` filename (of every copy the client sent). `None`: out of memory.
///
/// # Safety
/// `r` must be a live main request whose body nginx has read.
unsafe fn replace_body(
    r: *mut ngx_http_request_t,
    body: SanitizedBody,
    content_type: Option<Bytes>,
    content_disposition: Option<Bytes>,
) -> Option<()> {
    // SAFETY: r is live.
    let rb = unsafe { (*r).request_body };
    if rb.is_null() {
        return None;
    }
    let len = body.len();
    let whole = match body {
        SanitizedBody::Parts(parts) => parts,
        one => one.into(),
    };
    // SAFETY: r is live, its body read and no scan holds it.
    let chain = unsafe { stored_like_the_original(r, &whole) }?;
    // SAFETY: r is live, chain from its pool.
    unsafe { set_body(r, chain, len) }?;
    if let Some(ct) = content_type {
        // SAFETY: r is live.
        unsafe { set_header_in(r, b"Content-Type", &ct) }?;
    }
    if let Some(scanner_cd) = content_disposition {
        // SAFETY: r is live.
        unsafe { rename_disposition(r, &scanner_cd) }?;
    }
    Some(())
}

/// The replaced body stored in the form the location asked nginx for: in a new temp file when
/// the original had to be in one (WebDAV's `PUT`, `client_body_in_file_only`) or was written to
/// one under `client_body_in_single_buffer`, in one memory buffer under
/// `client_body_in_single_buffer`, otherwise as a chain (memory, and file ranges of the
/// scanner's spilled answer).
///
/// # Safety
/// `r` must be a live main request whose body nginx has read, no scan holding it.
unsafe fn stored_like_the_original(
    r: *mut ngx_http_request_t,
    body: &ometascan_core::RequestBody,
) -> Option<*mut ngx_chain_t> {
    // SAFETY: r is live; its request body was checked non-null by the caller.
    let (file_only, single, in_file) = unsafe {
        (
            (*r).request_body_in_file_only() != 0,
            (*r).request_body_in_single_buf() != 0,
            !(*(*r).request_body).temp_file.is_null(),
        )
    };
    if in_file && (file_only || single) {
        // SAFETY: r is live for this call, on nginx's thread, no scan holding it.
        return unsafe { body_in_new_temp_file(r, body) };
    }
    if single {
        // SAFETY: r is live.
        return unsafe { body_in_one_buffer(r, body) };
    }
    // SAFETY: r is live.
    let chain = unsafe { body_chain(r, body) };
    (!chain.is_null()).then_some(chain)
}

/// Every copy of the client's `Content-Disposition` gets the scanner's filename.
///
/// # Safety
/// `r` must be a live request.
unsafe fn rename_disposition(r: *mut ngx_http_request_t, scanner_cd: &[u8]) -> Option<()> {
    // SAFETY: r is live.
    let copies = unsafe { headers_in_named(r, b"content-disposition") };
    let Some(&first) = copies.first() else {
        return Some(());
    };
    // SAFETY: first is a live element of the list.
    let client = String::from_utf8_lossy(unsafe { (*first).value.as_bytes() }).into_owned();
    let Some(renamed) = rename_filename(&client, &String::from_utf8_lossy(scanner_cd)) else {
        return Some(());
    };
    // SAFETY: r is live.
    let v = unsafe { pool_str(r, renamed.as_bytes()) }?;
    for h in copies {
        // SAFETY: h is a live element; v lives in the request pool.
        unsafe { (*h).value = v };
    }
    Some(())
}

/// After a block or a failure: the body is taken out of the request (see
/// [`forget_body`]) so that no later step (`error_page` and other internal redirects,
/// proxy/fastcgi/uwsgi/grpc, mirror, subrequests) can send it.
///
/// # Safety
/// `r` must be a live main request on the nginx thread, with no scan in flight.
pub unsafe fn drop_body(r: *mut ngx_http_request_t) {
    // SAFETY: r is live for this call, on nginx's thread, no scan holding it.
    unsafe { forget_body(r) }
}
