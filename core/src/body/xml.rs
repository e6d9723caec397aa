//! XML documents read as backends read them: Go's `encoding/xml` (Unmarshal, Decoder tokens)
//! and the JDK's DOM (`DocumentBuilder`, `getTextContent`, attribute values). A payload can
//! hide in XML in ways the bytes on the wire do not show: base64 split over CDATA sections and
//! plain text, character references (`&#x58;` is `X`), a document in UTF-16 or UTF-32. Every
//! text value is handed over as an application gets it, for the scanner to see.
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
//! Blank values (XML white space only) are skipped. Line ends are normalized as XML says.
//!
//! Entities other than the five predefined ones are refused (400), whether declared in the
//! DOCTYPE or referenced: an entity's value can only be known by expanding it as the backend
//! would, and external ones are never fetched.
//!
//! Tokenizing is quick-xml's (well kept, streams from a `BufRead`, and since 0.38 reports
//! references as events of their own): the joining of text, the references, the line ends,
//! the DOCTYPE checks and the decoding of UTF-16 and UTF-32 are done here. quick-xml is used
//! without its `encoding` feature: the document reaches it in UTF-8. A malformed document is
//! read up to its first error, as backends stop there: what was read is handed over and the
//! body is scanned as sent anyway.
//!
//! Memory is bounded: the body is streamed, one event at a time (an event over [`MAX_VALUE`]
//! is refused, 413), and a value over [`SPILL_THRESHOLD`] is gathered in a temp file.

use std::borrow::Cow;
use std::io::{self, BufRead, Read};
use std::path::Path;

use bytes::Bytes;
use memchr::memmem;
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use crate::body::charset;
use crate::body::sink::BodySink;
use crate::body::{BodyPart, BodyReader, RequestBody, FILE_CHUNK};
use crate::scan::{ScanError, SPILL_THRESHOLD};

/// How much of a body is looked at to tell its encoding and its declared charset.
const HEAD: usize = 1024;
/// Longest value (and longest event: tag, text run, comment, DOCTYPE) read: 64 MiB.
const MAX_VALUE: u64 = 64 * 1024 * 1024;
/// Deepest nesting of elements read (Go's Unmarshal refuses deeper than 10 000 too).
const MAX_DEPTH: usize = 10_000;
/// Longest name in a label, in characters.
const MAX_NAME: usize = 64;
/// The descendant texts handed over may add up to this many times the document's text (plus
/// [`MAX_VALUE`]): nested elements each holding the same long text are refused beyond that.
const WHOLE_FACTOR: u64 = 8;

/// Whether `head`, the first bytes of a body or a value, begins an XML document: after an
/// optional byte order mark (or the zero bytes of UTF-16 and UTF-32 without one) and optional
/// white space, `<?xml`, `<!DOCTYPE`, `<!--`, or `<` and the first character of a name.
pub fn looks_like(head: &[u8]) -> bool {
    let head = &head[..head.len().min(4 * HEAD)];
    let (form, bom) = detect(head);
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
    let source = source(body)?;
    let plain = source.form == Form::Utf8 && !source.converted;
    let mut reader = Reader::from_reader(Feed::new(&source));
    let mut doc = Doc::new(dir, max_values, each);
    match doc.read(&mut reader, plain) {
        Ok(()) | Err(Halt::Malformed) => doc.finish(),
        Err(Halt::Error(e)) => Err(e),
    }
}

/// How the bytes of a document stand for characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
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
    fn units(self, bytes: &[u8]) -> impl Iterator<Item = u32> + '_ {
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
fn detect(head: &[u8]) -> (Form, usize) {
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
struct Source {
    body: RequestBody,
    form: Form,
    converted: bool,
}

fn source(body: &RequestBody) -> Result<Source, ScanError> {
    let head = head(body)?;
    let (form, bom) = detect(&head);
    let rest = body.slice(bom as u64, body.len());
    let stream = |form| {
        Ok(Source {
            body: rest.clone(),
            form,
            converted: false,
        })
    };
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
            Some(label) if needs_conversion(label) && bom > 0 => Err(ScanError::ambiguous(
                format!(
                    "XML with a UTF-8 byte order mark in charset \"{}\"",
                    short(label)
                ),
            )),
            Some(label) if needs_conversion(label) => convert(&rest, label),
            _ => stream(Form::Utf8),
        },
        _ => stream(form),
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
    if !rest.first().is_some_and(|&b| is_space(b)) {
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
fn needs_conversion(label: &[u8]) -> bool {
    let label = String::from_utf8_lossy(label).trim().to_ascii_lowercase();
    let same = ["utf-8", "utf8", "us-ascii", "ascii"];
    let wide = ["utf-16", "utf-32", "ucs-2", "ucs-4", "iso-10646-ucs-", "unicode"];
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
fn ebcdic_ascii(b: u8) -> u8 {
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
struct Transcoder {
    form: Form,
    /// Bytes of a code unit cut by the chunk's end, or a high surrogate waiting for its pair.
    carry: Vec<u8>,
}

impl Transcoder {
    fn feed(&mut self, data: &[u8], out: &mut Vec<u8>) {
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
    fn finish(&mut self, out: &mut Vec<u8>) {
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
                push_char(out, char::from_u32(u).unwrap_or(char::REPLACEMENT_CHARACTER));
            }
        }
    }
}

/// The document as quick-xml reads it: the body in UTF-8, chunk by chunk. The bytes taken by
/// the event being read are counted, so that no event grows past [`MAX_VALUE`] in memory.
struct Feed {
    reader: BodyReader,
    transcoder: Option<Transcoder>,
    out: Bytes,
    pos: usize,
    ended: bool,
    /// Bytes consumed since the current event began.
    event: u64,
    /// The current event went over [`MAX_VALUE`].
    over: bool,
    /// Reading the body failed.
    failed: Option<io::Error>,
}

impl Feed {
    fn new(source: &Source) -> Self {
        let transcoder = match source.form {
            Form::Utf8 | Form::Ebcdic => None,
            form => Some(Transcoder {
                form,
                carry: Vec::new(),
            }),
        };
        Feed {
            reader: source.body.reader(FILE_CHUNK),
            transcoder,
            out: Bytes::new(),
            pos: 0,
            ended: false,
            event: 0,
            over: false,
            failed: None,
        }
    }

    fn refill(&mut self) -> io::Result<()> {
        self.pos = 0;
        match self.reader.next_chunk_max(FILE_CHUNK) {
            None => {
                self.ended = true;
                let mut out = Vec::new();
                if let Some(t) = &mut self.transcoder {
                    t.finish(&mut out);
                }
                self.out = Bytes::from(out);
            }
            Some(Err(e)) => {
                self.ended = true;
                self.out = Bytes::new();
                self.failed = Some(e);
                return Err(io::Error::other("reading the body failed"));
            }
            Some(Ok(chunk)) => {
                self.out = match &mut self.transcoder {
                    None => chunk,
                    Some(t) => {
                        let mut out = Vec::with_capacity(chunk.len() * 2);
                        t.feed(&chunk, &mut out);
                        Bytes::from(out)
                    }
                }
            }
        }
        Ok(())
    }

    /// Why quick-xml failed: a limit, the body's reading, or the document itself.
    fn failure(&mut self) -> Halt {
        if self.over {
            Halt::Error(over_event())
        } else if let Some(e) = self.failed.take() {
            Halt::Error(ScanError::Body(e))
        } else {
            Halt::Malformed
        }
    }
}

impl Read for Feed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for Feed {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.pos == self.out.len() && !self.ended {
            if self.event > MAX_VALUE {
                self.over = true;
                return Err(io::Error::other("an XML event over the limit"));
            }
            self.refill()?;
        }
        Ok(&self.out[self.pos..])
    }

    fn consume(&mut self, n: usize) {
        let n = n.min(self.out.len() - self.pos);
        self.pos += n;
        self.event += n as u64;
    }
}

fn over_event() -> ScanError {
    ScanError::over_limit("XML document: a value or a markup over 64 MiB")
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

/// An element being read (or, at the bottom of the stack, the document itself).
struct Open<'d> {
    label: String,
    /// The text directly inside it.
    own: BodySink<'d>,
    own_len: u64,
    blank: bool,
    /// Where its descendant text begins in the document's text.
    start: u64,
    /// How many of its children hold text that is not blank (at any depth).
    texts: u32,
}

impl<'d> Open<'d> {
    fn new(label: String, start: u64, dir: &'d Path) -> Self {
        Open {
            label,
            own: BodySink::new(SPILL_THRESHOLD, dir),
            own_len: 0,
            blank: true,
            start,
            texts: 0,
        }
    }
}

/// What is read of one document, and where its values go.
struct Doc<'d, 'e> {
    dir: &'d Path,
    max_values: usize,
    each: &'e mut dyn FnMut(&str, RequestBody) -> Result<(), ScanError>,
    handed: usize,
    open: Vec<Open<'d>>,
    /// All the text of the document in order: the descendant text of an element is a range
    /// of it, so one copy serves every element (a temp file beyond [`SPILL_THRESHOLD`]).
    all: BodySink<'d>,
    all_len: u64,
    /// The descendant texts to hand over once `all` is complete: label, start, length.
    whole: Vec<(String, u64, u64)>,
    whole_len: u64,
    /// XML 1.1 normalizes more line ends and allows more characters by reference.
    xml11: bool,
}

impl<'d, 'e> Doc<'d, 'e> {
    fn new(
        dir: &'d Path,
        max_values: usize,
        each: &'e mut dyn FnMut(&str, RequestBody) -> Result<(), ScanError>,
    ) -> Self {
        let document = Open::new("text outside the root element".into(), 0, dir);
        Doc {
            dir,
            max_values,
            each,
            handed: 0,
            open: vec![document],
            all: BodySink::new(SPILL_THRESHOLD, dir),
            all_len: 0,
            whole: Vec::new(),
            whole_len: 0,
            xml11: false,
        }
    }

    /// Reads events up to the end of the document or its first error. `plain`: the document
    /// is read as UTF-8 as it is, so a declaration naming another charset (past the head) is
    /// refused.
    fn read(&mut self, reader: &mut Reader<Feed>, plain: bool) -> Result<(), Halt> {
        let mut buf = Vec::new();
        loop {
            buf.clear();
            reader.get_mut().event = 0;
            let event = match reader.read_event_into(&mut buf) {
                Ok(event) => event,
                Err(_) => return Err(reader.get_mut().failure()),
            };
            if reader.get_ref().event > MAX_VALUE {
                return Err(over_event().into());
            }
            match event {
                Event::Start(e) => {
                    self.attributes(&e)?;
                    self.start(&e)?;
                }
                Event::Empty(e) => self.attributes(&e)?,
                Event::End(_) => self.end()?,
                Event::Text(t) => self.text(&t)?,
                Event::CData(t) => self.text(&t)?,
                Event::GeneralRef(r) => {
                    let c = resolve(&r, self.xml11)?;
                    self.push_text(push_char(&mut Vec::new(), c))?;
                }
                Event::Decl(d) => {
                    self.xml11 = d.version().is_ok_and(|v| v.as_ref() == b"1.1");
                    if let Some(Ok(label)) = d.encoding() {
                        if plain && needs_conversion(&label) {
                            return Err(ScanError::ambiguous(format!(
                                "XML in charset \"{}\" declared past the first {HEAD} bytes",
                                short(&label)
                            ))
                            .into());
                        }
                    }
                }
                Event::DocType(d) => self.doctype(&d)?,
                Event::Comment(_) | Event::PI(_) => {}
                Event::Eof => return Ok(()),
            }
        }
    }

    /// Hands over what is still open (a malformed document ends there) and the descendant
    /// texts.
    fn finish(mut self) -> Result<(), ScanError> {
        while !self.open.is_empty() {
            self.close()?;
        }
        if self.whole.is_empty() {
            return Ok(());
        }
        let whole = std::mem::take(&mut self.whole);
        let all = RequestBody::from(self.all.finish()?);
        for (label, start, len) in whole {
            (self.each)(&label, all.slice(start, len))?;
        }
        Ok(())
    }

    fn start(&mut self, e: &BytesStart) -> Result<(), ScanError> {
        if self.open.len() > MAX_DEPTH {
            return Err(ScanError::over_limit(format!(
                "XML document: elements nested over {MAX_DEPTH} deep"
            )));
        }
        let label = format!("element \"{}\"", short(e.name().as_ref()));
        self.open.push(Open::new(label, self.all_len, self.dir));
        Ok(())
    }

    fn end(&mut self) -> Result<(), Halt> {
        // quick-xml checks that an end tag matches the open element; the document itself is
        // never closed by one.
        if self.open.len() < 2 {
            return Err(Halt::Malformed);
        }
        Ok(self.close()?)
    }

    /// Closes the innermost element: hands over its own text, and queues its descendant text
    /// when that comes from two places or more.
    fn close(&mut self) -> Result<(), ScanError> {
        let Some(open) = self.open.pop() else {
            return Ok(());
        };
        let texts = open.texts.saturating_add(u32::from(!open.blank));
        if texts > 0 {
            if let Some(parent) = self.open.last_mut() {
                parent.texts = parent.texts.saturating_add(1);
            }
        }
        if !open.blank {
            let own = RequestBody::from(open.own.finish()?);
            self.hand(&open.label, own)?;
        }
        if texts >= 2 {
            let label = if self.open.is_empty() {
                "document text".to_owned()
            } else {
                open.label
            };
            self.queue_whole(label, open.start)?;
        }
        Ok(())
    }

    fn queue_whole(&mut self, label: String, start: u64) -> Result<(), ScanError> {
        let len = self.all_len - start;
        if len > MAX_VALUE {
            return Err(ScanError::over_limit(format!(
                "XML document: the text of {label} over 64 MiB"
            )));
        }
        self.whole_len += len;
        if self.whole_len > WHOLE_FACTOR * self.all_len + MAX_VALUE {
            return Err(ScanError::over_limit(format!(
                "XML document: nested text over {WHOLE_FACTOR} times the document's text"
            )));
        }
        self.count()?;
        self.whole.push((label, start, len));
        Ok(())
    }

    /// Hands over the attribute values of a start or empty tag.
    fn attributes(&mut self, e: &BytesStart) -> Result<(), Halt> {
        let element = short(e.name().as_ref());
        // No check of duplicates: Go hands over a repeated attribute (the last one wins).
        for attr in e.attributes().with_checks(false) {
            let attr = attr.map_err(|_| Halt::Malformed)?;
            let name = attr.key.as_ref();
            if name == b"xmlns" || name.starts_with(b"xmlns:") {
                continue;
            }
            let value = attribute_value(&attr.value, self.xml11)?;
            let label = format!("attribute \"{}\" of \"{element}\"", short(name));
            self.hand_bytes(&label, &value)?;
        }
        Ok(())
    }

    /// Refuses a DOCTYPE that declares entities; hands over the attribute defaults it gives.
    fn doctype(&mut self, doctype: &[u8]) -> Result<(), Halt> {
        if doctype
            .windows(b"<!ENTITY".len())
            .any(|w| w.eq_ignore_ascii_case(b"<!ENTITY"))
        {
            return Err(ScanError::ambiguous(
                "XML: the DOCTYPE declares an entity (entities are refused)",
            )
            .into());
        }
        for (element, name, literal) in attribute_defaults(doctype) {
            let value = attribute_value(literal, self.xml11)?;
            let label = format!("attribute \"{}\" of \"{}\"", short(name), short(element));
            self.hand_bytes(&label, &value)?;
        }
        Ok(())
    }

    /// A run of text or a CDATA section, its line ends normalized.
    fn text(&mut self, raw: &[u8]) -> Result<(), ScanError> {
        if !self.xml11 && memchr::memchr(b'\r', raw).is_none() {
            return self.push_text(raw);
        }
        let mut text = Vec::with_capacity(raw.len());
        line_ends(raw, self.xml11, &mut text);
        self.push_text(&text)
    }

    /// Adds text to the innermost element's own text and to the document's text.
    fn push_text(&mut self, text: &[u8]) -> Result<(), ScanError> {
        let Some(open) = self.open.last_mut() else {
            return Ok(());
        };
        if text.is_empty() {
            return Ok(());
        }
        open.own_len += text.len() as u64;
        if open.own_len > MAX_VALUE {
            return Err(ScanError::over_limit(format!(
                "XML document: the text of {} over 64 MiB",
                open.label
            )));
        }
        if open.blank && !is_blank(text) {
            open.blank = false;
        }
        open.own.push(text)?;
        self.all.push(text)?;
        self.all_len += text.len() as u64;
        Ok(())
    }

    /// Hands over a value read whole (an attribute's), unless it is blank.
    fn hand_bytes(&mut self, label: &str, value: &[u8]) -> Result<(), ScanError> {
        if is_blank(value) {
            return Ok(());
        }
        let body = if value.len() <= SPILL_THRESHOLD {
            RequestBody::memory(value)
        } else {
            let mut sink = BodySink::new(SPILL_THRESHOLD, self.dir);
            sink.push(value)?;
            RequestBody::from(sink.finish()?)
        };
        self.hand(label, body)
    }

    fn hand(&mut self, label: &str, value: RequestBody) -> Result<(), ScanError> {
        self.count()?;
        (self.each)(label, value)
    }

    fn count(&mut self) -> Result<(), ScanError> {
        self.handed += 1;
        if self.handed > self.max_values {
            return Err(ScanError::over_limit(format!(
                "XML document: more than {} values",
                self.max_values
            )));
        }
        Ok(())
    }
}

/// The character a reference (`&name;` without `&` and `;`) stands for: one of the five
/// predefined entities or a character reference. Another entity is refused; a reference that
/// is no name, or a character XML does not allow, is malformed (backends stop there).
fn resolve(name: &[u8], xml11: bool) -> Result<char, Halt> {
    match name {
        b"lt" => Ok('<'),
        b"gt" => Ok('>'),
        b"amp" => Ok('&'),
        b"apos" => Ok('\''),
        b"quot" => Ok('"'),
        [b'#', b'x', digits @ ..] => char_ref(digits, 16, xml11),
        [b'#', digits @ ..] => char_ref(digits, 10, xml11),
        _ if is_name(name) => Err(ScanError::ambiguous(format!(
            "XML: a reference to the entity \"{}\" (entities are refused)",
            short(name)
        ))
        .into()),
        _ => Err(Halt::Malformed),
    }
}

fn char_ref(digits: &[u8], radix: u32, xml11: bool) -> Result<char, Halt> {
    if digits.is_empty() {
        return Err(Halt::Malformed);
    }
    let mut value = 0u32;
    for &d in digits {
        value = char::from(d)
            .to_digit(radix)
            .and_then(|d| value.checked_mul(radix)?.checked_add(d))
            .ok_or(Halt::Malformed)?;
    }
    char::from_u32(value)
        .filter(|&c| is_xml_char(c, xml11))
        .ok_or(Halt::Malformed)
}

/// Whether XML allows the character (by reference, for XML 1.1's control characters).
fn is_xml_char(c: char, xml11: bool) -> bool {
    match u32::from(c) {
        0x9 | 0xa | 0xd | 0x20..=0xd7ff | 0xe000..=0xfffd | 0x10000.. => true,
        0x1..=0x1f => xml11,
        _ => false,
    }
}

/// An attribute value as parsers hand it over: references resolved, line ends normalized
/// (tabs and line ends are not turned into spaces, as Go hands them over).
fn attribute_value(raw: &[u8], xml11: bool) -> Result<Vec<u8>, Halt> {
    let mut out = Vec::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = memchr::memchr(b'&', rest) {
        line_ends(&rest[..at], xml11, &mut out);
        let tail = &rest[at + 1..];
        let end = memchr::memchr(b';', tail).ok_or(Halt::Malformed)?;
        push_char(&mut out, resolve(&tail[..end], xml11)?);
        rest = &tail[end + 1..];
    }
    line_ends(rest, xml11, &mut out);
    Ok(out)
}

/// `text` with its line ends as XML parsers hand them over: `\r\n` and a lone `\r` become
/// `\n`, and in XML 1.1 so do NEL (U+0085), `\r` NEL and LINE SEPARATOR (U+2028).
fn line_ends(text: &[u8], xml11: bool, out: &mut Vec<u8>) {
    let mut rest = text;
    loop {
        let at = if xml11 {
            memchr::memchr3(b'\r', 0xc2, 0xe2, rest)
        } else {
            memchr::memchr(b'\r', rest)
        };
        let Some(at) = at else {
            out.extend_from_slice(rest);
            return;
        };
        out.extend_from_slice(&rest[..at]);
        let tail = &rest[at..];
        let skip = match tail {
            [b'\r', b'\n', ..] => 2,
            [b'\r', 0xc2, 0x85, ..] if xml11 => 3,
            [b'\r', ..] => 1,
            [0xc2, 0x85, ..] => 2,
            [0xe2, 0x80, 0xa8, ..] => 3,
            _ => {
                out.push(tail[0]);
                rest = &tail[1..];
                continue;
            }
        };
        out.push(b'\n');
        rest = &tail[skip..];
    }
}

/// The default values that the `<!ATTLIST` declarations of a DOCTYPE give attributes, as
/// element name, attribute name and literal (references unresolved). Comments, processing
/// instructions and literals of other declarations are skipped.
fn attribute_defaults(doctype: &[u8]) -> Vec<(&[u8], &[u8], &[u8])> {
    let mut out = Vec::new();
    let mut rest = doctype;
    while let Some(&b) = rest.first() {
        rest = if rest.starts_with(b"<!--") {
            past(&rest[4..], b"-->")
        } else if rest.starts_with(b"<?") {
            past(&rest[2..], b"?>")
        } else if b == b'"' || b == b'\'' {
            past(&rest[1..], &[b])
        } else if rest.starts_with(b"<!ATTLIST") {
            attlist(&rest[b"<!ATTLIST".len()..], &mut out)
        } else {
            &rest[1..]
        };
    }
    out
}

/// What follows the first `end` in `s` (nothing when there is none).
fn past<'a>(s: &'a [u8], end: &[u8]) -> &'a [u8] {
    memmem::find(s, end).map_or(&[], |i| &s[i + end.len()..])
}

/// Reads one `<!ATTLIST element (name type default)*>` declaration after its keyword into
/// `out`; returns what follows it.
fn attlist<'a>(mut rest: &'a [u8], out: &mut Vec<(&'a [u8], &'a [u8], &'a [u8])>) -> &'a [u8] {
    let mut element = None;
    let mut attribute = None;
    let mut want_name = false;
    loop {
        rest = trim_start(rest);
        let Some(&b) = rest.first() else {
            return rest;
        };
        match b {
            b'>' => return &rest[1..],
            b'"' | b'\'' => {
                let literal = &rest[1..];
                let end = memchr::memchr(b, literal).unwrap_or(literal.len());
                if let (Some(e), Some(a)) = (element, attribute.take()) {
                    out.push((e, a, &literal[..end]));
                }
                want_name = true;
                rest = literal.get(end + 1..).unwrap_or(&[]);
            }
            b'(' => rest = past(&rest[1..], b")"),
            _ => {
                let end = rest
                    .iter()
                    .position(|&c| is_space(c) || matches!(c, b'>' | b'"' | b'\'' | b'('))
                    .unwrap_or(rest.len());
                let word = &rest[..end];
                rest = &rest[end..];
                if element.is_none() {
                    element = Some(word);
                    want_name = true;
                } else if want_name {
                    attribute = Some(word);
                    want_name = false;
                } else if word == b"#REQUIRED" || word == b"#IMPLIED" {
                    attribute = None;
                    want_name = true;
                }
            }
        }
    }
}

/// Appends a character in UTF-8; returns what it appended.
fn push_char(out: &mut Vec<u8>, c: char) -> &[u8] {
    let at = out.len();
    let mut b = [0u8; 4];
    out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
    &out[at..]
}

/// A name for a label: at most [`MAX_NAME`] characters.
fn short(name: &[u8]) -> String {
    String::from_utf8_lossy(name).chars().take(MAX_NAME).collect()
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
    u >= 0x80 || (u < 0x80 && is_name_start(u as u8))
}

fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b == b':' || b >= 0x80
}

/// Whether `s` is an XML name (non-ASCII characters are all taken as name characters).
fn is_name(s: &[u8]) -> bool {
    match s.split_first() {
        Some((&first, rest)) => {
            is_name_start(first)
                && rest
                    .iter()
                    .all(|&b| is_name_start(b) || b.is_ascii_digit() || b == b'-' || b == b'.')
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::testing::{bytes_of, mem};

    type Found = Vec<(String, String)>;

    /// The values of a document given whole and cut into pieces of one byte (the same).
    fn read_max(doc: &[u8], max: usize) -> Result<Found, ScanError> {
        let whole = read_pieces(&[doc], max);
        let pieces: Vec<&[u8]> = doc.chunks(1).collect();
        let cut = read_pieces(&pieces, max);
        assert_eq!(
            format!("{whole:?}"),
            format!("{cut:?}"),
            "the values depend on the cuts"
        );
        whole
    }

    fn read_pieces(pieces: &[&[u8]], max: usize) -> Result<Found, ScanError> {
        let mut out = Vec::new();
        values(&mem(pieces), &std::env::temp_dir(), max, &mut |label, v| {
            let text = String::from_utf8_lossy(&bytes_of(&v)).into_owned();
            out.push((label.to_owned(), text));
            Ok(())
        })?;
        Ok(out)
    }

    fn read(doc: &[u8]) -> Found {
        read_max(doc, 1000).expect("read")
    }

    /// The values alone.
    fn texts(doc: &[u8]) -> Vec<String> {
        read(doc).into_iter().map(|(_, v)| v).collect()
    }

    fn refused(doc: &[u8]) -> (u16, String) {
        match read_max(doc, 1000) {
            Err(ScanError::Refused { status, reason }) => (status, reason),
            other => panic!("not refused: {other:?}"),
        }
    }

    fn pair(label: &str, value: &str) -> (String, String) {
        (label.to_owned(), value.to_owned())
    }

    fn utf16(s: &str, big: bool, bom: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let units = (if bom { "\u{feff}" } else { "" }).encode_utf16();
        for u in units.chain(s.encode_utf16()) {
            out.extend_from_slice(&if big { u.to_be_bytes() } else { u.to_le_bytes() });
        }
        out
    }

    fn utf32(s: &str, big: bool) -> Vec<u8> {
        let mut out = Vec::new();
        for c in "\u{feff}".chars().chain(s.chars()) {
            let c = u32::from(c);
            out.extend_from_slice(&if big { c.to_be_bytes() } else { c.to_le_bytes() });
        }
        out
    }

    #[test]
    fn element_text_and_attributes() {
        assert_eq!(
            read(b"<a x=\"QUJD\"><b>REVG</b></a>"),
            [
                pair("attribute \"x\" of \"a\"", "QUJD"),
                pair("element \"b\"", "REVG"),
            ]
        );
    }

    #[test]
    fn cdata_sections_join_the_text_around_them() {
        assert_eq!(texts(b"<a>QUJD<![CDATA[REVG]]>R0g=</a>"), ["QUJDREVGR0g="]);
        assert_eq!(
            texts(b"<a><![CDATA[QU]]><![CDATA[JD]]>&#x52;EVG</a>"),
            ["QUJDREVG"]
        );
    }

    #[test]
    fn references_are_resolved() {
        assert_eq!(texts(b"<a>&#x58;&#53;</a>"), ["X5"]);
        assert_eq!(
            texts(b"<a>&lt;&gt;&amp;&apos;&quot;&#65;&#x42;&#x10000;</a>"),
            ["<>&'\"AB\u{10000}"]
        );
        assert_eq!(
            texts(b"<a b='&#x58;&amp;&#53;'/>"),
            ["X&5"],
            "in attributes too"
        );
    }

    #[test]
    fn own_text_joins_across_children_comments_and_instructions() {
        assert_eq!(texts(b"<a>QUJD<b/>REVG</a>"), ["QUJDREVG"]);
        assert_eq!(texts(b"<a>QU<!-- x -->JD<?pi x?>REVG</a>"), ["QUJDREVG"]);
    }

    #[test]
    fn text_split_over_elements_is_handed_over_joined_too() {
        // Go's chardata of `a` is `QUJD`, the DOM's getTextContent `QUJDREVG`.
        assert_eq!(
            read(b"<a>QUJD<b>REVG</b></a>"),
            [
                pair("element \"b\"", "REVG"),
                pair("element \"a\"", "QUJD"),
                pair("element \"a\"", "QUJDREVG"),
            ]
        );
        // Over siblings: getTextContent of `a`.
        assert_eq!(
            read(b"<a><b>QUJD</b><c>REVG</c></a>"),
            [
                pair("element \"b\"", "QUJD"),
                pair("element \"c\"", "REVG"),
                pair("element \"a\"", "QUJDREVG"),
            ]
        );
    }

    #[test]
    fn text_from_one_child_is_not_handed_over_again() {
        assert_eq!(
            read(b"<Envelope>\n  <Body>\n    <x>QUJD</x>\n  </Body>\n</Envelope>"),
            [pair("element \"x\"", "QUJD")]
        );
    }

    #[test]
    fn nested_descendant_texts() {
        assert_eq!(
            read(b"<a>P<b>Q<c>R</c>S</b>T</a>"),
            [
                pair("element \"c\"", "R"),
                pair("element \"b\"", "QS"),
                pair("element \"a\"", "PT"),
                pair("element \"b\"", "QRS"),
                pair("element \"a\"", "PQRST"),
            ]
        );
    }

    #[test]
    fn blank_values_are_skipped() {
        assert!(read(b"<a x=' '>\n\t <b/> &#32;</a>").is_empty());
    }

    #[test]
    fn line_ends_are_normalized() {
        assert_eq!(texts(b"<a>x\r\ny\rz&#13;</a>"), ["x\ny\nz\r"]);
        assert_eq!(
            texts("<?xml version=\"1.1\"?><a>x\u{85}y\u{2028}z</a>".as_bytes()),
            ["x\ny\nz"]
        );
        assert_eq!(
            texts("<a>x\u{85}y</a>".as_bytes()),
            ["x\u{85}y"],
            "XML 1.0 keeps NEL"
        );
    }

    #[test]
    fn a_benign_soap_envelope() {
        let soap = br#"<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:m="urn:x">
  <soap:Header><m:Token>abc</m:Token></soap:Header>
  <soap:Body>
    <m:Upload m:kind="pdf">
      <m:Name>report.pdf</m:Name>
      <m:Data>JVBERi0xLjQK</m:Data>
    </m:Upload>
  </soap:Body>
</soap:Envelope>"#;
        let found = read(soap);
        assert_eq!(
            found[..4],
            [
                pair("element \"m:Token\"", "abc"),
                pair("attribute \"m:kind\" of \"m:Upload\"", "pdf"),
                pair("element \"m:Name\"", "report.pdf"),
                pair("element \"m:Data\"", "JVBERi0xLjQK"),
            ]
        );
        // Then getTextContent of the Upload and the Envelope (two texts each).
        assert_eq!(found.len(), 6);
        assert_eq!(found[4].0, "element \"m:Upload\"");
        assert!(found[4].1.contains("report.pdf\n      JVBERi0xLjQK"));
        assert_eq!(found[5].0, "element \"soap:Envelope\"");
    }

    #[test]
    fn utf16_and_utf32_documents() {
        let doc = "<?xml version=\"1.0\" encoding=\"UTF-16\"?><a b=\"é\">QUJD<![CDATA[REVG]]>\u{10000}</a>";
        let want = ["é", "QUJDREVG\u{10000}"];
        assert_eq!(texts(&utf16(doc, false, true)), want, "UTF-16LE, BOM");
        assert_eq!(texts(&utf16(doc, true, true)), want, "UTF-16BE, BOM");
        assert_eq!(texts(&utf16(doc, false, false)), want, "UTF-16LE, no BOM");
        assert_eq!(texts(&utf16(doc, true, false)), want, "UTF-16BE, no BOM");
        assert_eq!(texts(&utf32(doc, false)), want, "UTF-32LE");
        assert_eq!(texts(&utf32(doc, true)), want, "UTF-32BE");
        let mut utf8 = b"\xef\xbb\xbf".to_vec();
        utf8.extend_from_slice(b"<a>x</a>");
        assert_eq!(texts(&utf8), ["x"], "UTF-8, BOM");
    }

    #[test]
    fn invalid_utf16_becomes_replacement_characters() {
        let mut doc = utf16("<a>x", false, true);
        doc.extend_from_slice(&[0x00, 0xd8]); // a lone high surrogate
        doc.extend_from_slice(&utf16("y</a>", false, false));
        doc.push(b'z'); // half a code unit at the end
        assert_eq!(texts(&doc), ["x\u{fffd}y"]);
    }

    #[test]
    fn entities_are_refused() {
        let (status, reason) = refused(b"<!DOCTYPE a [<!ENTITY e \"QUJD\">]><a>&e;</a>");
        assert_eq!(status, 400);
        assert!(reason.starts_with("XML: "), "{reason}");
        let (status, reason) = refused(b"<a>x&e;</a>");
        assert_eq!(status, 400);
        assert!(reason.contains("\"e\""), "{reason}");
        refused(b"<a b='&ext;'/>");
        refused(b"<!DOCTYPE a SYSTEM \"http://x/a.dtd\"><a>&ext;</a>");
        refused(b"<!DOCTYPE a [<!ENTITY % p SYSTEM \"http://x/\"> %p;]><a/>");
    }

    #[test]
    fn a_doctype_without_entities_is_read() {
        let doc = b"<!DOCTYPE a [<!-- <!ATTLIST a z CDATA 'no'> --><!ELEMENT a (#PCDATA)>\
            <!ATTLIST a id ID #REQUIRED k (x|y) 'x' m CDATA #FIXED \"&#x58;5\">]><a>t</a>";
        assert_eq!(
            read(doc),
            [
                pair("attribute \"k\" of \"a\"", "x"),
                pair("attribute \"m\" of \"a\"", "X5"),
                pair("element \"a\"", "t"),
            ]
        );
    }

    #[test]
    fn malformed_documents_hand_over_what_was_read() {
        assert_eq!(texts(b"<a>QUJD<b>REVG"), ["REVG", "QUJD", "QUJDREVG"]);
        assert_eq!(texts(b"<a>QUJD</b>REVG</a>"), ["QUJD"]);
        assert_eq!(texts(b"<a>QUJD<![CDATA[REVG"), ["QUJD"]);
        assert_eq!(texts(b"<a>x &#0; y</a>"), ["x "]);
        assert_eq!(texts(b"<a>x & y</a>"), Vec::<String>::new());
        assert_eq!(texts(b"<a b='1' c></a>"), ["1"]);
        assert!(texts(b"").is_empty());
        assert!(texts(b"<").is_empty());
    }

    #[test]
    fn text_after_the_root_is_read_too() {
        assert_eq!(
            read(b"<a>x</a>&#x59;<b>z</b>"),
            [
                pair("element \"a\"", "x"),
                pair("element \"b\"", "z"),
                pair("text outside the root element", "Y"),
                pair("document text", "xYz"),
            ]
        );
    }

    #[test]
    fn repeated_attributes_are_all_handed_over() {
        assert_eq!(texts(b"<a b='1' b='2'/>"), ["1", "2"]);
    }

    #[test]
    fn namespace_declarations_are_skipped() {
        assert!(texts(b"<a xmlns='urn:x' xmlns:p='urn:y'/>").is_empty());
    }

    #[test]
    fn values_are_counted() {
        let doc = b"<a><b>1</b><b>2</b><b>3</b></a>";
        assert_eq!(read_max(doc, 4).unwrap().len(), 4);
        match read_max(doc, 3) {
            Err(ScanError::Refused { status, reason }) => {
                assert_eq!(status, 413);
                assert_eq!(reason, "XML document: more than 3 values");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors_of_each_are_returned_as_they_are() {
        let r = values(&mem(&[b"<a>x</a>"]), &std::env::temp_dir(), 10, &mut |_, _| {
            Err(ScanError::Closed)
        });
        assert!(matches!(r, Err(ScanError::Closed)));
    }

    #[test]
    fn unknown_charsets_are_refused() {
        let (status, reason) =
            refused(b"<?xml version=\"1.0\" encoding=\"x-no-such\"?><a>x</a>");
        assert_eq!(status, 400);
        assert!(reason.contains("x-no-such"), "{reason}");
        // EBCDIC `<?xml version="1.0" encoding="x-no-such"?>`.
        let ebcdic: Vec<u8> = b"<?xml version=\"1.0\" encoding=\"x-no-such\"?>"
            .iter()
            .map(|&a| (0..=255u8).find(|&e| ebcdic_ascii(e) == a).unwrap())
            .collect();
        assert_eq!(refused(&ebcdic).0, 400);
        assert_eq!(refused(&ebcdic[..8]).0, 400, "no declaration");
        // A charset declared past the head cannot be told before reading.
        let mut late = b"<?xml version=\"1.0\"".to_vec();
        late.extend_from_slice(&[b' '; 2000]);
        late.extend_from_slice(b"encoding=\"x-no-such\"?><a>x</a>");
        assert_eq!(refused(&late).0, 400);
        // UTF-8 and ASCII are read as they are.
        let ascii = b"<?xml version='1.0' encoding='US-ASCII'?><a>x</a>";
        assert_eq!(texts(ascii), ["x"]);
    }

    #[test]
    fn long_values_are_spilled() {
        let long = "QUJD".repeat(300_000);
        let doc = format!("<a b=\"{long}\">{long}<![CDATA[{long}]]></a>");
        let mut spilled = Vec::new();
        values(&mem(&[doc.as_bytes()]), &std::env::temp_dir(), 10, &mut |_, v| {
            let file = v.parts().iter().any(|p| matches!(p, BodyPart::File { .. }));
            spilled.push((v.len(), file));
            Ok(())
        })
        .unwrap();
        let n = long.len() as u64;
        assert_eq!(spilled, [(n, true), (2 * n, true)]);
    }

    #[test]
    fn deep_nesting_is_refused() {
        let doc = "<a>".repeat(MAX_DEPTH + 1);
        assert_eq!(refused(doc.as_bytes()).0, 413);
        let doc = "<a>".repeat(100);
        assert!(read(doc.as_bytes()).is_empty());
    }

    #[test]
    fn looks_like_xml() {
        for yes in [
            &b"<?xml version=\"1.0\"?><a/>"[..],
            b"  \r\n<a>",
            b"<!DOCTYPE a><a/>",
            b"<!-- c --><a/>",
            b"<_a/>",
            b"<:a/>",
            "<é/>".as_bytes(),
            b"\xef\xbb\xbf<a/>",
            b"<soap:Envelope>",
        ] {
            assert!(looks_like(yes), "{:?}", String::from_utf8_lossy(yes));
        }
        assert!(looks_like(&utf16("<?xml version=\"1.0\"?>", false, true)));
        assert!(looks_like(&utf16("\n<a/>", true, true)));
        assert!(looks_like(&utf16("<?xml version=\"1.0\"?>", true, false)));
        assert!(looks_like(&utf16("<?xml version=\"1.0\"?>", false, false)));
        assert!(looks_like(&utf32("<a/>", false)));
        assert!(looks_like(&utf32("<a/>", true)));
        for no in [
            &b"{\"a\": \"<b>\"}"[..],
            b"[1, 2]",
            b"hello <a>",
            b"<1/>",
            b"< a>",
            b"<",
            b"",
            b"<!doctype html>",
            b"a=1&b=2",
            b"<\0a\0",
        ] {
            assert!(!looks_like(no), "{:?}", String::from_utf8_lossy(no));
        }
    }

    #[test]
    fn never_panics_on_odd_input() {
        for doc in [
            &b"<!DOCTYPE"[..],
            b"<!DOCTYPE a [<!ATTLIST",
            b"<!DOCTYPE a [<!ATTLIST a b CDATA '",
            b"<!DOCTYPE a [<!ATTLIST a b CDATA \"x\"",
            b"<!DOCTYPE a [<!ATTLIST a (b) \"x\">]><a/>",
            b"<![CDATA[x]]>",
            b"<?xml",
            b"<?xml version='1.1' encoding=",
            b"\xfe\xff\0",
            b"\0\0\xfe\xff\0\0\0<\0\0\0a",
            b"</a>",
            b"<a>&#xFFFFFFFFFF;</a>",
            b"<a>&#;</a>",
            b"<a>&#x;</a>",
            b"<a b='&#xD800;'/>",
            b"<a b='&'/>",
            b"<a/><a/><a/>",
        ] {
            let _ = read_max(doc, 100);
        }
    }
}
