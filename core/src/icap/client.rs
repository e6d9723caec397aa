//! The ICAP client of a worker: OPTIONS per service, cached for its TTL; REQMOD with preview
//! ([`super::exchange`]); keep-alive connections reused only after a complete exchange; at
//! most this worker's share of `Max-Connections` exchanges per service at once (each keeps
//! its connection, idle or busy, so that the workers together never hold more connections than
//! the service has threads for: c-icap gives each connection a thread of its own).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::Semaphore;

use crate::icap::codec::{self as icap, IcapError, IcapHead, Options};
use crate::icap::exchange::{preview_size, Reqmod};
use crate::icap::io::{connect, IcapConn};
use crate::icap::options;
use crate::net::peer::PeerAddr;
use crate::net::pool::IdlePool;
use crate::net::transport::PoolKey;
use crate::scan::{Failed, ScanError, ScanOptions, ScanRequest, Target, Verdict};

type ServiceKey = (PoolKey, String);

struct CachedOptions {
    options: Options,
    expires: Instant,
    asked: Instant,
}

/// The per-worker ICAP client.
pub struct IcapClient {
    idle: IdlePool<IcapConn>,
    options: Mutex<HashMap<ServiceKey, CachedOptions>>,
    limits: Mutex<HashMap<ServiceKey, (usize, Arc<Semaphore>)>>,
    /// nginx's worker processes, among which a service's `Max-Connections` is shared.
    workers: std::sync::atomic::AtomicUsize,
}

impl Default for IcapClient {
    fn default() -> Self {
        Self::new()
    }
}

/// Converts codec errors into scan failures.
impl From<IcapError> for ScanError {
    fn from(e: IcapError) -> Self {
        match e {
            IcapError::TooLarge(_) => ScanError::HeaderTooLarge,
            e => ScanError::Protocol(e.to_string()),
        }
    }
}

impl IcapClient {
    pub fn new() -> Self {
        IcapClient {
            idle: IdlePool::default(),
            options: Mutex::new(HashMap::new()),
            limits: Mutex::new(HashMap::new()),
            workers: std::sync::atomic::AtomicUsize::new(1),
        }
    }

    /// How many workers share a service's `Max-Connections`.
    pub fn set_workers(&self, n: usize) {
        self.workers
            .store(n.max(1), std::sync::atomic::Ordering::Relaxed);
    }

    /// One attempt on the server at `addr`.
    pub(crate) async fn scan_one(
        &self,
        addr: &PeerAddr,
        target: &Target,
        req: &ScanRequest,
        opts: &ScanOptions,
    ) -> Result<Verdict, Failed> {
        let service = icap::service_path(&target.url.path).to_string();
        let pool_key = PoolKey::new(addr.clone(), opts.tls.as_ref());
        let key = (pool_key.clone(), service);
        // Nothing was scanned yet if OPTIONS fail: another server may do it.
        let options = self
            .options_for(&key, target, opts, None)
            .await
            .map_err(Failed::BeforeAnswer)?;
        let permits = self.limit(&key, options.max_connections);
        let _permit = match &permits {
            Some(s) => Some(match s.try_acquire() {
                Ok(p) => p,
                Err(_) => {
                    crate::scan::report::note_queued();
                    let started = Instant::now();
                    let waited = tokio::time::timeout(opts.queue_wait, s.acquire()).await;
                    crate::scan::report::note_wait(started.elapsed());
                    match waited {
                        Ok(Ok(p)) => p,
                        Ok(Err(_)) => return Err(Failed::Final(ScanError::Closed)),
                        Err(_) => {
                            return Err(Failed::Final(ScanError::Busy(
                                opts.queue_wait,
                                "the ICAP service's Max-Connections",
                            )))
                        }
                    }
                }
            }),
            None => None,
        };
        if let Some(conn) = self.idle.take(pool_key, opts.keepalive_timeout, |_| true) {
            // Also after 100 Continue: nothing was decided or forwarded yet.
            let tried = self.reqmod(conn, target, &key, &options, req, opts).await;
            if let Some(result) = Failed::after_pooled_try(tried, "ICAP") {
                return result;
            }
        }
        let conn = connect(addr, opts).await.map_err(Failed::BeforeAnswer)?;
        self.reqmod(conn, target, &key, &options, req, opts).await
    }

    /// The semaphore of a service that announced `Max-Connections`: this worker's share.
    fn limit(&self, key: &ServiceKey, max: Option<usize>) -> Option<Arc<Semaphore>> {
        let workers = self.workers.load(std::sync::atomic::Ordering::Relaxed);
        let max = (max? / workers).max(1);
        let mut limits = self.limits.lock().unwrap_or_else(|e| e.into_inner());
        let entry = limits
            .entry(key.clone())
            .or_insert_with(|| (max, Arc::new(Semaphore::new(max))));
        if entry.0 != max {
            *entry = (max, Arc::new(Semaphore::new(max)));
        }
        Some(entry.1.clone())
    }

    fn forget_options(&self, key: &ServiceKey) {
        self.options
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    /// The ISTag of the service on the server at `addr`, from OPTIONS asked at most
    /// `max_age` ago.
    pub(crate) async fn istag(
        &self,
        addr: &PeerAddr,
        target: &Target,
        opts: &ScanOptions,
        max_age: std::time::Duration,
    ) -> Option<String> {
        let service = icap::service_path(&target.url.path).to_string();
        let key = (PoolKey::new(addr.clone(), opts.tls.as_ref()), service);
        match self.options_for(&key, target, opts, Some(max_age)).await {
            Ok(o) => o.istag,
            Err(e) => {
                tracing::debug!("ICAP OPTIONS for the verdict cache failed: {e}");
                None
            }
        }
    }

    /// The service's OPTIONS, from the cache (within their TTL and, if given, `max_age`) or
    /// asked now.
    async fn options_for(
        &self,
        key: &ServiceKey,
        target: &Target,
        opts: &ScanOptions,
        max_age: Option<std::time::Duration>,
    ) -> Result<Options, ScanError> {
        let cache = || self.options.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let fresh = |c: &&CachedOptions| {
            c.expires > now && max_age.is_none_or(|m| now.duration_since(c.asked) < m)
        };
        if let Some(c) = cache().get(key).filter(fresh) {
            return Ok(c.options.clone());
        }
        let authority = target.url.authority();
        // Asked for the verdict cache on a new connection: a server that reloaded may keep
        // old connections on processes that still announce the old ISTag.
        let mut reused = match max_age {
            Some(_) => None,
            None => self
                .idle
                .take(key.0.clone(), opts.keepalive_timeout, |_| true),
        };
        let (options, conn) = loop {
            let fresh = reused.is_none();
            let conn = match reused.take() {
                Some(c) => c,
                None => connect(&key.0.addr, opts).await?,
            };
            match options::ask(conn, &authority, &key.1, opts).await {
                Ok(r) => break r,
                Err(f) if !fresh && f.retry_on_fresh_connection() => continue,
                Err(f) => return Err(f.into_error()),
            }
        };
        if let Some(conn) = conn {
            self.idle.put(key.0.clone(), conn, opts.keepalive);
        }
        let asked = Instant::now();
        let entry = CachedOptions {
            options: options.clone(),
            expires: asked + options.ttl,
            asked,
        };
        cache().insert(key.clone(), entry);
        Ok(options)
    }

    /// One REQMOD on `conn`, step by step; the connection goes back to the pool after a
    /// complete exchange.
    async fn reqmod(
        &self,
        mut conn: IcapConn,
        target: &Target,
        key: &ServiceKey,
        options: &Options,
        req: &ScanRequest,
        opts: &ScanOptions,
    ) -> Result<Verdict, Failed> {
        let transfer = if req.body.is_empty() {
            icap::Transfer::Complete
        } else {
            icap::transfer_for(options, &String::from_utf8_lossy(&req.uri))
        };
        let preview = preview_size(transfer, req);
        let mut x = Reqmod::head(&mut conn, target, &key.1, options, preview, req, opts);
        let head = match preview {
            Some(p) => match x.preview(p).await? {
                (h, true) if h.status == 100 => {
                    return Err(Failed::Final(ScanError::Protocol(
                        "100 Continue after the whole body was sent".into(),
                    )))
                }
                (h, false) if h.status == 100 && !x.cut_short => x.rest().await?,
                // A final answer to the preview ends the exchange cleanly.
                (h, _) => h,
            },
            None => x.whole().await?,
        };
        tracing::debug!(
            "ICAP {} answered {} (preview {preview:?}, body {} bytes)",
            key.1,
            head.status,
            req.body.len()
        );
        let verdict = x.answer(&head).await?;
        let reusable = !x.cut_short && !closes(&head);
        self.check_istag(key, options, &head);
        if let Some(tag) = head.header("istag").or(options.istag.as_deref()) {
            crate::scan::report::note_istag(tag);
        }
        if reusable {
            self.idle.put(key.0.clone(), conn, opts.keepalive);
        }
        Ok(verdict)
    }

    /// An answer under another ISTag than the cached OPTIONS: the service changed, ask again.
    fn check_istag(&self, key: &ServiceKey, options: &Options, head: &IcapHead) {
        if let (Some(now), Some(cached)) = (head.header("istag"), options.istag.as_deref()) {
            if now != cached {
                self.forget_options(key);
            }
        }
    }
}

fn closes(head: &IcapHead) -> bool {
    head.header("connection")
        .is_some_and(|v| v.eq_ignore_ascii_case("close"))
}
