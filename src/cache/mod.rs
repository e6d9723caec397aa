//! The verdict cache's first level in nginx shared memory: zones declared with
//! `ometascan_cache_zone` ([`zone`]), the table of entries in each ([`table`]), and the store
//! the core's lookup uses ([`ShmStore`]).

mod table;
pub mod zone;

use std::sync::atomic::Ordering;

use ngx::core::SlabPool;
use ngx::ffi::*;
use ometascan_core::cache::{CacheEvent, Key, VerdictStore};

use table::Header;

/// A zone as the core sees it: get, put, count.
pub struct ShmStore {
    zone: *mut ngx_shm_zone_t,
}

// SAFETY: used on the module's runtime thread. The zone structure lives in the cycle's memory
// as long as the cycle the worker runs and is only read (its `data` and `shm.addr`, set before
// the workers started); the shared memory is mapped into every worker; the table is only
// touched under the zone's slab mutex (an inter-process lock that also excludes the other
// threads of this process, as it holds the pid) and the counters are atomics.
unsafe impl Send for ShmStore {}
// SAFETY: shared across threads on the same terms as sent: the zone is only read, the table
// only touched under the slab mutex, the counters atomics.
unsafe impl Sync for ShmStore {}

impl ShmStore {
    /// # Safety
    /// `zone` is a cache zone of the running cycle (its `init` ran).
    pub unsafe fn new(zone: *mut ngx_shm_zone_t) -> Self {
        ShmStore { zone }
    }

    fn parts(&self) -> Option<(&Header, SlabPool)> {
        // SAFETY: per `new`, the zone is initialized and lives as long as the worker's cycle:
        // data is our header in the zone's slab pool, the pool at the start of its memory.
        unsafe {
            let header = table::header_at((*self.zone).data)?;
            Some((header, SlabPool::from_shm_zone(&*self.zone)?))
        }
    }
}

impl VerdictStore for ShmStore {
    fn get(&self, key: &Key) -> Option<Vec<u8>> {
        let (header, pool) = self.parts()?;
        // SAFETY: header and pool belong to the same initialized zone.
        unsafe { table::get(header, &pool, key) }
    }

    fn put(&self, key: &Key, bytes: &[u8], expires_ms: u64) {
        if let Some((header, pool)) = self.parts() {
            // SAFETY: as in get.
            unsafe { table::put(header, &pool, key, bytes, expires_ms) }
        }
    }

    fn count(&self, event: CacheEvent) {
        if let Some((header, _)) = self.parts() {
            header.counters[table::event_index(event)].fetch_add(1, Ordering::Relaxed);
        }
    }
}
