//! A request's `Content-Type`: multipart or not, and its boundary as every parser reads it.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ometascan_core::body::boundary::{boundary, is_multipart};

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(b)) = boundary(data) {
        assert!(!b.is_empty() && b.len() <= 200);
    }
    let _ = is_multipart(data);
});
