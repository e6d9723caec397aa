//! Error-log lines in nginx's style, through one route: the level macros (`crate::emerg!`,
//! `alert!`, `error!`, `warn!`, `notice!`, `info!`, `debug!`, and `log_at!` for a level
//! known when the line is written) write to a [`Sink`]: a log (the cycle's, an event's), the
//! configuration being parsed ([`Parsing`]: nginx appends the file and line) or merged
//! ([`Merging`]), a request ([`Scan`]: nginx's usual request context followed by
//! `scanner: "..."`, while scanning the request or its response), or a request's plain context
//! for debug lines. The scanner side's lines (servers going down, the core's `tracing` events)
//! come to the same route on the nginx thread ([`at_level`]).

use std::cell::RefCell;
use std::ffi::CStr;
use std::fmt;

use ngx::ffi::*;
use ngx::http::Request;

/// Where a line goes.
pub trait Sink {
    /// Writes `args` at `level` (nginx's `NGX_LOG_*`) if the log takes that level.
    fn line(self, level: u32, args: fmt::Arguments);
}

/// A log of nginx's: the cycle's, an event's, a connection's.
impl Sink for *mut ngx_log_t {
    fn line(self, level: u32, args: fmt::Arguments) {
        if self.is_null() {
            return;
        }
        if level >= NGX_LOG_DEBUG {
            ngx::ngx_log_debug!(self, "{}", args);
        } else {
            ngx::ngx_log_error!(level as ngx_uint_t, self, "{}", args);
        }
    }
}

/// A request's own line (its log and nginx's request context).
impl Sink for &Request {
    fn line(self, level: u32, args: fmt::Arguments) {
        if level >= NGX_LOG_DEBUG {
            ngx::ngx_log_debug!(mask: ngx::log::DebugMask::Http, self.log(), "{}", args);
        } else {
            self.log().line(level, args);
        }
    }
}

impl Sink for &mut Request {
    fn line(self, level: u32, args: fmt::Arguments) {
        (&*self).line(level, args)
    }
}

/// A line about the directive being parsed (nginx appends ` in FILE:LINE`).
pub struct Parsing(pub *mut ngx_conf_t);

impl Sink for Parsing {
    fn line(self, level: u32, args: fmt::Arguments) {
        if self.0.is_null() {
            return;
        }
        let cf = self.0;
        ngx::ngx_conf_log_error!(level as ngx_uint_t, cf, "{}", args);
    }
}

/// A line of the configuration being merged (no directive position by then).
pub struct Merging(pub *mut ngx_conf_t);

impl Sink for Merging {
    fn line(self, level: u32, args: fmt::Arguments) {
        // SAFETY: null, or the configuration being merged, whose log is valid.
        if let Some(cf) = unsafe { self.0.as_ref() } {
            cf.log.line(level, args)
        }
    }
}

/// A line about a scan of the request: nginx's request context (`while scanning request`, or
/// `while scanning response` for a download's scan), then `scanner: "..."`.
pub struct Scan<'a> {
    pub r: &'a mut Request,
    /// The scanner as configured.
    pub scanner: &'a str,
    pub response: bool,
}

/// A line about the scan of `r` by `scanner`.
pub fn scan<'a>(r: &'a mut Request, scanner: &'a str) -> Scan<'a> {
    Scan {
        r,
        scanner,
        response: false,
    }
}

/// A line about the scan of `r`'s response by `scanner`.
pub fn response<'a>(r: &'a mut Request, scanner: &'a str) -> Scan<'a> {
    Scan {
        r,
        scanner,
        response: true,
    }
}

impl Sink for Scan<'_> {
    fn line(self, level: u32, args: fmt::Arguments) {
        if level >= NGX_LOG_DEBUG {
            return (&*self.r).line(level, args);
        }
        let action = if self.response {
            c"scanning response"
        } else {
            c"scanning request"
        };
        with_context(self.r, level, action, self.scanner, args)
    }
}

/// Writes a line that came from the scanner side at its level.
pub fn at_level(log: *mut ngx_log_t, level: u32, line: &str) {
    log.line(level, format_args!("{line}"))
}

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

fn with_context(
    r: &mut Request,
    level: u32,
    action: &'static CStr,
    scanner: &str,
    args: fmt::Arguments,
) {
    let log = r.log();
    // SAFETY: the connection's log lives as long as the connection, which outlives its
    // requests.
    let Some(log_ref) = (unsafe { log.as_mut() }) else {
        return;
    };
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
    ngx::ngx_log_error!(level as ngx_uint_t, log, "{}", args);
    r.as_mut().log_handler = prev;
    log_ref.action = saved;
    SCANNER.with(|s| *s.borrow_mut() = None);
}

#[macro_export]
macro_rules! emerg {
    ($to:expr, $($arg:tt)+) => {
        $crate::ngx_ext::log::Sink::line($to, ngx::ffi::NGX_LOG_EMERG, format_args!($($arg)+))
    };
}

#[macro_export]
macro_rules! alert {
    ($to:expr, $($arg:tt)+) => {
        $crate::ngx_ext::log::Sink::line($to, ngx::ffi::NGX_LOG_ALERT, format_args!($($arg)+))
    };
}

#[macro_export]
macro_rules! error {
    ($to:expr, $($arg:tt)+) => {
        $crate::ngx_ext::log::Sink::line($to, ngx::ffi::NGX_LOG_ERR, format_args!($($arg)+))
    };
}

#[macro_export]
macro_rules! warn {
    ($to:expr, $($arg:tt)+) => {
        $crate::ngx_ext::log::Sink::line($to, ngx::ffi::NGX_LOG_WARN, format_args!($($arg)+))
    };
}

#[macro_export]
macro_rules! notice {
    ($to:expr, $($arg:tt)+) => {
        $crate::ngx_ext::log::Sink::line($to, ngx::ffi::NGX_LOG_NOTICE, format_args!($($arg)+))
    };
}

#[macro_export]
macro_rules! info {
    ($to:expr, $($arg:tt)+) => {
        $crate::ngx_ext::log::Sink::line($to, ngx::ffi::NGX_LOG_INFO, format_args!($($arg)+))
    };
}

#[macro_export]
macro_rules! debug {
    ($to:expr, $($arg:tt)+) => {
        $crate::ngx_ext::log::Sink::line($to, ngx::ffi::NGX_LOG_DEBUG, format_args!($($arg)+))
    };
}

/// A line at a level known only when it is written (`NGX_LOG_*`).
#[macro_export]
macro_rules! log_at {
    ($to:expr, $level:expr, $($arg:tt)+) => {
        $crate::ngx_ext::log::Sink::line($to, $level, format_args!($($arg)+))
    };
}
