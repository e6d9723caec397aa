//! A JSON body: whether it is JSON (and how far its value goes), and every string unescaped (joined, alone, decoded from
//! base64), whole and cut.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ometascan_core::body::json::strings;
use ometascan_core::body::json_check::accepted;
use ometascan_fuzz::{body, bytes_of, cuts, dir};

fn answer(pieces: &[&[u8]]) -> String {
    let b = body(pieces);
    let json = (accepted(&b, true), accepted(&b, false));
    let json = format!("{:?} {:?}", json.0.map_err(|e| e.to_string()), json.1.map_err(|e| e.to_string()));
    let found = strings(&b, &dir(), 64).map(|s| {
        let each = |v: &[(String, ometascan_core::RequestBody)]| {
            v.iter()
                .map(|(k, b)| (k.clone(), bytes_of(b)))
                .collect::<Vec<_>>()
        };
        (
            s.joined.as_ref().map(bytes_of),
            each(&s.alone),
            each(&s.decoded),
            s.bundled.iter().map(bytes_of).collect::<Vec<_>>(),
        )
    });
    format!("{json:?} {:?}", found.map_err(|e| e.to_string()))
}

fuzz_target!(|data: &[u8]| {
    let expected = answer(&[data]);
    for pieces in cuts(data) {
        assert_eq!(answer(&pieces), expected);
    }
});
