//! `ometascan_cache_zone name:size`: a shared memory zone for verdicts, set up when nginx
//! maps it (kept with its entries across reloads when its size is unchanged), and the list of
//! the running cycle's zones for the status page.

use std::ffi::{c_char, c_void};
use std::ptr;

use ngx::ffi::*;

use super::table::{self, Header};
use crate::ngx_ext::conf::{args, fail, invalid, name_of, text, CONF_OK};

/// The smallest zone accepted.
const MIN_ZONE: usize = 64 * 1024;

/// Marks a declared zone until nginx initializes it (`data` must not be null meanwhile, so a
/// second declaration of the name is seen). As wide as the header's magic number, which it
/// never equals: a zone still marked reads as no table, never out of bounds.
static DECLARED: u64 = 0;

fn tag() -> *mut c_void {
    ptr::addr_of!(crate::ngx_http_ometascan_module) as *mut c_void
}

/// `ometascan_cache_zone name:size` (http level).
pub unsafe extern "C" fn set_cache_zone(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    _conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: called by nginx with its own cf.
    let a = unsafe { args(cf) };
    let name = name_of(cmd);
    let value = text(&a[1]);
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
        // SAFETY: cf is valid during the handler.
        return unsafe { fail(cf, &invalid(&a[1], &name, "it must be \"name:size\"")) };
    };
    if size < MIN_ZONE {
        let why = format!("the size must be at least {}k", MIN_ZONE / 1024);
        // SAFETY: as above.
        return unsafe { fail(cf, &invalid(&a[1], &name, &why)) };
    }
    // SAFETY: cf is valid; the argument (whose start is the name nginx keeps) lives in the
    // configuration's pool.
    let zone = unsafe { add(cf, &a[1], zone_name.len(), size) };
    if zone.is_null() {
        return crate::ngx_ext::conf::conf_error();
    }
    // SAFETY: zone was just returned by nginx.
    unsafe {
        if !(*zone).data.is_null() {
            let why = format!("zone \"{zone_name}\" is already declared");
            return fail(cf, &invalid(&a[1], &name, &why));
        }
        (*zone).data = ptr::addr_of!(DECLARED) as *mut c_void;
        (*zone).init = Some(init_zone);
    }
    CONF_OK
}

/// The zone a location names (`ometascan_cache name`); nginx reports at startup a zone that
/// is never declared ("zero size shared memory zone").
///
/// # Safety
/// `cf` is the configuration being parsed; `name` lives in its pool.
pub unsafe fn reference(cf: *mut ngx_conf_t, name: &ngx_str_t) -> *mut ngx_shm_zone_t {
    // SAFETY: per the contract.
    unsafe { add(cf, name, name.len, 0) }
}

/// # Safety
/// `cf` is the configuration being parsed; `arg` lives in its pool.
unsafe fn add(
    cf: *mut ngx_conf_t,
    arg: &ngx_str_t,
    name_len: usize,
    size: usize,
) -> *mut ngx_shm_zone_t {
    let mut n = ngx_str_t {
        len: name_len,
        data: arg.data,
    };
    // SAFETY: per the contract; the tag is our module, as nginx modules do.
    unsafe { ngx_shared_memory_add(cf, &mut n, size, tag()) }
}

unsafe extern "C" fn init_zone(zone: *mut ngx_shm_zone_t, data: *mut c_void) -> ngx_int_t {
    // SAFETY: nginx calls this with the zone, and with the previous cycle's data when the
    // zone's memory is reused (same name and size).
    unsafe {
        if !data.is_null() {
            (*zone).data = data;
            return NGX_OK as ngx_int_t;
        }
        let pool = (*zone).shm.addr as *mut ngx_slab_pool_t;
        let header = table::create(pool, (*zone).shm.size);
        if header.is_null() {
            return NGX_ERROR as ngx_int_t;
        }
        (*zone).data = header as *mut c_void;
    }
    NGX_OK as ngx_int_t
}

/// The cache zones of the running cycle: name and header.
pub fn zones() -> Vec<(String, &'static Header)> {
    let mut out = Vec::new();
    // SAFETY: ngx_cycle is the running cycle on the nginx thread; its shared memory list and
    // the zones in it live as long as the cycle.
    unsafe {
        let cycle = ngx_cycle;
        if cycle.is_null() {
            return out;
        }
        let mut part: *const ngx_list_part_t = &(*cycle).shared_memory.part;
        while !part.is_null() {
            let elts = (*part).elts as *const ngx_shm_zone_t;
            for i in 0..(*part).nelts {
                let z = &*elts.add(i);
                let name = z.shm.name.as_bytes();
                if z.tag == tag() && name != crate::status::shm::ZONE_NAME.as_bytes() {
                    if let Some(h) = table::header_at(z.data) {
                        out.push((String::from_utf8_lossy(name).into(), h));
                    }
                }
            }
            part = (*part).next;
        }
    }
    out
}

/// A zone's counters by name.
pub fn counters(h: &Header) -> impl Iterator<Item = (&'static str, u64)> + '_ {
    table::COUNTER_NAMES
        .iter()
        .zip(&h.counters)
        .map(|(n, c)| (*n, c.load(std::sync::atomic::Ordering::Relaxed)))
}
