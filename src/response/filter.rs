//! The module's header and body filters: deciding whether a response is held (its status, the
//! location's directives, its size, a bypass value, a `304` to come), and taking its body.

use ngx::ffi::*;
use ngx::http::{HttpModuleLocationConf, Request};
use ometascan_core::ResultKind;

use super::held::{self, Held, Phase};
use super::{conditional, next_body, next_header, release, scan, BUFFERED};
use crate::conf::{LocConf, OverSize};
use crate::ngx_ext::log;
use crate::ngx_ext::request::RequestExt;
use crate::status;
use crate::Module;

/// What becomes of a response whose header arrives.
enum Decision {
    /// Not one the location scans.
    Pass,
    /// Scanned responses do not include it (skipped, or unscanned by size): logged, counted,
    /// sent on.
    Unscanned(ResultKind),
    /// Larger than `ometascan_response_max_size` with `over=reject`.
    TooLarge,
    /// nginx will answer `304` (no body).
    NotModified,
    /// A part of a file (`206`) where parts are not scanned: no verdict could cover the file.
    Partial,
    /// A response no scan can cover (no status line nginx could parse, a protocol switch):
    /// `502`, logged with the reason.
    Unreadable(&'static str),
    Hold,
}

/// How the response's status decides, before the directives that choose among statuses.
enum StatusClass {
    /// A parsed status from 200 to 599: `ometascan_response_statuses` chooses.
    Listable,
    /// Scanned whatever the directives list: a `1xx` nginx relays as the final status (the
    /// final response follows in its body, and clients read it), or 600 and above (clients
    /// render their bodies).
    Always,
    Unreadable(&'static str),
}

fn class_of(status: ngx_uint_t) -> StatusClass {
    match status {
        101 => StatusClass::Unreadable(
            "the backend switched protocols (101): the connection would become a tunnel whose \
             data cannot be scanned; scan no responses where protocols are switched \
             (\"ometascan_response off\" in a WebSocket location)",
        ),
        100..=199 | 600.. => StatusClass::Always,
        200..=599 => StatusClass::Listable,
        _ => StatusClass::Unreadable(
            "the backend sent no status line nginx could parse: nginx relays its bytes as they \
             are, which clients read in ways no scan can follow",
        ),
    }
}

fn decide(r: &mut Request) -> Decision {
    let Some(lcf) = Module::location_conf(r) else {
        return Decision::Pass;
    };
    let raw = r.as_ref();
    let status = raw.headers_out.status;
    let scanned = lcf.response()
        && lcf.response_target().is_some()
        && std::ptr::eq(raw.main, raw)
        && raw.header_only() == 0
        && raw.method != NGX_HTTP_HEAD as ngx_uint_t;
    // The module's own page for a refused upload (or the error_page answering it) is not a
    // download.
    if !scanned || crate::request::ctx::refused(r) {
        return Decision::Pass;
    }
    let class = class_of(status);
    let listed = match class {
        StatusClass::Listable => lcf.response_statuses().lists(status as u16),
        _ => true,
    };
    let partial = status == NGX_HTTP_PARTIAL_CONTENT as ngx_uint_t;
    if !listed && !partial {
        return Decision::Pass;
    }
    let scanner = lcf
        .response_target()
        .map(|(t, _)| t.shown.clone())
        .unwrap_or_default();
    if let Some(why) = crate::request::first_set(r, lcf.response_bypass.as_deref()) {
        status::response_counted(ResultKind::Skipped);
        let msg = format!("response not scanned: \"ometascan_response_bypass\" value \"{why}\"");
        log::response_error(r, NGX_LOG_INFO, &scanner, &msg);
        return Decision::Unscanned(ResultKind::Skipped);
    }
    if let StatusClass::Unreadable(why) = class {
        return Decision::Unreadable(why);
    }
    if !listed {
        // A backend's part of a file would reach the client unscanned, at the client's
        // choice (its Range header): never, unless the operator lists 206 (or bypasses it).
        return Decision::Partial;
    }
    let len = r.as_ref().headers_out.content_length_n;
    if let Some(decision) = over_size(r, lcf, u64::try_from(len).ok(), &scanner) {
        return decision;
    }
    if conditional::will_be_not_modified(r) {
        return Decision::NotModified;
    }
    Decision::Hold
}

/// The decision for a response of `len` bytes over the location's cap, if it is.
fn over_size(r: &mut Request, lcf: &LocConf, len: Option<u64>, scanner: &str) -> Option<Decision> {
    let (max, over) = lcf.response_max_size?;
    let len = len.filter(|&l| l > max)?;
    let (what, kind, level, decision) = match over {
        OverSize::Reject => (
            "refused",
            ResultKind::TooLarge,
            NGX_LOG_ERR,
            Decision::TooLarge,
        ),
        OverSize::Pass => (
            "sent unscanned",
            ResultKind::Unscanned,
            NGX_LOG_WARN,
            Decision::Unscanned(ResultKind::Unscanned),
        ),
    };
    let msg =
        format!("response of {len} bytes is over \"ometascan_response_max_size\" {max}, {what}");
    log::response_error(r, level, scanner, &msg);
    // SAFETY: the borrow ends in this statement.
    if let Some(held) = unsafe { held::get(r) } {
        held.report.result = Some(kind);
    }
    status::response_counted(kind);
    Some(decision)
}

pub unsafe extern "C" fn header_filter(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx calls a header filter with a live request on its thread.
    let req = unsafe { Request::from_ngx_http_request(r) };
    // SAFETY: the borrow ends in this statement.
    if unsafe { held::get(req) }.is_some() {
        return next_header(req);
    }
    crate::request::pieces::on_response(req);
    let decision = decide(req);
    if matches!(decision, Decision::Pass) {
        return next_header(req);
    }
    let dir = crate::request::job::spill_dir(req);
    // SAFETY: a main request without a held response (checked above); the borrow ends in
    // this statement.
    let Some(held) = (unsafe { held::create(req, Held::new(dir)) }) else {
        return NGX_ERROR as ngx_int_t;
    };
    held.report.result = match decision {
        Decision::Unscanned(kind) => Some(kind),
        Decision::TooLarge => Some(ResultKind::TooLarge),
        Decision::Partial | Decision::Unreadable(_) => Some(ResultKind::Error),
        _ => None,
    };
    match decision {
        Decision::Unscanned(_) => {
            held.phase = Phase::Released;
            next_header(req)
        }
        Decision::Hold => {
            // Nothing goes on until the verdict.
            let raw = req.as_mut();
            raw.set_buffered(raw.buffered() | BUFFERED);
            NGX_OK as ngx_int_t
        }
        Decision::TooLarge => {
            held.phase = Phase::Released;
            release::bad_gateway(req)
        }
        Decision::Partial => {
            held.phase = Phase::Released;
            release::partial(req)
        }
        Decision::Unreadable(why) => {
            held.phase = Phase::Released;
            release::unreadable(req, why)
        }
        _ => {
            held.phase = Phase::Released;
            not_modified(req)
        }
    }
}

/// A `304` has no body, nothing is held; but a `200` must never go out unscanned: if nginx
/// did not answer `304` after all, the connection is closed before the body.
fn not_modified(r: &mut Request) -> ngx_int_t {
    let rc = next_header(r);
    if r.as_ref().headers_out.status == NGX_HTTP_NOT_MODIFIED as ngx_uint_t {
        return rc;
    }
    let msg = "a response expected to be \"304 Not Modified\" was not; closing the \
               connection before its body";
    log::response_error(r, NGX_LOG_ALERT, "", msg);
    // SAFETY: the request's connection, live with it.
    unsafe { (*r.connection()).set_error(1) };
    NGX_ERROR as ngx_int_t
}

pub unsafe extern "C" fn body_filter(
    r: *mut ngx_http_request_t,
    chain: *mut ngx_chain_t,
) -> ngx_int_t {
    // SAFETY: nginx calls a body filter with a live request on its thread.
    let req = unsafe { Request::from_ngx_http_request(r) };
    // SAFETY: the borrow ends before any nginx code runs (the branches below borrow again
    // only where none does).
    let Some(held) = (unsafe { held::get(req) }) else {
        return next_body(req, chain);
    };
    match held.phase {
        Phase::Released => next_body(req, chain),
        Phase::Scanning(_) => NGX_OK as ngx_int_t,
        Phase::Holding => {
            // SAFETY: the chain nginx passed, valid for the call.
            let taken = unsafe { take_chain(held, chain) };
            let len = held.len();
            match taken {
                Err(e) => release::refuse(req, e, ResultKind::Error),
                Ok(Taken {
                    last: false,
                    flush: true,
                }) if req.upstream_closed() => release::cut_short(req),
                Ok(Taken { last, .. }) => held_more(req, len, last),
            }
        }
    }
}

/// After taking buffers: the size checked against the cap while the body grows, the scan
/// started after the last buffer.
fn held_more(r: &mut Request, len: u64, last: bool) -> ngx_int_t {
    let scanner = Module::location_conf(r)
        .and_then(|l| l.response_target())
        .map(|(t, _)| t.shown.clone())
        .unwrap_or_default();
    if let Some(lcf) = Module::location_conf(r) {
        match over_size(r, lcf, Some(len), &scanner) {
            Some(Decision::TooLarge) => return release::bad_gateway(r),
            Some(_) => return release::unscanned(r, last),
            None => {}
        }
    }
    if last {
        scan::start(r)
    } else {
        NGX_OK as ngx_int_t
    }
}

/// What a chain of buffers said besides its bytes.
struct Taken {
    /// The response's last buffer was in it.
    last: bool,
    /// A buffer asked for what is buffered to be sent (as nginx's upstream does when a
    /// response ends before its end).
    flush: bool,
}

/// Takes every buffer of `chain`.
///
/// # Safety
/// `chain` is null or a chain of live buffers.
unsafe fn take_chain(
    held: &mut Held,
    mut chain: *mut ngx_chain_t,
) -> Result<Taken, ometascan_core::ScanError> {
    let mut taken = Taken {
        last: false,
        flush: false,
    };
    // SAFETY: each link and its buffer are live for the call (caller).
    while let Some(cl) = unsafe { chain.as_ref() } {
        // SAFETY: as above.
        if let Some(b) = unsafe { cl.buf.as_mut() } {
            held.take(b)?;
            taken.last |= b.last_buf() != 0;
            taken.flush |= b.flush() != 0;
        }
        chain = cl.next;
    }
    if taken.last {
        held.finish()?;
    }
    Ok(taken)
}
