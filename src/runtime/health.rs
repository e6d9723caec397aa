//! Health checks to start in each worker: registered per configuration cycle while the master
//! merges the configuration, started by each worker after fork.

use std::sync::Mutex;

use ometascan_core::upstream::health::HealthSpec;

static HEALTH_CHECKS: Mutex<Vec<(usize, HealthSpec)>> = Mutex::new(Vec::new());

/// One check per scanner group and cycle.
pub fn register(cycle: usize, spec: HealthSpec) {
    let mut all = HEALTH_CHECKS.lock().unwrap_or_else(|e| e.into_inner());
    if !all
        .iter()
        .any(|(c, s)| *c == cycle && s.group == spec.group)
    {
        all.push((cycle, spec));
    }
}

/// A new cycle may sit where a freed one was: what was registered under its address goes.
pub fn forget_cycle(cycle: usize) {
    HEALTH_CHECKS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|(c, _)| *c != cycle);
}

/// The checks of a cycle.
pub fn of_cycle(cycle: usize) -> Vec<HealthSpec> {
    HEALTH_CHECKS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|(c, _)| *c == cycle)
        .map(|(_, s)| s.clone())
        .collect()
}
