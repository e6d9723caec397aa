//! Applying a scan's result: what reaches the backend (the body as it is, the scanner's body,
//! or nothing) and what the client gets (the normal answer, the scanner's page, `error_page`,
//! 502/504/500).

use bytes::Bytes;
use ngx::ffi::*;
use ngx::http::Request;
use ometascan_core::disposition::rename_filename;
use ometascan_core::{ResponsePage, SanitizedBody, ScanError, Verdict};

use super::ctx::{Ctx, State};
use super::{log_debug, log_error, NGX_DECLINED_, NGX_DONE_};
use crate::conf::{LocConf, OnError};
use crate::ngx_ext::body::{forget_body, replace_body};
use crate::ngx_ext::headers::{header_in, push_header_out, set_header_in, set_header_in_copies};
use crate::ngx_ext::page::{has_error_page, send_page};
use crate::ngx_ext::request::{finalize, RequestExt};

const INTERNAL_ERROR: ngx_int_t = NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t;

/// Applies the result kept in `ctx` (of the main request `r`, no scan in flight); returns what
/// the phase handler returns.
pub fn apply(r: &mut Request, ctx: &mut Ctx, lcf: &LocConf) -> ngx_int_t {
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
        drop_body(r);
    }
    match result {
        Ok(Verdict::Allowed) => {
            log_debug(r, &format!("ometascan: allowed in {ms} ms"));
            NGX_DECLINED_
        }
        Ok(Verdict::Sanitized {
            body,
            content_type,
            content_disposition,
            ..
        }) => {
            let len = body.len();
            if sanitized(r, body, content_type, content_disposition).is_some() {
                log_debug(r, &format!("ometascan: sanitized in {ms} ms, {len} bytes"));
                return NGX_DECLINED_;
            }
            ctx.state = State::Applied { passed: false };
            out_of_memory(r)
        }
        Ok(Verdict::Blocked { page, threat }) => blocked(r, ctx, lcf, &page, threat),
        Ok(Verdict::BadRequest { page }) if passed => {
            let msg = "scanner could not parse the request (400), forwarding it unscanned \
                       because of \"ometascan_allow_bad_request_traffic on\"";
            log_error(r, NGX_LOG_WARN, msg);
            drop(page);
            NGX_DECLINED_
        }
        Ok(Verdict::BadRequest { page }) => {
            log_debug(r, "ometascan: scanner answered 400");
            relay(r, lcf, &page)
        }
        Err(e) if passed => {
            let msg = format!(
                "scan failed: {e}; forwarding the request unscanned because of \
                 \"ometascan_on_error pass\""
            );
            log_error(r, NGX_LOG_WARN, &msg);
            NGX_DECLINED_
        }
        Err(e) => failed(r, &e),
    }
}

/// The sanitized body could not be put in place: 500, and nothing of the body goes on.
fn out_of_memory(r: &mut Request) -> ngx_int_t {
    log_error(
        r,
        NGX_LOG_ERR,
        "cannot forward the sanitized body: out of memory",
    );
    drop_body(r);
    INTERNAL_ERROR
}

/// A block: logged (with the threat and the part of a form that decided), then the page.
fn blocked(
    r: &mut Request,
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
        log_error(r, NGX_LOG_NOTICE, &msg);
    }
    let ms = ctx.report.scan_time.unwrap_or_default().as_millis();
    log_debug(r, &format!("ometascan: blocked in {ms} ms"));
    relay(r, lcf, page)
}

/// A failed scan: the reason in the error log, 502/504 (500 when the module could not start
/// the scan) to the client.
fn failed(r: &mut Request, e: &ScanError) -> ngx_int_t {
    let (level, msg) = match e {
        ScanError::Module(m) => (NGX_LOG_ERR, m.clone()),
        // The client's doing, not a fault: logged as nginx logs a client's bad request.
        ScanError::Refused { status, reason } => (
            NGX_LOG_INFO,
            format!("request refused with status {status}: {reason}"),
        ),
        e => (NGX_LOG_ERR, format!("scan failed: {e}")),
    };
    log_error(r, level, &msg);
    if let ScanError::Busy(wait, _) = e {
        // When to try again: the longest wait for a turn, in whole seconds. The header is not
        // sent yet; nginx keeps the field on its 503 page.
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let _ = push_header_out(r, b"Retry-After", secs.max(1).to_string().as_bytes());
    }
    e.status() as ngx_int_t
}

/// Sends the scanner's page (the header is not sent yet), or lets `error_page` answer when
/// intercepting.
fn relay(r: &mut Request, lcf: &LocConf, page: &ResponsePage) -> ngx_int_t {
    if lcf.settings.intercept_errors && page.status >= 300 && has_error_page(r, page.status) {
        return page.status as ngx_int_t;
    }
    let rc = send_page(r, page);
    // SAFETY: the phase handler's caller holds the request's own reference, so it stays
    // allocated; r is not used after.
    unsafe { finalize(r.raw(), rc) };
    NGX_DONE_
}

/// Replaces the request body with the scanner's, fixing `Content-Length`, `Content-Type` and
/// the `Content-Disposition` filename (of every copy the client sent). `None`: out of memory.
fn sanitized(
    r: &mut Request,
    body: SanitizedBody,
    content_type: Option<Bytes>,
    content_disposition: Option<Bytes>,
) -> Option<()> {
    let whole = match body {
        SanitizedBody::Parts(parts) => parts,
        one => one.into(),
    };
    replace_body(r, &whole)?;
    if let Some(ct) = content_type {
        set_header_in(r, b"Content-Type", &ct)?;
    }
    if let Some(scanner_cd) = content_disposition {
        rename_disposition(r, &scanner_cd)?;
    }
    Some(())
}

/// Every copy of the client's `Content-Disposition` gets the scanner's filename.
fn rename_disposition(r: &mut Request, scanner_cd: &[u8]) -> Option<()> {
    let Some(client) = header_in(r, b"content-disposition") else {
        return Some(());
    };
    let client = String::from_utf8_lossy(&client);
    let Some(renamed) = rename_filename(&client, &String::from_utf8_lossy(scanner_cd)) else {
        return Some(());
    };
    set_header_in_copies(r, b"Content-Disposition", renamed.as_bytes())
}

/// After a block or a failure: the body is taken out of the request (see [`forget_body`]) so
/// that no later step (`error_page` and other internal redirects, proxy/fastcgi/uwsgi/grpc,
/// mirror, subrequests) can send it.
pub fn drop_body(r: &mut Request) {
    forget_body(r)
}
