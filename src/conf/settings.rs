//! The default of every directive, applied when levels are merged: a request reads only
//! resolved values.

use std::time::Duration;

use ometascan_core::methods::MethodSet;
use ometascan_core::net::tls::{self, TlsSettings, TlsVersion};
use ometascan_core::scan::options::{DEFAULT_KEEPALIVE, DEFAULT_TIMEOUT};
use ometascan_core::Timeouts;

use ometascan_core::cache;

use super::{CacheZone, LocConf, MaxScans, OnError, OverSize};

/// `ometascan_verify_depth` when not set.
const DEFAULT_VERIFY_DEPTH: u32 = 1;

/// What a request uses from its location.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// `ometascan_methods`: the six methods and every request with a body.
    pub methods: MethodSet,
    /// `ometascan_connect_timeout`, `_send_timeout`, `_read_timeout`: 60s each.
    pub timeouts: Timeouts,
    /// `ometascan_x_forwarded_for`: off.
    pub x_forwarded_for: bool,
    /// `ometascan_intercept_errors`: off.
    pub intercept_errors: bool,
    /// `ometascan_allow_bad_request_traffic`: off.
    pub allow_bad_request: bool,
    /// `ometascan_pre_cache`: off.
    pub pre_cache: bool,
    /// `ometascan_log_blocked`: on.
    pub log_blocked: bool,
    /// `ometascan_keepalive`: 32.
    pub keepalive: usize,
    /// `ometascan_keepalive_timeout`: 60s.
    pub keepalive_timeout: Duration,
    /// `ometascan_max_size`: none.
    pub max_size: Option<(u64, OverSize)>,
    /// `ometascan_on_error`: block.
    pub on_error: OnError,
    /// `ometascan_max_scans`: none (`wait` 10s when set without one).
    pub max_scans: Option<MaxScans>,
    /// `ometascan_multipart`: on.
    pub multipart: bool,
    /// `ometascan_body_limits`: the core's defaults.
    pub body_limits: ometascan_core::BodyLimits,
    /// `ometascan_cache`: off.
    pub cache: Option<*mut ngx::ffi::ngx_shm_zone_t>,
    /// `ometascan_cache_valid`: 10m.
    pub cache_valid: Duration,
    /// `ometascan_cache_revalidate`: 30s.
    pub cache_revalidate: Duration,
    /// `ometascan_cache_redis`: off (`timeout=200ms` when set without one).
    pub cache_redis: Option<ometascan_core::cache::RedisSpec>,
}

impl Settings {
    /// The values of a merged level, defaults applied.
    pub fn resolve(c: &LocConf) -> Settings {
        Settings {
            methods: c.methods.clone().unwrap_or_default(),
            timeouts: Timeouts {
                connect: c.connect_timeout.unwrap_or(DEFAULT_TIMEOUT),
                send: c.send_timeout.unwrap_or(DEFAULT_TIMEOUT),
                read: c.read_timeout.unwrap_or(DEFAULT_TIMEOUT),
            },
            x_forwarded_for: c.x_forwarded_for.unwrap_or(false),
            intercept_errors: c.intercept_errors.unwrap_or(false),
            allow_bad_request: c.allow_bad_request.unwrap_or(false),
            pre_cache: c.pre_cache.unwrap_or(false),
            log_blocked: c.log_blocked.unwrap_or(true),
            keepalive: c.keepalive.unwrap_or(DEFAULT_KEEPALIVE),
            keepalive_timeout: c.keepalive_timeout.unwrap_or(DEFAULT_TIMEOUT),
            max_size: c.max_size,
            on_error: c.on_error.unwrap_or(OnError::Block),
            max_scans: c.max_scans,
            multipart: c.multipart.unwrap_or(true),
            body_limits: c.body_limits.unwrap_or_default(),
            cache: match c.cache {
                Some(CacheZone::Zone(z)) => Some(z),
                Some(CacheZone::Off) | None => None,
            },
            cache_valid: c.cache_valid.unwrap_or(cache::DEFAULT_VALID),
            cache_revalidate: c.cache_revalidate.unwrap_or(cache::DEFAULT_REVALIDATE),
            cache_redis: c.cache_redis.flatten(),
        }
    }
}

/// The `ometascan_ssl_*` directives of a merged level for a scanner whose host is `host`:
/// verification off, depth 1, TLS 1.2 and 1.3 (older versions are not in the TLS library),
/// every TLS 1.2 suite, session reuse on, the host as the name, no SNI.
pub fn tls_settings(c: &LocConf, host: &str) -> TlsSettings {
    TlsSettings {
        verify: c.ssl_verify.unwrap_or(false),
        trusted_certificate: c.ssl_trusted_certificate.clone(),
        verify_depth: c.ssl_verify_depth.unwrap_or(DEFAULT_VERIFY_DEPTH),
        versions: c
            .ssl_protocols
            .clone()
            .unwrap_or_else(|| vec![TlsVersion::Tls12, TlsVersion::Tls13]),
        ciphers: c
            .ssl_ciphers
            .clone()
            .unwrap_or_else(|| tls::TLS12_SUITES.to_vec()),
        session_reuse: c.ssl_session_reuse.unwrap_or(true),
        name: c.ssl_name.clone().unwrap_or_else(|| host.to_string()),
        send_sni: c.ssl_server_name.unwrap_or(false),
    }
}
