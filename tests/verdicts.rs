//! Every verdict of the HTTP scan protocol, checked at the client and at the backend.

mod common;
use common::*;

#[test]
fn allowed_204_forwards_the_exact_body_and_sends_the_request_to_the_scanner() {
    let s = setup(Action::Allow, "");
    let body = random_bytes(50_000, 1);
    let r = client::request(
        s.nginx.port,
        "POST",
        "/upload/file.bin?x=1&y=%20",
        &[
            ("Content-Type", "application/octet-stream"),
            ("X-Custom", "v1"),
        ],
        &body,
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "backend received 50000 bytes\n");

    let got = s.backend.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, body);
    assert_eq!(got[0].target(), "/upload/file.bin?x=1&y=%20");

    let seen = s.scanner.received();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method(), "POST");
    assert_eq!(seen[0].target(), "/upload/file.bin?x=1&y=%20");
    assert_eq!(seen[0].head.header("host"), Some("test.local"));
    assert_eq!(seen[0].head.header("content-length"), Some("50000"));
    assert_eq!(seen[0].head.header("x-custom"), Some("v1"));
    assert_eq!(
        seen[0].head.header("content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(seen[0].body, body);
}

#[test]
fn allowed_200_with_empty_body() {
    let s = setup(Action::AllowEmpty, "");
    let r = client::post(s.nginx.port, "/a", b"some content").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(s.backend.received()[0].body, b"some content");
}

#[test]
fn sanitized_body_replaces_the_clients_with_fixed_headers() {
    let clean = b"%PDF-1.7 sanitized content".to_vec();
    let s = setup(
        Action::Respond {
            status: 200,
            headers: vec![
                ("Content-Type".into(), "application/pdf".into()),
                (
                    "Content-Disposition".into(),
                    "attachment; filename=\"sanitized_report.pdf\"".into(),
                ),
            ],
            body: clean.clone(),
        },
        "",
    );
    let r = client::request(
        s.nginx.port,
        "PUT",
        "/files/report.pdf",
        &[
            ("Content-Type", "application/octet-stream"),
            ("Content-Disposition", "attachment; filename=\"report.pdf\""),
        ],
        &random_bytes(3000, 2),
    )
    .unwrap();
    assert_eq!(r.status, 200);
    let got = s.backend.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, clean);
    assert_eq!(
        got[0].head.header("content-length"),
        Some(clean.len().to_string().as_str())
    );
    assert_eq!(got[0].head.header("content-type"), Some("application/pdf"));
    assert_eq!(
        got[0].head.header("content-disposition"),
        Some("attachment; filename=\"sanitized_report.pdf\"")
    );
}

#[test]
fn sanitized_body_larger_than_memory_threshold_is_forwarded_exactly() {
    let s = setup(Action::Echo, "client_max_body_size 10m;");
    // Echo with pre_cache off: the scanner's body (identical here) is what goes on.
    let body = random_bytes(3 * 1024 * 1024 + 17, 3);
    let r = client::post(s.nginx.port, "/big", &body).unwrap();
    assert_eq!(r.status, 200, "{}", s.nginx.error_log());
    let got = s.backend.received();
    assert_eq!(got[0].body_len, body.len() as u64);
    assert_eq!(got[0].body_hash, fnv1a(&body));
}

#[test]
fn pre_cache_on_forwards_the_module_copy_unless_marked_sanitized() {
    let s = setup(
        Action::Respond {
            status: 200,
            headers: vec![],
            body: b"scanner copy".to_vec(),
        },
        "ometascan_pre_cache on;",
    );
    let r = client::post(s.nginx.port, "/x", b"original body").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(s.backend.received()[0].body, b"original body");

    s.scanner.script([Action::Respond {
        status: 200,
        headers: vec![("X-Ometascan-Result".into(), "sanitized".into())],
        body: b"scanner copy".to_vec(),
    }]);
    let r = client::post(s.nginx.port, "/x", b"original body").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(s.backend.received()[1].body, b"scanner copy");
}

#[test]
fn blocked_relays_status_headers_and_page_and_backend_gets_nothing() {
    let page = b"<html>blocked: EICAR</html>".to_vec();
    let s = setup(
        Action::Respond {
            status: 403,
            headers: vec![
                ("Content-Type".into(), "text/html; charset=utf-8".into()),
                ("X-Block-Reason".into(), "virus".into()),
                ("Connection".into(), "keep-alive".into()),
            ],
            body: page.clone(),
        },
        "",
    );
    let r = client::post(s.nginx.port, "/up", EICAR).unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(r.body, page);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.header("x-block-reason"), Some("virus"));
    assert!(s.backend.received().is_empty());

    // Any other status is relayed as well.
    s.scanner.script([
        Action::block(451, b"legal"),
        Action::block(500, b"scanner error page"),
    ]);
    let r = client::post(s.nginx.port, "/up", b"x").unwrap();
    assert_eq!((r.status, r.text().as_str()), (451, "legal"));
    let r = client::post(s.nginx.port, "/up", b"x").unwrap();
    assert_eq!((r.status, r.text().as_str()), (500, "scanner error page"));
    assert!(s.backend.received().is_empty());
}

#[test]
fn head_request_gets_block_status_without_body() {
    let s = setup(Action::block(403, b"a page of 24 characters!"), "");
    let r = client::request(s.nginx.port, "HEAD", "/h", &[], b"").unwrap();
    assert_eq!(r.status, 403);
    assert!(r.body.is_empty());
    // The size of the page a GET would have got, as for nginx's own pages.
    assert_eq!(r.header("content-length"), Some("24"));
    assert_eq!(r.header("content-type"), Some("text/html"));
    assert_eq!(s.scanner.received()[0].method(), "HEAD");
    assert!(s.backend.received().is_empty());
    // The scanner connection is still good for the next scan.
    s.scanner.set_default(Action::Allow);
    assert_eq!(client::post(s.nginx.port, "/up", b"x").unwrap().status, 200);
}

#[test]
fn intercept_errors_hands_blocks_to_error_page() {
    let s = setup(
        Action::block(403, b"scanner page"),
        "ometascan_intercept_errors on; error_page 403 /blocked.html;",
    );
    // The error_page target is served by nginx itself.
    std::fs::create_dir_all(s.nginx.prefix.join("html")).unwrap();
    let r = client::post(s.nginx.port, "/up", EICAR).unwrap();
    // /blocked.html is in the same location: the redirected request is not scanned again
    // (the verdict stands) and is proxied without its body, which was dropped at the block.
    assert_eq!(r.status, 403);
    assert!(!r.text().contains("scanner page"), "{}", r.text());
    assert_eq!(s.scanner.received().len(), 1);
    let got = s.backend.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].method(), "GET");
    assert_eq!(got[0].target(), "/blocked.html");
    assert_eq!(got[0].body_len, 0);
}

#[test]
fn intercept_errors_with_named_location_page() {
    let scanner = ScannerDouble::start(Action::block(403, b"scanner page"));
    let backend = Backend::start();
    let http = format!(
        "server {{ listen 127.0.0.1:%PORT%;\n\
           location / {{ ometascan_pass {}; ometascan_intercept_errors on;\n\
             error_page 403 = @blocked; proxy_pass http://127.0.0.1:{}; }}\n\
           location /nopage/ {{ ometascan_pass {}; ometascan_intercept_errors on;\n\
             proxy_pass http://127.0.0.1:{}; }}\n\
           location @blocked {{ return 418 \"nginx error page\\n\"; }}\n\
         }}",
        scanner.url(),
        backend.port(),
        scanner.url(),
        backend.port()
    );
    let nginx = Nginx::start(&http);
    let r = client::post(nginx.port, "/up", EICAR).unwrap();
    assert_eq!((r.status, r.text().as_str()), (418, "nginx error page\n"));
    // Without an error_page for the status the scanner's page is relayed.
    let r = client::post(nginx.port, "/nopage/up", EICAR).unwrap();
    assert_eq!((r.status, r.text().as_str()), (403, "scanner page"));
    assert!(backend.received().is_empty());
}

#[test]
fn bad_request_is_relayed_unless_allowed() {
    let s = setup(Action::block(400, b"cannot parse"), "");
    let r = client::post(s.nginx.port, "/up", b"body").unwrap();
    assert_eq!((r.status, r.text().as_str()), (400, "cannot parse"));
    assert!(s.backend.received().is_empty());

    let s = setup(
        Action::block(400, b"cannot parse"),
        "ometascan_allow_bad_request_traffic on; ometascan_pre_cache on;",
    );
    let r = client::post(s.nginx.port, "/up", b"unscanned body").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(s.backend.received()[0].body, b"unscanned body");
    assert!(
        s.nginx.error_log().contains("[warn]"),
        "{}",
        s.nginx.error_log()
    );
    assert!(s.nginx.error_log().contains("forwarding it unscanned"));
}

#[test]
fn methods_not_listed_pass_untouched() {
    let s = setup(Action::block(403, b"no"), "ometascan_methods post PUT;");
    let r = client::request(s.nginx.port, "GET", "/g", &[], b"").unwrap();
    assert_eq!(r.status, 200);
    let r = client::request(s.nginx.port, "DELETE", "/d", &[], b"").unwrap();
    assert_eq!(r.status, 200);
    let r = client::post(s.nginx.port, "/p", b"x").unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(s.scanner.received().len(), 1);
    assert_eq!(s.backend.received().len(), 2);
}

#[test]
fn default_methods_scan_get_and_delete() {
    let s = setup(Action::block(403, b"no"), "");
    for m in ["GET", "HEAD", "DELETE", "PATCH", "PUT", "POST"] {
        let r = client::request(s.nginx.port, m, "/m", &[], b"").unwrap();
        assert_eq!(r.status, 403, "{m}");
    }
    let r = client::request(s.nginx.port, "OPTIONS", "/m", &[], b"").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(s.scanner.received().len(), 6);
}

#[test]
fn x_forwarded_for_is_appended_for_the_scanner_only() {
    let s = setup(Action::Allow, "ometascan_x_forwarded_for on;");
    client::post(s.nginx.port, "/a", b"1").unwrap();
    client::request(
        s.nginx.port,
        "POST",
        "/b",
        &[("X-Forwarded-For", "10.0.0.9")],
        b"2",
    )
    .unwrap();
    let seen = s.scanner.received();
    assert_eq!(seen[0].head.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(
        seen[1].head.header("x-forwarded-for"),
        Some("10.0.0.9, 127.0.0.1")
    );
    let got = s.backend.received();
    assert_eq!(got[0].head.header("x-forwarded-for"), None);

    let s = setup(Action::Allow, "");
    client::post(s.nginx.port, "/a", b"1").unwrap();
    assert_eq!(s.scanner.received()[0].head.header("x-forwarded-for"), None);
}

#[test]
fn set_header_adds_overrides_and_removes_for_the_scanner_only() {
    let s = setup(
        Action::Allow,
        "ometascan_set_header X-MDCLOUD-APIKEY \"key-$remote_addr\";\n\
         ometascan_set_header User-Agent scanner-agent;\n\
         ometascan_set_header Accept-Encoding \"\";",
    );
    client::request(
        s.nginx.port,
        "POST",
        "/a",
        &[("User-Agent", "curl/8"), ("Accept-Encoding", "gzip")],
        b"x",
    )
    .unwrap();
    let seen = &s.scanner.received()[0];
    assert_eq!(seen.head.header("x-mdcloud-apikey"), Some("key-127.0.0.1"));
    assert_eq!(seen.head.headers_named("user-agent"), vec!["scanner-agent"]);
    assert_eq!(seen.head.header("accept-encoding"), None);
    let got = &s.backend.received()[0];
    assert_eq!(got.head.header("x-mdcloud-apikey"), None);
    assert_eq!(got.head.header("user-agent"), Some("curl/8"));
    assert_eq!(got.head.header("accept-encoding"), Some("gzip"));
}

#[test]
fn set_header_is_inherited_only_without_own() {
    let scanner = ScannerDouble::start(Action::Allow);
    let backend = Backend::start();
    let http = format!(
        "ometascan_set_header X-Outer outer;\n\
         server {{ listen 127.0.0.1:%PORT%; ometascan_pass {};\n\
           location /inherit/ {{ proxy_pass http://127.0.0.1:{}; }}\n\
           location /own/ {{ ometascan_set_header X-Inner inner; proxy_pass http://127.0.0.1:{}; }}\n\
         }}",
        scanner.url(),
        backend.port(),
        backend.port()
    );
    let nginx = Nginx::start(&http);
    client::post(nginx.port, "/inherit/a", b"1").unwrap();
    client::post(nginx.port, "/own/a", b"2").unwrap();
    let seen = scanner.received();
    assert_eq!(seen[0].head.header("x-outer"), Some("outer"));
    assert_eq!(seen[1].head.header("x-outer"), None);
    assert_eq!(seen[1].head.header("x-inner"), Some("inner"));
}

#[test]
fn pass_off_in_inner_location_and_path_prefix() {
    let scanner = ScannerDouble::start(Action::Allow);
    let backend = Backend::start();
    let http = format!(
        "server {{ listen 127.0.0.1:%PORT%;\n\
           ometascan_pass {}/scan/;\n\
           location / {{ proxy_pass http://127.0.0.1:{};\n\
             location /public/ {{ ometascan_pass off; proxy_pass http://127.0.0.1:{}; }} }}\n\
         }}",
        scanner.url(),
        backend.port(),
        backend.port()
    );
    let nginx = Nginx::start(&http);
    client::post(nginx.port, "/public/x", b"1").unwrap();
    assert!(scanner.received().is_empty());
    client::post(nginx.port, "/private/x?q=1", b"2").unwrap();
    let seen = scanner.received();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].target(), "/scan/private/x?q=1");
    assert_eq!(backend.received().len(), 2);
}

#[test]
fn hop_by_hop_headers_are_not_sent_to_the_scanner() {
    let s = setup(Action::Allow, "");
    client::request(
        s.nginx.port,
        "POST",
        "/a",
        &[
            ("Connection", "keep-alive"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Authorization", "Basic x"),
            ("TE", "trailers"),
            ("Upgrade", "h2c"),
        ],
        b"x",
    )
    .unwrap();
    let h = &s.scanner.received()[0].head;
    for name in ["keep-alive", "proxy-authorization", "te", "upgrade"] {
        assert_eq!(h.header(name), None, "{name}");
    }
    assert_ne!(h.header("connection"), Some("Keep-Alive"));
}
