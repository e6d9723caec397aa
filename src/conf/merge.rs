//! Merging a level into the next inner one: inheritance, defaults, and the checks that make
//! `nginx -t` fail for what cannot work.

use std::ffi::{c_char, c_void};

use ngx::ffi::*;

use super::scanner;
use super::settings::Settings;
use super::{lcf, LocConf, Pass, PassTarget, SetHeader};
use crate::ngx_ext::conf::{merge_error, CONF_OK};

/// Creates a location configuration with nothing set.
pub unsafe extern "C" fn create_loc_conf(cf: *mut ngx_conf_t) -> *mut c_void {
    let mut conf = LocConf::default();
    conf.settings = Settings::resolve(&conf);
    // SAFETY: the configuration pool outlives the configuration; the pool drops the value.
    let pool = unsafe { ngx::core::Pool::from_ngx_pool((*cf).pool) };
    pool.allocate(conf) as *mut c_void
}

/// Merges a level into the next inner one, resolves its settings and builds its scanner
/// setup.
pub unsafe extern "C" fn merge_loc_conf(
    cf: *mut ngx_conf_t,
    parent: *mut c_void,
    child: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx passes two of our LocConfs.
    let (prev, conf) = unsafe { (lcf(parent), lcf(child)) };
    conf.inherit(prev);
    conf.settings = Settings::resolve(conf);
    if conf.settings.allow_bad_request && !conf.settings.pre_cache {
        let at = conf.allow_bad_request_at.clone().unwrap_or_default();
        let msg = format!(
            "\"ometascan_allow_bad_request_traffic on\" requires \"ometascan_pre_cache on\" in {at}"
        );
        // SAFETY: cf is the configuration being merged.
        return unsafe { merge_error(cf, &msg) };
    }
    // SAFETY: as above; the upstream module has initialised its groups.
    if let Err(msg) = unsafe { scanner::build(cf, conf) } {
        // SAFETY: as above.
        return unsafe { merge_error(cf, &msg) };
    }
    CONF_OK
}

impl LocConf {
    /// Takes from `prev` (the enclosing level) whatever this level did not set. `set_headers`
    /// is inherited only as a whole, like `proxy_set_header`.
    fn inherit(&mut self, prev: &LocConf) {
        if self.pass.is_none() {
            // The target is shared: only a pointer to nginx's upstream and the parsed URL.
            self.pass = prev.pass.as_ref().map(|p| match p {
                Pass::Off => Pass::Off,
                Pass::Scan(t) => Pass::Scan(Box::new(PassTarget {
                    url: t.url.clone(),
                    shown: t.shown.clone(),
                    upstream: t.upstream,
                })),
            });
        }
        macro_rules! inherit {
            ($($f:ident),*) => { $( if self.$f.is_none() { self.$f = prev.$f.clone(); } )* };
        }
        inherit!(
            methods,
            connect_timeout,
            send_timeout,
            read_timeout,
            x_forwarded_for,
            intercept_errors,
            allow_bad_request,
            allow_bad_request_at,
            pre_cache,
            ssl_trusted_certificate,
            ssl_verify,
            ssl_verify_depth,
            ssl_protocols,
            ssl_ciphers,
            ssl_session_reuse,
            ssl_name,
            ssl_server_name,
            log_blocked,
            keepalive,
            keepalive_timeout,
            health_check,
            bypass,
            max_size,
            on_error,
            max_scans,
            multipart,
            body_limits,
            cache,
            cache_valid,
            cache_revalidate,
            cache_redis
        );
        if self.set_headers.is_none() {
            self.set_headers = prev.set_headers.as_ref().map(|v| {
                v.iter()
                    .map(|h| SetHeader {
                        name: h.name.clone(),
                        value: h.value,
                    })
                    .collect()
            });
        }
    }
}
