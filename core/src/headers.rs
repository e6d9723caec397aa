//! Header rules shared by the scan protocols: hop-by-hop removal, `X-Forwarded-For`, and the
//! `ometascan_set_header` overrides.

use bytes::Bytes;

/// An ordered list of header fields as they appear on the wire.
pub type HeaderList = Vec<(Bytes, Bytes)>;

/// Fields that belong to one connection and are never forwarded.
pub fn is_hop_by_hop(name: &[u8]) -> bool {
    const HOP: [&[u8]; 7] = [
        b"connection",
        b"keep-alive",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-connection",
    ];
    HOP.iter().any(|h| h.eq_ignore_ascii_case(name))
        || (name.len() >= 6 && name[..6].eq_ignore_ascii_case(b"proxy-"))
}

/// A scanner's header fields as relayed to the client (both protocols): hop-by-hop fields
/// and the framing (`Content-Length`) removed.
pub fn relayable(list: HeaderList) -> HeaderList {
    list.into_iter()
        .filter(|(n, _)| !is_hop_by_hop(n) && !n.eq_ignore_ascii_case(b"content-length"))
        .collect()
}

pub fn find<'a>(headers: &'a [(Bytes, Bytes)], name: &str) -> Option<&'a Bytes> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
        .map(|(_, v)| v)
}

/// Whether `name` is a field name as RFC 9110 defines it (a token: letters, digits and
/// ``!#$%&'*+-.^_`|~``). nginx accepts others (`a@b`, `café`) under
/// `ignore_invalid_headers off`.
pub fn is_token(name: &[u8]) -> bool {
    !name.is_empty()
        && name.iter().all(|&b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

/// Whether `value` is a field value as RFC 9110 defines it: visible characters, spaces, tabs
/// and obs-text (bytes 0x80-0xFF); no control bytes (nginx refuses CR, LF and NUL, but lets
/// the others through).
pub fn is_field_value(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80)
}

/// Whether a field is one RFC 9110 allows on the wire (name and value).
pub fn is_valid_field(name: &[u8], value: &[u8]) -> bool {
    is_token(name) && is_field_value(value)
}

/// The fields that say how a body is framed, encoded or split into objects.
const BODY_FIELDS: [&str; 6] = [
    "contenttype",
    "contentencoding",
    "contentlength",
    "transferencoding",
    "contentdisposition",
    "contenttransferencoding",
];

/// A client's field that HTTP forbids (a name that is not a token, a value with control bytes)
/// and that a lenient parser could still read as one of the body's fields (`Content-Type `,
/// `content\x01-type`, a `Content-Type` value with a control byte): its name, for the refusal.
/// Such a field is the one kind of forbidden field the scan cannot leave aside, since the
/// module and a backend would then disagree on what the body is.
pub fn forbidden_body_field(client: &[(Bytes, Bytes)]) -> Option<String> {
    client.iter().find_map(|(n, v)| {
        if is_valid_field(n, v) {
            return None;
        }
        let letters: Vec<u8> = n
            .iter()
            .filter(|b| b.is_ascii_alphabetic())
            .map(u8::to_ascii_lowercase)
            .collect();
        BODY_FIELDS
            .iter()
            .any(|f| f.as_bytes() == letters)
            .then(|| String::from_utf8_lossy(n).escape_debug().to_string())
    })
}

/// Options that shape the header block sent to the scanner.
#[derive(Debug, Clone, Default)]
pub struct HeaderRules {
    /// Append the client address to `X-Forwarded-For`.
    pub x_forwarded_for: bool,
    /// `ometascan_set_header` fields, values already evaluated; an empty value removes the field.
    pub set_headers: Vec<(Bytes, Bytes)>,
}

/// Builds the header block for the scanner from the client's headers.
///
/// Order: the client's fields minus hop-by-hop ones and `Content-Length` (with `Host` as the
/// client sent it, or `default_host` when it sent none), then `Content-Length` when the body
/// is framed by length, then `X-Forwarded-For` when enabled, then the set_header overrides.
/// Fields HTTP forbids (see [`is_valid_field`]) are left out: they cannot be written to a
/// scanner, which parses HTTP, and say nothing of the body (the ones that could are refused
/// first, see [`forbidden_body_field`]); the backend gets the request as nginx forwards it.
pub fn scan_headers(
    client: &[(Bytes, Bytes)],
    default_host: &[u8],
    content_length: Option<u64>,
    client_addr: &str,
    rules: &HeaderRules,
) -> HeaderList {
    let mut out: HeaderList = Vec::with_capacity(client.len() + 4);
    let mut xff: Option<Vec<u8>> = None;
    for (n, v) in client {
        if is_hop_by_hop(n) || n.eq_ignore_ascii_case(b"content-length") || !is_valid_field(n, v) {
            continue;
        }
        if rules.x_forwarded_for && n.eq_ignore_ascii_case(b"x-forwarded-for") {
            let acc = xff.get_or_insert_with(Vec::new);
            if !acc.is_empty() {
                acc.extend_from_slice(b", ");
            }
            acc.extend_from_slice(v);
            continue;
        }
        out.push((n.clone(), v.clone()));
    }
    if find(&out, "host").is_none() {
        out.insert(
            0,
            (
                Bytes::from_static(b"Host"),
                Bytes::copy_from_slice(default_host),
            ),
        );
    }
    if let Some(len) = content_length {
        out.push((
            Bytes::from_static(b"Content-Length"),
            Bytes::from(len.to_string()),
        ));
    }
    if rules.x_forwarded_for {
        let mut v = xff.unwrap_or_default();
        if !v.is_empty() {
            v.extend_from_slice(b", ");
        }
        v.extend_from_slice(client_addr.as_bytes());
        out.push((Bytes::from_static(b"X-Forwarded-For"), Bytes::from(v)));
    }
    for (n, v) in &rules.set_headers {
        out.retain(|(have, _)| !have.eq_ignore_ascii_case(n));
        if !v.is_empty() {
            out.push((n.clone(), v.clone()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(list: &[(&str, &str)]) -> HeaderList {
        list.iter()
            .map(|(n, v)| {
                (
                    Bytes::copy_from_slice(n.as_bytes()),
                    Bytes::copy_from_slice(v.as_bytes()),
                )
            })
            .collect()
    }

    #[test]
    fn drops_hop_by_hop_and_sets_length() {
        let client = h(&[
            ("Host", "up.example"),
            ("Connection", "keep-alive"),
            ("Transfer-Encoding", "chunked"),
            ("Proxy-Authorization", "x"),
            ("TE", "trailers"),
            ("Content-Length", "99"),
            ("X-A", "1"),
        ]);
        let out = scan_headers(
            &client,
            b"s:1",
            Some(5),
            "10.0.0.1",
            &HeaderRules::default(),
        );
        assert_eq!(
            out,
            h(&[
                ("Host", "up.example"),
                ("X-A", "1"),
                ("Content-Length", "5")
            ])
        );
    }

    #[test]
    fn host_defaults_and_xff_appends() {
        let client = h(&[
            ("X-Forwarded-For", "1.1.1.1"),
            ("x-forwarded-for", "2.2.2.2"),
        ]);
        let rules = HeaderRules {
            x_forwarded_for: true,
            set_headers: vec![],
        };
        let out = scan_headers(&client, b"scanner:80", None, "127.0.0.1", &rules);
        assert_eq!(
            out,
            h(&[
                ("Host", "scanner:80"),
                ("X-Forwarded-For", "1.1.1.1, 2.2.2.2, 127.0.0.1")
            ])
        );
        let out = scan_headers(&[], b"s", None, "::1", &rules);
        assert_eq!(out, h(&[("Host", "s"), ("X-Forwarded-For", "::1")]));
    }

    #[test]
    fn set_header_overrides_and_removes() {
        let client = h(&[
            ("Host", "a"),
            ("Accept-Encoding", "gzip"),
            ("User-Agent", "c"),
        ]);
        let rules = HeaderRules {
            x_forwarded_for: false,
            set_headers: vec![
                (Bytes::from_static(b"accept-encoding"), Bytes::new()),
                (
                    Bytes::from_static(b"User-Agent"),
                    Bytes::from_static(b"scan"),
                ),
                (Bytes::from_static(b"X-Key"), Bytes::from_static(b"k1")),
            ],
        };
        let out = scan_headers(&client, b"s", Some(0), "1", &rules);
        assert_eq!(
            out,
            h(&[
                ("Host", "a"),
                ("Content-Length", "0"),
                ("User-Agent", "scan"),
                ("X-Key", "k1")
            ])
        );
    }

    #[test]
    fn tokens_and_field_values_follow_rfc_9110() {
        for ok in ["Content-Type", "x_y", "a!#$%&'*+-.^_`|~9"] {
            assert!(is_token(ok.as_bytes()), "{ok}");
        }
        for bad in ["", "a@b", "café", "x{y}", "a b", "a:b", "a\"b", "a\u{1}"] {
            assert!(!is_token(bad.as_bytes()), "{bad:?}");
        }
        assert!(is_field_value(b"text/plain; a=\"b\"\t\xe9"));
        for bad in [&b"a\rb"[..], b"a\nb", b"a\0", b"a\x01", b"\x7f"] {
            assert!(!is_field_value(bad), "{bad:?}");
        }
    }

    #[test]
    fn forbidden_fields_are_left_out_of_the_scan_copy() {
        let client = h(&[
            ("Host", "a"),
            ("a@b", "1"),
            ("X-Ctl", "a\u{1}b"),
            ("X", "y"),
        ]);
        let out = scan_headers(&client, b"s", None, "1", &HeaderRules::default());
        assert_eq!(out, h(&[("Host", "a"), ("X", "y")]));
        assert_eq!(forbidden_body_field(&client), None);
    }

    #[test]
    fn a_forbidden_field_a_parser_could_read_as_a_body_field_is_named() {
        for (n, v) in [
            ("Content@Type", "multipart/form-data"),
            ("content{encoding}", "gzip"),
            ("Transfer\"Encoding", "chunked"),
            ("Content-Type", "text/plain\u{1}"),
            ("Content-Disposition", "attachment\u{7f}"),
        ] {
            assert!(forbidden_body_field(&h(&[(n, v)])).is_some(), "{n}: {v:?}");
        }
        for (n, v) in [
            ("Content-Type", "multipart/form-data; boundary=b"),
            ("X@Type", "multipart/form-data"),
            ("Content-Typé", "x"),
        ] {
            assert_eq!(forbidden_body_field(&h(&[(n, v)])), None, "{n}: {v:?}");
        }
    }
}
