//! Merging a level into the next inner one: inheritance, defaults, and the checks that make
//! `nginx -t` fail for what cannot work.

use std::ffi::{c_char, c_void};

use ngx::ffi::*;

use super::scanner;
use super::{lcf, LocConf};
use crate::ngx_ext::conf::{merge_error, CONF_OK};
#[cfg(debug_assertions)]
use crate::ngx_ext::log::Merging;

/// Creates a location configuration with nothing set.
pub unsafe extern "C" fn create_loc_conf(cf: *mut ngx_conf_t) -> *mut c_void {
    let conf = LocConf::default();
    // SAFETY: the configuration pool outlives the configuration; the pool drops the value.
    let pool = unsafe { ngx::core::Pool::from_ngx_pool((*cf).pool) };
    pool.allocate(conf) as *mut c_void
}

/// Merges a level into the next inner one and builds what its requests read: its scanners
/// and its scan options.
pub unsafe extern "C" fn merge_loc_conf(
    cf: *mut ngx_conf_t,
    parent: *mut c_void,
    child: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx passes two of our LocConfs.
    let (prev, conf) = unsafe { (lcf(parent), lcf(child)) };
    conf.inherit(prev);
    #[cfg(debug_assertions)]
    if std::env::var_os("OMETASCAN_CONF_DUMP").is_some() {
        // For tests/declarations.rs: what this level has, its own or inherited.
        let set = conf.set_directives().join(" ");
        crate::warn!(Merging(cf), "ometascan merged level: {set}");
        let resolved = conf.resolved_defaults().join("|");
        crate::warn!(Merging(cf), "ometascan resolved: {resolved}");
    }
    if *conf.allow_bad_request() && !conf.pre_cache() {
        let at = conf.allow_bad_request_at.clone().unwrap_or_default();
        let msg = format!(
            "\"ometascan_allow_bad_request_traffic on\" requires \"ometascan_pre_cache on\" in {at}"
        );
        // SAFETY: cf is the configuration being merged.
        return unsafe { merge_error(cf, &msg) };
    }
    // SAFETY: as above; the upstream module has initialised its groups.
    if let Err(msg) = unsafe { scanner::build(cf, conf) } {
        // SAFETY: cf is the configuration being merged, its log valid.
        return unsafe { merge_error(cf, &msg) };
    }
    // SAFETY: as above.
    conf.options = Some(unsafe { super::options::build(cf, conf) });
    CONF_OK
}
