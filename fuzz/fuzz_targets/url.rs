//! An `ometascan_pass` value (nginx reads it while it loads its configuration).
#![no_main]
use libfuzzer_sys::fuzz_target;
use ometascan_core::ScannerUrl;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(url) = ScannerUrl::parse(&text) {
        let _ = url.authority();
    }
});
