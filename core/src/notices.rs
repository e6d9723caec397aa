//! Error-log lines produced away from the nginx thread (a scanner going down or coming back,
//! and every `tracing` event of this crate once the adapter forwards them). The scanner side
//! queues them and rings the worker's bell; the nginx thread logs them. The queue is bounded:
//! lines beyond it are counted, not kept.

use std::sync::{Mutex, OnceLock};

use crate::net::peer::PeerAddr;
use crate::upstream::balancer::HealthChange;

/// Severity, mapped onto nginx's levels by the adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Error,
    Warn,
    Notice,
    Info,
    Debug,
}

/// Lines kept until the nginx thread logs them.
pub const MAX_QUEUED: usize = 1024;

type Bell = Box<dyn Fn() + Send + Sync>;

#[derive(Default)]
pub struct Notices {
    queue: Mutex<Vec<(Level, String)>>,
    /// Lines that found the queue full since it was last drained.
    dropped: std::sync::atomic::AtomicUsize,
    /// Servers this worker now considers down (`true`) or up, for shared statistics.
    health: Mutex<Vec<(PeerAddr, bool)>>,
    bell: OnceLock<Bell>,
}

impl Notices {
    /// What to call when a line was queued (the adapter wakes its event loop).
    pub fn set_bell(&self, bell: Bell) {
        let _ = self.bell.set(bell);
    }

    pub fn push(&self, level: Level, line: String) {
        let was_empty = {
            let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            if q.len() >= MAX_QUEUED {
                self.dropped
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return;
            }
            q.push((level, line));
            q.len() == 1
        };
        if was_empty {
            if let Some(bell) = self.bell.get() {
                bell();
            }
        }
    }

    pub fn push_change(&self, change: HealthChange, why: &str) {
        let (addr, down) = match &change {
            HealthChange::Down(_, a) => (a.clone(), true),
            HealthChange::Up(_, a) => (a.clone(), false),
        };
        self.health
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((addr, down));
        match change {
            HealthChange::Down(name, _) => self.push(
                Level::Warn,
                format!("ometascan: scanner {name} is marked down {why}"),
            ),
            HealthChange::Up(name, _) => self.push(
                Level::Notice,
                format!("ometascan: scanner {name} is up again {why}"),
            ),
        }
        // The health entry must reach the nginx thread even when the line queue was busy.
        if let Some(bell) = self.bell.get() {
            bell();
        }
    }

    pub fn drain_health(&self) -> Vec<(PeerAddr, bool)> {
        std::mem::take(&mut *self.health.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The queued lines, and how many were dropped because the queue was full.
    pub fn drain(&self) -> (Vec<(Level, String)>, usize) {
        let lines = std::mem::take(&mut *self.queue.lock().unwrap_or_else(|e| e.into_inner()));
        let dropped = self.dropped.swap(0, std::sync::atomic::Ordering::Relaxed);
        (lines, dropped)
    }
}
