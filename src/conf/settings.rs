//! What a request reads from its location: every value resolved when levels are merged,
//! defaults applied (the defaults are declared with the directives, in `declared.rs`).

use std::time::Duration;

use ometascan_core::methods::MethodSet;
use ometascan_core::net::tls::TlsSettings;
use ometascan_core::Timeouts;

use super::{CacheZone, LocConf, MaxScans, OnError, OverSize};

/// What a request uses from its location.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// `ometascan_methods`.
    pub methods: MethodSet,
    /// `ometascan_connect_timeout`, `_send_timeout`, `_read_timeout`.
    pub timeouts: Timeouts,
    /// `ometascan_x_forwarded_for`.
    pub x_forwarded_for: bool,
    /// `ometascan_intercept_errors`.
    pub intercept_errors: bool,
    /// `ometascan_allow_bad_request_traffic`.
    pub allow_bad_request: bool,
    /// `ometascan_pre_cache`.
    pub pre_cache: bool,
    /// `ometascan_log_blocked`.
    pub log_blocked: bool,
    /// `ometascan_keepalive`.
    pub keepalive: usize,
    /// `ometascan_keepalive_timeout`.
    pub keepalive_timeout: Duration,
    /// `ometascan_max_size`.
    pub max_size: Option<(u64, OverSize)>,
    /// `ometascan_on_error`.
    pub on_error: OnError,
    /// `ometascan_max_scans`.
    pub max_scans: Option<MaxScans>,
    /// `ometascan_multipart`.
    pub multipart: bool,
    /// `ometascan_clamd_fildes`.
    pub clamd_fildes: bool,
    /// `ometascan_body_limits`.
    pub body_limits: ometascan_core::BodyLimits,
    /// `ometascan_cache`.
    pub cache: Option<*mut ngx::ffi::ngx_shm_zone_t>,
    /// `ometascan_cache_valid`.
    pub cache_valid: Duration,
    /// `ometascan_cache_revalidate`.
    pub cache_revalidate: Duration,
    /// `ometascan_cache_redis`.
    pub cache_redis: Option<ometascan_core::cache::RedisSpec>,
}

impl Settings {
    /// The values of a merged level, defaults applied.
    pub fn resolve(c: &LocConf) -> Settings {
        Settings {
            methods: c.methods(),
            timeouts: Timeouts {
                connect: c.connect_timeout(),
                send: c.send_timeout(),
                read: c.read_timeout(),
            },
            x_forwarded_for: c.x_forwarded_for(),
            intercept_errors: c.intercept_errors(),
            allow_bad_request: c.allow_bad_request(),
            pre_cache: c.pre_cache(),
            log_blocked: c.log_blocked(),
            keepalive: c.keepalive(),
            keepalive_timeout: c.keepalive_timeout(),
            max_size: c.max_size,
            on_error: c.on_error(),
            max_scans: c.max_scans,
            multipart: c.multipart(),
            clamd_fildes: c.clamd_fildes(),
            body_limits: c.body_limits(),
            cache: match c.cache() {
                CacheZone::Zone(z) => Some(z),
                CacheZone::Off => None,
            },
            cache_valid: c.cache_valid(),
            cache_revalidate: c.cache_revalidate(),
            cache_redis: c.cache_redis(),
        }
    }
}

/// The `ometascan_ssl_*` directives of a merged level for a scanner whose host is `host` (the
/// name to verify unless `ometascan_ssl_name` says another).
pub fn tls_settings(c: &LocConf, host: &str) -> TlsSettings {
    TlsSettings {
        verify: c.ssl_verify(),
        trusted_certificate: c.ssl_trusted_certificate.clone(),
        verify_depth: c.ssl_verify_depth(),
        versions: c.ssl_protocols(),
        ciphers: c.ssl_ciphers(),
        session_reuse: c.ssl_session_reuse(),
        name: c.ssl_name.clone().unwrap_or_else(|| host.to_string()),
        send_sni: c.ssl_server_name(),
    }
}
