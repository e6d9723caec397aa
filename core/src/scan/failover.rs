//! The per-worker scanner: picks a server of the scanner's group, hands the scan to the
//! protocol client of the URL's scheme, and moves on to another server while no byte of an
//! answer arrived.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::cache::{Redis, RedisSpec};
use crate::clamd::ClamdClient;
use crate::http::HttpClient;
use crate::icap::IcapClient;
use crate::notices::Notices;
use crate::scan::gates::{Gate, Gates};
use crate::scan::report::{note_server, Notes, ScanOutcome, ANSWER};
use crate::scan::{Failed, ScanError, ScanOptions, ScanRequest, Target, Verdict};
use crate::upstream::balancer::Balancer;
use crate::url::Scheme;

/// The per-worker scanner client.
pub struct Scanner {
    http: HttpClient,
    icap: IcapClient,
    clamd: ClamdClient,
    balancer: Arc<Balancer>,
    notices: Arc<Notices>,
    gates: Gates,
    /// Connections to the Redis servers of verdict caches.
    redis: Mutex<HashMap<RedisSpec, Arc<Redis>>>,
}

impl Default for Scanner {
    fn default() -> Self {
        Self::new()
    }
}
impl Scanner {
    pub fn new() -> Self {
        Scanner {
            http: HttpClient::default(),
            icap: IcapClient::new(),
            clamd: ClamdClient::default(),
            balancer: Arc::new(Balancer::new()),
            notices: Arc::new(Notices::default()),
            gates: Gates::default(),
            redis: Mutex::new(HashMap::new()),
        }
    }

    /// The worker's balancer, shared with the health checker.
    pub fn balancer(&self) -> Arc<Balancer> {
        self.balancer.clone()
    }

    /// Lines for the error log from the scanner side (servers going down or up).
    pub fn notices(&self) -> Arc<Notices> {
        self.notices.clone()
    }

    /// How many nginx workers share the scanners (an ICAP service's `Max-Connections` is
    /// divided among them).
    pub fn set_workers(&self, n: usize) {
        self.icap.set_workers(n);
    }

    pub fn idle_connections(&self) -> usize {
        self.http.idle_count()
    }

    /// Scans and reports which server answered with which status.
    pub async fn scan_report(
        &self,
        target: &Target,
        req: &ScanRequest,
        opts: &ScanOptions,
    ) -> ScanOutcome {
        self.scan_noted(target, req, opts).await.0
    }

    /// [`Scanner::scan_report`], with the hash of the ISTag the answer came under.
    pub(crate) async fn scan_noted(
        &self,
        target: &Target,
        req: &ScanRequest,
        opts: &ScanOptions,
    ) -> (ScanOutcome, Option<[u8; 32]>) {
        let started = Instant::now();
        ANSWER
            .scope(std::cell::RefCell::new(Notes::default()), async {
                let result = self.scan(target, req, opts).await;
                let notes = ANSWER.with(|c| c.take());
                let outcome = ScanOutcome {
                    result,
                    server: notes.server,
                    status: notes.status,
                    elapsed: started.elapsed(),
                    queued: notes.queued,
                    objects: 1,
                    part: None,
                    cache: None,
                    upload: None,
                    phases: notes.phases,
                    handback: Duration::ZERO,
                };
                (outcome, notes.istag)
            })
            .await
    }

    pub async fn scan(
        &self,
        target: &Target,
        req: &ScanRequest,
        opts: &ScanOptions,
    ) -> Result<Verdict, ScanError> {
        if target.url.scheme.is_tls() && opts.tls.is_none() {
            return Err(ScanError::Tls("no TLS settings for this scanner".into()));
        }
        // The location's turn, held for the whole scan.
        let _turn = match opts.limit {
            Some(l) => Some(
                self.gates
                    .turn(
                        Gate::Location(l.id),
                        l.max,
                        opts.queue_wait,
                        "ometascan_max_scans",
                    )
                    .await?,
            ),
            None => None,
        };
        // Each server of the group at most once; another one only while no byte of an
        // answer arrived (a server that answered decides).
        let mut tried = Vec::new();
        let mut last_err = None;
        loop {
            let Some(idx) = self
                .balancer
                .pick(target.group, &target.peers, &tried, target.balance)
            else {
                return Err(last_err.unwrap_or(ScanError::NoLiveScanner));
            };
            tried.push(idx);
            let peer = &target.peers[idx];
            note_server(&peer.addr);
            // In flight on this server until the attempt ends (least_conn counts it).
            let _in_flight = self.balancer.begin(target.group, &target.peers, idx);
            // The server's turn (max_conns), held for the exchange.
            let _server_turn = self.server_turn(target, peer, opts).await?;
            tracing::debug!(
                "scanning {} {} ({} bytes) on {}",
                String::from_utf8_lossy(&req.method),
                String::from_utf8_lossy(&req.uri),
                req.body.len(),
                peer.name
            );
            let result = match target.url.scheme {
                Scheme::Icap | Scheme::Icaps => {
                    self.icap.scan_one(&peer.addr, target, req, opts).await
                }
                Scheme::Clamd => self.clamd.scan_one(&peer.addr, req, opts).await,
                Scheme::Http | Scheme::Https => {
                    self.http.scan_one(&peer.addr, target, req, opts).await
                }
            };
            match result {
                Ok(v) => {
                    if let Some(change) = self.balancer.succeeded(target.group, &target.peers, idx)
                    {
                        self.notices.push_change(change, "(a scan succeeded)");
                    }
                    return Ok(v);
                }
                Err(Failed::BeforeAnswer(e)) => {
                    self.server_failed(target, idx, &e);
                    tracing::warn!("scanner {} failed ({e}), trying the next one", peer.name);
                    last_err = Some(e);
                }
                Err(Failed::Final(e)) => {
                    if e.is_server_failure() {
                        self.server_failed(target, idx, &e);
                    }
                    return Err(e);
                }
            }
        }
    }

    async fn server_turn(
        &self,
        target: &Target,
        peer: &crate::upstream::balancer::PeerSpec,
        opts: &ScanOptions,
    ) -> Result<Option<tokio::sync::OwnedSemaphorePermit>, ScanError> {
        if peer.max_conns == 0 {
            return Ok(None);
        }
        let gate = Gate::Server(target.group, peer.addr.clone());
        let turn = self
            .gates
            .turn(gate, peer.max_conns, opts.queue_wait, "max_conns");
        Ok(Some(turn.await?))
    }

    /// This worker's client of a Redis server.
    pub(crate) fn redis(&self, spec: &RedisSpec) -> Arc<Redis> {
        let mut all = self.redis.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(redis) = all.get(spec) {
            return redis.clone();
        }
        all.entry(spec.clone())
            .or_insert_with(|| Arc::new(Redis::new(spec.clone())))
            .clone()
    }

    /// The state of the target's scanner that verdicts belong to, asked again when older than
    /// `max_age`: an ICAP service's ISTag, clamd's database version; `None` when no server
    /// answers or an ICAP service announces none (and for the HTTP protocol, which has none).
    pub(crate) async fn scanner_state(
        &self,
        target: &Target,
        opts: &ScanOptions,
        max_age: std::time::Duration,
    ) -> Option<String> {
        let idx = self.balancer.first_available(target.group, &target.peers)?;
        let addr = &target.peers.get(idx)?.addr;
        match target.url.scheme {
            Scheme::Icap | Scheme::Icaps => self.icap.istag(addr, target, opts, max_age).await,
            Scheme::Clamd => self.clamd.version(addr, opts, max_age).await,
            Scheme::Http | Scheme::Https => None,
        }
    }

    fn server_failed(&self, target: &Target, idx: usize, e: &ScanError) {
        if let Some(change) = self.balancer.failed(target.group, &target.peers, idx) {
            self.notices.push_change(change, &format!("after: {e}"));
        }
    }
}
