//! The module's header and body filters: deciding whether a response is held (its status, the
//! location's directives, its size, a bypass value, a `304` to come), and taking its body.

use ngx::ffi::*;
use ngx::http::{HttpModuleLocationConf, Request};
use ometascan_core::ResultKind;

use super::held::{Held, Phase};
use super::{conditional, next_body, next_header, release, scan, BUFFERED};
use crate::conf::{LocConf, OverSize};
use crate::ngx_ext::hooks::Chain;
use crate::ngx_ext::log;
use crate::ngx_ext::request::RequestExt;
use crate::request::ctx;
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
    let status = r.as_ref().headers_out.status;
    let scanned = lcf.response()
        && lcf.response_target().is_some()
        && r.is_main()
        && !r.header_only()
        && !r.is_head();
    // The module's own page for a refused upload (or the error_page answering it) is not a
    // download.
    if !scanned || ctx::refused(r) {
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
    if let Some(why) = crate::request::first_set(r, lcf.response_bypass().map(Vec::as_slice)) {
        status::response_counted(ResultKind::Skipped);
        crate::info!(
            log::response(r, &scanner),
            "response not scanned: \"ometascan_response_bypass\" value \"{why}\""
        );
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
    let &(max, over) = lcf.response_max_size()?;
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
    crate::log_at!(
        log::response(r, scanner),
        level,
        "response of {len} bytes is over \"ometascan_response_max_size\" {max}, {what}"
    );
    ctx::held(r, |held| held.report.result = Some(kind));
    status::response_counted(kind);
    Some(decision)
}

/// The header filter: holds the response, or sends it on.
pub fn header(r: &mut Request) -> ngx_int_t {
    if ctx::held(r, |_| ()).is_some() {
        return next_header(r);
    }
    crate::request::pieces::on_response(r);
    let decision = decide(r);
    if matches!(decision, Decision::Pass) {
        return next_header(r);
    }
    let mut held = Held::new(crate::request::job::spill_dir(r));
    held.report.result = match decision {
        Decision::Unscanned(kind) => Some(kind),
        Decision::TooLarge => Some(ResultKind::TooLarge),
        Decision::Partial | Decision::Unreadable(_) => Some(ResultKind::Error),
        _ => None,
    };
    if !matches!(decision, Decision::Hold) {
        held.phase = Phase::Released;
    }
    if ctx::start_held(r, held).is_none() {
        return NGX_ERROR as ngx_int_t;
    }
    match decision {
        Decision::Unscanned(_) => next_header(r),
        Decision::Hold => {
            // Nothing goes on until the verdict.
            let raw = r.as_mut();
            raw.set_buffered(raw.buffered() | BUFFERED);
            NGX_OK as ngx_int_t
        }
        Decision::TooLarge => release::bad_gateway(r),
        Decision::Partial => release::partial(r),
        Decision::Unreadable(why) => release::unreadable(r, why),
        _ => not_modified(r),
    }
}

/// A `304` has no body, nothing is held; but a `200` must never go out unscanned: if nginx
/// did not answer `304` after all, the connection is closed before the body.
fn not_modified(r: &mut Request) -> ngx_int_t {
    let rc = next_header(r);
    if r.as_ref().headers_out.status == NGX_HTTP_NOT_MODIFIED as ngx_uint_t {
        return rc;
    }
    crate::alert!(
        log::response(r, ""),
        "a response expected to be \"304 Not Modified\" was not; closing the connection \
         before its body"
    );
    r.close_connection();
    NGX_ERROR as ngx_int_t
}

/// The body filter: takes what is held, lets the rest through.
pub fn body(r: &mut Request, mut chain: Chain<'_>) -> ngx_int_t {
    match ctx::held(r, |held| held.phase) {
        None | Some(Phase::Released) => next_body(r, chain),
        Some(Phase::Scanning(_)) => NGX_OK as ngx_int_t,
        Some(Phase::Holding) => {
            let taken = ctx::held(r, |held| (take_chain(held, &mut chain), held.len()));
            match taken {
                None => NGX_ERROR as ngx_int_t,
                Some((Err(e), _)) => release::refuse(r, e, ResultKind::Error),
                Some((
                    Ok(Taken {
                        last: false,
                        flush: true,
                    }),
                    _,
                )) if r.upstream_closed() => release::cut_short(r),
                Some((Ok(Taken { last, .. }), len)) => held_more(r, len, last),
            }
        }
    }
}

/// After taking buffers: the size checked against the cap while the body grows, the scan
/// started after the last buffer.
fn held_more(r: &mut Request, len: u64, last: bool) -> ngx_int_t {
    if let Some(lcf) = Module::location_conf(r) {
        let scanner = lcf
            .response_target()
            .map(|(t, _)| t.shown.clone())
            .unwrap_or_default();
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
fn take_chain(held: &mut Held, chain: &mut Chain<'_>) -> Result<Taken, ometascan_core::ScanError> {
    let mut taken = Taken {
        last: false,
        flush: false,
    };
    let mut result = Ok(());
    chain.for_each_buf(|b| {
        if result.is_ok() {
            result = held.take(b);
            taken.last |= b.is_last();
            taken.flush |= b.is_flush();
        }
    });
    result?;
    if taken.last {
        held.finish()?;
    }
    Ok(taken)
}
