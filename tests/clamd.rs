//! clamd without an ICAP server: `ometascan_pass clamd://...` against Debian's clamav-daemon,
//! started by the test with a signature database made here.

mod common;
use common::*;
use ometascan_testkit::clamd::{Clamd, ClamdConfig, THREAT};
use std::time::Duration;

fn location(clamd: &Clamd, backend: &Backend, extra: &str) -> String {
    format!(
        "client_max_body_size 300m;\n\
         server {{ listen 127.0.0.1:%PORT%;\n\
           location / {{ ometascan_pass {}; proxy_pass http://127.0.0.1:{}; {extra}\n\
             add_header X-Threat $ometascan_threat always;\n\
             add_header X-Parts $ometascan_parts always; }}\n\
         }}",
        clamd.url(),
        backend.port(),
    )
}

fn tcp_clamd() -> Clamd {
    Clamd::start_with(ClamdConfig {
        tcp: true,
        ..ClamdConfig::default()
    })
}

/// A form with a field and one file.
fn form(file: &[u8]) -> Vec<u8> {
    let mut out = b"--b\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nreport\r\n\
        --b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"r.gz\"\r\n\
        Content-Type: application/gzip\r\n\r\n"
        .to_vec();
    out.extend_from_slice(file);
    out.extend_from_slice(b"\r\n--b--\r\n");
    out
}

fn post_form(port: u16, body: &[u8]) -> Response {
    let ct = [("Content-Type", "multipart/form-data; boundary=b")];
    client::request(port, "POST", "/form", &ct, body).unwrap()
}

fn assert_blocked(n: &Nginx, r: &Response) {
    assert_eq!(r.status, 403, "{}", n.error_log());
    assert!(r.text().contains(THREAT), "{}", r.text());
    assert_eq!(r.header("x-threat"), Some(THREAT));
    assert_eq!(r.header("content-type"), Some("text/html"));
}

#[test]
fn clean_uploads_pass_byte_exact_and_eicar_is_blocked_with_its_name() {
    let clamd = tcp_clamd();
    let backend = Backend::start();
    let n = Nginx::start(&location(&clamd, &backend, ""));
    let clean = random_bytes(700_000, 1);
    let r = client::post(n.port, "/up/clean.bin", &clean).unwrap();
    assert_eq!(r.status, 200, "{}", n.error_log());
    assert_eq!(backend.received()[0].body, clean);

    let r = client::post(n.port, "/up/eicar.com", EICAR).unwrap();
    assert_blocked(&n, &r);
    let mut embedded = random_bytes(300_000, 2);
    embedded.extend_from_slice(EICAR);
    embedded.extend_from_slice(&random_bytes(300_000, 3));
    let r = client::post(n.port, "/up/embedded.bin", &embedded).unwrap();
    assert_blocked(&n, &r);
    // A body larger than nginx's buffer, read from the temp file.
    let mut big = random_bytes(5 << 20, 4);
    big.extend_from_slice(EICAR);
    let r = client::post(n.port, "/up/big.bin", &big).unwrap();
    assert_blocked(&n, &r);
    let big_clean = random_bytes(5 << 20, 5);
    let r = client::post(n.port, "/up/big-clean.bin", &big_clean).unwrap();
    assert_eq!(r.status, 200);

    let got = backend.received();
    assert_eq!(got.len(), 2, "only the clean uploads reached the backend");
    assert_eq!(got[1].body_hash, fnv1a(&big_clean));
    let log = n.error_log();
    assert!(
        log.contains(&format!(
            "request blocked by the scanner with status 403, threat \"{THREAT}\""
        )),
        "{log}"
    );
}

#[test]
fn a_gzipped_eicar_in_a_form_and_a_gzip_encoded_body_are_blocked() {
    let clamd = tcp_clamd();
    let backend = Backend::start();
    let n = Nginx::start(&location(&clamd, &backend, ""));
    // A form's file that is a gzip archive holding EICAR: clamd opens the archive.
    let r = post_form(n.port, &form(&gzip(EICAR)));
    assert_blocked(&n, &r);
    assert_eq!(
        r.header("x-parts"),
        Some("2"),
        "each part scanned on its own"
    );
    // Its twin: the same form with a clean archive.
    let benign = form(&gzip(&random_bytes(50_000, 6)));
    let r = post_form(n.port, &benign);
    assert_eq!(r.status, 200, "{}", n.error_log());
    assert_eq!(r.header("x-parts"), Some("2"));
    // A request body sent with Content-Encoding: gzip is decoded by the module for clamd.
    let mut file = random_bytes(100_000, 7);
    file.extend_from_slice(EICAR);
    let gz = [("Content-Encoding", "gzip")];
    let r = client::request(n.port, "POST", "/enc", &gz, &gzip(&file)).unwrap();
    assert_blocked(&n, &r);
    let clean = gzip(&random_bytes(100_000, 8));
    let r = client::request(n.port, "POST", "/enc", &gz, &clean).unwrap();
    assert_eq!(r.status, 200);
    let got = backend.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].body, benign, "the form as the client sent it");
    assert_eq!(got[1].body, clean, "the encoded body as the client sent it");
}

#[test]
fn a_body_over_clamds_stream_limit_is_refused_never_forwarded() {
    let clamd = Clamd::start_with(ClamdConfig {
        tcp: true,
        stream_max_length: "1M".into(),
        ..ClamdConfig::default()
    });
    let backend = Backend::start();
    let n = Nginx::start(&location(&clamd, &backend, ""));
    let r = client::post(n.port, "/up/big.bin", &random_bytes(3 << 20, 9)).unwrap();
    assert_eq!(r.status, 413, "{}", n.error_log());
    let log = n.error_log();
    assert!(log.contains("StreamMaxLength"), "{log}");
    // Its twin under the limit.
    let small = random_bytes(500_000, 10);
    let r = client::post(n.port, "/up/small.bin", &small).unwrap();
    assert_eq!(r.status, 200);
    let got = backend.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, small);
}

#[test]
fn clamd_killed_mid_scan_is_a_502_with_nothing_forwarded() {
    let mut clamd = tcp_clamd();
    let backend = Backend::start();
    let n = Nginx::start(&location(&clamd, &backend, ""));
    let port = n.port;
    let body = random_bytes(150 << 20, 11);
    let upload = std::thread::spawn(move || client::post(port, "/up/huge.bin", &body).unwrap());
    assert!(
        wait_for(Duration::from_secs(30), || clamd.has_stream()),
        "clamd never got the stream"
    );
    clamd.kill();
    let r = upload.join().unwrap();
    assert_eq!(r.status, 502, "{}", n.error_log());
    assert!(backend.received().is_empty());
    // Its twin: with clamd back, the same kind of upload passes.
    let clamd = Clamd::start_with(ClamdConfig {
        tcp: true,
        ..ClamdConfig::default()
    });
    let backend = Backend::start();
    let n = Nginx::start(&location(&clamd, &backend, ""));
    let body = random_bytes(20 << 20, 12);
    let r = client::post(n.port, "/up/big.bin", &body).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(backend.received()[0].body_hash, fnv1a(&body));
}

#[test]
fn a_signature_update_invalidates_cached_verdicts() {
    let clamd = tcp_clamd();
    let backend = Backend::start();
    let extra = "ometascan_cache verdicts; ometascan_cache_revalidate 1s;\n\
                 add_header X-Cache $ometascan_cache_status always;";
    let http = format!(
        "ometascan_cache_zone verdicts:1m;\n{}",
        location(&clamd, &backend, extra)
    );
    let n = Nginx::start(&http);
    let marker = b"ometascan-new-signature-marker-0123456789";
    let mut file = random_bytes(40_000, 13);
    file.extend_from_slice(marker);
    file.extend_from_slice(&random_bytes(40_000, 14));
    let cache = |r: &Response| r.header("x-cache").unwrap_or("").to_string();
    for want in ["MISS", "HIT"] {
        let r = client::post(n.port, "/up/new.bin", &file).unwrap();
        assert_eq!(
            (r.status, cache(&r)),
            (200, want.into()),
            "{}",
            n.error_log()
        );
    }
    let hex: String = marker.iter().map(|b| format!("{b:02x}")).collect();
    clamd.update_signatures(2, &[format!("Ometascan.Test.New:0:*:{hex}")]);
    std::thread::sleep(Duration::from_millis(1200));
    let r = client::post(n.port, "/up/new.bin", &file).unwrap();
    assert_eq!(
        (r.status, cache(&r)),
        (403, "MISS".into()),
        "{}",
        n.error_log()
    );
    assert_eq!(r.header("x-threat"), Some("Ometascan.Test.New.UNOFFICIAL"));
    let r = client::post(n.port, "/up/new.bin", &file).unwrap();
    assert_eq!((r.status, cache(&r)), (403, "HIT".into()));
    let got = backend.received();
    assert_eq!(got.len(), 2, "only the two uploads before the update");
    assert_eq!(got[1].body, file);
}

#[test]
fn health_checks_ping_clamd_and_a_server_that_is_not_clamd_is_marked_down() {
    let mut clamd = tcp_clamd();
    // Something listens there, but it is no clamd: it does not answer PONG.
    let other = ScannerDouble::start(Action::Allow);
    let backend = Backend::start();
    let port = clamd.port.unwrap();
    let http = format!(
        "upstream clamds {{ server 127.0.0.1:{port}; server 127.0.0.1:{}; }}\n\
         server {{ listen 127.0.0.1:%PORT%; location / {{ ometascan_pass clamd://clamds;\n\
         ometascan_health_check interval=200ms fails=1 passes=1 timeout=500ms;\n\
         proxy_pass http://127.0.0.1:{}; }} }}",
        other.port(),
        backend.port()
    );
    let n = Nginx::start(&http);
    let down = |p: u16| format!("scanner 127.0.0.1:{p} is marked down (health check failed)");
    assert!(
        wait_for(Duration::from_secs(5), || n
            .error_log()
            .contains(&down(other.port()))),
        "{}",
        n.error_log()
    );
    assert!(!n.error_log().contains(&down(port)), "{}", n.error_log());
    // Every scan goes to clamd: one sent to the other server would get an answer that is not
    // clamd's, a 502.
    for i in 0..4 {
        let r = client::post(n.port, &format!("/h{i}"), b"clean").unwrap();
        assert_eq!(r.status, 200, "{}", n.error_log());
    }
    clamd.kill();
    assert!(
        wait_for(Duration::from_secs(5), || n
            .error_log()
            .contains(&down(port))),
        "{}",
        n.error_log()
    );
    assert_eq!(backend.received().len(), 4);
}

#[test]
fn clamd_on_its_local_socket_scans_alone_and_in_an_upstream_block() {
    // clamd with no TCP port at all: only its local socket.
    let clamd = Clamd::start();
    let sock = clamd.socket();
    let backend = Backend::start();
    let http = format!(
        "client_max_body_size 300m;\n\
         upstream clamds {{ server unix:{s}; }}\n\
         server {{ listen 127.0.0.1:%PORT%;\n\
           add_header X-Threat $ometascan_threat always;\n\
           add_header X-Scanner $ometascan_scanner_addr always;\n\
           location /direct/ {{ ometascan_pass clamd+unix://{s}; proxy_pass http://127.0.0.1:{b}; }}\n\
           location /group/ {{ ometascan_pass clamd://clamds;\n\
             ometascan_health_check interval=200ms fails=1 passes=1 timeout=500ms;\n\
             proxy_pass http://127.0.0.1:{b}; }}\n\
           location /gone/ {{ ometascan_pass clamd+unix://{s}.gone; proxy_pass http://127.0.0.1:{b}; }}\n\
           location = /ometascan_status {{ ometascan_status; }}\n\
         }}",
        s = sock.display(),
        b = backend.port(),
    );
    let n = Nginx::start(&http);
    let shown = format!("unix:{}", sock.display());
    for prefix in ["/direct/", "/group/"] {
        let clean = random_bytes(3 << 20, 11);
        let r = client::post(n.port, &format!("{prefix}clean.bin"), &clean).unwrap();
        assert_eq!(r.status, 200, "{prefix}: {}", n.error_log());
        assert_eq!(r.header("x-scanner"), Some(shown.as_str()));
        let mut bad = random_bytes(2 << 20, 12);
        bad.extend_from_slice(EICAR);
        let r = client::post(n.port, &format!("{prefix}eicar.bin"), &bad).unwrap();
        assert_blocked(&n, &r);
        assert_eq!(r.header("x-scanner"), Some(shown.as_str()));
        let got = backend.received();
        assert_eq!(got.last().map(|g| g.body_hash), Some(fnv1a(&clean)));
    }
    assert_eq!(backend.received().len(), 2, "only the clean uploads");
    // No socket at that path: a failure, nothing forwarded.
    let r = client::post(n.port, "/gone/x.bin", b"clean").unwrap();
    assert_eq!(r.status, 502);
    assert_eq!(backend.received().len(), 2);
    let log = n.error_log();
    assert!(log.contains(&format!("{shown}.gone")), "{log}");
    // The health check PINGs over the socket and keeps the server up; the status page names
    // it as nginx does.
    std::thread::sleep(Duration::from_millis(600));
    assert!(!n.error_log().contains("marked down"), "{}", n.error_log());
    let r = client::request(n.port, "GET", "/ometascan_status", &[], b"").unwrap();
    let page = r.text();
    assert!(
        page.contains(&format!(
            "ometascan_server_scans_total{{server=\"{shown}\"}} 4"
        )),
        "{page}"
    );
}

#[test]
fn with_fildes_clamd_scans_the_bodys_file_where_it_is() {
    let clamd = Clamd::start();
    let backend = Backend::start();
    let conf = |fildes: &str| {
        format!(
            "client_max_body_size 50m; client_body_buffer_size 64k;\n\
             server {{ listen 127.0.0.1:%PORT%;\n\
               location / {{ ometascan_pass clamd+unix://{};\n\
                 ometascan_clamd_fildes {fildes}; proxy_pass http://127.0.0.1:{};\n\
                 add_header X-Threat $ometascan_threat always;\n\
                 add_header X-Times \"$ometascan_scan_time $ometascan_scan_wait_time \
                   $ometascan_scan_connect_time $ometascan_scan_send_time \
                   $ometascan_scan_answer_time $ometascan_scan_handback_time\" always; }} }}",
            clamd.socket().display(),
            backend.port()
        )
    };
    let n = Nginx::start(&conf("on"));
    // A body in nginx's temp file (over the 64k buffer) and one in memory: clean ones pass
    // byte-exact, infected ones are blocked with clamd's name for them.
    for len in [700_000, 20_000] {
        let clean = random_bytes(len, 31);
        let seen = backend.received().len();
        let r = client::post(n.port, "/up/clean.bin", &clean).unwrap();
        assert_eq!(r.status, 200, "{len}: {}", n.error_log());
        assert_eq!(backend.received_since(seen)[0].body, clean);
        // Where the scan's time went: each phase within the scan's time.
        let times: Vec<f64> = r
            .header("x-times")
            .unwrap_or_default()
            .split_whitespace()
            .map(|t| t.parse().unwrap())
            .collect();
        assert_eq!(times.len(), 6, "{:?}", r.header("x-times"));
        assert!(
            times[1..5].iter().sum::<f64>() <= times[0] + 0.004,
            "{times:?}"
        );
        let mut bad = random_bytes(len, 32);
        bad[len / 2..len / 2 + EICAR.len()].copy_from_slice(EICAR);
        let seen = backend.received().len();
        let r = client::post(n.port, "/up/bad.bin", &bad).unwrap();
        assert_blocked(&n, &r);
        assert!(backend.received_since(seen).is_empty());
    }
    // clamd without its temporary directory cannot take a stream, but it can scan a file
    // where it is: the body goes as a file with FILDES, and as a stream without it.
    let tmp = clamd.socket().with_file_name("tmp");
    std::fs::remove_dir_all(&tmp).unwrap();
    for len in [700_000, 20_000] {
        let r = client::post(n.port, "/up/file.bin", &random_bytes(len, 34)).unwrap();
        assert_eq!(r.status, 200, "{len}: {}", n.error_log());
    }
    let clean = random_bytes(700_000, 33);
    let streamed = Nginx::start(&conf("off"));
    let seen = backend.received().len();
    let r = client::post(streamed.port, "/up/file.bin", &clean).unwrap();
    assert_eq!(r.status, 502, "{}", streamed.error_log());
    assert!(backend.received_since(seen).is_empty());
    std::fs::create_dir_all(&tmp).unwrap();
}
