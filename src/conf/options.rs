//! What a scan reads of its location, built once when levels are merged: every value resolved,
//! defaults applied (the defaults are declared with the directives, in `declared.rs`), the
//! scanner's TLS client and the cache store made. A request adds only what depends on it (the
//! `ometascan_set_header` values).

use std::path::PathBuf;
use std::sync::Arc;

use ngx::ffi::*;
use ngx::http::{HttpModuleLocationConf, NgxHttpCoreModule};
use ometascan_core::cache::CacheSettings;
use ometascan_core::headers::HeaderRules;
use ometascan_core::net::tls::TlsSettings;
use ometascan_core::scan::options::{DEFAULT_QUEUE_WAIT, MAX_PAGE};
use ometascan_core::{ScanLimit, ScanOptions, Timeouts};

use super::{CacheZone, LocConf};
use crate::cache::ShmStore;

/// The scan options of a merged level; `cf` is the configuration being merged, whose core
/// location configuration (merged before any module after the core's) gives the largest body
/// and the temp path.
///
/// # Safety
/// `cf` is the configuration nginx passes to a module's `merge_loc_conf`.
pub unsafe fn build(cf: *mut ngx_conf_t, c: &LocConf) -> ScanOptions {
    // SAFETY: cf is the configuration being merged (caller); its context is the level's.
    let core = NgxHttpCoreModule::location_conf(unsafe { &*cf });
    let max_sanitized = core
        .map(|c| c.client_max_body_size)
        .filter(|&n| n > 0)
        .map(|n| n as u64);
    // SAFETY: null, or the level's temp path in the configuration pool.
    let temp = core.and_then(|c| unsafe { c.client_body_temp_path.as_ref() });
    let spill_dir = temp.map_or_else(std::env::temp_dir, |p| {
        PathBuf::from(String::from_utf8_lossy(p.name.as_bytes()).into_owned())
    });
    ScanOptions {
        timeouts: Timeouts {
            connect: c.connect_timeout(),
            send: c.send_timeout(),
            read: c.read_timeout(),
        },
        rules: HeaderRules {
            x_forwarded_for: c.x_forwarded_for(),
            set_headers: Vec::new(),
        },
        pre_cache: c.pre_cache(),
        spill_dir,
        max_page: MAX_PAGE,
        tls: c.scanner.as_ref().and_then(|b| b.tls.clone()),
        max_sanitized,
        limit: c.max_scans.map(|m| ScanLimit {
            id: m.id,
            max: m.max,
        }),
        queue_wait: c.max_scans.map_or(DEFAULT_QUEUE_WAIT, |m| m.wait),
        keepalive: c.keepalive(),
        keepalive_timeout: c.keepalive_timeout(),
        cache: match c.cache() {
            CacheZone::Off => None,
            &CacheZone::Zone(zone) => Some(CacheSettings {
                // SAFETY: the zone is one of this configuration's; the store reads it only
                // from requests, once the cycle runs and the zone's init has run.
                store: Arc::new(unsafe { ShmStore::new(zone) }),
                valid: c.cache_valid(),
                revalidate: c.cache_revalidate(),
                redis: c.cache_redis().clone(),
            }),
        },
        body_limits: *c.body_limits(),
        objects: c.multipart(),
        clamd_fildes: c.clamd_fildes(),
    }
}

/// The `ometascan_ssl_*` directives of a merged level for a scanner whose host is `host` (the
/// name to verify unless `ometascan_ssl_name` says another).
pub fn tls_settings(c: &LocConf, host: &str) -> TlsSettings {
    TlsSettings {
        verify: c.ssl_verify(),
        trusted_certificate: c.ssl_trusted_certificate.clone(),
        verify_depth: c.ssl_verify_depth() as u32,
        versions: c.ssl_protocols().clone(),
        ciphers: c.ssl_ciphers().clone(),
        session_reuse: c.ssl_session_reuse(),
        name: c.ssl_name.clone().unwrap_or_else(|| host.to_string()),
        send_sni: c.ssl_server_name(),
    }
}
