//! Documents in UTF-16, UTF-32 and the charsets their declarations name.

use super::super::encoding::ebcdic_ascii;
use super::*;

#[test]
fn utf16_and_utf32_documents() {
    let doc =
        "<?xml version=\"1.0\" encoding=\"UTF-16\"?><a b=\"é\">QUJD<![CDATA[REVG]]>\u{10000}</a>";
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
    doc.push(b'z'); // half a code unit at the end: outside the root element
    assert_eq!(
        texts(&doc),
        ["x\u{fffd}y", "\u{fffd}", "x\u{fffd}y\u{fffd}"]
    );
}

#[test]
fn unknown_charsets_are_refused() {
    let (status, reason) = refused(b"<?xml version=\"1.0\" encoding=\"x-no-such\"?><a>x</a>");
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
fn entities_in_utf16() {
    let doc = "<!DOCTYPE a [<!ENTITY e \"QUJD\">]><a b=\"&e;\">&e;REVG</a>";
    let want = ["QUJD", "QUJDREVG"];
    assert_eq!(texts(&utf16(doc, false, true)), want);
    assert_eq!(texts(&utf32(doc, true)), want);
}

#[test]
fn byte_order_marks_at_the_start_are_skipped_however_the_body_is_cut() {
    let doc = b"\xef\xbb\xbf\xef\xbb\xbf<a>x</a>";
    let whole = format!("{:?}", read_pieces(&[doc], 100));
    let cut: Vec<&[u8]> = doc.chunks(1).collect();
    assert_eq!(format!("{:?}", read_pieces(&cut, 100)), whole);
    let marks = b"\xef\xbb\xbf\xef\xbb\xbf";
    let cut: Vec<&[u8]> = marks.chunks(1).collect();
    assert_eq!(
        format!("{:?}", read_pieces(&cut, 100)),
        format!("{:?}", read_pieces(&[marks], 100))
    );
}
