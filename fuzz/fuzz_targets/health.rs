//! The start of a server's answer to a health probe, for both protocols.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ometascan_core::upstream::health::healthy_answer;
use ometascan_core::Scheme;

fuzz_target!(|data: &[u8]| {
    for scheme in [Scheme::Http, Scheme::Icap] {
        let up = healthy_answer(scheme, data);
        // Only the first line counts: what follows it changes nothing.
        if let Some(eol) = data.iter().position(|&b| b == b'\n') {
            assert_eq!(healthy_answer(scheme, &data[..=eol]), up);
        }
    }
});
