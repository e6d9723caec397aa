//! Reading an ICAP answer whose head arrived, and turning it into a verdict: `204` allows, a
//! modified request (`req-hdr`) sanitizes, an encapsulated response (`res-hdr`) blocks with
//! that page. To a RESPMOD, a response with the backend's own status and no threat named is
//! the response sanitized; any other status, or a threat named, blocks. Every size is bounded
//! before anything is read into memory.

use bytes::{Buf, BytesMut};
use tokio::io::AsyncRead;

use crate::body::sink::{BodySink, PageSink};
use crate::headers;
use crate::icap::chunked::{ChunkDecoder, Decoded};
use crate::icap::codec::{self as icap, HttpHead, IcapError, IcapHead, Section};
use crate::icap::io::{read_exact_into, read_more};
use crate::net::timed_io::IoClock;
use crate::scan::report::note_status;
use crate::scan::{ResponsePage, ScanError, ScanOptions, Verdict, SPILL_THRESHOLD};

/// Reads the rest of an answer whose head is `head` and turns it into a verdict; `respmod` is
/// the status of the backend's response that a RESPMOD sent.
pub(super) async fn read_answer<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    head: &IcapHead,
    respmod: Option<u16>,
    opts: &ScanOptions,
    clock: &IoClock,
) -> Result<Verdict, ScanError> {
    note_status(head.status);
    match head.status {
        204 => {
            skip_empty_204(rd, buf, head, clock).await?;
            return Ok(Verdict::Allowed);
        }
        200 => {}
        s => return Err(ScanError::Protocol(format!("ICAP server answered {s}"))),
    }
    let enc = head
        .header("encapsulated")
        .ok_or(IcapError::NoEncapsulated)?;
    let sections = icap::parse_encapsulated(enc)?;
    let bad = || ScanError::from(IcapError::Encapsulated(enc.to_string()));
    let [(hdr_kind, 0), (body_kind, body_off)] = sections[..] else {
        return Err(bad());
    };
    if body_off > icap::MAX_HTTP_HEAD {
        return Err(ScanError::HeaderTooLarge);
    }
    read_exact_into(rd, buf, body_off, clock).await?;
    let http = icap::parse_http_head(&buf[..body_off])?;
    buf.advance(body_off);
    let with_body = matches!(body_kind, Section::ReqBody | Section::ResBody);
    let threat = icap::threat(head);
    match (hdr_kind, body_kind, respmod) {
        (Section::ReqHdr, Section::ReqBody | Section::NullBody, None) => {
            modified_request(rd, buf, http, with_body, opts, clock).await
        }
        (Section::ResHdr, Section::ResBody | Section::NullBody, Some(status))
            if threat.is_none() && http.status() == Some(status) =>
        {
            // The backend's response, changed by the scanner: sanitized like a request.
            modified_request(rd, buf, http, with_body, opts, clock).await
        }
        (Section::ResHdr, Section::ResBody | Section::NullBody, _) => {
            block_page(rd, buf, http, with_body, threat, opts, clock).await
        }
        _ => Err(bad()),
    }
}

/// A 204 may still announce an (empty) encapsulated part: what it declares is skipped, up to
/// the size of a header block.
async fn skip_empty_204<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    head: &IcapHead,
    clock: &IoClock,
) -> Result<(), ScanError> {
    let Some(enc) = head.header("encapsulated") else {
        return Ok(());
    };
    if let Some(&(Section::NullBody, off)) = icap::parse_encapsulated(enc)?.last() {
        if off > icap::MAX_HTTP_HEAD {
            return Err(ScanError::HeaderTooLarge);
        }
        read_exact_into(rd, buf, off, clock).await?;
        buf.advance(off);
    }
    Ok(())
}

/// The sanitized request (or response): its body (spilled beyond 1 MiB, capped at the location's body
/// limit), its `Content-Type` and `Content-Disposition`.
async fn modified_request<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    http: HttpHead,
    with_body: bool,
    opts: &ScanOptions,
    clock: &IoClock,
) -> Result<Verdict, ScanError> {
    let mut sink = BodySink::new(SPILL_THRESHOLD, &opts.spill_dir).limited(opts.max_sanitized);
    if with_body {
        read_chunked(rd, buf, clock, |c| sink.push(c)).await?;
    }
    Ok(Verdict::Sanitized {
        body: sink.finish()?,
        content_type: http.header("content-type").cloned(),
        content_disposition: http.header("content-disposition").cloned(),
        headers: Some(http.headers),
    })
}

/// The block page: status (200 to 599), headers for the client, body up to `max_page`.
async fn block_page<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    http: HttpHead,
    with_body: bool,
    threat: Option<String>,
    opts: &ScanOptions,
    clock: &IoClock,
) -> Result<Verdict, ScanError> {
    let status = http.status().ok_or(IcapError::HttpHead)?;
    let mut page = PageSink::new(opts.max_page);
    if with_body {
        read_chunked(rd, buf, clock, |c| page.push(c)).await?;
    }
    Ok(Verdict::Blocked {
        page: ResponsePage {
            status,
            headers: headers::relayable(http.headers),
            body: page.finish(),
            head_length: None,
        },
        threat,
    })
}

/// Reads a chunked body, handing each piece of data to `sink`.
pub(super) async fn read_chunked<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    clock: &IoClock,
    mut sink: impl FnMut(&[u8]) -> Result<(), ScanError>,
) -> Result<(), ScanError> {
    let mut dec = ChunkDecoder::default();
    loop {
        let (what, used) = dec.decode(buf)?;
        match what {
            Decoded::Data(r) => sink(&buf[r])?,
            Decoded::End => {
                buf.advance(used);
                return Ok(());
            }
            Decoded::NeedMore if used == 0 => {
                read_more(rd, buf, clock).await?;
                continue;
            }
            Decoded::NeedMore => {}
        }
        buf.advance(used);
    }
}
