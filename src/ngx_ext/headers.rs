//! Request header fields: read for the scanner, changed for the backend; strings in the
//! request pool.

use std::ptr;

use bytes::Bytes;
use ngx::ffi::*;

/// Copies `bytes` into the request pool as an ngx_str_t; `None` when out of memory.
///
/// # Safety
/// `r` must be a live request.
pub unsafe fn pool_str(r: *mut ngx_http_request_t, bytes: &[u8]) -> Option<ngx_str_t> {
    // SAFETY: the request pool outlives every use of the string.
    unsafe { ngx_str_t::from_bytes((*r).pool, bytes) }
}

/// Every live element of a header list, in order.
///
/// # Safety
/// `list` must be a valid nginx list of `ngx_table_elt_t`, unchanged while the result is used.
unsafe fn elements(list: *mut ngx_list_t) -> Vec<*mut ngx_table_elt_t> {
    let mut out = Vec::new();
    // SAFETY: per the contract, every part holds `nelts` elements.
    let mut part: *mut ngx_list_part_t = unsafe { &mut (*list).part };
    while !part.is_null() {
        // SAFETY: as above.
        let (elts, n, next) = unsafe {
            (
                (*part).elts as *mut ngx_table_elt_t,
                (*part).nelts,
                (*part).next,
            )
        };
        for i in 0..n {
            // SAFETY: i < nelts.
            let h = unsafe { elts.add(i) };
            // SAFETY: h is an element of the list; hash 0 marks a deleted one.
            if unsafe { (*h).hash } != 0 {
                out.push(h);
            }
        }
        part = next;
    }
    out
}

/// The client's header fields, copied (name, value).
///
/// # Safety
/// `r` must be a live request.
pub unsafe fn copy_headers_in(r: *mut ngx_http_request_t) -> Vec<(Bytes, Bytes)> {
    // SAFETY: r is live; its header list is valid.
    let list = unsafe { elements(&mut (*r).headers_in.headers) };
    list.into_iter()
        .map(|h| {
            // SAFETY: h is a live element of the request's list.
            let h = unsafe { &*h };
            (
                Bytes::copy_from_slice(h.key.as_bytes()),
                Bytes::copy_from_slice(h.value.as_bytes()),
            )
        })
        .collect()
}

/// Every client header field of that (lower-case) name, duplicates included.
///
/// # Safety
/// `r` must be a live request.
pub unsafe fn headers_in_named(
    r: *mut ngx_http_request_t,
    lower_name: &[u8],
) -> Vec<*mut ngx_table_elt_t> {
    // SAFETY: r is live; its header list is valid.
    let list = unsafe { elements(&mut (*r).headers_in.headers) };
    list.into_iter()
        // SAFETY: each element is live.
        .filter(|&h| unsafe { (*h).key.as_bytes() }.eq_ignore_ascii_case(lower_name))
        .collect()
}

/// Sets a client header field for the backend: every copy the client sent gets the value
/// (nginx's modules forward each element of the list, so a copy cannot be taken out); the
/// field is added when the client sent none. `None` when out of memory.
///
/// # Safety
/// `r` must be a live request.
pub unsafe fn set_header_in(r: *mut ngx_http_request_t, name: &[u8], value: &[u8]) -> Option<()> {
    // SAFETY: r is live.
    let v = unsafe { pool_str(r, value) }?;
    let lower = name.to_ascii_lowercase();
    // SAFETY: r is live.
    let copies = unsafe { headers_in_named(r, &lower) };
    if !copies.is_empty() {
        for h in copies {
            // SAFETY: h is a live element; the value lives in the request pool.
            unsafe { (*h).value = v };
        }
        return Some(());
    }
    // SAFETY: r is live; the element is initialised below before anyone reads it.
    let (k, lk, h) = unsafe {
        (
            pool_str(r, name)?,
            pool_str(r, &lower)?,
            ngx_list_push(&mut (*r).headers_in.headers) as *mut ngx_table_elt_t,
        )
    };
    if h.is_null() {
        return None;
    }
    // SAFETY: h is a fresh element of the list; every field is set.
    unsafe {
        ptr::write_bytes(h, 0, 1);
        (*h).hash = ngx_hash_key(lk.data, lk.len);
        (*h).key = k;
        (*h).value = v;
        (*h).lowcase_key = lk.data;
        if lower == b"content-type" {
            (*r).headers_in.content_type = h;
        }
    }
    Some(())
}

/// Adds a response header field; `None` when out of memory.
///
/// # Safety
/// `r` must be a live request whose header is not sent yet.
pub unsafe fn push_header_out(r: *mut ngx_http_request_t, name: &[u8], value: &[u8]) -> Option<()> {
    // SAFETY: r is live; the strings live in its pool.
    let (k, v) = unsafe { (pool_str(r, name)?, pool_str(r, value)?) };
    // SAFETY: as above.
    let (h, lower) = unsafe {
        (
            ngx_list_push(&mut (*r).headers_out.headers) as *mut ngx_table_elt_t,
            ngx_pnalloc((*r).pool, k.len) as *mut u8,
        )
    };
    if h.is_null() || lower.is_null() {
        return None;
    }
    // SAFETY: h is a fresh element; lower has room for the key.
    unsafe {
        ptr::write_bytes(h, 0, 1);
        ngx_strlow(lower, k.data, k.len);
        (*h).hash = 1;
        (*h).key = k;
        (*h).value = v;
        (*h).lowcase_key = lower;
    }
    Some(())
}
