//! `application/x-www-form-urlencoded` bodies as a form parser hands them over: every name and
//! every value decoded (`%XX` and `+`), whatever bytes the body holds (PHP parses a binary
//! body under this type too). The body is read in chunks; names and values stay ranges of the
//! body until one is decoded, streamed, into memory or a temp file.

use std::io;
use std::path::Path;

use crate::body::multipart::part_body;
use crate::body::sink::BodySink;
use crate::body::{RequestBody, FILE_CHUNK};
use crate::scan::{ScanError, SPILL_THRESHOLD};

/// Most fields read from one body by default (more is refused): a bound of work, not of
/// memory (fields are read one at a time). A binary upload that a client labels url-encoded
/// (`curl --data-binary` does) has a "field" per 256 bytes or so: 1 000 000 lets 250 MB of
/// that through.
pub const MAX_FIELDS: usize = 1_000_000;

/// A range of the body: offset and length.
pub type Range = (u64, u64);

/// One field: where its name and its value (after `=`, if any) lie in the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: Range,
    pub value: Option<Range>,
}

/// The fields of a body split at `&`, or `Err(max)` when there are more than `max`.
pub fn fields(body: &RequestBody, max: usize) -> io::Result<Result<Vec<Field>, usize>> {
    let mut out = Vec::new();
    let r = each_field(body, max, |f| {
        out.push(f);
        Ok(())
    })
    .map_err(|e| match e {
        ScanError::Body(e) => e,
        e => io::Error::other(e.to_string()),
    })?;
    Ok(r.map(|()| out))
}

/// Hands each field of a body split at `&` to `f` as it is found (nothing is collected), or
/// stops with `Err(max)` at field `max + 1`.
pub fn each_field(
    body: &RequestBody,
    max: usize,
    mut f: impl FnMut(Field) -> Result<(), ScanError>,
) -> Result<Result<(), usize>, ScanError> {
    let mut count = 0usize;
    let mut start = 0u64;
    let mut eq: Option<u64> = None;
    let mut pos = 0u64;
    let mut reader = body.reader(FILE_CHUNK);
    let field = |start: u64, eq: Option<u64>, end: u64| match eq {
        Some(e) => Field {
            name: (start, e - start),
            value: Some((e + 1, end - e - 1)),
        },
        None => Field {
            name: (start, end - start),
            value: None,
        },
    };
    while let Some(chunk) = reader.next_chunk() {
        let chunk = chunk.map_err(ScanError::Body)?;
        let mut i = 0;
        while let Some(j) = memchr::memchr2(b'&', b'=', &chunk[i..]) {
            let at = pos + (i + j) as u64;
            if chunk[i + j] == b'&' {
                if at > start {
                    count += 1;
                    if count > max {
                        return Ok(Err(max));
                    }
                    f(field(start, eq, at))?;
                }
                start = at + 1;
                eq = None;
            } else if eq.is_none() {
                eq = Some(at);
            }
            i += j + 1;
        }
        pos += chunk.len() as u64;
    }
    if pos > start {
        if count + 1 > max {
            return Ok(Err(max));
        }
        f(field(start, eq, pos))?;
    }
    Ok(Ok(()))
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Whether decoding changes these bytes (a `%` or a `+` in them).
pub fn changes(raw: &[u8]) -> bool {
    memchr::memchr2(b'%', b'+', raw).is_some()
}

/// A short name or value decoded in memory.
pub fn decode_bytes(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        // Runs without `%` or `+` are copied whole.
        let run = memchr::memchr2(b'%', b'+', &raw[i..]).unwrap_or(raw.len() - i);
        out.extend_from_slice(&raw[i..i + run]);
        i += run;
        if i >= raw.len() {
            break;
        }
        match raw[i] {
            b'+' => out.push(b' '),
            _ => match (
                raw.get(i + 1).copied().and_then(hex),
                raw.get(i + 2).copied().and_then(hex),
            ) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
        }
        i += 1;
    }
    out
}

/// A range decoded, streamed: `+` is a space, `%XX` a byte; a `%` not followed by two hex
/// digits stays as it is (as the usual form parsers do).
pub fn decode_range(
    body: &RequestBody,
    range: Range,
    dir: &Path,
) -> Result<RequestBody, ScanError> {
    let mut sink = BodySink::new(SPILL_THRESHOLD, dir);
    let mut reader = part_body(body, range.0, range.1).reader(FILE_CHUNK);
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let next = reader.next_chunk().transpose().map_err(ScanError::Body)?;
        let last = next.is_none();
        if let Some(c) = next {
            pending.extend_from_slice(&c);
        }
        // Keep a `%` and what follows it when the escape may be cut.
        let keep = if last {
            0
        } else {
            let tail = pending.len().saturating_sub(2);
            pending[tail..]
                .iter()
                .position(|&b| b == b'%')
                .map_or(0, |p| pending.len() - tail - p)
        };
        let cut = pending.len() - keep;
        sink.push(&decode_bytes(&pending[..cut]))?;
        pending.drain(..cut);
        if last {
            break;
        }
    }
    Ok(sink.finish()?.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::testing::*;
    use proptest::prelude::*;

    fn read(body: &RequestBody, r: Range) -> Vec<u8> {
        bytes_of(&part_body(body, r.0, r.1))
    }

    #[test]
    fn fields_and_values_of_any_bytes() {
        let body = mem(&[
            b"a=1&file=X5O%21P%25%40AP",
            b"+x%2&empty=&flag&&last=%41=b&\x00\xff=\x01",
        ]);
        let f = fields(&body, 100).unwrap().unwrap();
        let names: Vec<Vec<u8>> = f.iter().map(|f| read(&body, f.name)).collect();
        assert_eq!(
            names,
            [&b"a"[..], b"file", b"empty", b"flag", b"last", b"\x00\xff"]
        );
        let dir = std::env::temp_dir();
        let v = |i: usize| bytes_of(&decode_range(&body, f[i].value.unwrap(), &dir).unwrap());
        assert_eq!(v(1), b"X5O!P%@AP x%2");
        assert_eq!(v(4), b"A=b");
        assert_eq!(v(5), b"\x01");
        assert_eq!(f[2].value.unwrap().1, 0);
        assert_eq!(f[3].value, None);
        assert_eq!(fields(&body, 3).unwrap(), Err(3));
    }

    proptest! {
        #[test]
        fn decoding_does_not_depend_on_how_the_body_is_cut(
            value in proptest::collection::vec(any::<u8>(), 0..400),
            raw in any::<bool>(),
            cut in 1usize..50,
        ) {
            let mut enc = b"f=".to_vec();
            if raw {
                enc.extend(value.iter().filter(|&&b| b != b'&'));
            } else {
                for &b in &value {
                    enc.extend_from_slice(format!("%{b:02X}").as_bytes());
                }
            }
            let pieces: Vec<&[u8]> = enc.chunks(cut).collect();
            let body = mem(&pieces);
            let f = fields(&body, 10).unwrap().unwrap();
            let got = decode_range(&body, f[0].value.unwrap(), &std::env::temp_dir()).unwrap();
            prop_assert_eq!(bytes_of(&got), decode_bytes(&enc[2..]));
        }
    }
}
