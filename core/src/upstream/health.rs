//! Active health checks: each worker probes every server of a group at an interval (HTTP
//! `GET uri` for `http(s)://` scanners, ICAP `OPTIONS` for `icap(s)://`), and marks a server
//! down after `fails` failed probes in a row, up again after `passes` good ones.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

use crate::icap::codec::options_request;
use crate::net::tls::TlsClient;
use crate::net::transport;
use crate::notices::Notices;
use crate::upstream::balancer::{Balancer, PeerSpec};
use crate::url::{ScannerUrl, Scheme};

/// The parameters of `ometascan_health_check`; `Default` holds their defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthParams {
    pub interval: Duration,
    pub fails: u32,
    pub passes: u32,
    /// Path probed on HTTP scanners.
    pub uri: String,
    pub timeout: Duration,
}

impl Default for HealthParams {
    fn default() -> Self {
        HealthParams {
            interval: Duration::from_secs(5),
            fails: 2,
            passes: 1,
            uri: "/".into(),
            timeout: Duration::from_secs(2),
        }
    }
}

/// One group's health check, in plain values.
#[derive(Debug, Clone)]
pub struct HealthSpec {
    pub group: usize,
    pub peers: Arc<Vec<PeerSpec>>,
    pub url: ScannerUrl,
    pub tls: Option<Arc<TlsClient>>,
    pub params: HealthParams,
}

/// Probes forever; spawn it on the worker's runtime.
pub async fn run(spec: HealthSpec, balancer: Arc<Balancer>, notices: Arc<Notices>) {
    let n = spec.peers.len();
    let mut bad = vec![0u32; n];
    let mut good = vec![0u32; n];
    loop {
        for i in 0..n {
            let ok = probe(&spec, i).await;
            if ok {
                bad[i] = 0;
                good[i] += 1;
                if good[i] >= spec.params.passes {
                    if let Some(c) = balancer.set_checked(spec.group, &spec.peers, i, false) {
                        notices.push_change(c, "(health check passed)");
                    }
                }
            } else {
                good[i] = 0;
                bad[i] += 1;
                if bad[i] >= spec.params.fails {
                    if let Some(c) = balancer.set_checked(spec.group, &spec.peers, i, true) {
                        notices.push_change(c, "(health check failed)");
                    }
                }
            }
        }
        tokio::time::sleep(spec.params.interval).await;
    }
}

/// Whether the start of a server's answer to a probe says it is up: a status line (the first
/// line, within 4 KiB) with a 2xx-4xx status for HTTP, 200 for ICAP OPTIONS; `PONG` for clamd's
/// `zPING`. Only the first line (or reply) counts, so the answer does not depend on how the
/// bytes arrived.
pub fn healthy_answer(scheme: Scheme, buf: &[u8]) -> bool {
    if scheme == Scheme::Clamd {
        return matches!(crate::clamd::reply::split_reply(buf), Ok(Some((text, _))) if crate::clamd::reply::is_pong(text));
    }
    let Some(eol) = buf.iter().take(4096).position(|&b| b == b'\n') else {
        return false;
    };
    let line = &buf[..eol];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut words = line.split(|&b| b == b' ');
    let (Some(version), Some(code)) = (words.next(), words.next()) else {
        return false;
    };
    let version_ok = match scheme {
        Scheme::Http | Scheme::Https => version.starts_with(b"HTTP/1."),
        Scheme::Icap | Scheme::Icaps => version.starts_with(b"ICAP/1."),
        Scheme::Clamd => false,
    };
    if !version_ok || code.len() != 3 || !code.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let status = code.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    match scheme {
        Scheme::Http | Scheme::Https => (200..500).contains(&status),
        Scheme::Icap | Scheme::Icaps => status == 200,
        Scheme::Clamd => false,
    }
}

/// Whether enough of an answer has arrived to judge it: clamd's reply ends at NUL; an HTTP or
/// ICAP status line at its line end, whatever bytes (NUL included) it holds; 4 KiB at most.
fn answer_complete(scheme: Scheme, buf: &[u8]) -> bool {
    let end = if scheme == Scheme::Clamd { 0 } else { b'\n' };
    buf.contains(&end) || buf.len() >= 4096
}

async fn probe(spec: &HealthSpec, i: usize) -> bool {
    let peer = &spec.peers[i];
    let work = async {
        let mut io = transport::connect(&peer.addr, spec.params.timeout, spec.tls.as_deref())
            .await
            .ok()?;
        let authority = spec.url.authority();
        let request = match spec.url.scheme {
            Scheme::Http | Scheme::Https => {
                format!(
                    "GET {} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n",
                    spec.params.uri
                )
            }
            Scheme::Icap | Scheme::Icaps => {
                String::from_utf8_lossy(&options_request(&authority, &spec.url.path)).into_owned()
            }
            Scheme::Clamd => "zPING\0".to_string(),
        };
        io.write_all(request.as_bytes()).await.ok()?;
        let mut buf = Vec::with_capacity(256);
        let mut chunk = [0u8; 256];
        while !answer_complete(spec.url.scheme, &buf) {
            let n = io.read(&mut chunk).await.ok()?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        Some(healthy_answer(spec.url.scheme, &buf))
    };
    matches!(timeout(spec.params.timeout, work).await, Ok(Some(true)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamd_is_up_when_it_answers_pong() {
        let clamd = |b: &[u8]| healthy_answer(Scheme::Clamd, b);
        assert!(clamd(b"PONG\0"));
        assert!(!clamd(b"PONG"));
        assert!(!clamd(b"PONG \0"));
        assert!(!clamd(b"HTTP/1.1 200 OK\r\n"));
        assert!(!clamd(b"UNKNOWN COMMAND\0"));
    }

    /// The answer judged after the reads `probe` would do, the bytes arriving `step` at a time.
    fn judged(scheme: Scheme, answer: &[u8], step: usize) -> bool {
        let mut buf = Vec::new();
        for piece in answer.chunks(step) {
            if answer_complete(scheme, &buf) {
                break;
            }
            buf.extend_from_slice(piece);
        }
        healthy_answer(scheme, &buf)
    }

    #[test]
    fn a_nul_in_a_status_line_gives_one_verdict_however_the_bytes_arrive() {
        for (scheme, answer) in [
            (
                Scheme::Http,
                &b"HTTP/1.1 200 OK\0junk\r\nServer: x\r\n\r\n"[..],
            ),
            (Scheme::Http, b"HTTP/1.1 500 \0\r\n\r\n"),
            (Scheme::Icap, b"ICAP/1.0 200 O\0K\r\nISTag: x\r\n\r\n"),
            (Scheme::Clamd, b"PONG\0HTTP/1.1 200 OK\r\n"),
            (Scheme::Clamd, b"PO\nNG\0"),
        ] {
            let whole = judged(scheme, answer, answer.len());
            for step in 1..answer.len() {
                assert_eq!(
                    judged(scheme, answer, step),
                    whole,
                    "{scheme:?} step {step}"
                );
            }
        }
        assert!(judged(Scheme::Http, b"HTTP/1.1 200 OK\0junk\r\n", 3));
        assert!(judged(Scheme::Clamd, b"PONG\0", 1));
    }

    #[test]
    fn only_the_first_line_of_a_probe_answer_counts() {
        let http = |b: &[u8]| healthy_answer(Scheme::Http, b);
        assert!(http(b"HTTP/1.1 200 OK\r\n"));
        assert!(http(b"HTTP/1.1 200\r\nServer: x\r\n\r\n"));
        assert!(http(b"HTTP/1.0 404 Not Found\n"));
        assert!(!http(b"HTTP/1.1 500 Oops\r\n"));
        assert!(!http(b"HTTP/1.1 200 OK"), "no whole line yet");
        assert!(!http(b"HTTP/1.1 +20 OK\r\n"));
        assert!(!http(b"ICAP/1.0 200 OK\r\n"));
        assert!(healthy_answer(
            Scheme::Icap,
            b"ICAP/1.0 200 OK\r\nISTag: x\r\n"
        ));
        assert!(!healthy_answer(Scheme::Icaps, b"ICAP/1.0 204 OK\r\n"));
        let mut long = b"HTTP/1.1 200 ".to_vec();
        long.extend(std::iter::repeat_n(b'x', 5000));
        long.extend_from_slice(b"\r\n");
        assert!(!http(&long));
    }
}
