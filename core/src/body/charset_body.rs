//! A body or value in a charset, decoded as the backends that read it decode it
//! ([`crate::body::charset`]), in pieces so that a large one never sits in memory: each piece
//! ends after a line feed, which no decoded charset holds inside a character but UTF-16 and
//! UTF-32, whose pieces end at a whole code unit (and carry the body's byte order mark, for
//! the labels that read one).

use std::borrow::Cow;
use std::path::Path;

use crate::body::charset::{self, Unknown};
use crate::body::sink::BodySink;
use crate::body::{RequestBody, FILE_CHUNK};
use crate::scan::{ScanError, SPILL_THRESHOLD};

/// Why a body's text cannot be had.
#[derive(Debug)]
pub enum CharsetError {
    Unknown(Unknown),
    Scan(ScanError),
}

impl From<ScanError> for CharsetError {
    fn from(e: ScanError) -> Self {
        CharsetError::Scan(e)
    }
}

/// Bytes decoded at once, at most (a piece is cut at the last line feed within it).
const PIECE: usize = 1024 * 1024;

/// How wide a code unit of the charset is where pieces must be cut at whole units.
fn unit(label: &str) -> Option<usize> {
    let l: String = label
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_lowercase();
    if l.contains("utf32") || l.contains("ucs4") {
        Some(4)
    } else if l.contains("utf16") || l.contains("ucs2") || l == "unicode" {
        Some(2)
    } else {
        None
    }
}

/// Where the piece `data` (not the body's end) is cut: after its last line feed, or at a whole
/// code unit; the whole piece when it has no line feed (a line of a megabyte: its characters
/// may be cut, which only garbles the one character at the cut).
fn cut(data: &[u8], unit: Option<usize>) -> usize {
    match unit {
        Some(w) => data.len() / w * w,
        None => memchr::memrchr(b'\n', data).map_or(data.len(), |i| i + 1),
    }
}

/// The byte order mark the body starts with, for UTF-16 and UTF-32 labels.
fn bom(head: &[u8], unit: Option<usize>) -> &'static [u8] {
    match (unit, head) {
        (Some(4), [0xff, 0xfe, 0, 0, ..]) => &[0xff, 0xfe, 0, 0],
        (Some(4), [0, 0, 0xfe, 0xff, ..]) => &[0, 0, 0xfe, 0xff],
        (Some(2), [0xff, 0xfe, ..]) => &[0xff, 0xfe],
        (Some(2), [0xfe, 0xff, ..]) => &[0xfe, 0xff],
        _ => &[],
    }
}

/// Every distinct reading of `body` in charset `label` that differs from its bytes (none when
/// decoding changes nothing), each as a body of its own: Python's, Node's and busboy's for a
/// value of up to 1 MiB, Python's for a larger text (decoded in pieces).
pub fn readings(
    label: &str,
    body: &RequestBody,
    dir: &Path,
) -> Result<Vec<RequestBody>, CharsetError> {
    let label_bytes = label.as_bytes();
    charset::to_utf8(label_bytes, b"").map_err(CharsetError::Unknown)?;
    if body.len() <= PIECE as u64 {
        let bytes = body.to_vec().map_err(ScanError::Body)?;
        return small(label_bytes, &bytes);
    }
    let unit = unit(label);
    let mut reader = body.reader(FILE_CHUNK);
    let mut sink = BodySink::new(SPILL_THRESHOLD, dir);
    let mut changed = false;
    let mut pending: Vec<u8> = Vec::new();
    let mut mark: Option<&'static [u8]> = None;
    loop {
        let next = reader.next_chunk();
        let end = next.is_none();
        if let Some(c) = next {
            pending.extend_from_slice(&c.map_err(ScanError::Body)?);
            if pending.len() < PIECE {
                continue;
            }
        }
        let at = if end {
            pending.len()
        } else {
            cut(&pending, unit)
        };
        let piece: Vec<u8> = pending.drain(..at).collect();
        let mark = *mark.get_or_insert_with(|| bom(&piece, unit));
        let input: Cow<[u8]> = if mark.is_empty() || piece.starts_with(mark) {
            Cow::Borrowed(&piece)
        } else {
            Cow::Owned([mark, &piece].concat())
        };
        // Python's reading: where Node's differs, it is in characters no signature is
        // written in (Latin-1 against windows-1252 in 0x80-0x9f).
        let text = charset::to_utf8(label_bytes, &input).map_err(CharsetError::Unknown)?;
        changed |= text.as_ref() != piece.as_slice();
        sink.push(&text)?;
        if end {
            break;
        }
    }
    if !changed {
        return Ok(Vec::new());
    }
    Ok(vec![sink.finish()?.into()])
}

fn small(label: &[u8], bytes: &[u8]) -> Result<Vec<RequestBody>, CharsetError> {
    if !charset::changes(label, bytes).map_err(CharsetError::Unknown)? {
        return Ok(Vec::new());
    }
    Ok(charset::readings(label, bytes)
        .map_err(CharsetError::Unknown)?
        .into_iter()
        .filter(|t| t.as_ref() != bytes)
        .map(|t| RequestBody::memory(&t))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::testing::{bytes_of, mem};

    fn read(label: &str, data: &[u8]) -> Vec<Vec<u8>> {
        // Cut into pieces of every size around the piece length.
        readings(label, &mem(&[data]), &std::env::temp_dir())
            .unwrap()
            .iter()
            .map(bytes_of)
            .collect()
    }

    #[test]
    fn a_large_text_is_decoded_in_pieces_as_it_would_be_whole() {
        let line = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H* é\n";
        let text: String = line.repeat(16_000);
        for label in ["utf-16", "utf-16be", "utf-32", "cp500", "utf-7", "latin-1"] {
            let encoded = python_like(label, &text);
            let got = read(label, &encoded);
            assert!(!got.is_empty(), "{label}");
            assert_eq!(got[0], text.as_bytes(), "{label}");
        }
    }

    /// The encodings of `text` the test needs, written here.
    fn python_like(label: &str, text: &str) -> Vec<u8> {
        match label {
            "utf-16" => {
                let mut v = vec![0xff, 0xfe];
                v.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
                v
            }
            "utf-16be" => text.encode_utf16().flat_map(u16::to_be_bytes).collect(),
            "utf-32" => {
                let mut v = vec![0xff, 0xfe, 0, 0];
                v.extend(text.chars().flat_map(|c| (c as u32).to_le_bytes()));
                v
            }
            "latin-1" => text.chars().map(|c| c as u32 as u8).collect(),
            "cp500" => {
                let table: std::collections::HashMap<char, u8> = charset_table_cp500()
                    .into_iter()
                    .enumerate()
                    .map(|(i, c)| (c, i as u8))
                    .collect();
                text.chars()
                    .map(|c| table.get(&c).copied().unwrap_or(0x6f))
                    .collect()
            }
            "utf-7" => text
                .chars()
                .flat_map(|c| match c {
                    '+' => "+-".bytes().collect::<Vec<u8>>(),
                    'é' => "+AOk-".bytes().collect(),
                    c => vec![c as u8],
                })
                .collect(),
            _ => unreachable!(),
        }
    }

    fn charset_table_cp500() -> Vec<char> {
        let all: Vec<u8> = (0..=255).collect();
        let text = charset::to_utf8(b"cp500", &all).unwrap();
        String::from_utf8(text.into_owned())
            .unwrap()
            .chars()
            .collect()
    }

    #[test]
    fn ascii_in_an_ascii_compatible_charset_has_no_reading() {
        let text = "plain ascii line\n".repeat(100_000);
        assert!(read("latin-1", text.as_bytes()).is_empty());
        assert!(read("windows-1252", b"abc").is_empty());
    }
}
