//! The entries of one cache zone: a set-associative table (each key has [`WAYS`] places, the
//! least recently used of them gives way when all are taken) of fixed slots, each pointing to
//! its encoded entry in the zone's slab pool. When the pool is full, entries are evicted from
//! a moving cursor until the new one fits: a full zone evicts, it never fails a request.

use std::alloc::Layout;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU64, Ordering};

use ngx::allocator::Allocator;
use ngx::core::slab::LockedSlabPool;
use ngx::core::SlabPool;
use ngx::ffi::*;
use ometascan_core::cache::{now_ms, CacheEvent, Key};

/// Places per key.
pub const WAYS: usize = 8;
/// One slot in this many bytes of the zone (the rest holds the entries).
const BYTES_PER_SLOT: usize = 512;
const MAGIC: u64 = 0x6f6d_6361_6368_6531;
/// Entries evicted at most to make room for one (the lock is held meanwhile).
const MAX_EVICTIONS_PER_PUT: usize = 4096;
/// Counters, in the order of [`COUNTER_NAMES`].
pub const COUNTER_NAMES: [&str; 8] = [
    "hits",
    "misses",
    "expired",
    "stores",
    "evictions",
    "invalidations",
    "redis_hits",
    "redis_errors",
];
const STORES: usize = 3;
const EVICTIONS: usize = 4;

#[repr(C)]
pub struct Header {
    magic: u64,
    sets: usize,
    slots: *mut Slot,
    /// Advances on every use: a slot's `used` is its last use.
    clock: AtomicU64,
    /// Where eviction for room goes on.
    cursor: AtomicU64,
    pub counters: [AtomicU64; COUNTER_NAMES.len()],
}

#[repr(C)]
struct Slot {
    key: [u8; 32],
    expires_ms: u64,
    used: u64,
    /// The encoded entry in the slab pool; null: the slot is free.
    data: *mut u8,
    len: usize,
}

pub fn event_index(e: CacheEvent) -> usize {
    match e {
        CacheEvent::Hit => 0,
        CacheEvent::Miss => 1,
        CacheEvent::Expired => 2,
        CacheEvent::Invalidation => 5,
        CacheEvent::RedisHit => 6,
        CacheEvent::RedisError => 7,
    }
}

/// The table whose header is at `data` (a zone's `data`), if it is one.
///
/// # Safety
/// `data` is null or points to at least 8 readable bytes; when those hold the magic number, to
/// a header made by [`create`] that lives as long as the cycle.
pub unsafe fn header_at<'a>(data: *const std::ffi::c_void) -> Option<&'a Header> {
    if data.is_null() {
        return None;
    }
    // SAFETY: data is non-null and has 8 readable bytes (caller); `magic` is the header's
    // first field, so a header's data starts with it.
    let magic = unsafe { *(data as *const u64) };
    // SAFETY: memory that starts with the magic number is a header made by `create`, alive as
    // long as the cycle (caller).
    (magic == MAGIC).then(|| unsafe { &*(data as *const Header) })
}

/// Lays out a new table in a fresh zone; null when the zone is too small.
///
/// # Safety
/// `pool` is the slab pool of a zone being initialized (no other user yet).
pub unsafe fn create(pool: *mut ngx_slab_pool_t, zone_size: usize) -> *mut Header {
    let sets = (zone_size / BYTES_PER_SLOT / WAYS).max(1);
    // SAFETY: the pool is a zone's being initialised, which nothing else uses yet (caller);
    // calloc zeroes (free slots, counters 0).
    unsafe {
        // A full zone is normal for a cache: nginx need not log every failed allocation.
        (*pool).set_log_nomem(0);
        let slots = ngx_slab_calloc(pool, sets * WAYS * std::mem::size_of::<Slot>()) as *mut Slot;
        let header = ngx_slab_calloc(pool, std::mem::size_of::<Header>()) as *mut Header;
        if slots.is_null() || header.is_null() {
            return ptr::null_mut();
        }
        (*header).sets = sets;
        (*header).slots = slots;
        (*header).magic = MAGIC;
        header
    }
}

/// The slots of `key`'s set.
///
/// # Safety
/// The zone's mutex is held; `h` is an initialized header.
unsafe fn set_of<'a>(h: &Header, key: &Key) -> &'a mut [Slot] {
    let n = u64::from_le_bytes([
        key.0[0], key.0[1], key.0[2], key.0[3], key.0[4], key.0[5], key.0[6], key.0[7],
    ]);
    let set = (n % h.sets as u64) as usize;
    // SAFETY: the slot array holds sets * WAYS slots; the mutex makes the access exclusive.
    unsafe { std::slice::from_raw_parts_mut(h.slots.add(set * WAYS), WAYS) }
}

/// A copy of the entry stored under `key`.
///
/// # Safety
/// `h` and `pool` are the header and pool of one initialized zone.
pub unsafe fn get(h: &Header, pool: &SlabPool, key: &Key) -> Option<Vec<u8>> {
    let _locked = pool.lock();
    // SAFETY: locked.
    let set = unsafe { set_of(h, key) };
    let slot = set
        .iter_mut()
        .find(|s| !s.data.is_null() && s.key == key.0)?;
    slot.used = h.clock.fetch_add(1, Ordering::Relaxed);
    // SAFETY: data points to len bytes allocated by put, freed only under the lock.
    Some(unsafe { std::slice::from_raw_parts(slot.data, slot.len) }.to_vec())
}

/// Stores `bytes` under `key`: in the slot of the same key, a free or expired one, else in
/// place of the set's least recently used entry.
///
/// # Safety
/// As for [`get`].
pub unsafe fn put(h: &Header, pool: &SlabPool, key: &Key, bytes: &[u8], exp: u64) {
    let locked = pool.lock();
    let now = now_ms();
    // SAFETY: locked.
    let set = unsafe { set_of(h, key) };
    let pick = set
        .iter()
        .position(|s| !s.data.is_null() && s.key == key.0)
        .or_else(|| set.iter().position(|s| s.data.is_null()))
        .or_else(|| set.iter().position(|s| s.expires_ms <= now))
        .unwrap_or_else(|| {
            h.counters[EVICTIONS].fetch_add(1, Ordering::Relaxed);
            (0..WAYS).min_by_key(|&i| set[i].used).unwrap_or(0)
        });
    let slot_ptr: *mut Slot = &mut set[pick];
    // SAFETY: locked; the slot is in the table.
    unsafe { release(&locked, &mut *slot_ptr) };
    // SAFETY: locked; the pool is the zone's.
    let data = unsafe { alloc_evicting(h, &locked, bytes.len(), slot_ptr) };
    if data.is_null() {
        return;
    }
    // SAFETY: data has room for bytes.len() bytes; the slot is ours under the lock.
    unsafe {
        ptr::copy_nonoverlapping(bytes.as_ptr(), data, bytes.len());
        let slot = &mut *slot_ptr;
        slot.key = key.0;
        slot.expires_ms = exp;
        slot.used = h.clock.fetch_add(1, Ordering::Relaxed);
        slot.len = bytes.len();
        slot.data = data;
    }
    h.counters[STORES].fetch_add(1, Ordering::Relaxed);
}

/// The layout an entry of `len` bytes was allocated with.
fn entry_layout(len: usize) -> Option<Layout> {
    Layout::from_size_align(len, 1).ok()
}

/// Frees a slot's entry.
///
/// # Safety
/// `pool` is the locked pool of the slot's zone.
unsafe fn release(pool: &LockedSlabPool, slot: &mut Slot) {
    if let (Some(data), Some(layout)) = (NonNull::new(slot.data), entry_layout(slot.len)) {
        // SAFETY: data was allocated from this pool by put, with this layout.
        unsafe { pool.deallocate(data, layout) };
        slot.data = ptr::null_mut();
        slot.len = 0;
    }
}

/// Room for `len` bytes; when the pool is full, entries are evicted from the cursor on (at
/// most [`MAX_EVICTIONS_PER_PUT`], the lock being held), never the slot being filled. Null
/// when that did not free enough: the verdict is then not kept.
///
/// # Safety
/// The zone's mutex is held.
unsafe fn alloc_evicting(
    h: &Header,
    pool: &LockedSlabPool,
    len: usize,
    keep: *mut Slot,
) -> *mut u8 {
    let Some(layout) = entry_layout(len) else {
        return ptr::null_mut();
    };
    let total = h.sets * WAYS;
    for _ in 0..=total.min(MAX_EVICTIONS_PER_PUT) {
        if let Ok(p) = pool.allocate(layout) {
            return p.as_ptr() as *mut u8;
        }
        let i = (h.cursor.fetch_add(1, Ordering::Relaxed) as usize) % total;
        // SAFETY: i < total, the slot array's length; the zone's mutex is held (caller).
        let victim = unsafe { h.slots.add(i) };
        // SAFETY: victim is a slot of the array, read under the mutex.
        if victim != keep && unsafe { !(*victim).data.is_null() } {
            h.counters[EVICTIONS].fetch_add(1, Ordering::Relaxed);
            // SAFETY: victim is a used slot of the array, changed under the mutex; not `keep`.
            unsafe { release(pool, &mut *victim) };
        }
    }
    ptr::null_mut()
}
