//! An ICAP chunked body (the scanner's sanitized body or block page), decoded whole and cut.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ometascan_core::icap::chunked::{ChunkDecoder, Decoded};
use ometascan_fuzz::cuts;

fn dechunk(pieces: &[&[u8]]) -> Result<Vec<u8>, String> {
    let mut d = ChunkDecoder::default();
    let (mut out, mut pending) = (Vec::new(), Vec::new());
    let mut next = pieces.iter();
    loop {
        let (found, used) = d.decode(&pending).map_err(|e| e.to_string())?;
        assert!(used <= pending.len());
        if let Decoded::Data(r) = &found {
            out.extend_from_slice(&pending[r.clone()]);
        }
        pending.drain(..used);
        match found {
            Decoded::End => return Ok(out),
            Decoded::NeedMore if used == 0 => match next.next() {
                Some(p) => pending.extend_from_slice(p),
                None => return Err("cut short".into()),
            },
            _ => {}
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let expected = dechunk(&[data]);
    for pieces in cuts(data) {
        assert_eq!(dechunk(&pieces), expected);
    }
});
