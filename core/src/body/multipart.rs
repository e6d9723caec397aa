//! Splitting a `multipart/*` body (RFC 7578, RFC 2046 §5.1) into its parts the way every
//! mainstream form parser splits it, streamed over the body as nginx stored it: a part is a
//! *range* of the body (its data stays where it is, memory or temp file), and only part
//! headers are held in memory, each block bounded.
//!
//! Parsers agree on an ordinary form and disagree on odd ones; the splitter reads what they
//! share and refuses what they would read differently:
//!
//! - Line endings: CRLF (RFC) or bare LF throughout (PHP, werkzeug and Django accept those);
//!   a body that mixes them (`\n--boundary` inside CRLF part data, a bare-LF blank line in a
//!   CRLF header block, a bare CR in a header) is refused.
//! - `--boundary` anywhere but at the start of a line (Django cuts there), right after a
//!   header block, inside a header block, followed by anything but `--`, white space and a
//!   line end, or again after the closing delimiter: refused.
//! - A preamble, an epilogue, a body cut before its closing delimiter: accepted (real parsers
//!   take them); they are handed to the caller as ranges, to be scanned as objects of their own.
//! - Folded part header lines are unfolded; a nested `multipart/*` part is a part like any
//!   other (no mainstream form parser descends into it).
//! - Limits: a header block over [`Limits::max_header`], more parts than
//!   [`Limits::max_parts`], transport padding over [`MAX_PADDING`] bytes: refused, never cut.
//!
//! The result is the same however the body is cut into pieces.

use std::io;

use bytes::Bytes;

use crate::body::RequestBody;
use crate::headers::HeaderList;

/// Longest run of transport padding (white space) accepted after a delimiter.
pub const MAX_PADDING: usize = 256;

/// The bounds of a split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest header block of one part.
    pub max_header: usize,
    /// Most parts in one body.
    pub max_parts: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header: 16 * 1024,
            max_parts: 10_000,
        }
    }
}

/// One part: its headers, and where its data lies in the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub headers: HeaderList,
    /// Offset of the part's header block in the body (its data follows the block).
    pub head_offset: u64,
    /// Offset of the data in the body.
    pub offset: u64,
    pub len: u64,
    /// The form's lines end with a bare LF.
    pub lf: bool,
}

impl Part {
    /// The first header of that name.
    pub fn header(&self, name: &str) -> Option<&Bytes> {
        crate::headers::find(&self.headers, name)
    }

    /// Every value of the headers of that name.
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Bytes> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }
}

/// A split body: its parts, and the bytes around them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Form {
    pub parts: Vec<Part>,
    /// What comes before the first delimiter (offset, length); the whole body when there is
    /// no delimiter at all.
    pub preamble: (u64, u64),
    /// What comes after the closing delimiter, or after the last part's header block when the
    /// body ends in it.
    pub epilogue: (u64, u64),
}

#[derive(Debug, thiserror::Error)]
pub enum SplitError {
    #[error("the boundary appears inside a line")]
    MidLine,
    #[error("the form mixes CRLF and bare LF line endings")]
    MixedLineEndings,
    #[error("a delimiter is followed by other characters")]
    BadDelimiter,
    #[error("a delimiter follows a part header block without a line between")]
    NoData,
    #[error("a delimiter inside a part header block")]
    DelimiterInHeader,
    #[error("a bare CR in a part header block")]
    BareCr,
    #[error("the boundary appears after the closing delimiter")]
    AfterClose,
    #[error("transport padding over {MAX_PADDING} bytes")]
    Padding,
    #[error("a part header block is larger than {0} bytes")]
    HeaderTooLarge(usize),
    #[error("more than {0} parts")]
    TooManyParts(usize),
    #[error("reading the body failed ({0})")]
    Body(#[from] io::Error),
}

impl SplitError {
    /// Over a limit (413) rather than ambiguous (400).
    pub fn is_limit(&self) -> bool {
        matches!(
            self,
            SplitError::HeaderTooLarge(_) | SplitError::TooManyParts(_)
        )
    }
}

/// Splits `body`, whose content type carried `boundary`, into its parts.
pub fn split(
    body: &RequestBody,
    boundary: &[u8],
    chunk: usize,
    limits: Limits,
) -> Result<Form, SplitError> {
    let mut s = Splitter::new(boundary, limits);
    let mut reader = body.reader(chunk);
    while let Some(c) = reader.next_chunk() {
        s.feed(&c?)?;
    }
    s.finish()
}

/// Where the splitter is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first delimiter.
    Preamble,
    /// Right after `--boundary`: `--` closes, white space and a line end start a part.
    AfterDelimiter,
    /// Reading a part's header block.
    Headers,
    /// In a part's data, which started at this offset.
    Data(u64),
    /// After the closing delimiter, from this offset.
    Epilogue(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Eol {
    Crlf,
    Lf,
}

/// The streaming splitter: fed the body in pieces of any size, it keeps at most one
/// delimiter's length of data (plus the header block being read) between pieces.
struct Splitter {
    /// `--boundary`.
    needle: Vec<u8>,
    /// Bytes not decided yet, starting at body offset `at`.
    pending: Vec<u8>,
    at: u64,
    /// The two bytes before `pending` (meaningful from offset 2 on).
    before: [u8; 2],
    state: State,
    eol: Option<Eol>,
    form: Form,
    limits: Limits,
    /// How much of the header block being read was looked at already.
    scanned: usize,
}

impl Splitter {
    fn new(boundary: &[u8], limits: Limits) -> Self {
        let mut needle = b"--".to_vec();
        needle.extend_from_slice(boundary);
        Splitter {
            needle,
            pending: Vec::new(),
            at: 0,
            before: [0; 2],
            state: State::Preamble,
            eol: None,
            form: Form::default(),
            limits,
            scanned: 0,
        }
    }

    fn feed(&mut self, data: &[u8]) -> Result<(), SplitError> {
        self.pending.extend_from_slice(data);
        while self.step()? {}
        Ok(())
    }

    fn consume(&mut self, n: usize) {
        match n {
            0 => {}
            1 => self.before = [self.before[1], self.pending[0]],
            _ => self.before = [self.pending[n - 2], self.pending[n - 1]],
        }
        self.pending.drain(..n);
        self.at += n as u64;
    }

    /// The byte `back` places before `pending[i]` (1: the one right before), if the body has it.
    fn byte_before(&self, i: usize, back: usize) -> Option<u8> {
        if i >= back {
            return Some(self.pending[i - back]);
        }
        let abs = self.at + i as u64;
        if abs < back as u64 {
            return None;
        }
        Some(self.before[2 - (back - i)])
    }

    fn observe(&mut self, eol: Eol) -> Result<(), SplitError> {
        match self.eol {
            None => self.eol = Some(eol),
            Some(e) if e != eol => return Err(SplitError::MixedLineEndings),
            _ => {}
        }
        Ok(())
    }

    /// The line end before a delimiter found at `pending[i]`: its length (0 at the start of
    /// the body), or an error when the delimiter is not at the start of a line.
    fn line_end_before(&mut self, i: usize) -> Result<usize, SplitError> {
        match self.byte_before(i, 1) {
            None => Ok(0),
            Some(b'\n') => {
                // In a bare-LF form a CR before the LF is the data's last byte: every parser
                // splits there, those that want CRLF too.
                if self.byte_before(i, 2) == Some(b'\r') && self.eol != Some(Eol::Lf) {
                    self.observe(Eol::Crlf)?;
                    Ok(2)
                } else {
                    self.observe(Eol::Lf)?;
                    Ok(1)
                }
            }
            Some(_) => Err(SplitError::MidLine),
        }
    }

    /// Keeps what could be the start of a delimiter cut between pieces; the rest is decided.
    fn keep_tail(&mut self) {
        let keep = (self.needle.len() - 1).min(self.pending.len());
        self.consume(self.pending.len() - keep);
    }

    /// One step; `false` when more input is needed.
    fn step(&mut self) -> Result<bool, SplitError> {
        match self.state {
            State::Preamble => {
                let Some(i) = memchr::memmem::find(&self.pending, &self.needle) else {
                    self.keep_tail();
                    return Ok(false);
                };
                let eol = self.line_end_before(i)?;
                let end = self.at + i as u64 - eol as u64;
                self.form.preamble = (0, end);
                self.consume(i + self.needle.len());
                self.state = State::AfterDelimiter;
                Ok(true)
            }
            State::AfterDelimiter => self.after_delimiter(),
            State::Headers => self.headers(),
            State::Data(start) => {
                let Some(i) = memchr::memmem::find(&self.pending, &self.needle) else {
                    self.keep_tail();
                    return Ok(false);
                };
                let eol = self.line_end_before(i)?;
                let end = (self.at + i as u64)
                    .checked_sub(eol as u64)
                    .filter(|&e| e >= start)
                    .ok_or(SplitError::NoData)?;
                if let Some(p) = self.form.parts.last_mut() {
                    p.len = end - start;
                }
                self.consume(i + self.needle.len());
                self.state = State::AfterDelimiter;
                Ok(true)
            }
            State::Epilogue(_) => {
                if memchr::memmem::find(&self.pending, &self.needle).is_some() {
                    return Err(SplitError::AfterClose);
                }
                self.keep_tail();
                Ok(false)
            }
        }
    }

    /// After a delimiter: `--` closes the body, else padding and a line end start a part.
    fn after_delimiter(&mut self) -> Result<bool, SplitError> {
        if self.pending.starts_with(b"--") {
            self.consume(2);
            self.state = State::Epilogue(self.at);
            return Ok(true);
        }
        let pad = self
            .pending
            .iter()
            .take_while(|&&b| b == b' ' || b == b'\t')
            .count();
        if pad > MAX_PADDING {
            return Err(SplitError::Padding);
        }
        let rest = &self.pending[pad..];
        let (eol, n) = match rest {
            [] | [b'\r'] => return Ok(false),
            [b'-'] if pad == 0 => return Ok(false),
            [b'\r', b'\n', ..] => (Eol::Crlf, 2),
            [b'\n', ..] => (Eol::Lf, 1),
            _ => return Err(SplitError::BadDelimiter),
        };
        self.observe(eol)?;
        self.consume(pad + n);
        if self.form.parts.len() >= self.limits.max_parts {
            return Err(SplitError::TooManyParts(self.limits.max_parts));
        }
        self.state = State::Headers;
        Ok(true)
    }

    /// A part's header block, up to its empty line.
    fn headers(&mut self) -> Result<bool, SplitError> {
        let Some(end) = block_end(&self.pending, &mut self.scanned) else {
            if self.pending.len() > self.limits.max_header {
                return Err(SplitError::HeaderTooLarge(self.limits.max_header));
            }
            return Ok(false);
        };
        if end > self.limits.max_header {
            return Err(SplitError::HeaderTooLarge(self.limits.max_header));
        }
        let block = &self.pending[..end];
        if memchr::memmem::find(block, &self.needle).is_some() {
            return Err(SplitError::DelimiterInHeader);
        }
        let (headers, eols) = parse_block(block)?;
        for eol in eols {
            self.observe(eol)?;
        }
        let head_offset = self.at;
        self.consume(end);
        self.scanned = 0;
        self.form.parts.push(Part {
            headers,
            head_offset,
            offset: self.at,
            len: 0,
            lf: self.eol == Some(Eol::Lf),
        });
        self.state = State::Data(self.at);
        Ok(true)
    }

    fn finish(mut self) -> Result<Form, SplitError> {
        let total = self.at + self.pending.len() as u64;
        match self.state {
            State::Preamble => self.form.preamble = (0, total),
            State::Data(start) => {
                // Cut before its closing delimiter: the last part runs to the end.
                if let Some(p) = self.form.parts.last_mut() {
                    p.len = total - start;
                }
            }
            State::Headers => {
                // A body that ends inside a header block: the block is checked as any other
                // (werkzeug ends a block at a bare-CR blank line, `\r\r`, and hands over what
                // follows as the part's data; here that is a bare CR, refused).
                let block = std::mem::take(&mut self.pending);
                if memchr::memmem::find(&block, &self.needle).is_some() {
                    return Err(SplitError::DelimiterInHeader);
                }
                let (_, mut eols) = parse_block(&block)?;
                if !block.ends_with(b"\n") {
                    // The last line was cut, not ended.
                    eols.pop();
                }
                for eol in eols {
                    self.observe(eol)?;
                }
                self.form.epilogue = (self.at, total - self.at);
            }
            State::AfterDelimiter => {
                self.form.epilogue = (self.at, total - self.at);
            }
            State::Epilogue(from) => self.form.epilogue = (from, total - from),
        }
        Ok(self.form)
    }
}

/// Where a header block ends: past its first empty line (`\r\n` or a bare `\n`). Lines
/// before `*from` were looked at already; it is moved past the complete lines seen.
fn block_end(data: &[u8], from: &mut usize) -> Option<usize> {
    let mut line_start = *from;
    for i in memchr::memchr_iter(b'\n', &data[line_start..]).map(|i| i + *from) {
        let line = &data[line_start..i];
        if line.is_empty() || line == b"\r" {
            return Some(i + 1);
        }
        line_start = i + 1;
    }
    *from = line_start;
    None
}

/// A part's header block (its empty line included): the headers, folded lines unfolded, and
/// the line end of each line.
fn parse_block(block: &[u8]) -> Result<(HeaderList, Vec<Eol>), SplitError> {
    let mut out: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut eols = Vec::new();
    let body = block.strip_suffix(b"\n").unwrap_or(block);
    for line in body.split(|&b| b == b'\n') {
        let (line, eol) = match line.strip_suffix(b"\r") {
            Some(l) => (l, Eol::Crlf),
            None => (line, Eol::Lf),
        };
        eols.push(eol);
        if line.contains(&b'\r') {
            return Err(SplitError::BareCr);
        }
        if line.is_empty() {
            continue;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            if let Some((_, v)) = out.last_mut() {
                v.push(b' ');
                v.extend_from_slice(line.trim_ascii());
            }
            continue;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            // No parser takes anything from a line without a colon.
            continue;
        };
        out.push((
            line[..colon].trim_ascii().to_vec(),
            line[colon + 1..].trim_ascii().to_vec(),
        ));
    }
    let headers = out
        .into_iter()
        .map(|(n, v)| (Bytes::from(n), Bytes::from(v)))
        .collect();
    Ok((headers, eols))
}

/// The part's data as a body of its own: ranges of the original parts, nothing copied.
pub fn part_body(body: &RequestBody, offset: u64, len: u64) -> RequestBody {
    body.slice(offset, len)
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

    fn data(body: &RequestBody, offset: u64, len: u64) -> Vec<u8> {
        bytes_of(&part_body(body, offset, len))
    }

    fn sp(raw: &[u8], b: &str) -> Result<Form, SplitError> {
        split(&mem(&[raw]), b.as_bytes(), 64, Limits::default())
    }

    #[test]
    fn a_form_splits_into_parts_with_their_headers_and_ranges() {
        let raw = form(
            "XyZ",
            &[
                ("Content-Disposition: form-data; name=\"title\"", b"hello"),
                (
                    "Content-Disposition: form-data; name=\"file\"; filename=\"a.gz\"\r\nContent-Type: application/gzip",
                    b"\x1f\x8b\x08binary\r\n-- XyZ not a delimiter",
                ),
            ],
        );
        let body = mem(&[&raw]);
        let f = split(&body, b"XyZ", 5, Limits::default()).unwrap();
        assert_eq!(f.parts.len(), 2);
        assert_eq!(data(&body, f.parts[0].offset, f.parts[0].len), b"hello");
        assert_eq!(
            f.parts[1].header("content-type").map(|v| v.as_ref()),
            Some(&b"application/gzip"[..])
        );
        assert_eq!(
            data(&body, f.parts[1].offset, f.parts[1].len),
            b"\x1f\x8b\x08binary\r\n-- XyZ not a delimiter"
        );
        assert_eq!(f.preamble.1, 0);
        assert_eq!(data(&body, f.epilogue.0, f.epilogue.1), b"\r\n");
    }

    #[test]
    fn lf_forms_preambles_epilogues_and_cut_forms_are_read_as_parsers_read_them() {
        let lf = b"--b\nContent-Disposition: form-data; name=\"a\"\n\nx\ny\n--b--\n";
        let f = sp(lf, "b").unwrap();
        assert_eq!(f.parts.len(), 1);
        assert!(f.parts[0].lf);
        assert_eq!(
            data(&mem(&[lf]), f.parts[0].offset, f.parts[0].len),
            b"x\ny"
        );

        let raw = b"preamble text\r\n--b\r\nA: 1\r\n\r\nd\r\n--b--\r\nepilogue";
        let body = mem(&[raw]);
        let f = split(&body, b"b", 3, Limits::default()).unwrap();
        assert_eq!(data(&body, f.preamble.0, f.preamble.1), b"preamble text");
        assert_eq!(data(&body, f.epilogue.0, f.epilogue.1), b"\r\nepilogue");

        let cut = b"--b\r\nA: 1\r\n\r\ndata to the end";
        let body = mem(&[cut]);
        let f = split(&body, b"b", 3, Limits::default()).unwrap();
        assert_eq!(
            data(&body, f.parts[0].offset, f.parts[0].len),
            b"data to the end"
        );

        let none = b"no delimiter at all";
        let f = sp(none, "b").unwrap();
        assert!(f.parts.is_empty());
        assert_eq!(f.preamble, (0, none.len() as u64));

        let folded = b"--b\r\nContent-Disposition: form-data;\r\n name=\"f\"; filename=\"a\"\r\n\r\nz\r\n--b--";
        let f = sp(folded, "b").unwrap();
        assert_eq!(
            f.parts[0].header("content-disposition").map(|v| v.to_vec()),
            Some(b"form-data; name=\"f\"; filename=\"a\"".to_vec())
        );
        // A nested multipart part is a part.
        let nested = form(
            "b",
            &[("Content-Type: multipart/mixed; boundary=c", b"--c--")],
        );
        assert_eq!(sp(&nested, "b").unwrap().parts.len(), 1);
    }

    #[test]
    fn what_parsers_read_differently_is_refused() {
        type Expect = fn(&SplitError) -> bool;
        let cases: [(&[u8], Expect); 10] = [
            // `\n--b` inside CRLF data: PHP and werkzeug end the part there.
            (
                b"--b\r\nA: 1\r\n\r\nx\n--b\r\nA: 2\r\n\r\ny\r\n--b--",
                |e| matches!(e, SplitError::MixedLineEndings),
            ),
            // `--b` mid-line: Django ends the part there.
            (b"--b\r\nA: 1\r\n\r\nx--b\r\n--b--", |e| {
                matches!(e, SplitError::MidLine)
            }),
            // A bare-LF blank line in a CRLF header block.
            (b"--b\r\nA: 1\r\n\nfile data\r\n\r\ny\r\n--b--", |e| {
                matches!(e, SplitError::MixedLineEndings)
            }),
            // A header block that ends at `\r\r` (werkzeug's reading) and a body that ends
            // before any other end of it.
            (b"--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.gz\"\r\rgzip data", |e| {
                matches!(e, SplitError::BareCr)
            }),
            (b"--b\r\nA: 1\rB: 2\r\n\r\ny\r\n--b--", |e| {
                matches!(e, SplitError::BareCr)
            }),
            (b"--bx\r\nA: 1\r\n\r\ny\r\n--b--", |e| {
                matches!(e, SplitError::BadDelimiter)
            }),
            (b"--b\r\nA: 1\r\n\r\n--b--", |e| {
                matches!(e, SplitError::NoData)
            }),
            (b"--b\r\nA: 1\r\n--b\r\n\r\nx\r\n--b--", |e| {
                matches!(e, SplitError::DelimiterInHeader)
            }),
            (
                b"--b\r\nA: 1\r\n\r\nx\r\n--b--\r\n--b\r\nA: 2\r\n\r\ny\r\n--b--",
                |e| matches!(e, SplitError::AfterClose),
            ),
            (b"--b\r\n\r\nx\r\n--b  \t\r\n\r\ny\r\n--b--", |e| {
                !matches!(e, SplitError::Padding)
            }),
        ];
        for (i, (raw, ok)) in cases.iter().enumerate() {
            match sp(raw, "b") {
                Err(e) => assert!(ok(&e), "case {i}: {e}"),
                Ok(f) if i == 9 => assert_eq!(f.parts.len(), 2),
                Ok(f) => panic!("case {i} split: {f:?}"),
            }
        }
        let mut padded = b"--b".to_vec();
        padded.extend(std::iter::repeat_n(b' ', MAX_PADDING + 1));
        padded.extend_from_slice(b"\r\n\r\nx\r\n--b--");
        assert!(matches!(sp(&padded, "b"), Err(SplitError::Padding)));
    }

    #[test]
    fn limits_refuse() {
        let big = form(
            "b",
            &[(
                &format!("X: {}", "v".repeat(Limits::default().max_header)),
                b"1",
            )],
        );
        assert!(matches!(sp(&big, "b"), Err(SplitError::HeaderTooLarge(_))));
        let many: Vec<(&str, &[u8])> = vec![("A: b", b"x"); 11];
        let many = form("b", &many);
        let limits = Limits {
            max_parts: 10,
            ..Limits::default()
        };
        assert!(matches!(
            split(&mem(&[&many]), b"b", 4096, limits),
            Err(SplitError::TooManyParts(10))
        ));
    }

    fn cut(raw: &[u8], cuts: &[usize]) -> RequestBody {
        let mut pieces = Vec::new();
        let mut at = 0;
        for c in cuts.iter().cycle() {
            if at >= raw.len() {
                break;
            }
            let end = (at + c).min(raw.len());
            pieces.push(&raw[at..end]);
            at = end;
        }
        mem(&pieces)
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
            let body = cut(&raw, &cuts);
            let got = split(&body, b"q7-boundary", chunk, Limits::default()).unwrap();
            prop_assert_eq!(got.parts.len(), datas.len());
            for (p, d) in got.parts.iter().zip(&datas) {
                prop_assert_eq!(&data(&body, p.offset, p.len), d);
            }
        }

        #[test]
        fn arbitrary_bytes_split_the_same_whole_and_cut(
            raw in proptest::collection::vec(prop_oneof![Just(b'-'), Just(b'b'), Just(b'\r'), Just(b'\n'), Just(b':'), Just(b' '), any::<u8>()], 0..600),
            cuts in proptest::collection::vec(1usize..40, 1..10),
            chunk in 1usize..40,
        ) {
            let mut with_start = b"--b\r\n".to_vec();
            with_start.extend_from_slice(&raw);
            for raw in [&raw, &with_start] {
                let whole = format!("{:?}", split(&mem(&[raw]), b"b", 1 << 20, Limits::default()));
                let cut = format!("{:?}", split(&cut(raw, &cuts), b"b", chunk, Limits::default()));
                prop_assert_eq!(whole, cut);
            }
        }
    }
}
