//! The status endpoint: `location = /ometascan_status { ometascan_status; }` answers `GET`
//! with the counters of all workers ([`shm`]) in Prometheus text format ([`render`]).

mod render;
pub mod shm;

use std::ffi::{c_char, c_void};
use std::ptr;

use bytes::Bytes;
use ngx::ffi::*;
use ngx::http::{HttpModuleLocationConf, Method, NgxHttpCoreModule, Request};
use ometascan_core::ResponsePage;

pub use shm::{
    add_zone, claim_worker_slot, counted, finished, release_worker_slot, response_counted,
    response_finished, server_health, started,
};

/// `ometascan_status;`: makes the location answer with the counters.
pub unsafe extern "C" fn set_status(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    _conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: cf is the location being configured; its core conf exists.
    if let Some(clcf) = unsafe { NgxHttpCoreModule::location_conf_mut(&*cf) } {
        clcf.handler = Some(status_handler);
    }
    ptr::null_mut()
}

unsafe extern "C" fn status_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx calls a content handler on its thread with a request it frees only after
    // finalizing it with what this call returns.
    let r = unsafe { Request::from_ngx_http_request(r) };
    if !matches!(r.method(), Method::GET | Method::HEAD) {
        return NGX_HTTP_NOT_ALLOWED as ngx_int_t;
    }
    let rc = r.discard_request_body().0;
    if rc != NGX_OK as ngx_int_t {
        return rc;
    }
    let Some(s) = shm::stats() else {
        return NGX_HTTP_SERVICE_UNAVAILABLE as ngx_int_t;
    };
    let page = ResponsePage {
        status: 200,
        headers: vec![(
            Bytes::from_static(b"Content-Type"),
            Bytes::from_static(b"text/plain; version=0.0.4"),
        )],
        body: Bytes::from(render::render(s)),
        head_length: None,
    };
    // Nothing was sent yet.
    crate::ngx_ext::page::send_page(r, &page)
}
