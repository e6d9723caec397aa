//! A Redis server's reply to the verdict cache's `GET`: a value, a miss or an error, within
//! the timeout, with the value bounded.
#![no_main]
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use ometascan_core::cache::{Key, Redis, RedisSpec};
use ometascan_fuzz::{answer_with, runtime, server};

fuzz_target!(|data: &[u8]| {
    let addr = server();
    answer_with(data);
    let redis = Redis::new(RedisSpec {
        addr,
        timeout: Duration::from_millis(500),
    });
    let started = Instant::now();
    let got = runtime().block_on(redis.get(&Key([1; 32])));
    if let Ok(Some(v)) = got {
        assert!(v.len() < data.len());
    }
    assert!(started.elapsed() < Duration::from_secs(5));
});
