//! What the verdict on a held response lets through: the response as the backend sent it
//! (allowed), with the scanner's body (sanitized), the scanner's page or `error_page`
//! (blocked), or an error and nothing of the response (failed, unless `ometascan_on_error
//! pass`). Whatever goes out passes the filters after the module's; then the request is
//! finalized as nginx's write handler would have.

use std::ptr;

use ngx::ffi::*;
use ngx::http::{HttpModuleLocationConf, Request};
use ometascan_core::{BodyPart, RequestBody, ResponsePage, ScanError, ScanOutcome, Verdict};

use super::held::{self, Phase};
use super::{next_body, next_header, BUFFERED};
use crate::conf::OnError;
use crate::ngx_ext::log;
use crate::ngx_ext::page::{has_error_page, send_page};
use crate::ngx_ext::request::{finalize, RequestExt};
use crate::request::ctx::Report;
use crate::status;
use crate::Module;

const INTERNAL_ERROR: ngx_int_t = NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t;

/// Logs at `level` naming the location's scanner.
fn log_error(r: &mut Request, level: u32, msg: &str) {
    let scanner = Module::location_conf(r)
        .and_then(|l| l.response_target())
        .map(|(t, _)| t.shown.clone())
        .unwrap_or_default();
    log::response_error(r, level, &scanner, msg)
}

fn log_debug(r: &Request, msg: &str) {
    log::debug(r, msg)
}

/// Zeroed memory for a `T` from `pool` (`None` when out of memory).
///
/// # Safety
/// `pool` must be a live pool; `T` must be a C struct for which all zeroes is its empty state.
unsafe fn pool_alloc<'a, T>(pool: *mut ngx_pool_t) -> Option<&'a mut T> {
    // SAFETY: a live pool (caller); the memory lives as long as it.
    unsafe { (ngx_pcalloc(pool, std::mem::size_of::<T>()) as *mut T).as_mut() }
}

/// The scan is over (runtime, nginx thread; the request is live and unblocked).
pub unsafe fn on_done(r: *mut ngx_http_request_t, outcome: ScanOutcome) {
    // SAFETY: the runtime calls this on nginx's thread for a live request.
    let req = unsafe { Request::from_ngx_http_request(r) };
    // A failure the location lets pass counts as unscanned.
    let passes = |e: &ScanError| {
        e.may_pass_unscanned()
            && Module::location_conf(req).is_some_and(|l| l.settings.on_error == OnError::Pass)
    };
    let kind = match &outcome.result {
        Ok(v) => v.kind(),
        Err(e) if passes(e) => ometascan_core::ResultKind::Unscanned,
        Err(_) => ometascan_core::ResultKind::Error,
    };
    // The body is shared (its memory and files stay the held response's); the borrow ends
    // before nginx code runs, which may read the variables.
    // SAFETY: the borrow ends in this block, before the pool goes.
    let body = match unsafe { held::get(req) } {
        Some(held) => {
            held.phase = Phase::Released;
            held.report = Report::of(&outcome, kind);
            held.body.clone()
        }
        None => return,
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
            log_debug(req, &format!("ometascan: response allowed in {ms} ms"));
            send_held(req, &body)
        }
        Ok(Verdict::Sanitized { .. }) if (100..200).contains(&req.as_ref().headers_out.status) => {
            let why = "the scanner sanitized a response relayed behind an interim status, \
                       whose final response cannot be rebuilt around its body";
            failed(
                req,
                &ScanError::Refused {
                    status: 502,
                    reason: why.into(),
                },
            )
        }
        Ok(Verdict::Sanitized {
            body, content_type, ..
        }) => {
            log_debug(req, &format!("ometascan: response sanitized in {ms} ms"));
            let body = match body {
                ometascan_core::SanitizedBody::Parts(parts) => parts,
                one => one.into(),
            };
            send_sanitized(req, &body, content_type.as_deref())
        }
        Ok(Verdict::Blocked { page, threat }) => blocked(req, &page, threat),
        Ok(Verdict::BadRequest { .. }) => failed(
            req,
            &ScanError::Protocol("the scanner answered 400 to a response".into()),
        ),
        Err(e) => match Module::location_conf(req) {
            Some(l) if l.settings.on_error == OnError::Pass && e.may_pass_unscanned() => {
                let msg = format!(
                    "response scan failed: {e}; sending the response unscanned because of \
                     \"ometascan_on_error pass\""
                );
                log_error(req, NGX_LOG_WARN, &msg);
                send_held(req, &body)
            }
            _ => failed(req, &e),
        },
    };
    let c = req.connection();
    // SAFETY: the request is live; nginx may free it here, and it is not used after. c stays
    // addressable (a slot of the cycle's connection array).
    unsafe {
        finalize(r, rc);
        ngx_http_run_posted_requests(c);
    }
}

/// Taking the response or starting its scan failed: the error, nothing of the response.
///
/// Called from the module's filters, inside the content handler's call: the error page goes
/// out the way nginx's own filters send one, and the filter's answer tells the caller.
pub fn refuse(r: &mut Request, e: ScanError, kind: ometascan_core::ResultKind) -> ngx_int_t {
    // SAFETY: the borrow ends in this statement.
    if let Some(held) = unsafe { held::get(r) } {
        held.phase = Phase::Released;
        held.report.result = Some(kind);
    }
    status::response_counted(kind);
    let status = failed(r, &e);
    // SAFETY: a live request in one of its filters, whose header was not sent; nginx clears
    // the response head and sends the error page (or error_page's answer) for the status.
    unsafe {
        ngx_http_filter_finalize_request(
            r.raw(),
            std::ptr::addr_of_mut!(crate::ngx_http_ometascan_module),
            status,
        )
    }
}

/// A backend's `206` where parts are not scanned: `502`, nothing of it (logged, counted).
pub fn partial(r: &mut Request) -> ngx_int_t {
    let msg = "the backend answered 206 (a part of a file), which is not scanned here: \
               \"proxy_set_header Range \"\"\" with \"proxy_force_ranges on\" lets nginx make \
               ranges of the scanned file, \
               \"ometascan_response_statuses ... 206\" scans parts as they are";
    log_error(r, NGX_LOG_ERR, msg);
    status::response_counted(ometascan_core::ResultKind::Error);
    bad_gateway(r)
}

/// The backend's response ended before its end (its connection closed or timed out mid-body,
/// and nginx's upstream asks for what is buffered to be sent before closing the client's
/// connection): nothing of it was sent, so `502`, and nginx closes the connection.
pub fn cut_short(r: &mut Request) -> ngx_int_t {
    log_error(
        r,
        NGX_LOG_ERR,
        "response refused: the backend's connection ended before the response did",
    );
    // SAFETY: the borrow ends in this statement.
    if let Some(held) = unsafe { held::get(r) } {
        held.report.result = Some(ometascan_core::ResultKind::Error);
    }
    status::response_counted(ometascan_core::ResultKind::Error);
    bad_gateway(r)
}

/// A response no scan can cover (see the header filter): `502`, nothing of it (logged,
/// counted).
pub fn unreadable(r: &mut Request, why: &str) -> ngx_int_t {
    let status = r.as_ref().headers_out.status;
    log_error(
        r,
        NGX_LOG_ERR,
        &format!("response with status {status} refused: {why}"),
    );
    if r.as_ref().http_version == NGX_HTTP_VERSION_9 as ngx_uint_t {
        // nginx's upstream set HTTP/0.9 to relay the bytes; the error is the client's
        // protocol's own.
        let version = client_version(r);
        r.as_mut().http_version = version;
    }
    status::response_counted(ometascan_core::ResultKind::Error);
    bad_gateway(r)
}

/// The protocol version of the client's request, as its request line (or HTTP/2, HTTP/3)
/// named it.
fn client_version(r: &Request) -> ngx_uint_t {
    let p = r.as_ref().http_protocol;
    let name = if p.data.is_null() {
        &[][..]
    } else {
        // SAFETY: the request's protocol name, in its pool, len bytes.
        unsafe { std::slice::from_raw_parts(p.data, p.len) }
    };
    (match name {
        b"HTTP/1.0" => NGX_HTTP_VERSION_10,
        b"HTTP/2.0" => NGX_HTTP_VERSION_20,
        // NGX_HTTP_VERSION_30, which nginx before 1.25 does not define.
        b"HTTP/3.0" => 3000,
        _ => NGX_HTTP_VERSION_11,
    }) as ngx_uint_t
}

/// `502` and nothing of the response, for a reason the caller logged and counted (over
/// `ometascan_response_max_size` with `over=reject`, a part of a file). From the module's
/// filters, as [`refuse`].
pub fn bad_gateway(r: &mut Request) -> ngx_int_t {
    // SAFETY: the borrow ends in this statement.
    if let Some(held) = unsafe { held::get(r) } {
        held.phase = Phase::Released;
    }
    unbuffer(r);
    // SAFETY: as in refuse.
    unsafe {
        ngx_http_filter_finalize_request(
            r.raw(),
            std::ptr::addr_of_mut!(crate::ngx_http_ometascan_module),
            NGX_HTTP_BAD_GATEWAY as ngx_int_t,
        )
    }
}

/// Over `ometascan_response_max_size` with `over=pass` (logged and counted by the caller):
/// what is held goes on unscanned, the rest follows as it comes.
pub fn unscanned(r: &mut Request, last: bool) -> ngx_int_t {
    // SAFETY: the borrow ends in this statement.
    let body = match unsafe { held::get(r) } {
        Some(held) => {
            held.phase = Phase::Released;
            // What was taken but not yet put in the body goes with it.
            held.finish().map(|()| held.body.clone())
        }
        None => return NGX_ERROR as ngx_int_t,
    };
    let body = match body {
        Ok(b) => b,
        Err(e) => return refuse(r, e, ometascan_core::ResultKind::Error),
    };
    unbuffer(r);
    let rc = next_header(r);
    if rc == NGX_ERROR as ngx_int_t || rc > NGX_OK as ngx_int_t || r.header_only() {
        return rc;
    }
    send_pieces(r, &body, last)
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
    if lcf.settings.log_blocked {
        let threat = threat
            .map(|t| format!(", threat \"{t}\""))
            .unwrap_or_default();
        let msg = format!(
            "response blocked by the scanner with status {}{threat}",
            page.status
        );
        log_error(r, NGX_LOG_NOTICE, &msg);
    }
    unbuffer(r);
    // SAFETY: a live request whose header was not sent: the backend's fields go.
    unsafe { ngx_http_clean_header(r.raw()) };
    if lcf.settings.intercept_errors && page.status >= 300 && has_error_page(r, page.status) {
        return page.status as ngx_int_t;
    }
    // The page's own status, not one an `error_page ... =code` set for the response.
    r.as_mut().err_status = 0;
    send_page(r, page)
}

/// A failure: logged; the status for nginx's error page, the backend's fields gone.
fn failed(r: &mut Request, e: &ScanError) -> ngx_int_t {
    let (level, msg) = match e {
        ScanError::Module(m) => (NGX_LOG_ERR, format!("response not sent: {m}")),
        e => (NGX_LOG_ERR, format!("response scan failed: {e}")),
    };
    log_error(r, level, &msg);
    unbuffer(r);
    // SAFETY: a live request whose header was not sent.
    unsafe { ngx_http_clean_header(r.raw()) };
    // A response over a decoding limit is the backend's doing, not the client's: 502.
    match e.status() {
        400..=499 => NGX_HTTP_BAD_GATEWAY as ngx_int_t,
        status => status as ngx_int_t,
    }
}

/// The response as the backend sent it.
fn send_held(r: &mut Request, body: &RequestBody) -> ngx_int_t {
    unbuffer(r);
    let rc = next_header(r);
    if rc == NGX_ERROR as ngx_int_t || rc > NGX_OK as ngx_int_t || r.header_only() {
        return rc;
    }
    send_body(r, body)
}

/// The response with the scanner's body: its length, its type; no coding, no validators.
fn send_sanitized(r: &mut Request, body: &RequestBody, content_type: Option<&[u8]>) -> ngx_int_t {
    unbuffer(r);
    let out = &mut r.as_mut().headers_out;
    out.content_length_n = body.len().min(off_t::MAX as u64) as off_t;
    for h in [
        &mut out.content_length,
        &mut out.content_encoding,
        &mut out.etag,
    ] {
        // SAFETY: null, or an element of the response's list; hash 0 deletes it.
        if let Some(e) = unsafe { h.as_mut() } {
            e.hash = 0;
        }
        *h = ptr::null_mut();
    }
    out.last_modified_time = -1;
    if let Some(ct) = content_type {
        let Some(v) = crate::ngx_ext::headers::pool_str(r, ct) else {
            return INTERNAL_ERROR;
        };
        let out = &mut r.as_mut().headers_out;
        out.content_type = v;
        out.content_type_len = v.len;
        out.content_type_lowcase = ptr::null_mut();
    }
    let rc = next_header(r);
    if rc == NGX_ERROR as ngx_int_t || rc > NGX_OK as ngx_int_t || r.header_only() {
        return rc;
    }
    send_body(r, body)
}

/// The whole body to the filters after the module's.
fn send_body(r: &mut Request, body: &RequestBody) -> ngx_int_t {
    send_pieces(r, body, true)
}

/// The pieces of `body` as buffers (memory and file ranges the held response keeps alive
/// until the request ends) to the filters after the module's; `last`: nothing follows.
fn send_pieces(r: &mut Request, body: &RequestBody, last: bool) -> ngx_int_t {
    let pool = r.pool().as_ptr();
    let log = r.log();
    let mut head: *mut ngx_chain_t = ptr::null_mut();
    let mut tail: *mut *mut ngx_chain_t = &mut head;
    for part in body.parts() {
        // SAFETY: fresh zeroed memory of the request's pool, for a buffer and its link.
        let (b, cl) = unsafe {
            (
                pool_alloc::<ngx_buf_t>(pool),
                pool_alloc::<ngx_chain_t>(pool),
            )
        };
        let (Some(b), Some(cl)) = (b, cl) else {
            return NGX_ERROR as ngx_int_t;
        };
        match part {
            BodyPart::Memory(bytes) => {
                // The bytes are the held body's, kept until the pool goes; the filters only read.
                b.pos = bytes.as_ptr() as *mut u8;
                b.last = b.pos.wrapping_add(bytes.len());
                b.start = b.pos;
                b.end = b.last;
                b.set_memory(1);
            }
            BodyPart::File { file, offset, len } => {
                // SAFETY: fresh zeroed memory of the request's pool.
                let Some(f) = (unsafe { pool_alloc::<ngx_file_t>(pool) }) else {
                    return NGX_ERROR as ngx_int_t;
                };
                use std::os::fd::AsRawFd;
                f.fd = file.as_raw_fd();
                f.log = log;
                let name = c"ometascan held response";
                f.name = ngx_str_t {
                    len: name.to_bytes().len(),
                    data: name.as_ptr() as *mut u8,
                };
                b.file = f;
                b.set_in_file(1);
                b.file_pos = *offset as off_t;
                b.file_last = (*offset + *len) as off_t;
            }
        }
        cl.buf = b;
        // SAFETY: tail points at the last link's `next` (or at head), both live.
        unsafe {
            *tail = cl;
            tail = &mut cl.next;
        }
    }
    if !last {
        return next_body(r, head);
    }
    // The last buffer says so (an empty one when the body is empty).
    // SAFETY: fresh zeroed memory of the request's pool.
    let (Some(last), Some(cl)) = (unsafe { pool_alloc::<ngx_buf_t>(pool) }, unsafe {
        pool_alloc::<ngx_chain_t>(pool)
    }) else {
        return NGX_ERROR as ngx_int_t;
    };
    last.set_last_buf(1);
    last.set_last_in_chain(1);
    cl.buf = last;
    // SAFETY: as above.
    unsafe { *tail = cl };
    next_body(r, head)
}
