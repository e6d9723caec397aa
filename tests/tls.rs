//! TLS to the scanner (`https://`, `icaps://`) with certificates made at test time: every
//! verification failure fails closed with a log line that says why.

mod common;
use common::*;
use ometascan_testkit::icap_double::{IcapAction, IcapDouble};
use ometascan_testkit::tls::{ca, intermediate, server, FrontOptions, Issued, TlsFront};

struct TlsSetup {
    nginx: Nginx,
    backend: Backend,
    front: TlsFront,
    _scanner: ScannerDouble,
    _dir: std::path::PathBuf,
}

fn write_ca(dir: &std::path::Path, issued: &Issued) -> String {
    let path = dir.join(format!("ca-{}.pem", rand_name()));
    std::fs::write(&path, issued.pem()).unwrap();
    path.display().to_string()
}

fn rand_name() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A scanner behind TLS presenting `chain` (leaf first), and nginx scanning through it with
/// the given ssl directives (`%CA%` is replaced by the path of `trust`).
fn tls_setup(
    chain: &[&Issued],
    action: Action,
    opts: FrontOptions,
    trust: Option<&Issued>,
    ssl: &str,
) -> TlsSetup {
    let scanner = ScannerDouble::start(action);
    let front = TlsFront::start(chain, &chain[0].key, scanner.port(), opts);
    let backend = Backend::start();
    let dir = std::env::temp_dir().join(format!(
        "ometascan-tls-{}-{}",
        std::process::id(),
        rand_name()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let ssl = match trust {
        Some(t) => ssl.replace("%CA%", &write_ca(&dir, t)),
        None => ssl.to_string(),
    };
    let http = format!(
        "server {{ listen 127.0.0.1:%PORT%; location / {{ ometascan_pass https://127.0.0.1:{}; {ssl}\n\
         proxy_pass http://127.0.0.1:{}; }} }}",
        front.port,
        backend.port()
    );
    let nginx = Nginx::start(&http);
    TlsSetup {
        nginx,
        backend,
        front,
        _scanner: scanner,
        _dir: dir,
    }
}

const VERIFY: &str = "ometascan_ssl_verify on; ometascan_ssl_trusted_certificate %CA%; ometascan_ssl_name scanner.test;";

#[track_caller]
fn fails_closed(s: &TlsSetup, why: &str) {
    let r = client::post(s.nginx.port, "/up", b"secret").unwrap();
    assert_eq!(r.status, 502, "{}", s.nginx.error_log());
    assert!(s.backend.received().is_empty());
    let log = s.nginx.error_log();
    assert!(
        log.contains("SSL handshake with the scanner failed") && log.contains(why),
        "{why}:\n{log}"
    );
}

#[test]
fn valid_chain_passes_verification_and_sends_sni() {
    let root = ca("Test Root");
    let leaf = server(&["scanner.test"], Some(&root), false);
    let s = tls_setup(
        &[&leaf],
        Action::Allow,
        FrontOptions::default(),
        Some(&root),
        &format!("{VERIFY} ometascan_ssl_server_name on;"),
    );
    let r = client::post(s.nginx.port, "/up", b"over tls").unwrap();
    assert_eq!(r.status, 200, "{}", s.nginx.error_log());
    assert_eq!(s.backend.received()[0].body, b"over tls");
    assert_eq!(s.front.handshakes()[0].sni.as_deref(), Some("scanner.test"));
}

#[test]
fn sni_is_not_sent_by_default() {
    let root = ca("Test Root");
    let leaf = server(&["scanner.test"], Some(&root), false);
    let s = tls_setup(
        &[&leaf],
        Action::Allow,
        FrontOptions::default(),
        Some(&root),
        VERIFY,
    );
    assert_eq!(
        client::post(s.nginx.port, "/up", b"x").unwrap().status,
        200,
        "{}",
        s.nginx.error_log()
    );
    assert_eq!(s.front.handshakes()[0].sni, None);
}

#[test]
fn wrong_name_fails_closed() {
    let root = ca("Test Root");
    let leaf = server(&["other.test"], Some(&root), false);
    let s = tls_setup(
        &[&leaf],
        Action::Allow,
        FrontOptions::default(),
        Some(&root),
        VERIFY,
    );
    fails_closed(&s, "does not match");
}

#[test]
fn unknown_ca_fails_closed() {
    let root = ca("Test Root");
    let other = ca("Other Root");
    let leaf = server(&["scanner.test"], Some(&root), false);
    let s = tls_setup(
        &[&leaf],
        Action::Allow,
        FrontOptions::default(),
        Some(&other),
        VERIFY,
    );
    fails_closed(&s, "unknown CA");
}

#[test]
fn expired_certificate_fails_closed() {
    let root = ca("Test Root");
    let leaf = server(&["scanner.test"], Some(&root), true);
    let s = tls_setup(
        &[&leaf],
        Action::Allow,
        FrontOptions::default(),
        Some(&root),
        VERIFY,
    );
    fails_closed(&s, "expired");
}

#[test]
fn chain_deeper_than_verify_depth_fails_closed() {
    let root = ca("Test Root");
    let inter = intermediate("Test Intermediate", &root);
    let leaf = server(&["scanner.test"], Some(&inter), false);
    let s = tls_setup(
        &[&leaf, &inter],
        Action::Allow,
        FrontOptions::default(),
        Some(&root),
        VERIFY,
    );
    fails_closed(&s, "chain too long");
    let s = tls_setup(
        &[&leaf, &inter],
        Action::Allow,
        FrontOptions::default(),
        Some(&root),
        &format!("{VERIFY} ometascan_ssl_verify_depth 2;"),
    );
    assert_eq!(
        client::post(s.nginx.port, "/up", b"x").unwrap().status,
        200,
        "{}",
        s.nginx.error_log()
    );
}

#[test]
fn verify_off_accepts_a_self_signed_scanner_and_still_encrypts() {
    let leaf = server(&["anything.test"], None, false);
    let s = tls_setup(
        &[&leaf],
        Action::block(403, b"blocked over tls"),
        FrontOptions::default(),
        None,
        "",
    );
    let r = client::post(s.nginx.port, "/up", EICAR).unwrap();
    assert_eq!(
        (r.status, r.text().as_str()),
        (403, "blocked over tls"),
        "{}",
        s.nginx.error_log()
    );
    assert_eq!(
        s.front.handshakes().len(),
        1,
        "the scan went through the TLS front"
    );
}

#[test]
fn protocol_restriction_is_honoured() {
    let leaf = server(&["scanner.test"], None, false);
    let only13 = FrontOptions {
        tls13_only: true,
        ..FrontOptions::default()
    };
    let s = tls_setup(
        &[&leaf],
        Action::Allow,
        only13.clone(),
        None,
        "ometascan_ssl_protocols TLSv1.2;",
    );
    let r = client::post(s.nginx.port, "/up", b"x").unwrap();
    assert_eq!(r.status, 502);
    assert!(s.backend.received().is_empty());
    let s = tls_setup(
        &[&leaf],
        Action::Allow,
        only13,
        None,
        "ometascan_ssl_protocols TLSv1.3;",
    );
    assert_eq!(client::post(s.nginx.port, "/up", b"x").unwrap().status, 200);
    assert_eq!(s.front.handshakes()[0].version.as_deref(), Some("TLSv1_3"));
}

#[test]
fn cipher_restriction_is_honoured() {
    let leaf = server(&["scanner.test"], None, false);
    let offered = "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256".to_string();
    let front = FrontOptions {
        tls12_only: true,
        suites: vec![offered.clone()],
        ..FrontOptions::default()
    };
    let s = tls_setup(
        &[&leaf],
        Action::Allow,
        front.clone(),
        None,
        "ometascan_ssl_ciphers HIGH:!AES128;",
    );
    assert_eq!(client::post(s.nginx.port, "/up", b"x").unwrap().status, 502);
    assert!(s.backend.received().is_empty());
    let s = tls_setup(
        &[&leaf],
        Action::Allow,
        front,
        None,
        "ometascan_ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256;",
    );
    assert_eq!(
        client::post(s.nginx.port, "/up", b"x").unwrap().status,
        200,
        "{}",
        s.nginx.error_log()
    );
    assert_eq!(
        s.front.handshakes()[0].suite.as_deref(),
        Some(offered.as_str())
    );
}

#[test]
fn session_reuse_resumes_new_connections_unless_off() {
    let leaf = server(&["scanner.test"], None, false);
    // The scanner closes after each answer, so every scan needs a new TLS connection.
    let close = Action::Raw(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n".to_vec());
    let s = tls_setup(&[&leaf], close.clone(), FrontOptions::default(), None, "");
    for _ in 0..3 {
        assert_eq!(
            client::post(s.nginx.port, "/up", b"x").unwrap().status,
            200,
            "{}",
            s.nginx.error_log()
        );
    }
    let hs = s.front.handshakes();
    assert_eq!(hs.len(), 3);
    assert!(!hs[0].resumed && hs[1].resumed && hs[2].resumed, "{hs:?}");

    let s = tls_setup(
        &[&leaf],
        close,
        FrontOptions::default(),
        None,
        "ometascan_ssl_session_reuse off;",
    );
    for _ in 0..3 {
        assert_eq!(client::post(s.nginx.port, "/up", b"x").unwrap().status, 200);
    }
    assert!(s.front.handshakes().iter().all(|h| !h.resumed));
}

#[test]
fn icaps_scanner() {
    let root = ca("Test Root");
    let leaf = server(&["icap.test"], Some(&root), false);
    let icap = IcapDouble::start(IcapAction::Allow, Some(1024));
    let port: u16 = icap
        .url("x")
        .rsplit(':')
        .next()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let front = TlsFront::start(&[&leaf], &leaf.key, port, FrontOptions::default());
    let backend = Backend::start();
    let dir = std::env::temp_dir().join(format!("ometascan-tls-icaps-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_path = write_ca(&dir, &root);
    let http = format!(
        "server {{ listen 127.0.0.1:%PORT%; location / {{ ometascan_pass icaps://127.0.0.1:{}/svc;\n\
         ometascan_ssl_verify on; ometascan_ssl_trusted_certificate {ca_path}; ometascan_ssl_name icap.test;\n\
         proxy_pass http://127.0.0.1:{}; }} }}",
        front.port,
        backend.port()
    );
    let n = Nginx::start(&http);
    let body = random_bytes(200_000, 3);
    assert_eq!(
        client::post(n.port, "/f.bin", &body).unwrap().status,
        200,
        "{}",
        n.error_log()
    );
    assert_eq!(backend.received()[0].body, body);
    assert!(!front.handshakes().is_empty());
}

#[test]
fn verify_on_without_a_bundle_uses_the_system_store() {
    // Debian's CA bundle does not know the test CA: verification fails, cleanly.
    let root = ca("Test Root");
    let leaf = server(&["scanner.test"], Some(&root), false);
    let s = tls_setup(
        &[&leaf],
        Action::Allow,
        FrontOptions::default(),
        None,
        "ometascan_ssl_verify on; ometascan_ssl_name scanner.test;",
    );
    fails_closed(&s, "unknown CA");
}
