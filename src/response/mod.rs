//! Scanning responses before the client gets any of them (`ometascan_response on`).
//!
//! The module's header and body filters come first in nginx's chain (a dynamic module's
//! filters are the last registered). For a main request whose status is scanned, the header
//! filter sends nothing on; the body filter takes every buffer (memory copied, up to 1 MiB,
//! then into an unlinked file; file buffers kept as ranges of their file through a descriptor
//! of the module's own), marks the request buffered so that nginx waits, and at the last
//! buffer starts the scan. nginx's write handler then waits, at most `send_timeout`, as for
//! any response the client is slow to take. On the verdict the response is released to the
//! filters after the module's (range, gzip, chunked, ...): as the backend sent it, with the
//! scanner's body, or replaced by the scanner's page or an error (see [`release`]).

mod conditional;
mod filter;
mod held;
mod release;
mod scan;

use ngx::ffi::*;
use ngx::http::{HttpModuleLocationConf, Request};

use crate::conf::main::configuring;
use crate::ngx_ext::request::RequestExt;
use crate::Module;

/// The bit of `r->buffered` that says the module holds the response (nginx's own filters
/// use 0x01 to 0x04).
pub const BUFFERED: u32 = 0x08;

/// Puts the module's filters first in the chain (postconfiguration).
///
/// # Safety
/// `cf` is the http configuration being parsed, on nginx's thread.
pub unsafe fn add_filters(cf: *mut ngx_conf_t) -> Option<()> {
    // SAFETY: cf is the http block being configured (caller).
    let main = unsafe { configuring(cf) }?;
    // SAFETY: nginx's filter chain heads, set by the filter modules' postconfiguration before
    // ours (a dynamic module comes after the built-in ones); nginx thread only.
    unsafe {
        main.next_header = ngx_http_top_header_filter;
        ngx_http_top_header_filter = Some(filter::header_filter);
        main.next_body = ngx_http_top_body_filter;
        ngx_http_top_body_filter = Some(filter::body_filter);
    }
    Some(())
}

fn next_header(r: &Request) -> ngx_int_t {
    let next = crate::conf::main::running().and_then(|m| m.next_header);
    match next {
        // SAFETY: the next filter of this cycle's chain, with the request nginx gave ours.
        Some(f) => unsafe { f(r.raw()) },
        None => NGX_ERROR as ngx_int_t,
    }
}

fn next_body(r: &Request, chain: *mut ngx_chain_t) -> ngx_int_t {
    let next = crate::conf::main::running().and_then(|m| m.next_body);
    match next {
        // SAFETY: the next filter of this cycle's chain, with the request and chain nginx
        // gave ours.
        Some(f) => unsafe { f(r.raw(), chain) },
        None => NGX_ERROR as ngx_int_t,
    }
}

/// `$ometascan_response_result` (0), `_threat` (1), `_scan_time` (2), `_cache_status` (3) of
/// `r`, whose main
/// request is `main`: `skipped` where responses are scanned but this one was not.
pub fn variable(r: &Request, main: &Request, which: usize) -> Option<String> {
    // SAFETY: read in this call only; the module's code holds no borrow of the held response
    // while nginx evaluates variables.
    let Some(held) = (unsafe { held::get(main) }) else {
        let here =
            Module::location_conf(r).is_some_and(|l| l.response() && l.response_target().is_some());
        return (which == 0 && here).then(|| ometascan_core::ResultKind::Skipped.name().into());
    };
    let rep = &held.report;
    match which {
        0 => Some(
            rep.result
                .unwrap_or(ometascan_core::ResultKind::Skipped)
                .name()
                .into(),
        ),
        1 => rep.threat.clone(),
        2 => rep
            .scan_time
            .map(|d| format!("{}.{:03}", d.as_secs(), d.subsec_millis())),
        3 => rep.cache.map(|c| c.name().to_string()),
        _ => None,
    }
}
