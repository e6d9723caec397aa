//! What the verdict on a held response lets through: the response as the backend sent it
//! (allowed), with the scanner's body (sanitized), the scanner's page or `error_page`
//! (blocked), or an error and nothing of the response (failed, unless `ometascan_on_error
//! pass`). Whatever goes out passes the filters after the module's; then the request is
//! finalized as nginx's write handler would have.

use ngx::ffi::*;
use ngx::http::{HttpModuleLocationConf, Request};
use ometascan_core::{RequestBody, ResponsePage, ResultKind, ScanError, ScanOutcome, Verdict};

use super::held::Phase;
use super::{next_header, pass_body, BUFFERED};
use crate::conf::OnError;
use crate::ngx_ext::headers::replace_head;
use crate::ngx_ext::log;
use crate::ngx_ext::page::{has_error_page, send_page};
use crate::ngx_ext::request::RequestExt;
use crate::request::ctx;
use crate::request::report::Report;
use crate::runtime::AfterScan;
use crate::status;
use crate::Module;

const INTERNAL_ERROR: ngx_int_t = NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t;

/// The location's scanner of responses, as configured (for log lines).
fn scanner(r: &Request) -> String {
    Module::location_conf(r)
        .and_then(|l| l.response_target())
        .map(|(t, _)| t.shown.clone())
        .unwrap_or_default()
}

/// Whether a failed scan lets the response go out unscanned here.
fn passes(r: &Request, e: &ScanError) -> bool {
    e.may_pass_unscanned()
        && Module::location_conf(r).is_some_and(|l| *l.on_error() == OnError::Pass)
}

/// The scan is over (runtime, nginx thread; the request is live and unblocked): what goes out,
/// and the code the request is finalized with.
pub fn on_done(r: &mut Request, outcome: ScanOutcome) -> AfterScan {
    let kind = match &outcome.result {
        Ok(v) => v.kind(),
        Err(e) if passes(r, e) => ResultKind::Unscanned,
        Err(_) => ResultKind::Error,
    };
    // The body is shared (its memory and files stay the held response's).
    let body = ctx::held(r, |held| {
        held.phase = Phase::Released;
        held.report = Report::of(&outcome, kind);
        held.body.clone()
    });
    let Some(body) = body else {
        return AfterScan::Finalize(NGX_ERROR as ngx_int_t);
    };
    status::response_finished(
        Some(kind),
        outcome.result.as_ref().err(),
        Some(outcome.elapsed),
        outcome.server.as_ref(),
        outcome.queued,
    );
    let ms = outcome.elapsed.as_millis();
    let rc = match outcome.result {
        Ok(Verdict::Allowed) => {
            crate::debug!(&*r, "ometascan: response allowed in {ms} ms");
            send(r, body, None)
        }
        Ok(Verdict::Sanitized { .. }) if (100..200).contains(&r.as_ref().headers_out.status) => {
            let why = "the scanner sanitized a response relayed behind an interim status, \
                       whose final response cannot be rebuilt around its body";
            failed(
                r,
                &ScanError::Refused {
                    status: 502,
                    reason: why.into(),
                },
            )
        }
        Ok(Verdict::Sanitized {
            body, content_type, ..
        }) => {
            crate::debug!(&*r, "ometascan: response sanitized in {ms} ms");
            let body = match body {
                ometascan_core::SanitizedBody::Parts(parts) => parts,
                one => one.into(),
            };
            send(r, body, Some(content_type.as_deref()))
        }
        Ok(Verdict::Blocked { page, threat }) => blocked(r, &page, threat),
        Ok(Verdict::BadRequest { .. }) => failed(
            r,
            &ScanError::Protocol("the scanner answered 400 to a response".into()),
        ),
        Err(e) if passes(r, &e) => {
            crate::warn!(
                log::response(r, &scanner(r)),
                "response scan failed: {e}; sending the response unscanned because of \
                 \"ometascan_on_error pass\""
            );
            send(r, body, None)
        }
        Err(e) => failed(r, &e),
    };
    AfterScan::Finalize(rc)
}

/// Taking the response or starting its scan failed: the error, nothing of the response.
///
/// Called from the module's filters, inside the content handler's call: the error page goes
/// out the way nginx's own filters send one, and the filter's answer tells the caller.
pub fn refuse(r: &mut Request, e: ScanError, kind: ResultKind) -> ngx_int_t {
    ctx::held(r, |held| {
        held.phase = Phase::Released;
        held.report.result = Some(kind);
    });
    status::response_counted(kind);
    let status = failed(r, &e);
    r.filter_finalize(status)
}

/// A backend's `206` where parts are not scanned: `502`, nothing of it (logged, counted).
pub fn partial(r: &mut Request) -> ngx_int_t {
    let msg = "the backend answered 206 (a part of a file), which is not scanned here: \
               \"proxy_set_header Range \"\"\" with \"proxy_force_ranges on\" lets nginx make \
               ranges of the scanned file, \
               \"ometascan_response_statuses ... 206\" scans parts as they are";
    crate::error!(log::response(r, &scanner(r)), "{msg}");
    status::response_counted(ResultKind::Error);
    bad_gateway(r)
}

/// The backend's response ended before its end (its connection closed or timed out mid-body,
/// and nginx's upstream asks for what is buffered to be sent before closing the client's
/// connection): nothing of it was sent, so `502`, and nginx closes the connection.
pub fn cut_short(r: &mut Request) -> ngx_int_t {
    crate::error!(
        log::response(r, &scanner(r)),
        "response refused: the backend's connection ended before the response did"
    );
    ctx::held(r, |held| held.report.result = Some(ResultKind::Error));
    status::response_counted(ResultKind::Error);
    bad_gateway(r)
}

/// A response no scan can cover (see the header filter): `502`, nothing of it (logged,
/// counted).
pub fn unreadable(r: &mut Request, why: &str) -> ngx_int_t {
    let status = r.as_ref().headers_out.status;
    crate::error!(
        log::response(r, &scanner(r)),
        "response with status {status} refused: {why}"
    );
    if r.as_ref().http_version == NGX_HTTP_VERSION_9 as ngx_uint_t {
        // nginx's upstream set HTTP/0.9 to relay the bytes; the error is the client's
        // protocol's own.
        let version = r.client_version();
        r.as_mut().http_version = version;
    }
    status::response_counted(ResultKind::Error);
    bad_gateway(r)
}

/// `502` and nothing of the response, for a reason the caller logged and counted (over
/// `ometascan_response_max_size` with `over=reject`, a part of a file). From the module's
/// filters, as [`refuse`].
pub fn bad_gateway(r: &mut Request) -> ngx_int_t {
    ctx::held(r, |held| held.phase = Phase::Released);
    unbuffer(r);
    r.filter_finalize(NGX_HTTP_BAD_GATEWAY as ngx_int_t)
}

/// Over `ometascan_response_max_size` with `over=pass` (logged and counted by the caller):
/// what is held goes on unscanned, the rest follows as it comes.
pub fn unscanned(r: &mut Request, last: bool) -> ngx_int_t {
    let body = ctx::held(r, |held| {
        held.phase = Phase::Released;
        // What was taken but not yet put in the body goes with it.
        held.finish().map(|()| held.body.clone())
    });
    let body = match body {
        Some(Ok(b)) => b,
        Some(Err(e)) => return refuse(r, e, ResultKind::Error),
        None => return NGX_ERROR as ngx_int_t,
    };
    unbuffer(r);
    let rc = next_header(r);
    if rc == NGX_ERROR as ngx_int_t || rc > NGX_OK as ngx_int_t || r.header_only() {
        return rc;
    }
    pass_body(r, body, last)
}

fn unbuffer(r: &mut Request) {
    let raw = r.as_mut();
    raw.set_buffered(raw.buffered() & !BUFFERED);
}

/// A block: logged, then the scanner's page (or `error_page` for its status).
fn blocked(r: &mut Request, page: &ResponsePage, threat: Option<String>) -> ngx_int_t {
    let Some(lcf) = Module::location_conf(r) else {
        return INTERNAL_ERROR;
    };
    if lcf.log_blocked() {
        let threat = threat
            .map(|t| format!(", threat \"{t}\""))
            .unwrap_or_default();
        crate::notice!(
            log::response(r, &scanner(r)),
            "response blocked by the scanner with status {}{threat}",
            page.status
        );
    }
    unbuffer(r);
    // The backend's fields go.
    r.clean_header();
    if lcf.intercept_errors() && page.status >= 300 && has_error_page(r, page.status) {
        return page.status as ngx_int_t;
    }
    // The page's own status, not one an `error_page ... =code` set for the response.
    r.as_mut().err_status = 0;
    send_page(r, page)
}

/// A failure: logged; the status for nginx's error page, the backend's fields gone.
fn failed(r: &mut Request, e: &ScanError) -> ngx_int_t {
    match e {
        ScanError::Module(m) => {
            crate::error!(log::response(r, &scanner(r)), "response not sent: {m}")
        }
        e => crate::error!(log::response(r, &scanner(r)), "response scan failed: {e}"),
    }
    unbuffer(r);
    r.clean_header();
    // A response over a decoding limit is the backend's doing, not the client's: 502.
    match e.status() {
        400..=499 => NGX_HTTP_BAD_GATEWAY as ngx_int_t,
        status => status as ngx_int_t,
    }
}

/// The response as the backend sent it (`content_type: None`), or with the scanner's body
/// (its length, its type if given; no coding, no validators).
fn send(r: &mut Request, body: RequestBody, content_type: Option<Option<&[u8]>>) -> ngx_int_t {
    unbuffer(r);
    if let Some(ct) = content_type {
        if replace_head(r, body.len(), ct).is_none() {
            return INTERNAL_ERROR;
        }
    }
    let rc = next_header(r);
    if rc == NGX_ERROR as ngx_int_t || rc > NGX_OK as ngx_int_t || r.header_only() {
        return rc;
    }
    pass_body(r, body, true)
}
