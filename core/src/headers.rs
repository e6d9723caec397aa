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
        if is_hop_by_hop(n) || n.eq_ignore_ascii_case(b"content-length") {
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
}
