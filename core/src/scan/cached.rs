//! One object's scan through the verdict cache: looked up first (shared memory, then Redis),
//! scanned on a miss, the verdict kept when it may be. See [`crate::cache`].

use std::sync::Arc;
use std::time::Instant;

use crate::cache::entry::{self, CachedVerdict, Entry};
use crate::cache::redis::RedisError;
use crate::cache::{now_ms, CacheEvent, CacheSettings, CacheStatus, Key, ObjectDigest};
use crate::scan::{ScanOptions, ScanOutcome, ScanRequest, Scanner, Target};
use crate::url::Scheme;

/// What the lookup found.
enum Found {
    Hit(CachedVerdict),
    Expired,
    Miss,
}

impl Scanner {
    /// Scans one object (a whole body, or a part of a form) unless the location's verdict
    /// cache already knows its verdict.
    pub async fn scan_object(
        &self,
        target: &Target,
        req: &ScanRequest,
        opts: &ScanOptions,
    ) -> ScanOutcome {
        let Some(cache) = opts.cache.as_ref() else {
            return self.scan_report(target, req, opts).await;
        };
        let started = Instant::now();
        let digest = match ObjectDigest::of(target, req, opts) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!("verdict cache not used: reading the body failed: {e}");
                return self.scan_uncached(target, req, opts).await;
            }
        };
        // The scanner's state a verdict belongs to: an ICAP service's ISTag, clamd's database
        // version; asked again after `ometascan_cache_revalidate`. Unknown: not cached.
        let state = match target.url.scheme {
            Scheme::Http | Scheme::Https => None,
            _ => Some(self.scanner_state(target, opts, cache.revalidate).await),
        };
        let istag = match state {
            None => None,
            Some(Some(s)) => Some(crate::cache::key::istag_digest(&s)),
            Some(None) => return self.scan_uncached(target, req, opts).await,
        };
        let key = digest.key(istag);
        let status = match self.look_up(cache, &key).await {
            Found::Hit(verdict) => {
                tracing::debug!("verdict cache hit {}", key.hex());
                return ScanOutcome::from_cache(verdict.into_verdict(), started.elapsed());
            }
            Found::Expired => CacheStatus::Expired,
            Found::Miss => CacheStatus::Miss,
        };
        let (mut outcome, answered) = self.scan_noted(target, req, opts).await;
        outcome.cache = Some(status);
        let Some(verdict) = outcome.result.as_ref().ok().and_then(CachedVerdict::of) else {
            return outcome;
        };
        // Kept under the ISTag the answer came under: a verdict belongs to that service state.
        let key = match (answered, istag) {
            (Some(now), Some(before)) if now != before => {
                cache.store.count(CacheEvent::Invalidation);
                digest.key(Some(now))
            }
            _ => key,
        };
        self.keep(cache, key, verdict);
        outcome
    }

    async fn scan_uncached(
        &self,
        target: &Target,
        req: &ScanRequest,
        opts: &ScanOptions,
    ) -> ScanOutcome {
        let mut outcome = self.scan_report(target, req, opts).await;
        outcome.cache = Some(CacheStatus::Bypass);
        outcome
    }

    /// Shared memory first; Redis when it has nothing valid (a Redis hit is copied into
    /// shared memory). A Redis failure of any kind is a miss.
    async fn look_up(&self, cache: &CacheSettings, key: &Key) -> Found {
        let now = now_ms();
        let mut expired = false;
        if let Some(bytes) = cache.store.get(key) {
            match entry::decode(key, &bytes) {
                Ok(e) if e.expires_ms > now => {
                    cache.store.count(CacheEvent::Hit);
                    return Found::Hit(e.verdict);
                }
                Ok(_) => expired = true,
                Err(_) => tracing::warn!("verdict cache entry {} unreadable", key.hex()),
            }
        }
        if let Some(spec) = &cache.redis {
            let redis = self.redis(spec);
            match redis.get(key).await {
                Ok(Some(bytes)) => match entry::decode(key, &bytes) {
                    Ok(e) if e.expires_ms > now => {
                        // Never longer than this location would keep it.
                        let until = e.expires_ms.min(now + cache.valid.as_millis() as u64);
                        cache.store.put(key, &bytes, until);
                        cache.store.count(CacheEvent::RedisHit);
                        cache.store.count(CacheEvent::Hit);
                        return Found::Hit(e.verdict);
                    }
                    Ok(_) => expired = true,
                    Err(e) => {
                        cache.store.count(CacheEvent::RedisError);
                        tracing::warn!("verdict cache: redis {}: {e}", redis.shown());
                    }
                },
                // Resting after a failure that was counted and logged already.
                Ok(None) | Err(RedisError::Resting(_)) => {}
                Err(e) => {
                    cache.store.count(CacheEvent::RedisError);
                    tracing::warn!("verdict cache: {e}");
                }
            }
        }
        if expired {
            cache.store.count(CacheEvent::Expired);
            Found::Expired
        } else {
            cache.store.count(CacheEvent::Miss);
            Found::Miss
        }
    }

    /// Stores a verdict in shared memory now and in Redis in the background (the request does
    /// not wait for Redis).
    fn keep(&self, cache: &CacheSettings, key: Key, verdict: CachedVerdict) {
        let expires_ms = now_ms() + cache.valid.as_millis() as u64;
        let bytes = entry::encode(
            &key,
            &Entry {
                verdict,
                expires_ms,
            },
        );
        cache.store.put(&key, &bytes, expires_ms);
        let Some(spec) = &cache.redis else { return };
        let (redis, store, valid) = (self.redis(spec), Arc::clone(&cache.store), cache.valid);
        tokio::spawn(async move {
            match redis.set(&key, &bytes, valid).await {
                Ok(()) | Err(RedisError::Resting(_)) => {}
                Err(e) => {
                    store.count(CacheEvent::RedisError);
                    tracing::warn!("verdict cache: {e}");
                }
            }
        });
    }
}
