//! The verdict cache's directives of a location: which zone (`ometascan_cache`), how long a
//! verdict stays valid (`ometascan_cache_valid`), how old an ISTag may be
//! (`ometascan_cache_revalidate`) and the Redis level (`ometascan_cache_redis`). The zones
//! themselves are declared with `ometascan_cache_zone` ([`crate::cache::zone`]).

use std::ffi::{c_char, c_void};
use std::net::ToSocketAddrs;

use ngx::ffi::*;
use ometascan_core::cache::{RedisSpec, DEFAULT_REDIS_TIMEOUT};

use super::directives::time_handler;
use super::{lcf, CacheZone};
use crate::ngx_ext::conf::{duplicate_check, parse_time, text, time_param, Directive, CONF_OK};

/// `ometascan_cache zone | off`.
pub unsafe extern "C" fn set_cache(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx calls a handler with the configuration being parsed and the command,
    // valid for the call, and (NGX_HTTP_LOC_CONF_OFFSET) this level's LocConf.
    let (d, c) = unsafe { (Directive::new(cf, cmd), lcf(conf)) };
    duplicate_check!(d, c.cache);
    if d.args[1].as_bytes() == b"off" {
        c.cache = Some(CacheZone::Off);
        return CONF_OK;
    }
    // SAFETY: cf is the configuration nginx passed to this handler; the argument lives in its
    // pool.
    let Some(zone) = (unsafe { crate::cache::zone::reference(cf, &d.args[1]) }) else {
        return crate::ngx_ext::conf::conf_error();
    };
    c.cache = Some(CacheZone::Zone(zone));
    CONF_OK
}

time_handler!(set_cache_valid, cache_valid, None);
time_handler!(set_cache_revalidate, cache_revalidate, None);

/// `ometascan_cache_redis address:port [timeout=time] | off`.
pub unsafe extern "C" fn set_cache_redis(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx calls a handler with the configuration being parsed and the command,
    // valid for the call, and (NGX_HTTP_LOC_CONF_OFFSET) this level's LocConf.
    let (d, c) = unsafe { (Directive::new(cf, cmd), lcf(conf)) };
    duplicate_check!(d, c.cache_redis);
    if d.args[1].as_bytes() == b"off" && d.args.len() == 2 {
        c.cache_redis = Some(None);
        return CONF_OK;
    }
    let Some(addr) = text(&d.args[1])
        .to_socket_addrs()
        .ok()
        .and_then(|mut all| all.next())
    else {
        let why = "it must be \"address:port\" (or a name that resolves) or \"off\"";
        return d.invalid(&d.args[1], why);
    };
    let mut timeout = DEFAULT_REDIS_TIMEOUT;
    for arg in &d.args[2..] {
        match time_param(arg, "timeout=") {
            Some(d) => timeout = d,
            None => return d.invalid(arg, "it must be \"timeout=time\""),
        }
    }
    c.cache_redis = Some(Some(RedisSpec { addr, timeout }));
    CONF_OK
}
