//! A response nginx relays behind an interim status. nginx 1.28 and older take a backend's
//! `1xx` (`103 Early Hints`, a stray `100 Continue`) as the response's status and relay what
//! follows — the final response's head and body — as its body; an HTTP/1.1 client reads the
//! `1xx` as interim and the final response behind it. This reads those bytes the way every
//! client must agree on, and gives the final response to scan: its status, its fields and its
//! body as its framing delimits it. Anything clients could read more than one way (a status
//! line or field of another shape, conflicting lengths, a transfer coding other than
//! `chunked`, bytes after the final response, a protocol switch) is refused, never passed.

use std::path::Path;

use bytes::Bytes;

use crate::body::sink::BodySink;
use crate::body::{BodyReader, RequestBody, FILE_CHUNK};
use crate::headers::HeaderList;
use crate::scan::{ResponseHead, ScanError, SPILL_THRESHOLD};

/// Most bytes of one head (status line and fields).
const MAX_HEAD: usize = 64 * 1024;
/// Most interim heads before the final one.
const MAX_INTERIM: usize = 16;
/// Most bytes of one chunk-size line (extensions included).
const MAX_CHUNK_LINE: usize = 4096;

fn refused(why: impl std::fmt::Display) -> ScanError {
    ScanError::Decode(format!(
        "the response relayed behind an interim status cannot be read as clients read it: {why}"
    ))
}

/// The bytes of a body read in order, with the count of those consumed.
struct Cursor {
    reader: BodyReader,
    current: Bytes,
    pos: u64,
}

impl Cursor {
    fn fill(&mut self) -> Result<bool, ScanError> {
        while self.current.is_empty() {
            match self.reader.next_chunk() {
                Some(c) => self.current = c.map_err(ScanError::Spill)?,
                None => return Ok(false),
            }
        }
        Ok(true)
    }

    /// One line, its end (LF, or CR LF) cut off; `None` at the end of the body.
    fn line(&mut self, max: usize) -> Result<Option<Vec<u8>>, ScanError> {
        let mut out = Vec::new();
        loop {
            if !self.fill()? {
                return match out.is_empty() {
                    true => Ok(None),
                    false => Err(refused("the body ends inside a head")),
                };
            }
            let take = match memchr::memchr(b'\n', &self.current) {
                Some(i) => i + 1,
                None => self.current.len(),
            };
            out.extend_from_slice(&self.current[..take]);
            self.current = self.current.slice(take..);
            self.pos += take as u64;
            if out.len() > max {
                return Err(refused(format!("a line longer than {max} bytes")));
            }
            if out.last() == Some(&b'\n') {
                out.pop();
                if out.last() == Some(&b'\r') {
                    out.pop();
                }
                if out.contains(&b'\r') {
                    return Err(refused("a bare CR in a head"));
                }
                return Ok(Some(out));
            }
        }
    }

    /// Copies `n` bytes into `sink`.
    fn copy(&mut self, mut n: u64, sink: &mut BodySink) -> Result<(), ScanError> {
        while n > 0 {
            if !self.fill()? {
                return Err(refused("the body ends inside a chunk"));
            }
            let take = n.min(self.current.len() as u64) as usize;
            sink.push(&self.current[..take])?;
            self.current = self.current.slice(take..);
            self.pos += take as u64;
            n -= take as u64;
        }
        Ok(())
    }
}

/// A parsed head: the status and the fields.
fn head(cur: &mut Cursor) -> Result<ResponseHead, ScanError> {
    let start = cur.pos;
    let line = cur
        .line(MAX_HEAD)?
        .ok_or_else(|| refused("no final response follows the interim one"))?;
    let status = status_line(&line)?;
    let mut headers = HeaderList::new();
    loop {
        let line = cur
            .line(MAX_HEAD)?
            .ok_or_else(|| refused("the body ends inside a head"))?;
        if cur.pos - start > MAX_HEAD as u64 {
            return Err(refused(format!("a head longer than {MAX_HEAD} bytes")));
        }
        if line.is_empty() {
            return Ok(ResponseHead { status, headers });
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .filter(|&i| i > 0 && line[..i].iter().all(|&b| is_tchar(b)))
            .ok_or_else(|| refused("a field line that is not \"name: value\""))?;
        let value = &line[colon + 1..];
        if value
            .iter()
            .any(|&b| b == 0 || (b < 0x20 && b != b'\t') || b == 0x7f)
        {
            return Err(refused("a control character in a field value"));
        }
        let value = value.trim_ascii();
        headers.push((
            Bytes::copy_from_slice(&line[..colon]),
            Bytes::copy_from_slice(value),
        ));
    }
}

/// `HTTP/1.x NNN[ reason]`: the status, or the reason it is refused.
fn status_line(line: &[u8]) -> Result<u16, ScanError> {
    let rest = line
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| line.strip_prefix(b"HTTP/1.0 "))
        .ok_or_else(|| refused("a status line that is not \"HTTP/1.x NNN\""))?;
    let (code, reason) = rest.split_at(rest.len().min(3));
    if code.len() != 3 || !code.iter().all(u8::is_ascii_digit) || code[0] == b'0' {
        return Err(refused("a status line that is not \"HTTP/1.x NNN\""));
    }
    if !(reason.is_empty() || reason[0] == b' ')
        || reason.iter().any(|&b| b == 0 || (b < 0x20 && b != b'\t'))
    {
        return Err(refused("a status line that is not \"HTTP/1.x NNN\""));
    }
    Ok(code.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0')))
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn values<'a>(h: &'a ResponseHead, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
    h.headers
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
        .flat_map(|(_, v)| v.split(|&b| b == b','))
        .map(|v| v.trim_ascii())
}

/// How the final response's body is delimited.
enum Framing {
    None,
    Length(u64),
    Chunked,
    ToEnd,
}

fn framing(h: &ResponseHead) -> Result<Framing, ScanError> {
    if h.status == 204 || h.status == 304 {
        return Ok(Framing::None);
    }
    let te: Vec<&[u8]> = values(h, "transfer-encoding").collect();
    let cl: Vec<&[u8]> = values(h, "content-length").collect();
    match (te.as_slice(), cl.as_slice()) {
        ([], []) => Ok(Framing::ToEnd),
        ([te], []) if te.eq_ignore_ascii_case(b"chunked") => Ok(Framing::Chunked),
        (_, []) => Err(refused("a transfer coding other than one \"chunked\"")),
        ([], [first, rest @ ..]) => {
            let n = std::str::from_utf8(first)
                .ok()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| refused("a Content-Length that is not a number"))?;
            if rest.iter().any(|r| r != first) {
                return Err(refused("Content-Length values that differ"));
            }
            Ok(Framing::Length(n))
        }
        _ => Err(refused("both Transfer-Encoding and Content-Length")),
    }
}

/// The final response relayed in `body` (whose status nginx took as `interim`): its head and
/// its body, the body at most `limit` bytes once unchunked.
pub fn final_response(
    interim: u16,
    body: &RequestBody,
    dir: &Path,
    limit: u64,
) -> Result<(ResponseHead, RequestBody), ScanError> {
    if interim == 101 {
        return Err(refused("a protocol switch (101)"));
    }
    let mut cur = Cursor {
        reader: body.reader(FILE_CHUNK),
        current: Bytes::new(),
        pos: 0,
    };
    let mut interims = 0;
    let head = loop {
        let h = head(&mut cur)?;
        match h.status {
            101 => return Err(refused("a protocol switch (101)")),
            100..=199 if interims < MAX_INTERIM => interims += 1,
            100..=199 => return Err(refused(format!("more than {MAX_INTERIM} interim heads"))),
            _ => break h,
        }
    };
    let at = cur.pos;
    let rest = body.len() - at;
    let out = match framing(&head)? {
        Framing::None if rest == 0 => RequestBody::new(),
        Framing::Length(n) if n == rest => body.slice(at, n),
        Framing::ToEnd => body.slice(at, rest),
        Framing::Length(n) if n > rest => {
            return Err(refused("the body is shorter than its length"))
        }
        Framing::None | Framing::Length(_) => {
            return Err(refused("bytes follow the final response"))
        }
        Framing::Chunked => {
            let mut sink = BodySink::new(SPILL_THRESHOLD, dir).limited(Some(limit));
            chunks(&mut cur, &mut sink)?;
            if cur.fill()? {
                return Err(refused("bytes follow the final response"));
            }
            sink.finish()?.into()
        }
    };
    Ok((head, out))
}

/// The chunks of a `chunked` body into `sink`, the trailer section read and dropped.
fn chunks(cur: &mut Cursor, sink: &mut BodySink) -> Result<(), ScanError> {
    loop {
        let line = cur
            .line(MAX_CHUNK_LINE)?
            .ok_or_else(|| refused("the body ends inside a chunk"))?;
        let size = crate::body::decode::chunk_size(&line)
            .ok_or_else(|| refused("a chunk size that is not hexadecimal"))?;
        if size == 0 {
            // Trailer fields up to the empty line.
            let mut seen = 0usize;
            loop {
                let line = cur
                    .line(MAX_HEAD)?
                    .ok_or_else(|| refused("the body ends inside the trailer"))?;
                seen += line.len();
                if line.is_empty() {
                    return Ok(());
                }
                if seen > MAX_HEAD {
                    return Err(refused("a trailer section over 64 KiB"));
                }
            }
        }
        cur.copy(size, sink).map_err(|e| match e {
            ScanError::Protocol(_) => refused("the unchunked body is over its limit"),
            e => e,
        })?;
        if cur.line(2)? != Some(Vec::new()) {
            return Err(refused("a chunk not followed by CRLF"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::testing::{bytes_of, mem};

    type Read = (u16, HeaderList, Vec<u8>);

    fn read(pieces: &[&[u8]]) -> Result<Read, ScanError> {
        let dir = std::env::temp_dir();
        final_response(103, &mem(pieces), &dir, 1 << 20)
            .map(|(h, b)| (h.status, h.headers, bytes_of(&b)))
    }

    fn each_cut(whole: &[u8]) -> Vec<Result<Read, String>> {
        (0..whole.len())
            .map(|i| read(&[&whole[..i], &whole[i..]]).map_err(|e| e.to_string()))
            .collect()
    }

    #[test]
    fn the_final_response_behind_interim_heads_is_read_however_the_body_is_cut() {
        let whole =
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello";
        for r in each_cut(whole) {
            let (status, headers, body) = r.unwrap();
            assert_eq!((status, body.as_slice()), (200, &b"hello"[..]));
            assert_eq!(headers.len(), 2);
        }
        let two =
            b"HTTP/1.1 103 Early Hints\nLink: </a.css>\n\nHTTP/1.0 404 Not Found\n\nto the end";
        for r in each_cut(two) {
            assert_eq!(r.unwrap().2, b"to the end");
        }
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n";
        for r in each_cut(chunked) {
            assert_eq!(r.unwrap().2, b"abcde");
        }
        let empty = b"HTTP/1.1 204 No Content\r\n\r\n";
        assert_eq!(read(&[empty]).unwrap().2, b"");
    }

    #[test]
    fn what_clients_could_read_two_ways_is_refused() {
        let bad: &[&[u8]] = &[
            b"",
            b"http/1.1 200 OK\r\n\r\nx",
            b"HTTP/1.1 200OK\r\n\r\nx",
            b"HTTP/1.1 2000 OK\r\n\r\nx",
            b"HTTP/0.9 200 OK\r\n\r\nx",
            b"HTTP/1.1 101 Switching Protocols\r\n\r\nx",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxx",
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nxx",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\nxx",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\nxx",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nxx\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nextra",
            b"HTTP/1.1 200 OK\r\n folded: x\r\n\r\nx",
            b"HTTP/1.1 200 OK\r\nA\rB: x\r\n\r\nx",
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain",
            b"HTTP/1.1 204 No Content\r\n\r\nx",
        ];
        for b in bad {
            assert!(read(&[b]).is_err(), "{}", String::from_utf8_lossy(b));
        }
        let many = b"HTTP/1.1 100 Continue\r\n\r\n".repeat(MAX_INTERIM + 1);
        assert!(read(&[&many, b"HTTP/1.1 200 OK\r\n\r\nx"]).is_err());
        let fine = b"HTTP/1.1 100 Continue\r\n\r\n".repeat(MAX_INTERIM);
        assert!(read(&[&fine, b"HTTP/1.1 200 OK\r\n\r\nx"]).is_ok());
    }

    #[test]
    fn an_unchunked_body_over_its_limit_is_refused() {
        let dir = std::env::temp_dir();
        let body =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n0\r\n\r\n";
        assert!(final_response(103, &mem(&[body]), &dir, 9).is_err());
        assert!(final_response(103, &mem(&[body]), &dir, 10).is_ok());
    }
}
