//! The request body as nginx stored it (memory buffers of the request pool or a client buffer,
//! ranges of a temp file): read for the scan, replaced by the scanner's version in the form the
//! location asked for, or taken out of the request.
//!
//! The body's chain, its buffers and its `ngx_request_body_t` live in the request pool; a temp
//! file stays open until that pool is destroyed (a pool cleanup closes it). All of them live as
//! long as the request.

use std::ptr;

use ngx::ffi::*;
use ngx::http::Request;
use ometascan_core::{BodyPart, RequestBody};

use super::buf::{copy_to_buf, file_range_buf};
use super::headers::pool_str;
use super::request::RequestExt;

/// One buffer of a request body as nginx stored it.
#[derive(Debug, Clone, Copy)]
pub enum Stored {
    /// `len` bytes of memory from `pos` (in the request pool or a client buffer).
    Memory { pos: *const u8, len: usize },
    /// Bytes `start..end` of the temp file open on `fd`.
    File { fd: ngx_fd_t, start: u64, end: u64 },
}

impl Stored {
    pub fn len(&self) -> u64 {
        match *self {
            Stored::Memory { len, .. } => len as u64,
            Stored::File { start, end, .. } => end - start,
        }
    }
}

/// The body's bookkeeping, if nginx has started reading one.
fn request_body(r: &mut Request) -> Option<&mut ngx_http_request_body_t> {
    // SAFETY: null, or nginx's body structure in the request pool.
    unsafe { r.as_mut().request_body.as_mut() }
}

/// The buffers of the body, in order, empty ones left out (none when it has no body). What
/// the items point to stays valid while the body is not replaced or forgotten, and while the
/// request lives.
pub fn body_buffers(r: &Request) -> Vec<Stored> {
    let mut out = Vec::new();
    // SAFETY: null, or nginx's body structure in the request pool, whose chain is well formed.
    let mut cl = unsafe { r.as_ref().request_body.as_ref() }.map_or(ptr::null_mut(), |rb| rb.bufs);
    while !cl.is_null() {
        // SAFETY: cl is a link of the body's chain; its buffer (and an in-file buffer's file)
        // are nginx's, in the request pool.
        let (b, next) = unsafe { (&*(*cl).buf, (*cl).next) };
        if b.in_file() != 0 && !b.file.is_null() {
            let (start, end) = (b.file_pos.max(0) as u64, b.file_last.max(0) as u64);
            if end > start {
                // SAFETY: an in-file buffer's file is nginx's, in the request pool.
                let fd = unsafe { (*b.file).fd };
                out.push(Stored::File { fd, start, end });
            }
        } else if !b.pos.is_null() && b.last > b.pos {
            // SAFETY: pos..last is the buffer's data, in one allocation.
            let len = unsafe { b.last.offset_from(b.pos) } as usize;
            out.push(Stored::Memory { pos: b.pos, len });
        }
        cl = next;
    }
    out
}

/// Replaces the read body with `body`, stored in the form the location asked nginx for: in a
/// new temp file when the original had to be in one (WebDAV's `PUT`, `client_body_in_file_only`)
/// or was written to one under `client_body_in_single_buffer`; in one memory buffer under
/// `client_body_in_single_buffer`; otherwise as a chain (memory, and file ranges of the
/// scanner's spilled answer). `Content-Length` and the length nginx forwards follow; `rb->buf`
/// stays (the upstream module reuses it as its output buffer). `None`: no body was read, out of
/// memory, or the new file could not be written.
///
/// The parts of `body` may be ranges of the old temp file: they are read before it is emptied.
pub fn replace_body(r: &mut Request, body: &RequestBody) -> Option<()> {
    let in_file = !request_body(r)?.temp_file.is_null();
    let (file_only, single) = (r.body_in_file_only(), r.body_in_single_buffer());
    let chain = if in_file && (file_only || single) {
        body_in_new_temp_file(r, body)?
    } else if single {
        body_in_one_buffer(r, body)?
    } else {
        body_chain(r, body)?
    };
    let len = body.len();
    let length = pool_str(r, len.to_string().as_bytes())?;
    request_body(r)?.bufs = chain;
    let headers = &mut r.as_mut().headers_in;
    headers.content_length_n = len as off_t;
    // SAFETY: null, or the client's Content-Length element in the request's header list.
    if let Some(cl) = unsafe { headers.content_length.as_mut() } {
        cl.value = length;
    }
    Some(())
}

/// Takes the body out of the request: the buffers unlinked, the temp file emptied (a kept
/// one, under `client_body_in_file_only`, must not keep the content) and unlinked from the
/// request (`$request_body_file` is empty), the length 0 and no longer chunked. A client's
/// `Transfer-Encoding` stays in the header list: the proxy module recognises and replaces it by
/// its hash, which must therefore stay intact.
pub fn forget_body(r: &mut Request) {
    if let Some(rb) = request_body(r) {
        // SAFETY: null, or the body's temp file in the request pool.
        if let Some(tf) = unsafe { rb.temp_file.as_ref() } {
            if tf.file.fd >= 0 {
                // SAFETY: the descriptor is open until the request pool goes.
                unsafe { libc::ftruncate(tf.file.fd, 0) };
            }
        }
        rb.temp_file = ptr::null_mut();
        rb.bufs = ptr::null_mut();
        rb.rest = 0;
    }
    let headers = &mut r.as_mut().headers_in;
    headers.content_length_n = 0;
    headers.set_chunked(0);
    // SAFETY: null, or the client's Content-Length element in the request's header list.
    if let Some(cl) = unsafe { headers.content_length.as_mut() } {
        cl.value = ngx_str_t {
            len: 1,
            data: c"0".as_ptr() as *mut u8,
        };
    }
}

/// One link of the request pool holding `b`, the end of the chain; `None`: out of memory.
fn link(r: &Request, b: *mut ngx_buf_t) -> Option<*mut ngx_chain_t> {
    // SAFETY: an allocation from the request's pool; null checked.
    let cl = unsafe { ngx_alloc_chain_link(r.pool().as_ptr()).as_mut() }?;
    (!b.is_null()).then_some(())?;
    cl.buf = b;
    cl.next = ptr::null_mut();
    Some(cl)
}

/// Marks the buffer of `cl` as the body's last.
fn last_link(cl: *mut ngx_chain_t) -> *mut ngx_chain_t {
    // SAFETY: cl is a link made by `link`, its buffer non-null pool memory.
    unsafe {
        (*(*cl).buf).set_last_buf(1);
        (*(*cl).buf).set_last_in_chain(1);
    }
    cl
}

/// A chain over `body`: memory copied into the request pool, file ranges over duplicates of
/// their descriptors (closed with the pool). `None` when out of memory or when a descriptor
/// cannot be duplicated.
fn body_chain(r: &Request, body: &RequestBody) -> Option<*mut ngx_chain_t> {
    let pool = r.pool().as_ptr();
    let mut first: *mut ngx_chain_t = ptr::null_mut();
    let mut last: *mut ngx_chain_t = ptr::null_mut();
    for part in body.parts() {
        let b = match part {
            // SAFETY: the request's pool lives as long as the request.
            BodyPart::Memory(bytes) => unsafe { copy_to_buf(pool, bytes) },
            BodyPart::File { file, offset, len } => {
                file_range_buf(r, file.try_clone().ok()?, *offset, *len)
            }
        };
        let cl = link(r, b)?;
        if last.is_null() {
            first = cl;
        } else {
            // SAFETY: last is the previous link made by `link`.
            unsafe { (*last).next = cl };
        }
        last = cl;
    }
    if last.is_null() {
        // An empty body: one empty buffer.
        // SAFETY: the request's pool lives as long as the request.
        first = link(r, unsafe { copy_to_buf(pool, &[]) })?;
        last = first;
    }
    last_link(last);
    Some(first)
}

/// The same body in one new temp file made like the request's own (`client_body_temp_path`,
/// persistent and clean as nginx or WebDAV asked, same access bits), which replaces it:
/// `request_body->temp_file` names the new file, the old one is emptied, and the chain returned
/// is one file buffer over the whole body. `None` when the file cannot be created or written,
/// or out of memory.
///
/// What needs it: WebDAV's `PUT` renames `temp_file` into place, and `client_body_in_file_only`
/// promises `$request_body_file`; a chain of memory buffers would break both.
fn body_in_new_temp_file(r: &mut Request, body: &RequestBody) -> Option<*mut ngx_chain_t> {
    let old = request_body(r)?.temp_file;
    // SAFETY: non-null (the caller checked), the body's temp file in the request pool.
    let tf = temp_file_like(r, unsafe { &*old })?;
    let written = write_body(tf.file.fd, body)?;
    // SAFETY: an allocation from the request's pool; null checked.
    let b = unsafe {
        (ngx_pcalloc(r.pool().as_ptr(), std::mem::size_of::<ngx_buf_t>()) as *mut ngx_buf_t)
            .as_mut()
    }?;
    // SAFETY: the old file's descriptor is open until the request pool goes; emptied so a kept
    // file (client_body_in_file_only on) does not keep what the scanner replaced.
    unsafe {
        if (*old).file.fd != NGX_INVALID_FILE {
            libc::ftruncate((*old).file.fd, 0);
        }
    }
    tf.offset = written as off_t;
    tf.file.offset = written as off_t;
    b.file = &mut tf.file;
    b.set_in_file(1);
    b.file_pos = 0;
    b.file_last = written as off_t;
    let cl = last_link(link(r, b)?);
    request_body(r)?.temp_file = tf;
    Some(cl)
}

/// A new, empty temp file made like `old` (path, persistence, cleaning, access bits, log
/// level), registered for cleanup in the request pool. `None`: out of memory or not created.
fn temp_file_like<'a>(r: &Request, old: &ngx_temp_file_t) -> Option<&'a mut ngx_temp_file_t> {
    let (pool, log) = (r.pool().as_ptr(), r.log());
    // SAFETY: an allocation from the request's pool, zeroed, of its type; null checked. It
    // lives as long as the request.
    let tf = unsafe {
        (ngx_pcalloc(pool, std::mem::size_of::<ngx_temp_file_t>()) as *mut ngx_temp_file_t).as_mut()
    }?;
    tf.file.fd = NGX_INVALID_FILE;
    tf.file.log = log;
    tf.path = old.path;
    tf.pool = pool;
    tf.warn = old.warn;
    tf.access = old.access;
    tf.set_log_level(old.log_level());
    tf.set_persistent(old.persistent());
    tf.set_clean(old.clean());
    let (persistent, clean) = (tf.persistent() as ngx_uint_t, tf.clean() as ngx_uint_t);
    // SAFETY: tf's file and path are set as nginx's request body code sets them; the file's
    // cleanup (in the same pool) closes it and, when clean, removes it.
    let rc =
        unsafe { ngx_create_temp_file(&mut tf.file, tf.path, pool, persistent, clean, tf.access) };
    (rc == NGX_OK as ngx_int_t).then_some(tf)
}

/// Writes `body` to the open file `fd` from its start; the number of bytes written.
fn write_body(fd: ngx_fd_t, body: &RequestBody) -> Option<u64> {
    use std::io::Write;
    use std::os::fd::FromRawFd;
    // SAFETY: fd is an open descriptor owned by a pool cleanup: the File made from it is never
    // dropped (ManuallyDrop), so it is closed once, by nginx.
    let out = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd) });
    let mut written = 0u64;
    let mut reader = body.reader(64 * 1024);
    while let Some(piece) = reader.next_chunk() {
        let piece = piece.ok()?;
        (&*out).write_all(&piece).ok()?;
        written += piece.len() as u64;
    }
    Some(written)
}

/// The same body in one memory buffer of the request pool (`client_body_in_single_buffer`).
/// `None` when out of memory or when a file range cannot be read.
fn body_in_one_buffer(r: &Request, body: &RequestBody) -> Option<*mut ngx_chain_t> {
    let len = usize::try_from(body.len()).ok()?;
    let pool = r.pool().as_ptr();
    // SAFETY: allocations from the request's pool (an empty body gets an empty buffer).
    let b = unsafe {
        if len == 0 {
            copy_to_buf(pool, &[])
        } else {
            ngx_create_temp_buf(pool, len)
        }
        .as_mut()
    }?;
    let mut reader = body.reader(64 * 1024);
    let mut filled = 0usize;
    while let Some(piece) = reader.next_chunk() {
        let piece = piece.ok()?;
        if piece.len() > len - filled {
            return None;
        }
        // SAFETY: the buffer has room for len bytes from its start; piece fits in what is left.
        unsafe {
            ptr::copy_nonoverlapping(piece.as_ptr(), b.last, piece.len());
            b.last = b.last.add(piece.len());
        }
        filled += piece.len();
    }
    Some(last_link(link(r, b)?))
}
