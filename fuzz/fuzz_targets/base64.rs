//! Base64 in a value or a body: the lenient sniffer (Python's and PHP's readings) and a
//! declared base64 part (Django's reading), whole and cut.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ometascan_core::body::base64::{declared, php_reading, sniff, sniff_bytes};
use ometascan_fuzz::{body, bytes_of, cuts, dir};

fn answer(pieces: &[&[u8]]) -> String {
    let b = body(pieces);
    let all = |r: Result<Vec<ometascan_core::RequestBody>, _>| {
        r.map(|v| v.iter().map(bytes_of).collect::<Vec<_>>())
    };
    let sniffed = all(sniff(&b, &dir())).map_err(|e| e.to_string());
    let php = php_reading(&b, &dir())
        .map(|o| o.as_ref().map(bytes_of))
        .map_err(|e| e.to_string());
    let django = all(declared(&b, &dir())).map_err(|e| e.to_string());
    format!("{sniffed:?} {php:?} {django:?}")
}

fuzz_target!(|data: &[u8]| {
    let expected = answer(&[data]);
    for pieces in cuts(data) {
        assert_eq!(answer(&pieces), expected);
    }
    let whole = sniff_bytes(data, &dir()).map(|v| v.iter().map(bytes_of).collect::<Vec<_>>());
    let body_read =
        sniff(&body(&[data]), &dir()).map(|v| v.iter().map(bytes_of).collect::<Vec<_>>());
    assert_eq!(
        format!("{:?}", whole.map_err(|e| e.to_string())),
        format!("{:?}", body_read.map_err(|e| e.to_string()))
    );
});
