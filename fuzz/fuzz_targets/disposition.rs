//! The client's `Content-Disposition` (first line) renamed after the scanner's (the rest): the
//! result names the scanner's file, whatever the client wrote.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ometascan_core::disposition::{param, rename_filename};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (client, scanner) = text.split_once('\n').unwrap_or((&text, ""));
    let _ = param(client, "name");
    if let Some(renamed) = rename_filename(client, scanner) {
        assert_eq!(
            param(&renamed, "filename"),
            param(scanner, "filename"),
            "{renamed:?}"
        );
    }
});
