//! An XML document: whether it looks like XML, and every value it hands over (element text
//! joined over CDATA sections, references and entities, descendant texts, attribute values,
//! in UTF-8, UTF-16 or UTF-32), whole and cut; also the same document in UTF-16, and the
//! document after a DOCTYPE that declares entities of every kind, so that the references the
//! input makes are expanded (or refused, or over a limit) too.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ometascan_core::body::xml::{looks_like, values};
use ometascan_fuzz::{body, bytes_of, cuts, dir};

/// Entities for the input to reference: nested, with character references in and out of
/// their literals, fanning out towards the expansion limit (`&g;` is some 3 KiB), a cycle,
/// external, unparsed, holding markup, empty; and an attribute default that uses one.
const ENTITIES: &[u8] = b"<!DOCTYPE a [\
    <!ENTITY e \"QUJD\">\
    <!ENTITY n \"&e;&#x52;&#38;#x45;VG\r\n\">\
    <!ENTITY f \"&n;&n;&n;&n;&n;&n;&n;&n;&n;&n;&n;&n;&n;&n;&n;&n;\">\
    <!ENTITY g \"&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;\">\
    <!ENTITY c \"&d;\"><!ENTITY d \"x&c;\">\
    <!ENTITY x SYSTEM \"http://x/\"><!ENTITY u SYSTEM \"u\" NDATA n>\
    <!ENTITY m \"<b/>\"><!ENTITY z \"\"><!ENTITY e \"ignored\">\
    <!ATTLIST a d CDATA \"&e;&lt;\">\
    ]>";

fn answer(pieces: &[&[u8]]) -> String {
    let b = body(pieces);
    let mut found = Vec::new();
    let r = values(&b, &dir(), 64, &mut |label, v| {
        found.push((label.to_owned(), bytes_of(&v)));
        Ok(())
    });
    format!("{:?} {found:?}", r.map_err(|e| e.to_string()))
}

/// The same answer whole and however cut.
fn same_cut(data: &[u8]) {
    let expected = answer(&[data]);
    for pieces in cuts(data) {
        assert_eq!(answer(&pieces), expected);
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = looks_like(data);
    same_cut(data);
    // The input as UTF-16LE text, with a byte order mark: read through the transcoder.
    let mut wide = vec![0xff, 0xfe];
    for &b in data {
        wide.extend_from_slice(&[b, 0]);
    }
    same_cut(&wide);
    // The input after entity declarations.
    let mut declared = ENTITIES.to_vec();
    declared.extend_from_slice(data);
    same_cut(&declared);
});
