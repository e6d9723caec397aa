//! Building the scan job on the nginx thread: owned copies of the request line and headers,
//! the body lent (memory) or shared by descriptor (temp file), the location's options; and
//! starting it on the runtime.

use std::fs::File;
use std::os::fd::FromRawFd;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use ngx::ffi::*;
use ngx::http::{HttpModuleLocationConf, NgxHttpCoreModule, Request};
use ometascan_core::cache::CacheSettings;
use ometascan_core::headers::HeaderRules;
use ometascan_core::{
    BodyPart, RequestBody, ScanError, ScanLimit, ScanOptions, ScanOutcome, ScanRequest, Target,
};

use super::ctx::{self, State};
use crate::cache::ShmStore;
use crate::conf::{LocConf, PassTarget};
use crate::ngx_ext::body::{body_buffers, Stored};
use crate::ngx_ext::conf::complex_value;
use crate::ngx_ext::headers::copy_headers_in;
use crate::ngx_ext::request::RequestExt;
use crate::runtime::{self, Loan, SlotId};

/// The request's cleanup: nginx is terminating it (client gone, worker stopping, ...) while a
/// scan may run. The scan is cancelled; the request stays blocked until the scan has let go of
/// its memory.
unsafe extern "C" fn cleanup_handler(data: *mut std::ffi::c_void) {
    // SAFETY: data is the request this cleanup was added to (`add_cleanup`); nginx runs
    // request cleanups on its thread while the request is still allocated.
    let r = unsafe { Request::from_ngx_http_request(data as *mut ngx_http_request_t) };
    // SAFETY: the ctx borrow ends in this call, before the pool goes; no other is live.
    if let Some(ctx) = unsafe { ctx::get(r) } {
        if let State::Scanning(slot) = ctx.state {
            runtime::cancel(slot);
        }
    }
}

pub fn module_error(msg: impl Into<String>) -> ScanError {
    ScanError::Module(msg.into())
}

/// Starts the scan of `r` (a main request whose body nginx has read); `on_done` gets its
/// outcome on the nginx thread.
pub fn start(
    r: &mut Request,
    lcf: &LocConf,
    target: &PassTarget,
    on_done: runtime::OnDone,
) -> Result<SlotId, ScanError> {
    let scanner =
        runtime::scanner().ok_or_else(|| module_error("the scanner runtime is not running"))?;
    r.add_cleanup(cleanup_handler)
        .ok_or_else(|| module_error("no memory for the request cleanup"))?;
    let loan = Loan::new();
    let request = scan_request(r, &loan)?;
    let options = scan_options(r, lcf)?;
    let target = scan_target(lcf, target)?;
    let piece = match super::pieces::piece(r, &request.headers, request.body.len()) {
        Some(Err(e)) => return Err(e),
        Some(Ok(p)) => Some(p),
        None => None,
    };
    let future = async move {
        match piece {
            Some((piece, spool)) => {
                scanner
                    .scan_piece(target, request, options, piece, spool)
                    .await
            }
            None => scanner.scan_decoded(target, request, options).await,
        }
    };
    // SAFETY: a live main request on nginx's thread, with the cancelling cleanup added above;
    // its memory lent under the loan stays unchanged until the loan's message (the caller
    // holds the request, which is blocked until the scan is over).
    unsafe { runtime::start(r.raw(), loan, future, on_done) }
        .ok_or_else(|| module_error("the scanner runtime is not running"))
}

/// Where the location's request scans go: its scanner and that scanner's servers.
fn scan_target(lcf: &LocConf, target: &PassTarget) -> Result<Target, ScanError> {
    let built = lcf
        .scanner
        .as_ref()
        .ok_or_else(|| module_error(format!("no servers for scanner \"{}\"", target.shown)))?;
    Ok(crate::conf::scanner::scan_target(target, built))
}

/// The request as the scanner gets it: owned copies of the request line and headers, the body
/// lent under `loan`.
fn scan_request(r: &Request, loan: &Loan) -> Result<ScanRequest, ScanError> {
    let host = r.host();
    Ok(ScanRequest {
        method: Bytes::copy_from_slice(r.method_name()),
        uri: Bytes::copy_from_slice(r.raw_uri()),
        headers: copy_headers_in(r),
        host: (!host.is_empty()).then(|| Bytes::copy_from_slice(host)),
        client_addr: String::from_utf8_lossy(r.client_addr()).into_owned(),
        body: body_parts(r, loan)?,
        response: None,
    })
}

/// The body as nginx stored it: memory buffers lent, file ranges over a duplicate of the
/// temp file's descriptor.
fn body_parts(r: &Request, loan: &Loan) -> Result<RequestBody, ScanError> {
    let mut body = RequestBody::new();
    let mut files: Vec<(ngx_fd_t, Arc<File>)> = Vec::new();
    for stored in body_buffers(r) {
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
                // SAFETY: the buffer is the request's body (pool or client buffer), unchanged
                // until the loan's message: the request is held and blocked until then, and
                // nothing replaces its body while a scan runs.
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
pub fn scan_options(r: &Request, lcf: &LocConf) -> Result<ScanOptions, ScanError> {
    let mut set_headers = Vec::new();
    for h in lcf.set_headers() {
        // SAFETY: the value was compiled for this location's configuration (lcf is it).
        let Some(value) = (unsafe { complex_value(r, h.value) }) else {
            return Err(module_error(format!(
                "cannot evaluate \"ometascan_set_header {}\"",
                String::from_utf8_lossy(&h.name)
            )));
        };
        set_headers.push((h.name.clone(), Bytes::from(value)));
    }
    let clcf = NgxHttpCoreModule::location_conf(r);
    let max_sanitized = clcf
        .map(|c| c.client_max_body_size)
        .filter(|&n| n > 0)
        .map(|n| n as u64);
    let spill_dir = spill_dir(r);
    let s = &lcf.settings;
    Ok(ScanOptions {
        timeouts: s.timeouts,
        rules: HeaderRules {
            x_forwarded_for: s.x_forwarded_for,
            set_headers,
        },
        pre_cache: s.pre_cache,
        spill_dir,
        tls: lcf.scanner.as_ref().and_then(|b| b.tls.clone()),
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
        clamd_fildes: s.clamd_fildes,
        cache: s.cache.map(|zone| CacheSettings {
            // SAFETY: the zone belongs to the running cycle's configuration.
            store: Arc::new(unsafe { ShmStore::new(zone) }),
            valid: s.cache_valid,
            revalidate: s.cache_revalidate,
            redis: s.cache_redis.clone(),
        }),
        ..ScanOptions::default()
    })
}

/// Where bodies the module keeps go: the location's `client_body_temp_path`.
pub fn spill_dir(r: &Request) -> PathBuf {
    NgxHttpCoreModule::location_conf(r)
        // SAFETY: null, or the location's temp path in the configuration pool, which
        // outlives every request.
        .and_then(|c| unsafe { c.client_body_temp_path.as_ref() })
        .map(|p| PathBuf::from(String::from_utf8_lossy(p.name.as_bytes()).into_owned()))
        .unwrap_or_else(std::env::temp_dir)
}

/// A scan result for a scan that could not start.
pub fn not_started(e: ScanError) -> ScanOutcome {
    ScanOutcome::failed(e)
}
