//! The general entities that a DOCTYPE's internal subset declares, expanded as the JDK's DOM
//! expands them (by default it does; Go's decoder knows none and stops at their reference).
//! Adobe Illustrator's SVG, for one, declares its namespaces as entities and references them
//! in attribute values.
//!
//! An entity's replacement text is its literal as XML 1.0 (section 4.5) and the JDK keep it:
//! line ends normalized, character references resolved, references to other entities left as
//! they are. On reference it is read again as text: its references are resolved and the
//! entities it names expanded in turn. Markup in it (`<`, written or from a character
//! reference) would become elements: that is refused (400) rather than emulated.
//!
//! Refused too (400): a reference to an entity that is not declared, to an external entity
//! (`SYSTEM` or `PUBLIC`: the JDK fetches it, the module never does; declaring one without
//! referencing it is fine) or an unparsed one (`NDATA`), and a reference of an entity to
//! itself, directly or not. The first declaration of a name wins, and the five predefined
//! entities keep their meaning whatever is declared (the JDK's scanner resolves them first).
//! An entity whose literal is malformed (the JDK stops at the DOCTYPE) is malformed where it
//! is referenced (Go stops there).
//!
//! Limits, all 413, that bound what a small document crafted to expand (the billion laughs)
//! costs: [`MAX_DECLARED`] declarations, references nested [`MAX_NESTING`] deep, and expanded
//! bytes up to [`EXPANSION_FACTOR`] times the document's size plus [`EXPANSION_SLACK`].
//! Expanded bytes count every replacement text read, each time it is read, references in it
//! included, so that empty entities referenced in great numbers count too. The JDK counts
//! much the same (`jdk.xml.totalEntitySizeLimit`, in characters): 10^5 by default since
//! JDK 24, which fits within these limits; 5 x 10^7 before, which does not (a document that
//! expands past 1 MiB and 8 times its size is refused here, though such a JDK reads it).

use std::collections::HashMap;

use super::text::{line_ends, resolve};
use super::{push_char, short, Halt, MAX_VALUE};
use crate::scan::ScanError;

/// Most `<!ENTITY` declarations (general and parameter) read in a document.
pub(super) const MAX_DECLARED: usize = 10_000;
/// Deepest nesting of entity references: a reference in the document is at depth 1.
pub(super) const MAX_NESTING: usize = 16;
/// Expanded bytes may add up to this many times the document's size...
const EXPANSION_FACTOR: u64 = 8;
/// ...plus this much, so that a small document may expand to more than its size.
const EXPANSION_SLACK: u64 = 1024 * 1024;

/// What a declaration says of an entity.
pub(super) enum Entity {
    /// Its replacement text.
    Internal(Vec<u8>),
    /// A value the module never fetches: `SYSTEM` or `PUBLIC`, `NDATA` or not.
    External,
    /// A literal that is not well-formed.
    Malformed,
}

impl Entity {
    /// The entity whose literal (between its quotes) is `literal`. A parameter entity
    /// reference in it is refused: it would add to the literal what the module cannot know.
    pub(super) fn internal(literal: &[u8], xml11: bool) -> Result<Entity, ScanError> {
        let mut text = Vec::with_capacity(literal.len());
        line_ends(literal, xml11, &mut text);
        let mut out = Vec::with_capacity(text.len());
        let mut rest = &text[..];
        while let Some(at) = memchr::memchr2(b'&', b'%', rest) {
            out.extend_from_slice(&rest[..at]);
            let tail = &rest[at + 1..];
            let Some(end) = memchr::memchr(b';', tail) else {
                return Ok(Entity::Malformed);
            };
            let name = &tail[..end];
            if rest[at] == b'%' && super::is_name(name) {
                return Err(parameter_reference());
            }
            if rest[at] == b'%' {
                return Ok(Entity::Malformed);
            }
            match resolve(name, xml11) {
                Ok(Some(c)) if name.starts_with(b"#") => push_char(&mut out, c),
                Ok(_) => out.extend_from_slice(&rest[at..at + end + 2]),
                Err(_) => return Ok(Entity::Malformed),
            }
            rest = &tail[end + 1..];
        }
        out.extend_from_slice(rest);
        Ok(Entity::Internal(out))
    }
}

/// The refusal of a DOCTYPE that uses a parameter entity reference.
pub(super) fn parameter_reference() -> ScanError {
    ScanError::ambiguous(
        "XML: the DOCTYPE uses a parameter entity reference (it can declare entities: refused)",
    )
}

/// The entities a document declares, and what expanding them may still cost.
pub(super) struct Entities {
    declared: HashMap<Vec<u8>, Entity>,
    declarations: usize,
    /// Expanded bytes still allowed.
    budget: u64,
}

impl Entities {
    /// No entity declared yet, in a document of `size` bytes.
    pub(super) fn new(size: u64) -> Self {
        Entities {
            declared: HashMap::new(),
            declarations: 0,
            budget: size
                .saturating_mul(EXPANSION_FACTOR)
                .saturating_add(EXPANSION_SLACK),
        }
    }

    /// Counts one `<!ENTITY` declaration.
    pub(super) fn count(&mut self) -> Result<(), ScanError> {
        self.declarations += 1;
        if self.declarations > MAX_DECLARED {
            return Err(ScanError::over_limit(format!(
                "XML document: more than {MAX_DECLARED} entity declarations"
            )));
        }
        Ok(())
    }

    /// Declares the general entity `name`, unless a declaration came first or it is one of
    /// the five predefined entities.
    pub(super) fn declare(&mut self, name: &[u8], entity: Entity) {
        let predefined = [&b"lt"[..], b"gt", b"amp", b"apos", b"quot"].contains(&name);
        if !predefined && !self.declared.contains_key(name) {
            self.declared.insert(name.to_vec(), entity);
        }
    }

    /// Appends to `out` what the reference `&name;` of text or of an attribute value stands
    /// for: a character, or the expansion of an entity.
    pub(super) fn reference(
        &mut self,
        name: &[u8],
        xml11: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), Halt> {
        if let Some(c) = resolve(name, xml11)? {
            push_char(out, c);
            return Ok(());
        }
        let mut expansion = Expansion {
            declared: &self.declared,
            budget: &mut self.budget,
            open: Vec::new(),
            xml11,
        };
        expansion.entity(name, out)
    }
}

/// The expansion of one reference of the document, entities within entities.
struct Expansion<'a> {
    declared: &'a HashMap<Vec<u8>, Entity>,
    budget: &'a mut u64,
    /// The names of the entities being expanded, outermost first.
    open: Vec<&'a [u8]>,
    xml11: bool,
}

impl<'a> Expansion<'a> {
    fn entity(&mut self, name: &[u8], out: &mut Vec<u8>) -> Result<(), Halt> {
        let (name, text) = self.lookup(name)?;
        self.enter(name, text.len())?;
        self.replace(text, out)?;
        self.open.pop();
        Ok(())
    }

    /// The declared name and the replacement text of the entity `name`.
    fn lookup(&self, name: &[u8]) -> Result<(&'a [u8], &'a [u8]), Halt> {
        let declared: &'a HashMap<Vec<u8>, Entity> = self.declared;
        match declared.get_key_value(name) {
            Some((name, Entity::Internal(text))) => Ok((name, text)),
            Some((_, Entity::Malformed)) => Err(Halt::Malformed),
            Some((_, Entity::External)) => Err(ScanError::ambiguous(format!(
                "XML: a reference to the external entity \"{}\" (never fetched)",
                short(name)
            ))
            .into()),
            None => Err(ScanError::ambiguous(format!(
                "XML: a reference to the entity \"{}\", which is not declared",
                short(name)
            ))
            .into()),
        }
    }

    /// Opens the entity `name`, whose replacement text is `len` bytes long, within the
    /// limits.
    fn enter(&mut self, name: &'a [u8], len: usize) -> Result<(), ScanError> {
        if self.open.contains(&name) {
            return Err(ScanError::ambiguous(format!(
                "XML: the entity \"{}\" references itself",
                short(name)
            )));
        }
        if self.open.len() >= MAX_NESTING {
            return Err(ScanError::over_limit(format!(
                "XML document: entity references nested over {MAX_NESTING} deep"
            )));
        }
        let len = len as u64;
        if len > *self.budget {
            return Err(ScanError::over_limit(format!(
                "XML document: entities expanded over {EXPANSION_FACTOR} times the document's \
                 size plus 1 MiB"
            )));
        }
        *self.budget -= len;
        self.open.push(name);
        Ok(())
    }

    /// Reads a replacement text as text into `out`.
    fn replace(&mut self, text: &'a [u8], out: &mut Vec<u8>) -> Result<(), Halt> {
        let mut rest = text;
        while let Some(at) = memchr::memchr2(b'&', b'<', rest) {
            put(out, &rest[..at])?;
            if rest[at] == b'<' {
                let name = self.open.last().copied().unwrap_or_default();
                return Err(ScanError::ambiguous(format!(
                    "XML: markup in the value of the entity \"{}\" (refused)",
                    short(name)
                ))
                .into());
            }
            let tail = &rest[at + 1..];
            let end = memchr::memchr(b';', tail).ok_or(Halt::Malformed)?;
            match resolve(&tail[..end], self.xml11)? {
                Some(c) => put(out, c.encode_utf8(&mut [0u8; 4]).as_bytes())?,
                None => self.entity(&tail[..end], out)?,
            }
            rest = &tail[end + 1..];
        }
        put(out, rest)
    }
}

/// Appends `bytes` to a value, which may not grow over [`MAX_VALUE`].
fn put(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), Halt> {
    if (out.len() + bytes.len()) as u64 > MAX_VALUE {
        return Err(ScanError::over_limit("XML document: a value over 64 MiB").into());
    }
    out.extend_from_slice(bytes);
    Ok(())
}
