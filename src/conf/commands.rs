//! The directive table nginx reads while parsing the configuration, in the README's order.

use std::ffi::{c_char, c_void, CStr};
use std::ptr;

use ngx::ffi::*;

use super::cache::*;
use super::directives::*;
use super::policy::*;
use super::ssl::*;

type Handler =
    unsafe extern "C" fn(*mut ngx_conf_t, *mut ngx_command_t, *mut c_void) -> *mut c_char;

const ANY_LEVEL: u32 = NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF;

const fn cmd(name: &'static CStr, args: u32, set: Handler) -> ngx_command_t {
    ngx_command_t {
        name: ngx_str_t {
            len: name.to_bytes().len(),
            data: name.as_ptr() as *mut u8,
        },
        type_: (ANY_LEVEL | args) as ngx_uint_t,
        set: Some(set),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: 0,
        post: ptr::null_mut(),
    }
}

/// The directive table nginx reads while parsing the configuration.
pub static mut COMMANDS: [ngx_command_t; 36] = [
    cmd(c"ometascan_pass", NGX_CONF_TAKE1, set_pass),
    cmd(c"ometascan_methods", NGX_CONF_1MORE, set_methods),
    cmd(
        c"ometascan_connect_timeout",
        NGX_CONF_TAKE1,
        set_connect_timeout,
    ),
    cmd(c"ometascan_send_timeout", NGX_CONF_TAKE1, set_send_timeout),
    cmd(c"ometascan_read_timeout", NGX_CONF_TAKE1, set_read_timeout),
    cmd(
        c"ometascan_x_forwarded_for",
        NGX_CONF_FLAG,
        set_x_forwarded_for,
    ),
    cmd(
        c"ometascan_intercept_errors",
        NGX_CONF_FLAG,
        set_intercept_errors,
    ),
    cmd(
        c"ometascan_allow_bad_request_traffic",
        NGX_CONF_FLAG,
        set_allow_bad_request,
    ),
    cmd(c"ometascan_set_header", NGX_CONF_TAKE2, set_set_header),
    cmd(c"ometascan_pre_cache", NGX_CONF_FLAG, set_pre_cache),
    cmd(
        c"ometascan_pre_cache_size",
        NGX_CONF_TAKE1,
        set_pre_cache_size,
    ),
    cmd(
        c"ometascan_ssl_trusted_certificate",
        NGX_CONF_TAKE1,
        set_ssl_trusted_certificate,
    ),
    cmd(c"ometascan_ssl_verify", NGX_CONF_FLAG, set_ssl_verify),
    cmd(
        c"ometascan_ssl_verify_depth",
        NGX_CONF_TAKE1,
        set_ssl_verify_depth,
    ),
    cmd(
        c"ometascan_ssl_protocols",
        NGX_CONF_1MORE,
        set_ssl_protocols,
    ),
    cmd(c"ometascan_ssl_ciphers", NGX_CONF_TAKE1, set_ssl_ciphers),
    cmd(
        c"ometascan_ssl_session_reuse",
        NGX_CONF_FLAG,
        set_ssl_session_reuse,
    ),
    cmd(c"ometascan_ssl_name", NGX_CONF_TAKE1, set_ssl_name),
    cmd(
        c"ometascan_ssl_server_name",
        NGX_CONF_FLAG,
        set_ssl_server_name,
    ),
    ngx_command_t {
        name: ngx_str_t {
            len: 16,
            data: c"ometascan_status".as_ptr() as *mut u8,
        },
        type_: (NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS) as ngx_uint_t,
        set: Some(crate::status::set_status),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: 0,
        post: ptr::null_mut(),
    },
    cmd(c"ometascan_log_blocked", NGX_CONF_FLAG, set_log_blocked),
    cmd(c"ometascan_keepalive", NGX_CONF_TAKE1, set_keepalive),
    cmd(
        c"ometascan_keepalive_timeout",
        NGX_CONF_TAKE1,
        set_keepalive_timeout,
    ),
    cmd(c"ometascan_health_check", NGX_CONF_ANY, set_health_check),
    cmd(c"ometascan_bypass", NGX_CONF_1MORE, set_bypass),
    cmd(c"ometascan_max_size", NGX_CONF_TAKE12, set_max_size),
    cmd(c"ometascan_on_error", NGX_CONF_TAKE1, set_on_error),
    cmd(c"ometascan_max_scans", NGX_CONF_TAKE12, set_max_scans),
    cmd(c"ometascan_multipart", NGX_CONF_FLAG, set_multipart),
    cmd(c"ometascan_body_limits", NGX_CONF_1MORE, set_body_limits),
    ngx_command_t {
        type_: (NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1) as ngx_uint_t,
        ..cmd(
            c"ometascan_cache_zone",
            NGX_CONF_TAKE1,
            crate::cache::zone::set_cache_zone,
        )
    },
    cmd(c"ometascan_cache", NGX_CONF_TAKE1, set_cache),
    cmd(c"ometascan_cache_valid", NGX_CONF_TAKE1, set_cache_valid),
    cmd(
        c"ometascan_cache_revalidate",
        NGX_CONF_TAKE1,
        set_cache_revalidate,
    ),
    cmd(c"ometascan_cache_redis", NGX_CONF_TAKE12, set_cache_redis),
    ngx_command_t::empty(),
];
