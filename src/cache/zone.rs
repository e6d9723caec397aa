//! `ometascan_cache_zone name:size`: a shared memory zone for verdicts, set up when nginx
//! maps it (kept with its entries across reloads when its size is unchanged) and listed in
//! the cycle's main configuration (for the status page and the duplicate check).

use std::ffi::{c_char, c_void};

use ngx::ffi::*;

use super::table::{self, Header};
use crate::ngx_ext::conf::{text, Directive, CONF_OK};
use crate::ngx_ext::shm::add_zone;

/// The smallest zone accepted.
const MIN_ZONE: usize = 64 * 1024;

/// `ometascan_cache_zone name:size` (http level).
pub unsafe extern "C" fn set_cache_zone(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    _conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx calls a handler with the configuration being parsed and the command,
    // valid for the call.
    let d = unsafe { Directive::new(cf, cmd) };
    let value = text(&d.args[1]);
    let parsed = value.rsplit_once(':').and_then(|(zone, size)| {
        let mut s = ngx_str_t {
            len: size.len(),
            data: size.as_ptr() as *mut u8,
        };
        // SAFETY: ngx_parse_size only reads the string.
        let n = unsafe { ngx_parse_size(&mut s) };
        (!zone.is_empty() && n != NGX_ERROR as isize).then_some((zone, n as usize))
    });
    let Some((zone_name, size)) = parsed else {
        return d.invalid(&d.args[1], "it must be \"name:size\"");
    };
    if size < MIN_ZONE {
        let why = format!("the size must be at least {}k", MIN_ZONE / 1024);
        return d.invalid(&d.args[1], &why);
    }
    let name = ngx_str_t {
        len: zone_name.len(),
        data: d.args[1].data,
    };
    // SAFETY: cf is the configuration nginx passed to this handler; the name (the start of the
    // argument) lives in the configuration's pool.
    let Some(zone) = (unsafe { add_zone(cf, name, size) }) else {
        return crate::ngx_ext::conf::conf_error();
    };
    // SAFETY: cf is the http block being configured.
    let Some(main) = (unsafe { crate::conf::main::configuring(cf) }) else {
        return crate::ngx_ext::conf::conf_error();
    };
    if main.cache_zones.iter().any(|(n, _)| n == zone_name) {
        let why = format!("zone \"{zone_name}\" is already declared");
        return d.invalid(&d.args[1], &why);
    }
    zone.init = Some(init_zone);
    main.cache_zones.push((zone_name.to_string(), zone));
    CONF_OK
}

/// The zone a location names (`ometascan_cache name`); nginx reports at startup a zone that
/// is never declared ("zero size shared memory zone"). `None`: out of memory.
///
/// # Safety
/// `cf` is the configuration being parsed; `name` lives in its pool.
pub unsafe fn reference(
    cf: *mut ngx_conf_t,
    name: &ngx_str_t,
) -> Option<&'static mut ngx_shm_zone_t> {
    // SAFETY: cf is being parsed and name lives in its pool (caller), as add_zone needs.
    unsafe { add_zone(cf, *name, 0) }
}

/// Sets up the verdict table when nginx maps the zone; the previous cycle's table is kept
/// when the zone's memory is reused (same name and size).
unsafe extern "C" fn init_zone(zone: *mut ngx_shm_zone_t, data: *mut c_void) -> ngx_int_t {
    // SAFETY: nginx calls this on its thread with one of the cycle's zones, mapped.
    let zone = unsafe { &mut *zone };
    if !data.is_null() {
        zone.data = data;
        return NGX_OK as ngx_int_t;
    }
    // SAFETY: a mapped zone's memory starts with nginx's slab pool, initialised by nginx
    // before init; the table is made in it and nowhere else.
    let header = unsafe { table::create(zone.shm.addr as *mut ngx_slab_pool_t, zone.shm.size) };
    if header.is_null() {
        return NGX_ERROR as ngx_int_t;
    }
    zone.data = header as *mut c_void;
    NGX_OK as ngx_int_t
}

/// The cache zones of the running cycle (as its main configuration lists them): name and
/// header.
pub fn zones() -> Vec<(String, &'static Header)> {
    let Some(main) = crate::conf::main::running() else {
        return Vec::new();
    };
    main.cache_zones
        .iter()
        .filter_map(|(name, zone)| {
            // SAFETY: the zones are the running cycle's and live as long as it; their data is
            // null or the table header init_zone made (header_at checks it).
            let header = unsafe { table::header_at(zone.as_ref()?.data) }?;
            Some((name.clone(), header))
        })
        .collect()
}

/// A zone's counters by name.
pub fn counters(h: &Header) -> impl Iterator<Item = (&'static str, u64)> + '_ {
    table::COUNTER_NAMES
        .iter()
        .zip(&h.counters)
        .map(|(n, c)| (*n, c.load(std::sync::atomic::Ordering::Relaxed)))
}
