//! The `$ometascan_*` variables in an access log, for every kind of verdict.

mod common;
use common::*;
use ometascan_testkit::icap_double::{block_answer, IcapAction, IcapDouble};

const FORMAT: &str = "log_format scan '$request_uri|$ometascan_result|$ometascan_threat|$ometascan_scan_time|$ometascan_scanner_addr|$ometascan_status';";

fn log_lines(n: &Nginx) -> Vec<Vec<String>> {
    std::fs::read_to_string(n.prefix.join("logs/scan.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| l.split('|').map(str::to_string).collect())
        .collect()
}

/// The access-log line of `uri`; nginx writes it just after the response, so wait for it.
fn line_for(n: &Nginx, uri: &str) -> Vec<String> {
    let found = |n: &Nginx| log_lines(n).into_iter().find(|l| l[0] == uri);
    wait_for(std::time::Duration::from_secs(3), || found(n).is_some());
    found(n).unwrap_or_else(|| panic!("no log line for {uri}: {:?}", log_lines(n)))
}

#[test]
fn variables_per_verdict_over_http() {
    let scanner = ScannerDouble::start(Action::Allow);
    let backend = Backend::start();
    let dead = nginx::free_port();
    let http = format!(
        "{FORMAT}\n\
         server {{ listen 127.0.0.1:%PORT%; access_log %PREFIX%/logs/scan.log scan;\n\
           location / {{ ometascan_pass {url}; ometascan_methods POST PUT;\n\
             ometascan_allow_bad_request_traffic on; ometascan_pre_cache on;\n\
             proxy_pass http://127.0.0.1:{b}; }}\n\
           location /dead/ {{ ometascan_pass http://127.0.0.1:{dead}; proxy_pass http://127.0.0.1:{b}; }}\n\
           location /plain/ {{ proxy_pass http://127.0.0.1:{b}; }}\n\
         }}",
        url = scanner.url(),
        b = backend.port()
    );
    let n = Nginx::start(&http);
    let addr = format!("127.0.0.1:{}", scanner.port());
    scanner.script([
        Action::Allow,
        Action::block(403, b"no"),
        Action::Respond {
            status: 200,
            headers: vec![("X-Ometascan-Result".into(), "sanitized".into())],
            body: b"clean".to_vec(),
        },
        Action::block(400, b"unparsable"),
    ]);
    for uri in ["/allowed", "/blocked", "/sanitized", "/bad"] {
        client::post(n.port, uri, b"body").unwrap();
    }
    client::request(n.port, "GET", "/skipped", &[], b"").unwrap();
    client::post(n.port, "/dead/x", b"body").unwrap();
    client::post(n.port, "/plain/x", b"body").unwrap();

    let l = line_for(&n, "/allowed");
    assert_eq!(
        (l[1].as_str(), l[2].as_str(), l[4].as_str(), l[5].as_str()),
        ("allowed", "-", addr.as_str(), "204")
    );
    let t: f64 = l[3].parse().unwrap();
    assert!(
        (0.0..5.0).contains(&t) && l[3].contains('.') && l[3].split('.').nth(1).unwrap().len() == 3,
        "{}",
        l[3]
    );
    let l = line_for(&n, "/blocked");
    assert_eq!((l[1].as_str(), l[5].as_str()), ("blocked", "403"));
    let l = line_for(&n, "/sanitized");
    assert_eq!((l[1].as_str(), l[5].as_str()), ("sanitized", "200"));
    let l = line_for(&n, "/bad");
    assert_eq!((l[1].as_str(), l[5].as_str()), ("bad_request", "400"));
    let l = line_for(&n, "/skipped");
    assert_eq!(&l[1..], &["skipped", "-", "-", "-", "-"]);
    let l = line_for(&n, "/dead/x");
    assert_eq!(
        (l[1].as_str(), l[4].as_str(), l[5].as_str()),
        ("error", format!("127.0.0.1:{dead}").as_str(), "-")
    );
    let l = line_for(&n, "/plain/x");
    assert_eq!(&l[1..], &["-", "-", "-", "-", "-"]);
}

#[test]
fn threat_from_an_icap_scanner() {
    let d = IcapDouble::start(IcapAction::Raw(block_answer("blocked")), None);
    let backend = Backend::start();
    let http = format!(
        "{FORMAT}\n\
         server {{ listen 127.0.0.1:%PORT%; access_log %PREFIX%/logs/scan.log scan;\n\
           location / {{ ometascan_pass {}; proxy_pass http://127.0.0.1:{}; }} }}",
        d.url("svc"),
        backend.port()
    );
    let n = Nginx::start(&http);
    assert_eq!(client::post(n.port, "/v", EICAR).unwrap().status, 403);
    let l = line_for(&n, "/v");
    assert_eq!(
        (l[1].as_str(), l[2].as_str(), l[5].as_str()),
        ("blocked", "Double.Threat", "200")
    );
}

#[test]
fn blocked_line_can_be_switched_off() {
    let s = setup(Action::block(403, b"no"), "ometascan_log_blocked off;");
    assert_eq!(client::post(s.nginx.port, "/q", EICAR).unwrap().status, 403);
    assert!(!s
        .nginx
        .error_log()
        .contains("request blocked by the scanner"));
    let s = setup(Action::block(403, b"no"), "");
    assert_eq!(client::post(s.nginx.port, "/q", EICAR).unwrap().status, 403);
    assert!(s
        .nginx
        .error_log()
        .contains("request blocked by the scanner with status 403"));
}

/// A header filter that finalizes the request (`If-Match` failing: 412 from nginx's
/// not-modified filter) clears every module's ctx; the verdict is still found for the log.
#[test]
fn variables_are_right_after_a_filter_finalizes_the_request() {
    let scanner = ScannerDouble::start(Action::Allow);
    let http = format!(
        "{FORMAT}\n\
         server {{ listen 127.0.0.1:%PORT%; access_log %PREFIX%/logs/scan.log scan;\n\
           location / {{ ometascan_pass {}; ometascan_methods GET; root www; }} }}",
        scanner.url()
    );
    let n = Nginx::start(&http);
    std::fs::create_dir_all(n.prefix.join("www")).unwrap();
    std::fs::write(n.prefix.join("www/f.txt"), b"static").unwrap();
    let addr = format!("127.0.0.1:{}", scanner.port());
    let r = client::request(n.port, "GET", "/f.txt", &[("If-Match", "\"other\"")], b"").unwrap();
    assert_eq!(r.status, 412);
    let l = line_for(&n, "/f.txt");
    assert_eq!(
        (l[1].as_str(), l[4].as_str(), l[5].as_str()),
        ("allowed", addr.as_str(), "204")
    );
    // Its twin without the failing precondition.
    let r = client::request(n.port, "GET", "/f.txt?twin", &[], b"").unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"static"[..]));
    let l = line_for(&n, "/f.txt?twin");
    assert_eq!(l[1], "allowed");
    assert_eq!(scanner.received().len(), 2);
}

#[test]
fn the_scans_phases_tell_where_its_time_went() {
    // A scanner that answers after 300 ms, one scan at a time: the second scan waits for the
    // first one's turn.
    let scanner = ScannerDouble::start(Action::Delay(
        std::time::Duration::from_millis(300),
        Box::new(Action::Allow),
    ));
    let backend = Backend::start();
    let n = Nginx::start(&format!(
        "log_format phases '$request_uri|$ometascan_scan_time|$ometascan_scan_wait_time|\
           $ometascan_scan_connect_time|$ometascan_scan_send_time|$ometascan_scan_answer_time|\
           $ometascan_scan_handback_time';\n\
         server {{ listen 127.0.0.1:%PORT%; access_log %PREFIX%/logs/scan.log phases;\n\
           location / {{ ometascan_pass {}; ometascan_max_scans 1 wait=10s;\n\
             proxy_pass http://127.0.0.1:{}; }} }}",
        scanner.url(),
        backend.port()
    ));
    let port = n.port;
    let first = std::thread::spawn(move || client::post(port, "/first", b"body").unwrap());
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(
        client::post(n.port, "/second", b"body").unwrap().status,
        200
    );
    assert_eq!(first.join().unwrap().status, 200);
    let seconds =
        |l: &[String]| -> Vec<f64> { l[1..].iter().map(|t| t.parse().unwrap()).collect() };
    let first = seconds(&line_for(&n, "/first"));
    let second = seconds(&line_for(&n, "/second"));
    // [scan, wait, connect, send, answer, handback]
    assert!(first[4] >= 0.29 && first[1] < 0.05, "{first:?}");
    assert!(second[1] >= 0.1 && second[4] >= 0.29, "{second:?}");
    for t in [&first, &second] {
        assert!(t[1..5].iter().sum::<f64>() <= t[0] + 0.004, "{t:?}");
        assert!(t[5] < 0.1, "{t:?}");
    }
}
