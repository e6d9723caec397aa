//! A multipart body: the first line of the input is the boundary, the rest the body, split
//! whole and cut into nginx-like buffers.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ometascan_core::body::multipart::{split, Limits};
use ometascan_fuzz::{body, cuts};

fuzz_target!(|data: &[u8]| {
    let Some(eol) = data.iter().position(|&b| b == b'\n') else {
        return;
    };
    let (boundary, rest) = (&data[..eol], &data[eol + 1..]);
    if boundary.is_empty() || boundary.len() > 200 {
        return;
    }
    let limits = Limits {
        max_parts: 64,
        max_header: 1024,
    };
    let answer =
        |pieces: &[&[u8]], chunk| format!("{:?}", split(&body(pieces), boundary, chunk, limits));
    let expected = answer(&[rest], 1 << 16);
    for pieces in cuts(rest) {
        assert_eq!(answer(&pieces, 1 << 16), expected);
        assert_eq!(answer(&pieces, 7), expected);
    }
});
