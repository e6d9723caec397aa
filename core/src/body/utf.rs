//! Which Unicode encoding a text is in, as Python's `json.detect_encoding` tells it: a byte
//! order mark, or the pattern of zero bytes of UTF-16 and UTF-32.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    Utf8,
    Utf16Le,
    Utf16Be,
    Utf32Le,
    Utf32Be,
}

/// The encoding of a JSON text and the length of its byte order mark (Python's
/// `json.detect_encoding`).
pub(crate) fn detect(head: &[u8]) -> (Encoding, usize) {
    match head {
        [0, 0, 0xfe, 0xff, ..] => (Encoding::Utf32Be, 4),
        [0xff, 0xfe, 0, 0, ..] => (Encoding::Utf32Le, 4),
        [0xfe, 0xff, ..] => (Encoding::Utf16Be, 2),
        [0xff, 0xfe, ..] => (Encoding::Utf16Le, 2),
        [0xef, 0xbb, 0xbf, ..] => (Encoding::Utf8, 3),
        [0, b, _, _, ..] if *b != 0 => (Encoding::Utf16Be, 0),
        [0, 0, _, _, ..] => (Encoding::Utf32Be, 0),
        [_, 0, c, d, ..] if *c != 0 || *d != 0 => (Encoding::Utf16Le, 0),
        [_, 0, 0, 0, ..] => (Encoding::Utf32Le, 0),
        _ => (Encoding::Utf8, 0),
    }
}
