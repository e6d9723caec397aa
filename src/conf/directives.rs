//! The handlers of the scanning directives: each checks its value and writes it to the
//! level's [`LocConf`](super::LocConf). TLS directives are in `ssl`.

use std::ffi::{c_char, c_void};
use std::time::Duration;

use bytes::Bytes;
use ngx::ffi::*;
use ngx::ngx_conf_log_error;
use ometascan_core::methods::MethodSet;
use ometascan_core::upstream::health::HealthParams;
use ometascan_core::ScannerUrl;

use super::{lcf, Pass, PassTarget, SetHeader};
use crate::ngx_ext::conf::{
    args, compile_complex, conf_error, duplicate_check, fail, invalid, name_of, parse_on_off,
    parse_time, position, text, CONF_OK,
};

/// Above this, a connect timeout is pointless: connections fail earlier anyway.
const CONNECT_TIMEOUT_ADVICE: Duration = Duration::from_secs(75);

/// Defines the handler of an `on | off` directive writing `field`.
macro_rules! flag_handler {
    ($fn:ident, $field:ident) => {
        /// Handler of an `on | off` directive.
        pub unsafe extern "C" fn $fn(
            cf: *mut ngx_conf_t,
            cmd: *mut ngx_command_t,
            conf: *mut c_void,
        ) -> *mut c_char {
            // SAFETY: called by nginx with its own cf/cmd and our LocConf.
            let (a, c) = unsafe { (args(cf), lcf(conf)) };
            let name = name_of(cmd);
            duplicate_check!(cf, c.$field, name);
            match parse_on_off(&a[1]) {
                Some(v) => {
                    c.$field = Some(v);
                    CONF_OK
                }
                // SAFETY: cf is valid during the handler.
                None => unsafe { fail(cf, &invalid(&a[1], &name, "it must be \"on\" or \"off\"")) },
            }
        }
    };
}

pub(super) use flag_handler;

flag_handler!(set_x_forwarded_for, x_forwarded_for);
flag_handler!(set_intercept_errors, intercept_errors);
flag_handler!(set_pre_cache, pre_cache);
flag_handler!(set_log_blocked, log_blocked);
flag_handler!(set_multipart, multipart);

/// `ometascan_allow_bad_request_traffic on | off`.
pub unsafe extern "C" fn set_allow_bad_request(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: called by nginx with its own cf/cmd and our LocConf.
    let (a, c) = unsafe { (args(cf), lcf(conf)) };
    let name = name_of(cmd);
    duplicate_check!(cf, c.allow_bad_request, name);
    match parse_on_off(&a[1]) {
        Some(v) => {
            c.allow_bad_request = Some(v);
            // SAFETY: cf is valid during the handler.
            c.allow_bad_request_at = Some(unsafe { position(cf) });
            CONF_OK
        }
        // SAFETY: cf is valid during the handler.
        None => unsafe { fail(cf, &invalid(&a[1], &name, "it must be \"on\" or \"off\"")) },
    }
}

macro_rules! time_handler {
    ($fn:ident, $field:ident, $advice:expr) => {
        /// Handler of a time directive (nginx time syntax).
        pub unsafe extern "C" fn $fn(
            cf: *mut ngx_conf_t,
            cmd: *mut ngx_command_t,
            conf: *mut c_void,
        ) -> *mut c_char {
            // SAFETY: called by nginx with its own cf/cmd and our LocConf.
            let (a, c) = unsafe { (args(cf), lcf(conf)) };
            let name = name_of(cmd);
            duplicate_check!(cf, c.$field, name);
            let Some(d) = parse_time(&a[1]) else {
                let mut v = a[1];
                // SAFETY: ngx_parse_time only reads the string.
                let zero = unsafe { ngx_parse_time(&mut v, 0) } == 0;
                let why = if zero {
                    "it must be greater than zero"
                } else {
                    ""
                };
                // SAFETY: cf is valid during the handler.
                return unsafe { fail(cf, &invalid(&a[1], &name, why)) };
            };
            let advice: Option<std::time::Duration> = $advice;
            if let Some(limit) = advice {
                if d > limit {
                    ngx::ngx_conf_log_error!(
                        NGX_LOG_WARN,
                        cf,
                        "\"{}\" value \"{}\" is above {}s; connections usually fail earlier",
                        name,
                        text(&a[1]),
                        limit.as_secs()
                    );
                }
            }
            c.$field = Some(d);
            CONF_OK
        }
    };
}

pub(super) use time_handler;

time_handler!(
    set_connect_timeout,
    connect_timeout,
    Some(CONNECT_TIMEOUT_ADVICE)
);
time_handler!(set_send_timeout, send_timeout, None);
time_handler!(set_read_timeout, read_timeout, None);
time_handler!(set_keepalive_timeout, keepalive_timeout, None);

/// `ometascan_keepalive number`: idle connections kept per scanner server (0: none).
pub unsafe extern "C" fn set_keepalive(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: called by nginx with its own cf/cmd and our LocConf.
    let (a, c) = unsafe { (args(cf), lcf(conf)) };
    let name = name_of(cmd);
    duplicate_check!(cf, c.keepalive, name);
    match text(&a[1]).parse::<usize>() {
        Ok(n) if n <= 10_000 => {
            c.keepalive = Some(n);
            CONF_OK
        }
        // SAFETY: cf is valid during the handler.
        _ => unsafe {
            fail(
                cf,
                &invalid(&a[1], &name, "it must be a number from 0 to 10000"),
            )
        },
    }
}

/// `ometascan_health_check [interval=time] [fails=n] [passes=n] [uri=path] [timeout=time]`.
pub unsafe extern "C" fn set_health_check(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: called by nginx with its own cf/cmd and our LocConf.
    let (a, c) = unsafe { (args(cf), lcf(conf)) };
    let name = name_of(cmd);
    duplicate_check!(cf, c.health_check, name);
    let mut h = HealthParams::default();
    for v in &a[1..] {
        let item = text(v);
        let Some((key, value)) = item.split_once('=') else {
            // SAFETY: cf is valid during the handler.
            return unsafe { fail(cf, &invalid(v, &name, "parameters are key=value")) };
        };
        let time = |value: &str| {
            parse_time(&ngx_str_t {
                len: value.len(),
                data: value.as_ptr() as *mut u8,
            })
        };
        let ok = match key {
            "interval" => time(value).map(|d| h.interval = d).is_some(),
            "timeout" => time(value).map(|d| h.timeout = d).is_some(),
            "fails" => value
                .parse::<u32>()
                .ok()
                .filter(|&n| n > 0)
                .map(|n| h.fails = n)
                .is_some(),
            "passes" => value
                .parse::<u32>()
                .ok()
                .filter(|&n| n > 0)
                .map(|n| h.passes = n)
                .is_some(),
            "uri" => {
                let ok = value.starts_with('/') && !value.bytes().any(|b| b <= b' ');
                if ok {
                    h.uri = value.to_string();
                }
                ok
            }
            _ => false,
        };
        if !ok {
            // SAFETY: cf is valid during the handler.
            return unsafe { fail(cf, &invalid(v, &name, "")) };
        }
    }
    c.health_check = Some(h);
    CONF_OK
}

/// `ometascan_pass URL | off`.
pub unsafe extern "C" fn set_pass(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: called by nginx with its own cf/cmd and our LocConf.
    let (a, c) = unsafe { (args(cf), lcf(conf)) };
    let name = name_of(cmd);
    duplicate_check!(cf, c.pass, name);
    let raw = text(&a[1]);
    if raw == "off" {
        c.pass = Some(Pass::Off);
        return CONF_OK;
    }
    let url = match ScannerUrl::parse(&raw) {
        Ok(u) => u,
        // SAFETY: cf is valid during the handler.
        Err(e) => return unsafe { fail(cf, &invalid(&a[1], &name, &e.to_string())) },
    };
    // Hand the host to nginx's upstream machinery, as proxy_pass does: an upstream{} block of
    // that name is used as is; otherwise nginx resolves the host when the configuration is
    // initialised and fails with "host not found" if it cannot.
    let host = if url.host.contains(':') {
        format!("[{}]", url.host)
    } else {
        url.host.clone()
    };
    let authority = if url.explicit_port {
        format!("{host}:{}", url.port)
    } else {
        host
    };
    // SAFETY: a zeroed ngx_url_t is the documented starting state (ngx_memzero in nginx).
    let mut u: ngx_url_t = unsafe { std::mem::zeroed() };
    // SAFETY: the pool outlives the configuration; the string is copied into it.
    let Some(s) = (unsafe { ngx_str_t::from_bytes((*cf).pool, authority.as_bytes()) }) else {
        return conf_error();
    };
    u.url = s;
    u.default_port = url.scheme.default_port();
    u.set_no_resolve(1);
    // SAFETY: cf is the http-level configuration context nginx gives the directive.
    let upstream = unsafe { ngx_http_upstream_add(cf, &mut u, 0) };
    if upstream.is_null() {
        return conf_error();
    }
    c.pass = Some(Pass::Scan(Box::new(PassTarget {
        url,
        shown: raw,
        upstream,
    })));
    CONF_OK
}

/// `ometascan_methods METHOD ... [any_with_body]`.
pub unsafe extern "C" fn set_methods(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: called by nginx with its own cf/cmd and our LocConf.
    let (a, c) = unsafe { (args(cf), lcf(conf)) };
    let name = name_of(cmd);
    duplicate_check!(cf, c.methods, name);
    match MethodSet::parse(a[1..].iter().map(|v| v.as_bytes())) {
        Ok(set) => c.methods = Some(set),
        Err((word, e)) => {
            let word = ngx_str_t {
                len: word.len(),
                data: word.as_ptr() as *mut u8,
            };
            // SAFETY: cf is valid during the handler.
            return unsafe { fail(cf, &invalid(&word, &name, &e.to_string())) };
        }
    }
    CONF_OK
}

/// `ometascan_set_header field value`.
pub unsafe extern "C" fn set_set_header(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: called by nginx with its own cf/cmd and our LocConf.
    let (a, c) = unsafe { (args(cf), lcf(conf)) };
    let name = name_of(cmd);
    let field = a[1].as_bytes();
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if field.is_empty() || !field.iter().all(|&b| token(b)) {
        // SAFETY: cf is valid during the handler.
        return unsafe { fail(cf, &invalid(&a[1], &name, "it is not a valid header name")) };
    }
    // SAFETY: cf is the configuration nginx passed to the handler.
    let Some(cv) = (unsafe { compile_complex(cf, &a[2]) }) else {
        return conf_error();
    };
    c.set_headers.get_or_insert_with(Vec::new).push(SetHeader {
        name: Bytes::copy_from_slice(field),
        value: cv,
    });
    CONF_OK
}

/// `ometascan_pre_cache_size size` (deprecated, no effect).
pub unsafe extern "C" fn set_pre_cache_size(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    _conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: called by nginx with its own cf/cmd.
    let a = unsafe { args(cf) };
    let name = name_of(cmd);
    let mut v = a[1];
    // SAFETY: ngx_parse_offset only reads the string.
    if unsafe { ngx_parse_offset(&mut v) } < 0 {
        // SAFETY: cf is valid during the handler.
        return unsafe { fail(cf, &invalid(&a[1], &name, "")) };
    }
    ngx_conf_log_error!(
        NGX_LOG_WARN,
        cf,
        "the \"{}\" directive is deprecated and has no effect",
        name
    );
    CONF_OK
}
