//! Operator policy: what is not scanned (ometascan_bypass), what is too large to scan
//! (ometascan_max_size), what a failed scan means (ometascan_on_error), what the backend is
//! told (the variables in proxy_set_header), and how many scans run at once
//! (ometascan_max_scans, max_conns).

mod common;
use common::*;
use std::time::{Duration, Instant};

/// `location /` scans through `scanner_url` with `extra`, tells the backend the verdict in
/// headers, and `/status` shows the counters.
fn policy_setup(scanner_url: &str, extra: &str) -> (Nginx, Backend) {
    let backend = Backend::start();
    let http = format!(
        "server {{ listen 127.0.0.1:%PORT%; client_max_body_size 300m;\n\
         location / {{ ometascan_pass {scanner_url}; {extra}\n\
           proxy_set_header X-Scan-Result $ometascan_result;\n\
           proxy_set_header X-Scan-Time $ometascan_scan_time;\n\
           proxy_set_header X-Scan-Status $ometascan_status;\n\
           proxy_pass http://127.0.0.1:{}; }}\n\
         location = /status {{ ometascan_status; }} }}",
        backend.port()
    );
    (Nginx::start(&http), backend)
}

fn metric(n: &Nginx, name: &str) -> u64 {
    let t = client::request(n.port, "GET", "/status", &[], b"")
        .unwrap()
        .text();
    t.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map(|v| v as u64)
        .unwrap_or_else(|| panic!("no {name} in:\n{t}"))
}

/// Sends `len` bytes as a chunked body (no Content-Length for nginx to go by), with EICAR at
/// the start; returns the response.
fn chunked_upload(port: u16, len: usize) -> Response {
    let mut c = Conn::open(port).unwrap();
    c.send_raw(b"POST /big HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    let mut block = vec![b'a'; 1 << 20];
    block[..EICAR.len()].copy_from_slice(EICAR);
    let mut sent = 0;
    while sent < len {
        let n = (len - sent).min(block.len());
        c.send_raw(format!("{n:x}\r\n").as_bytes()).unwrap();
        c.send_raw(&block[..n]).unwrap();
        c.send_raw(b"\r\n").unwrap();
        block[..EICAR.len()].fill(b'a');
        sent += n;
    }
    c.send_raw(b"0\r\n\r\n").unwrap();
    c.read_response(false).unwrap()
}

#[test]
fn bypass_skips_the_scan_only_for_a_value_that_is_non_empty_and_not_zero() {
    let scanner = ScannerDouble::start(Action::EicarAware);
    let (n, backend) = policy_setup(&scanner.url(), "ometascan_bypass $arg_skip $http_x_skip;");
    for (path, scanned) in [
        ("/a?skip=1", false),
        ("/a?skip=yes", false),
        ("/a?skip=0", true),
        ("/a?skip=", true),
        ("/a", true),
    ] {
        let before = scanner.received().len();
        let r = client::post(n.port, path, b"clean upload").unwrap();
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(
            scanner.received().len() - before,
            usize::from(scanned),
            "{path}"
        );
        let got = backend.received();
        let last = got.last().unwrap();
        assert_eq!(last.body, b"clean upload");
        let want = if scanned { "allowed" } else { "skipped" };
        assert_eq!(last.head.header("x-scan-result"), Some(want), "{path}");
    }
    // A header works the same way; EICAR goes through only because the operator said so.
    let r = client::request(n.port, "POST", "/b", &[("X-Skip", "1")], EICAR).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(backend.received().last().unwrap().body, EICAR);
    assert!(n
        .error_log()
        .contains("not scanned: \"ometascan_bypass\" value \"1\""));
    assert!(n.error_log().contains("[info]"));
    assert_eq!(
        metric(&n, "ometascan_requests_total{result=\"skipped\"}"),
        3
    );
}

#[test]
fn a_chunked_upload_over_max_size_is_refused_with_413_and_nothing_is_forwarded() {
    let scanner = ScannerDouble::start(Action::Allow);
    let (n, backend) = policy_setup(&scanner.url(), "ometascan_max_size 100m;");
    let r = chunked_upload(n.port, 120 << 20);
    assert_eq!(r.status, 413);
    assert!(backend.received().is_empty());
    assert!(
        scanner.received().is_empty(),
        "not sent to the scanner either"
    );
    assert_eq!(
        metric(&n, "ometascan_requests_total{result=\"too_large\"}"),
        1
    );
    // Under the cap: scanned as usual.
    let r = client::post(n.port, "/small", b"fine").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(scanner.received().len(), 1);
}

#[test]
fn over_pass_forwards_a_body_over_max_size_unscanned_and_says_so() {
    let scanner = ScannerDouble::start(Action::EicarAware);
    let (n, backend) = policy_setup(&scanner.url(), "ometascan_max_size 1m over=pass;");
    backend.keep_bodies_up_to(4 << 20);
    let mut body = random_bytes(3 << 20, 5);
    body[..EICAR.len()].copy_from_slice(EICAR);
    let r = client::post(n.port, "/big", &body).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let got = &backend.received()[0];
    assert_eq!(got.body_len, body.len() as u64);
    assert_eq!(got.body_hash, fnv1a(&body));
    assert_eq!(got.head.header("x-scan-result"), Some("unscanned"));
    assert!(scanner.received().is_empty());
    assert!(n.error_log().contains("[warn]"));
    assert!(n
        .error_log()
        .contains("is over \"ometascan_max_size\" 1048576, forwarded unscanned"));
}

#[test]
fn on_error_pass_forwards_when_the_scanner_is_down_but_never_a_block() {
    let down = format!("http://127.0.0.1:{}", nginx::free_port());
    let (n, backend) = policy_setup(&down, "ometascan_on_error pass;");
    let body = random_bytes(40_000, 6);
    let r = client::post(n.port, "/up", &body).unwrap();
    assert_eq!(r.status, 200);
    let got = &backend.received()[0];
    assert_eq!(got.body, body);
    assert_eq!(got.head.header("x-scan-result"), Some("unscanned"));
    let log = n.error_log();
    assert!(
        log.contains("[warn]") && log.contains("forwarding the request unscanned"),
        "{log}"
    );
    assert!(log.contains("connect() to"), "the reason is named: {log}");
    assert_eq!(
        metric(&n, "ometascan_requests_total{result=\"unscanned\"}"),
        1
    );
    assert_eq!(metric(&n, "ometascan_errors_total{kind=\"connect\"}"), 1);

    // A block, and a scanner's 5xx page (a verdict), are not failures: never passed.
    let scanner = ScannerDouble::start(Action::EicarAware);
    let (n, backend) = policy_setup(&scanner.url(), "ometascan_on_error pass;");
    let r = client::post(n.port, "/up", EICAR).unwrap();
    assert_eq!(r.status, 403);
    scanner.script([Action::block(503, b"scanner says no")]);
    let r = client::post(n.port, "/up", b"x").unwrap();
    assert_eq!((r.status, r.text().as_str()), (503, "scanner says no"));
    assert!(backend.received().is_empty());
    // Without the directive, the same failure is a 502 and nothing is forwarded.
    let (n, backend) = policy_setup(&down, "");
    assert_eq!(client::post(n.port, "/up", &body).unwrap().status, 502);
    assert!(backend.received().is_empty());
}

#[test]
fn the_backend_is_told_the_verdict_in_headers() {
    let scanner = ScannerDouble::start(Action::Allow);
    let (n, backend) = policy_setup(&scanner.url(), "");
    client::post(n.port, "/up", b"body").unwrap();
    let got = &backend.received()[0];
    assert_eq!(got.head.header("x-scan-result"), Some("allowed"));
    assert_eq!(got.head.header("x-scan-status"), Some("204"));
    let t: f64 = got.head.header("x-scan-time").unwrap().parse().unwrap();
    assert!((0.0..5.0).contains(&t));
}

#[test]
fn max_scans_queues_then_answers_503_with_retry_after() {
    let scanner = ScannerDouble::start(Action::Delay(
        Duration::from_millis(1500),
        Box::new(Action::Allow),
    ));
    let (n, backend) = policy_setup(&scanner.url(), "ometascan_max_scans 2 wait=300ms;");
    let port = n.port;
    let t = Instant::now();
    let hs: Vec<_> = (0..5)
        .map(|i| std::thread::spawn(move || client::post(port, &format!("/q{i}"), b"x").unwrap()))
        .collect();
    let rs: Vec<Response> = hs.into_iter().map(|h| h.join().unwrap()).collect();
    let ok = rs.iter().filter(|r| r.status == 200).count();
    let busy: Vec<_> = rs.iter().filter(|r| r.status == 503).collect();
    assert_eq!(
        (ok, busy.len()),
        (2, 3),
        "{:?}",
        rs.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    for r in &busy {
        assert_eq!(r.header("retry-after"), Some("1"));
    }
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(scanner.max_concurrent(), 2);
    assert_eq!(backend.received().len(), 2);
    assert_eq!(metric(&n, "ometascan_scans_queued_total"), 3);
    assert_eq!(metric(&n, "ometascan_scans_rejected_total"), 3);
    assert!(n.error_log().contains("no free scan slot"));
}

#[test]
fn max_conns_of_an_upstream_server_is_never_exceeded() {
    let scanner = ScannerDouble::start(Action::Delay(
        Duration::from_millis(20),
        Box::new(Action::Allow),
    ));
    let backend = Backend::start();
    let http = format!(
        "upstream scanners {{ server 127.0.0.1:{} max_conns=4; }}\n\
         server {{ listen 127.0.0.1:%PORT%;\n\
         location / {{ ometascan_pass http://scanners; proxy_pass http://127.0.0.1:{}; }} }}",
        scanner.port(),
        backend.port()
    );
    let n = Nginx::start(&http);
    let port = n.port;
    let hs: Vec<_> = (0..200)
        .map(|i| std::thread::spawn(move || client::post(port, &format!("/m{i}"), b"x").unwrap()))
        .collect();
    for h in hs {
        assert_eq!(h.join().unwrap().status, 200);
    }
    assert_eq!(scanner.received().len(), 200);
    assert!(
        scanner.max_concurrent() <= 4,
        "{}",
        scanner.max_concurrent()
    );
    assert!(
        scanner.connections() <= 4,
        "connections opened: {}",
        scanner.connections()
    );
    assert_eq!(backend.received().len(), 200);
}
