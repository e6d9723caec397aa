//! JSON bodies that carry files as base64 strings (`{"name":"a.exe","content":"TVqQAAMA..."}`,
//! the usual way APIs take uploads): where the long string values are, streamed over the body
//! with a small state machine (only the current key is held, bounded), so that each can be
//! decoded and scanned as a file. Malformed JSON is no error here: the body is scanned as
//! sent anyway.

use std::io;

use crate::body::{RequestBody, FILE_CHUNK};

/// A string value at least this long (encoded) is a candidate: 64 bytes decoded (the EICAR
/// test file is 68).
pub const MIN_BASE64: u64 = 88;
/// Most candidates taken from one body.
pub const MAX_VALUES: usize = 16;
/// Longest key kept for naming.
const MAX_KEY: usize = 256;

/// A string value: the key it belongs to (if any), and where its characters lie in the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StringValue {
    pub key: String,
    pub offset: u64,
    pub len: u64,
}

/// The string values of at least [`MIN_BASE64`] bytes made only of base64 characters (and
/// `\/`, which JSON encoders write for `/`), at most [`MAX_VALUES`].
pub fn base64_strings(body: &RequestBody) -> io::Result<Vec<StringValue>> {
    let mut out = Vec::new();
    let mut reader = body.reader(FILE_CHUNK);
    let mut pos = 0u64;
    let mut in_string = false;
    let mut escaped = false;
    let mut start = 0u64;
    let mut plausible = true;
    let mut text: Vec<u8> = Vec::new();
    let mut last_key = String::new();
    // The last string ended here and may be a key (a ':' follows).
    let mut after_string: Option<String> = None;
    while let Some(chunk) = reader.next_chunk() {
        let chunk = chunk?;
        for (i, &b) in chunk.iter().enumerate() {
            let at = pos + i as u64;
            if in_string {
                if escaped {
                    escaped = false;
                    plausible &= b == b'/';
                    continue;
                }
                match b {
                    b'\\' => escaped = true,
                    b'"' => {
                        in_string = false;
                        let len = at - start;
                        if plausible && len >= MIN_BASE64 && out.len() < MAX_VALUES {
                            out.push(StringValue {
                                key: last_key.clone(),
                                offset: start,
                                len,
                            });
                        }
                        after_string = Some(String::from_utf8_lossy(&text).into_owned());
                    }
                    _ => {
                        plausible &= b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=');
                        if text.len() < MAX_KEY {
                            text.push(b);
                        }
                    }
                }
                continue;
            }
            match b {
                b'"' => {
                    in_string = true;
                    start = at + 1;
                    plausible = true;
                    text.clear();
                }
                b':' => {
                    if let Some(k) = after_string.take() {
                        last_key = k;
                    }
                }
                b' ' | b'\t' | b'\r' | b'\n' => {}
                _ => after_string = None,
            }
        }
        pos += chunk.len() as u64;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::testing::*;
    #[test]
    fn long_base64_strings_are_found_with_their_keys() {
        let b64 = "QUJD".repeat(400);
        let json = format!(
            "{{\"name\": \"a.exe\", \"files\": [{{\"content\" : \"{b64}\"}}], \"note\": \"{}\", \"esc\": \"{}\\/x\"}}",
            "not base64! ".repeat(200),
            "QUJD".repeat(400)
        );
        for cut in [1usize, 7, 1000, 100_000] {
            let pieces: Vec<&[u8]> = json.as_bytes().chunks(cut).collect();
            let got = base64_strings(&mem(&pieces)).unwrap();
            assert_eq!(got.len(), 2, "cut {cut}");
            assert_eq!(got[0].key, "content");
            assert_eq!(got[0].len, b64.len() as u64);
            let at = got[0].offset as usize;
            assert_eq!(&json.as_bytes()[at..at + b64.len()], b64.as_bytes());
            assert_eq!(got[1].key, "esc");
        }
    }
}
