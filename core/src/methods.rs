//! Which requests are scanned: `ometascan_methods`.
//!
//! A body can travel with any method (WebDAV's, custom tokens, even `GET`), and nginx forwards
//! it whatever the method. So besides method names the set can hold the word `any_with_body`:
//! every request that carries a body is scanned, whatever its method. The default holds the
//! six methods of the vendor's module *and* `any_with_body`, so that no body reaches a backend
//! unscanned unless the operator narrows the list on purpose.

/// The word that stands for "every request with a body".
pub const ANY_WITH_BODY: &str = "any_with_body";

/// Methods named by the default.
const DEFAULT_NAMES: [&str; 6] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodSet {
    /// Method names, upper-cased (matching ignores case: scanning more is the safe side).
    names: Vec<Vec<u8>>,
    /// Every request with a body is scanned too.
    with_body: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MethodError {
    #[error("it is not a method token")]
    NotAToken,
}

impl Default for MethodSet {
    fn default() -> Self {
        MethodSet {
            names: DEFAULT_NAMES
                .iter()
                .map(|m| m.as_bytes().to_vec())
                .collect(),
            with_body: true,
        }
    }
}

/// As the directive writes it: the names, then `any_with_body` when every body is scanned.
impl std::fmt::Display for MethodSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut words: Vec<String> = self
            .names
            .iter()
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .collect();
        if self.with_body {
            words.push(ANY_WITH_BODY.to_string());
        }
        f.write_str(&words.join(" "))
    }
}

/// An RFC 9110 token character.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

impl MethodSet {
    /// Parses the words of the directive, one by one; an error names the word at fault.
    pub fn parse<'a>(
        words: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<MethodSet, (&'a [u8], MethodError)> {
        let mut set = MethodSet {
            names: Vec::new(),
            with_body: false,
        };
        for w in words {
            if w == ANY_WITH_BODY.as_bytes() {
                set.with_body = true;
                continue;
            }
            if w.is_empty() || !w.iter().all(|&b| is_tchar(b)) {
                return Err((w, MethodError::NotAToken));
            }
            let upper = w.to_ascii_uppercase();
            if !set.names.contains(&upper) {
                set.names.push(upper);
            }
        }
        Ok(set)
    }

    /// Whether a request with this method is scanned; `has_body`: it announced a body
    /// (a positive `Content-Length`, or chunked / an open HTTP/2 or HTTP/3 stream).
    pub fn scans(&self, method: &[u8], has_body: bool) -> bool {
        (self.with_body && has_body) || self.names.iter().any(|m| m.eq_ignore_ascii_case(method))
    }

    /// Whether every request with a body is scanned.
    pub fn covers_every_body(&self) -> bool {
        self.with_body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(words: &[&str]) -> Result<MethodSet, (String, MethodError)> {
        MethodSet::parse(words.iter().map(|w| w.as_bytes()))
            .map_err(|(w, e)| (String::from_utf8_lossy(w).into_owned(), e))
    }

    #[test]
    fn the_default_scans_the_six_methods_and_every_body() {
        let d = MethodSet::default();
        for m in ["GET", "head", "POST", "PUT", "PATCH", "DELETE"] {
            assert!(d.scans(m.as_bytes(), false), "{m}");
        }
        assert!(d.scans(b"PROPFIND", true));
        assert!(d.scans(b"X-CUSTOM", true));
        assert!(!d.scans(b"OPTIONS", false));
        assert!(d.covers_every_body());
    }

    #[test]
    fn webdav_and_custom_methods_can_be_named() {
        let s = parse(&["PROPFIND", "mkcol", "X-Upload~1"]).unwrap();
        assert!(s.scans(b"PROPFIND", false));
        assert!(s.scans(b"MKCOL", false));
        assert!(s.scans(b"x-upload~1", false));
        assert!(
            !s.scans(b"POST", true),
            "a narrowed list is what the operator asked for"
        );
        assert!(!s.covers_every_body());
    }

    #[test]
    fn any_with_body_alone_scans_only_requests_with_a_body() {
        let s = parse(&["any_with_body"]).unwrap();
        assert!(s.scans(b"GET", true));
        assert!(!s.scans(b"GET", false));
    }

    #[test]
    fn bad_words_are_named() {
        assert_eq!(
            parse(&["POST", "PO ST"]).unwrap_err(),
            ("PO ST".into(), MethodError::NotAToken)
        );
        assert_eq!(
            parse(&["GET", "a/b"]).unwrap_err(),
            ("a/b".into(), MethodError::NotAToken)
        );
    }
}
