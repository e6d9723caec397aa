//! `application/x-www-form-urlencoded` bodies: where the fields are, and a field's value
//! decoded (percent escapes and `+`). The body is read in chunks; only field names are kept in
//! memory (bounded); values stay ranges of the body until one is decoded, streamed, into
//! memory or a temp file.

use std::io;
use std::path::Path;

use bytes::Bytes;

use crate::body::multipart::part_body;
use crate::body::sink::BodySink;
use crate::body::{BodyPart, RequestBody, FILE_CHUNK};
use crate::scan::{ScanError, SPILL_THRESHOLD};

/// Most fields in one body.
pub const MAX_FIELDS: usize = 10_000;
/// Longest field name.
pub const MAX_NAME: usize = 1024;

/// One field: its name (as sent, still encoded) and where its value lies in the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: Vec<u8>,
    pub offset: u64,
    pub len: u64,
}

/// The fields of a body, or `None` when it is not a plain form (a byte outside printable
/// ASCII, which url-encoding never produces — curl labels any `--data-binary` upload this way —,
/// too many fields, a name too long): the caller then scans it as it is.
pub fn fields(body: &RequestBody) -> io::Result<Option<Vec<Field>>> {
    let mut out: Vec<Field> = Vec::new();
    let mut name: Vec<u8> = Vec::new();
    let mut in_value = false;
    let mut value_start = 0u64;
    let mut pos = 0u64;
    let mut reader = body.reader(FILE_CHUNK);
    let close = |out: &mut Vec<Field>, name: &mut Vec<u8>, start: u64, end: u64, in_value: bool| {
        if in_value || !name.is_empty() {
            let (offset, len) = if in_value {
                (start, end - start)
            } else {
                (end, 0)
            };
            out.push(Field {
                name: std::mem::take(name),
                offset,
                len,
            });
        }
    };
    while let Some(chunk) = reader.next_chunk() {
        let chunk = chunk?;
        for (i, &b) in chunk.iter().enumerate() {
            let at = pos + i as u64;
            if !(0x20..0x7f).contains(&b) {
                return Ok(None);
            }
            match b {
                b'&' => {
                    close(&mut out, &mut name, value_start, at, in_value);
                    in_value = false;
                    if out.len() > MAX_FIELDS {
                        return Ok(None);
                    }
                }
                b'=' if !in_value => {
                    in_value = true;
                    value_start = at + 1;
                }
                _ if !in_value => {
                    if name.len() >= MAX_NAME {
                        return Ok(None);
                    }
                    name.push(b);
                }
                _ => {}
            }
        }
        pos += chunk.len() as u64;
    }
    close(&mut out, &mut name, value_start, pos, in_value);
    Ok((out.len() <= MAX_FIELDS).then_some(out))
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// A value decoded: `+` is a space, `%XX` a byte; a `%` not followed by two hex digits stays
/// as it is (as the usual form parsers do).
pub fn decode_value(body: &RequestBody, f: &Field, dir: &Path) -> Result<RequestBody, ScanError> {
    let mut sink = BodySink::new(SPILL_THRESHOLD, dir);
    let mut reader = part_body(body, f.offset, f.len).reader(FILE_CHUNK);
    let mut pending: Vec<u8> = Vec::new();
    let mut out = Vec::with_capacity(64 * 1024);
    loop {
        let next = reader.next_chunk().transpose().map_err(ScanError::Body)?;
        let last = next.is_none();
        if let Some(c) = next {
            pending.extend_from_slice(&c);
        }
        let mut i = 0;
        while i < pending.len() {
            match pending[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 >= pending.len() && !last => break,
                b'%' => match (
                    pending.get(i + 1).and_then(|&b| hex(b)),
                    pending.get(i + 2).and_then(|&b| hex(b)),
                ) {
                    (Some(h), Some(l)) => {
                        out.push(h << 4 | l);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                },
                b => out.push(b),
            }
            i += 1;
        }
        pending.drain(..i);
        sink.push(&out)?;
        out.clear();
        if last {
            break;
        }
    }
    Ok(sink.finish().into())
}

/// The body without the values of `taken` (their names and separators stay): what is left to
/// scan as sent.
pub fn without(body: &RequestBody, taken: &[&Field]) -> RequestBody {
    let mut out = RequestBody::new();
    let mut at = 0u64;
    for f in taken {
        for p in part_body(body, at, f.offset - at).parts() {
            out.push(p.clone());
        }
        at = f.offset + f.len;
    }
    for p in part_body(body, at, body.len() - at).parts() {
        out.push(p.clone());
    }
    if out.is_empty() {
        out.push(BodyPart::Memory(Bytes::new()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::testing::*;
    use proptest::prelude::*;

    #[test]
    fn fields_and_values() {
        let body = mem(&[b"a=1&file=X5O%21P%25%40AP", b"+x%2&empty=&flag&last=%41"]);
        let f = fields(&body).unwrap().unwrap();
        let names: Vec<&[u8]> = f.iter().map(|f| f.name.as_slice()).collect();
        assert_eq!(names, [&b"a"[..], b"file", b"empty", b"flag", b"last"]);
        let dir = std::env::temp_dir();
        assert_eq!(
            bytes_of(&decode_value(&body, &f[1], &dir).unwrap()),
            b"X5O!P%@AP x%2"
        );
        assert_eq!(bytes_of(&decode_value(&body, &f[4], &dir).unwrap()), b"A");
        assert_eq!(f[2].len, 0);
        assert_eq!(
            bytes_of(&without(&body, &[&f[1]])),
            b"a=1&file=&empty=&flag&last=%41"
        );
    }

    #[test]
    fn binary_data_under_a_url_encoded_label_is_no_form() {
        assert_eq!(fields(&mem(&[b"a=1&b=\x00\xff"])).unwrap(), None);
    }

    proptest! {
        #[test]
        fn decoding_does_not_depend_on_how_the_body_is_cut(
            value in proptest::collection::vec(any::<u8>(), 0..400),
            cut in 1usize..50,
        ) {
            let mut enc = b"f=".to_vec();
            for &b in &value {
                enc.extend_from_slice(format!("%{b:02X}").as_bytes());
            }
            let pieces: Vec<&[u8]> = enc.chunks(cut).collect();
            let body = mem(&pieces);
            let f = fields(&body).unwrap().unwrap();
            let got = decode_value(&body, &f[0], &std::env::temp_dir()).unwrap();
            prop_assert_eq!(bytes_of(&got), value);
        }
    }
}
