//! The request flow: read the body with nginx's own machinery, hand a copy of the request to
//! the scanner, and apply the verdict when it comes back.
//!
//! The handler runs in the precontent phase, after the access phase: `auth_request`, `allow`/
//! `deny` and `satisfy any` have all been decided, and none of them can skip the scan.

use std::fs::File;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::ptr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ngx::ffi::*;
use ngx::http::{HttpModuleLocationConf, NgxHttpCoreModule};
use ometascan_core::headers::HeaderRules;
use ometascan_core::http_scan::Target;
use ometascan_core::{
    BodyPart, RequestBody, ResponsePage, SanitizedBody, ScanError, ScanOptions, ScanRequest,
    Timeouts, Verdict,
};

use crate::bridge::{self, Completion, Loan, SlotId};
use crate::conf::{LocConf, PassTarget};
use crate::log;
use crate::stats;
use crate::Module;

/// Where a request is in the scan flow.
enum State {
    Reading,
    Scanning(SlotId),
    Done(Outcome),
    /// The verdict was applied. `passed`: the body may go on (allowed, sanitized, or the
    /// documented bad-request exception); otherwise it was dropped.
    Applied {
        passed: bool,
    },
}

enum Outcome {
    Verdict(Verdict),
    Failed(ScanError),
    /// The module could not even start the scan (no memory, bad header, ...): 500.
    Internal(String),
}

/// Per-request state, kept in a cleanup of the request pool; dropping it (when the pool goes
/// away) cancels a scan still in flight.
///
/// nginx clears every module's ctx on an internal redirect (`error_page`, `try_files`,
/// `rewrite ... last`, named locations), but not the pool: [`ctx`] finds the state again
/// through the pool cleanup, so a verdict outlives every redirect of its request.
pub struct Ctx {
    state: State,
    pub scanner: String,
    elapsed: Duration,
    /// What the access log variables show.
    pub report: Report,
}

/// The scan as the `$ometascan_*` variables tell it.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub result: Option<&'static str>,
    pub threat: Option<String>,
    pub scan_time: Option<Duration>,
    pub server: Option<std::net::SocketAddr>,
    pub status: Option<u16>,
}

impl Drop for Ctx {
    fn drop(&mut self) {
        if let State::Scanning(slot) = self.state {
            bridge::forget(slot);
            stats::finished(None, None, None, None);
        }
    }
}

/// The request's cleanup: nginx is terminating it (client gone, worker stopping, ...) while a
/// scan may run. The scan is cancelled; the request stays blocked until the scan has let go of
/// its memory.
unsafe extern "C" fn cleanup_handler(data: *mut std::ffi::c_void) {
    let r = data as *mut ngx_http_request_t;
    // SAFETY: data is the request this cleanup was added to; nginx runs request cleanups
    // while the request is still allocated.
    unsafe {
        if let Some(ctx) = ctx(r) {
            if let State::Scanning(slot) = ctx.state {
                bridge::cancel(slot);
            }
        }
    }
}

const NGX_DECLINED_: ngx_int_t = NGX_DECLINED as ngx_int_t;
const NGX_DONE_: ngx_int_t = NGX_DONE as ngx_int_t;
const NGX_OK_: ngx_int_t = NGX_OK as ngx_int_t;

// The pool cleanup stores the ctx in memory aligned like any nginx pool allocation.
const _: () = assert!(std::mem::align_of::<Ctx>() <= std::mem::align_of::<usize>());

/// Drops the ctx kept in a pool cleanup.
unsafe extern "C" fn drop_ctx(data: *mut std::ffi::c_void) {
    // SAFETY: data is the Ctx written by new_ctx; nginx runs a pool cleanup once.
    unsafe { ptr::drop_in_place(data as *mut Ctx) }
}

/// Allocates the request's ctx in a cleanup of its pool and points the module's ctx at it.
///
/// # Safety
/// `r` must be a live main request without a ctx.
unsafe fn new_ctx<'a>(r: *mut ngx_http_request_t, value: Ctx) -> Option<&'a mut Ctx> {
    // SAFETY: the cleanup's data is pool memory of the size asked for; the request's ctx
    // array has a slot for every module.
    unsafe {
        let cln = ngx_pool_cleanup_add((*r).pool, std::mem::size_of::<Ctx>());
        if cln.is_null() {
            return None;
        }
        let p = (*cln).data as *mut Ctx;
        ptr::write(p, value);
        (*cln).handler = Some(drop_ctx);
        *(*r).ctx.add(crate::module().ctx_index) = p as *mut _;
        p.as_mut()
    }
}

/// The module's ctx of a request, also after nginx cleared it for an internal redirect.
///
/// # Safety
/// `r` must be a live request.
pub unsafe fn ctx<'a>(r: *mut ngx_http_request_t) -> Option<&'a mut Ctx> {
    // SAFETY: ctx_index is set by nginx; the slot holds our Ctx or null.
    let slot = unsafe { (*r).ctx.add(crate::module().ctx_index) };
    // SAFETY: as above.
    if let Some(c) = unsafe { (*slot as *mut Ctx).as_mut() } {
        return Some(c);
    }
    // Only an internal redirect clears the slot of a request that has a ctx.
    // SAFETY: r is live.
    if unsafe { (*r).internal() } == 0 {
        return None;
    }
    // SAFETY: the pool's cleanup list is valid; ours is recognised by its handler.
    unsafe {
        let mut cln = (*(*r).pool).cleanup;
        while !cln.is_null() {
            if (*cln)
                .handler
                .is_some_and(|h| std::ptr::fn_addr_eq(h, drop_ctx as unsafe extern "C" fn(_)))
            {
                *slot = (*cln).data;
                return ((*cln).data as *mut Ctx).as_mut();
            }
            cln = (*cln).next;
        }
    }
    None
}

/// Whether the request announced a body: a positive `Content-Length`, chunked, or an HTTP/2 or
/// HTTP/3 stream still open after its headers (which nginx marks as chunked).
unsafe fn announces_body(r: *mut ngx_http_request_t) -> bool {
    // SAFETY: r is live.
    unsafe { (*r).headers_in.content_length_n > 0 || (*r).headers_in.chunked() != 0 }
}

/// The precontent-phase handler.
///
/// # Safety
/// Called by nginx's phase engine with a live request.
pub unsafe extern "C" fn scan_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: r is live; configuration pointers are valid for the request's lifetime.
    unsafe {
        if r != (*r).main {
            return NGX_DECLINED_;
        }
        // A request met before: this phase runs again after the scan, and in every location
        // an internal redirect leads to, whatever that location's own configuration.
        if let Some(ctx) = ctx(r) {
            return match &ctx.state {
                State::Done(_) => match Module::location_conf(&*r) {
                    Some(lcf) => apply(r, ctx, lcf),
                    None => NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t,
                },
                // Never scanned again: an allowed body goes on as it is, a blocked or failed
                // one is gone already.
                State::Applied { passed } => {
                    if !passed {
                        drop_body(r);
                    }
                    NGX_DECLINED_
                }
                State::Scanning(_) => NGX_DONE_,
                // Only a redirect after a failed body read (a timeout, a client error) meets
                // this: the body is incomplete and unscanned.
                State::Reading => {
                    ctx.state = State::Applied { passed: false };
                    drop_body(r);
                    NGX_DECLINED_
                }
            };
        }
        let Some(lcf) = Module::location_conf(&*r) else {
            return NGX_DECLINED_;
        };
        let Some(target) = lcf.target() else {
            return NGX_DECLINED_;
        };
        if !lcf
            .methods()
            .scans((*r).method_name.as_bytes(), announces_body(r))
        {
            stats::skipped();
            return NGX_DECLINED_;
        }
        let fresh = Ctx {
            state: State::Reading,
            scanner: target.shown.clone(),
            elapsed: Duration::ZERO,
            report: Report::default(),
        };
        if new_ctx(r, fresh).is_none() {
            return NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t;
        }

        let rc = ngx_http_read_client_request_body(r, Some(body_handler));
        if rc >= NGX_HTTP_SPECIAL_RESPONSE as ngx_int_t {
            return rc;
        }
        ngx_http_finalize_request(r, NGX_DONE_);
        NGX_DONE_
    }
}

/// The whole body is in nginx's buffers or temp file: start the scan.
unsafe extern "C" fn body_handler(r: *mut ngx_http_request_t) {
    // SAFETY: nginx calls this with the live request whose body it read.
    unsafe {
        let Some(ctx) = ctx(r) else { return };
        let Some(lcf) = Module::location_conf(&*r) else {
            return;
        };
        let Some(target) = lcf.target() else { return };
        match start_scan(r, lcf, target) {
            Ok(slot) => {
                ctx.state = State::Scanning(slot);
                stats::started(body_len(r) as u64);
                // Keep the request alive while the scan runs; watch the client meanwhile.
                let main = (*r).main;
                (*main).set_count((*main).count() + 1);
                (*r).read_event_handler = Some(ngx_http_test_reading);
                (*r).write_event_handler = Some(ngx_http_request_empty_handler);
                log::debug(
                    r,
                    &format!("ometascan: scan started, body {} bytes", body_len(r)),
                );
            }
            Err(outcome) => {
                ctx.report.result = Some("error");
                stats::started(0);
                stats::finished(Some("error"), None, None, None);
                ctx.state = State::Done(outcome);
                resume(r);
            }
        }
    }
}

/// A scan finished: record the outcome and run the phases again, which applies it.
///
/// # Safety
/// On the nginx thread, for a request whose slot was live.
pub unsafe fn on_complete(r: *mut ngx_http_request_t, done: Completion) {
    // SAFETY: the request is alive (the bridge checked its slot) and ours holds a reference.
    unsafe {
        let c = (*r).connection;
        if let Some(ctx) = ctx(r) {
            ctx.elapsed = done.elapsed;
            let outcome = done.outcome;
            ctx.report = Report {
                result: Some(match &outcome.result {
                    Ok(v) => v.name(),
                    Err(_) => "error",
                }),
                threat: match &outcome.result {
                    Ok(Verdict::Blocked { threat, .. }) => threat.clone(),
                    _ => None,
                },
                scan_time: Some(done.elapsed),
                server: outcome.server,
                status: outcome.status,
            };
            stats::finished(
                ctx.report.result,
                outcome.result.as_ref().err(),
                Some(done.elapsed),
                outcome.server,
            );
            ctx.state = State::Done(match outcome.result {
                Ok(v) => Outcome::Verdict(v),
                Err(e) => Outcome::Failed(e),
            });
        }
        let main = (*r).main;
        let alive = (*main).count() > 1;
        // Give back the reference taken when the scan started.
        ngx_http_finalize_request(r, NGX_DONE_);
        if alive {
            resume(r);
        }
        ngx_http_run_posted_requests(c);
    }
}

unsafe fn resume(r: *mut ngx_http_request_t) {
    // SAFETY: r is live.
    unsafe {
        (*r).write_event_handler = Some(ngx_http_core_run_phases);
        ngx_http_core_run_phases(r);
    }
}

/// Applies the outcome; returns what the phase handler returns.
unsafe fn apply(r: *mut ngx_http_request_t, ctx: &mut Ctx, lcf: &LocConf) -> ngx_int_t {
    let outcome = match std::mem::replace(&mut ctx.state, State::Applied { passed: false }) {
        State::Done(o) => o,
        _ => return NGX_DECLINED_,
    };
    let passed = match &outcome {
        Outcome::Verdict(Verdict::Allowed | Verdict::Sanitized { .. }) => true,
        Outcome::Verdict(Verdict::BadRequest { .. }) => lcf.allow_bad_request(),
        _ => false,
    };
    ctx.state = State::Applied { passed };
    let ms = ctx.elapsed.as_millis();
    // SAFETY: r is live for the whole function.
    unsafe {
        if !passed {
            // Before anything else runs (error_page, the page being sent): from here on no
            // later step of nginx can find the body.
            drop_body(r);
        }
        match outcome {
            Outcome::Verdict(Verdict::Allowed) => {
                log::debug(r, &format!("ometascan: allowed in {ms} ms"));
                NGX_DECLINED_
            }
            Outcome::Verdict(Verdict::Sanitized {
                body,
                content_type,
                content_disposition,
                ..
            }) => {
                let len = body.len();
                match replace_body(r, body, content_type, content_disposition) {
                    Ok(()) => {
                        log::debug(
                            r,
                            &format!("ometascan: sanitized in {ms} ms, new body {len} bytes"),
                        );
                        NGX_DECLINED_
                    }
                    Err(e) => {
                        log::error(
                            r,
                            NGX_LOG_ERR,
                            &format!("cannot forward the sanitized body: {e}"),
                        );
                        ctx.state = State::Applied { passed: false };
                        drop_body(r);
                        NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t
                    }
                }
            }
            Outcome::Verdict(Verdict::Blocked { page, threat }) => {
                let threat = threat
                    .map(|t| format!(", threat \"{t}\""))
                    .unwrap_or_default();
                if lcf.log_blocked() {
                    log::error(
                        r,
                        NGX_LOG_NOTICE,
                        &format!(
                            "request blocked by the scanner with status {}{threat}",
                            page.status
                        ),
                    );
                }
                log::debug(r, &format!("ometascan: blocked in {ms} ms"));
                relay(r, lcf, &page)
            }
            Outcome::Verdict(Verdict::BadRequest { page }) => {
                if lcf.allow_bad_request() {
                    log::error(
                        r,
                        NGX_LOG_WARN,
                        "scanner could not parse the request (400), forwarding it unscanned \
                         because of \"ometascan_allow_bad_request_traffic on\"",
                    );
                    NGX_DECLINED_
                } else {
                    log::debug(r, "ometascan: scanner answered 400");
                    relay(r, lcf, &page)
                }
            }
            Outcome::Failed(e) => {
                log::error(r, NGX_LOG_ERR, &format!("scan failed: {e}"));
                e.status() as ngx_int_t
            }
            Outcome::Internal(msg) => {
                log::error(r, NGX_LOG_ERR, &msg);
                NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t
            }
        }
    }
}

/// Sends the scanner's page, or lets `error_page` answer when intercepting.
unsafe fn relay(r: *mut ngx_http_request_t, lcf: &LocConf, page: &ResponsePage) -> ngx_int_t {
    // SAFETY: r is live.
    unsafe {
        if lcf.intercept_errors() && page.status >= 300 && has_error_page(r, page.status) {
            return page.status as ngx_int_t;
        }
        let rc = send_page(r, page);
        ngx_http_finalize_request(r, rc);
        NGX_DONE_
    }
}

unsafe fn has_error_page(r: *mut ngx_http_request_t, status: u16) -> bool {
    // SAFETY: r is live; the core location conf always exists.
    unsafe {
        let Some(clcf) = NgxHttpCoreModule::location_conf(&*r) else {
            return false;
        };
        let pages = clcf.error_pages;
        if pages.is_null() {
            return false;
        }
        (*pages)
            .as_slice::<ngx_http_err_page_t>()
            .iter()
            .any(|p| p.status == status as ngx_int_t)
    }
}

/// Copies `bytes` into the request pool as an ngx_str_t.
unsafe fn pool_str(r: *mut ngx_http_request_t, bytes: &[u8]) -> Option<ngx_str_t> {
    // SAFETY: the request pool outlives every use of the string.
    unsafe { ngx_str_t::from_bytes((*r).pool, bytes) }
}

unsafe fn send_page(r: *mut ngx_http_request_t, page: &ResponsePage) -> ngx_int_t {
    let error = NGX_ERROR as ngx_int_t;
    // SAFETY: r is live; every allocation comes from its pool.
    unsafe {
        (*r).headers_out.status = page.status as ngx_uint_t;
        (*r).headers_out.content_length_n = match page.head_length {
            Some(n) if page.body.is_empty() && (*r).method == NGX_HTTP_HEAD as ngx_uint_t => {
                n.min(off_t::MAX as u64) as off_t
            }
            _ => page.body.len() as off_t,
        };
        for (name, value) in &page.headers {
            if name.eq_ignore_ascii_case(b"content-type") {
                let Some(v) = pool_str(r, value) else {
                    return error;
                };
                (*r).headers_out.content_type = v;
                (*r).headers_out.content_type_len = v.len;
                continue;
            }
            if name.eq_ignore_ascii_case(b"server") || name.eq_ignore_ascii_case(b"date") {
                continue;
            }
            let h = ngx_list_push(&mut (*r).headers_out.headers) as *mut ngx_table_elt_t;
            if h.is_null() {
                return error;
            }
            ptr::write_bytes(h, 0, 1);
            let (Some(k), Some(v)) = (pool_str(r, name), pool_str(r, value)) else {
                return error;
            };
            let lower = ngx_pnalloc((*r).pool, k.len) as *mut u8;
            if lower.is_null() {
                return error;
            }
            ngx_strlow(lower, k.data, k.len);
            (*h).hash = 1;
            (*h).key = k;
            (*h).value = v;
            (*h).lowcase_key = lower;
        }
        let rc = ngx_http_send_header(r);
        if rc == error || rc > NGX_OK_ || (*r).header_only() != 0 {
            return rc;
        }
        crate::buf::send_body(r, &page.body)
    }
}

#[derive(Debug, thiserror::Error)]
enum ApplyError {
    #[error("out of memory")]
    NoMemory,
}

/// Replaces the request body with the scanner's, fixing Content-Length, Content-Type and the
/// Content-Disposition filename.
unsafe fn replace_body(
    r: *mut ngx_http_request_t,
    body: SanitizedBody,
    content_type: Option<Bytes>,
    content_disposition: Option<Bytes>,
) -> Result<(), ApplyError> {
    // SAFETY: r is live; allocations come from its pool, which outlives the proxying.
    unsafe {
        let pool = (*r).pool;
        let rb = (*r).request_body;
        if rb.is_null() {
            return Err(ApplyError::NoMemory);
        }
        let len = body.len();
        let b: *mut ngx_buf_t = match body {
            SanitizedBody::Memory(bytes) => crate::buf::copy_to_buf(pool, &bytes),
            SanitizedBody::File { file, len } => file_buf(r, file, len)?,
        };
        if b.is_null() {
            return Err(ApplyError::NoMemory);
        }
        (*b).set_last_buf(1);
        (*b).set_last_in_chain(1);
        let cl = ngx_alloc_chain_link(pool);
        if cl.is_null() {
            return Err(ApplyError::NoMemory);
        }
        (*cl).buf = b;
        (*cl).next = ptr::null_mut();
        // rb->buf stays: the upstream module reuses it as its output buffer.
        (*rb).bufs = cl;

        (*r).headers_in.content_length_n = len as off_t;
        let cl_header = (*r).headers_in.content_length;
        if !cl_header.is_null() {
            (*cl_header).value =
                pool_str(r, len.to_string().as_bytes()).ok_or(ApplyError::NoMemory)?;
        }
        if let Some(ct) = content_type {
            set_header_in(r, b"Content-Type", &ct)?;
        }
        if let Some(scanner_cd) = content_disposition {
            let copies = headers_in_named(r, b"content-disposition");
            if let Some(&first) = copies.first() {
                let client = String::from_utf8_lossy((*first).value.as_bytes()).into_owned();
                let scanner = String::from_utf8_lossy(&scanner_cd);
                if let Some(renamed) =
                    ometascan_core::disposition::rename_filename(&client, &scanner)
                {
                    // Every copy the client sent says the same: the scanner's name only.
                    let v = pool_str(r, renamed.as_bytes()).ok_or(ApplyError::NoMemory)?;
                    for h in copies {
                        (*h).value = v;
                    }
                }
            }
        }
        Ok(())
    }
}

/// A buffer over a spilled sanitized body; the descriptor is closed with the request pool.
unsafe fn file_buf(
    r: *mut ngx_http_request_t,
    file: File,
    len: u64,
) -> Result<*mut ngx_buf_t, ApplyError> {
    // SAFETY: r is live; the cleanup closes the descriptor when the pool is destroyed.
    unsafe {
        let pool = (*r).pool;
        let cln = ngx_pool_cleanup_add(pool, std::mem::size_of::<ngx_pool_cleanup_file_t>());
        if cln.is_null() {
            return Err(ApplyError::NoMemory);
        }
        let fd = file.into_raw_fd();
        let name = pool_str(r, b"ometascan sanitized body").ok_or(ApplyError::NoMemory)?;
        let clnf = (*cln).data as *mut ngx_pool_cleanup_file_t;
        (*clnf).fd = fd;
        (*clnf).name = name.data;
        (*clnf).log = (*pool).log;
        (*cln).handler = Some(ngx_pool_cleanup_file);

        let f = ngx_pcalloc(pool, std::mem::size_of::<ngx_file_t>()) as *mut ngx_file_t;
        let b = ngx_pcalloc(pool, std::mem::size_of::<ngx_buf_t>()) as *mut ngx_buf_t;
        if f.is_null() || b.is_null() {
            return Err(ApplyError::NoMemory);
        }
        (*f).fd = fd;
        (*f).name = name;
        (*f).log = (*(*r).connection).log;
        (*b).file = f;
        (*b).set_in_file(1);
        (*b).file_pos = 0;
        (*b).file_last = len as off_t;
        Ok(b)
    }
}

/// Every client header field of that (lower-case) name, duplicates included.
unsafe fn headers_in_named(
    r: *mut ngx_http_request_t,
    lower_name: &[u8],
) -> Vec<*mut ngx_table_elt_t> {
    let mut found = Vec::new();
    // SAFETY: r is live; the header list is valid.
    unsafe {
        let mut part: *mut ngx_list_part_t = &mut (*r).headers_in.headers.part;
        while !part.is_null() {
            let elts = (*part).elts as *mut ngx_table_elt_t;
            for i in 0..(*part).nelts {
                let h = elts.add(i);
                if (*h).hash != 0 && (*h).key.as_bytes().eq_ignore_ascii_case(lower_name) {
                    found.push(h);
                }
            }
            part = (*part).next;
        }
    }
    found
}

/// Sets a client header field for the backend: every copy the client sent gets the value
/// (nginx's modules forward each element of the list, so a copy cannot be taken out); the
/// field is added when the client sent none.
unsafe fn set_header_in(
    r: *mut ngx_http_request_t,
    name: &[u8],
    value: &[u8],
) -> Result<(), ApplyError> {
    // SAFETY: r is live; allocations from its pool.
    unsafe {
        let v = pool_str(r, value).ok_or(ApplyError::NoMemory)?;
        let lower = name.to_ascii_lowercase();
        let copies = headers_in_named(r, &lower);
        if !copies.is_empty() {
            for h in copies {
                (*h).value = v;
            }
            return Ok(());
        }
        let h = ngx_list_push(&mut (*r).headers_in.headers) as *mut ngx_table_elt_t;
        if h.is_null() {
            return Err(ApplyError::NoMemory);
        }
        ptr::write_bytes(h, 0, 1);
        let k = pool_str(r, name).ok_or(ApplyError::NoMemory)?;
        let lk = pool_str(r, &lower).ok_or(ApplyError::NoMemory)?;
        (*h).hash = ngx_hash_key(lk.data, lk.len);
        (*h).key = k;
        (*h).value = v;
        (*h).lowcase_key = lk.data;
        if lower == b"content-type" {
            (*r).headers_in.content_type = h;
        }
        Ok(())
    }
}

/// After a block or a failure: the body is taken out of the request so that no later step
/// (`error_page` and other internal redirects, proxy/fastcgi/uwsgi/grpc, mirror, subrequests)
/// can send it. The buffers are unlinked, the temp file is emptied and unlinked from the
/// request (`$request_body_file` is empty too), and the length says 0. (A client's
/// `Transfer-Encoding` stays in the list: the proxy module recognises and replaces it by its
/// hash, which must therefore stay intact.)
///
/// # Safety
/// `r` must be a live main request on the nginx thread, with no scan in flight.
unsafe fn drop_body(r: *mut ngx_http_request_t) {
    // SAFETY: r is live; no scan holds the body any more (the loan was returned).
    unsafe {
        let rb = (*r).request_body;
        if !rb.is_null() {
            let tf = (*rb).temp_file;
            if !tf.is_null() && (*tf).file.fd >= 0 {
                // Kept files (client_body_in_file_only) must not keep the content either.
                libc::ftruncate((*tf).file.fd, 0);
            }
            (*rb).temp_file = ptr::null_mut();
            (*rb).bufs = ptr::null_mut();
            (*rb).rest = 0;
        }
        (*r).headers_in.content_length_n = 0;
        (*r).headers_in.set_chunked(0);
        let cl = (*r).headers_in.content_length;
        if !cl.is_null() {
            (*cl).value = ngx_str_t {
                len: 1,
                data: c"0".as_ptr() as *mut u8,
            };
        }
    }
}

unsafe fn body_len(r: *mut ngx_http_request_t) -> off_t {
    // SAFETY: r is live.
    unsafe { (*r).headers_in.content_length_n.max(0) }
}

// ---------------------------------------------------------------------------------------------
// Building the scan job: owned copies only, never an nginx pointer.

unsafe fn start_scan(
    r: *mut ngx_http_request_t,
    lcf: &LocConf,
    target: &PassTarget,
) -> Result<SlotId, Outcome> {
    // SAFETY: r is live; headers are copied, body memory is lent (the request stays blocked
    // until the scan lets go of it).
    unsafe {
        let scanner = bridge::scanner()
            .ok_or_else(|| Outcome::Internal("the scanner runtime is not running".into()))?;
        let cln = ngx_http_cleanup_add(r, 0);
        if cln.is_null() {
            return Err(Outcome::Internal(
                "no memory for the request cleanup".into(),
            ));
        }
        (*cln).handler = Some(cleanup_handler);
        (*cln).data = r as *mut std::ffi::c_void;
        let loan = Loan::new();
        let request = scan_request(r, &loan)?;
        let options = scan_options(r, lcf)?;
        let peers = lcf.peers.clone().ok_or_else(|| {
            Outcome::Internal(format!("no servers for scanner \"{}\"", target.shown))
        })?;
        let target = Target {
            url: target.url.clone(),
            group: target.upstream as usize,
            peers,
        };
        let future = async move { scanner.scan_report(&target, &request, &options).await };
        bridge::start(r, loan, future)
            .ok_or_else(|| Outcome::Internal("the scanner runtime is not running".into()))
    }
}

unsafe fn scan_request(r: *mut ngx_http_request_t, loan: &Loan) -> Result<ScanRequest, Outcome> {
    // SAFETY: r is live; lists and buffers are valid while we read them; body buffers are
    // lent, and stay valid and unchanged until the loan's message (the request is blocked).
    unsafe {
        let mut headers = Vec::new();
        let mut part: *const ngx_list_part_t = &(*r).headers_in.headers.part;
        while !part.is_null() {
            let elts = (*part).elts as *const ngx_table_elt_t;
            for i in 0..(*part).nelts {
                let h = &*elts.add(i);
                if h.hash == 0 {
                    continue;
                }
                headers.push((
                    Bytes::copy_from_slice(h.key.as_bytes()),
                    Bytes::copy_from_slice(h.value.as_bytes()),
                ));
            }
            part = (*part).next;
        }
        let has_host = headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(b"host"));
        let server = (*r).headers_in.server;
        if !has_host && server.len > 0 {
            headers.insert(
                0,
                (
                    Bytes::from_static(b"Host"),
                    Bytes::copy_from_slice(server.as_bytes()),
                ),
            );
        }

        let mut body = RequestBody::new();
        let rb = (*r).request_body;
        if !rb.is_null() {
            let mut files: Vec<(ngx_fd_t, Arc<File>)> = Vec::new();
            let mut cl = (*rb).bufs;
            while !cl.is_null() {
                let b = (*cl).buf;
                if (*b).in_file() != 0 && !(*b).file.is_null() {
                    let fd = (*(*b).file).fd;
                    let file = match files.iter().find(|(f, _)| *f == fd) {
                        Some((_, file)) => file.clone(),
                        None => {
                            let dup = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0);
                            if dup < 0 {
                                return Err(Outcome::Internal(format!(
                                    "dup() of the request body file failed ({})",
                                    std::io::Error::last_os_error()
                                )));
                            }
                            let file = Arc::new(File::from_raw_fd(dup));
                            files.push((fd, file.clone()));
                            file
                        }
                    };
                    let len = ((*b).file_last - (*b).file_pos).max(0) as u64;
                    body.push(BodyPart::File {
                        file,
                        offset: (*b).file_pos as u64,
                        len,
                    });
                } else if !(*b).pos.is_null() && (*b).last > (*b).pos {
                    let n = (*b).last.offset_from((*b).pos) as usize;
                    body.push(BodyPart::Memory(loan.lend((*b).pos, n)));
                }
                cl = (*cl).next;
            }
        }
        Ok(ScanRequest {
            method: Bytes::copy_from_slice((*r).method_name.as_bytes()),
            uri: Bytes::copy_from_slice((*r).unparsed_uri.as_bytes()),
            headers,
            client_addr: String::from_utf8_lossy((*(*r).connection).addr_text.as_bytes())
                .into_owned(),
            body,
        })
    }
}

unsafe fn scan_options(r: *mut ngx_http_request_t, lcf: &LocConf) -> Result<ScanOptions, Outcome> {
    // SAFETY: r is live; complex values belong to the configuration.
    unsafe {
        let mut set_headers = Vec::new();
        for h in lcf.set_headers() {
            let mut value = ngx_str_t::empty();
            if ngx_http_complex_value(r, h.value, &mut value) != NGX_OK_ {
                return Err(Outcome::Internal(format!(
                    "cannot evaluate \"ometascan_set_header {}\"",
                    String::from_utf8_lossy(&h.name)
                )));
            }
            set_headers.push((h.name.clone(), Bytes::copy_from_slice(value.as_bytes())));
        }
        let max_sanitized = NgxHttpCoreModule::location_conf(&*r)
            .map(|clcf| clcf.client_max_body_size)
            .filter(|&n| n > 0)
            .map(|n| n as u64);
        let spill_dir = NgxHttpCoreModule::location_conf(&*r)
            .and_then(|clcf| clcf.client_body_temp_path.as_ref())
            .map(|p| {
                std::path::PathBuf::from(String::from_utf8_lossy(p.name.as_bytes()).into_owned())
            })
            .unwrap_or_else(std::env::temp_dir);
        Ok(ScanOptions {
            timeouts: Timeouts {
                connect: lcf.connect_timeout(),
                send: lcf.send_timeout(),
                read: lcf.read_timeout(),
            },
            rules: HeaderRules {
                x_forwarded_for: lcf.x_forwarded_for(),
                set_headers,
            },
            pre_cache: lcf.pre_cache(),
            spill_dir,
            tls: lcf.tls.clone(),
            max_sanitized,
            keepalive: lcf.keepalive(),
            keepalive_timeout: lcf.keepalive_timeout(),
            ..ScanOptions::default()
        })
    }
}
