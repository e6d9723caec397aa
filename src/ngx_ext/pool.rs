//! Pool cleanups: finding one of ours again.

use std::ffi::c_void;

use ngx::ffi::*;

/// The data of the first cleanup of `pool` whose handler is `handler`, if any.
///
/// # Safety
/// `pool` must be a live pool, read on the nginx thread (its cleanup list is nginx's, changed
/// only by that thread).
pub unsafe fn cleanup_data(
    pool: *mut ngx_pool_t,
    handler: unsafe extern "C" fn(*mut c_void),
) -> Option<*mut c_void> {
    // SAFETY: the pool is live and read on nginx's thread (caller): its cleanup list is
    // nginx's, well formed, changed only by that thread.
    let mut cln = unsafe { (*pool).cleanup };
    while !cln.is_null() {
        // SAFETY: cln is an element of the pool's list, in the pool's memory.
        let c = unsafe { &*cln };
        if c.handler.is_some_and(|h| std::ptr::fn_addr_eq(h, handler)) {
            return Some(c.data);
        }
        cln = c.next;
    }
    None
}
