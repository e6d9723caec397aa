//! A whole response sent by the module (the scanner's block page), and the question whether
//! `error_page` would answer a status instead.

use ngx::ffi::*;
use ngx::http::{HttpModuleLocationConf, NgxHttpCoreModule};
use ometascan_core::ResponsePage;

use crate::ngx_ext::buf::send_body;
use crate::ngx_ext::headers::{pool_str, push_header_out};

/// Whether the location has an `error_page` for `status`.
///
/// # Safety
/// `r` must be a live request.
pub unsafe fn has_error_page(r: *mut ngx_http_request_t, status: u16) -> bool {
    // SAFETY: r is live; the core location conf always exists.
    let Some(clcf) = (unsafe { NgxHttpCoreModule::location_conf(&*r) }) else {
        return false;
    };
    let pages = clcf.error_pages;
    if pages.is_null() {
        return false;
    }
    // SAFETY: error_pages is an array of ngx_http_err_page_t.
    unsafe { (*pages).as_slice::<ngx_http_err_page_t>() }
        .iter()
        .any(|p| p.status == status as ngx_int_t)
}

/// Sends the page: its status, its headers (but `Server` and `Date`, which are nginx's) and
/// its body; an answer to `HEAD` carries the page's length and no body.
///
/// # Safety
/// `r` must be a live request whose header is not sent yet.
pub unsafe fn send_page(r: *mut ngx_http_request_t, page: &ResponsePage) -> ngx_int_t {
    let error = NGX_ERROR as ngx_int_t;
    // SAFETY: r is live.
    let head = unsafe { (*r).method } == NGX_HTTP_HEAD as ngx_uint_t;
    let length = match page.head_length {
        Some(n) if page.body.is_empty() && head => n.min(off_t::MAX as u64) as off_t,
        _ => page.body.len() as off_t,
    };
    // SAFETY: r is live.
    unsafe {
        (*r).headers_out.status = page.status as ngx_uint_t;
        (*r).headers_out.content_length_n = length;
    }
    for (name, value) in &page.headers {
        if name.eq_ignore_ascii_case(b"content-type") {
            // SAFETY: r is live; the value lives in its pool.
            let Some(v) = (unsafe { pool_str(r, value) }) else {
                return error;
            };
            // SAFETY: as above.
            unsafe {
                (*r).headers_out.content_type = v;
                (*r).headers_out.content_type_len = v.len;
            }
        } else if !name.eq_ignore_ascii_case(b"server") && !name.eq_ignore_ascii_case(b"date") {
            // SAFETY: r is live and its header not sent.
            if unsafe { push_header_out(r, name, value) }.is_none() {
                return error;
            }
        }
    }
    // SAFETY: r is live.
    let rc = unsafe { ngx_http_send_header(r) };
    // SAFETY: as above.
    if rc == error || rc > NGX_OK as ngx_int_t || unsafe { (*r).header_only() } != 0 {
        return rc;
    }
    // SAFETY: the header was sent.
    unsafe { send_body(r, &page.body) }
}
