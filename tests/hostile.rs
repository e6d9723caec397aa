//! A scanner's answer is hostile input: odd statuses, endless interim answers, numbers that
//! overflow, sizes announced to be read into memory, duplicate headers. Each one is a 502 (or a
//! verdict the protocol allows), quickly, with nothing forwarded and the worker unharmed.

mod common;
use common::*;
use ometascan_testkit::icap_double::{IcapAction, IcapDouble};
use std::time::{Duration, Instant};

/// Sends a clean upload and checks the client got `status`, the backend nothing, the same
/// worker is still there, and the answer came well before the 30 s read timeout.
#[track_caller]
fn refused(n: &Nginx, backend: &Backend, what: &str, status: u16) {
    let worker = n.worker();
    let t = Instant::now();
    let r = client::post(n.port, "/up", &random_bytes(20_000, 1)).unwrap();
    assert_eq!(r.status, status, "{what}: {}", r.text());
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "{what}: took {:?}",
        t.elapsed()
    );
    assert!(
        backend.received().is_empty(),
        "{what}: the backend got a request"
    );
    assert_eq!(n.worker(), worker, "{what}: the worker died");
}

fn http_answers() -> Vec<(&'static str, Vec<u8>)> {
    let mut flood = Vec::new();
    for _ in 0..200 {
        flood.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
    }
    flood.extend_from_slice(b"HTTP/1.1 204 No Content\r\n\r\n");
    vec![
        (
            "status 600",
            b"HTTP/1.1 600 Odd\r\nContent-Length: 0\r\n\r\n".to_vec(),
        ),
        (
            "status 999",
            b"HTTP/1.1 999 Odd\r\nContent-Length: 0\r\n\r\n".to_vec(),
        ),
        (
            "status 101",
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n".to_vec(),
        ),
        ("200 interim answers", flood),
        (
            "overflowing Content-Length",
            b"HTTP/1.1 403 X\r\nContent-Length: 99999999999999999999999\r\n\r\nx".to_vec(),
        ),
        (
            "overflowing chunk size",
            b"HTTP/1.1 403 X\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFFFFFF\r\nx"
                .to_vec(),
        ),
        (
            "duplicate Content-Disposition on a sanitized answer",
            b"HTTP/1.1 200 OK\r\nContent-Disposition: attachment; filename=a\r\n\
              Content-Disposition: attachment; filename=b.exe\r\nContent-Length: 2\r\n\r\nok"
                .to_vec(),
        ),
        (
            "duplicate result header",
            b"HTTP/1.1 200 OK\r\nX-Ometascan-Result: sanitized\r\nX-Ometascan-Result: allowed\r\n\
              Content-Length: 2\r\n\r\nok"
                .to_vec(),
        ),
    ]
}

#[test]
fn hostile_http_answers_are_refused_with_502() {
    let s = setup(Action::Allow, "");
    for (what, raw) in http_answers() {
        s.scanner.script([Action::Raw(raw)]);
        refused(&s.nginx, &s.backend, what, 502);
    }
    assert!(s.nginx.error_log().contains("interim (1xx) answers"));
}

#[test]
fn an_endless_stream_of_interim_answers_ends_in_502_long_before_the_read_timeout() {
    let s = setup(
        Action::InterimFlood(Duration::from_millis(5)),
        "ometascan_read_timeout 30s;",
    );
    refused(&s.nginx, &s.backend, "interim flood", 502);
}

#[test]
fn announced_sizes_never_grow_the_worker_a_block_page_or_sanitized_body_is_capped() {
    let s = setup(Action::Allow, "client_max_body_size 1m;");
    let worker = s.nginx.worker();
    let rss = nginx::rss_kib(worker);
    let mut page = b"HTTP/1.1 403 X\r\nContent-Length: 10000000000\r\n\r\n".to_vec();
    page.extend(std::iter::repeat_n(b'a', 8 * 1024 * 1024));
    let mut sanitized = b"HTTP/1.1 200 OK\r\nContent-Length: 10000000000\r\n\r\n".to_vec();
    sanitized.extend(std::iter::repeat_n(b'b', 8 * 1024 * 1024));
    for _ in 0..3 {
        s.scanner.script([Action::Raw(page.clone())]);
        refused(&s.nginx, &s.backend, "10 GB block page", 502);
        s.scanner.script([Action::Raw(sanitized.clone())]);
        refused(&s.nginx, &s.backend, "10 GB sanitized body", 502);
    }
    let log = s.nginx.error_log();
    assert!(log.contains("page is larger than"), "{log}");
    assert!(log.contains("larger than client_max_body_size"), "{log}");
    let grown = nginx::rss_kib(worker).saturating_sub(rss);
    assert!(grown < 16 * 1024, "worker grew by {grown} KiB");
}

fn icap_nginx(icap: &IcapDouble) -> (Nginx, Backend) {
    let backend = Backend::start();
    let http = format!(
        "server {{ listen 127.0.0.1:%PORT%;\n location / {{ ometascan_pass {}; \
         ometascan_read_timeout 30s; proxy_pass http://127.0.0.1:{}; }} }}",
        icap.url("avscan"),
        backend.port()
    );
    (Nginx::start(&http), backend)
}

fn icap_answers() -> Vec<(&'static str, Vec<u8>)> {
    let page = "HTTP/1.0 403 Forbidden\r\nContent-Type: text/html\r\n\r\n";
    let mut big = format!(
        "ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, res-body={}\r\n\r\n{page}{:x}\r\n",
        page.len(),
        5 * 1024 * 1024
    )
    .into_bytes();
    big.extend(std::iter::repeat_n(b'p', 5 * 1024 * 1024));
    big.extend_from_slice(b"\r\n0\r\n\r\n");
    let mut continues = Vec::new();
    for _ in 0..100 {
        continues.extend_from_slice(b"ICAP/1.0 100 Continue\r\n\r\n");
    }
    let req = "POST /up HTTP/1.1\r\nContent-Type: a/b\r\nContent-Type: c/d\r\n\r\n";
    vec![
        ("ICAP 101", b"ICAP/1.0 101 Switching\r\nEncapsulated: null-body=0\r\n\r\n".to_vec()),
        ("ICAP 600", b"ICAP/1.0 600 Odd\r\nEncapsulated: null-body=0\r\n\r\n".to_vec()),
        ("ICAP interim answers", continues),
        (
            "overflowing chunk size",
            format!(
                "ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, res-body={}\r\n\r\n{page}\
                 FFFFFFFFFFFFFFFFFFFFFFFFFF\r\nx",
                page.len()
            )
            .into_bytes(),
        ),
        (
            "overflowing Encapsulated offset",
            b"ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, res-body=99999999999999999999999\r\n\r\n"
                .to_vec(),
        ),
        (
            "204 announcing 4 GB before its end",
            b"ICAP/1.0 204 No Content\r\nEncapsulated: req-hdr=0, null-body=4000000000\r\n\r\n"
                .to_vec(),
        ),
        ("5 MB block page", big),
        (
            "duplicate Encapsulated",
            b"ICAP/1.0 204 No Content\r\nEncapsulated: null-body=0\r\nEncapsulated: null-body=9\r\n\r\n"
                .to_vec(),
        ),
        (
            "duplicate Content-Type in a modified request",
            format!(
                "ICAP/1.0 200 OK\r\nEncapsulated: req-hdr=0, req-body={}\r\n\r\n{req}2\r\nok\r\n0\r\n\r\n",
                req.len()
            )
            .into_bytes(),
        ),
    ]
}

#[test]
fn hostile_icap_answers_are_refused_with_502() {
    let icap = IcapDouble::start(IcapAction::Allow, None);
    let (n, backend) = icap_nginx(&icap);
    let worker = n.worker();
    let rss = nginx::rss_kib(worker);
    for (what, raw) in icap_answers() {
        icap.script([IcapAction::Raw(raw)]);
        refused(&n, &backend, what, 502);
    }
    let grown = nginx::rss_kib(worker).saturating_sub(rss);
    assert!(grown < 16 * 1024, "worker grew by {grown} KiB");
}

#[test]
fn overflowing_numbers_in_icap_options_are_bounded_and_scanning_goes_on() {
    let icap = IcapDouble::start(IcapAction::EicarAware, None);
    icap.set_options_answer(
        "ICAP/1.0 200 OK\r\nMethods: REQMOD\r\nISTag: \"x\"\r\nAllow: 204\r\n\
         Options-TTL: 99999999999999999999999999\r\nPreview: 18446744073709551615\r\n\
         Max-Connections: 99999999999999999999\r\nTransfer-Preview: *\r\n\
         Encapsulated: null-body=0\r\n\r\n",
    );
    let (n, backend) = icap_nginx(&icap);
    let worker = n.worker();
    let clean = random_bytes(50_000, 2);
    let r = client::post(n.port, "/up", &clean).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(backend.received()[0].body, clean);
    let r = client::post(n.port, "/up", EICAR).unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(backend.received().len(), 1);
    assert_eq!(n.worker(), worker);
}
