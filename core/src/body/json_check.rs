//! Whether a body is JSON at all: that some mainstream parser accepts it. A body gets a JSON
//! reading only then; random bytes that happen to start with `{` or `[` (2 files in 256 of
//! any compressed, encrypted or media type) are no JSON document to any parser, and reading
//! their quotes as strings only made objects of noise.
//!
//! The check is the union of what parsers accept, so that no reading a parser makes is
//! skipped: one complete value after white space (and a byte order mark, UTF-16 and UTF-32 as
//! Python detects them), anything after it (Go's `json.Decoder` reads the first value and
//! stops), `NaN`, `Infinity` and `-Infinity` (Python), numbers of any spelling of digits,
//! signs, points and exponents, any escape and any byte inside strings (lenient parsers take
//! control characters and invalid UTF-8). What no parser takes: a value cut by the end of the
//! body, a bare word, a missing `:` or `,`, a closer that does not match. Random bytes fail
//! within a few bytes, so the check costs nothing on them.

use std::io;

use super::json::{detect, Transcoder};
use crate::body::{RequestBody, FILE_CHUNK};

/// Deeper than this the body is taken as JSON without reading on (conservative: a reading too
/// many, never one too few).
const MAX_DEPTH: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum S {
    /// A value is expected (`top`: the document's own).
    Value,
    /// After `[`: a value or `]`.
    ValueOrClose,
    /// After `{`: a key or `}`.
    KeyOrClose,
    /// After `,` in an object: a key.
    Key,
    /// After a key: `:`.
    Colon,
    /// After a value: `,` or the closer, or the end of the document.
    After,
    Str {
        key: bool,
    },
    Escape {
        key: bool,
    },
    Number,
    /// The rest of a word: `true`, `NaN`, ...
    Word(&'static [u8], u8),
}

/// What the check has found so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    More,
    Json,
    NotJson,
}

pub struct Check {
    state: S,
    stack: Vec<u8>,
    verdict: Verdict,
    /// Bytes read up to and including the end of the first value, once it has ended.
    read: u64,
}

impl Default for Check {
    fn default() -> Self {
        Check {
            state: S::Value,
            stack: Vec::new(),
            verdict: Verdict::More,
            read: 0,
        }
    }
}

fn ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

impl Check {
    /// Reads UTF-8 `data`; the verdict once known.
    pub fn feed(&mut self, data: &[u8]) -> Verdict {
        let mut i = 0;
        while i < data.len() && self.verdict == Verdict::More {
            let b = data[i];
            match self.state {
                S::Str { key } => {
                    // The rest of a string up to its quote or backslash, at once.
                    match memchr::memchr2(b'"', b'\\', &data[i..]) {
                        None => i = data.len(),
                        Some(k) => {
                            let at = data[i + k];
                            i += k + 1;
                            if at == b'\\' {
                                self.state = S::Escape { key };
                            } else if key {
                                self.state = S::Colon;
                            } else {
                                self.end_value();
                            }
                        }
                    }
                    continue;
                }
                S::Escape { key } => self.state = S::Str { key },
                S::Number => {
                    if b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E') {
                    } else if b == b'I' {
                        self.state = S::Word(b"Infinity", 1);
                    } else {
                        self.end_value();
                        continue; // the byte is read again after the value
                    }
                }
                S::Word(word, at) => {
                    if word.get(usize::from(at)) != Some(&b) {
                        self.verdict = Verdict::NotJson;
                    } else if usize::from(at) + 1 == word.len() {
                        self.end_value();
                    } else {
                        self.state = S::Word(word, at + 1);
                    }
                }
                _ if ws(b) => {}
                S::Value | S::ValueOrClose => self.value(b),
                S::KeyOrClose | S::Key => match b {
                    b'"' => self.state = S::Str { key: true },
                    b'}' if self.state == S::KeyOrClose => self.close(b'{'),
                    _ => self.verdict = Verdict::NotJson,
                },
                S::Colon => match b {
                    b':' => self.state = S::Value,
                    _ => self.verdict = Verdict::NotJson,
                },
                S::After => match (b, self.stack.last()) {
                    (b',', Some(b'[')) => self.state = S::Value,
                    (b',', Some(b'{')) => self.state = S::Key,
                    (b']', Some(b'[')) => self.close(b'['),
                    (b'}', Some(b'{')) => self.close(b'{'),
                    _ => self.verdict = Verdict::NotJson,
                },
            }
            i += 1;
        }
        self.read += i as u64;
        self.verdict
    }

    /// The bytes read to the end of the first value (all that was fed, while unknown).
    pub fn read(&self) -> u64 {
        self.read
    }

    /// The body ended.
    pub fn end(&mut self) -> Verdict {
        if self.verdict == Verdict::More {
            // A number at the top level ends with the body.
            let whole = self.stack.is_empty() && self.state == S::Number;
            self.verdict = if whole {
                Verdict::Json
            } else {
                Verdict::NotJson
            };
        }
        self.verdict
    }

    fn value(&mut self, b: u8) {
        self.state = match b {
            b'"' => S::Str { key: false },
            b'{' | b'[' => {
                if self.stack.len() >= MAX_DEPTH {
                    self.verdict = Verdict::Json;
                    return;
                }
                self.stack.push(b);
                if b == b'{' {
                    S::KeyOrClose
                } else {
                    S::ValueOrClose
                }
            }
            b']' if self.state == S::ValueOrClose => return self.close(b'['),
            b'-' | b'0'..=b'9' => S::Number,
            b't' => S::Word(b"true", 1),
            b'f' => S::Word(b"false", 1),
            b'n' => S::Word(b"null", 1),
            b'N' => S::Word(b"NaN", 1),
            b'I' => S::Word(b"Infinity", 1),
            _ => {
                self.verdict = Verdict::NotJson;
                return;
            }
        };
    }

    fn close(&mut self, open: u8) {
        if self.stack.pop() != Some(open) {
            self.verdict = Verdict::NotJson;
            return;
        }
        self.end_value();
    }

    fn end_value(&mut self) {
        if self.stack.is_empty() {
            self.verdict = Verdict::Json;
        }
        self.state = S::After;
    }
}

/// Whether `body` is a JSON document to some mainstream parser (`first_brace`: only one whose
/// first character is `{`, `[` or `"`, a body recognised by its content, not its type: PHP,
/// Django, Go and Jackson parse a document that is one string as readily as an object), and if so
/// how many of its bytes hold the document's value: what any parser hands over lies there
/// (the whole body for UTF-16 and UTF-32, which are not measured).
pub fn accepted(body: &RequestBody, first_brace: bool) -> io::Result<Option<u64>> {
    let mut reader = body.reader(FILE_CHUNK);
    let mut head = Vec::new();
    let mut rest = Vec::new();
    while head.len() < 4 {
        match reader.next_chunk_max(64) {
            Some(c) => head.extend_from_slice(&c?),
            None => break,
        }
    }
    let (enc, bom) = detect(&head);
    let mut tc = Transcoder::new(enc);
    let mut check = Check::default();
    let mut utf8 = Vec::new();
    let mut seen_first = false;
    let mut data = head[bom.min(head.len())..].to_vec();
    loop {
        utf8.clear();
        let piece: &[u8] = if tc.is_utf8() {
            &data
        } else {
            tc.feed(&data, &mut utf8);
            &utf8
        };
        if first_brace && !seen_first {
            if let Some(&b) = piece.iter().find(|&&b| !ws(b)) {
                if b != b'{' && b != b'[' && b != b'"' {
                    return Ok(None);
                }
                seen_first = true;
            }
        }
        let len = |check: &Check| match tc.is_utf8() {
            true => bom as u64 + check.read(),
            false => body.len(),
        };
        match check.feed(piece) {
            Verdict::Json => return Ok(Some(len(&check))),
            Verdict::NotJson => return Ok(None),
            Verdict::More => {}
        }
        match reader.next_chunk() {
            Some(c) => {
                rest.clear();
                rest.extend_from_slice(&c?);
                std::mem::swap(&mut data, &mut rest);
            }
            None => return Ok((check.end() == Verdict::Json).then(|| len(&check))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::testing::mem;

    fn json(s: &[u8]) -> bool {
        let whole = accepted(&mem(&[s]), false).unwrap();
        if let Some(n) = whole {
            assert!(n <= s.len() as u64);
        }
        let whole = whole.is_some();
        for cut in 1..s.len().min(40) {
            assert_eq!(
                accepted(&mem(&[&s[..cut], &s[cut..]]), false)
                    .unwrap()
                    .is_some(),
                whole,
                "cut at {cut}: {}",
                String::from_utf8_lossy(s)
            );
        }
        whole
    }

    #[test]
    fn documents_parsers_accept_are_json() {
        for s in [
            &br#"{"a": [1, -2.5e+3, true, false, null, "x\"y\\"], "b": {}}"#[..],
            b"  [ ]  ",
            b"[NaN, Infinity, -Infinity]",
            b"{\"a\":\"\x01\xff raw bytes\"}",
            b"{\"a\": 1} trailing bytes Go's Decoder leaves unread",
            b"\xef\xbb\xbf{\"bom\": 1}",
            b"\"a top-level string\"",
            b"123",
            b"[[[[[[[[]]]]]]]]",
        ] {
            assert!(json(s), "{}", String::from_utf8_lossy(s));
        }
        let utf16: Vec<u8> = "{\"k\": \"v\"}"
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        assert!(json(&utf16));
    }

    #[test]
    fn what_no_parser_accepts_is_not_json() {
        for s in [
            &b"{"[..],
            b"[1, 2",
            b"{\"a\" 1}",
            b"{\"a\": 1,}x",
            b"{a: 1}",
            b"[1 2]",
            b"[}",
            b"{]",
            b"[tru]",
            b"{\"a\": \"never closed",
            b"",
            b"   ",
            b"{\x00\x17binary",
        ] {
            assert!(!json(s), "{}", String::from_utf8_lossy(s));
        }
    }

    #[test]
    fn random_bytes_after_a_brace_are_not_json_and_are_rejected_early() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut json_count = 0;
        let mut longest = 0;
        for first in [b'{', b'['] {
            for _ in 0..2000 {
                let mut v = vec![first];
                for _ in 0..4096 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    v.push(x as u8);
                }
                if let Some(n) = accepted(&mem(&[&v]), true).unwrap() {
                    json_count += 1;
                    longest = longest.max(n);
                }
            }
        }
        // `[]`, `{}`, `[1]` then noise: Go's Decoder reads that much and no more.
        assert!(json_count < 100, "{json_count}");
        assert!(longest < 16, "{longest}");
        // A document that is one string is JSON to PHP, Django, Go and Jackson.
        assert_eq!(
            accepted(&mem(&[b"\"a string\" x"]), true).unwrap(),
            Some(10)
        );
        assert_eq!(accepted(&mem(&[b"a string"]), true).unwrap(), None);
        assert_eq!(accepted(&mem(&[b" \n{} noise"]), true).unwrap(), Some(4));
        assert_eq!(
            accepted(&mem(&[b"\xef\xbb\xbf[1]x"]), true).unwrap(),
            Some(6)
        );
        assert_eq!(accepted(&mem(&[b"[1, 22"]), true).unwrap(), None);
        assert_eq!(accepted(&mem(&[b"22"]), false).unwrap(), Some(2));
    }
}
