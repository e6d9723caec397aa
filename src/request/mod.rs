//! The request flow, as a state machine driven by nginx's phase engine: the precontent phase
//! handler has nginx read the body, starts the scan ([`job`]), and applies the result when the
//! phases run again ([`verdict`]). The state lives in [`ctx`]. Safe code: what it needs of
//! nginx is in `ngx_ext/` (the entry points in `hooks.rs`) and `runtime/`.
//!
//! The handler runs in the precontent phase, after the access phase: `auth_request`, `allow`/
//! `deny` and `satisfy any` have all been decided, and none of them can skip the scan.

pub mod ctx;
pub mod job;
pub mod pieces;
pub mod report;
mod verdict;

use ngx::ffi::*;
use ngx::http::{HttpModuleLocationConf, Request};
use ometascan_core::{ResultKind, ScanError, ScanOutcome, Verdict};

use crate::conf::{LocConf, OnError, OverSize, PassTarget};
use crate::ngx_ext::body::{body_buffers, Stored};
use crate::ngx_ext::hooks::{Phase, Resume, Step};
use crate::ngx_ext::log;
use crate::ngx_ext::request::RequestExt;
use crate::ngx_ext::value::ComplexValue;
use crate::runtime::AfterScan;
use crate::status;
use crate::Module;
use ctx::{Scan, State};
use report::Report;

const NGX_DECLINED_: ngx_int_t = NGX_DECLINED as ngx_int_t;
const NGX_DONE_: ngx_int_t = NGX_DONE as ngx_int_t;

/// The precontent-phase handler and its body-read handler.
pub struct ScanPhase;

impl Phase for ScanPhase {
    fn handle(r: &mut Request) -> Step {
        handle(r)
    }

    fn body_read(r: &mut Request) -> Resume {
        body_read(r)
    }
}

fn handle(r: &mut Request) -> Step {
    if !r.is_main() {
        return Step::Rc(NGX_DECLINED_);
    }
    // A request met before: this phase runs again after the scan, and in every location an
    // internal redirect leads to, whatever that location's own configuration.
    if let Some(step) = again(r) {
        return step;
    }
    let Some(lcf) = Module::location_conf(r) else {
        return Step::Rc(NGX_DECLINED_);
    };
    let Some(target) = lcf.target() else {
        return Step::Rc(NGX_DECLINED_);
    };
    if pieces::terminated(r) {
        return Step::Rc(NGX_DECLINED_);
    }
    if !lcf.methods().scans(r.method_name(), r.announces_body()) && !pieces::claims(r) {
        status::counted(ResultKind::Skipped);
        return Step::Rc(NGX_DECLINED_);
    }
    if let Some(why) = first_set(r, lcf.bypass().map(Vec::as_slice)) {
        status::counted(ResultKind::Skipped);
        crate::info!(
            log::scan(r, &target.shown),
            "not scanned: \"ometascan_bypass\" value \"{why}\""
        );
        return Step::Rc(NGX_DECLINED_);
    }
    if ctx::start_scan(r, Scan::new(target.shown.clone())).is_none() {
        return Step::Rc(NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t);
    }
    store_as_dav_would(r);
    Step::ReadBody
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

/// The first of a bypass directive's values that is non-empty and not "0" for `r` (a value
/// that cannot be evaluated does not bypass).
pub fn first_set(r: &Request, values: Option<&[ComplexValue]>) -> Option<String> {
    values?.iter().find_map(|cv| {
        let v = cv.evaluate(r)?;
        (!v.is_empty() && v != b"0").then(|| String::from_utf8_lossy(&v).into_owned())
    })
}

/// What a failed scan counts as in this location.
fn failed_kind(lcf: &LocConf) -> ResultKind {
    match lcf.on_error() {
        OnError::Block => ResultKind::Error,
        OnError::Pass => ResultKind::Unscanned,
    }
}

/// What the phase handler does for a request met before, decided with its state borrowed.
enum Again {
    Apply(verdict::Applying),
    /// The body is dropped (it is gone, and stays gone), then this code.
    Dropped(ngx_int_t),
    Rc(ngx_int_t),
}

/// The phase handler for a request that has a scan state already (`None`: it has none).
fn again(r: &mut Request) -> Option<Step> {
    let what = ctx::scan(r, |s| match &mut s.state {
        State::Done(_) => match std::mem::replace(&mut s.state, State::Applied { passed: false }) {
            State::Done(result) => Again::Apply(verdict::Applying {
                result,
                scanner: s.scanner.clone(),
                part: s.report.part.clone(),
                scan_time: s.report.scan_time.unwrap_or_default(),
            }),
            _ => Again::Rc(NGX_DECLINED_),
        },
        // Never scanned again: an allowed body goes on as it is.
        State::Applied { passed: true } => Again::Rc(NGX_DECLINED_),
        State::Applied { passed: false } => Again::Dropped(NGX_DECLINED_),
        State::Scanning(_) => Again::Rc(NGX_DONE_),
        State::TooLarge => {
            s.state = State::Applied { passed: false };
            Again::Dropped(NGX_HTTP_REQUEST_ENTITY_TOO_LARGE as ngx_int_t)
        }
        // Only a redirect after a failed body read (a timeout, a client error) meets this:
        // the body is incomplete and unscanned.
        State::Reading => {
            s.state = State::Applied { passed: false };
            Again::Dropped(NGX_DECLINED_)
        }
    })?;
    Some(match what {
        Again::Apply(applying) => match Module::location_conf(r) {
            Some(lcf) => verdict::apply(r, applying, lcf),
            None => {
                ctx::scan(r, |s| s.state = State::Applied { passed: false });
                verdict::drop_body(r);
                Step::Rc(NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t)
            }
        },
        Again::Dropped(rc) => {
            verdict::drop_body(r);
            Step::Rc(rc)
        }
        Again::Rc(rc) => Step::Rc(rc),
    })
}

/// The whole body is in nginx's buffers or temp file: start the scan.
fn body_read(r: &mut Request) -> Resume {
    let Some(lcf) = Module::location_conf(r) else {
        return Resume::Wait;
    };
    let Some(target) = lcf.target() else {
        return Resume::Wait;
    };
    if ctx::scan(r, |_| ()).is_none() {
        return Resume::Wait;
    }
    let len = body_buffers(r).iter().map(Stored::len).sum();
    if let Some((max, over)) = lcf.max_size().copied().filter(|(max, _)| len > *max) {
        over_size(r, target, len, max, over);
        return Resume::Phases;
    }
    match job::start(r, lcf, target, on_done) {
        Ok(slot) => {
            ctx::scan(r, |s| s.state = State::Scanning(slot));
            status::started(len);
            // The scan holds a reference; the client is watched meanwhile.
            r.hold();
            crate::debug!(&*r, "ometascan: scan started, body {len} bytes");
            Resume::Wait
        }
        Err(e) => {
            not_started(r, lcf, e);
            Resume::Phases
        }
    }
}

/// A scan that could not start: its failure is the result, applied when the phases run again.
fn not_started(r: &mut Request, lcf: &LocConf, e: ScanError) {
    let kind = failed_kind(lcf);
    status::started(0);
    status::finished(Some(kind), Some(&e), None, None, false);
    ctx::scan(r, |s| {
        s.report.result = Some(kind);
        s.state = State::Done(Err(e));
    });
}

/// A body over `ometascan_max_size`: refused (413) or, with `over=pass`, forwarded unscanned.
fn over_size(r: &mut Request, target: &PassTarget, len: u64, max: u64, over: OverSize) {
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
    ctx::scan(r, |s| {
        s.report.result = Some(kind);
        s.state = state;
    });
    status::counted(kind);
    crate::log_at!(
        log::scan(r, &target.shown),
        level,
        "request body of {len} bytes is over \"ometascan_max_size\" {max}, {what}"
    );
}

/// A scan finished: record the outcome; the phases run again, which applies it.
fn on_done(r: &mut Request, outcome: ScanOutcome) -> AfterScan {
    let failed = match (&outcome.result, Module::location_conf(r)) {
        (Err(e), Some(lcf)) if e.may_pass_unscanned() => failed_kind(lcf),
        _ => ResultKind::Error,
    };
    ctx::scan(r, |s| {
        s.report = Report::of(&outcome, failed);
        pieces::count(&outcome);
        status::finished(
            s.report.result,
            outcome.result.as_ref().err(),
            Some(outcome.elapsed),
            outcome.server.as_ref(),
            outcome.queued,
        );
        s.state = State::Done(outcome.result);
    });
    AfterScan::Phases
}

/// Whether a verdict lets the body go on in this location.
fn passes(result: &Result<Verdict, ScanError>, lcf: &LocConf) -> bool {
    match result {
        Ok(Verdict::Allowed | Verdict::Sanitized { .. }) => true,
        Ok(Verdict::BadRequest { .. }) => *lcf.allow_bad_request(),
        Ok(Verdict::Blocked { .. }) => false,
        Err(e) => *lcf.on_error() == OnError::Pass && e.may_pass_unscanned(),
    }
}
