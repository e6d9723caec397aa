//! The verdict cache's directives of a location: which zone (`ometascan_cache`), how long a
//! verdict stays valid (`ometascan_cache_valid`), how old an ISTag may be
//! (`ometascan_cache_revalidate`) and the Redis level (`ometascan_cache_redis`). The zones
//! themselves are declared with `ometascan_cache_zone` ([`crate::cache::zone`]).

use std::ffi::{c_char, c_void};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use ngx::ffi::*;
use ometascan_core::cache::{RedisSpec, DEFAULT_REDIS_TIMEOUT};
use ometascan_core::net::tls::{self, TlsClient, TlsSettings, TlsVersion};

use super::{lcf, CacheZone};
use crate::ngx_ext::conf::{duplicate_check, text, time_param, Directive, CONF_OK};

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

/// `ometascan_cache_redis address:port ... [master=name] [db=number] [user=name]
/// [password=text] [tls=on] [ssl_trusted_certificate=file] [ssl_verify=on|off] [ssl_name=name]
/// [timeout=time] | off`.
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
    let mut spec = RedisSpec::plain(SocketAddr::from(([0, 0, 0, 0], 0)), DEFAULT_REDIS_TIMEOUT);
    spec.addrs.clear();
    let mut tls = RedisTls::default();
    for arg in &d.args[1..] {
        let word = text(arg);
        let Some((key, value)) = word.split_once('=') else {
            let Some(addr) = word.to_socket_addrs().ok().and_then(|mut all| all.next()) else {
                let why = "it must be \"address:port\" (or a name that resolves) or \"off\"";
                return d.invalid(arg, why);
            };
            spec.addrs.push(addr);
            continue;
        };
        // SAFETY: cf is the configuration nginx passed to this handler.
        let ok = unsafe { redis_param(cf, arg, key, value, &mut spec, &mut tls) };
        if !ok {
            return d.invalid(arg, "");
        }
    }
    if spec.addrs.is_empty() {
        return d.fail(&format!("\"{}\" directive needs an address", d.name));
    }
    if spec.addrs.len() > 1 && spec.master.is_none() {
        return d.fail(&format!(
            "\"{}\" directive: several addresses are Sentinels and need \"master=\"",
            d.name
        ));
    }
    if tls.on {
        let host = spec.addrs[0].ip().to_string();
        let client = TlsClient::new(tls.settings(&host));
        if let Err(e) = client
            .config()
            .and_then(|_| client.server_name().map(|_| ()))
        {
            return d.fail(&format!("\"{}\" directive: TLS: {e}", d.name));
        }
        spec.tls = Some(Arc::new(client));
    } else if tls.given() {
        return d.fail(&format!(
            "\"{}\" directive: \"ssl_*\" parameters need \"tls=on\"",
            d.name
        ));
    }
    c.cache_redis = Some(Some(spec));
    CONF_OK
}

/// Reads one `key=value` parameter of `ometascan_cache_redis`; false when it is not one or
/// its value is bad.
///
/// # Safety
/// `cf` must be the configuration nginx passed to the directive's handler.
unsafe fn redis_param(
    cf: *mut ngx_conf_t,
    arg: &ngx_str_t,
    key: &str,
    value: &str,
    spec: &mut RedisSpec,
    tls: &mut RedisTls,
) -> bool {
    match key {
        "timeout" => time_param(arg, "timeout=")
            .map(|t| spec.timeout = t)
            .is_some(),
        "master" => set_word(&mut spec.master, value),
        "user" => set_word(&mut spec.user, value),
        "password" => {
            spec.password = Some(value.to_string());
            !value.is_empty()
        }
        "db" => value.parse::<u32>().map(|n| spec.db = n).is_ok(),
        "tls" => on_off(value).map(|on| tls.on = on).is_some(),
        "ssl_verify" => on_off(value).map(|v| tls.verify = Some(v)).is_some(),
        "ssl_name" => set_word(&mut tls.name, value),
        // SAFETY: cf is the configuration nginx passed to the handler (caller).
        "ssl_trusted_certificate" => match unsafe { full_name(cf, value) } {
            Some(path) => {
                tls.trusted_certificate = Some(path);
                true
            }
            None => false,
        },
        _ => false,
    }
}

/// The TLS parameters of `ometascan_cache_redis`.
#[derive(Default)]
struct RedisTls {
    on: bool,
    verify: Option<bool>,
    trusted_certificate: Option<String>,
    name: Option<String>,
}

impl RedisTls {
    fn given(&self) -> bool {
        self.verify.is_some() || self.trusted_certificate.is_some() || self.name.is_some()
    }

    /// As `ometascan_ssl_*` with their defaults, but verified unless `ssl_verify=off`: a cache
    /// that hands out verdicts is not to be reached through an unverified peer.
    fn settings(&self, host: &str) -> TlsSettings {
        TlsSettings {
            verify: self.verify.unwrap_or(true),
            trusted_certificate: self.trusted_certificate.clone(),
            verify_depth: 4,
            versions: vec![TlsVersion::Tls12, TlsVersion::Tls13],
            ciphers: ometascan_core::net::tls::TLS12_SUITES.to_vec(),
            session_reuse: true,
            name: self.name.clone().unwrap_or_else(|| host.to_string()),
            send_sni: self.name.is_some(),
        }
    }
}

/// Sets a one-word value; false when it is empty or has a control byte.
fn set_word(slot: &mut Option<String>, value: &str) -> bool {
    let ok = !value.is_empty() && !value.bytes().any(|b| b <= b' ' || b == 0x7f);
    if ok {
        *slot = Some(value.to_string());
    }
    ok
}

/// `on` or `off`, in any case, as nginx's flags read them.
fn on_off(value: &str) -> Option<bool> {
    if value.eq_ignore_ascii_case("on") {
        Some(true)
    } else if value.eq_ignore_ascii_case("off") {
        Some(false)
    } else {
        None
    }
}

/// A file name resolved against nginx's prefix, checked to hold CA certificates.
///
/// # Safety
/// `cf` must be the configuration nginx passed to a directive handler.
unsafe fn full_name(cf: *mut ngx_conf_t, name: &str) -> Option<String> {
    // SAFETY: the copy lives in the configuration pool, which outlives the configuration.
    let mut path = unsafe { ngx_str_t::from_bytes((*cf).pool, name.as_bytes()) }?;
    // SAFETY: resolves a relative name against the prefix, allocating from the cycle pool.
    if unsafe { ngx_conf_full_name((*cf).cycle, &mut path, 1) } != NGX_OK as ngx_int_t {
        return None;
    }
    let full = text(&path);
    tls::load_ca_file(std::path::Path::new(&full)).ok()?;
    Some(full)
}
