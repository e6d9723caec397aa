//! What a cache entry holds, as bytes: the same encoding in shared memory and in Redis.
//! Decoding treats the bytes as hostile (Redis may answer anything): every length is bounded
//! and checked before it is used, and an entry must name the key it was asked for.

use bytes::Bytes;

use crate::cache::key::Key;
use crate::headers::HeaderList;
use crate::scan::{ResponsePage, Verdict};

/// Largest block page kept; a larger one is not cached (the next request scans again).
pub const MAX_CACHED_PAGE: usize = 64 * 1024;
/// Largest threat name kept.
const MAX_THREAT: usize = 512;
/// At most this many header fields of a page, each name and value at most [`MAX_FIELD`].
const MAX_FIELDS: usize = 32;
const MAX_FIELD: usize = 8 * 1024;
const MAGIC: &[u8; 4] = b"OMC1";

/// A verdict that may be given again without a scan: never a sanitized body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CachedVerdict {
    Allowed,
    Blocked {
        page: ResponsePage,
        threat: Option<String>,
    },
}

impl CachedVerdict {
    /// The verdict to keep of a scan's, if it may be kept: allowed, or blocked with a page
    /// small enough.
    pub fn of(v: &Verdict) -> Option<Self> {
        match v {
            Verdict::Allowed => Some(CachedVerdict::Allowed),
            Verdict::Blocked { page, threat } => {
                let small = page.body.len() <= MAX_CACHED_PAGE
                    && page.headers.len() <= MAX_FIELDS
                    && page
                        .headers
                        .iter()
                        .all(|(n, v)| n.len() <= MAX_FIELD && v.len() <= MAX_FIELD)
                    && threat.as_ref().is_none_or(|t| t.len() <= MAX_THREAT);
                small.then(|| CachedVerdict::Blocked {
                    page: page.clone(),
                    threat: threat.clone(),
                })
            }
            _ => None,
        }
    }

    pub fn into_verdict(self) -> Verdict {
        match self {
            CachedVerdict::Allowed => Verdict::Allowed,
            CachedVerdict::Blocked { page, threat } => Verdict::Blocked { page, threat },
        }
    }
}

/// A decoded entry: the verdict and when it stops being valid (Unix time, milliseconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub verdict: CachedVerdict,
    pub expires_ms: u64,
}

/// Why bytes are not an entry of this key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a verdict cache entry of this key")]
pub struct BadEntry;

pub fn encode(key: &Key, entry: &Entry) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&key.0);
    out.extend_from_slice(&entry.expires_ms.to_le_bytes());
    match &entry.verdict {
        CachedVerdict::Allowed => out.push(0),
        CachedVerdict::Blocked { page, threat } => {
            out.push(1);
            out.extend_from_slice(&page.status.to_le_bytes());
            put(&mut out, threat.as_deref().unwrap_or("").as_bytes());
            out.push(threat.is_some() as u8);
            out.extend_from_slice(&page.head_length.map_or(u64::MAX, |l| l).to_le_bytes());
            out.push(page.headers.len() as u8);
            for (n, v) in &page.headers {
                put(&mut out, n);
                put(&mut out, v);
            }
            put(&mut out, &page.body);
        }
    }
    out
}

fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Reads bytes front to back, every step bounded by what is left.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], BadEntry> {
        if n > self.0.len() {
            return Err(BadEntry);
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], BadEntry> {
        self.take(N)?.try_into().map_err(|_| BadEntry)
    }

    fn u8(&mut self) -> Result<u8, BadEntry> {
        Ok(self.array::<1>()?[0])
    }

    fn bytes(&mut self, max: usize) -> Result<&'a [u8], BadEntry> {
        let len = u32::from_le_bytes(self.array()?) as usize;
        if len > max {
            return Err(BadEntry);
        }
        self.take(len)
    }
}

pub fn decode(key: &Key, bytes: &[u8]) -> Result<Entry, BadEntry> {
    let mut c = Cursor(bytes);
    if c.take(4)? != MAGIC || c.array::<32>()? != key.0 {
        return Err(BadEntry);
    }
    let expires_ms = u64::from_le_bytes(c.array()?);
    let verdict = match c.u8()? {
        0 => CachedVerdict::Allowed,
        1 => blocked(&mut c)?,
        _ => return Err(BadEntry),
    };
    if !c.0.is_empty() {
        return Err(BadEntry);
    }
    Ok(Entry {
        verdict,
        expires_ms,
    })
}

fn blocked(c: &mut Cursor<'_>) -> Result<CachedVerdict, BadEntry> {
    let status = u16::from_le_bytes(c.array()?);
    if !(100..=599).contains(&status) {
        return Err(BadEntry);
    }
    let threat = c.bytes(MAX_THREAT)?;
    let threat = match c.u8()? {
        // "No threat" with a name is not an entry this module writes.
        0 if threat.is_empty() => None,
        1 => Some(
            std::str::from_utf8(threat)
                .map_err(|_| BadEntry)?
                .to_string(),
        ),
        _ => return Err(BadEntry),
    };
    let head_length = match u64::from_le_bytes(c.array()?) {
        u64::MAX => None,
        l => Some(l),
    };
    let count = c.u8()? as usize;
    if count > MAX_FIELDS {
        return Err(BadEntry);
    }
    let mut headers: HeaderList = Vec::with_capacity(count);
    for _ in 0..count {
        let n = Bytes::copy_from_slice(c.bytes(MAX_FIELD)?);
        let v = Bytes::copy_from_slice(c.bytes(MAX_FIELD)?);
        // Entries may come from a shared Redis: a field is relayed to clients only if HTTP
        // allows it, as a scanner's would be.
        if !crate::headers::is_valid_field(&n, &v) {
            return Err(BadEntry);
        }
        headers.push((n, v));
    }
    let body = Bytes::copy_from_slice(c.bytes(MAX_CACHED_PAGE)?);
    Ok(CachedVerdict::Blocked {
        page: ResponsePage {
            status,
            headers,
            body,
            head_length,
        },
        threat,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> ResponsePage {
        ResponsePage {
            status: 403,
            headers: vec![(
                Bytes::from_static(b"Content-Type"),
                Bytes::from_static(b"text/html"),
            )],
            body: Bytes::from_static(b"<h1>blocked</h1>"),
            head_length: None,
        }
    }

    #[test]
    fn a_blocked_entry_comes_back_as_it_was_stored() {
        let key = Key([7; 32]);
        let entry = Entry {
            verdict: CachedVerdict::Blocked {
                page: page(),
                threat: Some("Eicar".into()),
            },
            expires_ms: 1234,
        };
        assert_eq!(decode(&key, &encode(&key, &entry)), Ok(entry));
    }

    #[test]
    fn a_threat_flagged_none_with_a_name_and_a_field_http_forbids_are_not_entries() {
        let key = Key([7; 32]);
        let stored = |threat: Option<&str>, value: &'static [u8]| {
            let mut p = page();
            p.headers[0].1 = Bytes::from_static(value);
            encode(
                &key,
                &Entry {
                    verdict: CachedVerdict::Blocked {
                        page: p,
                        threat: threat.map(str::to_string),
                    },
                    expires_ms: 5,
                },
            )
        };
        // The flag byte follows the threat's name: flip "some" to "none".
        let mut none_named = stored(Some("Eicar"), b"text/html");
        let flag = MAGIC.len() + 32 + 8 + 1 + 2 + 4 + "Eicar".len();
        assert_eq!(none_named[flag], 1);
        none_named[flag] = 0;
        assert_eq!(decode(&key, &none_named), Err(BadEntry));
        assert!(decode(&key, &stored(None, b"text/html")).is_ok());
        assert_eq!(
            decode(&key, &stored(None, b"text/html\rSet-Cookie: a")),
            Err(BadEntry)
        );
    }

    #[test]
    fn an_entry_of_another_key_is_not_taken() {
        let entry = Entry {
            verdict: CachedVerdict::Allowed,
            expires_ms: 1,
        };
        let bytes = encode(&Key([1; 32]), &entry);
        assert_eq!(decode(&Key([2; 32]), &bytes), Err(BadEntry));
    }

    #[test]
    fn every_cut_or_garbled_entry_is_refused_without_panicking() {
        let key = Key([7; 32]);
        let entry = Entry {
            verdict: CachedVerdict::Blocked {
                page: page(),
                threat: None,
            },
            expires_ms: 9,
        };
        let bytes = encode(&key, &entry);
        for cut in 0..bytes.len() {
            assert_eq!(decode(&key, &bytes[..cut]), Err(BadEntry), "cut at {cut}");
        }
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(decode(&key, &long), Err(BadEntry));
        for i in 36..bytes.len() {
            let mut g = bytes.clone();
            g[i] = 0xff;
            let _ = decode(&key, &g);
        }
    }

    #[test]
    fn a_page_too_large_is_not_cached_and_a_sanitized_body_never() {
        let mut big = page();
        big.body = Bytes::from(vec![b'x'; MAX_CACHED_PAGE + 1]);
        let v = Verdict::Blocked {
            page: big,
            threat: None,
        };
        assert!(CachedVerdict::of(&v).is_none());
        let s = Verdict::Sanitized {
            body: crate::scan::SanitizedBody::Memory(Bytes::new()),
            content_type: None,
            content_disposition: None,
            headers: None,
        };
        assert!(CachedVerdict::of(&s).is_none());
        assert_eq!(
            CachedVerdict::of(&Verdict::Allowed),
            Some(CachedVerdict::Allowed)
        );
    }
}
