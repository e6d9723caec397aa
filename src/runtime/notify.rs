//! What the eventfd's read handler does on the nginx thread: the scanner side's notices to the
//! log and the counters, then every finished scan to its request, which goes on as the flow's
//! `on_done` says.

use std::sync::atomic::Ordering;

use ngx::ffi::*;
use ngx::http::Request;
use ometascan_core::ScanError;

use super::{failed, release, trace, AfterScan, Message, LOCAL, SCANNER, SHARED};
use crate::ngx_ext::request::{finish_terminated, RequestExt};

/// The eventfd became readable: the scanner side's notices to the log and the counters, then
/// every finished scan to its request.
pub(super) unsafe extern "C" fn on_notify(ev: *mut ngx_event_t) {
    reset_bell();
    // SAFETY: the event's log is the cycle log, valid for the worker's life.
    relay_notices(unsafe { (*ev).log });
    let batch = std::mem::take(&mut *SHARED.queue.lock().unwrap_or_else(|e| e.into_inner()));
    for message in batch {
        complete(message);
    }
}

/// Resets the eventfd's counter before the queues are drained: whatever is pushed after the
/// drain rings again.
fn reset_bell() {
    let efd = SHARED.efd.load(Ordering::Acquire);
    if efd >= 0 {
        let mut counter: u64 = 0;
        // SAFETY: reads 8 bytes into a valid u64 from our non-blocking eventfd.
        unsafe { libc::read(efd, &mut counter as *mut u64 as *mut libc::c_void, 8) };
    }
}

/// Servers going down or up to the status counters; the scanner side's log lines to `log`.
fn relay_notices(log: *mut ngx_log_t) {
    let Some(scanner) = SCANNER.get() else {
        return;
    };
    for (addr, down) in scanner.notices().drain_health() {
        crate::status::server_health(&addr, down);
    }
    let (lines, dropped) = scanner.notices().drain();
    for (level, line) in lines {
        crate::ngx_ext::log::at_level(log, trace::nginx_level(level), &line);
    }
    if dropped > 0 {
        crate::warn!(
            log,
            "ometascan: {} log lines from the scanner side were dropped",
            dropped
        );
    }
}

/// A scan's message: its request, if the slot is still live, is unblocked and goes on.
fn complete(message: Message) {
    let request = LOCAL.with(|l| {
        let mut guard = l.borrow_mut();
        let local = guard.as_mut()?;
        let entry = local.slots.entries.get(message.slot.index as usize)?;
        if entry.gen != message.slot.gen || entry.request.is_null() {
            return None;
        }
        let (r, cancelled, on_done) = (entry.request, entry.cancelled, entry.on_done);
        release(local, message.slot);
        Some((r, cancelled, on_done))
    });
    let Some((r, cancelled, on_done)) = request else {
        return;
    };
    // SAFETY: the slot was live, so the request is blocked and has not been freed; none of its
    // memory is lent any more.
    let req = unsafe { Request::from_ngx_http_request(r) };
    req.unblock();
    let c = req.connection();
    if cancelled {
        // SAFETY: r is live; it is not used after.
        unsafe { finish_terminated(r) };
        return;
    }
    let Some(on_done) = on_done else { return };
    let outcome = match message.done {
        Some((mut outcome, ended)) => {
            outcome.handback = ended.elapsed();
            outcome
        }
        None => failed(ScanError::Internal),
    };
    let then = on_done(req, outcome);
    // SAFETY: r is live until the finalization below, after which it is not used. c stays
    // addressable either way: connections are slots of the cycle's preallocated array, and one
    // closed meanwhile is marked destroyed, which ngx_http_run_posted_requests checks first.
    unsafe {
        match then {
            AfterScan::Phases => {
                let alive = req.held_elsewhere();
                // Gives back the reference the flow took; with another one held (alive), the
                // request stays allocated and is resumed; otherwise it may be freed here.
                ngx_http_finalize_request(r, NGX_DONE as ngx_int_t);
                if alive {
                    crate::ngx_ext::hooks::run_phases(r);
                }
            }
            AfterScan::Finalize(rc) => ngx_http_finalize_request(r, rc),
        }
        ngx_http_run_posted_requests(c);
    }
}
