//! Keep-alive connections to scanners, per worker and per scanner address.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hyper::client::conn::http1::SendRequest;

use crate::body::StreamBody;
use crate::timed_io::IoClock;
use crate::transport::PoolKey;

/// An HTTP/1.1 connection to a scanner, ready for another exchange.
pub struct Conn {
    pub sender: SendRequest<StreamBody>,
    pub clock: Arc<IoClock>,
}

/// Idle connections by scanner address; bounded per address.
pub struct ConnPool {
    idle: Mutex<HashMap<PoolKey, Vec<Conn>>>,
    max_idle: usize,
}

impl ConnPool {
    pub fn new(max_idle: usize) -> Self {
        ConnPool {
            idle: Mutex::new(HashMap::new()),
            max_idle,
        }
    }

    /// An idle connection to `addr` that the scanner has not closed, if any.
    pub fn take(&self, addr: PoolKey) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.get_mut(&addr)?;
        while let Some(conn) = list.pop() {
            if !conn.sender.is_closed() {
                return Some(conn);
            }
        }
        None
    }

    /// Returns a connection after a complete exchange.
    pub fn put(&self, addr: PoolKey, conn: Conn) {
        if conn.sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.entry(addr).or_default();
        list.retain(|c| !c.sender.is_closed());
        if list.len() < self.max_idle {
            list.push(conn);
        }
    }

    /// Number of idle connections held (for tests and status).
    pub fn idle_count(&self) -> usize {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.values().map(Vec::len).sum()
    }
}
