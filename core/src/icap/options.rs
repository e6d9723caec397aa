//! The OPTIONS exchange: what a service announces (ISTag, preview size, 204, connection limit,
//! TTL, Transfer-* lists), asked once per service and worker and kept for its TTL.

use bytes::Buf;

use crate::icap::answer::read_chunked;
use crate::icap::codec::{self as icap, Options, Section};
use crate::icap::io::{before_answer_or_final, read_exact_into, read_head, write_all, IcapConn};
use crate::scan::{Failed, ScanError, ScanOptions};

/// Largest OPTIONS body skipped before the answer is refused.
const MAX_OPTIONS_BODY: usize = 64 * 1024;

/// OPTIONS on `conn`; returns the options and the connection if it can be reused.
pub(super) async fn ask(
    mut conn: IcapConn,
    authority: &str,
    service: &str,
    opts: &ScanOptions,
) -> Result<(Options, Option<IcapConn>), Failed> {
    let t = opts.timeouts;
    let clock = conn.clock.clone();
    clock.begin(t.send, t.read);
    let request = icap::options_request(authority, service);
    let (mut rd, mut wr) = tokio::io::split(&mut conn.stream);
    write_all(&mut wr, &request, &clock)
        .await
        .map_err(|e| before_answer_or_final(e, &conn.buf))?;
    clock.arm_read();
    let answer = read_head(&mut rd, &mut conn.buf, &clock)
        .await
        .map_err(|e| before_answer_or_final(e, &conn.buf))?;
    if answer.status != 200 {
        return Err(Failed::Final(ScanError::Protocol(format!(
            "ICAP OPTIONS for \"{service}\" answered {}",
            answer.status
        ))));
    }
    skip_body(&mut rd, &mut conn.buf, &answer, &clock)
        .await
        .map_err(Failed::Final)?;
    drop((rd, wr));
    clock.end();
    let close = answer
        .header("connection")
        .is_some_and(|v| v.eq_ignore_ascii_case("close"));
    let options = icap::parse_options(&answer);
    Ok((options, if close { None } else { Some(conn) }))
}

/// Skips what the answer encapsulates (nothing of it means anything to us), up to bounds.
async fn skip_body<R: tokio::io::AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut bytes::BytesMut,
    answer: &icap::IcapHead,
    clock: &crate::net::timed_io::IoClock,
) -> Result<(), ScanError> {
    let Some(enc) = answer.header("encapsulated") else {
        return Ok(());
    };
    let Some(&(section, off)) = icap::parse_encapsulated(enc)?.last() else {
        return Ok(());
    };
    if off > icap::MAX_HTTP_HEAD {
        return Err(ScanError::HeaderTooLarge);
    }
    read_exact_into(rd, buf, off, clock).await?;
    buf.advance(off);
    if section == Section::OptBody {
        let mut left = MAX_OPTIONS_BODY;
        read_chunked(rd, buf, clock, |c| {
            left = left
                .checked_sub(c.len())
                .ok_or(ScanError::PageTooLarge(MAX_OPTIONS_BODY))?;
            Ok(())
        })
        .await?;
    }
    Ok(())
}
