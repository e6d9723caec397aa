//! Decoding a body before it is scanned: the representation the backend will use, not the one
//! on the wire. `Content-Encoding: gzip / deflate / br / zstd` of a request (flate2, a
//! maintained streaming inflater; brotli-decompressor, the decoder half of Dropbox's brotli
//! crate, safe Rust; ruzstd, a zstd decoder in safe Rust, its window held to 8 MiB as HTTP's
//! zstd coding allows), base64 (form parts, JSON strings) and quoted-printable (form parts)
//! are decoded, streamed,
//! into memory up to 1 MiB and an unlinked temp file beyond; the output is bounded (a
//! decompression bomb is refused, not scanned in part).

use std::io::{self, Read, Write};
use std::path::Path;

use base64::Engine as _;
use bytes::Bytes;

use crate::body::sink::BodySink;
use crate::body::{RequestBody, FILE_CHUNK};
use crate::scan::{ScanError, SPILL_THRESHOLD};

/// How far decoding a body may go (`ometascan_body_limits decoded= decode_time=
/// zstd_window=`): the decoded bytes, the time, the zstd window. A bomb stops at the byte
/// limit, however well it compresses; a benign body that compresses well passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    pub max_bytes: u64,
    pub max_time: std::time::Duration,
    /// The largest zstd window accepted (RFC 9659 asks decoders for 8 MiB).
    pub zstd_window: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_bytes: 1 << 30,
            max_time: std::time::Duration::from_secs(60),
            zstd_window: 8 << 20,
        }
    }
}

/// The largest zstd window an operator may allow (the decoder holds that much memory).
pub const MAX_ZSTD_WINDOW: u64 = 128 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Gzip,
    Deflate,
    Brotli,
    Zstd,
    /// Amazon S3's streaming upload framing (SigV4 `STREAMING-*` payloads): chunks with
    /// signature extensions, checksums in a trailer.
    AwsChunked,
    Base64,
    QuotedPrintable,
    /// Quoted-printable as Python's `binascii.a2b_qp` reads it (python-multipart's decoder):
    /// after `=` and a CR, everything up to the next LF is dropped; `==` is one `=`.
    QuotedPrintableBinascii,
}

impl Coding {
    /// The codings of a request's `Content-Encoding` headers (RFC 9110 §8.4: a list, each
    /// header's items after the previous header's, in the order they were applied; names in
    /// any case, `x-gzip` for `gzip`, `identity` for none). `Err` for one that cannot be
    /// decoded here (which fails the scan: never a pass).
    pub fn of_content_encoding<'a>(
        values: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Vec<Coding>, String> {
        let mut out = Vec::new();
        for v in values {
            for item in v.split(|&b| b == b',') {
                let item = String::from_utf8_lossy(item).trim().to_ascii_lowercase();
                out.push(match item.as_str() {
                    "" | "identity" => continue,
                    "gzip" | "x-gzip" => Coding::Gzip,
                    "deflate" => Coding::Deflate,
                    "br" => Coding::Brotli,
                    "zstd" => Coding::Zstd,
                    "aws-chunked" => Coding::AwsChunked,
                    other => {
                        return Err(format!(
                            "Content-Encoding \"{other}\" cannot be decoded \
                             for scanning"
                        ))
                    }
                });
                if out.len() > MAX_CODINGS {
                    return Err(format!(
                        "Content-Encoding lists more than {MAX_CODINGS} codings"
                    ));
                }
            }
        }
        Ok(out)
    }
}

/// Most codings decoded in a row.
pub const MAX_CODINGS: usize = 4;

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

/// A writer into a [`BodySink`] that refuses more than `room` bytes, or a write after the
/// deadline.
struct Bounded<'a> {
    sink: BodySink<'a>,
    room: u64,
    deadline: std::time::Instant,
}

impl Write for Bounded<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.room = self
            .room
            .checked_sub(buf.len() as u64)
            .ok_or_else(|| io::Error::other(TOO_LARGE))?;
        if std::time::Instant::now() > self.deadline {
            return Err(io::Error::other(Stop::Limit(
                "decoding took longer than its limit".into(),
            )));
        }
        self.sink.push(buf).map_err(io::Error::other)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

const TOO_LARGE: &str = "the decoded body is over its limit";

/// Why decoding stopped other than a corrupt stream: a limit reached (the request is refused
/// with 413), or malformed `aws-chunked` framing (the client's fault, 400).
#[derive(Debug)]
enum Stop {
    Limit(String),
    Malformed(String),
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::Limit(s) | Stop::Malformed(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for Stop {}

/// A chunk-size line's size (`hex[;extensions]`, as HTTP's chunked coding and S3's
/// `aws-chunked` write it); `None` when it is not one.
pub fn chunk_size(line: &[u8]) -> Option<u64> {
    let hex_end = line
        .iter()
        .position(|b| !b.is_ascii_hexdigit())
        .unwrap_or(line.len());
    if hex_end == 0 || hex_end > 15 || !(hex_end == line.len() || line[hex_end] == b';') {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(&line[..hex_end]).ok()?, 16).ok()
}

/// Decodes `body` within the default limits; the result is a body of its own (memory or an
/// unlinked temp file in `dir`).
pub fn decode(body: &RequestBody, coding: Coding, dir: &Path) -> Result<RequestBody, ScanError> {
    decode_within(body, coding, dir, &DecodeLimits::default())
}

/// Decodes `body` within `limits`: more bytes is [`ScanError::DecodedTooLarge`], more time or
/// a larger zstd window a refusal (413), malformed `aws-chunked` framing a refusal (400).
pub fn decode_within(
    body: &RequestBody,
    coding: Coding,
    dir: &Path,
    limits: &DecodeLimits,
) -> Result<RequestBody, ScanError> {
    let limit = limits.max_bytes;
    let mut out = Bounded {
        sink: BodySink::new(SPILL_THRESHOLD, dir),
        room: limit,
        deadline: std::time::Instant::now() + limits.max_time,
    };
    let input = BodyRead {
        reader: body.reader(FILE_CHUNK),
        current: Bytes::new(),
    };
    let result = match coding {
        Coding::Gzip => io::copy(&mut flate2::read::MultiGzDecoder::new(input), &mut out),
        Coding::Deflate => inflate(input, &mut out),
        Coding::Brotli => io::copy(
            &mut brotli_decompressor::Decompressor::new(FullReads(input), 64 * 1024),
            &mut out,
        ),
        Coding::Zstd => zstd_decode(input, &mut out, limits.zstd_window),
        Coding::AwsChunked => aws_chunked_decode(input, &mut out),
        Coding::Base64 => base64_decode(input, &mut out),
        Coding::QuotedPrintable => quoted_printable_decode(input, &mut out),
        Coding::QuotedPrintableBinascii => a2b_qp(input, &mut out),
    };
    result.map_err(|e| {
        let inner = e.get_ref();
        if e.to_string() == TOO_LARGE {
            ScanError::DecodedTooLarge(limit)
        } else if let Some(stop) = inner.and_then(|i| i.downcast_ref::<Stop>()) {
            match stop {
                Stop::Limit(l) => ScanError::over_limit(format!("{coding:?}: {l}")),
                Stop::Malformed(m) => {
                    ScanError::ambiguous(format!("the aws-chunked body is malformed: {m}"))
                }
            }
        } else {
            ScanError::Decode(format!("{coding:?}: {e}"))
        }
    })?;
    Ok(out.sink.finish()?.into())
}

/// `aws-chunked` (S3's SigV4 streaming payloads): `hex-size[;chunk-signature=...]` CRLF, the
/// data, CRLF, ..., a zero-size chunk, trailer fields (`x-amz-checksum-*`,
/// `x-amz-trailer-signature`) and an empty line. The signatures are the store's to check.
fn aws_chunked_decode(input: BodyRead, out: &mut Bounded) -> io::Result<u64> {
    let bad = |why: &str| io::Error::other(Stop::Malformed(why.to_string()));
    let mut input = io::BufReader::with_capacity(64 * 1024, input);
    let mut line = Vec::new();
    let read_line = |input: &mut io::BufReader<BodyRead>, line: &mut Vec<u8>, max: u64| {
        line.clear();
        io::BufRead::read_until(&mut input.take(max), b'\n', line)?;
        if line.last() != Some(&b'\n') {
            return Err(bad("a line cut short or too long"));
        }
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Ok::<(), io::Error>(())
    };
    let mut total = 0u64;
    loop {
        read_line(&mut input, &mut line, 4096)?;
        let size = chunk_size(&line).ok_or_else(|| bad("a chunk size that is not hexadecimal"))?;
        if size == 0 {
            let mut seen = 0u64;
            loop {
                read_line(&mut input, &mut line, 16 * 1024)?;
                if line.is_empty() {
                    break;
                }
                seen += line.len() as u64;
                if seen > 64 * 1024 || !line.contains(&b':') {
                    return Err(bad("a trailer that is not header fields"));
                }
            }
            let mut rest = [0u8; 1];
            if input.read(&mut rest)? != 0 {
                return Err(bad("bytes after the last chunk"));
            }
            return Ok(total);
        }
        let copied = io::copy(&mut (&mut input).take(size), out)?;
        if copied < size {
            return Err(bad("the body ends inside a chunk"));
        }
        total += copied;
        read_line(&mut input, &mut line, 2)?;
        if !line.is_empty() {
            return Err(bad("a chunk not followed by CRLF"));
        }
    }
}

/// HTTP's `deflate` is a zlib stream; some clients send raw deflate: both are accepted.
fn inflate(input: BodyRead, out: &mut Bounded) -> io::Result<u64> {
    let mut input = input;
    let mut head = [0u8; 2];
    // Both bytes, however the body is cut: one read may return a single byte, and the
    // choice between zlib and raw must not depend on that.
    let n = read_up_to(&mut input, &mut head)?;
    let zlib =
        n == 2 && (u16::from(head[0]) << 8 | u16::from(head[1])) % 31 == 0 && head[0] & 0x0f == 8;
    let chained = io::Cursor::new(head[..n].to_vec()).chain(input);
    if zlib {
        io::copy(&mut flate2::read::ZlibDecoder::new(chained), out)
    } else {
        io::copy(&mut flate2::read::DeflateDecoder::new(chained), out)
    }
}

/// One or more zstd frames, one after the other, each checked for its window first.
fn zstd_decode(input: BodyRead, out: &mut Bounded, max_window: u64) -> io::Result<u64> {
    let mut input: Box<dyn Read> = Box::new(input);
    let mut total = 0u64;
    let mut frames = 0;
    loop {
        let mut head = [0u8; 18];
        let n = read_up_to(&mut input, &mut head)?;
        if n == 0 {
            if frames == 0 {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "no zstd frame"));
            }
            return Ok(total);
        }
        if n >= 8 && head[0] & 0xf0 == 0x50 && head[1..4] == [0x2a, 0x4d, 0x18] {
            // A skippable frame (RFC 8878 §3.1.2: pzstd's sizes, seek tables): its length
            // after the 8 bytes of its header; skipped as decoders do.
            let len = u64::from(u32::from_le_bytes([head[4], head[5], head[6], head[7]]));
            let rest = head[8..n].to_vec();
            let skip_in_head = (rest.len() as u64).min(len);
            let mut after: Box<dyn Read> =
                Box::new(io::Cursor::new(rest[skip_in_head as usize..].to_vec()).chain(input));
            let left = len - skip_in_head;
            if left > 0 {
                let skipped = io::copy(&mut (&mut after).take(left), &mut io::sink())?;
                if skipped < left {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "truncated zstd skippable frame",
                    ));
                }
            }
            input = after;
            frames += 1;
            continue;
        }
        zstd_window(&head[..n], max_window)?;
        let chained: Box<dyn Read> = Box::new(io::Cursor::new(head[..n].to_vec()).chain(input));
        let mut frame = ruzstd::decoding::StreamingDecoder::new(chained)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        total += io::copy(&mut frame, out)?;
        if !frame.decoder.is_finished() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "truncated zstd frame",
            ));
        }
        input = frame.into_inner();
        frames += 1;
    }
}

/// Reads until `buf` is full or the input ends.
/// A reader whose reads fill the buffer (short only at the end): the brotli decoder's answer
/// on some corrupt streams depends on how its input arrives, and the body's buffers are the
/// client's to cut. Fed this way, it always arrives in the decoder's own block size.
struct FullReads<R>(R);

impl<R: Read> Read for FullReads<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        read_up_to(&mut self.0, buf)
    }
}

fn read_up_to(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// The window a zstd frame header asks for, refused over [`MAX_ZSTD_WINDOW`] (RFC 8878:
/// window descriptor, or the content size of a single-segment frame).
fn zstd_window(head: &[u8], max: u64) -> io::Result<u64> {
    let bad = |why: &str| io::Error::new(io::ErrorKind::InvalidData, why.to_string());
    if head.len() < 6 || head[..4] != [0x28, 0xb5, 0x2f, 0xfd] {
        return Err(bad("not a zstd frame"));
    }
    let fhd = head[4];
    let single = fhd & 0x20 != 0;
    let window = if single {
        let dict = [0usize, 1, 2, 4][usize::from(fhd & 3)];
        let at = 5 + dict;
        let size = match fhd >> 6 {
            0 => head.get(at).map(|&b| u64::from(b)),
            1 => head
                .get(at..at + 2)
                .map(|b| u64::from(u16::from_le_bytes([b[0], b[1]])) + 256),
            2 => head
                .get(at..at + 4)
                .map(|b| u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))),
            _ => head
                .get(at..at + 8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_le_bytes),
        };
        size.ok_or_else(|| bad("truncated zstd frame header"))?
    } else {
        let wd = head[5];
        let base = 1u64 << (10 + (wd >> 3));
        base + (base / 8) * u64::from(wd & 7)
    };
    if window > max {
        return Err(io::Error::other(Stop::Limit(format!(
            "a zstd frame asks for a window of {window} bytes, over the {max} allowed \
             (\"ometascan_body_limits zstd_window=\" raises it)"
        ))));
    }
    Ok(window)
}

/// Quoted-printable (RFC 2045): `=XX` is a byte, `=` at the end of a line joins lines; a `=`
/// followed by anything else stays as it is (as lenient decoders do).
fn quoted_printable_decode(mut input: BodyRead, out: &mut Bounded) -> io::Result<u64> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut pending: Vec<u8> = Vec::with_capacity(3);
    let mut decoded = Vec::with_capacity(64 * 1024);
    let mut total = 0u64;
    loop {
        let n = input.read(&mut buf)?;
        let end = n == 0;
        let mut data = std::mem::take(&mut pending);
        data.extend_from_slice(&buf[..n]);
        let mut i = 0;
        while i < data.len() {
            if data[i] != b'=' {
                decoded.push(data[i]);
                i += 1;
                continue;
            }
            let rest = &data[i + 1..];
            if rest.len() < 2 && !end {
                // `=` at the end of this read: decide with the next one.
                pending = data[i..].to_vec();
                break;
            }
            match rest {
                [b'\r', b'\n', ..] => i += 3,
                [b'\n', ..] => i += 2,
                [a, b, ..] if a.is_ascii_hexdigit() && b.is_ascii_hexdigit() => {
                    let hex = [*a, *b];
                    let s = std::str::from_utf8(&hex).unwrap_or("00");
                    decoded.push(u8::from_str_radix(s, 16).unwrap_or(0));
                    i += 3;
                }
                _ => {
                    decoded.push(b'=');
                    i += 1;
                }
            }
        }
        out.write_all(&decoded)?;
        total += decoded.len() as u64;
        decoded.clear();
        if end {
            return Ok(total);
        }
    }
}

/// Where [`a2b_qp`] is in its input.
#[derive(Clone, Copy)]
enum Qp {
    Text,
    /// After `=`.
    Equals,
    /// After `=` and one hex digit.
    Hex(u8),
    /// After `=` and CR: up to the next LF, nothing counts.
    SoftBreak,
}

/// Python's `binascii.a2b_qp` (not for headers), one byte at a time so that its answer does
/// not depend on how the input is cut: `=XX` is a byte, `=` before CR or LF a soft break
/// (after CR, up to the LF, everything is dropped), `==` one `=`, `=` before anything else
/// stays, a `=` at the very end is dropped.
fn a2b_qp(mut input: BodyRead, out: &mut Bounded) -> io::Result<u64> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut decoded = Vec::with_capacity(64 * 1024);
    let mut total = 0u64;
    let mut state = Qp::Text;
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            if let Qp::Hex(a) = state {
                decoded.extend_from_slice(&[b'=', a]);
            }
            out.write_all(&decoded)?;
            return Ok(total + decoded.len() as u64);
        }
        for &b in &buf[..n] {
            state = qp_step(state, b, &mut decoded);
        }
        out.write_all(&decoded)?;
        total += decoded.len() as u64;
        decoded.clear();
    }
}

fn qp_step(state: Qp, b: u8, out: &mut Vec<u8>) -> Qp {
    match state {
        Qp::Text if b == b'=' => Qp::Equals,
        Qp::Text => {
            out.push(b);
            Qp::Text
        }
        Qp::Equals => match b {
            b'\n' => Qp::Text,
            b'\r' => Qp::SoftBreak,
            b'=' => {
                out.push(b'=');
                Qp::Text
            }
            h if h.is_ascii_hexdigit() => Qp::Hex(h),
            _ => {
                out.push(b'=');
                qp_step(Qp::Text, b, out)
            }
        },
        Qp::Hex(a) if b.is_ascii_hexdigit() => {
            out.push(hex_value(a) << 4 | hex_value(b));
            Qp::Text
        }
        Qp::Hex(a) => {
            out.extend_from_slice(&[b'=', a]);
            qp_step(Qp::Text, b, out)
        }
        Qp::SoftBreak if b == b'\n' => Qp::Text,
        Qp::SoftBreak => Qp::SoftBreak,
    }
}

fn hex_value(h: u8) -> u8 {
    (h as char).to_digit(16).unwrap_or(0) as u8
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

    /// Every coding gives one answer for a stream however its buffers are cut, corrupt streams
    /// included (each byte of a small stream replaced in turn, cuts, trailing bytes).
    #[test]
    fn every_coding_answers_the_same_however_the_stream_is_cut() {
        let dir = std::env::temp_dir();
        let text = b"hello hello hello brotli world, the quick brown fox";
        let br: &[u8] = &[
            0x1f, 0x32, 0x00, 0xf8, 0x9d, 0x09, 0x36, 0x4e, 0xa8, 0x77, 0x37, 0xbc, 0x14, 0x33,
            0x43, 0x6b, 0x10, 0x36, 0x3a, 0x3c, 0x59, 0xf6, 0x26, 0xd7, 0x2c, 0x69, 0x6c, 0x6f,
            0x60, 0x03, 0x0e, 0x1c, 0xc2, 0xc0, 0x12, 0x9d, 0xe9, 0x3e, 0x80, 0x05, 0x75, 0x54,
            0x72, 0x66, 0xc3, 0xfa, 0x12, 0x65, 0x43, 0xd2, 0xa6, 0x1a,
        ];
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(text).unwrap();
        let gz = gz.finish().unwrap();
        let mut zl = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        zl.write_all(text).unwrap();
        let zl = zl.finish().unwrap();
        let answer = |pieces: Vec<&[u8]>, coding| {
            decode(&mem(&pieces), coding, &dir)
                .map(|b| bytes_of(&b))
                .map_err(|_| ())
        };
        for (coding, stream) in [
            (Coding::Brotli, br.to_vec()),
            (Coding::Gzip, gz),
            (Coding::Deflate, zl),
        ] {
            assert_eq!(answer(vec![&stream], coding).as_deref(), Ok(&text[..]));
            let mut variants = vec![stream.clone(), [&stream[..], b"xyz"].concat()];
            variants.extend((1..stream.len()).map(|n| stream[..n].to_vec()));
            for i in 0..stream.len() {
                for v in [0x00, 0xff, stream[i] ^ 0x01, stream[i] ^ 0x80] {
                    let mut m = stream.clone();
                    m[i] = v;
                    variants.push(m);
                }
            }
            for v in &variants {
                let whole = answer(vec![v], coding);
                for cut in [1, 2, 3, 5, 8] {
                    let pieces: Vec<&[u8]> = v.chunks(cut).collect();
                    assert_eq!(
                        answer(pieces, coding),
                        whole,
                        "{coding:?} {v:02x?} cut {cut}"
                    );
                }
            }
        }
    }

    /// Found by fuzzing (`fuzz/fuzz_targets/decode.rs`): a stream that brotli-decompressor
    /// decodes when it comes in one read and refuses when it comes in pieces (the reference
    /// decoder calls it corrupt). Fed in full blocks, it gets one answer however it is cut.
    #[test]
    fn a_brotli_stream_read_differently_whole_and_in_pieces_gets_one_answer() {
        let dir = std::env::temp_dir();
        let stream: &[u8] = &[
            0x0b, 0x00, 0x00, 0x00, 0xa5, 0x15, 0xc2, 0xc4, 0xc6, 0xc4, 0x3e, 0xda, 0xda, 0xda,
            0xda, 0xda, 0xda, 0xda, 0xda, 0xda, 0xda, 0xda, 0xda, 0xda, 0xda, 0xda, 0xda, 0xda,
            0xda, 0xda, 0xda, 0xda, 0xda, 0xda, 0xda, 0xda, 0xda, 0xda, 0xda, 0xda, 0xda, 0xda,
            0xda, 0xda, 0xda, 0xda, 0xda, 0xda, 0xda, 0xda, 0xda, 0xda, 0xda, 0xda, 0xda, 0xda,
            0xda, 0xda, 0xda, 0xda, 0xda, 0xda, 0xde, 0xda, 0xda, 0xda, 0xda, 0xda, 0xda, 0xda,
            0xda,
        ];
        let answer = |pieces: Vec<&[u8]>| {
            decode(&mem(&pieces), Coding::Brotli, &dir)
                .map(|b| bytes_of(&b))
                .map_err(|_| ())
        };
        let whole = answer(vec![stream]);
        for cut in 1..=16 {
            assert_eq!(answer(stream.chunks(cut).collect()), whole, "cut {cut}");
        }
    }

    #[test]
    fn bombs_and_corrupt_streams_are_errors() {
        let dir = std::env::temp_dir();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&vec![0u8; 64 << 20]).unwrap();
        let gz = gz.finish().unwrap();
        assert!(gz.len() < 1 << 20);
        let small = DecodeLimits {
            max_bytes: 16 << 20,
            ..DecodeLimits::default()
        };
        assert!(matches!(
            decode_within(&mem(&[&gz]), Coding::Gzip, &dir, &small),
            Err(ScanError::DecodedTooLarge(_))
        ));
        // What compresses well is no bomb under the byte limit: 64 MiB of zeros pass.
        assert_eq!(
            decode(&mem(&[&gz]), Coding::Gzip, &dir).unwrap().len(),
            64 << 20
        );
        // Past the time limit: refused (413), not a failure.
        let no_time = DecodeLimits {
            max_time: std::time::Duration::ZERO,
            ..DecodeLimits::default()
        };
        assert!(matches!(
            decode_within(&mem(&[&gz]), Coding::Gzip, &dir, &no_time),
            Err(ScanError::Refused { status: 413, .. })
        ));
        assert!(matches!(
            decode(&mem(&[b"not gzip at all"]), Coding::Gzip, &dir),
            Err(ScanError::Decode(_))
        ));
        assert!(matches!(
            decode(&mem(&[b"QUJD$"]), Coding::Base64, &dir),
            Err(ScanError::Decode(_))
        ));
        let ce = |v: &[&[u8]]| Coding::of_content_encoding(v.iter().copied());
        assert_eq!(ce(&[b"identity"]), Ok(vec![]));
        assert_eq!(ce(&[b" GZIP "]), Ok(vec![Coding::Gzip]));
        assert_eq!(ce(&[b"br"]), Ok(vec![Coding::Brotli]));
        assert_eq!(
            ce(&[b"identity, x-gzip", b"gzip,  Zstd"]),
            Ok(vec![Coding::Gzip, Coding::Gzip, Coding::Zstd])
        );
        assert!(ce(&[b"compress"]).is_err());
        assert!(ce(&[b"gzip, compress"]).is_err());
        assert!(ce(&[b"gzip,gzip,gzip,gzip,gzip"]).is_err());
        // A corrupt brotli stream is an error, not a pass.
        assert!(matches!(
            decode(&mem(&[b"\x1b\x03\x00garbage"]), Coding::Brotli, &dir),
            Err(ScanError::Decode(_))
        ));
    }

    fn zstd(data: &[u8]) -> Vec<u8> {
        ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
    }

    #[test]
    fn zstd_frames_decode_one_after_the_other_across_chunks() {
        let dir = std::env::temp_dir();
        let a = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR".repeat(500);
        let b = vec![7u8; 300_000];
        let mut both = zstd(&a);
        both.extend_from_slice(&zstd(&b));
        let (x, y) = both.split_at(both.len() / 3);
        let mut want = a.clone();
        want.extend_from_slice(&b);
        assert_eq!(
            bytes_of(&decode(&mem(&[x, y]), Coding::Zstd, &dir).unwrap()),
            want
        );
    }

    /// What botocore 1.36+ sends (unsigned payload, checksum trailer) and the signed form.
    fn aws_chunked(data: &[u8], signed: bool) -> Vec<u8> {
        let sig =
            ";chunk-signature=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let sig = if signed { sig } else { "" };
        let mut v = Vec::new();
        for piece in data.chunks(8192) {
            v.extend_from_slice(format!("{:x}{sig}\r\n", piece.len()).as_bytes());
            v.extend_from_slice(piece);
            v.extend_from_slice(b"\r\n");
        }
        v.extend_from_slice(format!("0{sig}\r\n").as_bytes());
        if !signed {
            v.extend_from_slice(b"x-amz-checksum-crc32:AAAAAA==\r\n");
        }
        v.extend_from_slice(b"\r\n");
        v
    }

    #[test]
    fn aws_chunked_bodies_are_unframed_however_cut_and_bad_framing_is_a_400() {
        let dir = std::env::temp_dir();
        let data: Vec<u8> = (0..50_000u32).map(|i| (i * 31 % 251) as u8).collect();
        for signed in [false, true] {
            let body = aws_chunked(&data, signed);
            for cut in [1, 5, 8200, body.len() - 1] {
                let (x, y) = body.split_at(cut);
                assert_eq!(
                    bytes_of(&decode(&mem(&[x, y]), Coding::AwsChunked, &dir).unwrap()),
                    data,
                    "signed {signed}, cut {cut}"
                );
            }
            let empty = aws_chunked(b"", signed);
            assert_eq!(
                bytes_of(&decode(&mem(&[&empty]), Coding::AwsChunked, &dir).unwrap()),
                b""
            );
        }
        let good = aws_chunked(&data, false);
        for bad in [
            &good[..good.len() - 2],
            &good[..100],
            b"zz\r\nabc\r\n0\r\n\r\n",
            b"3\r\nabcd\r\n0\r\n\r\n",
            b"3 ;x\r\nabc\r\n0\r\n\r\n",
            b"3\r\nabc\r\n0\r\nnot a field\r\n\r\n",
            b"3\r\nabc\r\n0\r\n\r\nmore",
        ] {
            assert!(
                matches!(
                    decode(&mem(&[bad]), Coding::AwsChunked, &dir),
                    Err(ScanError::Refused { status: 400, .. })
                ),
                "{}",
                String::from_utf8_lossy(&bad[..bad.len().min(60)])
            );
        }
        let ce = |v: &[&[u8]]| Coding::of_content_encoding(v.iter().copied());
        assert_eq!(
            ce(&[b"aws-chunked,gzip"]),
            Ok(vec![Coding::AwsChunked, Coding::Gzip])
        );
    }

    #[test]
    fn zstd_skippable_frames_are_skipped_as_decoders_do() {
        let dir = std::env::temp_dir();
        let a: Vec<u8> = (0..50_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let skippable = |magic: u8, data: &[u8]| {
            let mut f = vec![magic, 0x2a, 0x4d, 0x18];
            f.extend_from_slice(&(data.len() as u32).to_le_bytes());
            f.extend_from_slice(data);
            f
        };
        // pzstd's form: a skippable frame before the frame; a seek table after it.
        let mut body = skippable(0x50, &[7, 0, 0, 0]);
        body.extend_from_slice(&zstd(&a));
        body.extend_from_slice(&skippable(0x5e, &[1u8; 300]));
        for cut in [1, 5, 8, 9, 12, body.len() - 3] {
            let (x, y) = body.split_at(cut);
            assert_eq!(
                bytes_of(&decode(&mem(&[x, y]), Coding::Zstd, &dir).unwrap()),
                a,
                "cut at {cut}"
            );
        }
        // A skippable frame cut short is a truncated body.
        let cut = skippable(0x50, &[1u8; 100]);
        assert!(decode(&mem(&[&cut[..50]]), Coding::Zstd, &dir).is_err());
        // A skippable frame alone decodes to nothing, as libzstd's does.
        let only = skippable(0x51, b"abc");
        assert_eq!(
            bytes_of(&decode(&mem(&[&only]), Coding::Zstd, &dir).unwrap()),
            b""
        );
    }

    #[test]
    fn a_zstd_frame_asking_for_a_large_window_a_cut_frame_or_no_frame_is_refused() {
        let dir = std::env::temp_dir();
        // Magic, descriptor without single segment, window descriptor 2^(10+17) = 128 MiB.
        let big = [0x28, 0xb5, 0x2f, 0xfd, 0x00, 17 << 3, 0, 0, 0];
        assert!(matches!(
            decode(&mem(&[&big]), Coding::Zstd, &dir),
            Err(ScanError::Refused { status: 413, reason }) if reason.contains("zstd_window=")
        ));
        // Raised by the operator: the header is taken (the frame is then cut short).
        let wide = DecodeLimits {
            zstd_window: MAX_ZSTD_WINDOW,
            ..DecodeLimits::default()
        };
        assert!(matches!(
            decode_within(&mem(&[&big]), Coding::Zstd, &dir, &wide),
            Err(ScanError::Decode(_))
        ));
        let whole = zstd(&vec![1u8; 100_000]);
        assert!(decode(&mem(&[&whole[..whole.len() - 5]]), Coding::Zstd, &dir).is_err());
        assert!(decode(&mem(&[b""]), Coding::Zstd, &dir).is_err());
        assert!(decode(&mem(&[b"not zstd"]), Coding::Zstd, &dir).is_err());
        // A bomb: 64 MiB of zeros in a few KiB, over a byte limit of 16 MiB.
        let bomb = zstd(&vec![0u8; 64 << 20]);
        assert!(bomb.len() < 1 << 20);
        let small = DecodeLimits {
            max_bytes: 16 << 20,
            ..DecodeLimits::default()
        };
        assert!(matches!(
            decode_within(&mem(&[&bomb]), Coding::Zstd, &dir, &small),
            Err(ScanError::DecodedTooLarge(_))
        ));
    }

    #[test]
    fn deflate_reads_zlib_or_raw_the_same_whatever_the_first_piece() {
        let dir = std::env::temp_dir();
        let data = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR".repeat(50);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&data).unwrap();
        let z = z.finish().unwrap();
        for cut in 1..4 {
            let (a, b) = z.split_at(cut);
            assert_eq!(
                bytes_of(&decode(&mem(&[a, b]), Coding::Deflate, &dir).unwrap()),
                data,
                "first piece of {cut} byte(s)"
            );
        }
    }

    #[test]
    fn binascii_quoted_printable_drops_what_follows_a_soft_break_cr_up_to_the_lf() {
        let dir = std::env::temp_dir();
        let qp = b"=58=35=\rjunk\nO!=\n==41=4=\r\nend=3";
        // As Python's binascii.a2b_qp reads it.
        let want = b"X5O!=41=4end=3".to_vec();
        for cut in 0..qp.len() {
            let (a, b) = qp.split_at(cut);
            let got = decode(&mem(&[a, b]), Coding::QuotedPrintableBinascii, &dir).unwrap();
            assert_eq!(bytes_of(&got), want, "cut at {cut}");
        }
        let trailing = decode(&mem(&[b"ab="]), Coding::QuotedPrintableBinascii, &dir).unwrap();
        assert_eq!(bytes_of(&trailing), b"ab");
    }

    #[test]
    fn quoted_printable_decodes_escapes_and_soft_breaks_split_anywhere() {
        let dir = std::env::temp_dir();
        let qp = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$=\r\nEICAR=3D=3d=0A=ZZ end=";
        let want = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR==\n=ZZ end=".to_vec();
        for cut in 0..qp.len() {
            let (a, b) = qp.split_at(cut);
            assert_eq!(
                bytes_of(&decode(&mem(&[a, b]), Coding::QuotedPrintable, &dir).unwrap()),
                want,
                "cut at {cut}"
            );
        }
    }
}
