//! A scanner's whole answer, through the real clients: the first byte picks the protocol
//! (HTTP, ICAP, each over TLS, which the answer then has to get through first, and clamd's)
//! and whether a request or a backend's response is scanned (REQMOD or RESPMOD), the rest
//! is what a loopback server answers to every connection, in one write and cut into pieces.
//! Whatever it is, the scan ends (a verdict or an error) within its timeouts, no answer
//! panics, and the cut changes neither whether there is a verdict nor which.
#![no_main]
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use ometascan_core::net::tls::{TlsClient, TlsSettings, TlsVersion};
use ometascan_core::{
    RequestBody, ResponseHead, ScanOptions, ScanRequest, Scanner, ScannerUrl, Target, Timeouts,
};
use ometascan_fuzz::{runtime, same_whole_and_cut, server};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, answer)) = data.split_first() else {
        return;
    };
    let addr = server();
    let scheme = ["http", "icap", "https", "icaps", "clamd"][pick as usize % 5];
    let response = (pick / 5) % 2 == 1;
    let path = if scheme == "clamd" { "" } else { "/scan" };
    let Ok(url) = ScannerUrl::parse(&format!("{scheme}://{addr}{path}")) else {
        return;
    };
    let target = Target::from_addrs(url, &[addr]);
    let second = Duration::from_secs(1);
    let mut opts = ScanOptions {
        timeouts: Timeouts {
            connect: second,
            send: second,
            read: second,
        },
        ..ScanOptions::default()
    };
    if scheme.ends_with("ps") {
        opts.tls = Some(Arc::new(TlsClient::new(TlsSettings {
            verify: false,
            trusted_certificate: None,
            verify_depth: 1,
            versions: vec![TlsVersion::Tls12, TlsVersion::Tls13],
            ciphers: vec![],
            session_reuse: false,
            name: "localhost".into(),
            send_sni: true,
        })));
    }
    let req = ScanRequest {
        method: Bytes::from_static(b"POST"),
        uri: Bytes::from_static(b"/upload"),
        headers: vec![(
            Bytes::from_static(b"Content-Type"),
            Bytes::from_static(b"application/octet-stream"),
        )],
        host: None,
        client_addr: "127.0.0.1".into(),
        body: RequestBody::memory(b"the body of the request"),
        response: response.then(|| ResponseHead {
            status: 200,
            headers: vec![(
                Bytes::from_static(b"Content-Type"),
                Bytes::from_static(b"application/pdf"),
            )],
        }),
    };
    // A verdict (and which) or a failure: how the answer was cut cannot change it.
    same_whole_and_cut(answer, || {
        let started = Instant::now();
        let outcome = runtime().block_on(Scanner::new().scan_report(&target, &req, &opts));
        assert!(started.elapsed() < Duration::from_secs(10));
        outcome.result.as_ref().map(|v| v.kind()).map_err(|_| ())
    });
});
