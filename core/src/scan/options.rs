//! How a location scans, in plain values, and the defaults of every scan setting.

use std::path::PathBuf;
use std::time::Duration;

use crate::body::{multipart, urlencoded};
use crate::headers::HeaderRules;

/// Sanitized bodies up to this size stay in memory; larger ones go to a temp file.
pub const SPILL_THRESHOLD: usize = 1024 * 1024;
/// How long a scan waits for a turn (scan limit, `max_conns`) when nothing else is set.
pub const DEFAULT_QUEUE_WAIT: Duration = Duration::from_secs(10);

/// At most `max` scans of a location at once, per worker (`ometascan_max_scans`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanLimit {
    /// Tells the levels that wrote a limit apart (a number the adapter gives each).
    pub id: usize,
    pub max: usize,
}

/// Largest block page accepted.
pub const MAX_PAGE: usize = 1024 * 1024;
/// Idle connections kept per server by default (`ometascan_keepalive`).
pub const DEFAULT_KEEPALIVE: usize = 32;
/// The default of every scanner timeout and of `ometascan_keepalive_timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The three scanner timeouts of a location.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    pub send: Duration,
    pub read: Duration,
}

/// For tests: the module resolves every value from its configuration.
#[cfg(any(test, feature = "testing"))]
impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: DEFAULT_TIMEOUT,
            send: DEFAULT_TIMEOUT,
            read: DEFAULT_TIMEOUT,
        }
    }
}

/// How a location scans, in plain values.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    pub timeouts: Timeouts,
    pub rules: HeaderRules,
    /// `ometascan_pre_cache`: the module forwards its own copy after an allowed verdict.
    pub pre_cache: bool,
    /// Where a large sanitized body is spilled (nginx's client body temp path).
    pub spill_dir: PathBuf,
    /// Largest block page accepted.
    pub max_page: usize,
    /// TLS to the scanner (`https://`, `icaps://`).
    pub tls: Option<std::sync::Arc<crate::net::tls::TlsClient>>,
    /// Largest sanitized body accepted (the location's `client_max_body_size`; `None`: no
    /// limit): a scanner cannot fill the disk with an endless replacement.
    pub max_sanitized: Option<u64>,
    /// The location's scan limit, if any.
    pub limit: Option<ScanLimit>,
    /// The longest wait for a turn (scan limit, `max_conns`); then the scan fails as busy.
    pub queue_wait: Duration,
    /// Idle connections kept per server (`ometascan_keepalive`; 0: none).
    pub keepalive: usize,
    /// How long an idle connection is kept (`ometascan_keepalive_timeout`).
    pub keepalive_timeout: Duration,
    /// The verdict cache of the location, if any (`ometascan_cache`).
    pub cache: Option<crate::cache::CacheSettings>,
    /// The bounds of reading a body into its objects.
    pub body_limits: BodyLimits,
    /// `ometascan_multipart`: every object a backend's parser hands over scanned alone (off:
    /// the body as sent, decoded from its `Content-Encoding`, as one object).
    pub objects: bool,
    /// `ometascan_clamd_fildes`: objects handed to a clamd on a local socket as descriptors.
    pub clamd_fildes: bool,
}

/// For tests: the module builds a location's options from its configuration, with the
/// defaults the directives declare.
#[cfg(any(test, feature = "testing"))]
impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            timeouts: Timeouts::default(),
            rules: HeaderRules::default(),
            pre_cache: false,
            spill_dir: std::env::temp_dir(),
            max_page: MAX_PAGE,
            tls: None,
            max_sanitized: None,
            limit: None,
            queue_wait: DEFAULT_QUEUE_WAIT,
            keepalive: DEFAULT_KEEPALIVE,
            keepalive_timeout: DEFAULT_TIMEOUT,
            cache: None,
            body_limits: BodyLimits::default(),
            objects: true,
            clamd_fildes: false,
        }
    }
}

/// How deep bodies inside bodies are read by default (`ometascan_body_limits depth=`).
pub const DEFAULT_DEPTH: usize = 10;
/// The deepest reading a location may ask for.
pub const MAX_DEPTH: usize = 64;

/// The bounds of reading a body into its objects; over one, the request is refused (413).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimits {
    /// Parts and header block size of a multipart body.
    pub multipart: multipart::Limits,
    /// Fields of a url-encoded body.
    pub max_fields: usize,
    /// Objects scanned alone in one request.
    pub max_objects: usize,
    /// How far a body's codings are decoded.
    pub decode: crate::body::decode::DecodeLimits,
    /// How deep bodies inside bodies are read (a JSON document in a form field is 2 deep).
    pub max_depth: usize,
}

impl Default for BodyLimits {
    fn default() -> Self {
        BodyLimits {
            multipart: multipart::Limits::default(),
            max_fields: urlencoded::MAX_FIELDS,
            max_objects: 1000,
            decode: crate::body::decode::DecodeLimits::default(),
            max_depth: DEFAULT_DEPTH,
        }
    }
}
