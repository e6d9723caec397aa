//! The handlers of the `ometascan_ssl_*` directives.

use std::ffi::{c_char, c_void};

use ngx::ffi::*;
use ometascan_core::net::tls;

use super::lcf;
use crate::ngx_ext::conf::{conf_error, duplicate_check, text, Directive, CONF_OK};

/// `ometascan_ssl_trusted_certificate file`.
pub unsafe extern "C" fn set_ssl_trusted_certificate(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx calls a handler with the configuration being parsed and the command,
    // valid for the call, and (NGX_HTTP_LOC_CONF_OFFSET) this level's LocConf.
    let (d, c) = unsafe { (Directive::new(cf, cmd), lcf(conf)) };
    duplicate_check!(d, c.ssl_trusted_certificate);
    let mut path = d.args[1];
    // SAFETY: resolves a relative name against the prefix, allocating from the cycle pool.
    if unsafe { ngx_conf_full_name((*cf).cycle, &mut path, 1) } != NGX_OK as ngx_int_t {
        return conf_error();
    }
    let full = text(&path);
    if let Err(e) = tls::load_ca_file(std::path::Path::new(&full)) {
        return d.fail(&format!("\"{}\" directive: {e}", d.name));
    }
    c.ssl_trusted_certificate = Some(full);
    CONF_OK
}

/// `ometascan_ssl_protocols [SSLv3] [TLSv1] [TLSv1.1] [TLSv1.2] [TLSv1.3]`.
pub unsafe extern "C" fn set_ssl_protocols(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx calls a handler with the configuration being parsed and the command,
    // valid for the call, and (NGX_HTTP_LOC_CONF_OFFSET) this level's LocConf.
    let (d, c) = unsafe { (Directive::new(cf, cmd), lcf(conf)) };
    duplicate_check!(d, c.ssl_protocols);
    let names: Vec<String> = d.args[1..].iter().map(text).collect();
    match tls::parse_protocols(&names) {
        Ok(p) => {
            for ignored in &p.ignored {
                crate::warn!(
                    crate::ngx_ext::log::Parsing(cf),
                    "\"{}\": {} is not supported by the TLS library and is ignored",
                    d.name,
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
            d.invalid(&bad, why)
        }
        Err(e) => d.fail(&format!("\"{}\" directive: {e}", d.name)),
    }
}

/// `ometascan_ssl_ciphers ciphers`.
pub unsafe extern "C" fn set_ssl_ciphers(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx calls a handler with the configuration being parsed and the command,
    // valid for the call, and (NGX_HTTP_LOC_CONF_OFFSET) this level's LocConf.
    let (d, c) = unsafe { (Directive::new(cf, cmd), lcf(conf)) };
    duplicate_check!(d, c.ssl_ciphers);
    match tls::select_ciphers(&text(&d.args[1])) {
        Ok(s) => {
            c.ssl_ciphers = Some(s);
            CONF_OK
        }
        Err(e) => d.invalid(&d.args[1], &e.to_string()),
    }
}

/// `ometascan_ssl_name name`.
pub unsafe extern "C" fn set_ssl_name(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx calls a handler with the configuration being parsed and the command,
    // valid for the call, and (NGX_HTTP_LOC_CONF_OFFSET) this level's LocConf.
    let (d, c) = unsafe { (Directive::new(cf, cmd), lcf(conf)) };
    duplicate_check!(d, c.ssl_name);
    let v = text(&d.args[1]);
    let ok = !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'));
    if !ok {
        return d.invalid(&d.args[1], "it must be a host name");
    }
    c.ssl_name = Some(v);
    CONF_OK
}
