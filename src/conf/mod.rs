//! The module's configuration. A level's [`LocConf`] keeps what its directives said
//! (`None`: not set there); merging takes what an inner level left unset from the level
//! above and resolves the [`Settings`] a request uses, every default applied in one place
//! ([`settings`]).
//!
//! Files: `commands` the directive table (README order), `directives` and `ssl` the
//! directive handlers, `settings` the defaults, `merge` inheritance and the checks `nginx -t`
//! makes, `scanner` what is built from a location's scanner directives when merging.

mod cache;
mod commands;
mod directives;
mod merge;
mod policy;
mod scanner;
pub mod settings;
mod ssl;

use std::time::Duration;

use bytes::Bytes;
use ngx::ffi::*;
use ometascan_core::methods::MethodSet;
use ometascan_core::net::tls::{Suite, TlsClient, TlsVersion};
use ometascan_core::upstream::balancer::PeerSpec;
use ometascan_core::upstream::health::HealthParams;
use ometascan_core::ScannerUrl;

pub use commands::COMMANDS;
pub use merge::{create_loc_conf, merge_loc_conf};
pub use settings::Settings;

/// Where `ometascan_pass` sends scans.
pub struct PassTarget {
    pub url: ScannerUrl,
    /// The URL as written, for log lines.
    pub shown: String,
    /// nginx's upstream for the host: an `upstream {}` block of that name, or an implicit one
    /// that nginx resolves at startup.
    pub upstream: *mut ngx_http_upstream_srv_conf_t,
}

pub enum Pass {
    Off,
    Scan(Box<PassTarget>),
}

/// One `ometascan_set_header` field; the value is compiled for nginx variables.
pub struct SetHeader {
    pub name: Bytes,
    pub value: *mut ngx_http_complex_value_t,
}

/// What a body over `ometascan_max_size` gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverSize {
    /// 413, nothing forwarded.
    Reject,
    /// Forwarded unscanned, logged at `warn`.
    Pass,
}

/// What a failed scan means (`ometascan_on_error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnError {
    /// 502/504/503, nothing forwarded.
    #[default]
    Block,
    /// Forwarded unscanned, logged at `warn`.
    Pass,
}

/// `ometascan_max_scans`: at most `max` at once per worker in the locations that inherit it
/// from the level it is written at (`id`), waiting at most `wait` for a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxScans {
    pub max: usize,
    pub wait: Duration,
    pub id: usize,
}

/// `ometascan_cache`: no verdict cache, or the shared memory zone of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheZone {
    Off,
    Zone(*mut ngx_shm_zone_t),
}

/// One level's directives, as written (`None`: not set at this level), and after merging what
/// a request uses.
#[derive(Default)]
pub struct LocConf {
    pub pass: Option<Pass>,
    pub methods: Option<MethodSet>,
    pub connect_timeout: Option<Duration>,
    pub send_timeout: Option<Duration>,
    pub read_timeout: Option<Duration>,
    pub x_forwarded_for: Option<bool>,
    pub intercept_errors: Option<bool>,
    pub allow_bad_request: Option<bool>,
    /// Where `ometascan_allow_bad_request_traffic on` was written, for the merge-time check.
    pub allow_bad_request_at: Option<String>,
    pub set_headers: Option<Vec<SetHeader>>,
    pub pre_cache: Option<bool>,
    pub ssl_trusted_certificate: Option<String>,
    pub ssl_verify: Option<bool>,
    pub ssl_verify_depth: Option<u32>,
    pub ssl_protocols: Option<Vec<TlsVersion>>,
    pub ssl_ciphers: Option<Vec<Suite>>,
    pub ssl_session_reuse: Option<bool>,
    pub ssl_name: Option<String>,
    pub ssl_server_name: Option<bool>,
    pub log_blocked: Option<bool>,
    pub keepalive: Option<usize>,
    pub keepalive_timeout: Option<Duration>,
    pub health_check: Option<HealthParams>,
    /// `ometascan_bypass`: compiled values, evaluated per request.
    pub bypass: Option<Vec<*mut ngx_http_complex_value_t>>,
    pub max_size: Option<(u64, OverSize)>,
    pub on_error: Option<OnError>,
    pub multipart: Option<bool>,
    /// `ometascan_body_limits`.
    pub body_limits: Option<ometascan_core::BodyLimits>,
    pub max_scans: Option<MaxScans>,
    pub cache: Option<CacheZone>,
    pub cache_valid: Option<Duration>,
    pub cache_revalidate: Option<Duration>,
    /// `Some(None)`: `ometascan_cache_redis off`.
    pub cache_redis: Option<Option<ometascan_core::cache::RedisSpec>>,

    /// What a request uses: every value resolved, defaults applied (set when merging).
    pub settings: Settings,
    /// TLS client of a `https://` or `icaps://` scanner, made when merging.
    pub tls: Option<std::sync::Arc<TlsClient>>,
    /// The servers of the scanner's group, read from nginx's upstream when merging.
    pub peers: Option<std::sync::Arc<Vec<PeerSpec>>>,
}

impl LocConf {
    /// The scanner of this location, unless scanning is off or not configured.
    pub fn target(&self) -> Option<&PassTarget> {
        match &self.pass {
            Some(Pass::Scan(t)) => Some(t),
            _ => None,
        }
    }

    pub fn set_headers(&self) -> &[SetHeader] {
        self.set_headers.as_deref().unwrap_or(&[])
    }
}

/// The location configuration a directive writes to.
///
/// # Safety
/// `conf` must be the pointer nginx passes for an NGX_HTTP_LOC_CONF_OFFSET directive.
unsafe fn lcf<'a>(conf: *mut std::ffi::c_void) -> &'a mut LocConf {
    // SAFETY: nginx passes our own LocConf, created by create_loc_conf.
    unsafe { &mut *(conf as *mut LocConf) }
}
