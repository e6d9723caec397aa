//! JSON bodies as a JSON parser hands them to the application: every string (keys and values)
//! unescaped. JSON must escape `"` and `\` and control characters, so a payload inside a string
//! never stands on the wire as the application gets it; a scanner must see it unescaped.
//!
//! A body is JSON when its type says so or when, after an optional byte order mark, its first
//! non-blank character is `{` or `[` (PHP's `json_decode(php://input)` and Django's
//! `json.loads(request.body)` do not look at the type). UTF-8, UTF-16 and UTF-32 are read, as
//! Python's `json` detects them (a byte order mark, or the pattern of zero bytes).
//!
//! The tokenizer is a byte-at-a-time state machine over a streamed body: only the current
//! string's first [`JOIN_MAX`] bytes and the last key are held; a longer string is spilled.
//! Malformed JSON is no error: what was read is handed over, and the body is scanned as sent
//! anyway.

use std::path::Path;

use crate::body::base64::Base64Sniffer;
use crate::body::bundle::Bundle;
use crate::body::sink::BodySink;
use crate::body::text::{is_text, Joined, JOIN_MAX};
pub(crate) use crate::body::utf::{detect, Encoding};
use crate::body::{RequestBody, FILE_CHUNK};
use crate::scan::{ScanError, SPILL_THRESHOLD};

/// Longest key kept for naming.
const MAX_KEY: usize = 256;

/// What a JSON body hands over that its spelling on the wire does not show.
#[derive(Default)]
pub struct Strings {
    /// Short text strings that had escapes, unescaped, together.
    pub joined: Option<RequestBody>,
    /// Each long or binary string alone, unescaped, with its key.
    pub alone: Vec<(String, RequestBody)>,
    /// Each base64 string decoded, with its key.
    pub decoded: Vec<(String, RequestBody)>,
    /// The strings past the count scanned alone, each a member of a tar archive (as short
    /// binary form values are): a scanner that unpacks archives sees each from its first byte.
    pub bundled: Vec<RequestBody>,
    /// Each string that may be a body again (JSON, XML, url-encoded: see
    /// [`crate::body::nested`]), unescaped, with its key: applications parse such strings.
    pub nested: Vec<(String, RequestBody)>,
}

/// Turns code units of the body's encoding into UTF-8 (invalid ones into U+FFFD).
pub(super) struct Transcoder {
    enc: Encoding,
    carry: Vec<u8>,
    high: Option<u16>,
}

impl Transcoder {
    pub(super) fn new(enc: Encoding) -> Self {
        Transcoder {
            enc,
            carry: Vec::new(),
            high: None,
        }
    }

    fn push_char(out: &mut Vec<u8>, c: u32) {
        let c = char::from_u32(c).unwrap_or('\u{fffd}');
        let mut b = [0u8; 4];
        out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
    }

    fn unit16(&mut self, u: u16, out: &mut Vec<u8>) {
        match (self.high.take(), u) {
            (Some(h), 0xdc00..=0xdfff) => {
                let c = 0x10000 + ((u32::from(h) - 0xd800) << 10) + (u32::from(u) - 0xdc00);
                Self::push_char(out, c);
            }
            (h, _) => {
                if h.is_some() {
                    Self::push_char(out, 0xfffd);
                }
                if (0xd800..=0xdbff).contains(&u) {
                    self.high = Some(u);
                } else {
                    Self::push_char(out, u32::from(u));
                }
            }
        }
    }

    pub(super) fn is_utf8(&self) -> bool {
        self.enc == Encoding::Utf8
    }

    pub(super) fn feed(&mut self, data: &[u8], out: &mut Vec<u8>) {
        if self.enc == Encoding::Utf8 {
            out.extend_from_slice(data);
            return;
        }
        let width = match self.enc {
            Encoding::Utf16Le | Encoding::Utf16Be => 2,
            _ => 4,
        };
        self.carry.extend_from_slice(data);
        let whole = self.carry.len() / width * width;
        let carry = std::mem::take(&mut self.carry);
        for u in carry[..whole].chunks_exact(width) {
            match self.enc {
                Encoding::Utf16Le => self.unit16(u16::from_le_bytes([u[0], u[1]]), out),
                Encoding::Utf16Be => self.unit16(u16::from_be_bytes([u[0], u[1]]), out),
                Encoding::Utf32Le => {
                    Self::push_char(out, u32::from_le_bytes([u[0], u[1], u[2], u[3]]))
                }
                Encoding::Utf32Be => {
                    Self::push_char(out, u32::from_be_bytes([u[0], u[1], u[2], u[3]]))
                }
                Encoding::Utf8 => {}
            }
        }
        self.carry = carry[whole..].to_vec();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lex {
    Outside,
    InString,
    Escape,
    /// `\u` and this many hex digits so far, their value.
    Unicode(u8, u16),
}

/// The string being read.
struct Current<'a> {
    /// Its first bytes, up to [`JOIN_MAX`].
    head: Vec<u8>,
    /// The whole string, once it is longer than that.
    spill: Option<BodySink<'a>>,
    escaped: bool,
    sniffer: Option<Base64Sniffer<'a>>,
    /// Unescaped bytes not yet handed to the sniffer and the spill.
    pending: Vec<u8>,
}

struct Tokenizer<'a> {
    dir: &'a Path,
    lex: Lex,
    high: Option<u16>,
    cur: Option<Current<'a>>,
    /// The last string, when short (a key if `:` follows), as read.
    last_short: Option<Vec<u8>>,
    key: String,
    joined: Joined<'a>,
    out: Strings,
    max_objects: usize,
    bundle: Bundle<'a>,
}

impl<'a> Tokenizer<'a> {
    fn emit(&mut self, bytes: &[u8]) -> Result<(), ScanError> {
        let Some(cur) = &mut self.cur else {
            return Ok(());
        };
        cur.pending.extend_from_slice(bytes);
        if cur.pending.len() >= 64 * 1024 {
            Self::flush(cur, self.dir)?;
        }
        Ok(())
    }

    fn flush(cur: &mut Current<'a>, dir: &'a Path) -> Result<(), ScanError> {
        let data = std::mem::take(&mut cur.pending);
        if let Some(s) = &mut cur.sniffer {
            s.feed(&data)?;
            if !s.alive() {
                cur.sniffer = None;
            }
        }
        match &mut cur.spill {
            Some(sink) => sink.push(&data)?,
            None if cur.head.len() + data.len() > JOIN_MAX => {
                let mut sink = BodySink::new(SPILL_THRESHOLD, dir);
                sink.push(&cur.head)?;
                sink.push(&data)?;
                cur.head.truncate(MAX_KEY);
                cur.spill = Some(sink);
            }
            None => cur.head.extend_from_slice(&data),
        }
        Ok(())
    }

    fn emit_char(&mut self, c: u32) -> Result<(), ScanError> {
        let mut v = Vec::with_capacity(4);
        Transcoder::push_char(&mut v, c);
        self.emit(&v)
    }

    fn unit(&mut self, u: u16) -> Result<(), ScanError> {
        match (self.high.take(), u) {
            (Some(h), 0xdc00..=0xdfff) => {
                let c = 0x10000 + ((u32::from(h) - 0xd800) << 10) + (u32::from(u) - 0xdc00);
                self.emit_char(c)
            }
            (h, _) => {
                if h.is_some() {
                    self.emit_char(0xfffd)?;
                }
                if (0xd800..=0xdbff).contains(&u) {
                    self.high = Some(u);
                    Ok(())
                } else {
                    self.emit_char(u32::from(u))
                }
            }
        }
    }

    fn end_string(&mut self) -> Result<(), ScanError> {
        if self.high.take().is_some() {
            self.emit_char(0xfffd)?;
        }
        let Some(mut cur) = self.cur.take() else {
            return Ok(());
        };
        Self::flush(&mut cur, self.dir)?;
        let nested = crate::body::nested::may_be_body(&cur.head);
        let mut php_differs = false;
        let mut whole = false;
        if let Some(s) = cur.sniffer.take() {
            php_differs = s.more_after_end();
            whole = s.whole();
            if let Some(decoded) = s.finish()? {
                self.object(decoded, true)?;
            } else {
                whole = false;
            }
        }
        if php_differs {
            // PHP's reading of the string goes on past the padding.
            let whole = match cur.spill.take() {
                Some(sink) => {
                    // Long: alone, as below.
                    let body: RequestBody = sink.finish()?.into();
                    self.last_short = None;
                    self.object(body.clone(), false)?;
                    body
                }
                None => RequestBody::memory(&cur.head),
            };
            if let Some(php) = crate::body::base64::php_reading(&whole, self.dir)? {
                self.object(php, true)?;
            }
            if whole.len() > JOIN_MAX as u64 {
                return Ok(());
            }
        }
        match cur.spill {
            // Long, unescaped (so it stands as it is in the body, which is scanned) and base64
            // from end to end: its decoding, scanned above, is all it holds besides.
            Some(_) if whole && !cur.escaped => self.last_short = None,
            Some(sink) => {
                self.last_short = None;
                let body: RequestBody = sink.finish()?.into();
                if nested {
                    self.nest(body.clone());
                }
                self.object(body, false)?;
            }
            None => {
                if nested {
                    self.nest(RequestBody::memory(&cur.head));
                }
                if !cur.escaped {
                    // As it stands in the body, which is scanned too.
                } else if is_text(&cur.head) {
                    self.joined.push(&cur.head)?;
                } else {
                    self.object(RequestBody::memory(&cur.head), false)?;
                }
                // Read as a key only if `:` follows.
                self.last_short = Some(cur.head);
            }
        }
        Ok(())
    }

    /// A string to read again, named by the key it stands under.
    fn nest(&mut self, body: RequestBody) {
        let key = self.key_name();
        self.out.nested.push((key, body));
    }

    fn key_name(&self) -> String {
        if self.key.is_empty() {
            "(no key)".to_string()
        } else {
            self.key.clone()
        }
    }

    /// A string to scan alone, named by the key it stands under.
    fn object(&mut self, body: RequestBody, decoded: bool) -> Result<(), ScanError> {
        let key = self.key_name();
        if self.out.alone.len() + self.out.decoded.len() >= self.max_objects {
            return self.bundle.push_body(&body);
        }
        if decoded {
            self.out.decoded.push((key, body));
        } else {
            self.out.alone.push((key, body));
        }
        Ok(())
    }

    /// The character after a backslash.
    fn escape(&mut self, b: u8) -> Result<(), ScanError> {
        self.lex = Lex::InString;
        let c = match b {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                self.lex = Lex::Unicode(0, 0);
                return Ok(());
            }
            other => {
                // Not JSON; a lenient reader keeps both characters.
                return self.emit(&[b'\\', other]);
            }
        };
        if self.high.take().is_some() {
            self.emit_char(0xfffd)?;
        }
        self.emit(&[c])
    }

    /// A piece of the body (UTF-8): runs of plain string characters, and of what lies between
    /// strings, are taken whole, the rest byte by byte.
    fn feed(&mut self, data: &[u8]) -> Result<(), ScanError> {
        let mut i = 0;
        while i < data.len() {
            if self.lex == Lex::InString && self.high.is_none() {
                let run = memchr::memchr2(b'"', b'\\', &data[i..]).unwrap_or(data.len() - i);
                if run > 0 {
                    self.emit(&data[i..i + run])?;
                    i += run;
                    continue;
                }
            }
            if self.lex == Lex::Outside && self.last_short.is_none() {
                // Outside strings with no key pending, only a string's start matters.
                let run = memchr::memchr(b'"', &data[i..]).unwrap_or(data.len() - i);
                if run > 0 {
                    i += run;
                    continue;
                }
            }
            self.byte(data[i])?;
            i += 1;
        }
        Ok(())
    }

    fn byte(&mut self, b: u8) -> Result<(), ScanError> {
        match self.lex {
            Lex::Outside => match b {
                b'"' => {
                    self.lex = Lex::InString;
                    self.cur = Some(Current {
                        head: Vec::new(),
                        spill: None,
                        escaped: false,
                        sniffer: Some(Base64Sniffer::new(self.dir)),
                        pending: Vec::new(),
                    });
                }
                b':' => {
                    if let Some(k) = self.last_short.take() {
                        self.key = String::from_utf8_lossy(&k).chars().take(MAX_KEY).collect();
                    }
                }
                b' ' | b'\t' | b'\r' | b'\n' => {}
                _ => self.last_short = None,
            },
            Lex::InString => match b {
                b'"' => {
                    self.lex = Lex::Outside;
                    self.end_string()?;
                }
                b'\\' => {
                    self.lex = Lex::Escape;
                    if let Some(c) = &mut self.cur {
                        c.escaped = true;
                    }
                }
                _ => {
                    if self.high.take().is_some() {
                        self.emit_char(0xfffd)?;
                    }
                    self.emit(&[b])?;
                }
            },
            Lex::Escape => self.escape(b)?,
            Lex::Unicode(n, v) => {
                let Some(d) = (b as char).to_digit(16) else {
                    // A broken escape: kept as it stands.
                    self.lex = Lex::InString;
                    return self.byte(b);
                };
                let v = v << 4 | d as u16;
                if n == 3 {
                    self.lex = Lex::InString;
                    self.unit(v)?;
                } else {
                    self.lex = Lex::Unicode(n + 1, v);
                }
            }
        }
        Ok(())
    }
}

/// Every string of a JSON body, as [`Strings`] sorts them; at most `max_objects` scanned
/// alone, the others in archives.
pub fn strings(body: &RequestBody, dir: &Path, max_objects: usize) -> Result<Strings, ScanError> {
    let mut reader = body.reader(FILE_CHUNK);
    let mut t = Tokenizer {
        dir,
        lex: Lex::Outside,
        high: None,
        cur: None,
        last_short: None,
        key: String::new(),
        joined: Joined::new(dir),
        out: Strings::default(),
        max_objects,
        bundle: Bundle::new(dir),
    };
    let mut transcoder: Option<(Transcoder, usize)> = None;
    let mut utf8 = Vec::new();
    let mut head: Vec<u8> = Vec::new();
    while let Some(chunk) = reader.next_chunk() {
        let chunk = chunk.map_err(ScanError::Body)?;
        let data: &[u8] = match transcoder {
            Some(_) => &chunk,
            // The first piece is read where it is when it is long enough to tell the encoding.
            None if head.is_empty() && chunk.len() >= 4 => &chunk,
            None => {
                head.extend_from_slice(&chunk);
                if head.len() < 4 {
                    continue;
                }
                &head
            }
        };
        let (tc, bom) = transcoder.get_or_insert_with(|| {
            let (enc, bom) = detect(data);
            (Transcoder::new(enc), bom)
        });
        if tc.enc == Encoding::Utf8 {
            // UTF-8 is read as it is, without a copy.
            t.feed(&data[*bom..])?;
        } else {
            utf8.clear();
            tc.feed(&data[*bom..], &mut utf8);
            t.feed(&utf8)?;
        }
        *bom = 0;
    }
    if transcoder.is_none() {
        let (enc, bom) = detect(&head);
        let mut tc = Transcoder::new(enc);
        tc.feed(&head[bom.min(head.len())..], &mut utf8);
        t.feed(&utf8)?;
    }
    // A string cut by the end of the body is handed over as far as it goes.
    if matches!(t.lex, Lex::InString | Lex::Escape | Lex::Unicode(..)) {
        t.end_string()?;
    }
    let Tokenizer {
        joined,
        mut out,
        bundle,
        ..
    } = t;
    out.joined = joined.finish()?;
    out.bundled = bundle.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::testing::*;
    use base64::Engine as _;

    const EICAR: &str = r"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

    fn is_json(b: &RequestBody) -> Option<u64> {
        crate::body::json_check::accepted(b, true).unwrap()
    }

    fn run(pieces: &[&[u8]]) -> Strings {
        strings(&mem(pieces), &std::env::temp_dir(), 100).unwrap()
    }

    fn escaped(s: &str) -> String {
        serde_json_escape(s)
    }

    /// A string as a JSON encoder writes it (json.dumps).
    fn serde_json_escape(s: &str) -> String {
        let mut out = String::from("\"");
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                    let mut buf = [0u16; 2];
                    for u in c.encode_utf16(&mut buf) {
                        out.push_str(&format!("\\u{u:04x}"));
                    }
                }
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    #[test]
    fn escaped_strings_are_handed_over_unescaped_however_cut() {
        let long = format!("{}{EICAR}", "line\n".repeat(1000));
        let json = format!(
            "{{\"content\": {}, \"plain\": \"no escapes\", \"long\": {}, \"u\": \"\\ud83d\\ude00\\u00e9\"}}",
            escaped(EICAR),
            escaped(&long)
        );
        for cut in [1usize, 3, 7, 1000, 100_000] {
            let pieces: Vec<&[u8]> = json.as_bytes().chunks(cut).collect();
            let got = run(&pieces);
            let joined = String::from_utf8(bytes_of(got.joined.as_ref().unwrap())).unwrap();
            assert_eq!(joined, format!("{EICAR}\n😀é\n"), "cut {cut}");
            assert_eq!(got.alone.len(), 1);
            assert_eq!(got.alone[0].0, "long");
            assert_eq!(bytes_of(&got.alone[0].1), long.as_bytes());
        }
    }

    #[test]
    fn a_key_is_the_string_before_a_colon_whatever_white_space_lies_between() {
        let long = escaped(&format!("{}{EICAR}", "line\n".repeat(1000)));
        let json = format!("[\"x\", {long}, {{\"k\" \r\n\t: {long}}}, \"y\" , {long}]");
        for cut in [1usize, 2, 5, 100_000] {
            let pieces: Vec<&[u8]> = json.as_bytes().chunks(cut).collect();
            let got = run(&pieces);
            let keys: Vec<&str> = got.alone.iter().map(|(k, _)| k.as_str()).collect();
            // A comma after "x" or "y" makes them values, not keys.
            assert_eq!(keys, ["(no key)", "k", "k"], "cut {cut}");
        }
    }

    #[test]
    fn base64_strings_are_decoded_with_their_keys() {
        let data =
            b"\x1f\x8b\x08\x00binary file content that is long enough to count as a file, surely!";
        let b64 = base64::engine::general_purpose::STANDARD.encode(data);
        let esc = b64.replace('/', "\\/");
        let url = format!("data:application/gzip;base64,{b64}");
        let json = format!("[{{\"a\": \"{esc}\"}}, {{\"b\": \"{url}\"}}, \"QUJD\"]");
        let got = run(&[json.as_bytes()]);
        assert_eq!(got.decoded.len(), 2);
        assert_eq!(got.decoded[0].0, "a");
        assert_eq!(bytes_of(&got.decoded[0].1), data);
        assert_eq!(got.decoded[1].0, "b");
        assert_eq!(bytes_of(&got.decoded[1].1), data);
    }

    #[test]
    fn utf16_and_utf32_bodies_are_read() {
        let json = format!("{{\"content\": {}}}", escaped(EICAR));
        let le: Vec<u8> = json.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
        let mut be_bom = vec![0xfe, 0xff];
        be_bom.extend(json.encode_utf16().flat_map(|u| u.to_be_bytes()));
        let u32le: Vec<u8> = json
            .chars()
            .flat_map(|c| (c as u32).to_le_bytes())
            .collect();
        for body in [le, be_bom, u32le] {
            assert!(is_json(&mem(&[&body])).is_some());
            for cut in [1usize, 3, 5, 4096] {
                let pieces: Vec<&[u8]> = body.chunks(cut).collect();
                let got = run(&pieces);
                let joined = bytes_of(got.joined.as_ref().unwrap());
                assert_eq!(joined, format!("{EICAR}\n").as_bytes());
            }
        }
        assert!(is_json(&mem(&[b"\xef\xbb\xbf \n[1]"])).is_some());
        assert!(is_json(&mem(&[b"a=1&b={}"])).is_none());
        let spaces = format!("{}{{\"a\": 1}}", " \r\n\t".repeat(10_000));
        let pieces: Vec<&[u8]> = spaces.as_bytes().chunks(1000).collect();
        assert!(is_json(&mem(&pieces)).is_some());
        assert!(is_json(&mem(&[b"   x{"])).is_none());
    }

    #[test]
    fn a_long_unescaped_base64_string_is_scanned_decoded_and_an_escaped_one_also_as_text() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&data);
        assert!(b64.contains('/'));
        let plain = format!("{{\"data\": \"{b64}\"}}");
        let got = run(&[plain.as_bytes()]);
        assert_eq!((got.decoded.len(), got.alone.len()), (1, 0));
        let escaped = format!("{{\"data\": \"{}\"}}", b64.replace('/', "\\/"));
        let got = run(&[escaped.as_bytes()]);
        assert_eq!((got.decoded.len(), got.alone.len()), (1, 1));
        let trailing = format!("{{\"data\": \"{b64}<html>\"}}");
        let got = run(&[trailing.as_bytes()]);
        assert_eq!((got.decoded.len(), got.alone.len()), (1, 1));
    }

    #[test]
    fn strings_past_the_count_go_into_an_archive_not_a_refusal() {
        let big = format!("{}\n{EICAR}", "line\n".repeat(JOIN_MAX));
        let one = serde_json_escape(&big);
        let json = format!("[{one}, {one}, {one}, {one}]");
        let got = strings(&mem(&[json.as_bytes()]), &std::env::temp_dir(), 2).unwrap();
        assert_eq!(got.alone.len() + got.decoded.len(), 2);
        assert_eq!(got.bundled.len(), 1);
        let tar = bytes_of(&got.bundled[0]);
        // Two members, each the string unescaped from its first byte at a block boundary.
        let at: Vec<usize> = tar
            .windows(big.len())
            .enumerate()
            .filter(|(_, w)| *w == big.as_bytes())
            .map(|(i, _)| i)
            .collect();
        assert_eq!(at.len(), 2);
        assert!(at.iter().all(|i| i % 512 == 0));
    }
}

#[cfg(test)]
mod php_reading_tests {
    use super::*;
    use crate::body::testing::*;
    use base64::Engine as _;

    #[test]
    fn a_padding_early_in_a_string_gives_php_reading() {
        let data = vec![0x1fu8; 90];
        let s = base64::engine::general_purpose::STANDARD.encode(&data);
        let v = format!("{{\"data\": \"{}={}\"}}", &s[..3], &s[3..]);
        let got = strings(&mem(&[v.as_bytes()]), &std::env::temp_dir(), 100).unwrap();
        assert_eq!(got.decoded.len(), 1, "{:?}", got.alone.len());
        assert_eq!(bytes_of(&got.decoded[0].1), data);
    }
}
