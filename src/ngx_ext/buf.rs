//! Buffers in a request's pool: copies of bytes, ranges of a file, the response body sent.

use std::ptr;

use ngx::ffi::*;
use ngx::http::Request;

use ometascan_core::{BodyPart, RequestBody};

use super::hooks::{Chain, Next};
use super::request::RequestExt;

/// A buffer in `pool` holding a copy of `bytes` (an empty buffer for no bytes); null when
/// out of memory.
///
/// # Safety
/// `pool` must be a live pool.
pub unsafe fn copy_to_buf(pool: *mut ngx_pool_t, bytes: &[u8]) -> *mut ngx_buf_t {
    // SAFETY: allocations from a live pool (caller); the copy stays within the new buffer.
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

/// Sends `bytes` as the whole response body (the header was sent).
pub fn send_body(r: &mut Request, bytes: &[u8]) -> ngx_int_t {
    // SAFETY: the request's pool lives as long as the request.
    let b = unsafe { copy_to_buf(r.pool().as_ptr(), bytes) };
    // SAFETY: b is null or a fresh buffer of that pool.
    let Some(b) = (unsafe { b.as_mut() }) else {
        return NGX_ERROR as ngx_int_t;
    };
    b.set_last_buf(1);
    b.set_last_in_chain(1);
    let mut out = ngx_chain_t {
        buf: b,
        next: ptr::null_mut(),
    };
    // SAFETY: the output filters take a live request on nginx's thread and a chain whose
    // buffers live in its pool (the link itself is copied by the filters that keep it).
    unsafe { ngx_http_output_filter(r.raw(), &mut out) }
}

/// A buffer over `len` bytes of `file` from `offset`; the descriptor is closed with the
/// request pool. Null when out of memory.
pub fn file_range_buf(r: &Request, file: std::fs::File, offset: u64, len: u64) -> *mut ngx_buf_t {
    use std::os::fd::IntoRawFd;
    let (pool, log) = (r.pool().as_ptr(), r.log());
    // SAFETY: allocations from the request's pool, which lives as long as the request.
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

// Pool allocations are aligned for any pointer-sized field, which is all a body has.
const _: () = assert!(std::mem::align_of::<RequestBody>() <= std::mem::align_of::<usize>());

unsafe extern "C" fn drop_kept_body(data: *mut std::ffi::c_void) {
    // SAFETY: data is the body `body_chain` wrote; nginx runs a pool cleanup once.
    unsafe { ptr::drop_in_place(data as *mut RequestBody) }
}

/// Passes `body` to the filters after the module's (`next`); `last`: it ends the response.
pub fn pass_body(r: &mut Request, next: &Next, body: RequestBody, last: bool) -> ngx_int_t {
    let Some(chain) = body_chain(r, body, last) else {
        return NGX_ERROR as ngx_int_t;
    };
    // SAFETY: a fresh chain of the request's pool over memory kept with it, passed on once.
    next.body(r, unsafe { Chain::from_raw(chain) })
}

/// The parts of `body` as a chain of buffers for the filters after the module's: memory
/// buffers over its bytes, file buffers over its file ranges. The body is kept with the
/// request's pool, so what the buffers point to lives as long as they do. `last`: the chain
/// ends the response (with an empty last buffer when the body is empty). `None`: out of memory.
fn body_chain(r: &Request, body: RequestBody, last: bool) -> Option<*mut ngx_chain_t> {
    let (pool, log) = (r.pool().as_ptr(), r.log());
    // SAFETY: the cleanup and its data come from the request's pool.
    let cln = unsafe { ngx_pool_cleanup_add(pool, std::mem::size_of::<RequestBody>()).as_mut() }?;
    let kept = cln.data as *mut RequestBody;
    // SAFETY: the data has room for the body, aligned (assertion above); the cleanup drops it
    // once, when the pool goes, after the last buffer over it was sent.
    unsafe { ptr::write(kept, body) };
    cln.handler = Some(drop_kept_body);
    // SAFETY: just written; only read from here on, for as long as the pool lives.
    let body = unsafe { &*kept };
    let mut head: *mut ngx_chain_t = ptr::null_mut();
    let mut tail: *mut *mut ngx_chain_t = &mut head;
    let mut link = |b: *mut ngx_buf_t| -> Option<()> {
        // SAFETY: a fresh zeroed link of the request's pool; tail points at the last link's
        // `next` (or at head), both live.
        unsafe {
            let cl = (ngx_pcalloc(pool, std::mem::size_of::<ngx_chain_t>()) as *mut ngx_chain_t)
                .as_mut()?;
            cl.buf = b;
            *tail = cl;
            tail = &mut cl.next;
        }
        Some(())
    };
    for part in body.parts() {
        // SAFETY: fresh zeroed memory of the request's pool.
        let b = unsafe {
            (ngx_pcalloc(pool, std::mem::size_of::<ngx_buf_t>()) as *mut ngx_buf_t).as_mut()
        }?;
        match part {
            BodyPart::Memory(bytes) => {
                // The bytes are the kept body's; the filters only read them.
                b.pos = bytes.as_ptr() as *mut u8;
                b.last = b.pos.wrapping_add(bytes.len());
                b.start = b.pos;
                b.end = b.last;
                b.set_memory(1);
            }
            BodyPart::File { file, offset, len } => {
                // SAFETY: fresh zeroed memory of the request's pool.
                let f = unsafe {
                    (ngx_pcalloc(pool, std::mem::size_of::<ngx_file_t>()) as *mut ngx_file_t)
                        .as_mut()
                }?;
                use std::os::fd::AsRawFd;
                // The kept body's file: open while the pool lives.
                f.fd = file.as_raw_fd();
                f.log = log;
                let name = c"ometascan held response";
                f.name = ngx_str_t {
                    len: name.to_bytes().len(),
                    data: name.as_ptr() as *mut u8,
                };
                b.file = f;
                b.set_in_file(1);
                b.file_pos = *offset as off_t;
                b.file_last = (*offset + *len) as off_t;
            }
        }
        link(b)?;
    }
    if last {
        // SAFETY: fresh zeroed memory of the request's pool.
        let b = unsafe {
            (ngx_pcalloc(pool, std::mem::size_of::<ngx_buf_t>()) as *mut ngx_buf_t).as_mut()
        }?;
        b.set_last_buf(1);
        b.set_last_in_chain(1);
        link(b)?;
    }
    Some(head)
}
