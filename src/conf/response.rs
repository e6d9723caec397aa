//! The handlers of the response-scanning directives that take more than `on | off`: which
//! statuses are scanned, the size cap, the bypass values.

use std::ffi::{c_char, c_void};

use ngx::ffi::*;

use super::policy::{bypass_values, size_and_over};
use super::{lcf, ResponseStatuses};
use crate::ngx_ext::conf::{conf_error, duplicate_check, text, Directive, CONF_OK};

/// `ometascan_response_statuses any | code ...` (200 to 599).
pub unsafe extern "C" fn set_response_statuses(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx calls a handler with the configuration being parsed and the command,
    // valid for the call, and (NGX_HTTP_LOC_CONF_OFFSET) this level's LocConf.
    let (d, c) = unsafe { (Directive::new(cf, cmd), lcf(conf)) };
    duplicate_check!(d, c.response_statuses);
    if d.args.len() == 2 && text(&d.args[1]) == "any" {
        c.response_statuses = Some(ResponseStatuses::Any);
        return CONF_OK;
    }
    let mut codes = Vec::new();
    for v in &d.args[1..] {
        match text(v).parse::<u16>() {
            Ok(code) if (200..600).contains(&code) && !codes.contains(&code) => codes.push(code),
            _ => {
                return d.invalid(
                    v,
                    "it must be \"any\" alone or statuses from 200 to 599, each named once",
                )
            }
        }
    }
    c.response_statuses = Some(ResponseStatuses::Listed(codes));
    CONF_OK
}

/// `ometascan_response_max_size size [over=reject|pass]`.
pub unsafe extern "C" fn set_response_max_size(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: as in set_response_statuses.
    let (d, c) = unsafe { (Directive::new(cf, cmd), lcf(conf)) };
    duplicate_check!(d, c.response_max_size);
    match size_and_over(&d) {
        Ok(v) => c.response_max_size = Some(v),
        Err(e) => return e,
    }
    CONF_OK
}

/// `ometascan_response_bypass string ...`: evaluated when the response's header is known.
pub unsafe extern "C" fn set_response_bypass(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: as in set_response_statuses.
    let (d, c) = unsafe { (Directive::new(cf, cmd), lcf(conf)) };
    duplicate_check!(d, c.response_bypass);
    // SAFETY: cf is the configuration nginx passed to the handler.
    match unsafe { bypass_values(cf, &d) } {
        Some(values) => c.response_bypass = Some(values),
        None => return conf_error(),
    }
    CONF_OK
}
