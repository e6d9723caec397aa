//! A response relayed behind an interim status: the final response read (head and body) or
//! refused, whole and cut, the body within its bound.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ometascan_core::scan::relayed::final_response;
use ometascan_fuzz::{body, bytes_of, cuts, dir};

fuzz_target!(|data: &[u8]| {
    let limit = 1 << 20;
    let answer = |pieces: &[&[u8]]| match final_response(103, &body(pieces), &dir(), limit) {
        Ok((head, b)) => {
            let out = bytes_of(&b);
            assert!(out.len() as u64 <= limit.max(data.len() as u64));
            Ok((head.status, head.headers, out))
        }
        Err(e) => Err(e.to_string()),
    };
    let expected = answer(&[data]);
    for pieces in cuts(data) {
        assert_eq!(answer(&pieces), expected);
    }
});
