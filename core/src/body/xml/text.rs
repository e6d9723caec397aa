//! Text as parsers hand it over: references resolved, line ends normalized.

use super::entities::Entities;
use super::Halt;

/// The character a reference (`&name;` without `&` and `;`) stands for when it is one of the
/// five predefined entities or a character reference; `None` when it names another entity
/// (for [`Entities`] to expand). A reference that is no name, or a character XML does not
/// allow, is malformed (backends stop there).
pub(super) fn resolve(name: &[u8], xml11: bool) -> Result<Option<char>, Halt> {
    match name {
        b"lt" => Ok(Some('<')),
        b"gt" => Ok(Some('>')),
        b"amp" => Ok(Some('&')),
        b"apos" => Ok(Some('\'')),
        b"quot" => Ok(Some('"')),
        [b'#', b'x', digits @ ..] => char_ref(digits, 16, xml11).map(Some),
        [b'#', digits @ ..] => char_ref(digits, 10, xml11).map(Some),
        _ if super::is_name(name) => Ok(None),
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

/// An attribute value as parsers hand it over: references resolved and entities expanded,
/// line ends normalized (tabs and line ends are not turned into spaces, as Go hands them
/// over).
pub(super) fn attribute_value(
    raw: &[u8],
    xml11: bool,
    entities: &mut Entities,
) -> Result<Vec<u8>, Halt> {
    let mut out = Vec::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = memchr::memchr(b'&', rest) {
        line_ends(&rest[..at], xml11, &mut out);
        let tail = &rest[at + 1..];
        let end = memchr::memchr(b';', tail).ok_or(Halt::Malformed)?;
        entities.reference(&tail[..end], xml11, &mut out)?;
        rest = &tail[end + 1..];
    }
    line_ends(rest, xml11, &mut out);
    Ok(out)
}

/// `text` with its line ends as XML parsers hand them over: `\r\n` and a lone `\r` become
/// `\n`, and in XML 1.1 so do NEL (U+0085), `\r` NEL and LINE SEPARATOR (U+2028).
pub(super) fn line_ends(text: &[u8], xml11: bool, out: &mut Vec<u8>) {
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
