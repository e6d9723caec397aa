//! XML documents read as backends read them: Go's `encoding/xml` (Unmarshal, Decoder tokens)
//! and the JDK's DOM (`DocumentBuilder`, `getTextContent`, attribute values). A payload can
//! hide in XML in ways the bytes on the wire do not show: base64 split over CDATA sections and
//! plain text, character references (`&#x58;` is `X`), entities, a document in UTF-16 or
//! UTF-32. Every text value is handed over as an application gets it, for the scanner to see.
//!
//! What is handed over:
//! - each element's own text: its text, CDATA sections and references joined (across comments,
//!   processing instructions and child elements too), as Go's `,chardata` gives it and as the
//!   DOM's `getTextContent` gives it for an element without child elements;
//! - the text of all the descendants of an element whose text comes from two or more places
//!   (its own text and a child's, or two children's), as `getTextContent` gives it: a payload
//!   split over sibling elements is seen joined. An element whose text all comes from one
//!   child is not handed over again (the child's value holds the same text);
//! - every attribute value (but namespace declarations), references resolved, and the default
//!   values that `<!ATTLIST` declarations of the DOCTYPE give attributes (the DOM hands them
//!   over as attributes).
//!
//! Blank values (XML white space only) are skipped. Line ends are normalized as XML says;
//! white space in attribute values is not turned into spaces (Go hands it over as it is).
//!
//! Entities: the general entities that the DOCTYPE's internal subset declares are expanded,
//! as the JDK's DOM expands them by default (Go's decoder knows none and stops at their
//! reference, so what the JDK hands over holds what Go does). A payload split between an
//! entity and the text around it is seen joined. Expansion is bounded (413 over a limit):
//! [`entities`] tells the limits and what is refused (400): a reference to an entity that is
//! not declared, to an external one (the JDK fetches it, the module never does), to itself,
//! or to one whose replacement text holds markup, and an internal subset that uses a
//! parameter entity reference (it can declare more entities).
//!
//! Tokenizing is quick-xml's (well kept, streams from a `BufRead`, and since 0.38 reports
//! references as events of their own): the joining of text, the references and entities,
//! the line ends, the DOCTYPE and the decoding of UTF-16 and UTF-32 are done here. quick-xml
//! is used without its `encoding` feature: the document reaches it in UTF-8. A malformed
//! document is read up to its first error, as backends stop there: what was read is handed
//! over and the body is scanned as sent anyway.
//!
//! Memory is bounded: the body is streamed, one event at a time (an event over [`MAX_VALUE`]
//! is refused, 413), and a value over [`SPILL_THRESHOLD`](crate::scan::SPILL_THRESHOLD) is
//! gathered in a temp file.
//!
//! The parts: [`encoding`] tells how the bytes stand for characters, [`feed`] streams them
//! to quick-xml in UTF-8, [`doc`] turns events into values, [`text`] resolves references and
//! line ends, [`dtd`] reads the DOCTYPE and [`entities`] expands what it declares.

mod doc;
mod dtd;
mod encoding;
mod entities;
mod feed;
#[cfg(test)]
mod tests;
mod text;

use std::path::Path;

use quick_xml::Reader;

use crate::body::RequestBody;
use crate::scan::ScanError;

use doc::Doc;
use encoding::Form;
use feed::Feed;

/// How much of a body is looked at to tell its encoding and its declared charset.
const HEAD: usize = 1024;
/// Longest value (and longest event: tag, text run, comment, DOCTYPE) read: 64 MiB.
const MAX_VALUE: u64 = 64 * 1024 * 1024;
/// Longest name in a label, in characters.
const MAX_NAME: usize = 64;

/// Whether `head`, the first bytes of a body or a value, begins an XML document: after an
/// optional byte order mark (or the zero bytes of UTF-16 and UTF-32 without one) and optional
/// white space, `<?xml`, `<!DOCTYPE`, `<!--`, or `<` and the first character of a name.
pub fn looks_like(head: &[u8]) -> bool {
    let head = &head[..head.len().min(4 * HEAD)];
    let (form, bom) = encoding::detect(head);
    if form == Form::Ebcdic {
        return true;
    }
    let mut units = form.units(&head[bom..]).skip_while(|&u| is_space_unit(u));
    let mut start = [0u32; 9];
    let mut n = 0;
    for (slot, u) in start.iter_mut().zip(&mut units) {
        *slot = u;
        n += 1;
    }
    match &start[..n] {
        [0x3c, rest @ ..] => {
            begins(rest, b"?xml")
                || begins(rest, b"!DOCTYPE")
                || begins(rest, b"!--")
                || rest.first().is_some_and(|&u| is_name_start_unit(u))
        }
        _ => false,
    }
}

/// Calls `each(label, value)` for every text value of the document, as UTF-8. Labels are
/// `element "name"`, `attribute "name" of "element"`, `text outside the root element` and
/// `document text`.
pub fn values(
    body: &RequestBody,
    dir: &Path,
    max_values: usize,
    each: &mut dyn FnMut(&str, RequestBody) -> Result<(), ScanError>,
) -> Result<(), ScanError> {
    let source = encoding::source(body)?;
    let plain = source.form == Form::Utf8 && !source.converted;
    let mut reader = Reader::from_reader(Feed::new(&source));
    let mut doc = Doc::new(dir, max_values, body.len(), each);
    match doc.read(&mut reader, plain) {
        Ok(()) | Err(Halt::Malformed) => doc.finish(),
        Err(Halt::Error(e)) => Err(e),
    }
}

/// Why reading stopped before the end.
enum Halt {
    /// The document is malformed there: what was read is handed over.
    Malformed,
    /// Refused, over a limit, or an error of `each` or of the body: returned as it is.
    Error(ScanError),
}

impl From<ScanError> for Halt {
    fn from(e: ScanError) -> Self {
        Halt::Error(e)
    }
}

fn over_event() -> ScanError {
    ScanError::over_limit("XML document: a value or a markup over 64 MiB")
}

fn push_char(out: &mut Vec<u8>, c: char) {
    if c.is_ascii() {
        out.push(c as u8);
    } else {
        out.extend_from_slice(c.encode_utf8(&mut [0u8; 4]).as_bytes());
    }
}

/// A name for a label: at most [`MAX_NAME`] characters.
fn short(name: &[u8]) -> String {
    String::from_utf8_lossy(name)
        .chars()
        .take(MAX_NAME)
        .collect()
}

/// What follows the first `end` in `s` (nothing when there is none).
fn past<'a>(s: &'a [u8], end: &[u8]) -> &'a [u8] {
    memchr::memmem::find(s, end).map_or(&[], |i| &s[i + end.len()..])
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

fn is_space_unit(u: u32) -> bool {
    u < 0x80 && is_space(u as u8)
}

fn is_blank(text: &[u8]) -> bool {
    text.iter().all(|&b| is_space(b))
}

fn trim_start(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| is_space(b)).count();
    &s[n..]
}

/// Whether `units` begin with the ASCII string `s`.
fn begins(units: &[u32], s: &[u8]) -> bool {
    units.len() >= s.len() && units.iter().zip(s).all(|(&u, &b)| u == u32::from(b))
}

/// The first character of a name: an ASCII letter, `_`, `:`, or any non-ASCII character.
fn is_name_start_unit(u: u32) -> bool {
    u >= 0x80 || is_name_start(u as u8)
}

fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b == b':' || b >= 0x80
}

fn is_name_char(b: u8) -> bool {
    is_name_start(b) || b.is_ascii_digit() || b == b'-' || b == b'.'
}

/// Whether `s` is an XML name (non-ASCII characters are all taken as name characters).
fn is_name(s: &[u8]) -> bool {
    match s.split_first() {
        Some((&first, rest)) => is_name_start(first) && rest.iter().all(|&b| is_name_char(b)),
        None => false,
    }
}
