//! What the request flow reads and changes on nginx's request structure, as methods of ngx's
//! [`Request`]: the request line, whether a body is announced, how nginx is asked to store the
//! body, the body reading and the phase engine, the module's ctx slot and the cleanups.
//!
//! A `&Request` is a request nginx has allocated and not freed, used on nginx's thread (see
//! [`super`]); every pointer field read below (pool, connection, main, ctx array) is set by
//! nginx when it creates the request and stays valid until the request is freed.

use std::ffi::c_void;

use ngx::ffi::*;
use ngx::http::Request;

/// The request as the module's callbacks see it.
pub trait RequestExt {
    /// The raw request, for nginx's functions.
    fn raw(&self) -> *mut ngx_http_request_t;
    /// The method as the client wrote it.
    fn method_name(&self) -> &[u8];
    /// Whether the method is `PUT`.
    fn is_put(&self) -> bool;
    /// Whether the method is `HEAD`.
    fn is_head(&self) -> bool;
    /// The request target as the client wrote it.
    fn raw_uri(&self) -> &[u8];
    /// The client's address as text.
    fn client_addr(&self) -> &[u8];
    /// The host the request names (`Host`, or the request line's), empty when none.
    fn host(&self) -> &[u8];
    /// Whether the request announced a body: a positive `Content-Length`, chunked, or an HTTP/2
    /// or HTTP/3 stream still open after its headers (which nginx marks as chunked).
    fn announces_body(&self) -> bool;
    /// Whether the location has a content handler of its own (`proxy_pass`, `fastcgi_pass`, ...).
    fn has_content_handler(&self) -> bool;
    /// Asks nginx to read the body into a kept temp file, as WebDAV does: in a file only,
    /// persistent, removed with the request unless renamed, readable by the group.
    fn body_in_kept_file(&mut self);
    /// Whether the body is to be stored in a file only (`client_body_in_file_only`, WebDAV).
    fn body_in_file_only(&self) -> bool;
    /// Whether the body is to be stored in one buffer (`client_body_in_single_buffer`).
    fn body_in_single_buffer(&self) -> bool;
    /// Holds the request while a scan runs: one more reference on the main request, the
    /// client's connection watched for a close, writes ignored.
    fn hold(&mut self);
    /// Whether something other than the caller holds the main request (its count above one).
    fn held_elsewhere(&self) -> bool;
    /// Whether nginx may have cleared the module's ctx slot of this request: an internal
    /// redirect, or a filter finalizing it (realip's rule).
    fn ctx_may_be_cleared(&self) -> bool;
    /// The module's ctx slot.
    fn ctx_ptr(&self) -> *mut c_void;
    /// Points the module's ctx slot at `value`.
    fn set_ctx_ptr(&self, value: *mut c_void);
    /// Blocks the request (nginx does not free it while blocked, as for its thread tasks).
    fn block(&mut self);
    /// Takes back one `block`.
    fn unblock(&mut self);
    /// Whether the request's upstream connection is gone (nginx's upstream finalized it:
    /// the response came from a backend whose connection is closed, or from its cache).
    fn upstream_closed(&self) -> bool;
    /// Removes the response's header fields (before a page replaces the response).
    fn clean_header(&mut self);
    /// Ends the response from one of the module's filters with `status` (nginx's error page,
    /// or the `error_page` for it); what the filter returns.
    fn filter_finalize(&mut self, status: ngx_int_t) -> ngx_int_t;
    /// Has nginx close the client's connection instead of sending more of this response.
    fn close_connection(&mut self);
    /// The protocol version of the client's request, as its request line (or HTTP/2, HTTP/3)
    /// named it (`NGX_HTTP_VERSION_*`).
    fn client_version(&self) -> ngx_uint_t;
    /// Where the location stores bodies (`client_body_temp_path`).
    fn temp_path(&self) -> Option<std::path::PathBuf>;
    /// A name for this request that no other request of any nginx on the machine has at the
    /// same time: the worker's process id, the connection's number, the request's start.
    fn serial(&self) -> String;
}

impl RequestExt for Request {
    fn raw(&self) -> *mut ngx_http_request_t {
        self as *const Request as *mut ngx_http_request_t
    }

    fn method_name(&self) -> &[u8] {
        // The method name points into the request's header buffer, kept while the request is.
        self.as_ref().method_name.as_bytes()
    }

    fn is_put(&self) -> bool {
        self.as_ref().method == NGX_HTTP_PUT as ngx_uint_t
    }

    fn is_head(&self) -> bool {
        self.as_ref().method == NGX_HTTP_HEAD as ngx_uint_t
    }

    fn raw_uri(&self) -> &[u8] {
        // As for the method name.
        self.as_ref().unparsed_uri.as_bytes()
    }

    fn client_addr(&self) -> &[u8] {
        // SAFETY: the connection outlives its requests; its address text is in its pool.
        unsafe { (*self.connection()).addr_text.as_bytes() }
    }

    fn host(&self) -> &[u8] {
        // Empty, or pointing into the request's header buffer.
        self.as_ref().headers_in.server.as_bytes()
    }

    fn serial(&self) -> String {
        let r = self.as_ref();
        // SAFETY: the connection outlives its requests.
        let number = unsafe { (*self.connection()).number };
        format!(
            "{} {number} {}.{:03} {:x}",
            std::process::id(),
            r.start_sec,
            r.start_msec,
            self as *const Request as usize
        )
    }

    fn upstream_closed(&self) -> bool {
        // SAFETY: null, or the request's upstream, allocated from its pool and live with it.
        unsafe { self.as_ref().upstream.as_ref() }.is_some_and(|u| u.peer.connection.is_null())
    }

    fn announces_body(&self) -> bool {
        let h = &self.as_ref().headers_in;
        h.content_length_n > 0 || h.chunked() != 0
    }

    fn has_content_handler(&self) -> bool {
        self.as_ref().content_handler.is_some()
    }

    fn body_in_kept_file(&mut self) {
        let r = self.as_mut();
        r.set_request_body_in_file_only(1);
        r.set_request_body_in_persistent_file(1);
        r.set_request_body_in_clean_file(1);
        r.set_request_body_file_group_access(1);
        r.set_request_body_file_log_level(0);
    }

    fn body_in_file_only(&self) -> bool {
        self.as_ref().request_body_in_file_only() != 0
    }

    fn body_in_single_buffer(&self) -> bool {
        self.as_ref().request_body_in_single_buf() != 0
    }

    fn hold(&mut self) {
        let r = self.as_mut();
        // SAFETY: a request's main request outlives it (it is the request itself, or the one
        // whose pool holds this subrequest).
        let main = unsafe { &mut *r.main };
        main.set_count(main.count() + 1);
        r.read_event_handler = Some(ngx_http_test_reading);
        r.write_event_handler = Some(ngx_http_request_empty_handler);
    }

    fn held_elsewhere(&self) -> bool {
        // SAFETY: as in `hold`.
        unsafe { (*self.as_ref().main).count() > 1 }
    }

    fn ctx_may_be_cleared(&self) -> bool {
        let r = self.as_ref();
        r.internal() != 0 || r.filter_finalize() != 0
    }

    fn ctx_ptr(&self) -> *mut c_void {
        // SAFETY: nginx allocates the ctx array with a slot for every HTTP module when it
        // creates the request; ctx_index is ours, set by nginx before any request.
        unsafe { *self.as_ref().ctx.add(crate::module().ctx_index) }
    }

    fn set_ctx_ptr(&self, value: *mut c_void) {
        self.set_module_ctx(value, crate::module());
    }

    fn block(&mut self) {
        let r = self.as_mut();
        r.set_blocked(r.blocked() + 1);
    }

    fn unblock(&mut self) {
        let r = self.as_mut();
        r.set_blocked(r.blocked().saturating_sub(1));
    }

    fn clean_header(&mut self) {
        // SAFETY: a live request on nginx's thread.
        unsafe { ngx_http_clean_header(self.raw()) }
    }

    fn filter_finalize(&mut self, status: ngx_int_t) -> ngx_int_t {
        // SAFETY: a live request in one of the module's filters, called inside the content
        // handler's or a finalization's call, which holds the request; nginx clears the response
        // head and sends the error page (or error_page's answer) for the status.
        unsafe {
            ngx_http_filter_finalize_request(
                self.raw(),
                std::ptr::addr_of_mut!(crate::ngx_http_ometascan_module),
                status,
            )
        }
    }

    fn close_connection(&mut self) {
        // SAFETY: the request's connection outlives it.
        unsafe { (*self.connection()).set_error(1) };
    }

    fn client_version(&self) -> ngx_uint_t {
        (match self.as_ref().http_protocol.as_bytes() {
            b"HTTP/1.0" => NGX_HTTP_VERSION_10,
            b"HTTP/2.0" => NGX_HTTP_VERSION_20,
            // NGX_HTTP_VERSION_30, which nginx before 1.25 does not define.
            b"HTTP/3.0" => 3000,
            _ => NGX_HTTP_VERSION_11,
        }) as ngx_uint_t
    }

    fn temp_path(&self) -> Option<std::path::PathBuf> {
        use ngx::http::{HttpModuleLocationConf, NgxHttpCoreModule};
        let clcf = NgxHttpCoreModule::location_conf(self)?;
        // SAFETY: null, or the location's temp path in the configuration pool, which outlives
        // every request.
        let path = unsafe { clcf.client_body_temp_path.as_ref() }?;
        let name = String::from_utf8_lossy(path.name.as_bytes()).into_owned();
        Some(std::path::PathBuf::from(name))
    }
}

/// A request nginx terminated while it was blocked waits for its last unblock: nginx set the
/// connection's active request to finish it then (as for its own thread tasks). Runs that
/// request's write handler once `r` is unblocked, then the posted requests.
///
/// # Safety
/// `r` must be a live request on nginx's thread; nginx may free it and its connection's
/// requests in this call: the caller must not use `r` afterwards.
pub unsafe fn finish_terminated(r: *mut ngx_http_request_t) {
    // SAFETY: r is live (caller); its connection outlives it, and the connection's data is
    // its active request (or null), which nginx keeps allocated until it finishes it.
    unsafe {
        let c = (*r).connection;
        let active = (*c).data as *mut ngx_http_request_t;
        if (*r).blocked() == 0 && !active.is_null() {
            if let Some(handler) = (*active).write_event_handler {
                handler(active);
            }
        }
        ngx_http_run_posted_requests(c);
    }
}
