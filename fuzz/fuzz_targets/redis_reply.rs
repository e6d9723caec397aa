//! A Redis server's reply to the verdict cache's `GET`: a value, a miss or an error, within
//! the timeout, with the value bounded, the same whether the reply comes whole or cut.
#![no_main]
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use ometascan_core::cache::{Key, Redis, RedisSpec};
use ometascan_fuzz::{runtime, same_whole_and_cut, server};

fuzz_target!(|data: &[u8]| {
    let addr = server();
    same_whole_and_cut(data, || {
        // A client of its own each time: one that failed rests for a second.
        let redis = Redis::new(RedisSpec::plain(addr, Duration::from_millis(500)));
        let started = Instant::now();
        let got = runtime().block_on(redis.get(&Key([1; 32])));
        if let Ok(Some(v)) = &got {
            assert!(v.len() < data.len());
        }
        assert!(started.elapsed() < Duration::from_secs(5));
        got.map_err(|_| ())
    });
});
