//! Choosing a scanner server of an upstream group, per worker: smooth weighted round robin
//! (as nginx balances), passive health (`max_fails` failures within `fail_timeout` take a
//! server out for `fail_timeout`), active health (servers a checker marked down), and backup
//! servers only when no primary is available.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::net::peer::PeerAddr;

/// A server as nginx's `upstream {}` block describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSpec {
    pub addr: PeerAddr,
    /// `host:port` as written, for log lines.
    pub name: String,
    pub weight: u32,
    /// 0: failures never take the server out.
    pub max_fails: u32,
    pub fail_timeout: Duration,
    pub backup: bool,
    /// Scans at once on this server, per worker (nginx's `max_conns`; 0: no limit).
    pub max_conns: usize,
}

/// How a group's next server is chosen, as its `upstream {}` block says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Balance {
    /// nginx's smooth weighted round-robin (no method named).
    #[default]
    RoundRobin,
    /// `least_conn`: the server with the fewest scans in flight from this worker, relative
    /// to its weight; among equals, weighted round-robin.
    LeastConn,
}

#[derive(Debug)]
struct PeerState {
    spec: PeerSpec,
    current: i64,
    /// Scans in flight on this server from this worker.
    active: usize,
    fails: u32,
    first_fail: Option<Instant>,
    out_until: Option<Instant>,
    /// Marked down by the active checker.
    checked_down: bool,
}

impl PeerState {
    fn available(&self, now: Instant) -> bool {
        !self.checked_down && self.out_until.is_none_or(|t| now >= t)
    }
}

#[derive(Debug, Default)]
struct Group {
    peers: Vec<PeerState>,
}

/// All groups of a worker, keyed by an id the adapter gives each upstream.
#[derive(Debug, Default)]
pub struct Balancer {
    groups: Mutex<HashMap<usize, Group>>,
}

/// What a state change of a server means for the log.
/// A scan in flight on one server, counted for `least_conn` until dropped.
pub struct InFlight<'a> {
    balancer: &'a Balancer,
    id: usize,
    idx: usize,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut groups = self
            .balancer
            .groups
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // The group's servers may have been replaced meanwhile (a reload): then there is
        // nothing to take back.
        if let Some(p) = groups
            .get_mut(&self.id)
            .and_then(|g| g.peers.get_mut(self.idx))
        {
            p.active = p.active.saturating_sub(1);
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthChange {
    Down(String, PeerAddr),
    Up(String, PeerAddr),
}

impl Balancer {
    pub fn new() -> Self {
        Self::default()
    }

    fn with_group<T>(&self, id: usize, peers: &[PeerSpec], f: impl FnOnce(&mut Group) -> T) -> T {
        let mut groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        let g = groups.entry(id).or_default();
        if g.peers.len() != peers.len() || g.peers.iter().zip(peers).any(|(a, b)| a.spec != *b) {
            g.peers = peers
                .iter()
                .map(|s| PeerState {
                    spec: s.clone(),
                    current: 0,
                    active: 0,
                    fails: 0,
                    first_fail: None,
                    out_until: None,
                    checked_down: false,
                })
                .collect();
        }
        f(g)
    }

    /// The next server to try, skipping `tried`; `None` when no server is available.
    /// The next server for a scan of group `id`, not one of `tried`: primaries first, backups
    /// when no primary is available.
    pub fn pick(
        &self,
        id: usize,
        peers: &[PeerSpec],
        tried: &[usize],
        balance: Balance,
    ) -> Option<usize> {
        let now = Instant::now();
        self.with_group(id, peers, |g| {
            for backup in [false, true] {
                let mut candidates: Vec<usize> = (0..g.peers.len())
                    .filter(|&i| {
                        let p = &g.peers[i];
                        p.spec.backup == backup && !tried.contains(&i) && p.available(now)
                    })
                    .collect();
                if balance == Balance::LeastConn {
                    // Fewest in flight per unit of weight: a/w < b/v as a*v < b*w.
                    let load = |i: usize| {
                        let p = &g.peers[i];
                        (p.active as u128, u128::from(p.spec.weight.max(1)))
                    };
                    if let Some(least) = candidates.iter().copied().reduce(|x, y| {
                        let ((a, w), (b, v)) = (load(x), load(y));
                        if b * w < a * v {
                            y
                        } else {
                            x
                        }
                    }) {
                        let (a, w) = load(least);
                        candidates.retain(|&i| {
                            let (b, v) = load(i);
                            b * w == a * v
                        });
                    }
                }
                let mut total = 0i64;
                for &i in &candidates {
                    let w = i64::from(g.peers[i].spec.weight.max(1));
                    g.peers[i].current += w;
                    total += w;
                }
                let best = candidates
                    .iter()
                    .copied()
                    .max_by_key(|&i| (g.peers[i].current, std::cmp::Reverse(i)));
                if let Some(b) = best {
                    g.peers[b].current -= total;
                    return Some(b);
                }
            }
            None
        })
    }

    /// A scan starts on server `idx` of group `id`; it counts as in flight until the guard
    /// is dropped.
    pub fn begin<'a>(&'a self, id: usize, peers: &[PeerSpec], idx: usize) -> InFlight<'a> {
        self.with_group(id, peers, |g| {
            if let Some(p) = g.peers.get_mut(idx) {
                p.active += 1;
            }
        });
        InFlight {
            balancer: self,
            id,
            idx,
        }
    }

    /// Scans in flight on each server of group `id` (for tests and the status page).
    pub fn in_flight(&self, id: usize) -> Vec<usize> {
        let groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        groups
            .get(&id)
            .map(|g| g.peers.iter().map(|p| p.active).collect())
            .unwrap_or_default()
    }

    pub fn first_available(&self, id: usize, peers: &[PeerSpec]) -> Option<usize> {
        let now = Instant::now();
        self.with_group(id, peers, |g| {
            [false, true].into_iter().find_map(|backup| {
                g.peers
                    .iter()
                    .position(|p| p.spec.backup == backup && p.available(now))
            })
        })
    }

    /// A scan on server `idx` failed before any verdict.
    pub fn failed(&self, id: usize, peers: &[PeerSpec], idx: usize) -> Option<HealthChange> {
        let now = Instant::now();
        self.with_group(id, peers, |g| {
            let p = g.peers.get_mut(idx)?;
            if p.spec.max_fails == 0 {
                return None;
            }
            match p.first_fail {
                Some(t) if now.duration_since(t) <= p.spec.fail_timeout => p.fails += 1,
                _ => {
                    p.first_fail = Some(now);
                    p.fails = 1;
                }
            }
            if p.fails >= p.spec.max_fails {
                p.out_until = Some(now + p.spec.fail_timeout);
                p.fails = 0;
                p.first_fail = None;
                return Some(HealthChange::Down(p.spec.name.clone(), p.spec.addr.clone()));
            }
            None
        })
    }

    /// A scan on server `idx` got its verdict; a server that was out is back.
    pub fn succeeded(&self, id: usize, peers: &[PeerSpec], idx: usize) -> Option<HealthChange> {
        self.with_group(id, peers, |g| {
            let p = g.peers.get_mut(idx)?;
            p.fails = 0;
            p.first_fail = None;
            p.out_until
                .take()
                .map(|_| HealthChange::Up(p.spec.name.clone(), p.spec.addr.clone()))
        })
    }

    /// The active checker's view of server `idx`; returns a change worth logging.
    pub fn set_checked(
        &self,
        id: usize,
        peers: &[PeerSpec],
        idx: usize,
        down: bool,
    ) -> Option<HealthChange> {
        self.with_group(id, peers, |g| {
            let p = g.peers.get_mut(idx)?;
            if p.checked_down == down {
                return None;
            }
            p.checked_down = down;
            if !down {
                p.out_until = None;
                p.fails = 0;
            }
            Some(if down {
                HealthChange::Down(p.spec.name.clone(), p.spec.addr.clone())
            } else {
                HealthChange::Up(p.spec.name.clone(), p.spec.addr.clone())
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(port: u16, weight: u32, backup: bool) -> PeerSpec {
        PeerSpec {
            max_conns: 0,
            addr: PeerAddr::Ip(std::net::SocketAddr::from(([127, 0, 0, 1], port))),
            name: format!("127.0.0.1:{port}"),
            weight,
            max_fails: 1,
            fail_timeout: Duration::from_secs(10),
            backup,
        }
    }

    #[test]
    fn smooth_weighted_round_robin() {
        let b = Balancer::new();
        let peers = vec![peer(1, 1, false), peer(2, 2, false), peer(3, 1, true)];
        let picks: Vec<usize> = (0..6)
            .map(|_| b.pick(7, &peers, &[], Balance::RoundRobin).unwrap())
            .collect();
        assert_eq!(picks.iter().filter(|&&i| i == 1).count(), 4);
        assert_eq!(picks.iter().filter(|&&i| i == 0).count(), 2);
        assert!(!picks.contains(&2), "backup unused while primaries are up");
        // Smooth: never the light server twice in a row.
        assert!(picks.windows(2).all(|w| !(w[0] == 0 && w[1] == 0)));
    }

    #[test]
    fn least_conn_picks_the_server_with_fewest_in_flight_per_weight() {
        let b = Balancer::new();
        let lc = Balance::LeastConn;
        let peers = vec![peer(1, 3, false), peer(2, 1, false), peer(3, 1, true)];
        // Nothing in flight: weighted round-robin among the equals.
        let first = b.pick(9, &peers, &[], lc).unwrap();
        let held: Vec<_> = (0..2).map(|_| b.begin(9, &peers, 0)).collect();
        let one = b.begin(9, &peers, 1);
        assert_eq!(b.in_flight(9), vec![2, 1, 0]);
        // 2 of weight 3 is less than 1 of weight 1.
        assert_eq!(
            b.pick(9, &peers, &[], lc),
            Some(0),
            "first pick was {first}"
        );
        let more = b.begin(9, &peers, 0);
        // 3 of weight 3 equals 1 of weight 1: either; 4 of 3 is more than 1 of 1.
        let extra = b.begin(9, &peers, 0);
        assert_eq!(b.pick(9, &peers, &[], lc), Some(1));
        drop((held, more, extra));
        assert_eq!(b.in_flight(9), vec![0, 1, 0]);
        assert_eq!(b.pick(9, &peers, &[], lc), Some(0));
        drop(one);
        assert_eq!(b.in_flight(9), vec![0, 0, 0]);
        // Round-robin ignores what is in flight.
        let _busy: Vec<_> = (0..5).map(|_| b.begin(9, &peers, 0)).collect();
        let picks: Vec<_> = (0..4)
            .map(|_| b.pick(9, &peers, &[], Balance::RoundRobin).unwrap())
            .collect();
        assert_eq!(picks.iter().filter(|&&i| i == 0).count(), 3);
    }

    #[test]
    fn failures_take_servers_out_and_backup_takes_over() {
        let b = Balancer::new();
        let peers = vec![peer(1, 1, false), peer(2, 1, false), peer(3, 1, true)];
        assert_eq!(
            b.failed(1, &peers, 0),
            Some(HealthChange::Down(
                "127.0.0.1:1".into(),
                peers[0].addr.clone()
            ))
        );
        for _ in 0..4 {
            assert_eq!(b.pick(1, &peers, &[], Balance::RoundRobin), Some(1));
        }
        b.failed(1, &peers, 1);
        assert_eq!(b.pick(1, &peers, &[], Balance::RoundRobin), Some(2));
        assert_eq!(
            b.pick(1, &peers, &[2], Balance::RoundRobin),
            None,
            "all tried or down"
        );
        b.succeeded(1, &peers, 0);
        assert_eq!(b.pick(1, &peers, &[], Balance::RoundRobin), Some(0));
    }

    #[test]
    fn checker_marks_down_and_up() {
        let b = Balancer::new();
        let peers = vec![peer(1, 1, false), peer(2, 1, false)];
        assert!(b.set_checked(3, &peers, 0, true).is_some());
        assert!(b.set_checked(3, &peers, 0, true).is_none());
        assert!((0..4).all(|_| b.pick(3, &peers, &[], Balance::RoundRobin) == Some(1)));
        assert_eq!(
            b.set_checked(3, &peers, 0, false),
            Some(HealthChange::Up(
                "127.0.0.1:1".into(),
                peers[0].addr.clone()
            ))
        );
        let picks: Vec<_> = (0..4)
            .map(|_| b.pick(3, &peers, &[], Balance::RoundRobin).unwrap())
            .collect();
        assert!(picks.contains(&0) && picks.contains(&1));
    }
}
