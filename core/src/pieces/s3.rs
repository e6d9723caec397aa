//! S3 multipart uploads: each part (`PUT ...?partNumber=N&uploadId=X`) is kept as it comes —
//! in any order, in parallel, a part sent again replacing the one before, as S3 does — decoded
//! from `aws-chunked` and the other codings; the completion (`POST ...?uploadId=X`, its body the
//! list of parts in XML) assembles the parts it lists, in its order, and is forwarded only when
//! the assembled object is allowed. An abort leaves the parts to expire.

use crate::body::RequestBody;

/// An S3 request that takes part in a multipart upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum S3 {
    /// `UploadPart`: part `number` of the upload.
    Part { upload: Vec<u8>, number: u32 },
    /// `UploadPartCopy`: a part copied from an object the module has not seen.
    Copy,
    /// `CompleteMultipartUpload`.
    Complete { upload: Vec<u8> },
}

/// A query parameter, raw: name and value.
type Param<'a> = (&'a [u8], &'a [u8]);

/// The query's parameters, raw; a name given twice is an error (readers differ on which wins).
fn query(uri: &[u8]) -> Result<Vec<Param<'_>>, String> {
    let Some(q) = memchr::memchr(b'?', uri).map(|i| &uri[i + 1..]) else {
        return Ok(Vec::new());
    };
    let mut out: Vec<Param> = Vec::new();
    for item in q.split(|&b| b == b'&').filter(|i| !i.is_empty()) {
        let (k, v) = match memchr::memchr(b'=', item) {
            Some(i) => (&item[..i], &item[i + 1..]),
            None => (item, &b""[..]),
        };
        if out.iter().any(|(n, _)| *n == k) {
            return Err(format!(
                "the query names \"{}\" twice",
                String::from_utf8_lossy(k).escape_debug()
            ));
        }
        out.push((k, v));
    }
    Ok(out)
}

/// The key of an S3 upload: the object's path and the upload's id.
fn upload(uri: &[u8], id: &[u8]) -> Vec<u8> {
    let mut key = b"s3 ".to_vec();
    key.extend_from_slice(&super::upload_key(uri));
    key.push(b' ');
    key.extend_from_slice(id);
    key
}

/// What an S3 request is to a multipart upload (`None`: no part of one).
pub fn s3_request(method: &[u8], uri: &[u8], copy: bool) -> Result<Option<S3>, String> {
    let q = query(uri)?;
    let get = |name: &[u8]| q.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
    let Some(id) = get(b"uploadId") else {
        return Ok(None);
    };
    if id.is_empty() {
        return Err("an empty uploadId".into());
    }
    if method.eq_ignore_ascii_case(b"PUT") {
        let Some(n) = get(b"partNumber") else {
            return Ok(None);
        };
        let number = std::str::from_utf8(n)
            .ok()
            .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<u32>().ok())
            .filter(|n| (1..=10_000).contains(n))
            .ok_or("a partNumber that is not from 1 to 10000")?;
        if copy {
            return Ok(Some(S3::Copy));
        }
        return Ok(Some(S3::Part {
            upload: upload(uri, id),
            number,
        }));
    }
    if method.eq_ignore_ascii_case(b"POST") {
        return Ok(Some(S3::Complete {
            upload: upload(uri, id),
        }));
    }
    Ok(None)
}

/// The spool key of part `number` of `upload`.
pub fn part_key(upload: &[u8], number: u32) -> Vec<u8> {
    let mut k = b"~".to_vec();
    k.extend_from_slice(upload);
    k.extend_from_slice(format!(" part {number}").as_bytes());
    k
}

/// The part numbers a `CompleteMultipartUpload` body lists, in its order: each
/// `<PartNumber>N</PartNumber>`. At most 10 000; the body at most 1 MiB.
pub fn listed_parts(body: &RequestBody) -> Result<Vec<u32>, String> {
    if body.len() > 1 << 20 {
        return Err("a part list over 1 MiB".into());
    }
    let xml = body.to_vec().map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let (open, close) = (b"<PartNumber>".as_slice(), b"</PartNumber>".as_slice());
    let mut rest = xml.as_slice();
    while let Some(i) = memchr::memmem::find(rest, open) {
        rest = &rest[i + open.len()..];
        let end = memchr::memmem::find(rest, close).ok_or("a PartNumber that does not end")?;
        let n = std::str::from_utf8(rest[..end].trim_ascii())
            .ok()
            .and_then(|s| s.parse::<u32>().ok())
            .filter(|n| (1..=10_000).contains(n))
            .ok_or("a PartNumber that is not from 1 to 10000")?;
        out.push(n);
        if out.len() > 10_000 {
            return Err("more than 10000 parts".into());
        }
        rest = &rest[end..];
    }
    if out.is_empty() {
        return Err("a part list without parts".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::testing::mem;

    #[test]
    fn s3_requests_are_told_apart() {
        assert_eq!(
            s3_request(b"PUT", b"/b/k.bin?partNumber=2&uploadId=abc", false),
            Ok(Some(S3::Part {
                upload: b"s3 /b/k.bin abc".to_vec(),
                number: 2
            }))
        );
        assert_eq!(
            s3_request(b"POST", b"/b/k.bin?uploadId=abc", false),
            Ok(Some(S3::Complete {
                upload: b"s3 /b/k.bin abc".to_vec()
            }))
        );
        assert_eq!(s3_request(b"POST", b"/b/k.bin?uploads", false), Ok(None));
        assert_eq!(s3_request(b"PUT", b"/b/k.bin", false), Ok(None));
        assert_eq!(
            s3_request(b"PUT", b"/b/k?partNumber=1&uploadId=a", true),
            Ok(Some(S3::Copy))
        );
        assert!(s3_request(b"PUT", b"/b/k?partNumber=0&uploadId=a", false).is_err());
        assert!(s3_request(b"PUT", b"/b/k?uploadId=a&uploadId=b&partNumber=1", false).is_err());
    }

    #[test]
    fn the_part_list_is_read_in_its_order() {
        let xml =
            b"<CompleteMultipartUpload><Part><ETag>\"x\"</ETag><PartNumber>2</PartNumber></Part>\
                    <Part><PartNumber> 1 </PartNumber></Part></CompleteMultipartUpload>";
        assert_eq!(listed_parts(&mem(&[xml])), Ok(vec![2, 1]));
        assert!(listed_parts(&mem(&[b"<x/>"])).is_err());
        assert!(listed_parts(&mem(&[b"<PartNumber>a</PartNumber>"])).is_err());
    }
}
