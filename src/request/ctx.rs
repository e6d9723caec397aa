//! A request's scan state, kept in a cleanup of the request pool so that it outlives nginx's
//! internal redirects (which clear every module's ctx, but not the pool).

use std::ptr;

use ngx::ffi::*;
use ngx::http::Request;
use ometascan_core::{ResultKind, ScanError, ScanOutcome, Verdict};

use crate::ngx_ext::pool::cleanup_data;
use crate::ngx_ext::request::RequestExt;
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
    pub server: Option<ometascan_core::net::peer::PeerAddr>,
    pub status: Option<u16>,
    /// Objects sent to the scanner (a form's parts, or 1).
    pub objects: usize,
    /// The part of a form that decided, if any.
    pub part: Option<String>,
    /// What the verdict cache did (`None`: no cache here).
    pub cache: Option<ometascan_core::cache::CacheStatus>,
    /// The upload in pieces the request was a piece of.
    pub upload: Option<ometascan_core::UploadReport>,
    /// Where the scan's time went, and the hand-back to nginx.
    pub phases: Option<(ometascan_core::Phases, std::time::Duration)>,
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
            server: outcome.server.clone(),
            status: outcome.status,
            objects: outcome.objects,
            part: outcome.part.clone(),
            cache: outcome.cache,
            upload: outcome.upload.as_deref().cloned(),
            phases: Some((outcome.phases, outcome.handback)),
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

/// Allocates the request's ctx in a cleanup of its pool and points the module's ctx at it;
/// `None` when out of memory.
///
/// # Safety
/// `r` must be a main request without a ctx; the ctx is borrowed for `'a`, which must end
/// before the request's pool is destroyed, and no other reference to it may be live meanwhile.
pub unsafe fn create<'a>(r: &Request, value: Ctx) -> Option<&'a mut Ctx> {
    // SAFETY: the cleanup and its data come from the request's pool, which lives as long as
    // the request.
    let cln = unsafe { ngx_pool_cleanup_add(r.pool().as_ptr(), std::mem::size_of::<Ctx>()) };
    // SAFETY: null, or a fresh cleanup of the pool.
    let cln = unsafe { cln.as_mut() }?;
    let p = cln.data as *mut Ctx;
    // SAFETY: the cleanup's data has room for a Ctx, aligned (see the assertion above); the
    // cleanup drops it once, when the pool goes.
    unsafe { ptr::write(p, value) };
    cln.handler = Some(drop_ctx);
    r.set_ctx_ptr(p as *mut _);
    // SAFETY: p was just written; the caller keeps the borrow exclusive and within the pool's
    // life.
    unsafe { p.as_mut() }
}

/// The module's ctx of a request, also after nginx cleared it for an internal redirect.
///
/// # Safety
/// The ctx is borrowed for `'a`, which must end before the request's pool is destroyed, and no
/// other reference to it may be live meanwhile.
pub unsafe fn get<'a>(r: &Request) -> Option<&'a mut Ctx> {
    let p = r.ctx_ptr() as *mut Ctx;
    if !p.is_null() {
        // SAFETY: the slot holds null or the Ctx `create` wrote, alive until the pool goes;
        // the caller keeps the borrow exclusive and within the pool's life.
        return unsafe { p.as_mut() };
    }
    // Only an internal redirect or a filter's finalization (`If-Match` failing, an image
    // filter's 415) clears the slot of a request that has a ctx: realip's rule.
    if !r.ctx_may_be_cleared() {
        return None;
    }
    // SAFETY: the request's pool is live and read on nginx's thread; ours is found by its
    // handler.
    let data = unsafe { cleanup_data(r.pool().as_ptr(), drop_ctx) }?;
    r.set_ctx_ptr(data);
    // SAFETY: data is the Ctx `create` wrote, alive until the pool goes; the borrow is the
    // caller's to keep exclusive and within the pool's life.
    unsafe { (data as *mut Ctx).as_mut() }
}

/// Whether the module refused the request itself (blocked, failed, over its size): the
/// response is then the module's page, or the operator's `error_page` for it.
pub fn refused(r: &Request) -> bool {
    // SAFETY: the borrow ends in this statement; no other is live in a filter call.
    matches!(
        unsafe { get(r) }.map(|c| &c.state),
        Some(State::Applied { passed: false } | State::TooLarge)
    )
}
