//! The values of whole documents, as [`values`] hands them over: every document is read
//! whole and cut into pieces of one byte, which must give the same.

mod encoding;
mod entities;

use super::doc::MAX_DEPTH;
use super::*;
use crate::body::testing::{bytes_of, mem};
use crate::body::BodyPart;

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
        out.extend_from_slice(&if big {
            u.to_be_bytes()
        } else {
            u.to_le_bytes()
        });
    }
    out
}

fn utf32(s: &str, big: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for c in "\u{feff}".chars().chain(s.chars()) {
        let c = u32::from(c);
        out.extend_from_slice(&if big {
            c.to_be_bytes()
        } else {
            c.to_le_bytes()
        });
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
fn malformed_documents_hand_over_what_was_read() {
    assert_eq!(texts(b"<a>QUJD<b>REVG"), ["REVG", "QUJD", "QUJDREVG"]);
    assert_eq!(texts(b"<a>QUJD</b>REVG</a>"), ["QUJD"]);
    assert_eq!(texts(b"<a>QUJD<![CDATA[REVG"), ["QUJD"]);
    assert_eq!(texts(b"<a>x &#0; y</a>"), ["x "]);
    assert_eq!(texts(b"<a>x & y</a>"), ["x "]);
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
    let r = values(
        &mem(&[b"<a>x</a>"]),
        &std::env::temp_dir(),
        10,
        &mut |_, _| Err(ScanError::Closed),
    );
    assert!(matches!(r, Err(ScanError::Closed)));
}

#[test]
fn long_values_are_spilled() {
    let long = "QUJD".repeat(300_000);
    let doc = format!("<a b=\"{long}\">{long}<![CDATA[{long}]]></a>");
    let mut spilled = Vec::new();
    values(
        &mem(&[doc.as_bytes()]),
        &std::env::temp_dir(),
        10,
        &mut |_, v| {
            let file = v.parts().iter().any(|p| matches!(p, BodyPart::File { .. }));
            spilled.push((v.len(), file));
            Ok(())
        },
    )
    .unwrap();
    let n = long.len() as u64;
    assert_eq!(spilled, [(n, true), (2 * n, true)]);
}

#[test]
fn descendant_texts_are_bounded() {
    // Each of 300 nested elements holds the text of all the others.
    let doc = format!("{}{}", "<a>x".repeat(300), "</a>".repeat(300));
    assert!(read(doc.as_bytes()).len() > 300);
    let doc = format!("{}{}", "<a>x".repeat(2000), "</a>".repeat(2000));
    match read_max(doc.as_bytes(), 1_000_000) {
        Err(ScanError::Refused { status, reason }) => {
            assert_eq!(status, 413);
            assert!(reason.contains("nested text"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
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
        b"<!DOCTYPE a [<!ENTITY",
        b"<!DOCTYPE a [<!ENTITY>]><a/>",
        b"<!DOCTYPE a [<!ENTITY >]><a/>",
        b"<!DOCTYPE a [<!ENTITY % >]><a/>",
        b"<!DOCTYPE a [<!ENTITY e>]><a>&e;</a>",
        b"<!DOCTYPE a [<!ENTITY e '>]><a>&e;</a>",
        b"<!DOCTYPE a [<!ENTITY e '&'>]><a>&e;</a>",
        b"<!DOCTYPE a [<!ENTITY e '&#38;'>]><a>&e;</a>",
        b"<!DOCTYPE a [<!ENTITY e '&#38;#'>]><a b='&e;'/>",
        b"<!DOCTYPE a [<!ENTITY e '%'>]><a>&e;</a>",
        b"<!DOCTYPE a [%]><a/>",
        b"<!DOCTYPE a [<!ELEMENT a (%]><a/>",
        b"<!DOCTYPE a \"[\" '[' [<!ENTITY e 'x'>]><a>&e;</a>",
        b"<!DOCTYPE a [<!-- <!ENTITY e 'x'> --><?p <!ENTITY?>]><a/>",
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
