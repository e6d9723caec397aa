//! Fields nginx accepts but HTTP forbids (`ignore_invalid_headers off` lets through names that
//! are not tokens; values may carry control bytes other than CR, LF and NUL). The scan goes on
//! without them and the backend gets them as nginx forwards them; one that a lenient parser
//! could read as a body field is refused, since the scan and the backend would read the body
//! differently.

mod common;
use common::*;
use ometascan_testkit::cicap::CIcap;

fn nginx_with(scanner_url: &str, backend: &Backend) -> Nginx {
    Nginx::start(&format!(
        "server {{ listen 127.0.0.1:%PORT%; ignore_invalid_headers off;\n\
           location / {{ ometascan_pass {scanner_url}; proxy_pass http://127.0.0.1:{}; }} }}",
        backend.port()
    ))
}

const ODD: [(&str, &str); 4] = [
    ("a@b", "1"),
    ("café", "crème"),
    ("x{y}", "2"),
    ("X-Ctl", "a\u{1}b"),
];

#[test]
fn forbidden_field_names_and_values_are_left_out_of_the_scan_and_reach_the_backend() {
    let scanner = ScannerDouble::start(Action::EicarAware);
    let backend = Backend::start();
    let n = nginx_with(&scanner.url(), &backend);
    let body = random_bytes(10_000, 3);
    let mut headers = ODD.to_vec();
    headers.push(("X-Fine", "kept"));
    let r = client::request(n.port, "POST", "/up", &headers, &body).unwrap();
    assert_eq!(r.status, 200, "{}", n.error_log());
    let got = &backend.received()[0];
    assert_eq!(got.body, body);
    for (name, value) in ODD {
        assert_eq!(got.head.header(name), Some(value), "{name} forwarded");
    }
    let seen = &scanner.received()[0];
    assert_eq!(seen.body, body);
    assert_eq!(seen.head.header("x-fine"), Some("kept"));
    for (name, _) in ODD {
        assert_eq!(
            seen.head.header(name),
            None,
            "{name} not sent to the scanner"
        );
    }
    // The scan is whole: the same fields on an infected upload do not get it through.
    let r = client::request(n.port, "POST", "/up", &headers, EICAR).unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(backend.received().len(), 1);
}

#[test]
fn c_icap_scans_requests_with_forbidden_fields() {
    let cicap = CIcap::start();
    let backend = Backend::start();
    let n = nginx_with(&cicap.url("virus_scan"), &backend);
    let body = random_bytes(10_000, 4);
    let r = client::request(n.port, "POST", "/up", &ODD, &body).unwrap();
    assert_eq!(r.status, 200, "{}", n.error_log());
    assert_eq!(backend.received()[0].body, body);
    assert_eq!(backend.received()[0].head.header("café"), Some("crème"));
    let r = client::request(n.port, "POST", "/up", &ODD, EICAR).unwrap();
    assert_eq!(r.status, 403, "{}", n.error_log());
    assert_eq!(backend.received().len(), 1);
}

#[test]
fn a_forbidden_field_that_reads_as_a_body_field_is_refused_and_its_twin_passes() {
    let scanner = ScannerDouble::start(Action::Allow);
    let backend = Backend::start();
    let n = nginx_with(&scanner.url(), &backend);
    let form = b"--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x\"\r\n\r\ndata\r\n--b--\r\n";
    let attacks: [(&str, &str); 4] = [
        ("Content@Type", "multipart/form-data; boundary=b"),
        ("Content\"Type", "multipart/form-data; boundary=b"),
        ("Content-Type", "multipart/form-data; boundary=\u{1}b"),
        ("Content{Encoding}", "gzip"),
    ];
    for (name, value) in attacks {
        let r = client::request(n.port, "POST", "/up", &[(name, value)], form).unwrap();
        assert_eq!(r.status, 400, "{name}: {value:?}");
    }
    assert!(backend.received().is_empty());
    assert!(scanner.received().is_empty());
    assert!(n.error_log().contains("could be read as a body header"));
    // Twins: the same values under names no parser reads as body fields, and a valid field.
    let twins: [(&str, &str); 3] = [
        ("X@Type", "multipart/form-data; boundary=b"),
        ("X-Note", "multipart/form-data; boundary=b\u{1}"),
        ("Content-Type", "multipart/form-data; boundary=b"),
    ];
    for (i, (name, value)) in twins.into_iter().enumerate() {
        let r = client::request(n.port, "POST", "/up", &[(name, value)], form).unwrap();
        assert_eq!(r.status, 200, "{name}: {value:?}");
        assert_eq!(backend.received()[i].body, form);
    }
}
