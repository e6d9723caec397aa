//! The start of a server's answer to a health probe, for every protocol.
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
    // clamd: only the first reply (to its NUL) counts.
    let up = healthy_answer(Scheme::Clamd, data);
    if let Some(end) = data.iter().position(|&b| b == 0) {
        assert_eq!(healthy_answer(Scheme::Clamd, &data[..=end]), up);
    }
});
