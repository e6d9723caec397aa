//! An url-encoded body: its fields found whole and cut, each name and value decoded.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ometascan_core::body::urlencoded::{decode_bytes, fields};
use ometascan_fuzz::{body, cuts};

fuzz_target!(|data: &[u8]| {
    let answer = |pieces: &[&[u8]]| {
        format!(
            "{:?}",
            fields(&body(pieces), 256).map_err(|e| e.to_string())
        )
    };
    let expected = answer(&[data]);
    for pieces in cuts(data) {
        assert_eq!(answer(&pieces), expected);
    }
    let decoded = decode_bytes(data);
    assert!(decoded.len() <= data.len());
});
