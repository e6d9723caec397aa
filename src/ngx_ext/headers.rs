//! Request header fields: read for the scanner, changed for the backend; response fields
//! added; strings in the request pool (which lives as long as the request).

use std::ptr;

use bytes::Bytes;
use ngx::ffi::*;
use ngx::http::Request;

/// Copies `bytes` into the request pool as an ngx_str_t; `None` when out of memory.
pub fn pool_str(r: &Request, bytes: &[u8]) -> Option<ngx_str_t> {
    // SAFETY: the request's pool is live; the string is used while the request is.
    unsafe { ngx_str_t::from_bytes(r.pool().as_ptr(), bytes) }
}

/// Every live element of a header list of the request, in order.
fn elements(list: &ngx_list_t) -> Vec<*mut ngx_table_elt_t> {
    let mut out = Vec::new();
    let mut part: *const ngx_list_part_t = &list.part;
    while !part.is_null() {
        // SAFETY: a part of nginx's list in the request pool; it holds `nelts` elements.
        let part_ref = unsafe { &*part };
        let elts = part_ref.elts as *mut ngx_table_elt_t;
        for i in 0..part_ref.nelts {
            // SAFETY: i < nelts.
            let h = unsafe { elts.add(i) };
            // SAFETY: h is an element of the list; hash 0 marks a deleted one.
            if unsafe { (*h).hash } != 0 {
                out.push(h);
            }
        }
        part = part_ref.next;
    }
    out
}

/// The client's header fields, copied (name, value).
pub fn copy_headers_in(r: &Request) -> Vec<(Bytes, Bytes)> {
    elements(&r.as_ref().headers_in.headers)
        .into_iter()
        .map(|h| {
            // SAFETY: h is a live element of the request's list; its strings are in the
            // request's header buffer or pool.
            let h = unsafe { &*h };
            (
                Bytes::copy_from_slice(h.key.as_bytes()),
                Bytes::copy_from_slice(h.value.as_bytes()),
            )
        })
        .collect()
}

/// The response's header fields as the filters after the module would send them: the list
/// (fields whose hash is 0 are deleted ones) and `Content-Type`, kept apart by nginx.
pub fn copy_headers_out(r: &Request) -> Vec<(Bytes, Bytes)> {
    let out = &r.as_ref().headers_out;
    let mut fields: Vec<(Bytes, Bytes)> = Vec::new();
    if out.content_type.len > 0 {
        fields.push((
            Bytes::from_static(b"Content-Type"),
            Bytes::copy_from_slice(out.content_type.as_bytes()),
        ));
    }
    if out.content_length_n >= 0 && out.content_length.is_null() {
        fields.push((
            Bytes::from_static(b"Content-Length"),
            Bytes::from(out.content_length_n.to_string()),
        ));
    }
    for h in elements(&out.headers) {
        // SAFETY: h is a live element of the response's list; its strings are in the
        // request's pool or the upstream's buffer, alive with the request.
        let h = unsafe { &*h };
        if h.hash != 0 {
            fields.push((
                Bytes::copy_from_slice(h.key.as_bytes()),
                Bytes::copy_from_slice(h.value.as_bytes()),
            ));
        }
    }
    fields
}

/// Every client header field of that (lower-case) name, duplicates included.
fn headers_in_named(r: &Request, lower_name: &[u8]) -> Vec<*mut ngx_table_elt_t> {
    elements(&r.as_ref().headers_in.headers)
        .into_iter()
        // SAFETY: each element is live, its key in the request's header buffer or pool.
        .filter(|&h| unsafe { (*h).key.as_bytes() }.eq_ignore_ascii_case(lower_name))
        .collect()
}

/// The value of the first client header field of that (lower-case) name, copied.
pub fn header_in(r: &Request, lower_name: &[u8]) -> Option<Vec<u8>> {
    let first = *headers_in_named(r, lower_name).first()?;
    // SAFETY: a live element of the request's list, its value in the header buffer or pool.
    Some(unsafe { (*first).value.as_bytes() }.to_vec())
}

/// Gives every copy of a client header field the value (nginx's modules forward each element
/// of the list, so a copy cannot be taken out); with `add`, the field is added when the client
/// sent none. `None` when out of memory.
fn replace_header_in(r: &mut Request, name: &[u8], value: &[u8], add: bool) -> Option<()> {
    let v = pool_str(r, value)?;
    let lower = name.to_ascii_lowercase();
    let copies = headers_in_named(r, &lower);
    if !copies.is_empty() || !add {
        for h in copies {
            // SAFETY: h is a live element of the request's list; the value is in its pool.
            unsafe { (*h).value = v };
        }
        return Some(());
    }
    let (k, lk) = (pool_str(r, name)?, pool_str(r, &lower)?);
    let headers = &mut r.as_mut().headers_in;
    // SAFETY: a new element of the request's list, from its pool; null checked; every field
    // is set below before anyone reads it.
    let h = unsafe { (ngx_list_push(&mut headers.headers) as *mut ngx_table_elt_t).as_mut() }?;
    // SAFETY: h is the element just pushed, of its type.
    unsafe { ptr::write_bytes(h as *mut ngx_table_elt_t, 0, 1) };
    // SAFETY: lk is pool memory of lk.len bytes.
    h.hash = unsafe { ngx_hash_key(lk.data, lk.len) };
    h.key = k;
    h.value = v;
    h.lowcase_key = lk.data;
    if lower == b"content-type" {
        headers.content_type = h;
    }
    Some(())
}

/// Sets a client header field for the backend: every copy the client sent gets the value; the
/// field is added when the client sent none. `None` when out of memory.
pub fn set_header_in(r: &mut Request, name: &[u8], value: &[u8]) -> Option<()> {
    replace_header_in(r, name, value, true)
}

/// Gives every copy the client sent of a header field the value, adding none. `None` when out
/// of memory.
pub fn set_header_in_copies(r: &mut Request, name: &[u8], value: &[u8]) -> Option<()> {
    replace_header_in(r, name, value, false)
}

/// Adds a response header field (the header must not be sent yet); `None` when out of memory.
pub fn push_header_out(r: &mut Request, name: &[u8], value: &[u8]) -> Option<()> {
    let (k, v) = (pool_str(r, name)?, pool_str(r, value)?);
    // SAFETY: an allocation from the request's pool; null checked.
    let lower = unsafe { ngx_pnalloc(r.pool().as_ptr(), k.len) } as *mut u8;
    if lower.is_null() {
        return None;
    }
    // SAFETY: a new element of the request's response list, from its pool; null checked; every
    // field is set below before anyone reads it.
    let h = unsafe {
        (ngx_list_push(&mut r.as_mut().headers_out.headers) as *mut ngx_table_elt_t).as_mut()
    }?;
    // SAFETY: h is the element just pushed; lower has room for the key.
    unsafe {
        ptr::write_bytes(h as *mut ngx_table_elt_t, 0, 1);
        ngx_strlow(lower, k.data, k.len);
    }
    h.hash = 1;
    h.key = k;
    h.value = v;
    h.lowcase_key = lower;
    Some(())
}

/// What nginx's not-modified filter reads of a conditional request and its response.
pub struct Conditional<'a> {
    /// `If-Unmodified-Since` or `If-Match` is present (preconditions that may fail).
    pub preconditions: bool,
    pub if_modified_since: Option<&'a [u8]>,
    pub if_none_match: Option<&'a [u8]>,
    /// The response's `ETag`.
    pub etag: Option<&'a [u8]>,
    /// The response's last modification, -1 when unknown.
    pub last_modified: time_t,
}

/// The conditional fields of `r` and the validators of its response.
pub fn conditional(r: &Request) -> Conditional<'_> {
    let (hin, hout) = (&r.as_ref().headers_in, &r.as_ref().headers_out);
    // SAFETY: each is null or an element of the request's header lists, alive with the request.
    let value = |h: *mut ngx_table_elt_t| unsafe { h.as_ref() }.map(|h| h.value.as_bytes());
    Conditional {
        preconditions: !hin.if_unmodified_since.is_null() || !hin.if_match.is_null(),
        if_modified_since: value(hin.if_modified_since),
        if_none_match: value(hin.if_none_match),
        etag: value(hout.etag),
        last_modified: hout.last_modified_time,
    }
}

/// An HTTP date as nginx reads it (`NGX_ERROR` when it is none).
pub fn parse_http_time(value: &[u8]) -> time_t {
    // SAFETY: nginx's date parser reads `len` bytes of the value and nothing else.
    unsafe { ngx_parse_http_time(value.as_ptr() as *mut u8, value.len()) }
}

/// The response head for a body the module put in place of the backend's: its length, its
/// type if given; no coding, no validators. `None`: out of memory.
pub fn replace_head(r: &mut Request, len: u64, content_type: Option<&[u8]>) -> Option<()> {
    let ct = match content_type {
        Some(ct) => Some(pool_str(r, ct)?),
        None => None,
    };
    let out = &mut r.as_mut().headers_out;
    out.content_length_n = len.min(off_t::MAX as u64) as off_t;
    for h in [
        &mut out.content_length,
        &mut out.content_encoding,
        &mut out.etag,
    ] {
        // SAFETY: null, or an element of the response's list; hash 0 deletes it.
        if let Some(e) = unsafe { h.as_mut() } {
            e.hash = 0;
        }
        *h = ptr::null_mut();
    }
    out.last_modified_time = -1;
    if let Some(v) = ct {
        out.content_type = v;
        out.content_type_len = v.len;
        out.content_type_lowcase = ptr::null_mut();
    }
    Some(())
}
