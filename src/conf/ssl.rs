//! The handlers of the `ometascan_ssl_*` directives.

use std::ffi::{c_char, c_void};

use ngx::ffi::*;
use ngx::ngx_conf_log_error;
use ometascan_core::net::tls;

use super::directives::flag_handler;
use super::lcf;
use crate::ngx_ext::conf::{
    args, conf_error, duplicate_check, fail, invalid, name_of, parse_on_off, text, CONF_OK,
};

flag_handler!(set_ssl_verify, ssl_verify);
flag_handler!(set_ssl_session_reuse, ssl_session_reuse);
flag_handler!(set_ssl_server_name, ssl_server_name);

/// `ometascan_ssl_trusted_certificate file`.
pub unsafe extern "C" fn set_ssl_trusted_certificate(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: called by nginx with its own cf/cmd and our LocConf.
    let (a, c) = unsafe { (args(cf), lcf(conf)) };
    let name = name_of(cmd);
    duplicate_check!(cf, c.ssl_trusted_certificate, name);
    let mut path = a[1];
    // SAFETY: resolves a relative name against the prefix, allocating from the cycle pool.
    if unsafe { ngx_conf_full_name((*cf).cycle, &mut path, 1) } != NGX_OK as ngx_int_t {
        return conf_error();
    }
    let full = text(&path);
    if let Err(e) = tls::load_ca_file(std::path::Path::new(&full)) {
        // SAFETY: cf is valid during the handler.
        return unsafe { fail(cf, &format!("\"{name}\" directive: {e}")) };
    }
    c.ssl_trusted_certificate = Some(full);
    CONF_OK
}

/// `ometascan_ssl_verify_depth number`.
pub unsafe extern "C" fn set_ssl_verify_depth(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: called by nginx with its own cf/cmd and our LocConf.
    let (a, c) = unsafe { (args(cf), lcf(conf)) };
    let name = name_of(cmd);
    duplicate_check!(cf, c.ssl_verify_depth, name);
    match text(&a[1]).parse::<u32>() {
        Ok(n) if (1..=100).contains(&n) => {
            c.ssl_verify_depth = Some(n);
            CONF_OK
        }
        // SAFETY: cf is valid during the handler.
        _ => unsafe {
            fail(
                cf,
                &invalid(&a[1], &name, "it must be a number from 1 to 100"),
            )
        },
    }
}

/// `ometascan_ssl_protocols [SSLv3] [TLSv1] [TLSv1.1] [TLSv1.2] [TLSv1.3]`.
pub unsafe extern "C" fn set_ssl_protocols(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: called by nginx with its own cf/cmd and our LocConf.
    let (a, c) = unsafe { (args(cf), lcf(conf)) };
    let name = name_of(cmd);
    duplicate_check!(cf, c.ssl_protocols, name);
    let names: Vec<String> = a[1..].iter().map(text).collect();
    match tls::parse_protocols(&names) {
        Ok(p) => {
            for ignored in &p.ignored {
                ngx_conf_log_error!(
                    NGX_LOG_WARN,
                    cf,
                    "\"{}\": {} is not supported by the TLS library and is ignored",
                    name,
                    ignored
                );
            }
            c.ssl_protocols = Some(p.versions);
            CONF_OK
        }
        Err(tls::TlsConfigError::UnknownProtocol(p)) => {
            let bad = ngx_str_t {
                len: p.len(),
                data: p.as_ptr() as *mut u8,
            };
            let why = "it must be SSLv3, TLSv1, TLSv1.1, TLSv1.2 or TLSv1.3";
            // SAFETY: cf is valid during the handler.
            unsafe { fail(cf, &invalid(&bad, &name, why)) }
        }
        // SAFETY: cf is valid during the handler.
        Err(e) => unsafe { fail(cf, &format!("\"{name}\" directive: {e}")) },
    }
}

/// `ometascan_ssl_ciphers ciphers`.
pub unsafe extern "C" fn set_ssl_ciphers(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: called by nginx with its own cf/cmd and our LocConf.
    let (a, c) = unsafe { (args(cf), lcf(conf)) };
    let name = name_of(cmd);
    duplicate_check!(cf, c.ssl_ciphers, name);
    match tls::select_ciphers(&text(&a[1])) {
        Ok(s) => {
            c.ssl_ciphers = Some(s);
            CONF_OK
        }
        // SAFETY: cf is valid during the handler.
        Err(e) => unsafe { fail(cf, &invalid(&a[1], &name, &e.to_string())) },
    }
}

/// `ometascan_ssl_name name`.
pub unsafe extern "C" fn set_ssl_name(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: called by nginx with its own cf/cmd and our LocConf.
    let (a, c) = unsafe { (args(cf), lcf(conf)) };
    let name = name_of(cmd);
    duplicate_check!(cf, c.ssl_name, name);
    let v = text(&a[1]);
    let ok = !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'));
    if !ok {
        // SAFETY: cf is valid during the handler.
        return unsafe { fail(cf, &invalid(&a[1], &name, "it must be a host name")) };
    }
    c.ssl_name = Some(v);
    CONF_OK
}
