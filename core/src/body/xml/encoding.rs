//! How the bytes of a document stand for characters: UTF-8, UTF-16 or UTF-32 told by a byte
//! order mark or by the zero bytes of the declaration (XML 1.0, appendix F), a charset that
//! the declaration names (the document is then converted whole), or EBCDIC. UTF-16 and
//! UTF-32 are decoded as the document streams.

use std::borrow::Cow;

use bytes::Bytes;
use memchr::memmem;

use super::{push_char, short, trim_start, HEAD, MAX_VALUE};
use crate::body::charset;
use crate::body::{BodyPart, RequestBody, FILE_CHUNK};
use crate::scan::ScanError;

/// How the bytes of a document stand for characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Form {
    /// UTF-8, or a charset that [`charset::to_utf8`] turns into it.
    Utf8,
    Utf16Le,
    Utf16Be,
    Utf32Le,
    Utf32Be,
    /// `<?xm` in EBCDIC: the declaration names the code page.
    Ebcdic,
}

impl Form {
    /// Bytes per code unit.
    fn width(self) -> usize {
        match self {
            Form::Utf8 | Form::Ebcdic => 1,
            Form::Utf16Le | Form::Utf16Be => 2,
            Form::Utf32Le | Form::Utf32Be => 4,
        }
    }

    /// The code units of `bytes` (a byte of UTF-8 is a unit: enough to tell ASCII apart).
    pub(super) fn units(self, bytes: &[u8]) -> impl Iterator<Item = u32> + '_ {
        bytes.chunks_exact(self.width()).map(move |u| match self {
            Form::Utf8 | Form::Ebcdic => u32::from(u[0]),
            Form::Utf16Le => u32::from(u16::from_le_bytes([u[0], u[1]])),
            Form::Utf16Be => u32::from(u16::from_be_bytes([u[0], u[1]])),
            Form::Utf32Le => u32::from_le_bytes([u[0], u[1], u[2], u[3]]),
            Form::Utf32Be => u32::from_be_bytes([u[0], u[1], u[2], u[3]]),
        })
    }
}

/// The form of a document and the length of its byte order mark, as XML 1.0's appendix F
/// tells them (and the JDK's parser does): a byte order mark, else the first characters
/// `<?` of the declaration (or `<` for UTF-32) with their zero bytes.
pub(super) fn detect(head: &[u8]) -> (Form, usize) {
    match head {
        [0, 0, 0xfe, 0xff, ..] => (Form::Utf32Be, 4),
        [0xff, 0xfe, 0, 0, ..] => (Form::Utf32Le, 4),
        [0xfe, 0xff, ..] => (Form::Utf16Be, 2),
        [0xff, 0xfe, ..] => (Form::Utf16Le, 2),
        [0xef, 0xbb, 0xbf, ..] => (Form::Utf8, 3),
        [0, 0, 0, b'<', ..] => (Form::Utf32Be, 0),
        [b'<', 0, 0, 0, ..] => (Form::Utf32Le, 0),
        [0, b'<', 0, b'?', ..] => (Form::Utf16Be, 0),
        [b'<', 0, b'?', 0, ..] => (Form::Utf16Le, 0),
        [0x4c, 0x6f, 0xa7, 0x94, ..] => (Form::Ebcdic, 0),
        _ => (Form::Utf8, 0),
    }
}

/// The document to tokenize: the body past its byte order mark, in the form to decode as it
/// streams, or already converted to UTF-8 from the charset its declaration names.
pub(super) struct Source {
    pub(super) body: RequestBody,
    pub(super) form: Form,
    pub(super) converted: bool,
}

pub(super) fn source(body: &RequestBody) -> Result<Source, ScanError> {
    let head = head(body)?;
    let (form, bom) = detect(&head);
    let rest = body.slice(bom as u64, body.len());
    match form {
        Form::Ebcdic => {
            let ascii: Vec<u8> = head.iter().map(|&b| ebcdic_ascii(b)).collect();
            match declared_encoding(&ascii) {
                Some(label) => convert(&rest, label),
                None => Err(ScanError::ambiguous(
                    "XML in EBCDIC without an encoding declaration",
                )),
            }
        }
        Form::Utf8 => match declared_encoding(&head[bom..]) {
            Some(label) if needs_conversion(label) && bom > 0 => {
                Err(ScanError::ambiguous(format!(
                    "XML with a UTF-8 byte order mark in charset \"{}\"",
                    short(label)
                )))
            }
            Some(label) if needs_conversion(label) => convert(&rest, label),
            _ => Ok(streamed(rest, form)),
        },
        _ => Ok(streamed(rest, form)),
    }
}

/// The document read as it streams, decoded from `form`.
fn streamed(body: RequestBody, form: Form) -> Source {
    Source {
        body,
        form,
        converted: false,
    }
}

/// The first [`HEAD`] bytes of a body (fewer when it is shorter).
fn head(body: &RequestBody) -> Result<Vec<u8>, ScanError> {
    let mut head = Vec::with_capacity(HEAD);
    let mut r = body.reader(FILE_CHUNK);
    while head.len() < HEAD {
        match r.next_chunk_max(HEAD - head.len()) {
            Some(chunk) => head.extend_from_slice(&chunk.map_err(ScanError::Body)?),
            None => break,
        }
    }
    Ok(head)
}

/// The value of `encoding="..."` in the XML declaration that begins `head`, if any.
fn declared_encoding(head: &[u8]) -> Option<&[u8]> {
    let rest = head.strip_prefix(b"<?xml")?;
    if !rest.first().is_some_and(|&b| super::is_space(b)) {
        return None;
    }
    let decl = &rest[..memmem::find(rest, b"?>")?];
    let at = memmem::find(decl, b"encoding")?;
    let rest = trim_start(&decl[at + b"encoding".len()..]).strip_prefix(b"=")?;
    let (&quote, value) = trim_start(rest).split_first()?;
    if quote != b'"' && quote != b'\'' {
        return None;
    }
    let end = value.iter().position(|&b| b == quote)?;
    Some(&value[..end])
}

/// Whether a document whose bytes read as ASCII, in the charset `label`, must be converted
/// to be read as backends read it. UTF-8 and ASCII need not; a UTF-16 or UTF-32 label on a
/// document that begins in ASCII is wrong (backends fail on it), so it is read as UTF-8.
pub(super) fn needs_conversion(label: &[u8]) -> bool {
    let label = String::from_utf8_lossy(label).trim().to_ascii_lowercase();
    let same = ["utf-8", "utf8", "us-ascii", "ascii"];
    let wide = [
        "utf-16",
        "utf-32",
        "ucs-2",
        "ucs-4",
        "iso-10646-ucs-",
        "unicode",
    ];
    !same.contains(&label.as_str()) && !wide.iter().any(|w| label.starts_with(w))
}

/// The document converted whole to UTF-8 from the charset `label` (a multi-byte charset
/// cannot be converted chunk by chunk without knowing it): at most [`MAX_VALUE`] bytes.
fn convert(body: &RequestBody, label: &[u8]) -> Result<Source, ScanError> {
    if body.len() > MAX_VALUE {
        return Err(ScanError::over_limit(format!(
            "XML in charset \"{}\" over 64 MiB",
            short(label)
        )));
    }
    let bytes = body.to_vec().map_err(ScanError::Body)?;
    let utf8 = charset::to_utf8(label, &bytes).map_err(|charset::Unknown(name)| {
        ScanError::ambiguous(format!(
            "XML in charset \"{}\" cannot be read as backends read it",
            short(name.as_bytes())
        ))
    })?;
    let mut body = RequestBody::new();
    body.push(BodyPart::Memory(match utf8 {
        Cow::Borrowed(b) => Bytes::copy_from_slice(b),
        Cow::Owned(v) => Bytes::from(v),
    }));
    Ok(Source {
        body,
        form: Form::Utf8,
        converted: true,
    })
}

/// The ASCII character an EBCDIC byte stands for, for the characters an XML declaration
/// uses (they are the same in every EBCDIC code page); 0 for any other.
pub(super) fn ebcdic_ascii(b: u8) -> u8 {
    match b {
        0x40 => b' ',
        0x05 => b'\t',
        0x15 | 0x25 => b'\n',
        0x0d => b'\r',
        0x4b => b'.',
        0x4c => b'<',
        0x60 => b'-',
        0x6d => b'_',
        0x6e => b'>',
        0x6f => b'?',
        0x7a => b':',
        0x7d => b'\'',
        0x7e => b'=',
        0x7f => b'"',
        0x81..=0x89 => b'a' + (b - 0x81),
        0x91..=0x99 => b'j' + (b - 0x91),
        0xa2..=0xa9 => b's' + (b - 0xa2),
        0xc1..=0xc9 => b'A' + (b - 0xc1),
        0xd1..=0xd9 => b'J' + (b - 0xd1),
        0xe2..=0xe9 => b'S' + (b - 0xe2),
        0xf0..=0xf9 => b'0' + (b - 0xf0),
        _ => 0,
    }
}

/// Turns UTF-16 or UTF-32 into UTF-8 as it streams; invalid sequences become U+FFFD.
pub(super) struct Transcoder {
    form: Form,
    /// Bytes of a code unit cut by the chunk's end, or a high surrogate waiting for its pair.
    carry: Vec<u8>,
}

impl Transcoder {
    /// A transcoder for a document in `form`; none when it is UTF-8 already.
    pub(super) fn new(form: Form) -> Option<Self> {
        match form {
            Form::Utf8 | Form::Ebcdic => None,
            form => Some(Transcoder {
                form,
                carry: Vec::new(),
            }),
        }
    }

    pub(super) fn feed(&mut self, data: &[u8], out: &mut Vec<u8>) {
        let mut carry = std::mem::take(&mut self.carry);
        carry.extend_from_slice(data);
        let width = self.form.width();
        let mut whole = carry.len() / width * width;
        if width == 2 && whole >= 2 {
            let last = self.form.units(&carry[whole - 2..whole]).next();
            if last.is_some_and(|u| (0xd800..0xdc00).contains(&u)) {
                whole -= 2;
            }
        }
        self.decode(&carry[..whole], out);
        self.carry = carry[whole..].to_vec();
    }

    /// What is left at the end of the document.
    pub(super) fn finish(&mut self, out: &mut Vec<u8>) {
        let carry = std::mem::take(&mut self.carry);
        let whole = carry.len() / self.form.width() * self.form.width();
        self.decode(&carry[..whole], out);
        if whole < carry.len() {
            push_char(out, char::REPLACEMENT_CHARACTER);
        }
    }

    fn decode(&self, units: &[u8], out: &mut Vec<u8>) {
        let units = self.form.units(units);
        if self.form.width() == 2 {
            for c in char::decode_utf16(units.map(|u| u as u16)) {
                push_char(out, c.unwrap_or(char::REPLACEMENT_CHARACTER));
            }
        } else {
            for u in units {
                push_char(
                    out,
                    char::from_u32(u).unwrap_or(char::REPLACEMENT_CHARACTER),
                );
            }
        }
    }
}
