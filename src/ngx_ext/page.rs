//! A whole response sent by the module (the scanner's block page), and the question whether
//! `error_page` would answer a status instead.

use ngx::ffi::*;
use ngx::http::{HttpModuleLocationConf, NgxHttpCoreModule, Request};
use ometascan_core::ResponsePage;

use crate::ngx_ext::buf::send_body;
use crate::ngx_ext::headers::{pool_str, push_header_out};
use crate::ngx_ext::request::RequestExt;

/// Whether the location has an `error_page` for `status`.
pub fn has_error_page(r: &Request, status: u16) -> bool {
    let Some(clcf) = NgxHttpCoreModule::location_conf(r) else {
        return false;
    };
    // SAFETY: null, or the location's array of ngx_http_err_page_t in the configuration pool,
    // which outlives every request.
    let Some(pages) = (unsafe { clcf.error_pages.as_ref() }) else {
        return false;
    };
    // SAFETY: as above: the array's elements are ngx_http_err_page_t.
    unsafe { pages.as_slice::<ngx_http_err_page_t>() }
        .iter()
        .any(|p| p.status == status as ngx_int_t)
}

/// Sends the page: its status, its headers (but `Server` and `Date`, which are nginx's) and
/// its body; an answer to `HEAD` carries the page's length and no body. The header must not
/// be sent yet.
pub fn send_page(r: &mut Request, page: &ResponsePage) -> ngx_int_t {
    let error = NGX_ERROR as ngx_int_t;
    let length = match page.head_length {
        Some(n) if page.body.is_empty() && r.is_head() => n.min(off_t::MAX as u64) as off_t,
        _ => page.body.len() as off_t,
    };
    r.as_mut().headers_out.status = page.status as ngx_uint_t;
    r.as_mut().headers_out.content_length_n = length;
    for (name, value) in &page.headers {
        if name.eq_ignore_ascii_case(b"content-type") {
            let Some(v) = pool_str(r, value) else {
                return error;
            };
            r.as_mut().headers_out.content_type = v;
            r.as_mut().headers_out.content_type_len = v.len;
        } else if !name.eq_ignore_ascii_case(b"server")
            && !name.eq_ignore_ascii_case(b"date")
            && push_header_out(r, name, value).is_none()
        {
            return error;
        }
    }
    let rc = r.send_header().0;
    if rc == error || rc > NGX_OK as ngx_int_t || r.header_only() {
        return rc;
    }
    send_body(r, &page.body)
}
