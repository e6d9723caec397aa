//! The request flow, as a state machine driven by nginx's phase engine: the precontent phase
//! handler reads the body with nginx's own machinery, starts the scan ([`job`]), and applies
//! the result when the phases run again ([`verdict`]). The state lives in [`ctx`].
//!
//! The handler runs in the precontent phase, after the access phase: `auth_request`, `allow`/
//! `deny` and `satisfy any` have all been decided, and none of them can skip the scan.

pub mod ctx;
mod job;
mod verdict;

use ngx::ffi::*;
use ngx::http::HttpModuleLocationConf;
use ometascan_core::{ResultKind, ScanOutcome};

use crate::conf::{LocConf, OnError, OverSize, PassTarget};
use crate::ngx_ext::buf::{body_buffers, Stored};
use crate::ngx_ext::conf::complex_value;
use crate::ngx_ext::log;
use crate::status;
use crate::Module;
use ctx::{Ctx, Report, State};

const NGX_DECLINED_: ngx_int_t = NGX_DECLINED as ngx_int_t;
const NGX_DONE_: ngx_int_t = NGX_DONE as ngx_int_t;

/// Logs at `level` with the scan's context (`scanner: "..."`).
///
/// # Safety
/// `r` must be a live request, on the nginx thread.
unsafe fn log_error(r: *mut ngx_http_request_t, level: u32, msg: &str) {
    // SAFETY: r is live on this thread (caller), so are its main request and the pool that
    // holds the ctx.
    let scanner = unsafe { ctx::get((*r).main) }
        .map(|c| c.scanner.clone())
        .unwrap_or_default();
    // SAFETY: as above: r and its connection's log are live for this call.
    unsafe { log::error(r, level, &scanner, msg) }
}

/// Logs at debug level (nginx built with debugging).
///
/// # Safety
/// `r` must be a live request.
unsafe fn log_debug(r: *mut ngx_http_request_t, msg: &str) {
    // SAFETY: r is live on this thread (caller), and so its connection's log.
    unsafe { log::debug(r, msg) }
}

/// Whether the request announced a body: a positive `Content-Length`, chunked, or an HTTP/2 or
/// HTTP/3 stream still open after its headers (which nginx marks as chunked).
///
/// # Safety
/// `r` must be a live request.
unsafe fn announces_body(r: *mut ngx_http_request_t) -> bool {
    // SAFETY: r is live (caller); its parsed headers are plain fields of the request.
    unsafe { (*r).headers_in.content_length_n > 0 || (*r).headers_in.chunked() != 0 }
}

/// The precontent-phase handler.
///
/// # Safety
/// Called by nginx's phase engine with a live request.
pub unsafe extern "C" fn scan_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx's phase engine runs this handler on its thread for a request it has not
    // freed (a request lives until finalized, which happens after the handler returns); the
    // same holds for every use of r below.
    if r != unsafe { (*r).main } {
        return NGX_DECLINED_;
    }
    // A request met before: this phase runs again after the scan, and in every location an
    // internal redirect leads to, whatever that location's own configuration.
    // SAFETY: r is live (see above); its ctx lives in its pool.
    if let Some(ctx) = unsafe { ctx::get(r) } {
        // SAFETY: r is the live main request of ctx.
        return unsafe { again(r, ctx) };
    }
    // SAFETY: r is live; configuration pointers are valid for the request's lifetime.
    let Some(lcf) = (unsafe { Module::location_conf(&*r) }) else {
        return NGX_DECLINED_;
    };
    let Some(target) = lcf.target() else {
        return NGX_DECLINED_;
    };
    // SAFETY: r is live (see above); the method name is in its pool.
    let (method, has_body) = unsafe { ((*r).method_name.as_bytes(), announces_body(r)) };
    if !lcf.settings.methods.scans(method, has_body) {
        status::counted(ResultKind::Skipped);
        return NGX_DECLINED_;
    }
    // SAFETY: r is live; the values were compiled for its configuration.
    if let Some(why) = unsafe { bypassed(r, lcf) } {
        status::counted(ResultKind::Skipped);
        let msg = format!("not scanned: \"ometascan_bypass\" value \"{why}\"");
        // SAFETY: r is live (see above).
        unsafe { log::error(r, NGX_LOG_INFO, &target.shown, &msg) };
        return NGX_DECLINED_;
    }
    let fresh = Ctx {
        state: State::Reading,
        scanner: target.shown.clone(),
        report: Report::default(),
    };
    // SAFETY: r is a live main request without a ctx.
    if unsafe { ctx::create(r, fresh) }.is_none() {
        return NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t;
    }
    // SAFETY: r is live, its body not read yet.
    unsafe { store_as_dav_would(r) };
    // SAFETY: r is live; nginx calls body_handler once the body is read.
    let rc = unsafe { ngx_http_read_client_request_body(r, Some(body_handler)) };
    if rc >= NGX_HTTP_SPECIAL_RESPONSE as ngx_int_t {
        return rc;
    }
    // SAFETY: r is live; the reference taken by reading the body is given back.
    unsafe { ngx_http_finalize_request(r, NGX_DONE_) };
    NGX_DONE_
}

/// A `PUT` in a location without a content handler of its own (no `proxy_pass`, `fastcgi_pass`,
/// ...) goes to the content phase's handlers, WebDAV's first: the body is read the way WebDAV
/// reads it, into a kept file it can rename into place (and removed with the request unless
/// WebDAV took it). WebDAV reads the body only when the scan is over, too late to ask for a
/// file then. Other requests are read as the location says (`client_body_in_file_only`,
/// `client_body_in_single_buffer`, which nginx has set on the request already).
///
/// # Safety
/// `r` must be a live request whose body is not read yet.
unsafe fn store_as_dav_would(r: *mut ngx_http_request_t) {
    // SAFETY: r is live; the location's content handler was set when its location was found.
    unsafe {
        if (*r).method != NGX_HTTP_PUT as ngx_uint_t || (*r).content_handler.is_some() {
            return;
        }
        (*r).set_request_body_in_file_only(1);
        (*r).set_request_body_in_persistent_file(1);
        (*r).set_request_body_in_clean_file(1);
        (*r).set_request_body_file_group_access(1);
        (*r).set_request_body_file_log_level(0);
    }
}

/// The first `ometascan_bypass` value that is non-empty and not "0", if any (a value that
/// cannot be evaluated does not bypass).
///
/// # Safety
/// `r` must be a live request of `lcf`'s location.
unsafe fn bypassed(r: *mut ngx_http_request_t, lcf: &LocConf) -> Option<String> {
    lcf.bypass.as_deref()?.iter().find_map(|&cv| {
        // SAFETY: r is live (caller) and cv was compiled for its location's configuration.
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
///
/// # Safety
/// `r` must be the live main request of `ctx`.
unsafe fn again(r: *mut ngx_http_request_t, ctx: &mut Ctx) -> ngx_int_t {
    match &ctx.state {
        State::Done(_) => {
            // SAFETY: r is live.
            match unsafe { Module::location_conf(&*r) } {
                // SAFETY: per the contract; the scan is over.
                Some(lcf) => unsafe { verdict::apply(r, ctx, lcf) },
                None => NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t,
            }
        }
        // Never scanned again: an allowed body goes on as it is, a blocked or failed one is
        // gone already (and stays gone).
        State::Applied { passed } => {
            if !passed {
                // SAFETY: per the contract; no scan in flight.
                unsafe { verdict::drop_body(r) };
            }
            NGX_DECLINED_
        }
        State::Scanning(_) => NGX_DONE_,
        State::TooLarge => {
            ctx.state = State::Applied { passed: false };
            // SAFETY: per the contract; no scan was started.
            unsafe { verdict::drop_body(r) };
            NGX_HTTP_REQUEST_ENTITY_TOO_LARGE as ngx_int_t
        }
        // Only a redirect after a failed body read (a timeout, a client error) meets this:
        // the body is incomplete and unscanned.
        State::Reading => {
            ctx.state = State::Applied { passed: false };
            // SAFETY: per the contract; no scan was started.
            unsafe { verdict::drop_body(r) };
            NGX_DECLINED_
        }
    }
}

/// The whole body is in nginx's buffers or temp file: start the scan.
unsafe extern "C" fn body_handler(r: *mut ngx_http_request_t) {
    // SAFETY: nginx calls this with the live request whose body it read.
    let (Some(ctx), Some(lcf)) = (unsafe { ctx::get(r) }, unsafe {
        Module::location_conf(&*r)
    }) else {
        return;
    };
    let Some(target) = lcf.target() else { return };
    // SAFETY: r is live; nginx read the whole body.
    let len = unsafe { body_size(r) };
    if let Some((max, over)) = lcf.settings.max_size.filter(|(max, _)| len > *max) {
        // SAFETY: r is the live main request of ctx.
        unsafe { over_size(r, ctx, target, len, max, over) };
        return;
    }
    // SAFETY: r is a live main request whose body was read.
    let started = unsafe { job::start(r, lcf, target, on_done) };
    match started {
        Ok(slot) => {
            ctx.state = State::Scanning(slot);
            status::started(len);
            // SAFETY: r is live. The scan holds a reference; the client is watched meanwhile.
            unsafe {
                let main = (*r).main;
                (*main).set_count((*main).count() + 1);
                (*r).read_event_handler = Some(ngx_http_test_reading);
                (*r).write_event_handler = Some(ngx_http_request_empty_handler);
                log_debug(r, &format!("ometascan: scan started, body {len} bytes"));
            }
        }
        Err(e) => {
            let kind = failed_kind(lcf);
            ctx.report.result = Some(kind);
            status::started(0);
            status::finished(Some(kind), Some(&e), None, None, false);
            ctx.state = State::Done(job::not_started(e).result);
            // SAFETY: r is live.
            unsafe { resume(r) };
        }
    }
}

/// The body's real size, as nginx stored it (memory buffers and temp file ranges).
///
/// # Safety
/// `r` must be a live request whose body nginx has read.
unsafe fn body_size(r: *mut ngx_http_request_t) -> u64 {
    // SAFETY: r is live with its body read (caller); the buffers are only measured.
    unsafe { body_buffers(r) }.iter().map(Stored::len).sum()
}

/// A body over `ometascan_max_size`: refused (413) or, with `over=pass`, forwarded unscanned.
///
/// # Safety
/// `r` must be the live main request of `ctx`, whose body nginx has read.
unsafe fn over_size(
    r: *mut ngx_http_request_t,
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
    // SAFETY: r is the live main request (caller), on nginx's thread.
    unsafe {
        log::error(r, level, &target.shown, &msg);
        resume(r);
    }
}

/// A scan finished: record the outcome and run the phases again, which applies it.
///
/// # Safety
/// On the nginx thread, for a request whose slot was live.
unsafe fn on_done(r: *mut ngx_http_request_t, outcome: ScanOutcome) {
    // SAFETY: the request is alive (the runtime checked its slot) and ours holds a reference.
    if let Some(ctx) = unsafe { ctx::get(r) } {
        // SAFETY: as above.
        let failed = match (&outcome.result, unsafe { Module::location_conf(&*r) }) {
            (Err(e), Some(lcf)) if e.may_pass_unscanned() => failed_kind(lcf),
            _ => ResultKind::Error,
        };
        ctx.report = Report::of(&outcome, failed);
        status::finished(
            ctx.report.result,
            outcome.result.as_ref().err(),
            Some(outcome.elapsed),
            outcome.server,
            outcome.queued,
        );
        ctx.state = State::Done(outcome.result);
    }
    // SAFETY: as above.
    unsafe {
        let c = (*r).connection;
        let alive = (*(*r).main).count() > 1;
        // Give back the reference taken when the scan started.
        ngx_http_finalize_request(r, NGX_DONE_);
        if alive {
            resume(r);
        }
        ngx_http_run_posted_requests(c);
    }
}

/// Runs the phases again (from the precontent phase, where the handler applies the result).
///
/// # Safety
/// `r` must be a live request.
unsafe fn resume(r: *mut ngx_http_request_t) {
    // SAFETY: per the contract.
    unsafe {
        (*r).write_event_handler = Some(ngx_http_core_run_phases);
        ngx_http_core_run_phases(r);
    }
}
