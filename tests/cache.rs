//! The verdict cache: the same bytes are scanned once; a verdict is given again until its time
//! runs out or the ICAP service's ISTag changes; a full zone evicts; workers share a zone and
//! nginx servers share Redis; a Redis that fails is a miss, never an allow.

mod common;
use common::*;
use ometascan_testkit::cicap::CIcap;
use ometascan_testkit::icap_double::{IcapAction, IcapDouble};
use ometascan_testkit::redis::RedisServer;
use std::time::Duration;

const PAGE: &[u8] = b"<html>blocked by the double</html>";

/// A server block that scans through `scanner` with a cache zone `zone` and reports the cache
/// status in `X-Cache`; `extra` goes into the location.
fn http(scanner: &str, backend: u16, zone: &str, extra: &str) -> String {
    format!(
        "ometascan_cache_zone verdicts:{zone};\n\
         server {{ listen 127.0.0.1:%PORT% reuseport;\n\
           location / {{ ometascan_pass {scanner}; ometascan_cache verdicts; {extra}\n\
             add_header X-Cache $ometascan_cache_status always; add_header X-Pid $pid always;\n\
             proxy_pass http://127.0.0.1:{backend}; }}\n\
           location = /status {{ ometascan_status; }}\n\
         }}"
    )
}

fn cached(scanner: &ScannerDouble, backend: &Backend, extra: &str) -> Nginx {
    Nginx::start(&http(&scanner.url(), backend.port(), "1m", extra))
}

fn cache_status(r: &Response) -> &str {
    r.header("x-cache").unwrap_or("")
}

/// A counter of the status page: `event` of zone `verdicts`.
fn counter(n: &Nginx, event: &str) -> u64 {
    let page = client::request(n.port, "GET", "/status", &[], b"")
        .unwrap()
        .text();
    let line = format!("ometascan_cache_events_total{{zone=\"verdicts\",event=\"{event}\"}} ");
    page.lines()
        .find_map(|l| l.strip_prefix(&line))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {event} counter in {page}"))
}

#[test]
fn a_repeated_clean_upload_is_scanned_once_and_reaches_the_backend_every_time() {
    let scanner = ScannerDouble::start(Action::Allow);
    let backend = Backend::start();
    let n = cached(&scanner, &backend, "");
    let body = random_bytes(300_000, 1);
    let statuses: Vec<String> = (0..3)
        .map(|_| {
            let r = client::post(n.port, "/upload/a.bin", &body).unwrap();
            assert_eq!(r.status, 200, "{}", n.error_log());
            cache_status(&r).to_string()
        })
        .collect();
    assert_eq!(statuses, ["MISS", "HIT", "HIT"]);
    assert_eq!(scanner.received().len(), 1, "scanned once");
    let got = backend.received();
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|g| g.body == body), "byte-exact every time");
    assert_eq!((counter(&n, "hits"), counter(&n, "misses")), (2, 1));
    assert_eq!(counter(&n, "stores"), 1);
}

#[test]
fn a_repeated_blocked_upload_gets_the_same_page_without_a_scan_and_a_changed_byte_is_scanned() {
    let scanner = ScannerDouble::start(Action::Allow);
    scanner.script([Action::block(403, PAGE)]);
    let backend = Backend::start();
    let n = cached(&scanner, &backend, "");
    let mut body = random_bytes(100_000, 2);
    let first = client::post(n.port, "/up/x.exe", &body).unwrap();
    assert_eq!((first.status, cache_status(&first)), (403, "MISS"));
    // The double would allow now: only the cache can block.
    let again = client::post(n.port, "/up/x.exe", &body).unwrap();
    assert_eq!(again.status, 403);
    assert_eq!(again.body, first.body);
    assert_eq!(again.body, PAGE);
    assert_eq!(cache_status(&again), "HIT");
    assert_eq!(scanner.received().len(), 1);
    assert!(backend.received().is_empty(), "nothing reached the backend");

    // One byte more, another path or another type: the scanner decides again.
    body[50_000] ^= 1;
    let changed = client::post(n.port, "/up/x.exe", &body).unwrap();
    assert_eq!((changed.status, cache_status(&changed)), (200, "MISS"));
    body[50_000] ^= 1;
    let renamed = client::post(n.port, "/up/y.exe", &body).unwrap();
    assert_eq!((renamed.status, cache_status(&renamed)), (200, "MISS"));
    assert_eq!(scanner.received().len(), 3);
    let got = backend.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].body, body);
}

#[test]
fn a_verdict_expires_after_its_valid_time() {
    let scanner = ScannerDouble::start(Action::Allow);
    let backend = Backend::start();
    let n = cached(&scanner, &backend, "ometascan_cache_valid 1s;");
    let body = random_bytes(10_000, 3);
    let r = client::post(n.port, "/a", &body).unwrap();
    assert_eq!(cache_status(&r), "MISS");
    let r = client::post(n.port, "/a", &body).unwrap();
    assert_eq!(cache_status(&r), "HIT");
    std::thread::sleep(Duration::from_millis(1300));
    let r = client::post(n.port, "/a", &body).unwrap();
    assert_eq!((r.status, cache_status(&r)), (200, "EXPIRED"));
    assert_eq!(scanner.received().len(), 2);
    assert_eq!(backend.received().len(), 3);
    assert_eq!(counter(&n, "expired"), 1);
}

#[test]
fn the_parts_of_a_form_are_cached_one_by_one() {
    let scanner = ScannerDouble::start(Action::Allow);
    let backend = Backend::start();
    let n = cached(&scanner, &backend, "");
    let form = |file: &[u8]| {
        let mut b = b"--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n".to_vec();
        b.extend_from_slice(file);
        b.extend_from_slice(b"\r\n--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n--XyZ--\r\n");
        b
    };
    let file = random_bytes(50_000, 4);
    let send = |b: &[u8]| {
        client::request(
            n.port,
            "POST",
            "/form",
            &[("Content-Type", "multipart/form-data; boundary=XyZ")],
            b,
        )
        .unwrap()
    };
    let r = send(&form(&file));
    assert_eq!((r.status, cache_status(&r)), (200, "MISS"));
    let scans = scanner.received().len();
    assert_eq!(scans, 2, "the file and the fields");
    let r = send(&form(&file));
    assert_eq!((r.status, cache_status(&r)), (200, "HIT"));
    assert_eq!(scanner.received().len(), scans);
    // The same file in another form: the file's verdict is reused, the new fields scanned.
    let mut other = form(&file);
    let at = other.len() - 12;
    other[at] = b'j';
    let r = send(&other);
    assert_eq!((r.status, cache_status(&r)), (200, "MISS"));
    assert_eq!(scanner.received().len(), scans + 1);
    let got = backend.received();
    assert_eq!(got.len(), 3);
    assert_eq!(got[2].body, other);
}

#[test]
fn a_full_zone_evicts_old_verdicts_and_keeps_answering() {
    let scanner = ScannerDouble::start(Action::Allow);
    let backend = Backend::start();
    let n = Nginx::start(&http(&scanner.url(), backend.port(), "64k", ""));
    let bodies: Vec<Vec<u8>> = (0..400).map(|i| random_bytes(200, 2001 + 2 * i)).collect();
    for b in &bodies {
        let r = client::post(n.port, "/f", b).unwrap();
        assert_eq!((r.status, cache_status(&r)), (200, "MISS"));
    }
    eprintln!(
        "stores {} evictions {}",
        counter(&n, "stores"),
        counter(&n, "evictions")
    );
    assert!(
        counter(&n, "evictions") > 0,
        "the zone holds fewer than 400"
    );
    let last = client::post(n.port, "/f", &bodies[399]).unwrap();
    assert_eq!(cache_status(&last), "HIT");
    let first = client::post(n.port, "/f", &bodies[0]).unwrap();
    assert_eq!((first.status, cache_status(&first)), (200, "MISS"));
    assert_eq!(backend.received().len(), 402);
    let log = n.error_log();
    assert!(
        !log.contains("[error]") && !log.contains("[alert]") && !log.contains("[crit]"),
        "{log}"
    );
}

#[test]
fn two_workers_share_one_zone() {
    let scanner = ScannerDouble::start(Action::Allow);
    let backend = Backend::start();
    let n = Nginx::start_workers(&http(&scanner.url(), backend.port(), "1m", ""), 2);
    let body = random_bytes(20_000, 5);
    let r = client::post(n.port, "/s", &body).unwrap();
    assert_eq!(cache_status(&r), "MISS");
    let first = r.header("x-pid").unwrap_or("").to_string();
    let mut other_worker_hit = false;
    for _ in 0..200 {
        let r = client::post(n.port, "/s", &body).unwrap();
        assert_eq!((r.status, cache_status(&r)), (200, "HIT"));
        if r.header("x-pid").is_some_and(|p| p != first) {
            other_worker_hit = true;
            break;
        }
    }
    assert!(other_worker_hit, "a request reached the other worker");
    assert_eq!(scanner.received().len(), 1);
}

#[test]
fn an_istag_change_makes_the_next_request_scan_again() {
    let icap = IcapDouble::start(IcapAction::Allow, None);
    let backend = Backend::start();
    let n = Nginx::start(&http(
        &icap.url("reqmod"),
        backend.port(),
        "1m",
        "ometascan_cache_revalidate 1s;",
    ));
    let body = random_bytes(30_000, 6);
    let r = client::post(n.port, "/i", &body).unwrap();
    assert_eq!(cache_status(&r), "MISS");
    let r = client::post(n.port, "/i", &body).unwrap();
    assert_eq!(cache_status(&r), "HIT");
    assert_eq!(icap.bodies().len(), 1);
    icap.set_istag("\"double-2\"");
    std::thread::sleep(Duration::from_millis(1200));
    let r = client::post(n.port, "/i", &body).unwrap();
    assert_eq!(
        (r.status, cache_status(&r)),
        (200, "MISS"),
        "{}",
        n.error_log()
    );
    assert_eq!(icap.bodies().len(), 2);
    let r = client::post(n.port, "/i", &body).unwrap();
    assert_eq!(cache_status(&r), "HIT");
    assert_eq!(backend.received().len(), 4);
}

#[test]
fn after_a_signature_update_of_c_icap_a_file_allowed_before_is_blocked() {
    let cicap = CIcap::start();
    let backend = Backend::start();
    let n = Nginx::start(&http(
        &cicap.url("virus_scan"),
        backend.port(),
        "1m",
        "ometascan_cache_revalidate 1s;",
    ));
    let marker = b"ometascan-new-signature-marker-0123456789";
    let mut file = random_bytes(40_000, 7);
    file.extend_from_slice(marker);
    file.extend_from_slice(&random_bytes(40_000, 8));
    for want in ["MISS", "HIT"] {
        let r = client::post(n.port, "/up/new.bin", &file).unwrap();
        assert_eq!(
            (r.status, cache_status(&r)),
            (200, want),
            "{}",
            n.error_log()
        );
    }
    let hex: String = marker.iter().map(|b| format!("{b:02x}")).collect();
    cicap.update_signatures(2, &[format!("Ometascan.Test.New:0:*:{hex}")]);
    std::thread::sleep(Duration::from_millis(1200));
    let r = client::post(n.port, "/up/new.bin", &file).unwrap();
    assert_eq!(r.status, 403, "{} {}", cache_status(&r), cicap.access_log());
    assert!(r.text().contains("Ometascan.Test.New"), "{}", r.text());
    assert_eq!(cache_status(&r), "MISS");
    // And the block is what is cached now.
    let r = client::post(n.port, "/up/new.bin", &file).unwrap();
    assert_eq!((r.status, cache_status(&r)), (403, "HIT"));
    let got = backend.received();
    assert_eq!(got.len(), 2, "only the two uploads before the update");
    assert_eq!(got[1].body, file);
}

#[test]
fn two_nginx_servers_share_verdicts_through_redis_and_a_dead_redis_is_a_miss() {
    let mut redis = RedisServer::start();
    let scanner = ScannerDouble::start(Action::Allow);
    let backend = Backend::start();
    let extra = format!("ometascan_cache_redis {} timeout=300ms;", redis.addr());
    let a = cached(&scanner, &backend, &extra);
    let b = cached(&scanner, &backend, &extra);
    let body = random_bytes(60_000, 9);
    let r = client::post(a.port, "/r", &body).unwrap();
    assert_eq!(cache_status(&r), "MISS");
    assert!(
        wait_for(Duration::from_secs(3), || redis.keys() == 1),
        "stored in redis"
    );
    let r = client::post(b.port, "/r", &body).unwrap();
    assert_eq!(
        (r.status, cache_status(&r)),
        (200, "HIT"),
        "{}",
        b.error_log()
    );
    assert_eq!(scanner.received().len(), 1, "one scan for both servers");
    assert_eq!(counter(&b, "redis_hits"), 1);
    // Now from b's own zone.
    let r = client::post(b.port, "/r", &body).unwrap();
    assert_eq!(cache_status(&r), "HIT");

    redis.kill();
    // A new file: scanned as usual; a block still blocks.
    let other = random_bytes(60_000, 13);
    let r = client::post(b.port, "/r", &other).unwrap();
    assert_eq!((r.status, cache_status(&r)), (200, "MISS"));
    scanner.script([Action::block(403, PAGE)]);
    let bad = random_bytes(60_000, 15);
    let r = client::post(b.port, "/r", &bad).unwrap();
    assert_eq!((r.status, r.body.as_slice()), (403, PAGE));
    assert_eq!(scanner.received().len(), 3);
    assert!(counter(&b, "redis_errors") >= 1);
    let got = backend.received();
    assert_eq!(got.len(), 4);
    assert_eq!(got[3].body, other);
    assert!(b.error_log().contains("verdict cache"), "{}", b.error_log());
}

#[test]
fn a_redis_that_answers_garbage_or_nothing_is_a_miss_within_its_timeout() {
    // A "Redis" that accepts and never answers, and one that answers nonsense.
    for answer in [None, Some(&b"$5\r\nhello\r\n"[..])] {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for s in listener.incoming().flatten() {
                if let Some(a) = answer {
                    use std::io::{Read, Write};
                    let mut s = s;
                    let mut buf = [0u8; 1024];
                    let _ = s.read(&mut buf);
                    let _ = s.write_all(a);
                    held.push(s);
                } else {
                    held.push(s);
                }
            }
        });
        let scanner = ScannerDouble::start(Action::block(403, PAGE));
        let backend = Backend::start();
        let extra = format!("ometascan_cache_redis {addr} timeout=200ms;");
        let n = cached(&scanner, &backend, &extra);
        let started = std::time::Instant::now();
        let r = client::post(n.port, "/g", &random_bytes(5_000, 12)).unwrap();
        assert_eq!((r.status, cache_status(&r)), (403, "MISS"));
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(scanner.received().len(), 1);
        assert!(backend.received().is_empty());
        assert!(counter(&n, "redis_errors") >= 1);
    }
}

#[test]
fn verdicts_survive_a_reload() {
    let scanner = ScannerDouble::start(Action::Allow);
    let backend = Backend::start();
    let n = cached(&scanner, &backend, "");
    let body = random_bytes(8_000, 17);
    let r = client::post(n.port, "/k", &body).unwrap();
    assert_eq!(cache_status(&r), "MISS");
    let old = n.worker();
    n.reload();
    assert!(wait_for(Duration::from_secs(10), || n.worker_pids() != vec![old]));
    let r = client::post(n.port, "/k", &body).unwrap();
    assert_eq!(
        (r.status, cache_status(&r)),
        (200, "HIT"),
        "{}",
        n.error_log()
    );
    assert_eq!(scanner.received().len(), 1);
    assert_eq!(counter(&n, "hits"), 1, "the counters go on too");
}

#[test]
fn requests_that_send_the_scanner_different_headers_never_share_a_verdict() {
    let scanner = ScannerDouble::start(Action::Allow);
    let backend = Backend::start();
    // The policy comes from the query, which is not in the key itself: only the header is.
    let n = cached(
        &scanner,
        &backend,
        "ometascan_set_header X-Policy $arg_policy;",
    );
    let body = random_bytes(4_000, 19);
    for (uri, want) in [
        ("/up?policy=lenient", "MISS"),
        ("/up?policy=lenient&x=1", "HIT"),
        ("/up?policy=strict", "MISS"),
        ("/up?policy=strict", "HIT"),
    ] {
        let r = client::post(n.port, uri, &body).unwrap();
        assert_eq!((r.status, cache_status(&r)), (200, want), "{uri}");
    }
    let seen = scanner.received();
    assert_eq!(seen.len(), 2);
    assert_eq!(backend.received().len(), 4);
}

/// Zones are listed in the module's main configuration: a name declared twice is refused by
/// `nginx -t`, two names are two zones, and a reload keeps the list right.
#[test]
fn a_zone_declared_twice_is_refused_and_two_names_are_two_zones() {
    let twice = nginx::check_http(
        "ometascan_cache_zone v:1m; ometascan_cache_zone v:1m;\n\
         server { listen 127.0.0.1:%PORT%; }",
    );
    assert!(!twice.ok);
    assert!(
        twice.output.contains("zone \"v\" is already declared"),
        "{}",
        twice.output
    );
    let n = Nginx::start(
        "ometascan_cache_zone a:1m; ometascan_cache_zone b:1m;\n\
         server { listen 127.0.0.1:%PORT%; location = /s { ometascan_status; } }",
    );
    let page = || {
        client::request(n.port, "GET", "/s", &[], b"")
            .unwrap()
            .text()
    };
    for zone in ["zone=\"a\"", "zone=\"b\""] {
        assert!(page().contains(zone), "{zone}: {}", page());
    }
    n.reload();
    for zone in ["zone=\"a\"", "zone=\"b\""] {
        assert!(page().contains(zone), "after a reload, {zone}: {}", page());
    }
}
