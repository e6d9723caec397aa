//! A verdict cache entry as read from shared memory or Redis: refused unless it is one this
//! module writes, and then written back to the same bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ometascan_core::cache::entry::{decode, encode};
use ometascan_core::cache::Key;

fuzz_target!(|data: &[u8]| {
    let key = Key([7; 32]);
    if let Ok(entry) = decode(&key, data) {
        assert_eq!(encode(&key, &entry), data);
    }
});
