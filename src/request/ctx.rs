//! A request's state in the module: the scan of its body and the hold on its response, kept
//! with the main request (see [`crate::ngx_ext::cell`]: it outlives internal redirects and goes
//! with the request's pool). Reached only through [`scan`] and [`held`], whose closures cannot
//! run nginx code.

use ngx::http::Request;
use ometascan_core::{ScanError, Verdict};

use super::report::Report;
use crate::ngx_ext::cell;
use crate::response::held::Held;
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

/// The scan of a request's body.
pub struct Scan {
    pub state: State,
    /// The scanner URL as configured, for log lines.
    pub scanner: String,
    /// What the `$ometascan_*` variables show.
    pub report: Report,
}

impl Scan {
    pub fn new(scanner: String) -> Scan {
        Scan {
            state: State::Reading,
            scanner,
            report: Report::default(),
        }
    }
}

/// Dropping it (when the pool goes away) forgets a scan still in flight.
impl Drop for Scan {
    fn drop(&mut self) {
        if let State::Scanning(slot) = self.state {
            runtime::forget(slot);
            status::finished(None, None, None, None, false);
        }
    }
}

/// What the module keeps of a request.
#[derive(Default)]
struct Ctx {
    scan: Option<Scan>,
    held: Option<Held>,
}

/// Runs `f` on the scan of `r`'s main request, if it has one.
pub fn scan<R>(r: &mut Request, f: impl FnOnce(&mut Scan) -> R) -> Option<R> {
    cell::with(r, |c: &mut Ctx| c.scan.as_mut().map(f)).flatten()
}

/// Runs `f` on the held response of `r`'s main request, if there is one.
pub fn held<R>(r: &mut Request, f: impl FnOnce(&mut Held) -> R) -> Option<R> {
    cell::with(r, |c: &mut Ctx| c.held.as_mut().map(f)).flatten()
}

/// Starts the scan state of the main request `r` (`None`: out of memory, or it has one).
pub fn start_scan(r: &mut Request, value: Scan) -> Option<()> {
    put(r, value, |c| &mut c.scan)
}

/// Holds the response of the main request `r` (`None`: out of memory, or it is held already).
pub fn start_held(r: &mut Request, value: Held) -> Option<()> {
    put(r, value, |c| &mut c.held)
}

fn put<T>(r: &mut Request, value: T, field: fn(&mut Ctx) -> &mut Option<T>) -> Option<()> {
    if !cell::exists(r) {
        cell::create(r, Ctx::default())?;
    }
    cell::with(r, |c: &mut Ctx| {
        let slot = field(c);
        if slot.is_some() {
            return None;
        }
        *slot = Some(value);
        Some(())
    })
    .flatten()
}

/// Whether the module refused the request itself (blocked, failed, over its size): the
/// response is then the module's page, or the operator's `error_page` for it.
pub fn refused(r: &mut Request) -> bool {
    scan(r, |s| {
        matches!(s.state, State::Applied { passed: false } | State::TooLarge)
    })
    .unwrap_or(false)
}
