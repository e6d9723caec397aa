//! Keep-alive connections to scanners, per worker and per scanner server: at most a set
//! number idle per server, each for at most the idle timeout.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::client::conn::http1::SendRequest;

use crate::body::StreamBody;
use crate::net::timed_io::IoClock;
use crate::net::transport::PoolKey;

/// An HTTP/1.1 connection to a scanner, ready for another exchange.
///
/// Dropping it ends the connection's task at once, with whatever of a request body it still
/// held: a scan is only over when nothing of its body is left anywhere.
pub struct Conn {
    pub sender: SendRequest<StreamBody>,
    pub clock: Arc<IoClock>,
    pub task: tokio::task::AbortHandle,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Idle items by server, with the time they became idle.
pub struct IdlePool<T> {
    idle: Mutex<HashMap<PoolKey, Vec<(T, Instant)>>>,
}

impl<T> Default for IdlePool<T> {
    fn default() -> Self {
        IdlePool {
            idle: Mutex::new(HashMap::new()),
        }
    }
}

impl<T> IdlePool<T> {
    /// The most recently idle item for `key` that has not been idle longer than `max_idle`
    /// and passes `usable`.
    pub fn take(&self, key: PoolKey, max_idle: Duration, usable: impl Fn(&T) -> bool) -> Option<T> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.get_mut(&key)?;
        let now = Instant::now();
        while let Some((item, since)) = list.pop() {
            if now.duration_since(since) <= max_idle && usable(&item) {
                return Some(item);
            }
        }
        None
    }

    /// Keeps `item` for reuse unless `max` are already idle for `key` (0: no keep-alive).
    pub fn put(&self, key: PoolKey, item: T, max: usize) {
        if max == 0 {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.entry(key).or_default();
        if list.len() >= max {
            list.remove(0);
        }
        list.push((item, Instant::now()));
    }

    /// Number of idle items held.
    pub fn idle_count(&self) -> usize {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.values().map(Vec::len).sum()
    }
}

pub type ConnPool = IdlePool<Conn>;
