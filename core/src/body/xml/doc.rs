//! The reading of a document: quick-xml's events turned into the values applications get,
//! each element's own text and the text of its descendants, attribute values and defaults.

use std::path::Path;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use super::encoding::needs_conversion;
use super::entities::Entities;
use super::feed::Feed;
use super::text::{attribute_value, line_ends};
use super::{dtd, is_blank, over_event, short, Halt, HEAD, MAX_VALUE};
use crate::body::sink::BodySink;
use crate::body::RequestBody;
use crate::scan::{ScanError, SPILL_THRESHOLD};

/// Deepest nesting of elements read (Go's Unmarshal refuses deeper than 10 000 too).
pub(super) const MAX_DEPTH: usize = 10_000;
/// The descendant texts handed over may add up to this many times the document's text (plus
/// [`SPILL_THRESHOLD`]): elements nested deep, each holding text, would otherwise make a
/// small document hand over a thousand times its size.
const WHOLE_FACTOR: u64 = 8;

type Each<'e> = &'e mut dyn FnMut(&str, RequestBody) -> Result<(), ScanError>;

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
pub(super) struct Doc<'d, 'e> {
    dir: &'d Path,
    max_values: usize,
    each: Each<'e>,
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
    entities: Entities,
}

impl<'d, 'e> Doc<'d, 'e> {
    /// A document of `size` bytes (what entities may expand to depends on it).
    pub(super) fn new(dir: &'d Path, max_values: usize, size: u64, each: Each<'e>) -> Self {
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
            entities: Entities::new(size),
        }
    }

    /// Reads events up to the end of the document or its first error. `plain`: the document
    /// is read as UTF-8 as it is, so a declaration naming another charset (past the head) is
    /// refused.
    pub(super) fn read(&mut self, reader: &mut Reader<Feed>, plain: bool) -> Result<(), Halt> {
        let mut buf = Vec::new();
        loop {
            buf.clear();
            reader.get_mut().event = 0;
            let event = match reader.read_event_into(&mut buf) {
                Ok(Event::Eof) => return Ok(()),
                Ok(event) => event,
                Err(_) => return Err(reader.get_mut().failure()),
            };
            if reader.get_ref().event > MAX_VALUE {
                return Err(over_event().into());
            }
            self.event(event, plain)?;
        }
    }

    fn event(&mut self, event: Event, plain: bool) -> Result<(), Halt> {
        match event {
            Event::Start(e) => {
                self.attributes(&e)?;
                self.start(&e)?;
            }
            Event::Empty(e) => self.attributes(&e)?,
            Event::End(_) => self.end()?,
            Event::Text(t) => self.text(&t)?,
            Event::CData(t) => self.text(&t)?,
            Event::GeneralRef(r) => self.reference(&r)?,
            Event::Decl(d) => {
                self.xml11 = d.version().is_ok_and(|v| v.as_ref() == b"1.1");
                if let Some(Ok(label)) = d.encoding() {
                    refuse_late_charset(&label, plain)?;
                }
            }
            Event::DocType(d) => self.doctype(&d)?,
            Event::Comment(_) | Event::PI(_) | Event::Eof => {}
        }
        Ok(())
    }

    /// Hands over what is still open (a malformed document ends there) and the descendant
    /// texts.
    pub(super) fn finish(mut self) -> Result<(), ScanError> {
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
        if self.whole_len > WHOLE_FACTOR * self.all_len + SPILL_THRESHOLD as u64 {
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
            let value = attribute_value(&attr.value, self.xml11, &mut self.entities)?;
            let label = format!("attribute \"{}\" of \"{element}\"", short(name));
            self.hand_bytes(&label, &value)?;
        }
        Ok(())
    }

    /// Declares the entities of the DOCTYPE and hands over the attribute defaults it gives.
    fn doctype(&mut self, doctype: &[u8]) -> Result<(), Halt> {
        for (element, name, literal) in dtd::read(doctype, &mut self.entities, self.xml11)? {
            let value = attribute_value(literal, self.xml11, &mut self.entities)?;
            let label = format!("attribute \"{}\" of \"{}\"", short(name), short(element));
            self.hand_bytes(&label, &value)?;
        }
        Ok(())
    }

    /// A reference in text: a character, or an entity's expansion.
    fn reference(&mut self, name: &[u8]) -> Result<(), Halt> {
        let mut text = Vec::new();
        self.entities.reference(name, self.xml11, &mut text)?;
        Ok(self.push_text(&text)?)
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

/// Refuses a declaration naming a charset other than UTF-8 past the head of a document read
/// as UTF-8 as it is: the charset was not known when reading began.
fn refuse_late_charset(label: &[u8], plain: bool) -> Result<(), ScanError> {
    if plain && needs_conversion(label) {
        return Err(ScanError::ambiguous(format!(
            "XML in charset \"{}\" declared past the first {HEAD} bytes",
            short(label)
        )));
    }
    Ok(())
}
