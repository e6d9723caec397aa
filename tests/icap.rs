//! ICAP against the real thing: c-icap + ClamAV from Debian's packages, on 127.0.0.1.

mod common;
use common::*;
use ometascan_testkit::cicap::{CIcap, THREAT};
use std::time::Duration;

struct IcapSetup {
    nginx: Nginx,
    backend: Backend,
    cicap: CIcap,
}

fn icap_setup(extra: &str) -> IcapSetup {
    let cicap = CIcap::start();
    let backend = Backend::start();
    let http = format!(
        "client_max_body_size 200m;\n\
         server {{ listen 127.0.0.1:%PORT%;\n\
           location / {{ ometascan_pass {}; proxy_pass http://127.0.0.1:{}; {extra} }}\n\
           location /echo/ {{ ometascan_pass {}; proxy_pass http://127.0.0.1:{}; }}\n\
           location /avscan/ {{ ometascan_pass {}; proxy_pass http://127.0.0.1:{}; }}\n\
         }}",
        cicap.url("virus_scan"),
        backend.port(),
        cicap.url("echo"),
        backend.port(),
        cicap.url("avscan"),
        backend.port(),
    );
    let nginx = Nginx::start(&http);
    IcapSetup {
        nginx,
        backend,
        cicap,
    }
}

fn assert_blocked(s: &IcapSetup, r: &Response, path: &str) {
    assert_eq!(r.status, 403, "{}", s.nginx.error_log());
    let page = r.text();
    assert!(page.contains("VIRUS FOUND"), "{page}");
    assert!(page.contains(THREAT), "{page}");
    assert!(page.contains(path), "{page}");
    assert_eq!(r.header("content-type"), Some("text/html"));
}

#[test]
fn clean_eicar_embedded_and_preview_cases() {
    let s = icap_setup("");
    // A clean 700 KB upload reaches the backend byte for byte.
    let clean = random_bytes(700_000, 1);
    let r = client::post(s.nginx.port, "/upload/clean.bin", &clean).unwrap();
    assert_eq!(r.status, 200, "{}", s.nginx.error_log());
    assert_eq!(s.backend.received()[0].body, clean);

    // The EICAR string alone (inside the preview, ieof).
    let r = client::post(s.nginx.port, "/upload/eicar.com", EICAR).unwrap();
    assert_blocked(&s, &r, "/upload/eicar.com");

    // EICAR in the middle of 600 KB (after the preview).
    let mut embedded = random_bytes(300_000, 2);
    embedded.extend_from_slice(EICAR);
    embedded.extend_from_slice(&random_bytes(300_000, 3));
    let r = client::post(s.nginx.port, "/upload/embedded.bin", &embedded).unwrap();
    assert_blocked(&s, &r, "/upload/embedded.bin");

    // EICAR at offset 0 of 500 KB (inside the preview, the body continues).
    let mut head = EICAR.to_vec();
    head.extend_from_slice(&random_bytes(500_000, 4));
    let r = client::post(s.nginx.port, "/upload/eicar-head.bin", &head).unwrap();
    assert_blocked(&s, &r, "/upload/eicar-head.bin");

    // The service alias with its own options.
    let r = client::post(s.nginx.port, "/avscan/e.bin", &embedded).unwrap();
    assert_blocked(&s, &r, "/avscan/e.bin");
    let r = client::post(s.nginx.port, "/avscan/c.bin", &clean).unwrap();
    assert_eq!(r.status, 200);

    let got = s.backend.received();
    assert_eq!(got.len(), 2, "only the clean uploads reached the backend");
    assert_eq!(got[1].body, clean);
    let log = s.nginx.error_log();
    assert!(log.contains(&format!("threat \"{THREAT}\"")), "{log}");
    assert!(
        log.contains("[notice]") && log.contains("request blocked by the scanner with status 403")
    );
}

#[test]
fn echo_service_is_the_modified_path() {
    let s = icap_setup("");
    let body = b"hello world, this is a clean text upload".to_vec();
    let r = client::request(
        s.nginx.port,
        "POST",
        "/echo/clean.txt",
        &[("Content-Type", "text/plain")],
        &body,
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", s.nginx.error_log());
    let got = &s.backend.received()[0];
    assert_eq!(got.body, body);
    assert_eq!(
        got.head.header("content-length"),
        Some(body.len().to_string().as_str())
    );
    assert_eq!(got.head.header("content-type"), Some("text/plain"));
    // Larger than the in-memory threshold: spilled and forwarded exactly.
    let big = random_bytes(3 << 20, 8);
    let r = client::post(s.nginx.port, "/echo/big.bin", &big).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(s.backend.received()[1].body_hash, fnv1a(&big));
}

#[test]
fn get_without_body_and_keepalive_reuse() {
    let s = icap_setup("");
    for i in 0..5 {
        let r = client::request(s.nginx.port, "GET", &format!("/page{i}"), &[], b"").unwrap();
        assert_eq!(r.status, 200);
    }
    let mut c = Conn::open(s.nginx.port).unwrap();
    for i in 0..5 {
        let r = c
            .request("POST", &format!("/k{i}.bin"), &[], &random_bytes(5_000, i))
            .unwrap();
        assert_eq!(r.status, 200);
    }
    assert_eq!(s.backend.received().len(), 10);
    // One OPTIONS for the service, then REQMODs on kept-alive connections.
    let access = s.cicap.access_log();
    assert_eq!(access.matches("OPTIONS").count(), 1, "{access}");
}

#[test]
fn hundred_megabytes_clean_upload_passes_with_bounded_memory() {
    let s = icap_setup("");
    s.backend.keep_bodies_up_to(0);
    let worker = s.nginx.worker();
    assert_eq!(
        client::post(s.nginx.port, "/warm.bin", b"x")
            .unwrap()
            .status,
        200
    );
    let base = nginx::rss_kib(worker);
    let body = random_bytes(100 << 20, 77);
    let r = client::post(s.nginx.port, "/big.bin", &body).unwrap();
    assert_eq!(r.status, 200, "{}", s.nginx.error_log());
    let got = &s.backend.received()[1];
    assert_eq!(
        (got.body_len, got.body_hash),
        (body.len() as u64, fnv1a(&body))
    );
    let growth = nginx::rss_kib(worker).saturating_sub(base) / 1024;
    eprintln!("worker RSS growth after a 100 MB ICAP scan: {growth} MiB");
    assert!(growth < 64, "worker RSS grew by {growth} MiB");
}

#[test]
fn icap_server_down_is_502_and_timeouts_are_504() {
    let backend = Backend::start();
    let dead = nginx::free_port();
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let http = format!(
        "server {{ listen 127.0.0.1:%PORT%;\n\
           location /dead/ {{ ometascan_pass icap://127.0.0.1:{dead}/avscan; proxy_pass http://127.0.0.1:{b}; }}\n\
           location /silent/ {{ ometascan_pass icap://127.0.0.1:{s}/avscan; ometascan_read_timeout 1s;\n\
             proxy_pass http://127.0.0.1:{b}; }} }}",
        b = backend.port(),
        s = silent.local_addr().unwrap().port()
    );
    let n = Nginx::start(&http);
    assert_eq!(client::post(n.port, "/dead/x", b"x").unwrap().status, 502);
    let t = std::time::Instant::now();
    assert_eq!(client::post(n.port, "/silent/x", b"x").unwrap().status, 504);
    assert!(t.elapsed() >= Duration::from_millis(900));
    assert!(backend.received().is_empty());
    assert!(
        n.error_log().contains("scanner: \"icap://127.0.0.1:"),
        "{}",
        n.error_log()
    );
}
