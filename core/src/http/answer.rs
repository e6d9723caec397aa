//! The verdict table of the HTTP scan protocol and the parts of an answer relayed to the
//! client.

use bytes::Bytes;
use http::header::HeaderValue;

use crate::headers::{self, HeaderList};

/// What the scanner's status line and headers call for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Allowed, no body to read (204).
    Allow,
    /// Read the body: empty → allowed, otherwise the sanitized content.
    Sanitize,
    /// Discard the body, then allowed (pre_cache on, no sanitized mark).
    AllowDiscard,
    /// 400: the scanner could not parse the request.
    BadRequest,
    /// Any other status: relay the page.
    Block,
    /// A final answer cannot be informational.
    Invalid,
}

/// The verdict table of the HTTP scan protocol, for a status and the result header.
pub fn plan(status: u16, sanitized_mark: bool, pre_cache: bool) -> Plan {
    match status {
        100..=199 | 600.. => Plan::Invalid,
        204 => Plan::Allow,
        200..=299 if !pre_cache || sanitized_mark => Plan::Sanitize,
        200..=299 => Plan::AllowDiscard,
        400 => Plan::BadRequest,
        _ => Plan::Block,
    }
}

pub(crate) fn value_bytes(v: &HeaderValue) -> Bytes {
    Bytes::copy_from_slice(v.as_bytes())
}

/// The scanner's header fields to relay to the client: hop-by-hop fields and the framing
/// (`Content-Length`) removed, names in the usual capitalisation.
pub fn relay_headers(map: &http::HeaderMap) -> HeaderList {
    headers::relayable(
        map.iter()
            .map(|(n, v)| (Bytes::from(title_case(n.as_str())), value_bytes(v)))
            .collect(),
    )
}

fn title_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut up = true;
    for c in name.chars() {
        out.push(if up { c.to_ascii_uppercase() } else { c });
        up = c == '-';
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_table() {
        assert_eq!(plan(204, false, false), Plan::Allow);
        assert_eq!(plan(204, false, true), Plan::Allow);
        assert_eq!(plan(200, false, false), Plan::Sanitize);
        assert_eq!(plan(201, false, true), Plan::AllowDiscard);
        assert_eq!(plan(200, true, true), Plan::Sanitize);
        assert_eq!(plan(400, false, false), Plan::BadRequest);
        assert_eq!(plan(403, false, false), Plan::Block);
        assert_eq!(plan(302, false, true), Plan::Block);
        assert_eq!(plan(500, false, false), Plan::Block);
        assert_eq!(plan(101, false, false), Plan::Invalid);
        assert_eq!(plan(600, false, false), Plan::Invalid);
        assert_eq!(plan(999, false, false), Plan::Invalid);
    }

    #[test]
    fn relayed_headers_are_cleaned() {
        let mut m = http::HeaderMap::new();
        m.insert("content-type", HeaderValue::from_static("text/html"));
        m.insert("connection", HeaderValue::from_static("close"));
        m.insert("content-length", HeaderValue::from_static("3"));
        m.insert("x-block-reason", HeaderValue::from_static("virus"));
        let h = relay_headers(&m);
        assert_eq!(
            h,
            vec![
                (
                    Bytes::from_static(b"Content-Type"),
                    Bytes::from_static(b"text/html")
                ),
                (
                    Bytes::from_static(b"X-Block-Reason"),
                    Bytes::from_static(b"virus")
                ),
            ]
        );
    }
}
