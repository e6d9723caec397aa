//! Every decoder of a body's codings (gzip, deflate, br, zstd, aws-chunked, base64,
//! quoted-printable): the
//! first byte picks the coding, the rest is the body, decoded whole and cut, within a bound.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ometascan_core::body::decode::{decode_within, Coding, DecodeLimits};
use ometascan_fuzz::{body, bytes_of, cuts, dir};

const CODINGS: [Coding; 7] = [
    Coding::Gzip,
    Coding::Deflate,
    Coding::Brotli,
    Coding::Zstd,
    Coding::AwsChunked,
    Coding::Base64,
    Coding::QuotedPrintable,
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let coding = CODINGS[pick as usize % CODINGS.len()];
    let limit = 1 << 20;
    let limits = DecodeLimits {
        max_bytes: limit,
        max_time: std::time::Duration::from_secs(3600),
        ..DecodeLimits::default()
    };
    let answer = |pieces: &[&[u8]]| match decode_within(&body(pieces), coding, &dir(), &limits) {
        Ok(b) => {
            let out = bytes_of(&b);
            assert!(out.len() as u64 <= limit);
            Ok(out)
        }
        // The kind only: a message may name where in the stream the decoder stopped.
        Err(e) => Err(matches!(e, ometascan_core::ScanError::DecodedTooLarge(_))),
    };
    let expected = answer(&[rest]);
    for pieces in cuts(rest) {
        assert_eq!(answer(&pieces), expected, "{coding:?}");
    }
});
