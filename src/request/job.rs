//! Building the scan job on the nginx thread: owned copies of the request line and headers,
//! the body lent (memory) or shared by descriptor (temp file), the location's options; and
//! starting it on the runtime.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use ngx::http::{HttpModuleLocationConf, NgxHttpCoreModule, Request};
use ometascan_core::cache::CacheSettings;
use ometascan_core::headers::HeaderRules;
use ometascan_core::{ScanError, ScanLimit, ScanOptions, ScanRequest, Target};

use crate::cache::ShmStore;
use crate::conf::{LocConf, PassTarget};
use crate::ngx_ext::headers::copy_headers_in;
use crate::ngx_ext::request::RequestExt;
use crate::ngx_ext::value::evaluate;
use crate::runtime::{self, Lender, SlotId};

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
    let build = |r: &mut Request, lender: &Lender| {
        let request = scan_request(r, lender)?;
        let options = scan_options(r, lcf)?;
        let target = scan_target(lcf, target)?;
        let piece = super::pieces::piece(r, &request.headers, request.body.len()).transpose()?;
        Ok(async move {
            match piece {
                Some((piece, spool)) => {
                    scanner
                        .scan_piece(target, request, options, piece, spool)
                        .await
                }
                None => scanner.scan_decoded(target, request, options).await,
            }
        })
    };
    runtime::start(r, build, on_done)
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
/// lent.
fn scan_request(r: &Request, lender: &Lender) -> Result<ScanRequest, ScanError> {
    let host = r.host();
    Ok(ScanRequest {
        method: Bytes::copy_from_slice(r.method_name()),
        uri: Bytes::copy_from_slice(r.raw_uri()),
        headers: copy_headers_in(r),
        host: (!host.is_empty()).then(|| Bytes::copy_from_slice(host)),
        client_addr: String::from_utf8_lossy(r.client_addr()).into_owned(),
        body: lender.body(r)?,
        response: None,
    })
}

/// The location's scan options for this request (`ometascan_set_header` values evaluated).
#[allow(unsafe_code)] // the cache store, made at merge time next
pub fn scan_options(r: &Request, lcf: &LocConf) -> Result<ScanOptions, ScanError> {
    let mut set_headers = Vec::new();
    for h in lcf.set_headers() {
        let Some(value) = evaluate(r, h.value) else {
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
    r.temp_path().unwrap_or_else(std::env::temp_dir)
}
