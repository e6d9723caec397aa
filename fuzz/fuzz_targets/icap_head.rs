//! ICAP answer heads and encapsulated HTTP heads, read as the client reads them: the bytes
//! gathered piece by piece and parsed again after each piece until a head is complete.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ometascan_core::icap::codec::{parse_head, parse_http_head, parse_options};
use ometascan_fuzz::cuts;

fn whole(data: &[u8]) -> String {
    match parse_head(data) {
        Ok(Some((head, used))) => {
            let _ = parse_options(&head);
            format!("{head:?} {used}")
        }
        other => format!("{other:?}"),
    }
}

fn gathered(pieces: &[&[u8]]) -> String {
    let mut buf = Vec::new();
    for p in pieces {
        buf.extend_from_slice(p);
        match parse_head(&buf) {
            Ok(None) => continue,
            Ok(Some((head, used))) => return format!("{head:?} {used}"),
            Err(e) => return format!("{:?}", Err::<(), _>(e)),
        }
    }
    format!("{:?}", parse_head(&buf))
}

fuzz_target!(|data: &[u8]| {
    let expected = whole(data);
    for pieces in cuts(data) {
        assert_eq!(gathered(&pieces), expected);
    }
    let _ = parse_http_head(data);
});
