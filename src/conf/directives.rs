//! The handlers of the scanning directives: each checks its value and writes it to the
//! level's [`LocConf`](super::LocConf). TLS directives are in `ssl`.

use std::ffi::{c_char, c_void};

use bytes::Bytes;
use ngx::ffi::*;
use ometascan_core::methods::MethodSet;
use ometascan_core::upstream::health::HealthParams;
use ometascan_core::ScannerUrl;

use super::{lcf, Pass, PassTarget, SetHeader};
use crate::ngx_ext::conf::{
    conf_error, duplicate_check, parse_on_off, parse_time, position, text, Directive, CONF_OK,
};
use crate::ngx_ext::log::Parsing;
use crate::ngx_ext::value::ComplexValue;

/// `ometascan_allow_bad_request_traffic on | off`.
pub unsafe extern "C" fn set_allow_bad_request(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx calls a handler with the configuration being parsed and the command,
    // valid for the call, and (NGX_HTTP_LOC_CONF_OFFSET) this level's LocConf.
    let (d, c) = unsafe { (Directive::new(cf, cmd), lcf(conf)) };
    duplicate_check!(d, c.allow_bad_request);
    match parse_on_off(&d.args[1]) {
        Some(v) => {
            c.allow_bad_request = Some(v);
            c.allow_bad_request_at = Some(unsafe { position(cf) });
            CONF_OK
        }
        None => d.invalid(&d.args[1], "it must be \"on\" or \"off\""),
    }
}

/// `ometascan_health_check [interval=time] [fails=n] [passes=n] [uri=path] [timeout=time]`.
pub unsafe extern "C" fn set_health_check(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx calls a handler with the configuration being parsed and the command,
    // valid for the call, and (NGX_HTTP_LOC_CONF_OFFSET) this level's LocConf.
    let (d, c) = unsafe { (Directive::new(cf, cmd), lcf(conf)) };
    duplicate_check!(d, c.health_check);
    let mut h = HealthParams::default();
    for v in &d.args[1..] {
        let item = text(v);
        let Some((key, value)) = item.split_once('=') else {
            return d.invalid(v, "parameters are key=value");
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
            return d.invalid(v, "");
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
    // SAFETY: nginx calls a handler with the configuration being parsed and the command,
    // valid for the call, and (NGX_HTTP_LOC_CONF_OFFSET) this level's LocConf.
    let (d, c) = unsafe { (Directive::new(cf, cmd), lcf(conf)) };
    duplicate_check!(d, c.pass);
    // SAFETY: cf is the configuration nginx passed to the handler.
    match unsafe { pass_value(cf, &d) } {
        Ok(p) => c.pass = Some(p),
        Err(e) => return e,
    }
    CONF_OK
}

/// `ometascan_response_pass URL | off`.
pub unsafe extern "C" fn set_response_pass(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: as in set_pass.
    let (d, c) = unsafe { (Directive::new(cf, cmd), lcf(conf)) };
    duplicate_check!(d, c.response_pass);
    // SAFETY: cf is the configuration nginx passed to the handler.
    match unsafe { pass_value(cf, &d) } {
        Ok(p) => c.response_pass = Some(p),
        Err(e) => return e,
    }
    CONF_OK
}

/// A scanner URL (or `off`), its host handed to nginx's upstream machinery as `proxy_pass`
/// does: an `upstream {}` block of that name is used as is; otherwise nginx resolves the host
/// when the configuration is initialised and fails with "host not found" if it cannot.
/// `Err` is the handler's answer.
///
/// # Safety
/// `cf` is the configuration being parsed, `d` its directive.
unsafe fn pass_value(cf: *mut ngx_conf_t, d: &Directive) -> Result<Pass, *mut c_char> {
    let raw = text(&d.args[1]);
    if raw == "off" {
        return Ok(Pass::Off);
    }
    let url = ScannerUrl::parse(&raw).map_err(|e| d.invalid(&d.args[1], &e.to_string()))?;
    let host = if url.host.contains(':') {
        format!("[{}]", url.host)
    } else {
        url.host.clone()
    };
    let authority = match &url.socket {
        // nginx's own spelling of a local socket, as in `proxy_pass http://unix:/path`.
        Some(path) => format!("unix:{path}"),
        None if url.explicit_port => format!("{host}:{}", url.port),
        None => host,
    };
    // SAFETY: a zeroed ngx_url_t is the documented starting state (ngx_memzero in nginx).
    let mut u: ngx_url_t = unsafe { std::mem::zeroed() };
    // SAFETY: the pool outlives the configuration; the string is copied into it.
    let Some(s) = (unsafe { ngx_str_t::from_bytes((*cf).pool, authority.as_bytes()) }) else {
        return Err(conf_error());
    };
    u.url = s;
    u.default_port = url.scheme.default_port();
    u.set_no_resolve(1);
    // SAFETY: cf is the http-level configuration context nginx gives the directive.
    let upstream = unsafe { ngx_http_upstream_add(cf, &mut u, 0) };
    if upstream.is_null() {
        return Err(conf_error());
    }
    // SAFETY: cf is inside the http block (the directive's levels).
    let Some(main) = (unsafe { super::main::configuring(cf) }) else {
        return Err(conf_error());
    };
    Ok(Pass::Scan(Box::new(PassTarget {
        url,
        group: main.group_id(upstream),
        shown: raw,
        upstream,
    })))
}

/// `ometascan_methods METHOD ... [any_with_body]`.
pub unsafe extern "C" fn set_methods(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx calls a handler with the configuration being parsed and the command,
    // valid for the call, and (NGX_HTTP_LOC_CONF_OFFSET) this level's LocConf.
    let (d, c) = unsafe { (Directive::new(cf, cmd), lcf(conf)) };
    duplicate_check!(d, c.methods);
    match MethodSet::parse(d.args[1..].iter().map(|v| v.as_bytes())) {
        Ok(set) => c.methods = Some(set),
        Err((word, e)) => {
            let word = ngx_str_t {
                len: word.len(),
                data: word.as_ptr() as *mut u8,
            };
            return d.invalid(&word, &e.to_string());
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
    // SAFETY: nginx calls a handler with the configuration being parsed and the command,
    // valid for the call, and (NGX_HTTP_LOC_CONF_OFFSET) this level's LocConf.
    let (d, c) = unsafe { (Directive::new(cf, cmd), lcf(conf)) };
    let field = d.args[1].as_bytes();
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if field.is_empty() || !field.iter().all(|&b| token(b)) {
        return d.invalid(&d.args[1], "it is not a valid header name");
    }
    // SAFETY: cf is the configuration nginx passed to the handler.
    let Some(cv) = (unsafe { ComplexValue::compile(cf, &d.args[2]) }) else {
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
    // SAFETY: nginx calls a handler with the configuration being parsed and the command,
    // valid for the call.
    let d = unsafe { Directive::new(cf, cmd) };
    let mut v = d.args[1];
    // SAFETY: ngx_parse_offset only reads the string.
    if unsafe { ngx_parse_offset(&mut v) } < 0 {
        return d.invalid(&d.args[1], "");
    }
    crate::warn!(
        Parsing(cf),
        "the \"{}\" directive is deprecated and has no effect",
        d.name
    );
    CONF_OK
}
