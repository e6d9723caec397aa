//! What is scanned (the client's request as the adapter took it from nginx) and where it goes.

use std::net::SocketAddr;

use bytes::Bytes;

use crate::body::RequestBody;
use crate::headers::HeaderList;
use crate::net::peer::PeerAddr;
use crate::upstream::balancer::{Balance, PeerSpec};
use crate::url::ScannerUrl;

/// The client's request: line and headers copied, the body lent or shared (see `RequestBody`).
#[derive(Debug, Clone)]
pub struct ScanRequest {
    pub method: Bytes,
    /// The original request URI, path and query (`$request_uri`).
    pub uri: Bytes,
    pub headers: HeaderList,
    /// The host nginx took for the request when the client sent no `Host` field (HTTP/2's
    /// `:authority`, an absolute URI); `Host` falls back to it, then to the scanner's
    /// authority (see [`ScanRequest::default_host`]).
    pub host: Option<Bytes>,
    /// The client's address as text (for `X-Forwarded-For`).
    pub client_addr: String,
    /// What `body` holds: the request's body, or (with [`ResponseHead`]) the backend's
    /// response to the request, scanned before it reaches the client.
    pub body: RequestBody,
    /// The backend's response head, when the body is the response's.
    pub response: Option<ResponseHead>,
}

/// The backend's response as the module holds it for a scan: status and header fields (the
/// body is the scanned object).
#[derive(Debug, Clone)]
pub struct ResponseHead {
    pub status: u16,
    pub headers: HeaderList,
}

impl ScanRequest {
    /// The `Host` the scanner sees when the client sent none: the request's host as nginx
    /// took it, else the scanner's own authority.
    pub fn default_host(&self, target: &Target) -> Bytes {
        self.host
            .clone()
            .unwrap_or_else(|| Bytes::from(target.url.authority()))
    }
}

/// Where a scan goes: the URL and the servers of its group.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: ScannerUrl,
    /// Identifies the group for the balancer (the adapter uses nginx's upstream).
    pub group: usize,
    pub peers: std::sync::Arc<Vec<PeerSpec>>,
    /// How the group's next server is chosen.
    pub balance: Balance,
}

impl Target {
    /// A group of plain addresses, each of weight 1 (for tests and simple setups).
    pub fn from_addrs(url: ScannerUrl, addrs: &[SocketAddr]) -> Self {
        let peers = addrs
            .iter()
            .map(|a| PeerSpec {
                max_conns: 0,
                addr: PeerAddr::Ip(*a),
                name: a.to_string(),
                weight: 1,
                max_fails: 1,
                fail_timeout: std::time::Duration::from_secs(10),
                backup: false,
            })
            .collect();
        Target {
            url,
            group: 0,
            peers: std::sync::Arc::new(peers),
            balance: Balance::RoundRobin,
        }
    }
}
