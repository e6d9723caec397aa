//! Error-log lines in nginx's style. A line about a scan carries nginx's usual request context
//! (`while scanning request, client: ..., server: ..., request: "..."`; `while scanning
//! response` for a download's scan) followed by
//! `scanner: "..."`.

use std::cell::RefCell;
use std::ffi::CStr;

use ngx::ffi::*;
use ngx::http::Request;

/// Appends `, scanner: "URL"` after nginx's own request context.
unsafe extern "C" fn log_handler(
    r: *mut ngx_http_request_t,
    sr: *mut ngx_http_request_t,
    buf: *mut u_char,
    len: usize,
) -> *mut u_char {
    // SAFETY: nginx calls this while formatting a line for a live request, with `len` bytes
    // writable at `buf`.
    unsafe {
        let mut p = buf;
        if let Some(prev) = PREV.with(|c| c.get()) {
            p = prev(r, sr, buf, len);
        }
        let used = p.offset_from(buf) as usize;
        let Some(extra) =
            SCANNER.with(|s| s.borrow().as_ref().map(|s| format!(", scanner: \"{s}\"")))
        else {
            return p;
        };
        let n = extra.len().min(len.saturating_sub(used));
        std::ptr::copy_nonoverlapping(extra.as_ptr(), p, n);
        p.add(n)
    }
}

thread_local! {
    static PREV: std::cell::Cell<ngx_http_log_handler_pt> = const { std::cell::Cell::new(None) };
    /// The scanner named by the line being written.
    static SCANNER: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Logs `msg` at `level` in the request's error log, with the scan context naming `scanner`.
pub fn error(r: &mut Request, level: u32, scanner: &str, msg: &str) {
    error_while(r, level, c"scanning request", scanner, msg)
}

/// [`error`] about the scan of the request's response (`while scanning response`).
pub fn response_error(r: &mut Request, level: u32, scanner: &str, msg: &str) {
    error_while(r, level, c"scanning response", scanner, msg)
}

fn error_while(r: &mut Request, level: u32, action: &'static CStr, scanner: &str, msg: &str) {
    let log = r.log();
    // SAFETY: the connection's log lives as long as the connection, which outlives its
    // requests.
    let log_ref = unsafe { &mut *log };
    if (level as ngx_uint_t) > log_ref.log_level {
        return;
    }
    // The request's log handler and the log's action are nginx's; both are restored before
    // returning, on this thread, so no other line sees ours.
    let saved = log_ref.action;
    let prev = r.as_ref().log_handler;
    PREV.with(|c| c.set(prev));
    SCANNER.with(|s| *s.borrow_mut() = Some(scanner.to_string()));
    log_ref.action = action.as_ptr() as *mut _;
    r.as_mut().log_handler = Some(log_handler);
    ngx::ngx_log_error!(level, log, "{}", msg);
    r.as_mut().log_handler = prev;
    log_ref.action = saved;
    SCANNER.with(|s| *s.borrow_mut() = None);
}

/// Logs `msg` at debug level (only in nginx built with debugging).
pub fn debug(r: &Request, msg: &str) {
    let log = r.log();
    ngx::ngx_log_debug!(mask: ngx::log::DebugMask::Http, log, "{}", msg);
}
