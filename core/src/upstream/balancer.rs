//! Choosing a scanner server of an upstream group, per worker: smooth weighted round robin
//! (as nginx balances), passive health (`max_fails` failures within `fail_timeout` take a
//! server out for `fail_timeout`), active health (servers a checker marked down), and backup
//! servers only when no primary is available.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A server as nginx's `upstream {}` block describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSpec {
    pub addr: SocketAddr,
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

#[derive(Debug)]
struct PeerState {
    spec: PeerSpec,
    current: i64,
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthChange {
    Down(String, SocketAddr),
    Up(String, SocketAddr),
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
    pub fn pick(&self, id: usize, peers: &[PeerSpec], tried: &[usize]) -> Option<usize> {
        let now = Instant::now();
        self.with_group(id, peers, |g| {
            for backup in [false, true] {
                let eligible = |i: usize, p: &PeerState| {
                    p.spec.backup == backup && !tried.contains(&i) && p.available(now)
                };
                let mut total = 0i64;
                for (i, p) in g.peers.iter_mut().enumerate() {
                    if eligible(i, p) {
                        let w = i64::from(p.spec.weight.max(1));
                        p.current += w;
                        total += w;
                    }
                }
                let best = g
                    .peers
                    .iter()
                    .enumerate()
                    .filter(|(i, p)| eligible(*i, p))
                    .max_by_key(|(i, p)| (p.current, std::cmp::Reverse(*i)))
                    .map(|(i, _)| i);
                if let Some(b) = best {
                    g.peers[b].current -= total;
                    return Some(b);
                }
            }
            None
        })
    }

    /// The first available server (primary before backup), without turning the rotation: for
    /// questions about the group, such as its service's current ISTag.
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
                return Some(HealthChange::Down(p.spec.name.clone(), p.spec.addr));
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
                .map(|_| HealthChange::Up(p.spec.name.clone(), p.spec.addr))
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
                HealthChange::Down(p.spec.name.clone(), p.spec.addr)
            } else {
                HealthChange::Up(p.spec.name.clone(), p.spec.addr)
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
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
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
        let picks: Vec<usize> = (0..6).map(|_| b.pick(7, &peers, &[]).unwrap()).collect();
        assert_eq!(picks.iter().filter(|&&i| i == 1).count(), 4);
        assert_eq!(picks.iter().filter(|&&i| i == 0).count(), 2);
        assert!(!picks.contains(&2), "backup unused while primaries are up");
        // Smooth: never the light server twice in a row.
        assert!(picks.windows(2).all(|w| !(w[0] == 0 && w[1] == 0)));
    }

    #[test]
    fn failures_take_servers_out_and_backup_takes_over() {
        let b = Balancer::new();
        let peers = vec![peer(1, 1, false), peer(2, 1, false), peer(3, 1, true)];
        assert_eq!(
            b.failed(1, &peers, 0),
            Some(HealthChange::Down("127.0.0.1:1".into(), peers[0].addr))
        );
        for _ in 0..4 {
            assert_eq!(b.pick(1, &peers, &[]), Some(1));
        }
        b.failed(1, &peers, 1);
        assert_eq!(b.pick(1, &peers, &[]), Some(2));
        assert_eq!(b.pick(1, &peers, &[2]), None, "all tried or down");
        b.succeeded(1, &peers, 0);
        assert_eq!(b.pick(1, &peers, &[]), Some(0));
    }

    #[test]
    fn checker_marks_down_and_up() {
        let b = Balancer::new();
        let peers = vec![peer(1, 1, false), peer(2, 1, false)];
        assert!(b.set_checked(3, &peers, 0, true).is_some());
        assert!(b.set_checked(3, &peers, 0, true).is_none());
        assert!((0..4).all(|_| b.pick(3, &peers, &[]) == Some(1)));
        assert_eq!(
            b.set_checked(3, &peers, 0, false),
            Some(HealthChange::Up("127.0.0.1:1".into(), peers[0].addr))
        );
        let picks: Vec<_> = (0..4).map(|_| b.pick(3, &peers, &[]).unwrap()).collect();
        assert!(picks.contains(&0) && picks.contains(&1));
    }
}
