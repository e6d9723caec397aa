//! The verdict cache: a scanner's verdict on an object, kept under a hash of the object and of
//! the service that judged it, so that the same bytes are not scanned twice.
//!
//! Two levels: a store shared by the workers of one machine (the adapter's shared-memory
//! zone, behind [`VerdictStore`]) and, optionally, a Redis server shared by several machines
//! ([`redis`]). Entries are `allowed` or `blocked` with the page (never a sanitized body), and
//! stay valid until their time runs out or, for an ICAP service, its `ISTag` changes (the tag
//! is part of the key). The lookup itself is [`crate::Scanner::scan_object`].

pub mod entry;
pub mod key;
pub mod redis;

use std::sync::Arc;
use std::time::Duration;

pub use entry::{CachedVerdict, Entry};
pub use key::{Key, ObjectDigest};
pub use redis::{Redis, RedisSpec};

/// The longest time a service's ISTag is trusted without asking OPTIONS again while a cache is
/// on, unless set otherwise (`ometascan_cache_revalidate`).
pub const DEFAULT_REVALIDATE: Duration = Duration::from_secs(30);
/// How long a verdict stays valid unless set otherwise (`ometascan_cache_valid`).
pub const DEFAULT_VALID: Duration = Duration::from_secs(600);
/// How long a Redis operation may take unless set otherwise.
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(200);

/// What the cache did for a request (`$ometascan_cache_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CacheStatus {
    /// Every object's verdict came from the cache: nothing was sent to the scanner.
    Hit,
    /// A verdict was found but its time had run out; scanned again.
    Expired,
    /// Scanned (and stored, when the verdict may be kept).
    Miss,
    /// A cache is configured but could not be used (the body could not be read for hashing,
    /// or the ICAP service announced no ISTag): scanned as without a cache.
    Bypass,
}

impl CacheStatus {
    pub fn name(self) -> &'static str {
        match self {
            CacheStatus::Hit => "HIT",
            CacheStatus::Expired => "EXPIRED",
            CacheStatus::Miss => "MISS",
            CacheStatus::Bypass => "BYPASS",
        }
    }

    /// The status of a request of several objects: the least favourable of theirs.
    pub fn worst(a: Option<Self>, b: Option<Self>) -> Option<Self> {
        match (a, b) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }
}

/// What a store counts for the status page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheEvent {
    Hit,
    Miss,
    Expired,
    /// A service answered under another ISTag than the one looked up with: what was cached
    /// under the old one is not used any more.
    Invalidation,
    RedisHit,
    RedisError,
}

/// The first level: a store of encoded entries shared by the workers (the adapter's shared
/// memory). Never blocks for long: a short lock at most.
pub trait VerdictStore: Send + Sync {
    /// The bytes stored under `key`, if any.
    fn get(&self, key: &Key) -> Option<Vec<u8>>;
    /// Stores `bytes` under `key` until `expires_ms` (Unix time), making room if needed.
    fn put(&self, key: &Key, bytes: &[u8], expires_ms: u64);
    fn count(&self, event: CacheEvent);
}

/// How a location caches (`ometascan_cache` and its companions).
#[derive(Clone)]
pub struct CacheSettings {
    pub store: Arc<dyn VerdictStore>,
    pub valid: Duration,
    pub revalidate: Duration,
    pub redis: Option<RedisSpec>,
}

impl std::fmt::Debug for CacheSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheSettings")
            .field("valid", &self.valid)
            .field("revalidate", &self.revalidate)
            .field("redis", &self.redis)
            .finish()
    }
}

/// Now, in milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
