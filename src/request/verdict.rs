//! Applying a scan's result: what reaches the backend (the body as it is, the scanner's body,
//! or nothing) and what the client gets (the normal answer, the scanner's page, `error_page`,
//! 502/504/500).

use std::time::Duration;

use bytes::Bytes;
use ngx::ffi::*;
use ngx::http::Request;
use ometascan_core::disposition::rename_filename;
use ometascan_core::{ResponsePage, SanitizedBody, ScanError, Verdict};

use super::ctx::{self, State};
use super::{passes, NGX_DECLINED_};
use crate::conf::LocConf;
use crate::ngx_ext::body::{forget_body, replace_body};
use crate::ngx_ext::headers::{header_in, push_header_out, set_header_in, set_header_in_copies};
use crate::ngx_ext::hooks::Step;
use crate::ngx_ext::log;
use crate::ngx_ext::page::{has_error_page, send_page};

const INTERNAL_ERROR: ngx_int_t = NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t;

/// A scan's result taken from the request's state to be applied, with what its log lines say.
pub struct Applying {
    pub result: Result<Verdict, ScanError>,
    /// The scanner, as configured.
    pub scanner: String,
    /// The part of a form that decided, if any.
    pub part: Option<String>,
    pub scan_time: Duration,
}

/// Applies a scan's result to the main request `r` (no scan in flight); what the phase handler
/// does.
pub fn apply(r: &mut Request, applying: Applying, lcf: &LocConf) -> Step {
    let Applying {
        result,
        scanner,
        part,
        scan_time,
    } = applying;
    let passed = passes(&result, lcf);
    ctx::scan(r, |s| s.state = State::Applied { passed });
    let ms = scan_time.as_millis();
    if !passed {
        // Before anything else runs (error_page, the page being sent): from here on no later
        // step of nginx can find the body.
        drop_body(r);
    }
    match result {
        Ok(Verdict::Allowed) => {
            crate::debug!(&*r, "ometascan: allowed in {ms} ms");
            Step::Rc(NGX_DECLINED_)
        }
        Ok(Verdict::Sanitized {
            body,
            content_type,
            content_disposition,
            ..
        }) => {
            let len = body.len();
            if sanitized(r, body, content_type, content_disposition).is_some() {
                crate::debug!(&*r, "ometascan: sanitized in {ms} ms, {len} bytes");
                return Step::Rc(NGX_DECLINED_);
            }
            ctx::scan(r, |s| s.state = State::Applied { passed: false });
            crate::error!(
                log::scan(r, &scanner),
                "cannot forward the sanitized body: out of memory"
            );
            drop_body(r);
            Step::Rc(INTERNAL_ERROR)
        }
        Ok(Verdict::Blocked { page, threat }) => {
            if lcf.log_blocked() {
                let mut threat = threat
                    .map(|t| format!(", threat \"{t}\""))
                    .unwrap_or_default();
                if let Some(part) = &part {
                    threat.push_str(&format!(", in {part}"));
                }
                crate::notice!(
                    log::scan(r, &scanner),
                    "request blocked by the scanner with status {}{threat}",
                    page.status
                );
            }
            crate::debug!(&*r, "ometascan: blocked in {ms} ms");
            relay(r, lcf, &page)
        }
        Ok(Verdict::BadRequest { page }) if passed => {
            crate::warn!(
                log::scan(r, &scanner),
                "scanner could not parse the request (400), forwarding it unscanned because \
                 of \"ometascan_allow_bad_request_traffic on\""
            );
            drop(page);
            Step::Rc(NGX_DECLINED_)
        }
        Ok(Verdict::BadRequest { page }) => {
            crate::debug!(&*r, "ometascan: scanner answered 400");
            relay(r, lcf, &page)
        }
        Err(e) if passed => {
            crate::warn!(
                log::scan(r, &scanner),
                "scan failed: {e}; forwarding the request unscanned because of \
                 \"ometascan_on_error pass\""
            );
            Step::Rc(NGX_DECLINED_)
        }
        Err(e) => failed(r, &scanner, &e),
    }
}

/// A failed scan: the reason in the error log, 502/504 (500 when the module could not start
/// the scan) to the client.
fn failed(r: &mut Request, scanner: &str, e: &ScanError) -> Step {
    match e {
        ScanError::Module(m) => crate::error!(log::scan(r, scanner), "{m}"),
        // The client's doing, not a fault: logged as nginx logs a client's bad request.
        ScanError::Refused { status, reason } => crate::info!(
            log::scan(r, scanner),
            "request refused with status {status}: {reason}"
        ),
        e => crate::error!(log::scan(r, scanner), "scan failed: {e}"),
    }
    if let ScanError::Busy(wait, _) = e {
        // When to try again: the longest wait for a turn, in whole seconds. The header is not
        // sent yet; nginx keeps the field on its 503 page.
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let _ = push_header_out(r, b"Retry-After", secs.max(1).to_string().as_bytes());
    }
    Step::Rc(e.status() as ngx_int_t)
}

/// Sends the scanner's page (the header is not sent yet), or lets `error_page` answer when
/// intercepting.
fn relay(r: &mut Request, lcf: &LocConf, page: &ResponsePage) -> Step {
    if lcf.intercept_errors() && page.status >= 300 && has_error_page(r, page.status) {
        return Step::Rc(page.status as ngx_int_t);
    }
    Step::Finalize(send_page(r, page))
}

/// Replaces the request body with the scanner's, fixing `Content-Length`, `Content-Type` and
/// the `Content-Disposition` filename (of every copy the client sent). `None`: out of memory.
fn sanitized(
    r: &mut Request,
    body: SanitizedBody,
    content_type: Option<Bytes>,
    content_disposition: Option<Bytes>,
) -> Option<()> {
    let whole = match body {
        SanitizedBody::Parts(parts) => parts,
        one => one.into(),
    };
    replace_body(r, &whole)?;
    if let Some(ct) = content_type {
        set_header_in(r, b"Content-Type", &ct)?;
    }
    if let Some(scanner_cd) = content_disposition {
        rename_disposition(r, &scanner_cd)?;
    }
    Some(())
}

/// Every copy of the client's `Content-Disposition` gets the scanner's filename.
fn rename_disposition(r: &mut Request, scanner_cd: &[u8]) -> Option<()> {
    let Some(client) = header_in(r, b"content-disposition") else {
        return Some(());
    };
    let client = String::from_utf8_lossy(&client);
    let Some(renamed) = rename_filename(&client, &String::from_utf8_lossy(scanner_cd)) else {
        return Some(());
    };
    set_header_in_copies(r, b"Content-Disposition", renamed.as_bytes())
}

/// After a block or a failure: the body is taken out of the request (see [`forget_body`]) so
/// that no later step (`error_page` and other internal redirects, proxy/fastcgi/uwsgi/grpc,
/// mirror, subrequests) can send it.
pub fn drop_body(r: &mut Request) {
    forget_body(r)
}
