//! Variables for `log_format` and friends: `$ometascan_result`, `$ometascan_threat`,
//! `$ometascan_scan_time`, `$ometascan_scanner_addr`, `$ometascan_status`, `$ometascan_parts`,
//! `$ometascan_cache_status`, `$ometascan_upload_key` and `$ometascan_upload_bytes` (a piece of
//! an upload in pieces: its upload, and the bytes of the file assembled and scanned because
//! of it); where a request's scan spent its time, as `$upstream_connect_time` and the others
//! tell it for upstreams: `$ometascan_scan_wait_time` (waiting for a turn),
//! `$ometascan_scan_connect_time`, `$ometascan_scan_send_time` (handing the request over),
//! `$ometascan_scan_answer_time` (then waiting for and reading the answer), each summed over
//! the scan's exchanges, and `$ometascan_scan_handback_time` (from the end of the scan to
//! nginx resuming the request); for a scanned response (`ometascan_response on`),
//! `$ometascan_response_result`, `$ometascan_response_threat`, `$ometascan_response_scan_time`,
//! `$ometascan_response_cache_status`.

use ngx::http::{HttpModuleLocationConf, Request};
use ometascan_core::ResultKind;

use crate::request::ctx;
use crate::request::report::Report;
use crate::Module;

/// Indexes from here on tell the response's scan.
const RESPONSE: usize = 9;
/// Indexes from here on tell where the request's scan spent its time.
const PHASES: usize = 20;

const VARIABLES: [(&str, usize); 18] = [
    ("ometascan_result", 0),
    ("ometascan_threat", 1),
    ("ometascan_scan_time", 2),
    ("ometascan_scanner_addr", 3),
    ("ometascan_status", 4),
    ("ometascan_parts", 5),
    ("ometascan_cache_status", 6),
    ("ometascan_upload_key", 7),
    ("ometascan_upload_bytes", 8),
    ("ometascan_response_result", RESPONSE),
    ("ometascan_response_threat", RESPONSE + 1),
    ("ometascan_response_scan_time", RESPONSE + 2),
    ("ometascan_response_cache_status", RESPONSE + 3),
    ("ometascan_scan_wait_time", PHASES),
    ("ometascan_scan_connect_time", PHASES + 1),
    ("ometascan_scan_send_time", PHASES + 2),
    ("ometascan_scan_answer_time", PHASES + 3),
    ("ometascan_scan_handback_time", PHASES + 4),
];

/// Seconds with milliseconds, as nginx writes its times.
fn seconds(d: std::time::Duration) -> String {
    format!("{}.{:03}", d.as_secs(), d.subsec_millis())
}

/// The module's variables, registered in preconfiguration.
pub struct ScanVariables;

impl crate::ngx_ext::hooks::Variables for ScanVariables {
    const NAMES: &'static [(&'static str, usize)] = &VARIABLES;

    fn value(r: &mut Request, index: usize) -> Option<String> {
        value(r, index)
    }
}

/// The text of variable `index` for request `r` (read from its main request's state); `None`
/// when it has no value.
fn value(r: &mut Request, index: usize) -> Option<String> {
    if (RESPONSE..PHASES).contains(&index) {
        return crate::response::variable(r, index - RESPONSE);
    }
    let Some(shown) = ctx::scan(r, |s| shown(&s.report, index)) else {
        // Not scanned: "skipped" where scanning is configured, nothing elsewhere.
        let scanned_here = Module::location_conf(r).is_some_and(|l| l.target().is_some());
        return (index == 0 && scanned_here).then(|| ResultKind::Skipped.name().to_string());
    };
    shown
}

/// Variable `index` of a request scan's report.
fn shown(rep: &Report, index: usize) -> Option<String> {
    match index {
        0 => Some(rep.result.unwrap_or(ResultKind::Skipped).name().to_string()),
        1 => rep.threat.clone(),
        2 => rep.scan_time.map(seconds),
        3 => rep.server.as_ref().map(|a| a.to_string()),
        4 => rep.status.map(|s| s.to_string()),
        5 => (rep.objects > 0).then(|| rep.objects.to_string()),
        6 => rep.cache.map(|c| c.name().to_string()),
        7 => rep.upload.as_ref().map(|u| u.key.clone()),
        8 => rep
            .upload
            .as_ref()
            .and_then(|u| u.assembled)
            .map(|n| n.to_string()),
        PHASES.. => {
            let (p, handback) = rep.phases?;
            let d = match index - PHASES {
                0 => p.wait,
                1 => p.connect,
                2 => p.send,
                3 => p.answer,
                _ => handback,
            };
            Some(seconds(d))
        }
        _ => None,
    }
}
