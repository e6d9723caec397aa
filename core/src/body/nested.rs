//! Whether a value could be a body a backend reads again: what makes the module read an
//! object that declares no type (a form field, a JSON string, a decoded value) once more.

use crate::body::utf::{detect, Encoding};
use crate::body::xml;

/// Whether an object that declares no type could be a body a backend reads again: JSON
/// (a value's first character, or the zero bytes of UTF-16/32), XML, or url-encoded text
/// whose decoding differs from it. Cheap: on every value of every form.
pub fn may_be_body(head: &[u8]) -> bool {
    if json_start(head) || xml::looks_like(head) {
        return true;
    }
    looks_urlencoded(head)
}

/// Whether the first character is one a JSON value begins with that holds strings.
pub fn json_start(head: &[u8]) -> bool {
    let (enc, bom) = detect(head);
    if enc != Encoding::Utf8 {
        return true;
    }
    let rest = &head[bom.min(head.len())..];
    matches!(
        rest.iter()
            .find(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n')),
        Some(b'{' | b'[' | b'"')
    )
}

/// Text with a `=` and a `%XX` escape: a query string an application may decode again.
pub fn looks_urlencoded(head: &[u8]) -> bool {
    if memchr::memchr(b'=', head).is_none() {
        return false;
    }
    let escaped = memchr::memchr_iter(b'%', head).any(|i| {
        head.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
            && head.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
    });
    escaped
        && !head
            .iter()
            .any(|&b| b < 0x20 && !matches!(b, b'\t' | b'\r' | b'\n'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_that_may_be_bodies() {
        assert!(may_be_body(b" {\"a\":1}"));
        assert!(may_be_body(b"[1]"));
        assert!(may_be_body(b"\"QUJD\""));
        assert!(may_be_body(b"\xff\xfe{\x00"));
        assert!(may_be_body(b"a=%1f%8b&b=c"));
        assert!(!may_be_body(b"hello world"));
        assert!(!may_be_body(b"QUJDREVGR0g="));
        assert!(!may_be_body(b"100%"));
        assert!(!may_be_body(b"a=b&c=d"));
    }
}
