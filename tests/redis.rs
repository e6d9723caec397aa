//! The verdict cache's Redis level as operators run Redis: a password (`requirepass`), an ACL
//! user, a database number, TLS with verification, and the master found through Sentinel —
//! Debian's redis-server, started by the tests. A wrong password or an unverified server is a
//! logged miss: the request is scanned, never allowed from the cache.

mod common;
use common::*;
use ometascan_testkit::redis::{RedisServer, Sentinel};
use std::time::Duration;

/// nginx with a verdict cache whose second level is `redis` (the directive's arguments).
fn cached(scanner: &ScannerDouble, backend: &Backend, redis: &str) -> Nginx {
    Nginx::start(&format!(
        "ometascan_cache_zone verdicts:1m;\n\
         server {{ listen 127.0.0.1:%PORT%;\n\
           location / {{ ometascan_pass {}; ometascan_cache verdicts;\n\
             ometascan_cache_redis {redis} timeout=500ms;\n\
             add_header X-Cache $ometascan_cache_status always;\n\
             proxy_pass http://127.0.0.1:{}; }} }}",
        scanner.url(),
        backend.port()
    ))
}

fn cache_status(r: &Response) -> String {
    r.header("x-cache").unwrap_or("").to_string()
}

/// The same body through two nginx servers sharing `redis`: the first scans it and stores the
/// verdict, the second finds it there. Returns how many scans the scanner got.
fn shared_verdict(redis: &str, stored: impl Fn() -> bool) -> usize {
    let scanner = ScannerDouble::start(Action::Allow);
    let backend = Backend::start();
    let (a, b) = (
        cached(&scanner, &backend, redis),
        cached(&scanner, &backend, redis),
    );
    let body = random_bytes(30_000, 1);
    let r = client::post(a.port, "/r", &body).unwrap();
    assert_eq!(
        (r.status, cache_status(&r)),
        (200, "MISS".into()),
        "{}",
        a.error_log()
    );
    assert!(
        wait_for(Duration::from_secs(3), &stored),
        "stored in redis: {}",
        a.error_log()
    );
    let r = client::post(b.port, "/r", &body).unwrap();
    assert_eq!(
        (r.status, cache_status(&r)),
        (200, "HIT".into()),
        "{}",
        b.error_log()
    );
    assert_eq!(backend.received().len(), 2);
    scanner.received().len()
}

/// A lookup that Redis refuses: the request is scanned (a miss), and the log says why.
fn refused(redis: &str, says: &str) {
    let scanner = ScannerDouble::start(Action::Allow);
    let backend = Backend::start();
    let n = cached(&scanner, &backend, redis);
    let body = random_bytes(30_000, 2);
    let r = client::post(n.port, "/r", &body).unwrap();
    assert_eq!((r.status, cache_status(&r)), (200, "MISS".into()));
    assert_eq!(
        scanner.received().len(),
        1,
        "scanned, not allowed from the cache"
    );
    assert_eq!(backend.received()[0].body, body);
    assert!(
        wait_for(Duration::from_secs(3), || n.error_log().contains(says)),
        "{}",
        n.error_log()
    );
}

#[test]
fn a_password_protected_redis_shares_verdicts_and_a_wrong_password_is_a_logged_miss() {
    let redis = RedisServer::start_with(&["--requirepass".into(), "s3cret".into()], Some("s3cret"));
    let addr = redis.addr();
    let scans = shared_verdict(&format!("{addr} password=s3cret"), || redis.keys() == 1);
    assert_eq!(scans, 1);
    refused(&format!("{addr} password=wrong"), "WRONGPASS");
    refused(&addr, "NOAUTH");
    assert_eq!(redis.keys(), 1, "nothing stored without the password");
}

#[test]
fn an_acl_user_on_its_own_database() {
    let mut args: Vec<String> = vec!["--requirepass".into(), "admin".into(), "--user".into()];
    args.extend(
        "ometascan on >pw ~ometascan:* +get +set +select"
            .split(' ')
            .map(String::from),
    );
    let redis = RedisServer::start_with(&args, Some("admin"));
    let addr = redis.addr();
    let scans = shared_verdict(&format!("{addr} user=ometascan password=pw db=2"), || {
        redis.keys_in(2) == 1
    });
    assert_eq!(scans, 1);
    assert_eq!(redis.keys_in(0), 0, "not in database 0");
    // The user may not touch other keys or log in with another password.
    refused(&format!("{addr} user=ometascan password=nope"), "WRONGPASS");
}

#[test]
fn tls_with_the_servers_certificate_verified_and_an_unverified_one_refused() {
    let dir = std::env::temp_dir().join(format!("ometascan-redis-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = ometascan_testkit::tls::ca("redis test CA");
    let cert = ometascan_testkit::tls::server(&["127.0.0.1", "redis.test"], Some(&ca), false);
    let file = |name: &str, text: String| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let (ca_file, cert_file, key_file) = (
        file("ca.pem", ca.pem()),
        file("cert.pem", cert.pem()),
        file("key.pem", cert.key.serialize_pem()),
    );
    let tls_port = nginx::free_port();
    let redis = RedisServer::start_with(
        &[
            "--tls-port".into(),
            tls_port.to_string(),
            "--tls-cert-file".into(),
            cert_file,
            "--tls-key-file".into(),
            key_file,
            "--tls-ca-cert-file".into(),
            ca_file.clone(),
            "--tls-auth-clients".into(),
            "no".into(),
        ],
        None,
    );
    let tls = format!("127.0.0.1:{tls_port} tls=on ssl_trusted_certificate={ca_file}");
    let scans = shared_verdict(&format!("{tls} ssl_name=redis.test"), || redis.keys() == 1);
    assert_eq!(scans, 1);
    // A name the certificate does not carry: refused, a miss.
    refused(&format!("{tls} ssl_name=other.test"), "SSL handshake");
    // Its CA not trusted (the system's bundle): refused, a miss.
    refused(&format!("127.0.0.1:{tls_port} tls=on"), "SSL handshake");
    assert_eq!(redis.keys(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_master_found_through_sentinel() {
    let master = RedisServer::start();
    let sentinel = Sentinel::start(&master, "cachemaster");
    let scans = shared_verdict(&format!("{} master=cachemaster", sentinel.addr()), || {
        master.keys() == 1
    });
    assert_eq!(scans, 1);
    // A name the Sentinel does not know: a logged miss.
    refused(
        &format!("{} master=unknown", sentinel.addr()),
        "no master \"unknown\"",
    );
}

#[test]
fn the_directive_refuses_what_it_cannot_use() {
    for (args, says) in [
        ("127.0.0.1:1 127.0.0.1:2", "need \"master=\""),
        ("127.0.0.1:1 ssl_verify=off", "need \"tls=on\""),
        ("127.0.0.1:1 db=x", "\"db=x\""),
        ("127.0.0.1:1 user=", "\"user=\""),
        (
            "127.0.0.1:1 tls=on ssl_trusted_certificate=/nonexistent",
            "ssl_trusted_certificate",
        ),
        ("master=m", "needs an address"),
    ] {
        let c = nginx::check_http(&format!(
            "server {{ listen 127.0.0.1:%PORT%; location / {{ ometascan_cache_redis {args}; }} }}"
        ));
        assert!(!c.ok, "{args} accepted");
        assert!(c.output.contains(says), "{args}: {}", c.output);
    }
    let c = nginx::check_http(
        "server { listen 127.0.0.1:%PORT%; location / { ometascan_cache_redis 127.0.0.1:1 \
         127.0.0.1:2 master=m db=1 user=u password=p tls=on ssl_verify=off ssl_name=r.test \
         timeout=1s; } }",
    );
    assert!(c.ok, "{}", c.output);
}
