//! The DOCTYPE: the entities its internal subset declares and the default values its
//! `<!ATTLIST` declarations give attributes. The subset is cut into declarations as quick-xml
//! cuts it to find the DOCTYPE's end (literals of `<!ENTITY`, `<!ATTLIST` and `<!NOTATION`
//! may hold `>`; other markup ends at the first `>`), so that both read the same markup.
//!
//! A parameter entity reference (`%name;`) outside a comment, a processing instruction or a
//! literal that is not an entity's is refused (400): in the JDK it can declare more entities
//! (and within a declaration of the internal subset XML does not allow it at all).

use memchr::memchr3;

use super::entities::{parameter_reference, Entities, Entity};
use super::{is_name, is_name_char, is_space, past, trim_start};
use crate::scan::ScanError;

/// A default value an `<!ATTLIST` declaration gives an attribute: element name, attribute
/// name and literal (references unresolved).
pub(super) type Default<'a> = (&'a [u8], &'a [u8], &'a [u8]);

/// Reads a DOCTYPE (what quick-xml hands over: past `<!DOCTYPE`, without the last `>`):
/// declares its general entities in `entities` and returns its attribute defaults.
pub(super) fn read<'a>(
    doctype: &'a [u8],
    entities: &mut Entities,
    xml11: bool,
) -> Result<Vec<Default<'a>>, ScanError> {
    let mut defaults = Vec::new();
    let mut rest = internal_subset(doctype);
    while let Some(at) = memchr3(b']', b'<', b'%', rest) {
        rest = match rest[at] {
            b']' => break,
            b'%' if is_parameter_reference(&rest[at + 1..]) => return Err(parameter_reference()),
            b'%' => &rest[at + 1..],
            _ => declaration(&rest[at..], entities, xml11, &mut defaults)?,
        };
    }
    Ok(defaults)
}

/// What follows the `[` that opens the internal subset (nothing when there is none); the
/// literals of the external identifier before it may hold `[`.
fn internal_subset(doctype: &[u8]) -> &[u8] {
    let mut rest = doctype;
    while let Some(at) = memchr3(b'[', b'"', b'\'', rest) {
        if rest[at] == b'[' {
            return &rest[at + 1..];
        }
        rest = past(&rest[at + 1..], &rest[at..at + 1]);
    }
    &[]
}

/// Reads the markup that begins `rest` (at its `<`); returns what follows it.
fn declaration<'a>(
    rest: &'a [u8],
    entities: &mut Entities,
    xml11: bool,
    defaults: &mut Vec<Default<'a>>,
) -> Result<&'a [u8], ScanError> {
    if let Some(comment) = rest.strip_prefix(b"<!--") {
        return Ok(past(comment, b"-->"));
    }
    if let Some(pi) = rest.strip_prefix(b"<?") {
        return Ok(past(pi, b"?>"));
    }
    for keyword in [&b"<!ENTITY"[..], b"<!ATTLIST", b"<!NOTATION"] {
        if let Some(markup) = rest.strip_prefix(keyword) {
            let (body, after) = quoted_markup(markup);
            refuse_outside_literals(body)?;
            match keyword {
                b"<!ENTITY" => entity(body, entities, xml11)?,
                b"<!ATTLIST" => attlist(body, defaults),
                _ => {}
            }
            return Ok(after);
        }
    }
    let end = memchr::memchr(b'>', rest).unwrap_or(rest.len());
    refuse_in(&rest[..end])?;
    Ok(rest.get(end + 1..).unwrap_or_default())
}

/// A declaration whose literals may hold `>`: its content up to the `>` that ends it, and
/// what follows.
fn quoted_markup(s: &[u8]) -> (&[u8], &[u8]) {
    let mut quote = None;
    for (i, &b) in s.iter().enumerate() {
        match (quote, b) {
            (None, b'>') => return (&s[..i], &s[i + 1..]),
            (None, b'"' | b'\'') => quote = Some(b),
            (Some(q), _) if q == b => quote = None,
            _ => {}
        }
    }
    (s, &[])
}

/// Whether `%` and `after` begin a parameter entity reference: a name and `;`.
fn is_parameter_reference(after: &[u8]) -> bool {
    let n = after.iter().take_while(|&&b| is_name_char(b)).count();
    after.get(n) == Some(&b';') && is_name(&after[..n])
}

/// Refuses a parameter entity reference in `s`.
fn refuse_in(s: &[u8]) -> Result<(), ScanError> {
    for at in memchr::memchr_iter(b'%', s) {
        if is_parameter_reference(&s[at + 1..]) {
            return Err(parameter_reference());
        }
    }
    Ok(())
}

/// Refuses a parameter entity reference in a declaration, outside its literals (those of
/// entities are checked as they are read).
fn refuse_outside_literals(body: &[u8]) -> Result<(), ScanError> {
    let mut rest = body;
    while let Some(at) = memchr3(b'%', b'"', b'\'', rest) {
        let quote = rest[at];
        if quote == b'%' && is_parameter_reference(&rest[at + 1..]) {
            return Err(parameter_reference());
        }
        rest = match quote {
            b'%' => &rest[at + 1..],
            _ => past(&rest[at + 1..], &[quote]),
        };
    }
    Ok(())
}

/// Reads one `<!ENTITY` declaration (its content past the keyword): a general entity is
/// declared, a parameter entity skipped once its literal is checked.
fn entity(body: &[u8], entities: &mut Entities, xml11: bool) -> Result<(), ScanError> {
    entities.count()?;
    if !body.first().is_some_and(|&b| is_space(b)) {
        return Ok(());
    }
    let mut rest = trim_start(body);
    let parameter = rest.len() > 1 && rest[0] == b'%' && is_space(rest[1]);
    if parameter {
        rest = trim_start(&rest[1..]);
    }
    let n = rest
        .iter()
        .take_while(|&&b| !is_space(b) && b != b'"' && b != b'\'')
        .count();
    let name = &rest[..n];
    let spaced = rest.get(n).is_some_and(|&b| is_space(b));
    let entity = definition(trim_start(&rest[n..]), xml11)?;
    if !parameter && is_name(name) {
        entities.declare(name, if spaced { entity } else { Entity::Malformed });
    }
    Ok(())
}

/// What follows an entity's name: a literal, or an external identifier.
fn definition(rest: &[u8], xml11: bool) -> Result<Entity, ScanError> {
    match rest.first() {
        Some(&quote @ (b'"' | b'\'')) => match memchr::memchr(quote, &rest[1..]) {
            Some(end) => Entity::internal(&rest[1..1 + end], xml11),
            None => Ok(Entity::Malformed),
        },
        _ if rest.starts_with(b"SYSTEM") || rest.starts_with(b"PUBLIC") => Ok(Entity::External),
        _ => Ok(Entity::Malformed),
    }
}

/// Reads one `<!ATTLIST element (name type default)*` declaration (its content past the
/// keyword) into `out`.
fn attlist<'a>(body: &'a [u8], out: &mut Vec<Default<'a>>) {
    let mut defs = AttDefs::default();
    let mut rest = trim_start(body);
    while let Some(&b) = rest.first() {
        rest = match b {
            b'"' | b'\'' => {
                let literal = &rest[1..];
                let end = memchr::memchr(b, literal).unwrap_or(literal.len());
                defs.literal(&literal[..end], out);
                literal.get(end + 1..).unwrap_or_default()
            }
            b'(' => past(&rest[1..], b")"),
            _ => {
                let end = rest
                    .iter()
                    .position(|&c| is_space(c) || matches!(c, b'"' | b'\'' | b'('))
                    .unwrap_or(rest.len());
                defs.word(&rest[..end]);
                &rest[end..]
            }
        };
        rest = trim_start(rest);
    }
}

/// Where an `<!ATTLIST` declaration is read: after its element's name, the name, type and
/// default of each attribute (enumerated types are skipped as a whole).
#[derive(Default)]
struct AttDefs<'a> {
    element: Option<&'a [u8]>,
    attribute: Option<&'a [u8]>,
    want_name: bool,
}

impl<'a> AttDefs<'a> {
    fn word(&mut self, word: &'a [u8]) {
        if self.element.is_none() {
            self.element = Some(word);
            self.want_name = true;
        } else if self.want_name {
            self.attribute = Some(word);
            self.want_name = false;
        } else if word == b"#REQUIRED" || word == b"#IMPLIED" {
            self.attribute = None;
            self.want_name = true;
        }
    }

    /// A default value: the attribute's, if one is being read.
    fn literal(&mut self, literal: &'a [u8], out: &mut Vec<Default<'a>>) {
        if let (Some(e), Some(a)) = (self.element, self.attribute.take()) {
            out.push((e, a, literal));
        }
        self.want_name = true;
    }
}
