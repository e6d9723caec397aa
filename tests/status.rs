//! The status endpoint: counters of all workers, in Prometheus text format.

mod common;
use common::*;
use std::time::Duration;

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map(|v| v as u64)
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
}

#[test]
fn counters_are_aggregated_across_workers() {
    let scanner = ScannerDouble::start(Action::EicarAware);
    let backend = Backend::start();
    let dead = nginx::free_port();
    let http = format!(
        "upstream deadgroup {{ server 127.0.0.1:{dead} max_fails=1 fail_timeout=30s; }}\n\
         server {{ listen 127.0.0.1:%PORT%;\n\
           location / {{ ometascan_pass {}; ometascan_methods POST; proxy_pass http://127.0.0.1:{b}; }}\n\
           location /dead/ {{ ometascan_pass http://deadgroup; proxy_pass http://127.0.0.1:{b}; }}\n\
           location = /ometascan_status {{ ometascan_status; }}\n\
         }}",
        scanner.url(),
        b = backend.port()
    );
    let n = Nginx::start_workers(&http, 2);
    assert_eq!(n.worker_pids().len(), 2);
    // Many connections: both workers take some.
    for i in 0..20 {
        let body = if i % 5 == 0 {
            EICAR.to_vec()
        } else {
            random_bytes(1000, i)
        };
        client::post(n.port, &format!("/u{i}"), &body).unwrap();
    }
    for i in 0..3 {
        client::request(n.port, "GET", &format!("/g{i}"), &[], b"").unwrap();
    }
    assert_eq!(client::post(n.port, "/dead/x", b"x").unwrap().status, 502);

    // Every worker sees the same totals.
    let mut texts = Vec::new();
    for _ in 0..6 {
        let r = client::request(n.port, "GET", "/ometascan_status", &[], b"").unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("text/plain; version=0.0.4"));
        texts.push(r.text());
    }
    for t in &texts {
        assert_eq!(
            metric(t, "ometascan_requests_total{result=\"allowed\"}"),
            16,
            "{t}"
        );
        assert_eq!(metric(t, "ometascan_requests_total{result=\"blocked\"}"), 4);
        assert_eq!(metric(t, "ometascan_requests_total{result=\"error\"}"), 1);
        assert_eq!(metric(t, "ometascan_requests_total{result=\"skipped\"}"), 3);
        assert_eq!(metric(t, "ometascan_errors_total{kind=\"connect\"}"), 1);
        assert_eq!(metric(t, "ometascan_scans_in_flight"), 0);
        assert_eq!(metric(t, "ometascan_scan_duration_seconds_count"), 21);
        assert_eq!(
            metric(t, "ometascan_scanned_bytes_total"),
            16 * 1000 + 4 * EICAR.len() as u64 + 1
        );
        assert_eq!(
            metric(
                t,
                &format!(
                    "ometascan_server_scans_total{{server=\"127.0.0.1:{}\"}}",
                    scanner.port()
                )
            ),
            20
        );
        assert_eq!(
            metric(
                t,
                &format!("ometascan_server_failures_total{{server=\"127.0.0.1:{dead}\"}}")
            ),
            1
        );
        assert_eq!(
            metric(
                t,
                &format!("ometascan_server_down_workers{{server=\"127.0.0.1:{dead}\"}}")
            ),
            1
        );
    }
}

/// One worker scanning through a double that allows after `delay`, with `/status`.
fn slow_scanner(delay: Duration) -> (Nginx, ScannerDouble, Backend) {
    let scanner = ScannerDouble::start(Action::Delay(delay, Box::new(Action::Allow)));
    let backend = Backend::start();
    let http = format!(
        "server {{ listen 127.0.0.1:%PORT%;\n\
           location / {{ ometascan_pass {}; proxy_pass http://127.0.0.1:{}; }}\n\
           location = /status {{ ometascan_status; }} }}",
        scanner.url(),
        backend.port()
    );
    (Nginx::start(&http), scanner, backend)
}

#[test]
fn in_flight_scans_are_counted() {
    let (n, scanner, _backend) = slow_scanner(Duration::from_millis(1500));
    let port = n.port;
    let hs: Vec<_> = (0..3)
        .map(|i| {
            std::thread::spawn(move || client::post(port, &format!("/w{i}"), b"x").unwrap().status)
        })
        .collect();
    assert!(wait_for(Duration::from_secs(3), || scanner
        .received()
        .len()
        == 3));
    let t = client::request(n.port, "GET", "/status", &[], b"")
        .unwrap()
        .text();
    assert_eq!(metric(&t, "ometascan_scans_in_flight"), 3, "{t}");
    for h in hs {
        assert_eq!(h.join().unwrap(), 200);
    }
    let t = client::request(n.port, "GET", "/status", &[], b"")
        .unwrap()
        .text();
    assert_eq!(metric(&t, "ometascan_scans_in_flight"), 0);
    assert!(metric(&t, "ometascan_scan_duration_seconds_bucket{le=\"1\"}") == 0);
    assert_eq!(
        metric(&t, "ometascan_scan_duration_seconds_bucket{le=\"2.5\"}"),
        3
    );
    let r = client::post(n.port, "/status", b"x").unwrap();
    assert_eq!(r.status, 405);
}

#[test]
fn the_in_flight_gauge_forgets_the_scans_of_a_killed_worker() {
    let (n, scanner, backend) = slow_scanner(Duration::from_secs(10));
    let port = n.port;
    let hs: Vec<_> = (0..3)
        .map(|i| std::thread::spawn(move || client::post(port, &format!("/k{i}"), b"x")))
        .collect();
    assert!(wait_for(Duration::from_secs(3), || scanner
        .received()
        .len()
        == 3));
    let status = || {
        client::request(port, "GET", "/status", &[], b"")
            .unwrap()
            .text()
    };
    assert_eq!(metric(&status(), "ometascan_scans_in_flight"), 3);
    let old = n.worker();
    // SAFETY: plain kill(2) of the worker process.
    unsafe { libc::kill(old as i32, libc::SIGKILL) };
    assert!(wait_for(Duration::from_secs(5), || {
        n.worker_pids().first().is_some_and(|&w| w != old)
    }));
    for h in hs {
        assert!(
            h.join().unwrap().is_err(),
            "the killed worker's clients got no answer"
        );
    }
    // The new worker's gauge starts from what really runs: nothing.
    let t = status();
    assert_eq!(metric(&t, "ometascan_scans_in_flight"), 0, "{t}");
    assert!(backend.received().is_empty());
    // And it counts its own scans again.
    let h = std::thread::spawn(move || client::post(port, "/again", b"x"));
    assert!(wait_for(Duration::from_secs(3), || scanner
        .received()
        .len()
        == 4));
    assert_eq!(metric(&status(), "ometascan_scans_in_flight"), 1);
    drop(h);
}

/// `promtool check metrics` (Prometheus's own linter) on a status page.
fn promtool(page: &[u8]) -> (bool, String) {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (apt-get install prometheus)");
    child.stdin.take().unwrap().write_all(page).unwrap();
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success() && text.trim().is_empty(), text)
}

#[test]
fn the_status_page_passes_prometheus_own_linter() {
    let scanner = ScannerDouble::start(Action::EicarAware);
    let backend = Backend::start();
    let dead = nginx::free_port();
    let http = format!(
        "ometascan_cache_zone verdicts:1m;\n\
         upstream deadgroup {{ server 127.0.0.1:{dead} max_fails=1 fail_timeout=30s; }}\n\
         server {{ listen 127.0.0.1:%PORT%;\n\
           location / {{ ometascan_pass {}; ometascan_cache verdicts; proxy_pass http://127.0.0.1:{b}; }}\n\
           location /dead/ {{ ometascan_pass http://deadgroup; proxy_pass http://127.0.0.1:{b}; }}\n\
           location = /ometascan_status {{ ometascan_status; }}\n\
         }}",
        scanner.url(),
        b = backend.port()
    );
    let n = Nginx::start(&http);
    // Every kind of counter with a value: allowed (and a cache hit), blocked, failed.
    for body in [&random_bytes(1000, 1)[..], &random_bytes(1000, 1), EICAR] {
        client::post(n.port, "/u", body).unwrap();
    }
    assert_eq!(client::post(n.port, "/dead/u", b"x").unwrap().status, 502);
    let r = client::request(n.port, "GET", "/ometascan_status", &[], b"").unwrap();
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(
        metric(&text, "ometascan_requests_total{result=\"blocked\"}") >= 1,
        "{text}"
    );
    let (ok, lint) = promtool(&r.body);
    assert!(ok, "promtool: {lint}\n{text}");
    // Its twin: promtool does find what it should (a counter without _total).
    let (ok, _) = promtool(b"# TYPE ometascan_requests counter\nometascan_requests 1\n");
    assert!(!ok, "promtool accepts a counter named without _total");
}
