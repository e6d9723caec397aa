//! Failures fail closed: the client gets 502/504, the backend gets nothing, the error log
//! says why, and the worker survives without leaking descriptors.

mod common;
use common::*;
use std::time::{Duration, Instant};

fn assert_failed_closed(s: &Setup, status: u16, expect_status: u16, log_part: &str) {
    assert_eq!(status, expect_status, "{}", s.nginx.error_log());
    assert!(s.backend.received().is_empty(), "backend must get nothing");
    let log = s.nginx.error_log();
    assert!(
        log.contains(log_part),
        "error log lacks {log_part:?}:\n{log}"
    );
    assert!(
        log.contains("while scanning request, client: 127.0.0.1"),
        "{log}"
    );
    assert!(log.contains("scanner: \"http://127.0.0.1:"), "{log}");
}

#[test]
fn scanner_refused_is_502() {
    let backend = Backend::start();
    let dead = nginx::free_port();
    let http = format!(
        "server {{ listen 127.0.0.1:%PORT%; location / {{ ometascan_pass http://127.0.0.1:{dead}; proxy_pass http://127.0.0.1:{}; }} }}",
        backend.port()
    );
    let n = Nginx::start(&http);
    let r = client::post(n.port, "/up", b"data").unwrap();
    assert_eq!(r.status, 502);
    assert!(backend.received().is_empty());
    let log = n.error_log();
    assert!(
        log.contains(&format!(
            "connect() to 127.0.0.1:{dead} failed (111: Connection refused)"
        )),
        "{log}"
    );
    assert!(log.contains("[error]"));
}

#[test]
fn reset_after_head_is_502() {
    let s = setup(Action::ResetAfterHead, "");
    let r = client::post(s.nginx.port, "/up", &random_bytes(10_000, 1)).unwrap();
    assert_failed_closed(&s, r.status, 502, "scan failed");
}

#[test]
fn reset_mid_body_is_502() {
    let s = setup(Action::ResetMidBody(100_000), "client_max_body_size 10m;");
    let r = client::post(s.nginx.port, "/up", &random_bytes(4_000_000, 1)).unwrap();
    assert_failed_closed(&s, r.status, 502, "scan failed");
}

#[test]
fn silent_scanner_times_out_with_504_after_read_timeout() {
    let s = setup(Action::Silent, "ometascan_read_timeout 1s;");
    let t = Instant::now();
    let r = client::post(s.nginx.port, "/up", b"data").unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
    assert_failed_closed(
        &s,
        r.status,
        504,
        "scanner timed out while reading the response",
    );
}

#[test]
fn scanner_that_stops_reading_times_out_on_send() {
    let s = setup(
        Action::StallReading,
        "ometascan_send_timeout 1s; client_max_body_size 64m;",
    );
    let r = client::post(s.nginx.port, "/up", &random_bytes(32 << 20, 5)).unwrap();
    assert_failed_closed(
        &s,
        r.status,
        504,
        "scanner timed out while sending the request",
    );
}

#[test]
fn read_timeout_is_between_reads_not_for_the_whole_answer() {
    // 40 bytes, one every 100 ms: 4 s in all, never 1 s without a byte.
    let answer = b"HTTP/1.1 204 No Content\r\nX-A: b\r\n\r\n".to_vec();
    let s = setup(
        Action::SlowDrip {
            interval: Duration::from_millis(100),
            response: answer,
        },
        "ometascan_read_timeout 1s;",
    );
    let t = Instant::now();
    let r = client::post(s.nginx.port, "/up", b"slow but fine").unwrap();
    assert!(t.elapsed() >= Duration::from_secs(3));
    assert_eq!(r.status, 200, "{}", s.nginx.error_log());
    assert_eq!(s.backend.received()[0].body, b"slow but fine");
}

#[test]
fn connect_timeout_is_504() {
    // A listener whose accept queue is full drops further SYNs: connect() hangs.
    // SAFETY: plain socket calls on descriptors this test owns.
    let (fd, port) = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        let mut addr: libc::sockaddr_in = std::mem::zeroed();
        addr.sin_family = libc::AF_INET as u16;
        addr.sin_addr.s_addr = u32::from_be_bytes([127, 0, 0, 1]).to_be();
        libc::bind(
            fd,
            &addr as *const _ as *const libc::sockaddr,
            std::mem::size_of_val(&addr) as u32,
        );
        libc::listen(fd, 0);
        let mut len = std::mem::size_of_val(&addr) as u32;
        libc::getsockname(fd, &mut addr as *mut _ as *mut libc::sockaddr, &mut len);
        (fd, u16::from_be(addr.sin_port))
    };
    let mut fillers = Vec::new();
    for _ in 0..4 {
        let s = std::net::TcpStream::connect_timeout(
            &format!("127.0.0.1:{port}").parse().unwrap(),
            Duration::from_millis(200),
        );
        if let Ok(s) = s {
            fillers.push(s);
        }
    }
    let backend = Backend::start();
    let http = format!(
        "server {{ listen 127.0.0.1:%PORT%; location / {{ ometascan_pass http://127.0.0.1:{port};\n\
         ometascan_connect_timeout 500ms; proxy_pass http://127.0.0.1:{}; }} }}",
        backend.port()
    );
    let n = Nginx::start(&http);
    let r = client::post(n.port, "/up", b"x").unwrap();
    assert_eq!(r.status, 504, "{}", n.error_log());
    assert!(n.error_log().contains("scanner timed out while connecting"));
    assert!(backend.received().is_empty());
    // SAFETY: closes the listener this test opened.
    unsafe { libc::close(fd) };
}

#[test]
fn malformed_status_line_is_502() {
    let s = setup(Action::Raw(b"HTTP/1.1 two hundred OK\r\n\r\n".to_vec()), "");
    let r = client::post(s.nginx.port, "/up", b"x").unwrap();
    assert_failed_closed(&s, r.status, 502, "scanner sent an invalid response");
}

#[test]
fn garbage_answer_is_502() {
    let s = setup(Action::Raw(b"\x00\x01garbage\r\n\r\n".to_vec()), "");
    let r = client::post(s.nginx.port, "/up", b"x").unwrap();
    assert_failed_closed(&s, r.status, 502, "scanner sent an invalid response");
}

#[test]
fn truncated_block_page_is_502() {
    let s = setup(
        Action::Raw(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 100\r\n\r\nonly part".to_vec()),
        "",
    );
    let r = client::post(s.nginx.port, "/up", b"x").unwrap();
    assert_failed_closed(
        &s,
        r.status,
        502,
        "scanner closed the connection prematurely",
    );
}

#[test]
fn oversized_headers_are_502() {
    let mut raw = b"HTTP/1.1 204 No Content\r\n".to_vec();
    for i in 0..2000 {
        raw.extend_from_slice(format!("X-Filler-{i}: {}\r\n", "a".repeat(60)).as_bytes());
    }
    raw.extend_from_slice(b"\r\n");
    let s = setup(Action::Raw(raw), "");
    let r = client::post(s.nginx.port, "/up", b"x").unwrap();
    assert_failed_closed(&s, r.status, 502, "scanner response header is too large");
}

#[test]
fn informational_final_status_is_502() {
    let s = setup(
        Action::Raw(b"HTTP/1.1 101 Switching Protocols\r\n\r\n".to_vec()),
        "",
    );
    let r = client::post(s.nginx.port, "/up", b"x").unwrap();
    assert_eq!(r.status, 502);
    assert!(s.backend.received().is_empty());
}

#[test]
fn client_abort_mid_upload_reaches_nobody() {
    let s = setup(Action::Allow, "client_max_body_size 10m;");
    let worker = s.nginx.worker();
    let _ = client::post(s.nginx.port, "/warm", b"x").unwrap();
    let fds = nginx::fd_count(worker);
    for _ in 0..5 {
        let mut c = Conn::open(s.nginx.port).unwrap();
        c.send_raw(b"POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n")
            .unwrap();
        c.send_raw(&random_bytes(300_000, 9)).unwrap();
        drop(c);
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        s.scanner.received().len(),
        1,
        "only the warm-up request was scanned"
    );
    assert_eq!(s.backend.received().len(), 1);
    assert_worker_recovered(&s.nginx, worker, fds);
}

#[test]
fn client_abort_mid_scan_cancels_the_scan() {
    let s = setup(
        Action::Delay(Duration::from_secs(2), Box::new(Action::Allow)),
        "",
    );
    let worker = s.nginx.worker();
    s.scanner.script([Action::Allow]);
    let _ = client::post(s.nginx.port, "/warm", b"x").unwrap();
    let fds = nginx::fd_count(worker);
    let mut conns = Vec::new();
    for i in 0..5 {
        let mut c = Conn::open(s.nginx.port).unwrap();
        let body = random_bytes(20_000, i);
        c.send_raw(
            format!(
                "POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .unwrap();
        c.send_raw(&body).unwrap();
        conns.push(c);
    }
    assert!(wait_for(Duration::from_secs(3), || s
        .scanner
        .received()
        .len()
        == 6));
    drop(conns);
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        s.backend.received().len(),
        1,
        "aborted requests must not reach the backend"
    );
    assert_worker_recovered(&s.nginx, worker, fds);
    // The worker still works.
    s.scanner.script([Action::Allow]);
    assert_eq!(
        client::post(s.nginx.port, "/after", b"y").unwrap().status,
        200
    );
}

#[test]
fn reload_with_scans_in_flight_loses_no_verdict() {
    let s = setup(
        Action::Delay(Duration::from_millis(1500), Box::new(Action::Allow)),
        "",
    );
    let port = s.nginx.port;
    let handles: Vec<_> = (0..6)
        .map(|i| {
            std::thread::spawn(move || {
                let body = random_bytes(30_000 + i, i as u64);
                let r = client::post(port, &format!("/r{i}"), &body).unwrap();
                (r.status, body)
            })
        })
        .collect();
    assert!(wait_for(Duration::from_secs(3), || s
        .scanner
        .received()
        .len()
        == 6));
    s.nginx.reload();
    for h in handles {
        let (status, _) = h.join().unwrap();
        assert_eq!(status, 200);
    }
    let got = s.backend.received();
    assert_eq!(got.len(), 6);
    for g in &got {
        let i: u64 = g.target()[2..].parse().unwrap();
        assert_eq!(g.body, random_bytes(30_000 + i as usize, i));
    }
    let log = s.nginx.error_log();
    assert!(
        !log.contains("[alert]") && !log.contains("[crit]") && !log.contains("[emerg]"),
        "{log}"
    );
}

#[test]
fn graceful_quit_waits_for_scans_in_flight() {
    let mut s = setup(
        Action::Delay(Duration::from_millis(1500), Box::new(Action::Allow)),
        "",
    );
    let port = s.nginx.port;
    let h = std::thread::spawn(move || client::post(port, "/q", b"quit test").unwrap().status);
    assert!(wait_for(Duration::from_secs(3), || s
        .scanner
        .received()
        .len()
        == 1));
    s.nginx.signal(libc::SIGQUIT);
    assert_eq!(h.join().unwrap(), 200);
    assert_eq!(s.backend.received()[0].body, b"quit test");
    assert!(s.nginx.wait_exit(Duration::from_secs(10)));
}

#[test]
fn waiting_worker_uses_no_cpu_and_serves_other_requests() {
    let scanner = ScannerDouble::start(Action::Delay(
        Duration::from_secs(3),
        Box::new(Action::Allow),
    ));
    let backend = Backend::start();
    let http = format!(
        "server {{ listen 127.0.0.1:%PORT%;\n\
           location /scan/ {{ ometascan_pass {}; proxy_pass http://127.0.0.1:{}; }}\n\
           location /plain/ {{ return 200 \"plain\\n\"; }} }}",
        scanner.url(),
        backend.port()
    );
    let n = Nginx::start(&http);
    let worker = n.worker();
    let port = n.port;
    let handles: Vec<_> = (0..20)
        .map(|i| {
            std::thread::spawn(move || {
                client::post(port, &format!("/scan/{i}"), b"wait")
                    .unwrap()
                    .status
            })
        })
        .collect();
    assert!(wait_for(Duration::from_secs(3), || scanner
        .received()
        .len()
        == 20));
    let t = Instant::now();
    let r = client::request(port, "GET", "/plain/x", &[], b"").unwrap();
    assert_eq!(r.text(), "plain\n");
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "served while scans wait"
    );
    let before = nginx::cpu_ticks(worker);
    std::thread::sleep(Duration::from_millis(1500));
    let used = nginx::cpu_ticks(worker) - before;
    for h in handles {
        assert_eq!(h.join().unwrap(), 200);
    }
    eprintln!("worker CPU while 20 scans wait 1.5 s: {used} ticks (1 tick = 10 ms)");
    // A polling worker would burn ~150 ticks here; an idle one none.
    assert!(used <= 5, "worker used {used} ticks while only waiting");
}

/// The body of an in-memory request is handed to the scanner without a copy: the request
/// stays alive until the scanner connection lets go of it. A scanner that answers early and
/// stops reading must not keep the request waiting for the send timeout.
#[test]
fn early_answer_while_a_memory_body_is_still_being_sent() {
    let page = b"<html>blocked early</html>\n";
    let mut answer = format!(
        "HTTP/1.1 403 Forbidden\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n",
        page.len()
    )
    .into_bytes();
    answer.extend_from_slice(page);
    let s = setup(
        Action::AnswerEarly {
            after: 64 * 1024,
            response: answer,
        },
        "client_max_body_size 64m; client_body_buffer_size 32m; ometascan_send_timeout 30s;",
    );
    let worker = s.nginx.worker();
    s.scanner.script([Action::Allow]);
    let _ = client::post(s.nginx.port, "/warm", b"x").unwrap();
    let fds = nginx::fd_count(worker);
    let t = Instant::now();
    let r = client::post(s.nginx.port, "/up", &random_bytes(24 << 20, 8)).unwrap();
    assert_eq!(r.status, 403, "{}", s.nginx.error_log());
    assert_eq!(r.body, page);
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "waited {:?}",
        t.elapsed()
    );
    assert_eq!(s.backend.received().len(), 1, "only the warm-up request");
    assert_worker_recovered(&s.nginx, worker, fds);
}

/// The client goes away while the scanner connection is stuck writing the (lent) body: the
/// scan is cancelled, the connection task lets go of the body, and nginx frees the request.
#[test]
fn client_abort_while_the_body_is_stuck_in_the_scanner_connection() {
    let s = setup(
        Action::StallReading,
        "client_max_body_size 64m; client_body_buffer_size 32m; ometascan_send_timeout 60s;",
    );
    let worker = s.nginx.worker();
    s.scanner.script([Action::Allow]);
    let _ = client::post(s.nginx.port, "/warm", b"x").unwrap();
    let fds = nginx::fd_count(worker);
    let body = random_bytes(24 << 20, 9);
    let mut c = Conn::open(s.nginx.port).unwrap();
    c.send_raw(
        format!(
            "POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    c.send_raw(&body).unwrap();
    assert!(wait_for(Duration::from_secs(5), || s
        .scanner
        .received()
        .len()
        == 2));
    // Let the scanner connection fill its buffers and block.
    std::thread::sleep(Duration::from_millis(500));
    drop(c);
    assert_worker_recovered(&s.nginx, worker, fds);
    assert_eq!(s.backend.received().len(), 1);
    s.scanner.script([Action::Allow]);
    assert_eq!(
        client::post(s.nginx.port, "/after", b"y").unwrap().status,
        200
    );
}
