//! Turns for scans, per worker: at most `ometascan_max_scans` at once per location, at most
//! `max_conns` at once per server of an `upstream {}` group. A scan waits for its turn at most
//! the queue wait; then it fails as busy (503), and nothing is forwarded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::net::peer::PeerAddr;
use crate::scan::report::{note_queued, note_wait};
use crate::scan::ScanError;

/// Largest number of turns a gate hands out (a sane bound on configured values).
const MAX_TURNS: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Gate {
    /// A location's limit, by the id the adapter gives it.
    Location(usize),
    /// A server of a group.
    Server(usize, PeerAddr),
}

#[derive(Default)]
pub(crate) struct Gates {
    map: Mutex<HashMap<Gate, (usize, Arc<Semaphore>)>>,
}

impl Gates {
    fn semaphore(&self, gate: Gate, max: usize) -> Arc<Semaphore> {
        let max = max.clamp(1, MAX_TURNS);
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let entry = map
            .entry(gate)
            .or_insert_with(|| (max, Arc::new(Semaphore::new(max))));
        if entry.0 != max {
            // The configuration changed (a reload keeps the worker's runtime only in
            // single-process mode): a new gate; turns of the old one run out on their own.
            *entry = (max, Arc::new(Semaphore::new(max)));
        }
        entry.1.clone()
    }

    /// A turn at `gate` (at most `max` at once), waiting at most `wait`.
    pub async fn turn(
        &self,
        gate: Gate,
        max: usize,
        wait: Duration,
        what: &'static str,
    ) -> Result<OwnedSemaphorePermit, ScanError> {
        let sem = self.semaphore(gate, max);
        if let Ok(p) = sem.clone().try_acquire_owned() {
            return Ok(p);
        }
        note_queued();
        let started = std::time::Instant::now();
        let turn = tokio::time::timeout(wait, sem.acquire_owned()).await;
        note_wait(started.elapsed());
        match turn {
            Ok(Ok(p)) => Ok(p),
            _ => Err(ScanError::Busy(wait, what)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_gate_makes_a_scan_wait_then_fail_as_busy() {
        let g = Gates::default();
        let a = g
            .turn(Gate::Location(1), 1, Duration::from_millis(10), "x")
            .await
            .unwrap();
        let e = g
            .turn(Gate::Location(1), 1, Duration::from_millis(20), "x")
            .await;
        assert!(matches!(e, Err(ScanError::Busy(..))));
        assert_eq!(e.unwrap_err().status(), 503);
        // Other gates are separate; a turn given back is taken by the next scan.
        assert!(g
            .turn(Gate::Location(2), 1, Duration::ZERO, "x")
            .await
            .is_ok());
        drop(a);
        assert!(g
            .turn(Gate::Location(1), 1, Duration::ZERO, "x")
            .await
            .is_ok());
    }
}
