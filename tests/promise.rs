//! The promise on every path: no blocked, failed or unscanned body reaches a backend, whatever
//! nginx does after the verdict (error_page, named locations, try_files, rewrite, mirror) and
//! whatever the client chooses (URL, method).

mod common;
use common::*;
use ometascan_testkit::icap_double::{IcapAction, IcapDouble};
use std::time::Duration;

/// Whatever the backend got carried no body: every request it saw is empty, and none of
/// the EICAR bytes reached it.
#[track_caller]
fn assert_backend_got_no_body(backend: &Backend) {
    for req in backend.received() {
        assert_eq!(
            req.body_len, 0,
            "a body reached the backend: {:?}",
            req.head
        );
        if let Some(cl) = req.head.header("content-length") {
            assert_eq!(cl, "0", "{:?}", req.head);
        }
    }
}

/// A server with a scanned `/up` (intercepting errors), the given error_page lines, and the
/// fallback locations `extra`; the backend serves every proxied location.
fn fallback_setup(scanner_url: &str, error_pages: &str, extra: &str) -> (Nginx, Backend) {
    let backend = Backend::start();
    let b = backend.port();
    let http = format!(
        "server {{\n listen 127.0.0.1:%PORT%;\n\
         location /up {{\n  ometascan_pass {scanner_url};\n  ometascan_intercept_errors on;\n\
           ometascan_read_timeout 1s;\n  {error_pages}\n  proxy_pass http://127.0.0.1:{b};\n }}\n\
         location @fallback {{ proxy_pass http://127.0.0.1:{b}; }}\n\
         location /fallback {{ proxy_pass http://127.0.0.1:{b}; }}\n\
         location /via-try-files {{ try_files /nonexistent @fallback; }}\n\
         location /via-rewrite {{ rewrite ^ /fallback/rewritten last; }}\n\
         {extra}\n}}",
        extra = extra.replace("%BACKEND%", &b.to_string()),
    );
    (Nginx::start(&http), backend)
}

#[test]
fn a_blocked_body_never_reaches_the_backend_through_error_page() {
    let scanner = ScannerDouble::start(Action::EicarAware);
    for pages in [
        "error_page 403 @fallback;",
        "error_page 403 = @fallback;",
        "error_page 403 /fallback/page;",
        "error_page 403 =200 /fallback/page;",
        "error_page 403 /via-try-files;",
        "error_page 403 /via-rewrite;",
    ] {
        let (n, backend) = fallback_setup(&scanner.url(), pages, "");
        let r = client::post(n.port, "/up/file", EICAR).unwrap();
        // The fallback answers (the operator asked for it), but with no body to send.
        assert!(
            r.text().starts_with("backend received 0 bytes"),
            "{pages}: {} {}",
            r.status,
            r.text()
        );
        assert_eq!(backend.received().len(), 1, "{pages}");
        assert_backend_got_no_body(&backend);
        // A clean upload through the same configuration is forwarded whole.
        let clean = random_bytes(20_000, 7);
        let r = client::post(n.port, "/up/file", &clean).unwrap();
        assert_eq!(r.status, 200, "{pages}");
        assert_eq!(backend.received()[1].body, clean, "{pages}");
    }
}

#[test]
fn an_unscanned_body_never_reaches_the_backend_when_the_scanner_is_down_or_silent() {
    let silent = ScannerDouble::start(Action::Silent);
    let down = format!("http://127.0.0.1:{}", nginx::free_port());
    for (url, status) in [(down, 502), (silent.url(), 504)] {
        for pages in [
            "error_page 502 504 @fallback;",
            "error_page 502 504 = @fallback;",
            "error_page 502 504 /fallback/page;",
        ] {
            let (n, backend) = fallback_setup(&url, pages, "");
            let r = client::post(n.port, "/up/file", &random_bytes(300_000, 3)).unwrap();
            assert!(
                r.text().starts_with("backend received 0 bytes"),
                "{url} {pages}: {}",
                r.text()
            );
            assert_backend_got_no_body(&backend);
            assert!(
                n.error_log().contains("scan failed"),
                "{status}: {}",
                n.error_log()
            );
        }
    }
}

#[test]
fn a_mirror_in_the_fallback_gets_no_blocked_body_and_the_file_on_disk_is_emptied() {
    let scanner = ScannerDouble::start(Action::EicarAware);
    let mirror = Backend::start();
    let extra = format!(
        "location @mirrored {{ mirror /m; proxy_pass http://127.0.0.1:%BACKEND%; }}\n\
         location = /m {{ internal; proxy_pass http://127.0.0.1:{}; }}",
        mirror.port()
    );
    let (n, backend) = fallback_setup(
        &scanner.url(),
        "error_page 403 = @mirrored; client_body_in_file_only on;\n\
         client_body_temp_path %PREFIX%/kept;",
        &extra,
    );
    let r = client::post(n.port, "/up/file", EICAR).unwrap();
    assert_eq!(r.text(), "backend received 0 bytes\n");
    assert!(wait_for(Duration::from_secs(3), || !mirror
        .received()
        .is_empty()));
    assert_backend_got_no_body(&backend);
    assert_backend_got_no_body(&mirror);
    // client_body_in_file_only keeps the body's file: it must hold nothing.
    let kept: Vec<_> = std::fs::read_dir(n.prefix.join("kept"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    let walk = |p: &std::path::Path| -> Vec<std::path::PathBuf> {
        let mut out = vec![];
        let mut stack = vec![p.to_path_buf()];
        while let Some(p) = stack.pop() {
            if p.is_dir() {
                stack.extend(std::fs::read_dir(&p).unwrap().flatten().map(|e| e.path()));
            } else {
                out.push(p);
            }
        }
        out
    };
    let files: Vec<_> = kept.iter().flat_map(|p| walk(p)).collect();
    assert!(!files.is_empty(), "the kept body file exists");
    for f in files {
        assert_eq!(std::fs::metadata(&f).unwrap().len(), 0, "{}", f.display());
    }
}

#[test]
fn an_allowed_request_redirected_by_try_files_keeps_its_body_and_is_scanned_once() {
    let scanner = ScannerDouble::start(Action::Allow);
    let backend = Backend::start();
    let http = format!(
        "server {{\n listen 127.0.0.1:%PORT%;\n ometascan_pass {};\n\
         location /up {{ try_files /nonexistent @app; }}\n\
         location @app {{ proxy_pass http://127.0.0.1:{}; }}\n}}",
        scanner.url(),
        backend.port()
    );
    let n = Nginx::start(&http);
    let body = random_bytes(100_000, 9);
    let r = client::post(n.port, "/up/a", &body).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(backend.received()[0].body, body);
    assert_eq!(
        scanner.received().len(),
        1,
        "scanned once, not again in @app"
    );
}

#[test]
fn a_blocked_request_is_not_scanned_and_allowed_again_in_a_scanning_fallback() {
    // The fallback scans too, with a scanner that allows everything: the request must not
    // get a second, empty scan that lets it through with its body.
    let blocker = ScannerDouble::start(Action::block(403, b"blocked"));
    let allower = ScannerDouble::start(Action::Allow);
    let backend = Backend::start();
    let http = format!(
        "server {{\n listen 127.0.0.1:%PORT%;\n\
         location /up {{ ometascan_pass {}; ometascan_intercept_errors on;\n\
           error_page 403 = @again; proxy_pass http://127.0.0.1:{b}; }}\n\
         location @again {{ ometascan_pass {}; proxy_pass http://127.0.0.1:{b}; }}\n}}",
        blocker.url(),
        allower.url(),
        b = backend.port()
    );
    let n = Nginx::start(&http);
    let r = client::post(n.port, "/up/a", EICAR).unwrap();
    assert_eq!(r.text(), "backend received 0 bytes\n");
    assert_backend_got_no_body(&backend);
    assert!(allower.received().is_empty(), "no second scan");
}

#[test]
fn transfer_ignore_of_the_icap_service_does_not_let_the_client_skip_the_scan() {
    let icap = IcapDouble::start(IcapAction::EicarAware, Some(1024));
    icap.set_options_extra("Transfer-Ignore: jpg, png\r\n");
    let backend = Backend::start();
    let http = format!(
        "server {{ listen 127.0.0.1:%PORT%;\n location / {{ ometascan_pass {}; \
         proxy_pass http://127.0.0.1:{}; }} }}",
        icap.url("avscan"),
        backend.port()
    );
    let n = Nginx::start(&http);
    let mut body = random_bytes(5000, 4);
    body.extend_from_slice(EICAR);
    for path in ["/upload.jpg", "/x;.jpg", "/a/B.JPG", "/x.png?y=1", "/plain"] {
        let r = client::post(n.port, path, &body).unwrap();
        assert_eq!(r.status, 403, "{path}: {}", r.text());
        assert!(r.text().contains("EICAR found"), "{path}");
    }
    assert!(backend.received().is_empty());
    // Each body reached the scanner whole.
    assert!(
        icap.bodies().iter().all(|&b| b == body.len()),
        "{:?}",
        icap.bodies()
    );
}

#[test]
fn a_body_sent_with_any_method_is_scanned_by_default() {
    let s = setup(Action::EicarAware, "");
    for method in [
        "PROPFIND",
        "PROPPATCH",
        "MKCOL",
        "LOCK",
        "REPORT",
        "OPTIONS",
        "SEARCH",
        "X-UPLOAD",
    ] {
        let r = client::request(s.nginx.port, method, "/dav/x", &[], EICAR).unwrap();
        assert_eq!(r.status, 403, "{method}: {}", r.text());
    }
    assert!(s.backend.received().is_empty());
    // Without a body, an unlisted method is not scanned.
    let r = client::request(s.nginx.port, "OPTIONS", "/dav/x", &[], b"").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(s.scanner.received().len(), 8);
    assert_eq!(s.backend.received().len(), 1);
}

#[test]
fn a_chunked_body_with_an_unlisted_method_is_scanned() {
    let s = setup(Action::EicarAware, "");
    let mut c = client::Conn::open(s.nginx.port).unwrap();
    let mut msg =
        b"PROPPATCH /dav/x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    msg.extend_from_slice(format!("{:x}\r\n", EICAR.len()).as_bytes());
    msg.extend_from_slice(EICAR);
    msg.extend_from_slice(b"\r\n0\r\n\r\n");
    c.send_raw(&msg).unwrap();
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 403);
    assert!(s.backend.received().is_empty());
}

#[test]
fn webdav_and_custom_methods_can_be_listed_and_a_narrowed_list_is_honoured() {
    let s = setup(Action::EicarAware, "ometascan_methods PROPFIND x-upload;");
    let r = client::request(s.nginx.port, "PROPFIND", "/dav", &[], b"").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        s.scanner.received().len(),
        1,
        "listed: scanned even without a body"
    );
    let r = client::request(s.nginx.port, "X-UPLOAD", "/dav", &[], EICAR).unwrap();
    assert_eq!(r.status, 403);
    // The operator narrowed the list: POST is not scanned here (what was configured).
    let r = client::post(s.nginx.port, "/dav", b"not scanned").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(s.scanner.received().len(), 2);
    let got = s.backend.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].body, b"not scanned");
}

#[test]
fn an_http_scanner_that_allows_before_it_had_the_whole_body_is_a_failure() {
    let body = random_bytes(50 * 1024 * 1024, 5);
    for response in [
        b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(),
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nclean".to_vec(),
    ] {
        let s = setup(
            Action::AnswerEarly {
                after: 64 * 1024,
                response: response.clone(),
            },
            "client_max_body_size 100m;",
        );
        let r = client::post(s.nginx.port, "/big", &body).unwrap();
        assert_eq!(r.status, 502, "{}", String::from_utf8_lossy(&response));
        assert!(s.backend.received().is_empty());
        assert!(
            s.nginx.error_log().contains("before it had the whole body"),
            "{}",
            s.nginx.error_log()
        );
    }
    // An early block is still a block.
    let s = setup(
        Action::AnswerEarly {
            after: 64 * 1024,
            response: b"HTTP/1.1 403 Forbidden\r\nContent-Length: 7\r\n\r\nblocked".to_vec(),
        },
        "client_max_body_size 100m;",
    );
    let r = client::post(s.nginx.port, "/big", &body).unwrap();
    assert_eq!((r.status, r.text().as_str()), (403, "blocked"));
    assert!(s.backend.received().is_empty());
}

fn icap_setup(icap: &IcapDouble, extra: &str) -> (Nginx, Backend) {
    let backend = Backend::start();
    let http = format!(
        "server {{ listen 127.0.0.1:%PORT%; client_max_body_size 100m;\n location / {{ \
         ometascan_pass {}; proxy_pass http://127.0.0.1:{}; {extra} }} }}",
        icap.url("avscan"),
        backend.port()
    );
    (Nginx::start(&http), backend)
}

#[test]
fn an_icap_204_before_the_last_chunk_is_a_failure_but_a_204_on_the_preview_is_a_verdict() {
    let body = random_bytes(8 * 1024 * 1024, 6);
    // After 100 Continue, before the last chunk.
    let icap = IcapDouble::start(IcapAction::AllowMidBody, Some(1024));
    let (n, backend) = icap_setup(&icap, "");
    let r = client::post(n.port, "/a", &body).unwrap();
    assert_eq!(r.status, 502);
    assert!(backend.received().is_empty());
    assert!(n.error_log().contains("before it had the whole body"));
    // Without a preview, as soon as the head arrived.
    let icap = IcapDouble::start(IcapAction::EarlyAllow, None);
    let (n, backend) = icap_setup(&icap, "");
    let r = client::post(n.port, "/a", &body).unwrap();
    assert_eq!(r.status, 502);
    assert!(backend.received().is_empty());
    // On the preview: RFC 3507 lets the server decide there.
    let icap = IcapDouble::start(IcapAction::AllowAfterPreview, Some(1024));
    let (n, backend) = icap_setup(&icap, "");
    let r = client::post(n.port, "/a", &body).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(backend.received()[0].body_len, body.len() as u64);
}

#[test]
fn a_kept_alive_connection_reset_by_the_http_scanner_is_retried_once_on_a_fresh_one() {
    let s = setup(Action::Allow, "");
    s.scanner
        .script([Action::Allow, Action::ResetAfterHead, Action::Allow]);
    let first = random_bytes(10_000, 1);
    let second = random_bytes(200_000, 2);
    assert_eq!(
        client::post(s.nginx.port, "/1", &first).unwrap().status,
        200
    );
    let r = client::post(s.nginx.port, "/2", &second).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let got = s.backend.received();
    assert_eq!(got[1].body, second);
    assert_eq!(s.scanner.received().len(), 3);
    assert_eq!(s.scanner.connections(), 2);
    // The core's tracing event reached nginx's error log, through the notice queue.
    assert!(
        wait_for(Duration::from_secs(2), || s
            .nginx
            .error_log()
            .contains("[info]")
            && s.nginx.error_log().contains("retrying on a new one")),
        "{}",
        s.nginx.error_log()
    );
    // A fresh connection's reset is final: the kept one is reset, then the fresh one too.
    s.scanner.script([
        Action::ResetAfterHead,
        Action::ResetAfterHead,
        Action::Allow,
    ]);
    let r = client::post(s.nginx.port, "/3", &second).unwrap();
    assert_eq!(r.status, 502);
    assert_eq!(s.backend.received().len(), 2);
}

#[test]
fn a_kept_alive_icap_connection_reset_after_100_continue_is_retried_once() {
    let icap = IcapDouble::start(IcapAction::Allow, Some(1024));
    let (n, backend) = icap_setup(&icap, "");
    let body = random_bytes(300_000, 8);
    assert_eq!(client::post(n.port, "/1", &body).unwrap().status, 200);
    icap.script([IcapAction::ResetAfterContinue]);
    let r = client::post(n.port, "/2", &body).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(backend.received()[1].body, body);
    assert_eq!(icap.connections(), 2);
    // The retry sent the whole body again.
    assert_eq!(icap.bodies().last(), Some(&body.len()));
}

#[test]
fn sanitized_headers_replace_every_copy_the_client_sent() {
    let s = setup(
        Action::Respond {
            status: 200,
            headers: vec![
                ("Content-Type".into(), "application/pdf".into()),
                (
                    "Content-Disposition".into(),
                    "attachment; filename=\"clean.pdf\"".into(),
                ),
            ],
            body: b"%PDF clean".to_vec(),
        },
        "",
    );
    let r = client::request(
        s.nginx.port,
        "POST",
        "/up",
        &[
            ("Content-Type", "application/x-msdownload"),
            ("Content-Disposition", "attachment; filename=\"evil.exe\""),
            ("Content-Type", "application/x-msdownload"),
            ("Content-Disposition", "attachment; filename=\"other.exe\""),
        ],
        b"MZ original",
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let got = &s.backend.received()[0];
    assert_eq!(got.body, b"%PDF clean");
    assert_eq!(
        got.head.headers_named("content-type"),
        vec!["application/pdf", "application/pdf"]
    );
    for cd in got.head.headers_named("content-disposition") {
        assert!(cd.contains("clean.pdf") && !cd.contains(".exe"), "{cd}");
    }
}

/// A second server in the same nginx answers every request with `X-Accel-Redirect: /internal`,
/// as an application handing a download back to nginx does.
fn accel_setup(scanner: &ScannerDouble, backend: &Backend) -> Nginx {
    let accel = nginx::free_port();
    let http = format!(
        "server {{ listen 127.0.0.1:{accel};\n location / {{ add_header X-Accel-Redirect /internal; return 200; }} }}\n\
         server {{ listen 127.0.0.1:%PORT%;\n\
         location /up {{ ometascan_pass {}; ometascan_intercept_errors on; error_page 403 @fb;\n\
           proxy_pass http://127.0.0.1:{accel}; }}\n\
         location @fb {{ proxy_pass http://127.0.0.1:{accel}; }}\n\
         location /internal {{ internal; ometascan_pass {}; proxy_pass http://127.0.0.1:{}; }}\n}}",
        scanner.url(),
        scanner.url(),
        backend.port()
    );
    Nginx::start(&http)
}

#[test]
fn an_x_accel_redirect_keeps_an_allowed_body_unscanned_again_and_a_blocked_one_empty() {
    let scanner = ScannerDouble::start(Action::EicarAware);
    let backend = Backend::start();
    let n = accel_setup(&scanner, &backend);
    let clean = random_bytes(30_000, 11);
    let r = client::post(n.port, "/up/a", &clean).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let got = backend.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].target(), "/internal");
    assert_eq!(got[0].body, clean, "the allowed body goes on");
    assert_eq!(scanner.received().len(), 1, "scanned once");
    // Blocked, then error_page → @fb → the application's X-Accel-Redirect → /internal.
    let r = client::post(n.port, "/up/b", EICAR).unwrap();
    assert_eq!(r.text(), "backend received 0 bytes\n");
    let got = backend.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].body_len, 0);
    assert_eq!(
        scanner.received().len(),
        2,
        "not scanned again in /internal"
    );
}

#[test]
fn an_http2_body_with_an_unlisted_method_and_no_content_length_is_scanned() {
    let scanner = ScannerDouble::start(Action::EicarAware);
    let backend = Backend::start();
    let http = format!(
        "server {{ listen 127.0.0.1:%PORT%; http2 on;\n\
         location / {{ ometascan_pass {}; proxy_pass http://127.0.0.1:{}; }} }}",
        scanner.url(),
        backend.port()
    );
    let n = Nginx::start(&http);
    let file = n.prefix.join("eicar.com");
    std::fs::write(&file, EICAR).unwrap();
    // curl streams stdin without a length: nginx sees an HTTP/2 body with no content-length.
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cat {} | curl -s --http2-prior-knowledge -X PROPFIND -T - \
             -o /dev/null -w '%{{http_code}} %{{http_version}}' http://127.0.0.1:{}/dav/x",
            file.display(),
            n.port
        ))
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "403 2");
    let seen = scanner.received();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body, EICAR, "the scanner got the whole body");
    assert!(backend.received().is_empty());
}
