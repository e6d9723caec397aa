//! Building the scan job on the nginx thread: owned copies of the request line and headers,
//! the body lent (memory) or shared by descriptor (temp file), the location's options; and
//! starting it on the runtime.

use std::fs::File;
use std::os::fd::FromRawFd;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use ngx::ffi::*;
use ngx::http::{HttpModuleLocationConf, NgxHttpCoreModule};
use ometascan_core::cache::CacheSettings;
use ometascan_core::headers::HeaderRules;
use ometascan_core::{
    BodyPart, RequestBody, ScanError, ScanLimit, ScanOptions, ScanOutcome, ScanRequest, Target,
};

use super::ctx::{self, State};
use crate::cache::ShmStore;
use crate::conf::{LocConf, PassTarget};
use crate::ngx_ext::buf::{body_buffers, Stored};
use crate::ngx_ext::headers::copy_headers_in;
use crate::runtime::{self, Loan, SlotId};

/// The request's cleanup: nginx is terminating it (client gone, worker stopping, ...) while a
/// scan may run. The scan is cancelled; the request stays blocked until the scan has let go of
/// its memory.
unsafe extern "C" fn cleanup_handler(data: *mut std::ffi::c_void) {
    let r = data as *mut ngx_http_request_t;
    // SAFETY: data is the request this cleanup was added to; nginx runs request cleanups
    // while the request is still allocated.
    if let Some(ctx) = unsafe { ctx::get(r) } {
        if let State::Scanning(slot) = ctx.state {
            runtime::cancel(slot);
        }
    }
}

fn module_error(msg: impl Into<String>) -> ScanError {
    ScanError::Module(msg.into())
}

/// Starts the scan of `r`; `on_done` gets its outcome on the nginx thread.
///
/// # Safety
/// `r` must be a live main request whose body nginx has read.
pub unsafe fn start(
    r: *mut ngx_http_request_t,
    lcf: &LocConf,
    target: &PassTarget,
    on_done: runtime::OnDone,
) -> Result<SlotId, ScanError> {
    let scanner =
        runtime::scanner().ok_or_else(|| module_error("the scanner runtime is not running"))?;
    // SAFETY: r is live.
    let cln = unsafe { ngx_http_cleanup_add(r, 0) };
    if cln.is_null() {
        return Err(module_error("no memory for the request cleanup"));
    }
    // SAFETY: cln is a fresh cleanup of r.
    unsafe {
        (*cln).handler = Some(cleanup_handler);
        (*cln).data = r as *mut std::ffi::c_void;
    }
    let loan = Loan::new();
    // SAFETY: r is live; the body is lent under the loan (the request is blocked meanwhile).
    let request = unsafe { scan_request(r, &loan) }?;
    // SAFETY: r is live.
    let options = unsafe { scan_options(r, lcf) }?;
    let peers = lcf
        .peers
        .clone()
        .ok_or_else(|| module_error(format!("no servers for scanner \"{}\"", target.shown)))?;
    let target = Target {
        url: target.url.clone(),
        group: target.upstream as usize,
        peers,
    };
    let future = async move { scanner.scan_decoded(target, request, options).await };
    // SAFETY: r is a live main request with the cancelling cleanup added above.
    unsafe { runtime::start(r, loan, future, on_done) }
        .ok_or_else(|| module_error("the scanner runtime is not running"))
}

/// The request as the scanner gets it.
///
/// # Safety
/// `r` must be a live request; its body buffers stay valid and unchanged until the loan's
/// message (the request is blocked while the scan runs).
unsafe fn scan_request(r: *mut ngx_http_request_t, loan: &Loan) -> Result<ScanRequest, ScanError> {
    // SAFETY: r is live.
    let (headers, server) = unsafe { (copy_headers_in(r), (*r).headers_in.server) };
    // SAFETY: r is live; per the contract the body may be lent.
    let body = unsafe { body_parts(r, loan) }?;
    // SAFETY: r and its connection are live.
    let (method, uri, addr) = unsafe {
        (
            (*r).method_name.as_bytes(),
            (*r).unparsed_uri.as_bytes(),
            (*(*r).connection).addr_text.as_bytes(),
        )
    };
    Ok(ScanRequest {
        method: Bytes::copy_from_slice(method),
        uri: Bytes::copy_from_slice(uri),
        headers,
        host: (server.len > 0).then(|| Bytes::copy_from_slice(server.as_bytes())),
        client_addr: String::from_utf8_lossy(addr).into_owned(),
        body,
    })
}

/// The body as nginx stored it: memory buffers lent, file ranges over a duplicate of the
/// temp file's descriptor.
///
/// # Safety
/// As for [`scan_request`].
unsafe fn body_parts(r: *mut ngx_http_request_t, loan: &Loan) -> Result<RequestBody, ScanError> {
    let mut body = RequestBody::new();
    let mut files: Vec<(ngx_fd_t, Arc<File>)> = Vec::new();
    // SAFETY: per the contract, r is live and its body read.
    let buffers = unsafe { body_buffers(r) };
    for stored in buffers {
        match stored {
            Stored::File { fd, start, end } => {
                let file = match files.iter().find(|(f, _)| *f == fd) {
                    Some((_, file)) => file.clone(),
                    None => {
                        let file = Arc::new(dup_file(fd)?);
                        files.push((fd, file.clone()));
                        file
                    }
                };
                body.push(BodyPart::File {
                    file,
                    offset: start,
                    len: end - start,
                });
            }
            Stored::Memory { pos, len } => {
                // SAFETY: the buffer is the request's and stays valid until the loan's message
                // (the request is blocked until then).
                body.push(BodyPart::Memory(unsafe { loan.lend(pos, len) }));
            }
        }
    }
    Ok(body)
}

/// A descriptor of its own for the temp file, so the scan reads it whatever nginx does.
fn dup_file(fd: ngx_fd_t) -> Result<File, ScanError> {
    // SAFETY: plain fcntl on a descriptor nginx keeps open.
    let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        let e = std::io::Error::last_os_error();
        return Err(module_error(format!(
            "dup() of the request body file failed ({e})"
        )));
    }
    // SAFETY: dup is a new descriptor that nothing else owns.
    Ok(unsafe { File::from_raw_fd(dup) })
}

/// The location's scan options for this request (`ometascan_set_header` values evaluated).
///
/// # Safety
/// `r` must be a live request.
unsafe fn scan_options(
    r: *mut ngx_http_request_t,
    lcf: &LocConf,
) -> Result<ScanOptions, ScanError> {
    let mut set_headers = Vec::new();
    for h in lcf.set_headers() {
        let mut value = ngx_str_t::empty();
        // SAFETY: r is live; the complex value belongs to the configuration.
        if unsafe { ngx_http_complex_value(r, h.value, &mut value) } != NGX_OK as ngx_int_t {
            return Err(module_error(format!(
                "cannot evaluate \"ometascan_set_header {}\"",
                String::from_utf8_lossy(&h.name)
            )));
        }
        set_headers.push((h.name.clone(), Bytes::copy_from_slice(value.as_bytes())));
    }
    // SAFETY: r is live; its core location conf exists.
    let clcf = unsafe { NgxHttpCoreModule::location_conf(&*r) };
    let max_sanitized = clcf
        .map(|c| c.client_max_body_size)
        .filter(|&n| n > 0)
        .map(|n| n as u64);
    let spill_dir = clcf
        .and_then(|c| c.client_body_temp_path.as_ref())
        .map(|p| PathBuf::from(String::from_utf8_lossy(p.name.as_bytes()).into_owned()))
        .unwrap_or_else(std::env::temp_dir);
    let s = &lcf.settings;
    Ok(ScanOptions {
        timeouts: s.timeouts,
        rules: HeaderRules {
            x_forwarded_for: s.x_forwarded_for,
            set_headers,
        },
        pre_cache: s.pre_cache,
        spill_dir,
        tls: lcf.tls.clone(),
        max_sanitized,
        limit: s.max_scans.map(|m| ScanLimit {
            id: m.id,
            max: m.max,
        }),
        queue_wait: s
            .max_scans
            .map_or(ometascan_core::scan::options::DEFAULT_QUEUE_WAIT, |m| {
                m.wait
            }),
        keepalive: s.keepalive,
        keepalive_timeout: s.keepalive_timeout,
        body_limits: s.body_limits,
        objects: s.multipart,
        cache: s.cache.map(|zone| CacheSettings {
            // SAFETY: the zone belongs to the running cycle's configuration.
            store: Arc::new(unsafe { ShmStore::new(zone) }),
            valid: s.cache_valid,
            revalidate: s.cache_revalidate,
            redis: s.cache_redis,
        }),
        ..ScanOptions::default()
    })
}

/// A scan result for a scan that could not start.
pub fn not_started(e: ScanError) -> ScanOutcome {
    ScanOutcome::failed(e)
}
