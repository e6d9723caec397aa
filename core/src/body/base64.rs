//! Base64 as the backends' decoders read it: both alphabets (`+/` and `-_`, even mixed), white
//! space skipped anywhere, padding optional, a `data:...;base64,` prefix (what a browser's
//! `FileReader.readAsDataURL` produces) stripped. Where the decoders part ways is a `=`
//! inside the data: Python's `b64decode` skips one that starts a quantum and stops after one
//! that completes a quantum (Node's `Buffer.from` stops at the first, a prefix of that); PHP's
//! `base64_decode` skips every `=` and goes on. Both readings are handed over when they
//! differ ([`sniff`]).
//!
//! A value is taken for base64 when, after the prefix, it holds at least [`MIN_CHARS`] base64
//! characters and nothing but base64 characters and white space before its padding (or its
//! end). A part declared `Content-Transfer-Encoding: base64` is decoded whatever it holds, other
//! characters discarded, as Django's decoder does ([`Reading::Discard`]). The decoder is a
//! byte-at-a-time state machine: its answer does not depend on how the value is cut into
//! pieces.

use crate::body::sink::BodySink;
use crate::body::RequestBody;
use crate::scan::{ScanError, SPILL_THRESHOLD};
use std::path::Path;

/// Fewest base64 characters for a value to be decoded: 64 bytes decoded (the EICAR test file
/// is 68). Shorter values are scanned as the text they are.
pub const MIN_CHARS: u64 = 86;
/// Longest `data:` URL prefix (`data:application/octet-stream;name=...;base64,`).
const MAX_PREFIX: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Leading white space; the value may start with `data:`.
    Start,
    /// Inside a `data:` prefix: this many bytes of it seen.
    Prefix(usize),
    /// Base64 characters.
    Data,
    /// The padding was seen: the rest is ignored.
    Done,
    /// Not base64.
    No,
}

/// Which decoder's reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// Python's: a `=` that completes a quantum ends the data, one that starts a quantum is
    /// skipped; anything but base64 and white space makes the value no base64.
    Python,
    /// PHP's: every `=` skipped.
    Php,
    /// A declared base64 part: anything but base64 skipped, the rest as Python's.
    Discard,
}

/// Feeds a value through, writing what it decodes to into a sink: at the end, `finish` tells
/// whether it was base64.
pub struct Base64Sniffer<'a> {
    reading: Reading,
    /// Base64 characters came after the padding that ended Python's reading: PHP's differs.
    more_after_end: bool,
    /// Something other than padding and white space came after that padding.
    other_after_end: bool,
    state: State,
    prefix: Vec<u8>,
    quad: [u8; 4],
    quad_len: usize,
    chars: u64,
    out: Vec<u8>,
    sink: BodySink<'a>,
}

/// The value of each base64 character of either alphabet; 0x80 for every other byte.
const SEXTETS: [u8; 256] = {
    let mut t = [0x80u8; 256];
    let mut i = 0;
    while i < 26 {
        t[b'A' as usize + i] = i as u8;
        t[b'a' as usize + i] = 26 + i as u8;
        i += 1;
    }
    let mut d = 0;
    while d < 10 {
        t[b'0' as usize + d] = 52 + d as u8;
        d += 1;
    }
    t[b'+' as usize] = 62;
    t[b'-' as usize] = 62;
    t[b'/' as usize] = 63;
    t[b'_' as usize] = 63;
    t
};

fn sextet(b: u8) -> Option<u8> {
    let v = SEXTETS[usize::from(b)];
    (v & 0x80 == 0).then_some(v)
}

impl<'a> Base64Sniffer<'a> {
    pub fn new(dir: &'a Path) -> Self {
        Self::reading(dir, Reading::Python)
    }

    pub fn reading(dir: &'a Path, reading: Reading) -> Self {
        Base64Sniffer {
            reading,
            more_after_end: false,
            other_after_end: false,
            state: State::Start,
            prefix: Vec::new(),
            quad: [0; 4],
            quad_len: 0,
            chars: 0,
            out: Vec::new(),
            sink: BodySink::new(SPILL_THRESHOLD, dir),
        }
    }

    /// Whether the value may still turn out to be base64.
    pub fn alive(&self) -> bool {
        self.state != State::No
    }

    /// Whether PHP's reading of the value differs from this one (base64 after the padding
    /// that ended it).
    pub fn more_after_end(&self) -> bool {
        self.more_after_end
    }

    /// Whether the value, so far, is base64 from its first character to its last (padding
    /// and white space aside): then it has no format of its own, its decoding is all there is.
    pub fn whole(&self) -> bool {
        matches!(self.state, State::Data | State::Done)
            && !self.more_after_end
            && !self.other_after_end
    }

    pub fn feed(&mut self, data: &[u8]) -> Result<(), ScanError> {
        let mut i = 0;
        while i < data.len() {
            if self.state == State::Data && self.quad_len == 0 {
                // Whole quanta of four base64 characters at once; anything else byte by byte.
                while let Some(q) = data.get(i..i + 4) {
                    let [a, b, c, d] = [q[0], q[1], q[2], q[3]].map(|x| SEXTETS[usize::from(x)]);
                    if (a | b | c | d) & 0x80 != 0 {
                        break;
                    }
                    self.out
                        .extend_from_slice(&[a << 2 | b >> 4, b << 4 | c >> 2, c << 6 | d]);
                    self.chars += 4;
                    i += 4;
                }
                if i >= data.len() {
                    break;
                }
            }
            let b = data[i];
            i += 1;
            if self.state == State::Done {
                if sextet(b).is_some() {
                    self.more_after_end = true;
                    break;
                }
                self.other_after_end |= b != b'=' && !b.is_ascii_whitespace();
                continue;
            }
            self.byte(b);
            if self.state == State::No {
                break;
            }
        }
        if self.out.len() >= 64 * 1024 {
            self.sink.push(&self.out)?;
            self.out.clear();
        }
        Ok(())
    }

    fn byte(&mut self, b: u8) {
        match self.state {
            State::Start if b.is_ascii_whitespace() => {}
            State::Start if b == b'd' || b == b'D' => {
                self.prefix.push(b);
                self.state = State::Prefix(1);
            }
            State::Start => {
                self.state = State::Data;
                self.data(b);
            }
            State::Prefix(n) => {
                self.prefix.push(b);
                if n < 5 {
                    let want = b"data:"[..=n].to_vec();
                    if !self.prefix.eq_ignore_ascii_case(&want) {
                        // Not a data URL: what was taken for its start is base64.
                        let taken = std::mem::take(&mut self.prefix);
                        self.state = State::Data;
                        for c in taken {
                            self.data(c);
                            if self.state != State::Data {
                                break;
                            }
                        }
                        return;
                    }
                    self.state = State::Prefix(n + 1);
                } else if b == b',' {
                    let p = self.prefix.to_ascii_lowercase();
                    self.state = if p.ends_with(b";base64,") {
                        State::Data
                    } else {
                        State::No
                    };
                } else if n >= MAX_PREFIX || b.is_ascii_control() {
                    self.state = State::No;
                } else {
                    self.state = State::Prefix(n + 1);
                }
            }
            State::Data => self.data(b),
            State::Done | State::No => {}
        }
    }

    fn data(&mut self, b: u8) {
        if b.is_ascii_whitespace() {
            return;
        }
        if b == b'=' {
            match (self.reading, self.quad_len) {
                (Reading::Php, _) | (_, 0) => {}
                // Padding completes a quantum of two or three characters.
                (_, 2 | 3) => {
                    self.flush_quad();
                    self.state = State::Done;
                }
                (Reading::Discard, _) => {}
                _ => self.state = State::No,
            }
            return;
        }
        let Some(v) = sextet(b) else {
            if self.reading != Reading::Discard {
                self.state = State::No;
            }
            return;
        };
        self.chars += 1;
        self.quad[self.quad_len] = v;
        self.quad_len += 1;
        if self.quad_len == 4 {
            self.flush_quad();
        }
    }

    fn flush_quad(&mut self) {
        let q = self.quad;
        match self.quad_len {
            4 => self.out.extend_from_slice(&[
                q[0] << 2 | q[1] >> 4,
                q[1] << 4 | q[2] >> 2,
                q[2] << 6 | q[3],
            ]),
            3 => self
                .out
                .extend_from_slice(&[q[0] << 2 | q[1] >> 4, q[1] << 4 | q[2] >> 2]),
            2 => self.out.push(q[0] << 2 | q[1] >> 4),
            _ => {}
        }
        self.quad_len = 0;
    }

    /// The decoded value, or `None` when the value was no base64 (or too short to count).
    pub fn finish(mut self) -> Result<Option<RequestBody>, ScanError> {
        match self.state {
            State::Data => {
                if self.quad_len == 1 {
                    return Ok(None);
                }
                self.flush_quad();
            }
            State::Done => {}
            _ => return Ok(None),
        }
        if self.chars < MIN_CHARS && self.reading != Reading::Discard {
            return Ok(None);
        }
        self.sink.push(&self.out)?;
        Ok(Some(self.sink.finish()?.into()))
    }
}

/// Every reading of a body as base64 (none when it is no base64; two when PHP's and Python's
/// differ), see the module docs.
pub fn sniff(body: &RequestBody, dir: &Path) -> Result<Vec<RequestBody>, ScanError> {
    readings(body, dir, Reading::Python)
}

/// The `first` reading, and PHP's where it differs.
fn readings(body: &RequestBody, dir: &Path, first: Reading) -> Result<Vec<RequestBody>, ScanError> {
    let (decoded, differs) = decode_as(body, dir, first)?;
    let mut out: Vec<RequestBody> = decoded.into_iter().collect();
    if differs {
        out.extend(php_reading(body, dir)?);
    }
    Ok(out)
}

/// Every reading of a value in memory as base64 (as [`sniff`]).
pub fn sniff_bytes(v: &[u8], dir: &Path) -> Result<Vec<RequestBody>, ScanError> {
    if (v.len() as u64) < MIN_CHARS {
        return Ok(Vec::new());
    }
    let mut s = Base64Sniffer::new(dir);
    s.feed(v)?;
    if !s.alive() {
        return Ok(Vec::new());
    }
    let differs = s.more_after_end();
    let mut out: Vec<RequestBody> = s.finish()?.into_iter().collect();
    if differs {
        let mut php = Base64Sniffer::reading(dir, Reading::Php);
        php.feed(v)?;
        out.extend(php.finish()?);
    }
    Ok(out)
}

/// PHP's reading alone (for a value whose Python reading was taken already).
pub fn php_reading(body: &RequestBody, dir: &Path) -> Result<Option<RequestBody>, ScanError> {
    Ok(decode_as(body, dir, Reading::Php)?.0)
}

/// A part declared in base64, decoded as Django decodes it (and as PHP, when that differs).
pub fn declared(body: &RequestBody, dir: &Path) -> Result<Vec<RequestBody>, ScanError> {
    readings(body, dir, Reading::Discard)
}

/// One reading, and whether PHP's differs from it.
fn decode_as(
    body: &RequestBody,
    dir: &Path,
    reading: Reading,
) -> Result<(Option<RequestBody>, bool), ScanError> {
    let mut s = Base64Sniffer::reading(dir, reading);
    // A small first read: most values are no base64, and that shows in the first bytes.
    let mut reader = body.reader(crate::body::FILE_CHUNK);
    let mut first = true;
    loop {
        let next = if first {
            reader.next_chunk_max(4096)
        } else {
            reader.next_chunk()
        };
        first = false;
        let Some(chunk) = next else { break };
        s.feed(&chunk.map_err(ScanError::Body)?)?;
        if !s.alive() {
            return Ok((None, false));
        }
        if s.more_after_end() {
            break;
        }
    }
    let differs = s.more_after_end();
    Ok((s.finish()?, differs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::testing::*;
    use base64::Engine as _;
    use proptest::prelude::*;

    fn run(pieces: &[&[u8]]) -> Option<Vec<u8>> {
        sniff(&mem(pieces), &std::env::temp_dir())
            .unwrap()
            .first()
            .map(bytes_of)
    }

    fn readings(v: &[u8]) -> Vec<Vec<u8>> {
        sniff(&mem(&[v]), &std::env::temp_dir())
            .unwrap()
            .iter()
            .map(bytes_of)
            .collect()
    }

    #[test]
    fn a_padding_inside_the_data_is_read_as_python_and_as_php() {
        let a = base64::engine::general_purpose::STANDARD.encode(&DATA[..66]);
        let b = base64::engine::general_purpose::STANDARD.encode(b"second half!");
        // `=` starting a quantum: Python and PHP both skip it.
        let v = format!("{}={b}", a.trim_end_matches('='));
        assert_eq!(a.len() % 4, 0);
        let mut want = DATA[..66].to_vec();
        want.extend_from_slice(b"second half!");
        assert_eq!(readings(v.as_bytes()), vec![want]);
        // `=` completing a quantum: Python stops there, PHP goes on.
        let short = base64::engine::general_purpose::STANDARD.encode(&DATA[..65]);
        assert!(short.ends_with('='));
        let v = format!("{short}{b}");
        let got = readings(v.as_bytes());
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], DATA[..65]);
        assert_ne!(got[1], got[0]);
        // A `=` early in the data: Python's reading is too short to count, PHP's is the file.
        let whole = base64::engine::general_purpose::STANDARD.encode(DATA);
        let v = format!("{}={}", &whole[..3], &whole[3..]);
        let got = readings(v.as_bytes());
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].len(), DATA.len());
    }

    #[test]
    fn a_declared_base64_part_is_decoded_whatever_it_holds() {
        // "short" is c2hvcnQ=, here with other characters in it and after it.
        let v = "c2!hv$cn Q=!!";
        let got: Vec<Vec<u8>> = declared(&mem(&[v.as_bytes()]), &std::env::temp_dir())
            .unwrap()
            .iter()
            .map(bytes_of)
            .collect();
        assert_eq!(got, vec![b"short".to_vec()]);
    }

    const DATA: &[u8] =
        b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*\xff\xfe\x00";

    #[test]
    fn every_spelling_the_backends_accept_decodes() {
        let std = base64::engine::general_purpose::STANDARD.encode(DATA);
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(DATA);
        let wrapped: String = std
            .as_bytes()
            .chunks(10)
            .map(|c| format!("{}\r\n ", String::from_utf8_lossy(c)))
            .collect();
        let data_url = format!("data:application/x-gzip;name=a.gz;base64,{std}");
        let upper = format!("DATA:text/plain;BASE64,{url}");
        let trailing = format!("{std}  \n");
        let after_pad = format!("{std}!!junk");
        for v in [
            &std, &url, &wrapped, &data_url, &upper, &trailing, &after_pad,
        ] {
            assert_eq!(run(&[v.as_bytes()]).as_deref(), Some(DATA), "{v}");
        }
    }

    #[test]
    fn what_is_no_base64_is_not_decoded() {
        let std = base64::engine::general_purpose::STANDARD.encode(DATA);
        for v in [
            format!(
                "{}!",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(DATA)
            ),
            format!("!{std}"),
            "QUJD".repeat(10),
            format!("data:text/plain,{std}"),
            "A".repeat(89),
        ] {
            assert_eq!(run(&[v.as_bytes()]), None, "{v}");
        }
        // "dat..." that is no data URL is base64 of its own.
        let d = format!("dat{}", "A".repeat(89));
        assert!(run(&[d.as_bytes()]).is_some());
    }

    proptest! {
        #[test]
        fn the_answer_does_not_depend_on_the_cuts(
            data in proptest::collection::vec(any::<u8>(), 60..300),
            cuts in proptest::collection::vec(1usize..40, 1..20),
            junk in proptest::collection::vec(any::<u8>(), 0..4),
            url in any::<bool>(),
        ) {
            let mut v = if url {
                base64::engine::general_purpose::URL_SAFE.encode(&data)
            } else {
                format!("data:x;base64,{}", base64::engine::general_purpose::STANDARD_NO_PAD.encode(&data))
            }.into_bytes();
            v.extend_from_slice(&junk);
            let whole = run(&[&v]);
            let mut pieces = Vec::new();
            let mut at = 0;
            for c in cuts.iter().cycle() {
                if at >= v.len() { break; }
                let end = (at + c).min(v.len());
                pieces.push(&v[at..end]);
                at = end;
            }
            prop_assert_eq!(run(&pieces), whole);
        }
    }
}
