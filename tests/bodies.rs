//! Bodies in memory and in nginx's temp file, chunked uploads, HTTP/1.0, keep-alive and
//! HTTP/2 clients, and memory that does not grow with the body size.

mod common;
use common::*;
use std::io::Write;
use std::time::Duration;

#[test]
fn body_in_temp_file_100mb_is_scanned_and_forwarded_exactly() {
    let s = setup(Action::Allow, "client_max_body_size 200m;");
    s.scanner.keep_bodies_up_to(0);
    s.backend.keep_bodies_up_to(0);
    let body = random_bytes(100 << 20, 42);
    let hash = fnv1a(&body);
    let r = client::post(s.nginx.port, "/big", &body).unwrap();
    assert_eq!(r.status, 200, "{}", s.nginx.error_log());
    let seen = &s.scanner.received()[0];
    assert_eq!((seen.body_len, seen.body_hash), (body.len() as u64, hash));
    let got = &s.backend.received()[0];
    assert_eq!((got.body_len, got.body_hash), (body.len() as u64, hash));
    assert!(s.nginx.error_log().contains("buffered to a temporary file"));
}

#[test]
fn body_in_memory_with_large_client_body_buffer() {
    let s = setup(
        Action::Allow,
        "client_body_buffer_size 1m; client_max_body_size 2m;",
    );
    let body = random_bytes(900_000, 7);
    let r = client::post(s.nginx.port, "/mem", &body).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(s.scanner.received()[0].body, body);
    assert_eq!(s.backend.received()[0].body, body);
    assert!(!s.nginx.error_log().contains("buffered to a temporary file"));
}

#[test]
fn blocked_100mb_upload_reaches_nothing() {
    let s = setup(Action::block(403, b"blocked"), "client_max_body_size 200m;");
    s.scanner.keep_bodies_up_to(0);
    let mut body = random_bytes(100 << 20, 43);
    body[50 << 20..(50 << 20) + EICAR.len()].copy_from_slice(EICAR);
    let r = client::post(s.nginx.port, "/big", &body).unwrap();
    assert_eq!((r.status, r.text().as_str()), (403, "blocked"));
    assert_eq!(s.scanner.received()[0].body_len, body.len() as u64);
    assert!(s.backend.received().is_empty());
}

#[test]
fn chunked_upload_is_dechunked_for_the_scanner() {
    let s = setup(Action::Allow, "client_max_body_size 10m;");
    let body = random_bytes(200_000, 11);
    let mut c = Conn::open(s.nginx.port).unwrap();
    let mut msg =
        b"POST /chunked HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for piece in body.chunks(7_777) {
        write!(msg, "{:x}\r\n", piece.len()).unwrap();
        msg.extend_from_slice(piece);
        msg.extend_from_slice(b"\r\n");
    }
    msg.extend_from_slice(b"0\r\n\r\n");
    c.send_raw(&msg).unwrap();
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 200);
    // A POST without a type is also read as a form, as Rack reads it: the whole body is one
    // of the objects scanned.
    let received = s.scanner.received();
    let seen = received
        .iter()
        .find(|o| o.body_len == body.len() as u64)
        .expect("the whole body is scanned");
    assert_eq!(seen.head.header("content-length"), Some("200000"));
    assert_eq!(seen.head.header("transfer-encoding"), None);
    assert_eq!(seen.body, body);
    assert_eq!(s.backend.received()[0].body, body);
}

#[test]
fn http10_client() {
    let s = setup(Action::Allow, "");
    let mut c = Conn::open(s.nginx.port).unwrap();
    c.send_raw(b"POST /old HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello")
        .unwrap();
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 200);
    assert!(r.head.start.starts_with("HTTP/1.1 200"));
    let seen = &s.scanner.received()[0];
    assert_eq!(seen.body, b"hello");
    assert!(
        seen.head.header("host").is_some(),
        "a Host is always sent to the scanner"
    );
    assert_eq!(s.backend.received()[0].body, b"hello");
}

#[test]
fn keepalive_connection_carries_several_scanned_requests() {
    let s = setup(Action::Allow, "");
    s.scanner.script([
        Action::Allow,
        Action::block(403, b"no"),
        Action::Echo,
        Action::Allow,
    ]);
    let mut c = Conn::open(s.nginx.port).unwrap();
    let statuses: Vec<u16> = (0..4)
        .map(|i| {
            c.request(
                "POST",
                &format!("/k{i}"),
                &[],
                format!("body {i}").as_bytes(),
            )
            .unwrap()
            .status
        })
        .collect();
    assert_eq!(statuses, vec![200, 403, 200, 200]);
    let got: Vec<String> = s
        .backend
        .received()
        .iter()
        .map(|r| r.target().to_string())
        .collect();
    assert_eq!(got, vec!["/k0", "/k2", "/k3"]);
    // The module keeps its connection to the scanner alive too.
    assert_eq!(s.scanner.connections(), 1);
}

#[test]
fn concurrent_scans_are_independent() {
    let s = setup(
        Action::Delay(Duration::from_millis(300), Box::new(Action::EicarAware)),
        "",
    );
    let port = s.nginx.port;
    let handles: Vec<_> = (0..16)
        .map(|i| {
            std::thread::spawn(move || {
                let mut body = random_bytes(10_000 + i * 100, i as u64);
                if i % 4 == 0 {
                    body.extend_from_slice(EICAR);
                }
                (
                    i,
                    client::post(port, &format!("/c{i}"), &body).unwrap().status,
                )
            })
        })
        .collect();
    for h in handles {
        let (i, status) = h.join().unwrap();
        assert_eq!(status, if i % 4 == 0 { 403 } else { 200 }, "request {i}");
    }
    assert_eq!(s.backend.received().len(), 12);
}

#[test]
fn http2_client() {
    let scanner = ScannerDouble::start(Action::EicarAware);
    let backend = Backend::start();
    let http = format!(
        "server {{ listen 127.0.0.1:%PORT%; http2 on;\n\
         location / {{ ometascan_pass {}; proxy_pass http://127.0.0.1:{}; }} }}",
        scanner.url(),
        backend.port()
    );
    let n = Nginx::start(&http);
    let dir = n.prefix.join("h2");
    std::fs::create_dir_all(&dir).unwrap();
    let clean = random_bytes(300_000, 21);
    std::fs::write(dir.join("clean.bin"), &clean).unwrap();
    std::fs::write(dir.join("eicar.com"), EICAR).unwrap();
    let curl = |file: &str| {
        let out = std::process::Command::new("curl")
            .args([
                "-s",
                "--http2-prior-knowledge",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code} %{http_version}",
            ])
            .arg("--data-binary")
            .arg(format!("@{}", dir.join(file).display()))
            .arg(format!("http://127.0.0.1:{}/h2/{file}", n.port))
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(curl("clean.bin"), "200 2");
    assert_eq!(curl("eicar.com"), "403 2");
    let got = backend.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, clean);
    // curl labels the upload url-encoded: besides the body as sent, its fields are read as
    // PHP reads them (short binary values in a tar bundle, the long ones alone).
    let scans = scanner.received();
    assert!(
        scans.iter().filter(|s| s.body == clean).count() == 1,
        "the body as sent"
    );
    assert!(scans
        .iter()
        .any(|s| s.head.header("content-type") == Some("application/x-tar")));
    assert!(scans.len() < 20, "{} scans", scans.len());
    assert_eq!(
        scanner.received()[0]
            .head
            .header("host")
            .map(|h| h.starts_with("127.0.0.1")),
        Some(true)
    );
}

/// HTTP/2 clients that give up while their (in-memory) bodies are being scanned: nginx keeps
/// each stream's request until the scan has let go of its body, then frees it; the worker
/// lives on and serves the next client.
#[test]
fn http2_clients_gone_mid_scan() {
    let scanner = ScannerDouble::start(Action::Delay(
        std::time::Duration::from_secs(2),
        Box::new(Action::Allow),
    ));
    let backend = Backend::start();
    let http = format!(
        "server {{ listen 127.0.0.1:%PORT%; http2 on; client_body_buffer_size 1m;\n\
         location / {{ ometascan_pass {}; proxy_pass http://127.0.0.1:{}; }} }}",
        scanner.url(),
        backend.port()
    );
    let n = Nginx::start(&http);
    let worker = n.worker();
    let dir = n.prefix.join("h2");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("body.bin"), random_bytes(500_000, 22)).unwrap();
    let curl = |timeout: &str| {
        std::process::Command::new("curl")
            .args(["-s", "--http2-prior-knowledge", "-o", "/dev/null"])
            .args(["-w", "%{http_code}", "-m", timeout, "--data-binary"])
            .arg(format!("@{}", dir.join("body.bin").display()))
            .arg(format!("http://127.0.0.1:{}/up", n.port))
            .output()
            .expect("curl")
    };
    scanner.script([Action::Allow]);
    assert_eq!(String::from_utf8_lossy(&curl("10").stdout), "200");
    let fds = nginx::fd_count(worker);
    // Five clients, each gone after 0.5 s, while their scans take 2 s.
    let outs: Vec<_> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..5).map(|_| sc.spawn(|| curl("0.5"))).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for o in &outs {
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            "000",
            "the client gave up"
        );
    }
    // The scans end 2 s after they started; the requests are freed then.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_worker_recovered(&n, worker, fds);
    assert_eq!(
        backend.received().len(),
        1,
        "only the first, finished upload"
    );
    scanner.script([Action::Allow]);
    assert_eq!(String::from_utf8_lossy(&curl("10").stdout), "200");
}

/// 20 concurrent 100 MB uploads: the worker's resident memory must not follow the body size.
#[test]
fn worker_memory_does_not_grow_with_body_size() {
    let s = setup(Action::Allow, "client_max_body_size 200m;");
    s.scanner.keep_bodies_up_to(0);
    s.backend.keep_bodies_up_to(0);
    let worker = s.nginx.worker();
    assert_eq!(
        client::post(s.nginx.port, "/warm", b"x").unwrap().status,
        200
    );
    let base = nginx::rss_kib(worker);
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(base));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::Acquire) {
                peak.fetch_max(nginx::rss_kib(worker), std::sync::atomic::Ordering::AcqRel);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let body = std::sync::Arc::new(random_bytes(100 << 20, 99));
    let port = s.nginx.port;
    let handles: Vec<_> = (0..20)
        .map(|_| {
            let body = body.clone();
            std::thread::spawn(move || client::post(port, "/big", &body).unwrap().status)
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 200);
    }
    done.store(true, std::sync::atomic::Ordering::Release);
    sampler.join().unwrap();
    let growth_mib = (peak.load(std::sync::atomic::Ordering::Acquire) - base) as f64 / 1024.0;
    eprintln!(
        "worker RSS: base {} KiB, growth {:.1} MiB during 20 x 100 MB uploads",
        base, growth_mib
    );
    assert_eq!(s.backend.received().len(), 21);
    assert!(s.backend.received()[1..]
        .iter()
        .all(|r| r.body_hash == fnv1a(&body)));
    assert!(growth_mib < 64.0, "worker RSS grew by {growth_mib:.1} MiB");
}
