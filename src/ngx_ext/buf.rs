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

/// A buffer over `len` bytes of `file` from `offset`; the descriptor is closed with the
/// request pool. Null when out of memory.
///
/// # Safety
/// `r` must be a live request.
pub unsafe fn file_range_buf(
    r: *mut ngx_http_request_t,
    file: std::fs::File,
    offset: u64,
    len: u64,
) -> *mut ngx_buf_t {
    use std::os::fd::IntoRawFd;
    // SAFETY: r is live.
    let (pool, log) = unsafe { ((*r).pool, (*(*r).connection).log) };
    // SAFETY: allocations from a live pool.
    let (cln, f, b) = unsafe {
        (
            ngx_pool_cleanup_add(pool, std::mem::size_of::<ngx_pool_cleanup_file_t>()),
            ngx_pcalloc(pool, std::mem::size_of::<ngx_file_t>()) as *mut ngx_file_t,
            ngx_pcalloc(pool, std::mem::size_of::<ngx_buf_t>()) as *mut ngx_buf_t,
        )
    };
    if cln.is_null() || f.is_null() || b.is_null() {
        return ptr::null_mut();
    }
    let fd = file.into_raw_fd();
    let name = c"ometascan sanitized body";
    // SAFETY: cln, f and b are fresh pool memory of their types; the cleanup closes fd once.
    unsafe {
        let clnf = (*cln).data as *mut ngx_pool_cleanup_file_t;
        (*clnf).fd = fd;
        (*clnf).name = name.as_ptr() as *mut u8;
        (*clnf).log = log;
        (*cln).handler = Some(ngx_pool_cleanup_file);
        (*f).fd = fd;
        (*f).name = ngx_str_t {
            len: name.to_bytes().len(),
            data: name.as_ptr() as *mut u8,
        };
        (*f).log = log;
        (*b).file = f;
        (*b).set_in_file(1);
        (*b).file_pos = offset as off_t;
        (*b).file_last = (offset + len) as off_t;
    }
    b
}

/// A chain over `body`, the last buffer marked as such: memory copied into the request pool,
/// file ranges over duplicates of their descriptors (closed with the pool). Null when out of
/// memory or when a descriptor cannot be duplicated.
///
/// # Safety
/// `r` must be a live request.
pub unsafe fn body_chain(
    r: *mut ngx_http_request_t,
    body: &ometascan_core::RequestBody,
) -> *mut ngx_chain_t {
    use ometascan_core::BodyPart;
    // SAFETY: r is live.
    let pool = unsafe { (*r).pool };
    let mut first: *mut ngx_chain_t = ptr::null_mut();
    let mut last: *mut ngx_chain_t = ptr::null_mut();
    for part in body.parts() {
        let b = match part {
            // SAFETY: pool is live.
            BodyPart::Memory(bytes) => unsafe { copy_to_buf(pool, bytes) },
            BodyPart::File { file, offset, len } => match file.try_clone() {
                // SAFETY: r is live; the duplicate is owned by the buffer's cleanup.
                Ok(dup) => unsafe { file_range_buf(r, dup, *offset, *len) },
                Err(_) => ptr::null_mut(),
            },
        };
        // SAFETY: pool is live.
        let cl = unsafe { ngx_alloc_chain_link(pool) };
        if b.is_null() || cl.is_null() {
            return ptr::null_mut();
        }
        // SAFETY: cl and last are links of this chain, from the pool.
        unsafe {
            (*cl).buf = b;
            (*cl).next = ptr::null_mut();
            if last.is_null() {
                first = cl;
            } else {
                (*last).next = cl;
            }
        }
        last = cl;
    }
    if last.is_null() {
        // An empty body: one empty buffer.
        // SAFETY: pool is live.
        let (b, cl) = unsafe { (copy_to_buf(pool, &[]), ngx_alloc_chain_link(pool)) };
        if b.is_null() || cl.is_null() {
            return ptr::null_mut();
        }
        // SAFETY: fresh pool memory.
        unsafe {
            (*cl).buf = b;
            (*cl).next = ptr::null_mut();
        }
        first = cl;
        last = cl;
    }
    // SAFETY: last is the final link, its buffer live.
    unsafe {
        (*(*last).buf).set_last_buf(1);
        (*(*last).buf).set_last_in_chain(1);
    }
    first
}
