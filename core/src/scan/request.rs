//! What is scanned (the client's request, copied out of nginx) and where it goes.

use std::net::SocketAddr;

use bytes::Bytes;

use crate::body::RequestBody;
use crate::headers::HeaderList;
use crate::upstream::balancer::PeerSpec;
use crate::url::ScannerUrl;

/// The client's request, copied out of nginx.
#[derive(Debug, Clone)]
pub struct ScanRequest {
    pub method: Bytes,
    /// The original request URI, path and query (`$request_uri`).
    pub uri: Bytes,
    pub headers: HeaderList,
    /// The client's address as text (for `X-Forwarded-For`).
    pub client_addr: String,
    pub body: RequestBody,
}

/// Where a scan goes: the URL and the servers of its group.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: ScannerUrl,
    /// Identifies the group for the balancer (the adapter uses nginx's upstream).
    pub group: usize,
    pub peers: std::sync::Arc<Vec<PeerSpec>>,
}

impl Target {
    /// A group of plain addresses, each of weight 1 (for tests and simple setups).
    pub fn from_addrs(url: ScannerUrl, addrs: &[SocketAddr]) -> Self {
        let peers = addrs
            .iter()
            .map(|a| PeerSpec {
                addr: *a,
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
        }
    }
}
