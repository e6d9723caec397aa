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
    // Bytes past the answer belong to nothing this client sent: such a connection is not
    // used again (they would be read as the next answer's head).
    let close = !conn.buf.is_empty()
        || answer
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
    let options = icap::parse_options(&answer);
    Ok((options, if close { None } else { Some(conn) }))
}

/// Skips what the answer encapsulates (nothing of it means anything to us), up to bounds:
/// the headers by their offset, a body section of any name as chunked.
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
    // Every body section of ICAP is chunked: an OPTIONS answer with a `res-body` (or any
    // other) is read to its end like an `opt-body`, not left on the connection.
    if section != Section::NullBody {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::icap::io::connect;
    use crate::net::peer::PeerAddr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// Asks OPTIONS of a server that answers `answer`; whether the connection may be used
    /// again.
    async fn kept_after(answer: &'static [u8]) -> bool {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut head = vec![0u8; 4096];
            let _ = s.read(&mut head).await;
            s.write_all(answer).await.unwrap();
            // Held open: the client decides alone whether to use the connection again.
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        });
        let opts = ScanOptions::default();
        let conn = connect(&PeerAddr::Ip(addr), &opts).await.unwrap();
        let (_, conn) = ask(conn, "127.0.0.1", "/scan", &opts)
            .await
            .unwrap_or_else(|_| panic!("OPTIONS failed"));
        conn.is_some()
    }

    #[tokio::test]
    async fn a_body_of_any_section_is_read_to_its_end_and_nothing_is_left_on_the_connection() {
        let plain = b"ICAP/1.0 200 OK\r\nMethods: REQMOD\r\nEncapsulated: null-body=0\r\n\r\n";
        assert!(kept_after(plain).await);
        let with_res_body = b"ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, res-body=19\r\n\r\n\
            HTTP/1.1 200 OK\r\n\r\n7\r\ncleaned\r\n0\r\n\r\n";
        assert!(kept_after(with_res_body).await);
        let with_more = b"ICAP/1.0 200 OK\r\nEncapsulated: null-body=0\r\n\r\nICAP/1.0 200 OK\r\n";
        assert!(!kept_after(with_more).await);
    }
}
