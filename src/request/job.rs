//! Building the scan job on the nginx thread: owned copies of the request line and headers,
//! the body lent (memory) or shared by descriptor (temp file), the location's options; and
//! starting it on the runtime.

use std::path::PathBuf;

use bytes::Bytes;
use ngx::http::Request;
use ometascan_core::{ScanError, ScanOptions, ScanRequest, Target};

use crate::conf::{LocConf, PassTarget};
use crate::ngx_ext::headers::copy_headers_in;
use crate::ngx_ext::request::RequestExt;
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

/// The location's scan options for this request: what merging built, with the
/// `ometascan_set_header` values evaluated.
pub fn scan_options(r: &Request, lcf: &LocConf) -> Result<ScanOptions, ScanError> {
    let mut options = lcf
        .options
        .clone()
        .ok_or_else(|| module_error("the location has no scan options"))?;
    for h in lcf.set_headers().into_iter().flatten() {
        let Some(value) = h.value.evaluate(r) else {
            return Err(module_error(format!(
                "cannot evaluate \"ometascan_set_header {}\"",
                String::from_utf8_lossy(&h.name)
            )));
        };
        options
            .rules
            .set_headers
            .push((h.name.clone(), Bytes::from(value)));
    }
    Ok(options)
}

/// Where bodies the module keeps go: the location's `client_body_temp_path`.
pub fn spill_dir(r: &Request) -> PathBuf {
    r.temp_path().unwrap_or_else(std::env::temp_dir)
}
