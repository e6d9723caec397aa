//! The counters shared by all workers, in nginx shared memory (kept across reloads).
//!
//! Only the nginx thread of each worker writes them (completions, health changes); the
//! counters are atomics, so workers need no lock.

use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::time::Duration;

use ngx::ffi::*;
use ometascan_core::net::peer::PeerAddr;
use ometascan_core::{ErrorKind, ResultKind, ScanError};

/// Upper bounds of the scan-time histogram, in milliseconds.
pub const BUCKETS_MS: [u64; 10] = [10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];
const SERVERS: usize = 64;
/// Room for a server's address as text: an IPv6 address with its port, or a local socket's
/// path (at most 108 bytes on Linux) after `unix:`.
const NAME_WORDS: usize = 16;
/// Worker processes that can count scans in flight at once (old and new workers together
/// during a reload).
const WORKER_SLOTS: usize = 256;

/// One worker's scans in flight. A worker killed with scans in flight cannot subtract them,
/// so the gauge sums only the slots of processes that still run; a new worker takes over the
/// slot of a dead one.
#[repr(C)]
pub struct WorkerSlot {
    /// 0: free.
    pid: AtomicU64,
    /// The process's start time (clock ticks since boot), so a reused pid is not mistaken
    /// for the worker.
    started: AtomicU64,
    in_flight: AtomicU64,
}

#[repr(C)]
pub struct Server {
    /// 0: free; else a hash of the address (never 0).
    pub key: AtomicU64,
    /// The address as nginx writes it, NUL-padded.
    pub name: [AtomicU64; NAME_WORDS],
    pub scans: AtomicU64,
    pub failures: AtomicU64,
    /// Workers that currently consider the server down.
    pub down_workers: AtomicU64,
}

#[repr(C)]
pub struct Stats {
    pub results: [AtomicU64; ResultKind::ALL.len()],
    /// Scanned responses (`ometascan_response`), by result.
    pub response_results: [AtomicU64; ResultKind::ALL.len()],
    pub errors: [AtomicU64; ErrorKind::ALL.len()],
    pub bytes: AtomicU64,
    /// Scans that waited for a turn (`ometascan_max_scans`, `max_conns`).
    pub queued: AtomicU64,
    workers: [WorkerSlot; WORKER_SLOTS],
    pub buckets: [AtomicU64; BUCKETS_MS.len()],
    pub time_sum_ms: AtomicU64,
    pub time_count: AtomicU64,
    pub servers: [Server; SERVERS],
    /// Uploads in pieces (`ometascan_pieces`), by [`PieceEvent`].
    pub pieces: [AtomicU64; PieceEvent::ALL.len()],
}

/// What became of an upload in pieces, as the status page counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceEvent {
    /// A file assembled from pieces, scanned and allowed.
    Completed,
    /// A file assembled from pieces, blocked.
    Blocked,
    /// A piece that could not be placed in its upload (or of a blocked upload): refused.
    Refused,
}

impl PieceEvent {
    pub const ALL: [PieceEvent; 3] = [
        PieceEvent::Completed,
        PieceEvent::Blocked,
        PieceEvent::Refused,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PieceEvent::Completed => "completed",
            PieceEvent::Blocked => "blocked",
            PieceEvent::Refused => "refused",
        }
    }
}

/// Bytes of an assembled upload sent to the scanner besides the request's own body.
pub fn scanned_bytes(n: u64) {
    if let Some(s) = stats() {
        s.bytes.fetch_add(n, Ordering::Relaxed);
    }
}

/// Counts what a piece did to its upload.
pub fn piece_event(event: PieceEvent) {
    if let Some(s) = stats() {
        s.pieces[event as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// The name of the counters' zone (the module's other zones are verdict caches).
pub const ZONE_NAME: &str = "ometascan_stats";

/// The counters of the running cycle (its main configuration names their zone).
pub fn stats() -> Option<&'static Stats> {
    let zone = crate::conf::main::running()?.status_zone;
    // SAFETY: the zone is the running cycle's, which lives as long as the cycle; its data is
    // null until nginx initialised it, then the Stats that init_zone placed in it.
    unsafe {
        zone.as_ref()
            .and_then(|z| (z.data as *const Stats).as_ref())
    }
}

/// Adds the shared zone (postconfiguration).
///
/// # Safety
/// `cf` is the http configuration being parsed.
pub unsafe fn add_zone(cf: *mut ngx_conf_t) -> ngx_int_t {
    let name = ZONE_NAME;
    let n = ngx_str_t {
        len: name.len(),
        data: name.as_ptr() as *mut u8,
    };
    // SAFETY: cf is the http block being configured (caller); the name is static.
    let Some(zone) = (unsafe { crate::ngx_ext::shm::add_zone(cf, n, 64 * 1024) }) else {
        return NGX_ERROR as ngx_int_t;
    };
    zone.init = Some(init_zone);
    // SAFETY: cf is the http block being configured.
    match unsafe { crate::conf::main::configuring(cf) } {
        Some(main) => {
            main.status_zone = zone;
            NGX_OK as ngx_int_t
        }
        None => NGX_ERROR as ngx_int_t,
    }
}

unsafe extern "C" fn init_zone(zone: *mut ngx_shm_zone_t, data: *mut c_void) -> ngx_int_t {
    // SAFETY: nginx calls this on its thread with one of the cycle's zones, mapped, and with
    // the previous cycle's data on reload.
    let zone = unsafe { &mut *zone };
    if !data.is_null() {
        // Reload: the counters go on.
        zone.data = data;
        return NGX_OK as ngx_int_t;
    }
    // SAFETY: a mapped zone's memory starts with nginx's slab pool, initialised by nginx
    // before init, not shared with anyone yet.
    let p = unsafe {
        ngx_slab_calloc(
            zone.shm.addr as *mut ngx_slab_pool_t,
            std::mem::size_of::<Stats>(),
        )
    };
    if p.is_null() {
        return NGX_ERROR as ngx_int_t;
    }
    zone.data = p;
    NGX_OK as ngx_int_t
}

/// This worker's slot, once claimed.
static MY_SLOT: AtomicPtr<WorkerSlot> = AtomicPtr::new(ptr::null_mut());

/// The start time of a running process (field 22 of `/proc/PID/stat`); `None` when it does not
/// run any more (gone, or a zombie that its parent has not reaped yet).
fn process_start(pid: u64) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name, in parentheses, may hold spaces: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    // `rest` starts at field 3 (state); the start time is field 22.
    fields.nth(18)?.parse().ok()
}

fn slot_is_live(w: &WorkerSlot) -> bool {
    let pid = w.pid.load(Ordering::Acquire);
    pid != 0 && process_start(pid) == Some(w.started.load(Ordering::Acquire))
}

/// Claims a slot for this worker (init_process): a free one, or one whose process is dead.
pub fn claim_worker_slot() {
    let Some(s) = stats() else { return };
    let pid = u64::from(std::process::id());
    let Some(started) = process_start(pid) else {
        return;
    };
    for w in &s.workers {
        let old = w.pid.load(Ordering::Acquire);
        if old != 0 && slot_is_live(w) {
            continue;
        }
        if w.pid
            .compare_exchange(old, pid, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            w.in_flight.store(0, Ordering::Release);
            w.started.store(started, Ordering::Release);
            MY_SLOT.store(w as *const WorkerSlot as *mut WorkerSlot, Ordering::Release);
            return;
        }
    }
}

/// Gives the slot back (exit_process).
pub fn release_worker_slot() {
    let p = MY_SLOT.swap(ptr::null_mut(), Ordering::AcqRel);
    // SAFETY: the pointer is null or points into the shared zone, which outlives the worker.
    if let Some(w) = unsafe { p.as_ref() } {
        w.in_flight.store(0, Ordering::Release);
        w.pid.store(0, Ordering::Release);
    }
}

fn my_slot() -> Option<&'static WorkerSlot> {
    // SAFETY: as in release_worker_slot.
    unsafe { MY_SLOT.load(Ordering::Acquire).as_ref() }
}

/// Scans in flight in all running workers.
pub fn in_flight(s: &Stats) -> u64 {
    s.workers
        .iter()
        .filter(|w| w.in_flight.load(Ordering::Relaxed) > 0 && slot_is_live(w))
        .map(|w| w.in_flight.load(Ordering::Relaxed))
        .sum()
}

/// A scan started.
pub fn started(bytes: u64) {
    if let Some(s) = stats() {
        if let Some(w) = my_slot() {
            w.in_flight.fetch_add(1, Ordering::Relaxed);
        }
        s.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// A scan ended (or was cancelled: `result` None).
pub fn finished(
    result: Option<ResultKind>,
    error: Option<&ScanError>,
    time: Option<Duration>,
    server: Option<&PeerAddr>,
    queued: bool,
) {
    let Some(s) = stats() else { return };
    if let Some(w) = my_slot() {
        let _ = w
            .in_flight
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1));
    }
    if let Some(r) = result {
        s.results[r.index()].fetch_add(1, Ordering::Relaxed);
    }
    if let Some(e) = error {
        s.errors[e.kind().index()].fetch_add(1, Ordering::Relaxed);
    }
    if queued {
        s.queued.fetch_add(1, Ordering::Relaxed);
    }
    if let Some(t) = time {
        let ms = t.as_millis() as u64;
        for (i, b) in BUCKETS_MS.iter().enumerate() {
            if ms <= *b {
                s.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        s.time_sum_ms.fetch_add(ms, Ordering::Relaxed);
        s.time_count.fetch_add(1, Ordering::Relaxed);
    }
    if let Some(server) = server.and_then(|a| slot(s, a)) {
        server.scans.fetch_add(1, Ordering::Relaxed);
        if error.is_some_and(ScanError::is_server_failure) {
            server.failures.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A response's scan ended (or was cancelled: `result` None); counted apart from requests.
pub fn response_finished(
    result: Option<ResultKind>,
    error: Option<&ScanError>,
    time: Option<Duration>,
    server: Option<&PeerAddr>,
    queued: bool,
) {
    finished(None, error, time, server, queued);
    if let Some(kind) = result {
        response_counted(kind);
    }
}

/// A response decided without a scan, or by one.
pub fn response_counted(kind: ResultKind) {
    if let Some(s) = stats() {
        s.response_results[kind.index()].fetch_add(1, Ordering::Relaxed);
    }
}

/// A request decided without a scan (skipped, too large, unscanned by size).
pub fn counted(kind: ResultKind) {
    if let Some(s) = stats() {
        s.results[kind.index()].fetch_add(1, Ordering::Relaxed);
    }
}

/// This worker now considers `addr` down (`true`) or up again.
pub fn server_health(addr: &PeerAddr, down: bool) {
    let Some(s) = stats() else { return };
    if let Some(server) = slot(s, addr) {
        if down {
            server.down_workers.fetch_add(1, Ordering::Relaxed);
        } else {
            let _ = server
                .down_workers
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1));
        }
    }
}

/// An address's text in the words of a [`Server`] slot (cut at the slot's size).
fn pack(addr: &PeerAddr) -> [u64; NAME_WORDS] {
    let text = addr.to_string();
    let mut words = [0u64; NAME_WORDS];
    for (i, chunk) in text.as_bytes().chunks(8).take(NAME_WORDS).enumerate() {
        let mut b = [0u8; 8];
        b[..chunk.len()].copy_from_slice(chunk);
        words[i] = u64::from_le_bytes(b);
    }
    words
}

/// The address's text kept in a slot.
pub fn unpack(words: &[AtomicU64; NAME_WORDS]) -> String {
    let bytes: Vec<u8> = words
        .iter()
        .flat_map(|w| w.load(Ordering::Acquire).to_le_bytes())
        .take_while(|&b| b != 0)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The counters of a server, claimed on first use (up to 64 servers).
fn slot(s: &'static Stats, addr: &PeerAddr) -> Option<&'static Server> {
    let name = pack(addr);
    // FNV-1a over the words: the same address gives the same key in every worker.
    let key = name.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, w| {
        (h ^ w).wrapping_mul(0x0000_0100_0000_01b3)
    }) | 1;
    for server in &s.servers {
        match server
            .key
            .compare_exchange(0, key, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {
                for (slot, word) in server.name.iter().zip(name) {
                    slot.store(word, Ordering::Release);
                }
                return Some(server);
            }
            Err(k) if k == key => return Some(server),
            Err(_) => {}
        }
    }
    None
}
