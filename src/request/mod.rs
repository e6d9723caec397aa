//! The request flow, as a state machine driven by nginx's phase engine: the precontent phase
//! handler reads the body with nginx's own machinery, starts the scan ([`job`]), and applies
//! the result when the phases run again ([`verdict`]). The state lives in [`ctx`].
//!
//! The handler runs in the precontent phase, after the access phase: `auth_request`, `allow`/
//! `deny` and `satisfy any` have all been decided, and none of them can skip the scan.

pub mod ctx;
pub mod job;
pub mod pieces;
mod verdict;

use ngx::ffi::*;
use ngx::http::{HttpModuleLocationConf, Request};
use ometascan_core::{ResultKind, ScanOutcome};

use crate::conf::{LocConf, OnError, OverSize, PassTarget};
use crate::ngx_ext::body::{body_buffers, Stored};
use crate::ngx_ext::conf::complex_value;
use crate::ngx_ext::log;
use crate::ngx_ext::request::{finalize, RequestExt};
use crate::status;
use crate::Module;
use ctx::{Ctx, Report, State};

const NGX_DECLINED_: ngx_int_t = NGX_DECLINED as ngx_int_t;
const NGX_DONE_: ngx_int_t = NGX_DONE as ngx_int_t;

/// Logs at `level` with the scan's context (`scanner: "..."`).
fn log_error(r: &mut Request, level: u32, msg: &str) {
    // SAFETY: the ctx is only read here, while no other borrow of it is live (the callers'
    // borrows of the ctx are not used across this call), and the request is live.
    let scanner = unsafe { ctx::get(r) }
        .map(|c| c.scanner.clone())
        .unwrap_or_default();
    log::error(r, level, &scanner, msg)
}

/// Logs at debug level (nginx built with debugging).
fn log_debug(r: &Request, msg: &str) {
    log::debug(r, msg)
}

/// The precontent-phase handler.
///
/// # Safety
/// Called by nginx's phase engine with a live request.
pub unsafe extern "C" fn scan_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx's phase engine calls this on its thread with a request it has allocated
    // and frees only after finalizing it, which happens after this call returns (the
    // finalization below gives back the body reader's reference, not the request's own).
    let r = unsafe { Request::from_ngx_http_request(r) };
    if !r.is_main() {
        return NGX_DECLINED_;
    }
    // A request met before: this phase runs again after the scan, and in every location an
    // internal redirect leads to, whatever that location's own configuration.
    // SAFETY: the ctx borrow ends with this call, before the pool goes; no other is live.
    if let Some(ctx) = unsafe { ctx::get(r) } {
        return again(r, ctx);
    }
    let Some(lcf) = Module::location_conf(r) else {
        return NGX_DECLINED_;
    };
    let Some(target) = lcf.target() else {
        return NGX_DECLINED_;
    };
    if pieces::terminated(r) {
        return NGX_DECLINED_;
    }
    if !lcf
        .settings
        .methods
        .scans(r.method_name(), r.announces_body())
        && !pieces::claims(r)
    {
        status::counted(ResultKind::Skipped);
        return NGX_DECLINED_;
    }
    if let Some(why) = bypassed(r, lcf) {
        status::counted(ResultKind::Skipped);
        let msg = format!("not scanned: \"ometascan_bypass\" value \"{why}\"");
        log::error(r, NGX_LOG_INFO, &target.shown, &msg);
        return NGX_DECLINED_;
    }
    let fresh = Ctx {
        state: State::Reading,
        scanner: target.shown.clone(),
        report: Report::default(),
    };
    // SAFETY: a main request without a ctx (checked above); the borrow is not kept.
    if unsafe { ctx::create(r, fresh) }.is_none() {
        return NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t;
    }
    store_as_dav_would(r);
    let rc = r.read_body(body_handler);
    if rc >= NGX_HTTP_SPECIAL_RESPONSE as ngx_int_t {
        return rc;
    }
    // SAFETY: gives back the reference the body reader took; the request's own keeps it
    // allocated, and r is not used after.
    unsafe { finalize(r.raw(), NGX_DONE_) };
    NGX_DONE_
}

/// A `PUT` in a location without a content handler of its own (no `proxy_pass`, `fastcgi_pass`,
/// ...) goes to the content phase's handlers, WebDAV's first: the body is read the way WebDAV
/// reads it, into a kept file it can rename into place (and removed with the request unless
/// WebDAV took it). WebDAV reads the body only when the scan is over, too late to ask for a
/// file then. Other requests are read as the location says (`client_body_in_file_only`,
/// `client_body_in_single_buffer`, which nginx has set on the request already).
fn store_as_dav_would(r: &mut Request) {
    if r.is_put() && !r.has_content_handler() {
        r.body_in_kept_file();
    }
}

/// The first `ometascan_bypass` value that is non-empty and not "0", if any (a value that
/// cannot be evaluated does not bypass).
fn bypassed(r: &Request, lcf: &LocConf) -> Option<String> {
    first_set(r, lcf.bypass.as_deref())
}

/// The first of a bypass directive's values that is non-empty and not "0" for `r`.
pub fn first_set(r: &Request, values: Option<&[*mut ngx_http_complex_value_t]>) -> Option<String> {
    values?.iter().find_map(|&cv| {
        // SAFETY: cv was compiled for the configuration of r's location (lcf is it).
        let v = unsafe { complex_value(r, cv) }?;
        (!v.is_empty() && v != b"0").then(|| String::from_utf8_lossy(&v).into_owned())
    })
}

/// What a failed scan counts as in this location.
fn failed_kind(lcf: &LocConf) -> ResultKind {
    match lcf.settings.on_error {
        OnError::Block => ResultKind::Error,
        OnError::Pass => ResultKind::Unscanned,
    }
}

/// The phase handler for a request that has a ctx already.
fn again(r: &mut Request, ctx: &mut Ctx) -> ngx_int_t {
    match &ctx.state {
        State::Done(_) => match Module::location_conf(r) {
            Some(lcf) => verdict::apply(r, ctx, lcf),
            None => NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t,
        },
        // Never scanned again: an allowed body goes on as it is, a blocked or failed one is
        // gone already (and stays gone).
        State::Applied { passed } => {
            if !passed {
                verdict::drop_body(r);
            }
            NGX_DECLINED_
        }
        State::Scanning(_) => NGX_DONE_,
        State::TooLarge => {
            ctx.state = State::Applied { passed: false };
            verdict::drop_body(r);
            NGX_HTTP_REQUEST_ENTITY_TOO_LARGE as ngx_int_t
        }
        // Only a redirect after a failed body read (a timeout, a client error) meets this:
        // the body is incomplete and unscanned.
        State::Reading => {
            ctx.state = State::Applied { passed: false };
            verdict::drop_body(r);
            NGX_DECLINED_
        }
    }
}

/// The whole body is in nginx's buffers or temp file: start the scan.
unsafe extern "C" fn body_handler(r: *mut ngx_http_request_t) {
    // SAFETY: nginx's body reader calls this on its thread with the request whose body it
    // read, holding a reference on it until this call returns.
    let r = unsafe { Request::from_ngx_http_request(r) };
    // SAFETY: the ctx borrow ends with this call, before the pool goes; no other is live.
    let (Some(ctx), Some(lcf)) = (unsafe { ctx::get(r) }, Module::location_conf(r)) else {
        return;
    };
    let Some(target) = lcf.target() else { return };
    let len = body_buffers(r).iter().map(Stored::len).sum();
    if let Some((max, over)) = lcf.settings.max_size.filter(|(max, _)| len > *max) {
        over_size(r, ctx, target, len, max, over);
        return;
    }
    match job::start(r, lcf, target, on_done) {
        Ok(slot) => {
            ctx.state = State::Scanning(slot);
            status::started(len);
            // The scan holds a reference; the client is watched meanwhile.
            r.hold();
            log_debug(r, &format!("ometascan: scan started, body {len} bytes"));
        }
        Err(e) => {
            let kind = failed_kind(lcf);
            ctx.report.result = Some(kind);
            status::started(0);
            status::finished(Some(kind), Some(&e), None, None, false);
            ctx.state = State::Done(job::not_started(e).result);
            r.run_phases();
        }
    }
}

/// A body over `ometascan_max_size`: refused (413) or, with `over=pass`, forwarded unscanned.
fn over_size(
    r: &mut Request,
    ctx: &mut Ctx,
    target: &PassTarget,
    len: u64,
    max: u64,
    over: OverSize,
) {
    let (kind, level, state, what) = match over {
        OverSize::Reject => (
            ResultKind::TooLarge,
            NGX_LOG_INFO,
            State::TooLarge,
            "refused",
        ),
        OverSize::Pass => (
            ResultKind::Unscanned,
            NGX_LOG_WARN,
            State::Applied { passed: true },
            "forwarded unscanned",
        ),
    };
    ctx.report.result = Some(kind);
    ctx.state = state;
    status::counted(kind);
    let msg = format!("request body of {len} bytes is over \"ometascan_max_size\" {max}, {what}");
    log::error(r, level, &target.shown, &msg);
    r.run_phases();
}

/// A scan finished: record the outcome and run the phases again, which applies it.
///
/// # Safety
/// On the nginx thread, for a request whose slot was live.
unsafe fn on_done(r: *mut ngx_http_request_t, outcome: ScanOutcome) {
    // SAFETY: the runtime calls this on nginx's thread for a request whose slot is live: the
    // request is allocated and holds the reference the scan took (`hold`).
    let req = unsafe { Request::from_ngx_http_request(r) };
    // SAFETY: the ctx borrow ends in this block, before the pool goes; no other is live.
    if let Some(ctx) = unsafe { ctx::get(req) } {
        let failed = match (&outcome.result, Module::location_conf(req)) {
            (Err(e), Some(lcf)) if e.may_pass_unscanned() => failed_kind(lcf),
            _ => ResultKind::Error,
        };
        ctx.report = Report::of(&outcome, failed);
        pieces::count(&outcome);
        status::finished(
            ctx.report.result,
            outcome.result.as_ref().err(),
            Some(outcome.elapsed),
            outcome.server.as_ref(),
            outcome.queued,
        );
        ctx.state = State::Done(outcome.result);
    }
    let c = req.connection();
    let alive = req.held_elsewhere();
    // SAFETY: gives back the reference the scan took. With another reference held (alive),
    // the request stays allocated and is resumed; otherwise it may be freed here and is not
    // used again. c stays addressable either way: connections are slots of the cycle's
    // preallocated array, and one closed meanwhile is marked destroyed, which
    // ngx_http_run_posted_requests checks first.
    unsafe {
        finalize(r, NGX_DONE_);
        if alive {
            Request::from_ngx_http_request(r).run_phases();
        }
        ngx_http_run_posted_requests(c);
    }
}
