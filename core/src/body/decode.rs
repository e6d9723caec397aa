//! Decoding a body before it is scanned: the representation the backend will use, not the one
//! on the wire. `Content-Encoding: gzip / deflate / br` of a request (flate2, a maintained
//! streaming inflater; brotli-decompressor, the decoder half of Dropbox's brotli crate, safe
//! Rust) and base64 (form parts, JSON strings) are decoded, streamed,
//! into memory up to 1 MiB and an unlinked temp file beyond; the output is bounded (a
//! decompression bomb is refused, not scanned in part).

use std::io::{self, Read, Write};
use std::path::Path;

use base64::Engine as _;
use bytes::Bytes;

use crate::body::sink::BodySink;
use crate::body::{RequestBody, FILE_CHUNK};
use crate::scan::{ScanError, SPILL_THRESHOLD};

/// A decoded body may be at most this many times larger than the encoded one (plus 1 MiB).
pub const MAX_RATIO: u64 = 100;
/// And never larger than this.
pub const MAX_DECODED: u64 = 4 << 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Gzip,
    Deflate,
    Brotli,
    Base64,
}

impl Coding {
    /// The coding of a `Content-Encoding` value: `Ok(None)` for identity, `Err` for one that
    /// cannot be decoded here (which fails the scan: never a pass).
    pub fn of_content_encoding(v: &[u8]) -> Result<Option<Coding>, String> {
        let v = String::from_utf8_lossy(v).trim().to_ascii_lowercase();
        match v.as_str() {
            "" | "identity" => Ok(None),
            "gzip" | "x-gzip" => Ok(Some(Coding::Gzip)),
            "deflate" => Ok(Some(Coding::Deflate)),
            "br" => Ok(Some(Coding::Brotli)),
            other => Err(format!(
                "the request body's Content-Encoding \"{other}\" cannot be decoded for scanning"
            )),
        }
    }
}

/// The encoded body as a reader (file parts read in chunks, memory parts shared).
struct BodyRead {
    reader: crate::body::BodyReader,
    current: Bytes,
}

impl Read for BodyRead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.reader.next_chunk() {
                Some(c) => self.current = c?,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        Ok(n)
    }
}

/// A writer into a [`BodySink`] that refuses more than `room` bytes.
struct Bounded<'a> {
    sink: BodySink<'a>,
    room: u64,
}

impl Write for Bounded<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.room = self
            .room
            .checked_sub(buf.len() as u64)
            .ok_or_else(|| io::Error::other(TOO_LARGE))?;
        self.sink.push(buf).map_err(io::Error::other)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

const TOO_LARGE: &str = "the decoded body is over its limit";

/// Decodes `body`; the result is a body of its own (memory or an unlinked temp file in `dir`).
pub fn decode(body: &RequestBody, coding: Coding, dir: &Path) -> Result<RequestBody, ScanError> {
    let limit = body
        .len()
        .saturating_mul(MAX_RATIO)
        .saturating_add(1 << 20)
        .min(MAX_DECODED);
    let mut out = Bounded {
        sink: BodySink::new(SPILL_THRESHOLD, dir),
        room: limit,
    };
    let input = BodyRead {
        reader: body.reader(FILE_CHUNK),
        current: Bytes::new(),
    };
    let result = match coding {
        Coding::Gzip => io::copy(&mut flate2::read::MultiGzDecoder::new(input), &mut out),
        Coding::Deflate => inflate(input, &mut out),
        Coding::Brotli => io::copy(
            &mut brotli_decompressor::Decompressor::new(input, 64 * 1024),
            &mut out,
        ),
        Coding::Base64 => base64_decode(input, &mut out),
    };
    result.map_err(|e| {
        if e.to_string() == TOO_LARGE {
            ScanError::DecodedTooLarge(limit)
        } else {
            ScanError::Decode(format!("{coding:?}: {e}"))
        }
    })?;
    Ok(out.sink.finish().into())
}

/// HTTP's `deflate` is a zlib stream; some clients send raw deflate: both are accepted.
fn inflate(input: BodyRead, out: &mut Bounded) -> io::Result<u64> {
    let mut input = input;
    let mut head = [0u8; 2];
    let n = input.read(&mut head)?;
    let zlib =
        n == 2 && (u16::from(head[0]) << 8 | u16::from(head[1])) % 31 == 0 && head[0] & 0x0f == 8;
    let chained = io::Cursor::new(head[..n].to_vec()).chain(input);
    if zlib {
        io::copy(&mut flate2::read::ZlibDecoder::new(chained), out)
    } else {
        io::copy(&mut flate2::read::DeflateDecoder::new(chained), out)
    }
}

/// Standard base64, line breaks and other white space ignored; anything else is an error.
fn base64_decode(mut input: BodyRead, out: &mut Bounded) -> io::Result<u64> {
    let engine = base64::engine::general_purpose::STANDARD;
    let mut carry: Vec<u8> = Vec::with_capacity(4);
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        let mut clean: Vec<u8> = std::mem::take(&mut carry);
        // White space (line breaks of MIME) and JSON's backslash of `\/` are not data.
        clean.extend(
            buf[..n]
                .iter()
                .copied()
                .filter(|&b| !b.is_ascii_whitespace() && b != b'\\'),
        );
        let whole = clean.len() / 4 * 4;
        carry = clean[whole..].to_vec();
        let decoded = engine
            .decode(&clean[..whole])
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        out.write_all(&decoded)?;
        total += decoded.len() as u64;
    }
    if !carry.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "truncated base64",
        ));
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::testing::*;

    #[test]
    fn gzip_deflate_and_base64_decode() {
        let data = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR".repeat(100);
        let dir = std::env::temp_dir();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&data).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(
            bytes_of(&decode(&mem(&[&gz]), Coding::Gzip, &dir).unwrap()),
            data
        );
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&data).unwrap();
        let z = z.finish().unwrap();
        assert_eq!(
            bytes_of(&decode(&mem(&[&z]), Coding::Deflate, &dir).unwrap()),
            data
        );
        let mut raw =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        raw.write_all(&data).unwrap();
        let raw = raw.finish().unwrap();
        assert_eq!(
            bytes_of(&decode(&mem(&[&raw]), Coding::Deflate, &dir).unwrap()),
            data
        );
        let b64 = base64::engine::general_purpose::STANDARD.encode(&data);
        let wrapped: Vec<u8> = b64
            .as_bytes()
            .chunks(76)
            .flat_map(|l| l.iter().copied().chain(*b"\r\n"))
            .collect();
        assert_eq!(
            bytes_of(&decode(&mem(&[&wrapped]), Coding::Base64, &dir).unwrap()),
            data
        );
    }

    #[test]
    fn bombs_and_corrupt_streams_are_errors() {
        let dir = std::env::temp_dir();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&vec![0u8; 64 << 20]).unwrap();
        let gz = gz.finish().unwrap();
        assert!(gz.len() < 1 << 20);
        assert!(matches!(
            decode(&mem(&[&gz]), Coding::Gzip, &dir),
            Err(ScanError::DecodedTooLarge(_))
        ));
        assert!(matches!(
            decode(&mem(&[b"not gzip at all"]), Coding::Gzip, &dir),
            Err(ScanError::Decode(_))
        ));
        assert!(matches!(
            decode(&mem(&[b"QUJD$"]), Coding::Base64, &dir),
            Err(ScanError::Decode(_))
        ));
        assert_eq!(Coding::of_content_encoding(b"identity"), Ok(None));
        assert_eq!(
            Coding::of_content_encoding(b" GZIP "),
            Ok(Some(Coding::Gzip))
        );
        assert_eq!(Coding::of_content_encoding(b"br"), Ok(Some(Coding::Brotli)));
        assert!(Coding::of_content_encoding(b"zstd").is_err());
        // A corrupt brotli stream is an error, not a pass.
        assert!(matches!(
            decode(&mem(&[b"\x1b\x03\x00garbage"]), Coding::Brotli, &dir),
            Err(ScanError::Decode(_))
        ));
    }
}
