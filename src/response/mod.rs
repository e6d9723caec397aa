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
//! scanner's body, or replaced by the scanner's page or an error (see [`release`]). Safe code:
//! the entry points are in `ngx_ext/hooks.rs`.

mod conditional;
mod filter;
pub mod held;
mod release;
mod scan;

use ngx::ffi::*;
use ngx::http::{HttpModuleLocationConf, Request};
use ometascan_core::{RequestBody, ResultKind};

use crate::ngx_ext::hooks::{Chain, Filters, Next};
use crate::request::ctx;
use crate::Module;

/// The bit of `r->buffered` that says the module holds the response (nginx's own filters
/// use 0x01 to 0x04).
pub const BUFFERED: u32 = 0x08;

/// The module's filters, first in nginx's chain.
pub struct ResponseFilters;

impl Filters for ResponseFilters {
    fn header(r: &mut Request) -> ngx_int_t {
        filter::header(r)
    }

    fn body(r: &mut Request, chain: Chain<'_>) -> ngx_int_t {
        filter::body(r, chain)
    }
}

/// The filters after the module's in the running configuration's chain.
fn next() -> Option<&'static Next> {
    crate::conf::main::running().map(|m| &m.next)
}

fn next_header(r: &mut Request) -> ngx_int_t {
    next().map_or(NGX_ERROR as ngx_int_t, |n| n.header(r))
}

fn next_body(r: &mut Request, chain: Chain<'_>) -> ngx_int_t {
    next().map_or(NGX_ERROR as ngx_int_t, |n| n.body(r, chain))
}

/// `body` to the filters after the module's; `last`: it ends the response.
fn pass_body(r: &mut Request, body: RequestBody, last: bool) -> ngx_int_t {
    match next() {
        Some(n) => crate::ngx_ext::buf::pass_body(r, n, body, last),
        None => NGX_ERROR as ngx_int_t,
    }
}

/// `$ometascan_response_result` (0), `_threat` (1), `_scan_time` (2), `_cache_status` (3) of
/// `r` (read from its main request): `skipped` where responses are scanned but this one was
/// not.
pub fn variable(r: &mut Request, which: usize) -> Option<String> {
    let shown = ctx::held(r, |held| {
        let rep = &held.report;
        match which {
            0 => Some(rep.result.unwrap_or(ResultKind::Skipped).name().into()),
            1 => rep.threat.clone(),
            2 => rep
                .scan_time
                .map(|d| format!("{}.{:03}", d.as_secs(), d.subsec_millis())),
            3 => rep.cache.map(|c| c.name().to_string()),
            _ => None,
        }
    });
    shown.unwrap_or_else(|| {
        let here =
            Module::location_conf(r).is_some_and(|l| l.response() && l.response_target().is_some());
        (which == 0 && here).then(|| ResultKind::Skipped.name().into())
    })
}
