//! Shared memory zones of the module, declared while the configuration is parsed.

use std::ffi::c_void;
use std::ptr;

use ngx::ffi::*;

/// The tag of the module's zones: the module itself, as nginx's modules do.
fn tag() -> *mut c_void {
    ptr::addr_of!(crate::ngx_http_ometascan_module) as *mut c_void
}

/// The cycle's shared zone of that name, declared with `size` (0: only named, its size comes
/// from the directive that declares it); `None`: out of memory, or nginx refused it (it has
/// logged why: the name is in use with another size or by another module).
///
/// # Safety
/// `cf` must be the configuration being parsed, on nginx's thread; `name` must outlive the
/// cycle (in its pool, or static). The zone is the cycle's: it lives as long as the
/// configuration.
pub unsafe fn add_zone(
    cf: *mut ngx_conf_t,
    mut name: ngx_str_t,
    size: usize,
) -> Option<&'static mut ngx_shm_zone_t> {
    // SAFETY: cf is being parsed on nginx's thread and name outlives the cycle (caller); nginx
    // allocates the zone from the cycle's pool.
    unsafe { ngx_shared_memory_add(cf, &mut name, size, tag()).as_mut() }
}
