//! ICAP (RFC 3507) message encoding and parsing: what travels on an `icap://` connection.
//! Pure functions over bytes; the exchange itself is in [`crate::icap::IcapClient`].

use std::time::Duration;

use bytes::Bytes;

use crate::headers::{self, HeaderList};

/// Largest ICAP answer head (status line and headers) accepted.
pub const MAX_ICAP_HEAD: usize = 64 * 1024;
/// Largest encapsulated HTTP header block accepted.
pub const MAX_HTTP_HEAD: usize = 64 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IcapError {
    #[error("invalid ICAP status line \"{0}\"")]
    StatusLine(String),
    #[error("invalid ICAP header line")]
    HeaderLine,
    #[error("ICAP answer header is larger than {0} bytes")]
    TooLarge(usize),
    #[error("invalid Encapsulated header \"{0}\"")]
    Encapsulated(String),
    #[error("missing Encapsulated header")]
    NoEncapsulated,
    #[error("invalid encapsulated HTTP header")]
    HttpHead,
    #[error("invalid chunk in ICAP body")]
    Chunk,
    #[error("duplicate \"{0}\" header")]
    Duplicate(&'static str),
}

/// ICAP answer headers that decide framing or caching: a second copy makes the answer
/// ambiguous, so it is refused rather than guessed at.
const SINGLE_ICAP_HEADERS: [&str; 5] = [
    "encapsulated",
    "istag",
    "options-ttl",
    "preview",
    "max-connections",
];

/// Encapsulated HTTP headers the module applies from a modified request.
pub const SINGLE_HTTP_HEADERS: [&str; 3] =
    ["content-type", "content-disposition", "content-length"];

fn no_duplicates<N: AsRef<[u8]>, V>(
    headers: &[(N, V)],
    names: &[&'static str],
) -> Result<(), IcapError> {
    for name in names {
        let n = headers
            .iter()
            .filter(|(h, _)| h.as_ref().eq_ignore_ascii_case(name.as_bytes()))
            .count();
        if n > 1 {
            return Err(IcapError::Duplicate(name));
        }
    }
    Ok(())
}

/// A parsed ICAP answer head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IcapHead {
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl IcapHead {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Finds the end of a head (`\r\n\r\n`, or a bare `\n\n`); returns the length including it.
fn head_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < buf.len() {
        if buf[i] == b'\n' {
            if buf.get(i + 1) == Some(&b'\n') {
                return Some(i + 2);
            }
            if buf.get(i + 1) == Some(&b'\r') && buf.get(i + 2) == Some(&b'\n') {
                return Some(i + 3);
            }
        }
        i += 1;
    }
    None
}

/// Splits a head into lines and folds continuation lines (starting with space or tab) into
/// the previous header, as c-icap's `X-Violations-Found` needs.
fn header_lines(block: &str) -> Result<(String, Vec<(String, String)>), IcapError> {
    let mut lines = block.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let start = lines.next().unwrap_or("").to_string();
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in lines {
        if line.is_empty() {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            let last = headers.last_mut().ok_or(IcapError::HeaderLine)?;
            last.1.push(' ');
            last.1.push_str(line.trim());
            continue;
        }
        let (n, v) = line.split_once(':').ok_or(IcapError::HeaderLine)?;
        if !headers::is_token(n.as_bytes()) {
            return Err(IcapError::HeaderLine);
        }
        headers.push((n.to_string(), v.trim().to_string()));
    }
    // Nothing a scanner writes may carry a control byte on (a CR inside a value would split a
    // header once it is set on the backend's request or relayed to the client).
    let clean = |v: &str| headers::is_field_value(v.as_bytes());
    if !clean(&start) || !headers.iter().all(|(_, v)| clean(v)) {
        return Err(IcapError::HeaderLine);
    }
    Ok((start, headers))
}

/// Parses an ICAP answer head from the start of `buf`. `Ok(None)`: more bytes are needed.
/// Returns the head and the number of bytes it took.
pub fn parse_head(buf: &[u8]) -> Result<Option<(IcapHead, usize)>, IcapError> {
    let Some(end) = head_end(buf) else {
        if buf.len() > MAX_ICAP_HEAD {
            return Err(IcapError::TooLarge(MAX_ICAP_HEAD));
        }
        return Ok(None);
    };
    if end > MAX_ICAP_HEAD {
        return Err(IcapError::TooLarge(MAX_ICAP_HEAD));
    }
    let text = std::str::from_utf8(&buf[..end]).map_err(|_| IcapError::HeaderLine)?;
    let (start, headers) = header_lines(text)?;
    no_duplicates(&headers, &SINGLE_ICAP_HEADERS)?;
    let mut parts = start.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    let code = parts.next().unwrap_or("");
    if !version.starts_with("ICAP/1.") || code.len() != 3 {
        return Err(IcapError::StatusLine(start.clone()));
    }
    let status: u16 = code
        .parse()
        .map_err(|_| IcapError::StatusLine(start.clone()))?;
    if !(100..=599).contains(&status) {
        return Err(IcapError::StatusLine(start));
    }
    Ok(Some((IcapHead { status, headers }, end)))
}

/// The sections of an `Encapsulated` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    ReqHdr,
    ResHdr,
    ReqBody,
    ResBody,
    NullBody,
    OptBody,
}

/// `Encapsulated: req-hdr=0, req-body=412` → [(ReqHdr, 0), (ReqBody, 412)], offsets rising.
pub fn parse_encapsulated(v: &str) -> Result<Vec<(Section, usize)>, IcapError> {
    let bad = || IcapError::Encapsulated(v.to_string());
    let mut out: Vec<(Section, usize)> = Vec::new();
    for item in v.split(',') {
        let (name, off) = item.trim().split_once('=').ok_or_else(bad)?;
        let section = match name.trim().to_ascii_lowercase().as_str() {
            "req-hdr" => Section::ReqHdr,
            "res-hdr" => Section::ResHdr,
            "req-body" => Section::ReqBody,
            "res-body" => Section::ResBody,
            "null-body" => Section::NullBody,
            "opt-body" => Section::OptBody,
            _ => return Err(bad()),
        };
        let off: usize = off.trim().parse().map_err(|_| bad())?;
        if out.last().is_some_and(|&(_, prev)| off < prev) {
            return Err(bad());
        }
        out.push((section, off));
    }
    let bodies = out
        .iter()
        .filter(|(s, _)| {
            matches!(
                s,
                Section::ReqBody | Section::ResBody | Section::NullBody | Section::OptBody
            )
        })
        .count();
    let last_is_body = matches!(
        out.last(),
        Some((
            Section::ReqBody | Section::ResBody | Section::NullBody | Section::OptBody,
            _
        ))
    );
    if out.is_empty() || bodies != 1 || !last_is_body {
        return Err(bad());
    }
    Ok(out)
}

/// An encapsulated HTTP message head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpHead {
    pub start: String,
    pub headers: HeaderList,
}

impl HttpHead {
    pub fn header(&self, name: &str) -> Option<&Bytes> {
        crate::headers::find(&self.headers, name)
    }

    /// Status of a response head (`HTTP/1.0 403 Forbidden` → 403), if it is one a page
    /// relayed to the client may carry (200 to 599: never informational, never beyond HTTP's).
    pub fn status(&self) -> Option<u16> {
        let mut p = self.start.split(' ');
        let v = p.next()?;
        if !v.starts_with("HTTP/") {
            return None;
        }
        let code = p.next()?;
        if code.len() != 3 {
            return None;
        }
        code.parse().ok().filter(|s| (200..=599).contains(s))
    }
}

/// Parses an encapsulated HTTP header block (it must end with an empty line).
pub fn parse_http_head(block: &[u8]) -> Result<HttpHead, IcapError> {
    if block.len() > MAX_HTTP_HEAD || head_end(block) != Some(block.len()) {
        return Err(IcapError::HttpHead);
    }
    let text = String::from_utf8_lossy(block);
    let (start, headers) = header_lines(&text).map_err(|_| IcapError::HttpHead)?;
    if start.is_empty() {
        return Err(IcapError::HttpHead);
    }
    no_duplicates(&headers, &SINGLE_HTTP_HEADERS)?;
    Ok(HttpHead {
        start,
        headers: headers
            .into_iter()
            .map(|(n, v)| (Bytes::from(n), Bytes::from(v)))
            .collect(),
    })
}

/// What the server said in its OPTIONS answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub istag: Option<String>,
    pub preview: Option<usize>,
    pub allow_204: bool,
    pub max_connections: Option<usize>,
    pub ttl: Duration,
    pub transfer_preview: Vec<String>,
    pub transfer_ignore: Vec<String>,
    pub transfer_complete: Vec<String>,
}

/// How long OPTIONS are kept when the server names no `Options-TTL`.
pub const DEFAULT_OPTIONS_TTL: Duration = Duration::from_secs(3600);

fn list(v: Option<&str>) -> Vec<String> {
    v.map(|v| {
        v.split(',')
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .collect()
    })
    .unwrap_or_default()
}

/// Longest `Options-TTL` honoured; a larger one is cut to this.
pub const MAX_OPTIONS_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Largest `Max-Connections` honoured; a larger one means "no limit of ours".
pub const MAX_CONNECTIONS: usize = 65_536;
/// Largest preview sent; a server asking for more gets this much.
pub const MAX_PREVIEW: usize = 1024 * 1024;

/// A decimal number; one too large for a u64 saturates (the caller bounds it anyway).
fn number(v: &str) -> Option<u64> {
    let v = v.trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(v.parse().unwrap_or(u64::MAX))
}

/// What the server said in its OPTIONS answer; every number is bounded before it is used.
pub fn parse_options(head: &IcapHead) -> Options {
    Options {
        istag: head.header("istag").map(str::to_string),
        preview: head
            .header("preview")
            .and_then(number)
            .map(|p| p.min(MAX_PREVIEW as u64) as usize),
        allow_204: head
            .header("allow")
            .is_some_and(|v| v.split(',').any(|x| x.trim() == "204")),
        max_connections: head
            .header("max-connections")
            .and_then(number)
            .filter(|&n| n > 0 && n <= MAX_CONNECTIONS as u64)
            .map(|n| n as usize),
        ttl: head
            .header("options-ttl")
            .and_then(number)
            .map(|t| Duration::from_secs(t).min(MAX_OPTIONS_TTL))
            .unwrap_or(DEFAULT_OPTIONS_TTL),
        transfer_preview: list(head.header("transfer-preview")),
        transfer_ignore: list(head.header("transfer-ignore")),
        transfer_complete: list(head.header("transfer-complete")),
    }
}

/// How to send a body, following the server's Transfer-* lists for the file extension.
///
/// The extension comes from the client's URL, so it may choose only between two ways of
/// sending the whole body: an extension in `Transfer-Ignore` is sent complete, never skipped
/// (RFC 3507 lets a client skip such files; a security gateway must not let the client choose).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer {
    Preview(usize),
    Complete,
}

pub fn transfer_for(options: &Options, uri_path: &str) -> Transfer {
    let file = uri_path
        .split(['?', '#'])
        .next()
        .unwrap_or("")
        .rsplit('/')
        .next()
        .unwrap_or("");
    let ext = file.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    let hit = |l: &[String]| ext.as_ref().is_some_and(|e| l.iter().any(|x| x == e));
    if hit(&options.transfer_ignore) || hit(&options.transfer_complete) {
        return Transfer::Complete;
    }
    let preview_listed =
        hit(&options.transfer_preview) || options.transfer_preview.iter().any(|x| x == "*");
    let complete_all = options.transfer_complete.iter().any(|x| x == "*");
    match options.preview {
        Some(p) if preview_listed || (!complete_all && options.transfer_preview.is_empty()) => {
            Transfer::Preview(p)
        }
        _ => Transfer::Complete,
    }
}

/// The threat name an ICAP server reported, if any, from the header each common server uses:
/// `X-Infection-Found: Type=0; Resolution=2; Threat=NAME;` (RFC draft, c-icap, MetaDefender),
/// `X-Virus-ID: NAME` (c-icap, Symantec), `X-Virus-Name: NAME` (Kaspersky, ESET),
/// `X-Violations-Found: 1 FILE NAME ID RESOLUTION` (c-icap, McAfee), `X-Blocked-Reason: TEXT`
/// (web gateways), in that order.
pub fn threat(head: &IcapHead) -> Option<String> {
    let value = |name: &str| head.header(name).map(str::trim).filter(|v| !v.is_empty());
    if let Some(v) = value("x-infection-found") {
        let named = v
            .split(';')
            .filter_map(|part| part.trim().strip_prefix("Threat="))
            .map(str::trim)
            .find(|name| !name.is_empty());
        if let Some(name) = named {
            return Some(name.to_string());
        }
    }
    if let Some(v) = value("x-virus-id").or_else(|| value("x-virus-name")) {
        return Some(v.to_string());
    }
    if let Some(v) = value("x-violations-found") {
        // "1 - Name 0 0": count, then per violation: file name, threat, ids.
        let words: Vec<&str> = v.split_whitespace().collect();
        if words.len() >= 3 {
            return Some(words[2].to_string());
        }
    }
    value("x-blocked-reason").map(str::to_string)
}

/// An ICAP request head: `METHOD icap://authority/service ICAP/1.0` and headers.
pub fn request_head(
    method: &str,
    authority: &str,
    service: &str,
    headers: &[(String, String)],
) -> Vec<u8> {
    let mut out = format!("{method} icap://{authority}{service} ICAP/1.0\r\nHost: {authority}\r\n");
    for (n, v) in headers {
        out.push_str(n);
        out.push_str(": ");
        out.push_str(v);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// The OPTIONS request for a service (used for the scans' options and the health checks).
pub fn options_request(authority: &str, service: &str) -> Vec<u8> {
    let headers = [("Encapsulated".to_string(), "null-body=0".to_string())];
    request_head("OPTIONS", authority, service_path(service), &headers)
}

/// The service part of an `icap://` URL: its path, `/` when it has none.
pub fn service_path(path: &str) -> &str {
    if path.is_empty() {
        "/"
    } else {
        path
    }
}

/// The encapsulated HTTP request header block.
/// The encapsulated response head of a RESPMOD: the backend's status and header fields.
pub fn http_response_block(status: u16, headers: &[(Bytes, Bytes)]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status)).into_bytes();
    for (n, v) in headers {
        out.extend_from_slice(n);
        out.extend_from_slice(b": ");
        out.extend_from_slice(v);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// A reason phrase for the status lines the module writes (any text is valid there).
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        203 => "Non-Authoritative Information",
        206 => "Partial Content",
        _ => "Response",
    }
}

pub fn http_request_block(method: &[u8], uri: &[u8], headers: &[(Bytes, Bytes)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(method);
    out.push(b' ');
    out.extend_from_slice(uri);
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (n, v) in headers {
        out.extend_from_slice(n);
        out.extend_from_slice(b": ");
        out.extend_from_slice(v);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_threat_from_each_header_the_common_servers_use() {
        let threat_of = |field: &str| {
            let raw = format!("ICAP/1.0 200 OK\r\n{field}\r\nEncapsulated: null-body=0\r\n\r\n");
            let (head, _) = parse_head(raw.as_bytes()).unwrap().unwrap();
            threat(&head)
        };
        for (field, want) in [
            (
                "X-Infection-Found: Type=0; Resolution=2; Threat=Win.Test.EICAR_HDB-1;",
                "Win.Test.EICAR_HDB-1",
            ),
            ("X-Virus-ID: EICAR Test String", "EICAR Test String"),
            ("X-Virus-Name: EICAR-Test-File", "EICAR-Test-File"),
            (
                "X-Violations-Found: 1\r\n\teicar.com\r\n\tEICAR_test_file\r\n\t0\r\n\t0",
                "EICAR_test_file",
            ),
            ("X-Blocked-Reason: Virus found: EICAR", "Virus found: EICAR"),
        ] {
            assert_eq!(threat_of(field).as_deref(), Some(want), "{field}");
        }
        // Empty or shapeless values name nothing.
        for field in [
            "X-Virus-Name:  ",
            "X-Infection-Found: Type=0; Threat=;",
            "X-Violations-Found: 1",
            "X-Other: x",
        ] {
            assert_eq!(threat_of(field), None, "{field}");
        }
        // The first header in the order wins.
        let both = "X-Blocked-Reason: policy\r\nX-Virus-Name: EICAR";
        assert_eq!(threat_of(both).as_deref(), Some("EICAR"));
    }

    const BLOCKED: &[u8] = b"ICAP/1.0 200 OK\r\nServer: C-ICAP/0.5.10\r\nConnection: keep-alive\r\nISTag: \"CI0001-L5CkDhq+qWNs+PZ5DxxXsAAA\"\r\nX-Infection-Found: Type=0; Resolution=2; Threat=Harness.EICAR-Body-NDB.UNOFFICIAL;\r\nX-Violations-Found: 1\r\n\t-\r\n\tHarness.EICAR-Body-NDB.UNOFFICIAL\r\n\t0\r\n\t0\r\nEncapsulated: res-hdr=0, res-body=108\r\n\r\nHTTP/1.0 403 Forbidden\r\n";

    #[test]
    fn parses_c_icap_block_answer_with_folded_header() {
        let (head, used) = parse_head(BLOCKED).unwrap().unwrap();
        assert_eq!(head.status, 200);
        assert_eq!(&BLOCKED[used..], b"HTTP/1.0 403 Forbidden\r\n");
        assert_eq!(
            head.header("x-violations-found"),
            Some("1 - Harness.EICAR-Body-NDB.UNOFFICIAL 0 0")
        );
        assert_eq!(
            threat(&head).as_deref(),
            Some("Harness.EICAR-Body-NDB.UNOFFICIAL")
        );
        let enc = parse_encapsulated(head.header("encapsulated").unwrap()).unwrap();
        assert_eq!(enc, vec![(Section::ResHdr, 0), (Section::ResBody, 108)]);
    }

    #[test]
    fn incomplete_and_bad_heads() {
        assert_eq!(parse_head(b"ICAP/1.0 204 Unmod").unwrap(), None);
        assert!(matches!(
            parse_head(b"HTTP/1.1 200 OK\r\n\r\n"),
            Err(IcapError::StatusLine(_))
        ));
        assert!(matches!(
            parse_head(b"ICAP/1.0 2x4 X\r\n\r\n"),
            Err(IcapError::StatusLine(_))
        ));
        assert!(matches!(
            parse_head(b"ICAP/1.0 204 X\r\nno colon\r\n\r\n"),
            Err(IcapError::HeaderLine)
        ));
        let big = [b"ICAP/1.0 204 X\r\nA: ".to_vec(), vec![b'a'; MAX_ICAP_HEAD]].concat();
        assert_eq!(parse_head(&big), Err(IcapError::TooLarge(MAX_ICAP_HEAD)));
        let (h, n) = parse_head(b"ICAP/1.0 204 Unmodified\r\nISTag: \"x\"\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!((h.status, n), (204, 39));
    }

    #[test]
    fn encapsulated_forms() {
        assert_eq!(
            parse_encapsulated("null-body=0").unwrap(),
            vec![(Section::NullBody, 0)]
        );
        assert_eq!(
            parse_encapsulated("req-hdr=0, req-body=174").unwrap(),
            vec![(Section::ReqHdr, 0), (Section::ReqBody, 174)]
        );
        assert!(parse_encapsulated("req-hdr=0").is_err());
        assert!(parse_encapsulated("req-hdr=10, req-body=5").is_err());
        assert!(parse_encapsulated("res-body=0, res-hdr=5").is_err());
        assert!(parse_encapsulated("req-hdr=x, null-body=1").is_err());
        assert!(parse_encapsulated("").is_err());
    }

    #[test]
    fn options_and_transfer_rules() {
        let raw = b"ICAP/1.0 200 OK\r\nMethods: RESPMOD, REQMOD\r\nISTag: \"CI0001-L5Ck\"\r\nTransfer-Preview: *\r\nOptions-TTL: 3600\r\nPreview: 1024\r\nAllow: 204\r\nMax-Connections: 7\r\nEncapsulated: null-body=0\r\n\r\n";
        let (h, _) = parse_head(raw).unwrap().unwrap();
        let o = parse_options(&h);
        assert_eq!(o.preview, Some(1024));
        assert!(o.allow_204);
        assert_eq!(o.max_connections, Some(7));
        assert_eq!(o.ttl, Duration::from_secs(3600));
        assert_eq!(transfer_for(&o, "/up/a.bin?x=1"), Transfer::Preview(1024));
        let o2 = Options {
            transfer_ignore: vec!["jpg".into()],
            transfer_complete: vec!["exe".into()],
            ..o.clone()
        };
        // An ignored type is still sent, whole, whatever the client names its file.
        for url in ["/a/photo.JPG", "/upload.jpg", "/x;.jpg", "/a/b.jpg?x=1"] {
            assert_eq!(transfer_for(&o2, url), Transfer::Complete, "{url}");
        }
        assert_eq!(transfer_for(&o2, "/a/setup.exe"), Transfer::Complete);
        let o3 = Options { preview: None, ..o };
        assert_eq!(transfer_for(&o3, "/a"), Transfer::Complete);
    }

    #[test]
    fn hostile_options_numbers_are_bounded() {
        let raw = b"ICAP/1.0 200 OK\r\nISTag: \"x\"\r\nOptions-TTL: 99999999999999999999999\r\nPreview: 18446744073709551615\r\nMax-Connections: 4294967296000\r\nEncapsulated: null-body=0\r\n\r\n";
        let (h, _) = parse_head(raw).unwrap().unwrap();
        let o = parse_options(&h);
        assert_eq!(o.ttl, MAX_OPTIONS_TTL, "an overflowing TTL is cut");
        assert_eq!(o.preview, Some(MAX_PREVIEW));
        assert_eq!(o.max_connections, None);
        let raw = b"ICAP/1.0 200 OK\r\nOptions-TTL: 18446744073709551615\r\nPreview: -1\r\nMax-Connections: +3\r\nEncapsulated: null-body=0\r\n\r\n";
        let o = parse_options(&parse_head(raw).unwrap().unwrap().0);
        assert_eq!(o.ttl, MAX_OPTIONS_TTL);
        assert_eq!(o.preview, None);
        assert_eq!(o.max_connections, None);
        // Adding the TTL to the clock must not overflow.
        let _ = std::time::Instant::now() + o.ttl;
    }

    #[test]
    fn duplicate_framing_headers_are_refused() {
        let raw = b"ICAP/1.0 204 No Content\r\nEncapsulated: null-body=0\r\nencapsulated: null-body=99999999\r\n\r\n";
        assert_eq!(
            parse_head(raw).unwrap_err(),
            IcapError::Duplicate("encapsulated")
        );
        let http = b"POST /a HTTP/1.1\r\nContent-Type: a/b\r\nContent-Type: c/d\r\n\r\n";
        assert_eq!(
            parse_http_head(http).unwrap_err(),
            IcapError::Duplicate("content-type")
        );
    }

    #[test]
    fn relayed_page_statuses_are_200_to_599() {
        for (line, want) in [
            ("HTTP/1.1 403 Forbidden", Some(403)),
            ("HTTP/1.1 200 OK", Some(200)),
            ("HTTP/1.1 101 Switching", None),
            ("HTTP/1.1 100 Continue", None),
            ("HTTP/1.1 600 Odd", None),
            ("HTTP/1.1 0403 Padded", None),
        ] {
            let h = parse_http_head(format!("{line}\r\n\r\n").as_bytes()).unwrap();
            assert_eq!(h.status(), want, "{line}");
        }
    }

    #[test]
    fn http_heads() {
        let h = parse_http_head(
            b"HTTP/1.0 403 Forbidden\r\nServer: C-ICAP\r\nContent-Type: text/html\r\n\r\n",
        )
        .unwrap();
        assert_eq!(h.status(), Some(403));
        assert_eq!(
            h.header("content-type").map(|v| &v[..]),
            Some(&b"text/html"[..])
        );
        assert!(parse_http_head(b"HTTP/1.0 403 Forbidden\r\n").is_err());
        let block = http_request_block(
            b"POST",
            b"/up?a=1",
            &[(Bytes::from_static(b"Host"), Bytes::from_static(b"h"))],
        );
        assert_eq!(block, b"POST /up?a=1 HTTP/1.1\r\nHost: h\r\n\r\n");
        let r = parse_http_head(&block).unwrap();
        assert_eq!(r.status(), None);
    }
}

#[cfg(test)]
mod fuzz {
    //! Property tests: the answer parsers never panic, and agree with themselves however the
    //! input is split.
    use super::*;
    use crate::icap::chunked::{chunk_header, ChunkDecoder, Decoded};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn parse_head_never_panics(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = parse_head(&data);
        }

        #[test]
        fn parse_head_of_icap_like_text(lines in proptest::collection::vec("[ -~\t]{0,40}", 0..12), status in 0u16..1000) {
            let text = format!("ICAP/1.0 {status} X\r\n{}\r\n\r\n", lines.join("\r\n"));
            if let Ok(Some((h, used))) = parse_head(text.as_bytes()) {
                prop_assert!(used <= text.len());
                prop_assert!((100..=599).contains(&h.status));
            }
        }

        #[test]
        fn encapsulated_never_panics(s in "[a-z=, 0-9-]{0,60}") {
            if let Ok(v) = parse_encapsulated(&s) {
                prop_assert!(!v.is_empty());
                prop_assert!(v.windows(2).all(|w| w[0].1 <= w[1].1));
            }
        }

        #[test]
        fn chunk_decoder_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut d = ChunkDecoder::default();
            let mut buf = &data[..];
            for _ in 0..1000 {
                match d.decode(buf) {
                    Ok((Decoded::NeedMore, 0)) | Ok((Decoded::End, _)) | Err(_) => break,
                    Ok((_, used)) => buf = &buf[used..],
                }
            }
        }

        #[test]
        fn chunked_roundtrip(body in proptest::collection::vec(any::<u8>(), 0..3000), sizes in proptest::collection::vec(1usize..700, 1..10)) {
            let mut wire = Vec::new();
            let mut rest = &body[..];
            let mut i = 0;
            while !rest.is_empty() {
                let n = sizes[i % sizes.len()].min(rest.len());
                wire.extend_from_slice(&chunk_header(n));
                wire.extend_from_slice(&rest[..n]);
                wire.extend_from_slice(b"\r\n");
                rest = &rest[n..];
                i += 1;
            }
            wire.extend_from_slice(b"0\r\n\r\n");
            let mut d = ChunkDecoder::default();
            let mut out = Vec::new();
            let mut buf = &wire[..];
            loop {
                let (what, used) = d.decode(buf).unwrap();
                if let Decoded::Data(r) = &what {
                    out.extend_from_slice(&buf[r.clone()]);
                }
                buf = &buf[used..];
                if what == Decoded::End {
                    break;
                }
            }
            prop_assert_eq!(out, body);
            prop_assert!(buf.is_empty());
        }
    }

    #[test]
    fn control_bytes_in_a_scanners_heads_are_refused() {
        let icap = |h: &str| parse_head(format!("ICAP/1.0 200 OK\r\n{h}\r\n\r\n").as_bytes());
        assert!(icap("ISTag: \"a\"").unwrap().is_some());
        for bad in [
            "X\u{1}: a",
            "X: a\u{1}",
            "X: a\rY: b",
            "X\0Y: a",
            "a@b: 1",
            "X: a\u{7f}",
        ] {
            assert!(icap(bad).is_err(), "{bad:?}");
        }
        let http = |h: &str| parse_http_head(format!("HTTP/1.1 403 No\r\n{h}\r\n\r\n").as_bytes());
        assert!(http("Content-Type: text/html").is_ok());
        for bad in [
            "Content-Type: text/plain\rX-Injected: 1",
            "a\rSet-Cookie: b",
            "X: \u{0}",
            "X: \u{1b}[31m",
        ] {
            assert!(http(bad).is_err(), "{bad:?}");
        }
        assert!(parse_http_head(b"HTTP/1.1 403 No\x01\r\n\r\n").is_err());
    }
}
