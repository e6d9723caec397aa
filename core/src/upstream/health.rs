//! Active health checks: each worker probes every server of a group at an interval (HTTP
//! `GET uri` for `http(s)://` scanners, ICAP `OPTIONS` for `icap(s)://`), and marks a server
//! down after `fails` failed probes in a row, up again after `passes` good ones.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

use crate::icap::codec::options_request;
use crate::net::tls::TlsClient;
use crate::net::transport;
use crate::notices::Notices;
use crate::upstream::balancer::{Balancer, PeerSpec};
use crate::url::{ScannerUrl, Scheme};

/// The parameters of `ometascan_health_check`; `Default` holds their defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthParams {
    pub interval: Duration,
    pub fails: u32,
    pub passes: u32,
    /// Path probed on HTTP scanners.
    pub uri: String,
    pub timeout: Duration,
}

impl Default for HealthParams {
    fn default() -> Self {
        HealthParams {
            interval: Duration::from_secs(5),
            fails: 2,
            passes: 1,
            uri: "/".into(),
            timeout: Duration::from_secs(2),
        }
    }
}

/// One group's health check, in plain values.
#[derive(Debug, Clone)]
pub struct HealthSpec {
    pub group: usize,
    pub peers: Arc<Vec<PeerSpec>>,
    pub url: ScannerUrl,
    pub tls: Option<Arc<TlsClient>>,
    pub params: HealthParams,
}

/// Probes forever; spawn it on the worker's runtime.
pub async fn run(spec: HealthSpec, balancer: Arc<Balancer>, notices: Arc<Notices>) {
    let n = spec.peers.len();
    let mut bad = vec![0u32; n];
    let mut good = vec![0u32; n];
    loop {
        for i in 0..n {
            let ok = probe(&spec, i).await;
            if ok {
                bad[i] = 0;
                good[i] += 1;
                if good[i] >= spec.params.passes {
                    if let Some(c) = balancer.set_checked(spec.group, &spec.peers, i, false) {
                        notices.push_change(c, "(health check passed)");
                    }
                }
            } else {
                good[i] = 0;
                bad[i] += 1;
                if bad[i] >= spec.params.fails {
                    if let Some(c) = balancer.set_checked(spec.group, &spec.peers, i, true) {
                        notices.push_change(c, "(health check failed)");
                    }
                }
            }
        }
        tokio::time::sleep(spec.params.interval).await;
    }
}

async fn probe(spec: &HealthSpec, i: usize) -> bool {
    let peer = &spec.peers[i];
    let work = async {
        let mut io = transport::connect(peer.addr, spec.params.timeout, spec.tls.as_deref())
            .await
            .ok()?;
        let authority = spec.url.authority();
        let request = match spec.url.scheme {
            Scheme::Http | Scheme::Https => {
                format!(
                    "GET {} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n",
                    spec.params.uri
                )
            }
            Scheme::Icap | Scheme::Icaps => {
                String::from_utf8_lossy(&options_request(&authority, &spec.url.path)).into_owned()
            }
        };
        io.write_all(request.as_bytes()).await.ok()?;
        let mut buf = Vec::with_capacity(256);
        let mut chunk = [0u8; 256];
        while !buf.contains(&b'\n') && buf.len() < 4096 {
            let n = io.read(&mut chunk).await.ok()?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let line = String::from_utf8_lossy(&buf);
        let status: u16 = line.split(' ').nth(1)?.trim().parse().ok()?;
        Some(match spec.url.scheme {
            Scheme::Http | Scheme::Https => (200..500).contains(&status),
            Scheme::Icap | Scheme::Icaps => status == 200,
        })
    };
    matches!(timeout(spec.params.timeout, work).await, Ok(Some(true)))
}
