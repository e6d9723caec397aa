//! Splitting a `multipart/form-data` body (RFC 7578, RFC 2046 §5.1) into its parts, streamed
//! over the body as nginx stored it: a part is a *range* of the body (its data stays where it
//! is, memory or temp file), and only part headers are held in memory, each bounded. Any
//! oddity is an error, so that the caller scans the whole body as one object instead: no
//! boundary, a missing closing delimiter, a header block or a part count over its limit,
//! content in the preamble or epilogue, a nested `multipart/*` part.

use std::io;

use bytes::Bytes;

use crate::body::{BodyPart, RequestBody};
use crate::headers::HeaderList;

/// Largest header block of one part.
pub const MAX_PART_HEADER: usize = 16 * 1024;
/// Most parts in one body.
pub const MAX_PARTS: usize = 1000;
/// Longest boundary (RFC 2046: 70 characters).
const MAX_BOUNDARY: usize = 70;

/// One part: its headers, and where its data lies in the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub headers: HeaderList,
    /// Offset of the part's header block in the body (its data follows the block).
    pub head_offset: u64,
    /// Offset of the data in the body.
    pub offset: u64,
    pub len: u64,
}

impl Part {
    pub fn header(&self, name: &str) -> Option<&Bytes> {
        crate::headers::find(&self.headers, name)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SplitError {
    #[error("no usable boundary")]
    NoBoundary,
    #[error("content before the first boundary")]
    Preamble,
    #[error("no closing delimiter")]
    Unterminated,
    #[error("content after the closing delimiter")]
    Epilogue,
    #[error("a part header is larger than {MAX_PART_HEADER} bytes")]
    HeaderTooLarge,
    #[error("an invalid part header")]
    BadHeader,
    #[error("more than {MAX_PARTS} parts")]
    TooManyParts,
    #[error("a nested multipart part")]
    Nested,
    #[error("reading the body failed ({0})")]
    Body(#[from] io::Error),
}

/// The boundary of a `multipart/*` content type, if it has a valid one.
pub fn boundary(content_type: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(content_type).ok()?;
    let mut params = text.split(';');
    let kind = params.next()?.trim();
    if !kind.to_ascii_lowercase().starts_with("multipart/") {
        return None;
    }
    let mut found = None;
    for p in params {
        let (k, v) = p.split_once('=')?;
        if k.trim().eq_ignore_ascii_case("boundary") {
            if found.is_some() {
                return None;
            }
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            found = Some(v.as_bytes().to_vec());
        }
    }
    let b = found?;
    let ok_char = |c: u8| c.is_ascii_alphanumeric() || b"'()+_,-./:=? ".contains(&c);
    let valid = !b.is_empty()
        && b.len() <= MAX_BOUNDARY
        && b.iter().all(|&c| ok_char(c))
        && b.last() != Some(&b' ');
    valid.then_some(b)
}

/// Where the splitter is.
enum State {
    /// Before the first delimiter (`--boundary` at offset 0).
    Start,
    /// Right after a delimiter: `--` ends the body, CRLF starts a part.
    AfterDelimiter,
    /// Reading a part's header block.
    Headers,
    /// In a part's data, which started at this offset.
    Data(u64),
    /// After the closing delimiter.
    Done,
}

/// Splits `body`, whose content type carried `boundary`, into its parts.
pub fn split(body: &RequestBody, boundary: &[u8], chunk: usize) -> Result<Vec<Part>, SplitError> {
    if boundary.is_empty() || boundary.len() > MAX_BOUNDARY {
        return Err(SplitError::NoBoundary);
    }
    let mut s = Splitter::new(boundary);
    let mut reader = body.reader(chunk);
    while let Some(c) = reader.next_chunk() {
        s.feed(&c?)?;
    }
    s.finish()
}

/// The streaming splitter: fed the body in pieces of any size, it keeps at most one
/// delimiter's length of data (plus the header block being read) between pieces.
struct Splitter {
    /// `\r\n--boundary`.
    delim: Vec<u8>,
    /// Bytes not decided yet, starting at body offset `at`.
    pending: Vec<u8>,
    at: u64,
    state: State,
    parts: Vec<Part>,
}

impl Splitter {
    fn new(boundary: &[u8]) -> Self {
        let mut delim = b"\r\n--".to_vec();
        delim.extend_from_slice(boundary);
        Splitter {
            delim,
            pending: Vec::new(),
            at: 0,
            state: State::Start,
            parts: Vec::new(),
        }
    }

    fn feed(&mut self, data: &[u8]) -> Result<(), SplitError> {
        self.pending.extend_from_slice(data);
        loop {
            let progressed = match self.state {
                State::Start => self.start()?,
                State::AfterDelimiter => self.after_delimiter()?,
                State::Headers => self.read_headers()?,
                State::Data(_) => self.find_delimiter()?,
                State::Done => {
                    if self.pending.iter().any(|&b| b != b'\r' && b != b'\n') {
                        return Err(SplitError::Epilogue);
                    }
                    self.consume(self.pending.len());
                    false
                }
            };
            if !progressed {
                return Ok(());
            }
        }
    }

    fn consume(&mut self, n: usize) {
        self.pending.drain(..n);
        self.at += n as u64;
    }

    /// The first delimiter: the body starts with `--boundary` (the CRLF before it is
    /// optional there).
    fn start(&mut self) -> Result<bool, SplitError> {
        let first = &self.delim[2..];
        let have = self.pending.len().min(first.len());
        if self.pending[..have] != first[..have] {
            return Err(SplitError::Preamble);
        }
        if have < first.len() {
            return Ok(false);
        }
        self.consume(first.len());
        self.state = State::AfterDelimiter;
        Ok(true)
    }

    /// After a delimiter: `--` closes the body, else CRLF starts a part's headers.
    fn after_delimiter(&mut self) -> Result<bool, SplitError> {
        // Transport padding (spaces, tabs) may follow a delimiter.
        let pad = self
            .pending
            .iter()
            .take_while(|&&b| b == b' ' || b == b'\t')
            .count();
        if self.pending.len() < pad + 2 {
            // Not enough to decide yet.
            return Ok(false);
        }
        match &self.pending[pad..pad + 2] {
            b"--" => {
                self.consume(pad + 2);
                self.state = State::Done;
                Ok(true)
            }
            b"\r\n" => {
                self.consume(pad + 2);
                if self.parts.len() >= MAX_PARTS {
                    return Err(SplitError::TooManyParts);
                }
                self.state = State::Headers;
                Ok(true)
            }
            _ => Err(SplitError::BadHeader),
        }
    }

    fn read_headers(&mut self) -> Result<bool, SplitError> {
        if self.pending.len() < 2 {
            return Ok(false);
        }
        let head_offset = self.at;
        // An empty header block: the data starts right after this CRLF.
        let (headers, used) = if self.pending.starts_with(b"\r\n") {
            (Vec::new(), 2)
        } else {
            let Some(end) = find(&self.pending, b"\r\n\r\n") else {
                if self.pending.len() > MAX_PART_HEADER {
                    return Err(SplitError::HeaderTooLarge);
                }
                return Ok(false);
            };
            if end + 4 > MAX_PART_HEADER {
                return Err(SplitError::HeaderTooLarge);
            }
            (parse_part_headers(&self.pending[..end])?, end + 4)
        };
        self.consume(used);
        self.parts.push(Part {
            headers,
            head_offset,
            offset: self.at,
            len: 0,
        });
        self.state = State::Data(self.at);
        Ok(true)
    }

    fn find_delimiter(&mut self) -> Result<bool, SplitError> {
        let State::Data(start) = self.state else {
            return Ok(false);
        };
        match find(&self.pending, &self.delim) {
            Some(i) => {
                let len = self.at + i as u64 - start;
                if let Some(p) = self.parts.last_mut() {
                    p.len = len;
                }
                self.consume(i + self.delim.len());
                self.state = State::AfterDelimiter;
                Ok(true)
            }
            None => {
                // Keep what could be the start of a delimiter split across pieces.
                let keep = (self.delim.len() - 1).min(self.pending.len());
                let n = self.pending.len() - keep;
                self.consume(n);
                Ok(false)
            }
        }
    }

    fn finish(self) -> Result<Vec<Part>, SplitError> {
        match self.state {
            State::Done if self.pending.iter().all(|&b| b == b'\r' || b == b'\n') => Ok(self.parts),
            State::Done => Err(SplitError::Epilogue),
            _ => Err(SplitError::Unterminated),
        }
    }
}

/// Where `needle` first occurs in `hay` (memchr's substring search: the delimiter search is
/// the one pass over every byte of a form).
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

/// A part's header block (no folding in multipart headers; a nested multipart is refused).
fn parse_part_headers(block: &[u8]) -> Result<HeaderList, SplitError> {
    let mut out = Vec::new();
    for line in block.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(SplitError::BadHeader)?;
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        if name.is_empty() || name.iter().any(|&b| b <= b' ' || b >= 0x7f) {
            return Err(SplitError::BadHeader);
        }
        let value = value.trim_ascii();
        if name.eq_ignore_ascii_case(b"content-type")
            && value.to_ascii_lowercase().starts_with(b"multipart/")
        {
            return Err(SplitError::Nested);
        }
        out.push((Bytes::copy_from_slice(name), Bytes::copy_from_slice(value)));
    }
    Ok(out)
}

/// The part's data as a body of its own: ranges of the original parts, nothing copied.
pub fn part_body(body: &RequestBody, offset: u64, len: u64) -> RequestBody {
    let mut out = RequestBody::new();
    let (mut pos, end) = (0u64, offset + len);
    for p in body.parts() {
        let (start, stop) = (pos, pos + p.len());
        pos = stop;
        let (from, to) = (start.max(offset), stop.min(end));
        if from >= to {
            continue;
        }
        let (a, n) = (from - start, to - from);
        out.push(match p {
            BodyPart::Memory(b) => BodyPart::Memory(b.slice(a as usize..(a + n) as usize)),
            BodyPart::File {
                file, offset: fo, ..
            } => BodyPart::File {
                file: file.clone(),
                offset: fo + a,
                len: n,
            },
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::testing::*;
    use proptest::prelude::*;

    fn form(boundary: &str, parts: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (h, data) in parts {
            out.extend_from_slice(format!("--{boundary}\r\n{h}\r\n\r\n").as_bytes());
            out.extend_from_slice(data);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        out
    }

    fn data(body: &RequestBody, p: &Part) -> Vec<u8> {
        let mut r = part_body(body, p.offset, p.len).reader(7);
        let mut out = Vec::new();
        while let Some(c) = r.next_chunk() {
            out.extend_from_slice(&c.unwrap());
        }
        out
    }

    #[test]
    fn boundaries_of_content_types() {
        assert_eq!(
            boundary(b"multipart/form-data; boundary=----WebKitFormBoundaryx7"),
            Some(b"----WebKitFormBoundaryx7".to_vec())
        );
        assert_eq!(
            boundary(b"Multipart/Form-Data; charset=utf-8; boundary=\"a b\""),
            Some(b"a b".to_vec())
        );
        assert_eq!(boundary(b"multipart/form-data"), None);
        assert_eq!(boundary(b"multipart/form-data; boundary="), None);
        assert_eq!(boundary(b"application/json; boundary=x"), None);
        assert_eq!(
            boundary(b"multipart/form-data; boundary=a; boundary=b"),
            None
        );
        assert_eq!(
            boundary(format!("multipart/x; boundary={}", "b".repeat(71)).as_bytes()),
            None
        );
    }

    #[test]
    fn a_form_splits_into_parts_with_their_headers_and_ranges() {
        let raw = form(
            "XyZ",
            &[
                ("Content-Disposition: form-data; name=\"title\"", b"hello"),
                (
                    "Content-Disposition: form-data; name=\"file\"; filename=\"a.gz\"\r\nContent-Type: application/gzip",
                    b"\x1f\x8b\x08binary\r\n--Xy not a delimiter",
                ),
            ],
        );
        let body = mem(&[&raw]);
        let parts = split(&body, b"XyZ", 5).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(data(&body, &parts[0]), b"hello");
        assert_eq!(
            parts[1].header("content-type").map(|v| v.as_ref()),
            Some(&b"application/gzip"[..])
        );
        assert_eq!(
            data(&body, &parts[1]),
            b"\x1f\x8b\x08binary\r\n--Xy not a delimiter"
        );
    }

    #[test]
    fn every_oddity_is_an_error() {
        let ok = form("b", &[("Content-Disposition: form-data; name=\"a\"", b"1")]);
        let cut = &ok[..ok.len() - 4];
        assert!(matches!(
            split(&mem(&[cut]), b"b", 64),
            Err(SplitError::Unterminated)
        ));
        let mut pre = b"preamble\r\n".to_vec();
        pre.extend_from_slice(&ok);
        assert!(matches!(
            split(&mem(&[&pre]), b"b", 64),
            Err(SplitError::Preamble)
        ));
        let mut epi = ok.clone();
        epi.extend_from_slice(b"trailing");
        assert!(matches!(
            split(&mem(&[&epi]), b"b", 64),
            Err(SplitError::Epilogue)
        ));
        let nested = form(
            "b",
            &[("Content-Type: multipart/mixed; boundary=c", b"--c--")],
        );
        assert!(matches!(
            split(&mem(&[&nested]), b"b", 64),
            Err(SplitError::Nested)
        ));
        let big = form(
            "b",
            &[(&format!("X: {}", "v".repeat(MAX_PART_HEADER)), b"1")],
        );
        assert!(matches!(
            split(&mem(&[&big]), b"b", 64),
            Err(SplitError::HeaderTooLarge)
        ));
        let many: Vec<(&str, &[u8])> = vec![("A: b", b"x"); MAX_PARTS + 1];
        let many = form("b", &many);
        assert!(matches!(
            split(&mem(&[&many]), b"b", 4096),
            Err(SplitError::TooManyParts)
        ));
        assert!(matches!(
            split(&mem(&[b""]), b"b", 64),
            Err(SplitError::Unterminated)
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

        #[test]
        fn the_split_does_not_depend_on_how_the_body_is_cut(
            datas in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..6),
            cuts in proptest::collection::vec(1usize..97, 1..20),
            chunk in 1usize..50,
        ) {
            let parts: Vec<(String, Vec<u8>)> = datas
                .iter()
                .enumerate()
                .map(|(i, d)| (format!("Content-Disposition: form-data; name=\"f{i}\""), d.clone()))
                .collect();
            let refs: Vec<(&str, &[u8])> = parts.iter().map(|(h, d)| (h.as_str(), d.as_slice())).collect();
            let raw = form("q7-boundary", &refs);
            let mut pieces = Vec::new();
            let mut at = 0;
            for c in cuts.iter().cycle() {
                if at >= raw.len() { break; }
                let end = (at + c).min(raw.len());
                pieces.push(&raw[at..end]);
                at = end;
            }
            let body = mem(&pieces);
            let got = split(&body, b"q7-boundary", chunk).unwrap();
            prop_assert_eq!(got.len(), datas.len());
            for (p, d) in got.iter().zip(&datas) {
                prop_assert_eq!(&data(&body, p), d);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..600), chunk in 1usize..40) {
            let _ = split(&mem(&[&raw]), b"b", chunk);
            let mut with_start = b"--b\r\n".to_vec();
            with_start.extend_from_slice(&raw);
            let _ = split(&mem(&[&with_start]), b"b", chunk);
        }
    }
}
