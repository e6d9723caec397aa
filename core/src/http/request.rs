//! The request to an HTTP scanner (SPEC §3): the client's method, URI, headers and body.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};

use crate::headers;
use crate::scan::{ResponseHead, ScanError, ScanOptions, ScanRequest, Target};

/// Builds the request to the scanner (SPEC §3).
pub fn build_request(
    target: &Target,
    req: &ScanRequest,
    opts: &ScanOptions,
) -> Result<http::Request<()>, ScanError> {
    let method = http::Method::from_bytes(&req.method)
        .map_err(|_| ScanError::Request("invalid method".into()))?;
    let mut path = Vec::with_capacity(target.url.path.len() + req.uri.len());
    path.extend_from_slice(target.url.path.as_bytes());
    path.extend_from_slice(&req.uri);
    if path.is_empty() || path[0] != b'/' {
        path.insert(0, b'/');
    }
    let uri = http::Uri::from_maybe_shared(Bytes::from(escape_target(&path)))
        .map_err(|e| ScanError::Request(format!("invalid request URI ({e})")))?;
    let client = match &req.response {
        None => req.headers.clone(),
        Some(res) => response_fields(&req.headers, res),
    };
    let fields = headers::scan_headers(
        &client,
        &req.default_host(target),
        Some(req.body.len()),
        &req.client_addr,
        &opts.rules,
    );
    let mut builder = http::Request::builder().method(method).uri(uri);
    let map = builder
        .headers_mut()
        .ok_or_else(|| ScanError::Request("invalid request".into()))?;
    for (n, v) in fields {
        let name = HeaderName::from_bytes(&n).map_err(|_| {
            ScanError::Request(format!(
                "invalid header name \"{}\"",
                String::from_utf8_lossy(&n)
            ))
        })?;
        let value = HeaderValue::from_maybe_shared(v)
            .map_err(|_| ScanError::Request(format!("invalid value of header \"{name}\"")))?;
        map.append(name, value);
    }
    builder
        .body(())
        .map_err(|e| ScanError::Request(e.to_string()))
}

/// The fields of a response's scan (docs/protocol.md): the client's, less those that would
/// describe a request body, then `X-Ometascan-Response` with the backend's status and the
/// response's own `Content-Type` and `Content-Disposition`.
fn response_fields(client: &headers::HeaderList, res: &ResponseHead) -> headers::HeaderList {
    const DESCRIBED: [&str; 5] = [
        "content-type",
        "content-disposition",
        "content-encoding",
        "content-range",
        "x-ometascan-response",
    ];
    let mut out: headers::HeaderList = client
        .iter()
        .filter(|(n, _)| {
            !DESCRIBED
                .iter()
                .any(|d| n.eq_ignore_ascii_case(d.as_bytes()))
        })
        .cloned()
        .collect();
    out.push((
        Bytes::from_static(b"X-Ometascan-Response"),
        Bytes::from(res.status.to_string()),
    ));
    let own: [&'static [u8]; 2] = [b"Content-Type", b"Content-Disposition"];
    for name in own {
        let lower = String::from_utf8_lossy(name).to_ascii_lowercase();
        if let Some(v) = headers::find(&res.headers, &lower) {
            out.push((Bytes::from_static(name), v.clone()));
        }
    }
    out
}

/// Percent-encodes the bytes a request target may not carry as they are.
fn escape_target(path: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.len());
    for &b in path {
        let ok = b.is_ascii_graphic()
            && !matches!(
                b,
                b'"' | b'<' | b'>' | b'\\' | b'^' | b'`' | b'{' | b'|' | b'}'
            );
        if ok {
            out.push(b);
        } else {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::{BodyPart, RequestBody};
    use crate::url::ScannerUrl;

    #[test]
    fn request_target_and_headers() {
        let target =
            Target::from_addrs(ScannerUrl::parse("http://127.0.0.1:9/scan/").unwrap(), &[]);
        let mut body = RequestBody::new();
        body.push(BodyPart::Memory(Bytes::from_static(b"hello")));
        let req = ScanRequest {
            method: Bytes::from_static(b"PUT"),
            uri: Bytes::from_static(b"/up/a b?x=1|2"),
            headers: vec![(Bytes::from_static(b"Host"), Bytes::from_static(b"front"))],
            host: None,
            client_addr: "10.1.1.1".into(),
            body,
            response: None,
        };
        let r = build_request(&target, &req, &ScanOptions::default()).unwrap();
        assert_eq!(r.method(), "PUT");
        assert_eq!(r.uri(), "/scan/up/a%20b?x=1%7C2");
        assert_eq!(r.headers()["host"], "front");
        assert_eq!(r.headers()["content-length"], "5");
    }
}
