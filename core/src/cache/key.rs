//! What a cached verdict is stored under: a BLAKE3 hash (collision resistant, so no client can
//! make other bytes match a clean file's key) of the scanner's identity, the ISTag of its
//! service, the location's `ometascan_set_header` fields (a policy or an API key sent to the
//! scanner may change its verdict), what the scanner is told about the object (method, path,
//! type, file name) and the object's bytes.

use std::io;

use crate::headers;
use crate::scan::{ScanOptions, ScanRequest, Target};

/// Bytes hashed before each field, so that no two different sets of fields hash alike.
const DOMAIN: &[u8] = b"ometascan verdict cache v1";
/// ... for a backend's response: its verdicts are never a request's.
const RESPONSE_DOMAIN: &[u8] = b"ometascan verdict cache v1, responses";

/// The key of one cached verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key(pub [u8; 32]);

impl Key {
    /// Lowercase hex, for Redis keys and debug lines.
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// The hash of an ISTag as the key takes it.
pub fn istag_digest(istag: &str) -> [u8; 32] {
    *blake3::hash(istag.as_bytes()).as_bytes()
}

/// Everything of a scan but the ISTag, hashed once per object; the ISTag is added when the
/// key is made, so that the key to look up (current ISTag) and the key to store (the ISTag of
/// the answer) come from one reading of the body.
#[derive(Debug, Clone, Copy)]
pub struct ObjectDigest([u8; 32]);

impl ObjectDigest {
    /// Reads the body once (memory parts as they are, file parts with `pread`).
    pub fn of(target: &Target, req: &ScanRequest, opts: &ScanOptions) -> io::Result<Self> {
        let mut h = blake3::Hasher::new();
        field(
            &mut h,
            req.response.as_ref().map_or(DOMAIN, |_| RESPONSE_DOMAIN),
        );
        field(&mut h, target.url.to_string().as_bytes());
        h.update(&(opts.rules.set_headers.len() as u64).to_le_bytes());
        for (name, value) in &opts.rules.set_headers {
            field(&mut h, &name.to_ascii_lowercase());
            field(&mut h, value);
        }
        field(&mut h, &req.method);
        // The path, as the scanner may judge by the name; not the query.
        let path = req.uri.split(|&b| b == b'?').next().unwrap_or_default();
        field(&mut h, path);
        // What describes the object: the request's fields, or the response's.
        let described = req.response.as_ref().map_or(&req.headers, |r| &r.headers);
        if let Some(res) = &req.response {
            h.update(&res.status.to_le_bytes());
        }
        for name in ["content-type", "content-disposition"] {
            field(
                &mut h,
                headers::find(described, name).map_or(&[][..], |v| v),
            );
        }
        h.update(&req.body.len().to_le_bytes());
        let mut reader = req.body.reader(crate::body::FILE_CHUNK);
        while let Some(chunk) = reader.next_chunk() {
            h.update(&chunk?);
        }
        Ok(ObjectDigest(*h.finalize().as_bytes()))
    }

    /// The key under this ISTag (`None`: the scanner has none, an HTTP scanner).
    pub fn key(&self, istag: Option<[u8; 32]>) -> Key {
        let mut h = blake3::Hasher::new();
        h.update(&self.0);
        match istag {
            Some(t) => h.update(&[1]).update(&t),
            None => h.update(&[0]),
        };
        Key(*h.finalize().as_bytes())
    }
}

fn field(h: &mut blake3::Hasher, bytes: &[u8]) {
    h.update(&(bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::testing::mem;
    use crate::url::ScannerUrl;
    use bytes::Bytes;

    fn req(body: &[u8], uri: &str, ctype: &str) -> ScanRequest {
        ScanRequest {
            method: Bytes::from_static(b"POST"),
            uri: Bytes::copy_from_slice(uri.as_bytes()),
            headers: vec![(
                Bytes::from_static(b"Content-Type"),
                Bytes::copy_from_slice(ctype.as_bytes()),
            )],
            host: None,
            client_addr: "127.0.0.1".into(),
            body: mem(&[body]),
            response: None,
        }
    }

    fn target(url: &str) -> Target {
        let url = ScannerUrl::parse(url).unwrap();
        Target::from_addrs(url, &["127.0.0.1:1".parse().unwrap()])
    }

    fn key(t: &Target, r: &ScanRequest, istag: Option<&str>) -> Key {
        key_with(t, r, istag, &ScanOptions::default())
    }

    fn key_with(t: &Target, r: &ScanRequest, istag: Option<&str>, o: &ScanOptions) -> Key {
        ObjectDigest::of(t, r, o)
            .unwrap()
            .key(istag.map(istag_digest))
    }

    #[test]
    fn the_same_object_on_the_same_scanner_has_the_same_key_whatever_the_query() {
        let t = target("icap://scan/avscan");
        let a = key(&t, &req(b"hello", "/up?x=1", "text/plain"), Some("A"));
        let b = key(&t, &req(b"hello", "/up?x=2", "text/plain"), Some("A"));
        assert_eq!(a, b);
    }

    #[test]
    fn a_changed_byte_type_path_scanner_or_istag_changes_the_key() {
        let t = target("icap://scan/avscan");
        let base = key(&t, &req(b"hello", "/up", "text/plain"), Some("A"));
        let others = [
            key(&t, &req(b"hellp", "/up", "text/plain"), Some("A")),
            key(&t, &req(b"hello", "/up.exe", "text/plain"), Some("A")),
            key(
                &t,
                &req(b"hello", "/up", "application/x-msdownload"),
                Some("A"),
            ),
            key(&t, &req(b"hello", "/up", "text/plain"), Some("B")),
            key(&t, &req(b"hello", "/up", "text/plain"), None),
            key(
                &target("icap://scan/other"),
                &req(b"hello", "/up", "text/plain"),
                Some("A"),
            ),
        ];
        for k in others {
            assert_ne!(k, base);
        }
    }

    #[test]
    fn a_header_sent_to_the_scanner_is_part_of_the_key() {
        let t = target("http://scan/");
        let r = req(b"hello", "/up", "text/plain");
        let policy = |v: &'static [u8]| {
            let mut o = ScanOptions::default();
            o.rules
                .set_headers
                .push((Bytes::from_static(b"X-Policy"), Bytes::from_static(v)));
            o
        };
        let strict = key_with(&t, &r, None, &policy(b"strict"));
        let lenient = key_with(&t, &r, None, &policy(b"lenient"));
        assert_ne!(strict, lenient);
        assert_ne!(strict, key(&t, &r, None));
        assert_eq!(strict, key_with(&t, &r, None, &policy(b"strict")));
    }
}
