//! Error-log lines produced away from the nginx thread (a scanner going down or coming back).
//! The scanner side queues them and rings the worker's bell; the nginx thread logs them.

use std::sync::{Mutex, OnceLock};

use crate::upstream::balancer::HealthChange;

/// Severity, mapped onto nginx's levels by the adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Warn,
    Notice,
}

type Bell = Box<dyn Fn() + Send + Sync>;

#[derive(Default)]
pub struct Notices {
    queue: Mutex<Vec<(Level, String)>>,
    /// Servers this worker now considers down (`true`) or up, for shared statistics.
    health: Mutex<Vec<(std::net::SocketAddr, bool)>>,
    bell: OnceLock<Bell>,
}

impl Notices {
    /// What to call when a line was queued (the adapter wakes its event loop).
    pub fn set_bell(&self, bell: Bell) {
        let _ = self.bell.set(bell);
    }

    pub fn push(&self, level: Level, line: String) {
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((level, line));
        if let Some(bell) = self.bell.get() {
            bell();
        }
    }

    pub fn push_change(&self, change: HealthChange, why: &str) {
        let (addr, down) = match &change {
            HealthChange::Down(_, a) => (*a, true),
            HealthChange::Up(_, a) => (*a, false),
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
    }

    pub fn drain_health(&self) -> Vec<(std::net::SocketAddr, bool)> {
        std::mem::take(&mut *self.health.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn drain(&self) -> Vec<(Level, String)> {
        std::mem::take(&mut *self.queue.lock().unwrap_or_else(|e| e.into_inner()))
    }
}
