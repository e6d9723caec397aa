//! Small helpers around nginx buffers.

use std::ptr;

use ngx::ffi::*;

/// A buffer in `pool` holding a copy of `bytes` (an empty buffer for no bytes); null when
/// out of memory.
///
/// # Safety
/// `pool` must be a live pool.
pub unsafe fn copy_to_buf(pool: *mut ngx_pool_t, bytes: &[u8]) -> *mut ngx_buf_t {
    // SAFETY: allocations from a live pool; the copy stays within the new buffer.
    unsafe {
        if bytes.is_empty() {
            return ngx_pcalloc(pool, std::mem::size_of::<ngx_buf_t>()) as *mut ngx_buf_t;
        }
        let b = ngx_create_temp_buf(pool, bytes.len());
        if !b.is_null() {
            ptr::copy_nonoverlapping(bytes.as_ptr(), (*b).last, bytes.len());
            (*b).last = (*b).last.add(bytes.len());
        }
        b
    }
}

/// Sends `bytes` as the whole response body (headers already sent).
///
/// # Safety
/// `r` must be a live request whose header was sent.
pub unsafe fn send_body(r: *mut ngx_http_request_t, bytes: &[u8]) -> ngx_int_t {
    // SAFETY: r is live; the buffer comes from its pool.
    unsafe {
        let b = copy_to_buf((*r).pool, bytes);
        if b.is_null() {
            return NGX_ERROR as ngx_int_t;
        }
        (*b).set_last_buf(1);
        (*b).set_last_in_chain(1);
        let mut out = ngx_chain_t {
            buf: b,
            next: ptr::null_mut(),
        };
        ngx_http_output_filter(r, &mut out)
    }
}
