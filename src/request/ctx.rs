//! A request's scan state, kept in a cleanup of the request pool so that it outlives nginx's
//! internal redirects (which clear every module's ctx, but not the pool).

use std::ptr;

use ngx::ffi::*;
use ometascan_core::{ResultKind, ScanError, ScanOutcome, Verdict};

use crate::ngx_ext::pool::cleanup_data;
use crate::runtime::{self, SlotId};
use crate::status;

/// Where a request is in the scan flow.
pub enum State {
    Reading,
    Scanning(SlotId),
    /// The scan's result, to apply when the phases run again.
    Done(Result<Verdict, ScanError>),
    /// The body is over `ometascan_max_size` (`over=reject`): 413 when the phases run again.
    TooLarge,
    /// The verdict was applied. `passed`: the body may go on (allowed, sanitized, the
    /// documented bad-request exception, or unscanned by the operator's policy); otherwise
    /// it was dropped.
    Applied {
        passed: bool,
    },
}

/// Per-request state; dropping it (when the pool goes away) forgets a scan still in flight.
pub struct Ctx {
    pub state: State,
    /// The scanner URL as configured, for log lines.
    pub scanner: String,
    /// What the `$ometascan_*` variables show.
    pub report: Report,
}

/// The scan as the `$ometascan_*` variables tell it.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub result: Option<ResultKind>,
    pub threat: Option<String>,
    pub scan_time: Option<std::time::Duration>,
    pub server: Option<std::net::SocketAddr>,
    pub status: Option<u16>,
    /// Objects sent to the scanner (a form's parts, or 1).
    pub objects: usize,
    /// The part of a form that decided, if any.
    pub part: Option<String>,
    /// What the verdict cache did (`None`: no cache here).
    pub cache: Option<ometascan_core::cache::CacheStatus>,
}

impl Report {
    /// `failed`: what a failed scan counts as (`error`, or `unscanned` under
    /// `ometascan_on_error pass`).
    pub fn of(outcome: &ScanOutcome, failed: ResultKind) -> Report {
        Report {
            result: Some(match &outcome.result {
                Ok(v) => v.kind(),
                Err(_) => failed,
            }),
            threat: match &outcome.result {
                Ok(Verdict::Blocked { threat, .. }) => threat.clone(),
                _ => None,
            },
            scan_time: Some(outcome.elapsed),
            server: outcome.server,
            status: outcome.status,
            objects: outcome.objects,
            part: outcome.part.clone(),
            cache: outcome.cache,
        }
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        if let State::Scanning(slot) = self.state {
            runtime::forget(slot);
            status::finished(None, None, None, None, false);
        }
    }
}

// The pool cleanup stores the ctx in memory aligned like any nginx pool allocation.
const _: () = assert!(std::mem::align_of::<Ctx>() <= std::mem::align_of::<usize>());

/// Drops the ctx kept in a pool cleanup.
unsafe extern "C" fn drop_ctx(data: *mut std::ffi::c_void) {
    // SAFETY: data is the Ctx written by `create`; nginx runs a pool cleanup once.
    unsafe { ptr::drop_in_place(data as *mut Ctx) }
}

/// The slot of the module's ctx in the request.
///
/// # Safety
/// `r` must be a live request.
unsafe fn slot(r: *mut ngx_http_request_t) -> *mut *mut std::ffi::c_void {
    // SAFETY: ctx_index is set by nginx; the ctx array has a slot for every module.
    unsafe { (*r).ctx.add(crate::module().ctx_index) }
}

/// Allocates the request's ctx in a cleanup of its pool and points the module's ctx at it.
///
/// # Safety
/// `r` must be a live main request without a ctx.
pub unsafe fn create<'a>(r: *mut ngx_http_request_t, value: Ctx) -> Option<&'a mut Ctx> {
    // SAFETY: r is live; the cleanup's data is pool memory of the size asked for.
    let cln = unsafe { ngx_pool_cleanup_add((*r).pool, std::mem::size_of::<Ctx>()) };
    if cln.is_null() {
        return None;
    }
    // SAFETY: cln is fresh; its data has room for a Ctx, aligned (see the assertion above).
    unsafe {
        let p = (*cln).data as *mut Ctx;
        ptr::write(p, value);
        (*cln).handler = Some(drop_ctx);
        *slot(r) = p as *mut _;
        p.as_mut()
    }
}

/// The module's ctx of a request, also after nginx cleared it for an internal redirect.
///
/// # Safety
/// `r` must be a live request.
pub unsafe fn get<'a>(r: *mut ngx_http_request_t) -> Option<&'a mut Ctx> {
    // SAFETY: r is live; the slot holds our Ctx or null.
    if let Some(c) = unsafe { (*slot(r) as *mut Ctx).as_mut() } {
        return Some(c);
    }
    // Only an internal redirect or a filter's finalization (`If-Match` failing, an image
    // filter's 415) clears the slot of a request that has a ctx: realip's rule.
    // SAFETY: r is live.
    if unsafe { (*r).internal() == 0 && (*r).filter_finalize() == 0 } {
        return None;
    }
    // SAFETY: r is live; its pool's cleanups are nginx's list, ours found by its handler.
    let data = unsafe { cleanup_data((*r).pool, drop_ctx) }?;
    // SAFETY: r is live; data is the Ctx `create` wrote, alive until the pool goes.
    unsafe {
        *slot(r) = data;
        (data as *mut Ctx).as_mut()
    }
}
