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

/// The same body in one new temp file made like the request's own (`client_body_temp_path`,
/// persistent and clean as nginx or WebDAV asked, same access bits), which replaces it:
/// `(*r).request_body->temp_file` names the new file, the old one is emptied, and the chain
/// returned is one file buffer over the whole body. `None` when the request has no temp file,
/// the file cannot be created or written, or out of memory.
///
/// What needs it: WebDAV's `PUT` renames `temp_file` into place, and `client_body_in_file_only`
/// promises `$request_body_file`; a chain of memory buffers would break both.
///
/// # Safety
/// `r` must be a live main request on the nginx thread whose body nginx has read, and no scan
/// may hold the body (the parts of `body` may be ranges of the old file; they are read before it
/// is emptied).
pub unsafe fn body_in_new_temp_file(
    r: *mut ngx_http_request_t,
    body: &ometascan_core::RequestBody,
) -> Option<*mut ngx_chain_t> {
    // SAFETY: r is live; its body and temp file (when set) are the request's, from its pool.
    let old = unsafe { (*r).request_body.as_ref()?.temp_file };
    if old.is_null() {
        return None;
    }
    // SAFETY: r is live; old is its temp file.
    let tf = unsafe { temp_file_like(r, old) }?;
    // SAFETY: tf's file was just created; its descriptor is open until the pool goes.
    let written = write_body(unsafe { (*tf).file.fd }, body)?;
    // SAFETY: r is live; allocations from its pool.
    let (b, cl) = unsafe {
        (
            ngx_pcalloc((*r).pool, std::mem::size_of::<ngx_buf_t>()) as *mut ngx_buf_t,
            ngx_alloc_chain_link((*r).pool),
        )
    };
    if b.is_null() || cl.is_null() {
        return None;
    }
    // SAFETY: the old temp file's descriptor is open until the pool is destroyed; emptied so a
    // kept file (client_body_in_file_only on) does not keep what the scanner replaced.
    unsafe {
        if (*old).file.fd != NGX_INVALID_FILE {
            libc::ftruncate((*old).file.fd, 0);
        }
    }
    // SAFETY: tf, b and cl are fresh pool memory; the request body now names the new file.
    unsafe {
        (*tf).offset = written as off_t;
        (*tf).file.offset = written as off_t;
        (*b).file = &mut (*tf).file;
        (*b).set_in_file(1);
        (*b).file_pos = 0;
        (*b).file_last = written as off_t;
        (*b).set_last_buf(1);
        (*b).set_last_in_chain(1);
        (*cl).buf = b;
        (*cl).next = ptr::null_mut();
        (*(*r).request_body).temp_file = tf;
    }
    Some(cl)
}

/// A new, empty temp file made like `old` (path, persistence, cleaning, access bits, log
/// level), registered for cleanup in the request pool. `None`: out of memory or not created.
///
/// # Safety
/// `r` must be a live request on the nginx thread and `old` its body's temp file.
unsafe fn temp_file_like(
    r: *mut ngx_http_request_t,
    old: *const ngx_temp_file_t,
) -> Option<*mut ngx_temp_file_t> {
    // SAFETY: r is live; the allocation comes from its pool.
    let (pool, log) = unsafe { ((*r).pool, (*(*r).connection).log) };
    // SAFETY: as above.
    let tf = unsafe { ngx_pcalloc(pool, std::mem::size_of::<ngx_temp_file_t>()) }
        as *mut ngx_temp_file_t;
    // SAFETY: tf is null or fresh pool memory of its type; old is the request's temp file.
    let (tf, old) = unsafe { (tf.as_mut()?, &*old) };
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
    (rc == NGX_OK as ngx_int_t).then_some(tf as *mut ngx_temp_file_t)
}

/// Writes `body` to the open file `fd` from its start; the number of bytes written.
fn write_body(fd: ngx_fd_t, body: &ometascan_core::RequestBody) -> Option<u64> {
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
///
/// # Safety
/// `r` must be a live request.
pub unsafe fn body_in_one_buffer(
    r: *mut ngx_http_request_t,
    body: &ometascan_core::RequestBody,
) -> Option<*mut ngx_chain_t> {
    let len = usize::try_from(body.len()).ok()?;
    // SAFETY: r is live; allocations from its pool (an empty body gets an empty buffer).
    let (b, cl) = unsafe {
        let b = if len == 0 {
            copy_to_buf((*r).pool, &[])
        } else {
            ngx_create_temp_buf((*r).pool, len)
        };
        (b, ngx_alloc_chain_link((*r).pool))
    };
    if b.is_null() || cl.is_null() {
        return None;
    }
    let mut reader = body.reader(64 * 1024);
    let mut filled = 0usize;
    while let Some(piece) = reader.next_chunk() {
        let piece = piece.ok()?;
        if piece.len() > len - filled {
            return None;
        }
        // SAFETY: the buffer has room for len bytes from last; piece fits in what is left.
        unsafe {
            ptr::copy_nonoverlapping(piece.as_ptr(), (*b).last, piece.len());
            (*b).last = (*b).last.add(piece.len());
        }
        filled += piece.len();
    }
    // SAFETY: fresh pool memory.
    unsafe {
        (*b).set_last_buf(1);
        (*b).set_last_in_chain(1);
        (*cl).buf = b;
        (*cl).next = ptr::null_mut();
    }
    Some(cl)
}

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

/// The buffers of `r`'s body, in order, empty ones left out (none when it has no body).
///
/// # Safety
/// `r` must be a live request on the nginx thread whose body nginx has read; what the items
/// point to stays valid while the request body is not changed (its chain and buffers live in
/// the request pool, its temp file is open until the pool goes).
pub unsafe fn body_buffers(r: *mut ngx_http_request_t) -> Vec<Stored> {
    let mut out = Vec::new();
    // SAFETY: r is live; its request_body is null or nginx's, whose chain is well formed.
    let mut cl = unsafe { (*r).request_body.as_ref() }.map_or(ptr::null_mut(), |rb| rb.bufs);
    while !cl.is_null() {
        // SAFETY: cl is a link of the body's chain; its buffer and in-file buffer's file are
        // nginx's, valid as long as the chain.
        let (b, next) = unsafe { (&*(*cl).buf, (*cl).next) };
        if b.in_file() != 0 && !b.file.is_null() {
            let (start, end) = (b.file_pos.max(0) as u64, b.file_last.max(0) as u64);
            if end > start {
                // SAFETY: as above.
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

/// Makes `chain` (`len` bytes) the request's body: its buffers, `Content-Length` and the length
/// nginx forwards. `rb->buf` stays (the upstream module reuses it as its output buffer).
/// `None`: out of memory.
///
/// # Safety
/// `r` must be a live main request on the nginx thread whose body nginx has read, `chain` a
/// chain from its pool.
pub unsafe fn set_body(
    r: *mut ngx_http_request_t,
    chain: *mut ngx_chain_t,
    len: u64,
) -> Option<()> {
    // SAFETY: r is live; its request body is nginx's; the new value lives in the request pool.
    unsafe {
        let rb = (*r).request_body;
        if rb.is_null() {
            return None;
        }
        (*rb).bufs = chain;
        (*r).headers_in.content_length_n = len as off_t;
        let cl = (*r).headers_in.content_length;
        if !cl.is_null() {
            (*cl).value = crate::ngx_ext::headers::pool_str(r, len.to_string().as_bytes())?;
        }
    }
    Some(())
}

/// Takes the body out of the request: the buffers unlinked, the temp file emptied (a kept
/// one, under `client_body_in_file_only`, must not keep the content) and unlinked from the
/// request (`$request_body_file` is empty), the length 0 and no longer chunked. A client's
/// `Transfer-Encoding` stays in the header list: the proxy module recognises and replaces it by
/// its hash, which must therefore stay intact.
///
/// # Safety
/// `r` must be a live main request on the nginx thread, and nothing may hold its body (no
/// scan in flight: the loan was returned).
pub unsafe fn forget_body(r: *mut ngx_http_request_t) {
    // SAFETY: r is live; its request body (when set) and temp file are nginx's, in its pool.
    if let Some(rb) = unsafe { (*r).request_body.as_mut() } {
        // SAFETY: as above; the descriptor is open until the pool goes.
        if let Some(tf) = unsafe { rb.temp_file.as_ref() } {
            if tf.file.fd >= 0 {
                // SAFETY: as above.
                unsafe { libc::ftruncate(tf.file.fd, 0) };
            }
        }
        rb.temp_file = ptr::null_mut();
        rb.bufs = ptr::null_mut();
        rb.rest = 0;
    }
    // SAFETY: r is live; "0" is a static string.
    unsafe {
        (*r).headers_in.content_length_n = 0;
        (*r).headers_in.set_chunked(0);
        let cl = (*r).headers_in.content_length;
        if !cl.is_null() {
            (*cl).value = ngx_str_t {
                len: 1,
                data: c"0".as_ptr() as *mut u8,
            };
        }
    }
}
