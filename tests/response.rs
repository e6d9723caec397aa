//! Downloads scanned (`ometascan_response on`): the response is held, scanned with the real
//! c-icap + ClamAV (RESPMOD) or a double, and released, replaced or refused. Each test checks
//! what the client got; the backends here are nginx's own (static files, a proxied server).

mod common;
use common::*;
use ometascan_testkit::cicap::{CIcap, THREAT};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A directory of files served by nginx (readable by its workers).
fn files(name: &str, contents: &[(&str, Vec<u8>)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ometascan-files-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (file, data) in contents {
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    }
    dir
}

fn infected(len: usize, seed: u64) -> Vec<u8> {
    let mut v = random_bytes(len, seed);
    v.extend_from_slice(EICAR);
    v.extend_from_slice(&random_bytes(len / 3, seed + 1));
    v
}

/// A static server on its own port (the proxied backend), and the scanned front.
fn config(scanner: &str, root: &Path, backend_port: u16, extra: &str) -> String {
    format!(
        "sendfile on;\n\
         server {{ listen 127.0.0.1:{backend_port}; root {root};\n\
           location /gz/ {{ add_header Content-Encoding gzip; }}\n\
           location /grow/ {{ ssi on; ssi_types *; }} }}\n\
         server {{ listen 127.0.0.1:%PORT%;\n\
           add_header X-Result $ometascan_response_result always;\n\
           add_header X-Threat $ometascan_response_threat always;\n\
           location /static/ {{ alias {root}/; ometascan_pass {scanner}; ometascan_response on;\n\
             ometascan_methods POST; {extra} }}\n\
           location /proxied/ {{ proxy_pass http://127.0.0.1:{backend_port}/; ometascan_pass {scanner};\n\
             ometascan_response on; ometascan_methods POST; {extra} }}\n\
           location /whole/ {{ proxy_pass http://127.0.0.1:{backend_port}/; proxy_set_header Range \"\";\n\
             proxy_set_header If-Range \"\"; proxy_force_ranges on; ometascan_pass {scanner};\n\
             ometascan_response on;\n\
             ometascan_methods POST; {extra} }}\n\
           location /unbuffered/ {{ proxy_pass http://127.0.0.1:{backend_port}/; proxy_buffering off;\n\
             ometascan_pass {scanner}; ometascan_response on; ometascan_methods POST; {extra} }}\n\
           location /plain/ {{ alias {root}/; }}\n\
           location = /ometascan_status {{ ometascan_status; }}\n\
         }}",
        root = root.display(),
    )
}

fn get(port: u16, path: &str, headers: &[(&str, &str)]) -> Response {
    client::request(port, "GET", path, headers, b"").unwrap()
}

#[test]
fn eicar_downloads_are_blocked_and_clean_ones_pass_byte_exact() {
    let cicap = CIcap::start();
    let clean = random_bytes(3 << 20, 1);
    let bad = infected(2 << 20, 2);
    let small = b"just a small text file\n".to_vec();
    let root = files(
        "c-icap",
        &[
            ("clean.bin", clean.clone()),
            ("eicar.bin", bad.clone()),
            ("small.txt", small.clone()),
            ("gz/eicar.bin", gzip(&bad)),
            ("gz/clean.bin", gzip(&clean)),
        ],
    );
    let backend_port = nginx::free_port();
    let n = Nginx::start(&config(&cicap.url("virus_scan"), &root, backend_port, ""));
    for prefix in ["/static/", "/proxied/", "/unbuffered/"] {
        let r = get(n.port, &format!("{prefix}clean.bin"), &[]);
        assert_eq!(r.status, 200, "{prefix}: {}", n.error_log());
        assert!(r.body == clean, "{prefix}: the clean file byte-exact");
        let r = get(n.port, &format!("{prefix}small.txt"), &[]);
        assert_eq!((r.status, &r.body), (200, &small), "{prefix}");
        let r = get(n.port, &format!("{prefix}eicar.bin"), &[]);
        assert_eq!(r.status, 403, "{prefix}: {}", n.error_log());
        assert_eq!(r.header("x-threat"), Some(THREAT), "{prefix}");
        assert_eq!(r.header("x-result"), Some("blocked"), "{prefix}");
        assert!(
            r.text().contains(THREAT) || n.error_log().contains(THREAT),
            "{}",
            r.text()
        );
        assert!(
            !r.body.windows(EICAR.len()).any(|w| w == EICAR),
            "{prefix}: nothing of the file reached the client"
        );
        assert!(
            r.body.len() < 100_000,
            "{prefix}: the scanner's page, not the file"
        );
    }
    // A gzip-encoding backend: decoded for the scan, sent encoded.
    let r = get(n.port, "/proxied/gz/eicar.bin", &[]);
    assert_eq!(r.status, 403, "{}", n.error_log());
    let r = get(n.port, "/proxied/gz/clean.bin", &[]);
    assert_eq!((r.status, r.body == gzip(&clean)), (200, true));
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    let log = n.error_log();
    assert!(
        log.contains("response blocked by the scanner with status 403"),
        "{log}"
    );
    assert!(!log.contains("[alert]") && !log.contains("[crit]"), "{log}");
    assert!(
        cicap.access_log().contains("RESPMOD"),
        "{}",
        cicap.access_log()
    );
    // The same files where responses are not scanned: the twin that shows the file is there.
    let r = get(n.port, "/plain/eicar.bin", &[]);
    assert_eq!((r.status, r.body == bad), (200, true));
}

/// nginx in front of its own static server, responses scanned by the HTTP double.
fn with_double(
    action: Action,
    contents: &[(&str, Vec<u8>)],
    extra: &str,
) -> (Nginx, ScannerDouble, PathBuf) {
    let double = ScannerDouble::start(action);
    let root = files(&format!("double-{}", double.port()), contents);
    let n = Nginx::start(&config(&double.url(), &root, nginx::free_port(), extra));
    (n, double, root)
}

#[test]
fn the_scanner_gets_the_request_line_and_the_response_and_a_sanitized_body_replaces_it() {
    let bad = infected(100_000, 3);
    let (n, double, _root) = with_double(
        Action::SanitizeEicar(b"cleaned\n".to_vec()),
        &[("bad.bin", bad.clone()), ("ok.txt", b"fine\n".to_vec())],
        "",
    );
    let r = get(n.port, "/proxied/bad.bin?x=1", &[("X-Client", "c1")]);
    assert_eq!(r.status, 200, "{}", n.error_log());
    assert_eq!(r.body, b"cleaned\n");
    assert_eq!(r.header("content-length"), Some("8"));
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(r.header("x-result"), Some("sanitized"));
    let got = double.received();
    let seen = got.last().unwrap();
    assert_eq!(seen.method(), "GET");
    assert_eq!(seen.target(), "/proxied/bad.bin?x=1");
    assert_eq!(seen.head.header("x-ometascan-response"), Some("200"));
    assert_eq!(seen.head.header("x-client"), Some("c1"));
    assert_eq!(
        seen.head.header("content-length"),
        Some(bad.len().to_string().as_str())
    );
    assert_eq!(
        seen.body_hash,
        fnv1a(&bad),
        "the whole response body, byte-exact"
    );
    // Its twin: nothing to clean, the file as it is.
    let r = get(n.port, "/static/ok.txt", &[]);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"fine\n"[..]));
    assert_eq!(r.header("x-result"), Some("allowed"));
}

#[test]
fn a_scanner_failure_is_a_502_with_nothing_of_the_response() {
    let file = random_bytes(500_000, 4);
    let (n, double, _root) = with_double(Action::Allow, &[("f.bin", file.clone())], "");
    // Its twin first: the scanner answers, the file whole (a connection to the scanner is
    // kept for the next scan).
    let r = get(n.port, "/proxied/f.bin", &[]);
    assert_eq!((r.status, r.body == file), (200, true));
    let worker = n.worker();
    let fds = nginx::fd_count(worker);
    double.set_default(Action::ResetAfterHead);
    for path in ["/static/f.bin", "/proxied/f.bin"] {
        let r = get(n.port, path, &[]);
        assert_eq!(r.status, 502, "{path}: {}", n.error_log());
        assert!(r.body.len() < 2000, "{path}: nginx's error page only");
        assert!(
            r.header("last-modified").is_none() && r.header("etag").is_none(),
            "{path}: none of the backend's fields"
        );
    }
    assert!(
        n.error_log().contains("response scan failed"),
        "{}",
        n.error_log()
    );
    assert_worker_recovered(&n, worker, fds);
}

#[test]
fn head_and_not_modified_are_not_scanned_and_range_comes_after_the_whole_scan() {
    let clean = random_bytes(400_000, 5);
    let bad = infected(300_000, 6);
    let (n, double, _root) = with_double(
        Action::EicarAware,
        &[("clean.bin", clean.clone()), ("bad.bin", bad)],
        "",
    );
    let r = client::request(n.port, "HEAD", "/static/bad.bin", &[], b"").unwrap();
    assert_eq!(r.status, 200);
    let lm = get(n.port, "/plain/clean.bin", &[])
        .header("last-modified")
        .unwrap()
        .to_string();
    let r = get(n.port, "/static/clean.bin", &[("If-Modified-Since", &lm)]);
    assert_eq!(r.status, 304);
    assert_eq!(double.received().len(), 0, "no body, no scan");
    // A range of a blocked file: the block, nothing of the file.
    let r = get(n.port, "/static/bad.bin", &[("Range", "bytes=0-99")]);
    assert_eq!(r.status, 403, "{}", n.error_log());
    assert!(r.header("content-range").is_none());
    assert_eq!(
        double.received().last().unwrap().body_len,
        300_000 + EICAR.len() as u64 + 100_000,
        "the whole file was scanned"
    );
    // Its twin: a range of a clean file, after the whole of it was scanned (nginx makes the
    // range of a static file, and of a proxied one whose backend was not asked for a range).
    for path in ["/static/clean.bin", "/whole/clean.bin"] {
        let before = double.received().len();
        let r = get(n.port, path, &[("Range", "bytes=1000-1999")]);
        assert_eq!(r.status, 206, "{path}: {}", n.error_log());
        assert_eq!(r.body, &clean[1000..2000], "{path}");
        let seen = double.received();
        assert_eq!(seen.len(), before + 1, "{path}: scanned");
        assert_eq!(
            seen.last().unwrap().body_hash,
            fnv1a(&clean),
            "{path}: whole"
        );
    }
    // A backend's own 206 (the client's Range passed on): a part, no verdict for the file,
    // nothing of it; the log says what to configure.
    let before = double.received().len();
    let r = get(n.port, "/proxied/bad.bin", &[("Range", "bytes=0-")]);
    assert_eq!(r.status, 502, "{}", n.error_log());
    assert!(!r.body.windows(EICAR.len()).any(|w| w == EICAR));
    assert_eq!(double.received().len(), before);
    assert!(n.error_log().contains("the backend answered 206"));
}

#[test]
fn a_gzip_encoded_response_is_scanned_decoded_and_sent_as_it_was() {
    let mut bad = random_bytes(200_000, 7);
    bad.extend_from_slice(EICAR);
    let clean_gz = gzip(&random_bytes(200_000, 8));
    let (n, double, _root) = with_double(
        Action::EicarAware,
        &[
            ("gz/bad.bin", gzip(&bad)),
            ("gz/clean.bin", clean_gz.clone()),
        ],
        "",
    );
    let r = get(n.port, "/proxied/gz/bad.bin", &[]);
    assert_eq!(
        r.status,
        403,
        "the double saw EICAR only in the decoded body: {}",
        n.error_log()
    );
    let r = get(n.port, "/proxied/gz/clean.bin", &[]);
    assert_eq!(r.status, 200, "{}", n.error_log());
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert!(
        r.body == clean_gz,
        "the encoded bytes as the backend sent them"
    );
    let seen = double.received();
    assert_eq!(seen.last().unwrap().body_len, 200_000, "scanned decoded");
    assert!(seen
        .last()
        .unwrap()
        .head
        .header("content-encoding")
        .is_none());
}

#[test]
fn a_proxy_cache_hit_is_scanned_again_and_http2_clients_get_the_same() {
    let clean = random_bytes(300_000, 9);
    let bad = infected(100_000, 10);
    let cache = std::env::temp_dir().join(format!("ometascan-pcache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);
    let extra = "proxy_cache c; proxy_cache_valid 200 1h;
                 add_header X-Cache $upstream_cache_status always;";
    let double = ScannerDouble::start(Action::EicarAware);
    let root = files("pcache", &[("clean.bin", clean.clone()), ("bad.bin", bad)]);
    let http = format!(
        "proxy_cache_path {} keys_zone=c:1m;\n{}",
        cache.display(),
        config(&double.url(), &root, nginx::free_port(), extra).replace(
            "listen 127.0.0.1:%PORT%;",
            "listen 127.0.0.1:%PORT%; http2 on;"
        )
    );
    let n = Nginx::start(&http);
    for (i, want) in [(0, "MISS"), (1, "HIT")] {
        let r = get(n.port, "/proxied/bad.bin", &[]);
        assert_eq!(r.status, 403, "{want}: {}", n.error_log());
        let r = get(n.port, "/proxied/clean.bin", &[]);
        assert_eq!((r.status, r.body == clean), (200, true), "{want}");
        assert_eq!(r.header("x-cache"), Some(want));
        assert_eq!(
            double.received().len(),
            2 * (i + 1),
            "{want}: every download scanned"
        );
    }
    // HTTP/2 (prior knowledge): the block and the clean file.
    let h2 = |path: &str| {
        let out = std::process::Command::new("curl")
            .args([
                "-s",
                "--http2-prior-knowledge",
                "-o",
                "-",
                "-w",
                "\n%{http_code} %{http_version}",
            ])
            .arg(format!("http://127.0.0.1:{}{path}", n.port))
            .output()
            .unwrap();
        out.stdout
    };
    let out = h2("/proxied/bad.bin");
    assert!(
        out.ends_with(b"\n403 2"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    assert!(!out.windows(EICAR.len()).any(|w| w == EICAR));
    let out = h2("/static/clean.bin");
    assert!(out.ends_with(b"\n200 2"));
    assert!(out[..out.len() - 6] == clean[..], "byte-exact over HTTP/2");
}

#[test]
fn a_client_gone_while_its_download_is_scanned_frees_everything() {
    let file = random_bytes(2 << 20, 11);
    let (n, double, _root) = with_double(
        Action::Delay(Duration::from_millis(800), Box::new(Action::Allow)),
        &[("f.bin", file.clone())],
        "",
    );
    let worker = n.worker();
    let fds = nginx::fd_count(worker);
    for path in ["/static/f.bin", "/proxied/f.bin"] {
        let mut c = Conn::open(n.port).unwrap();
        c.send_raw(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
            .unwrap();
        let seen = double.received().len();
        assert!(wait_for(Duration::from_secs(3), || double.received().len()
            > seen
            || double.max_concurrent() > 0));
        drop(c);
    }
    std::thread::sleep(Duration::from_millis(1200));
    assert_worker_recovered(&n, worker, fds);
    // The worker goes on serving.
    let r = get(n.port, "/static/f.bin", &[]);
    assert_eq!((r.status, r.body == file), (200, true));
}

#[test]
fn the_size_cap_refuses_or_passes_unscanned_by_length_and_as_the_body_grows() {
    let big = infected(1 << 20, 12);
    let small = random_bytes(1000, 13);
    let double = ScannerDouble::start(Action::EicarAware);
    let root = files(
        "cap",
        &[
            ("big.bin", big.clone()),
            ("small.bin", small.clone()),
            ("grow/big.bin", big.clone()),
        ],
    );
    let backend = nginx::free_port();
    let front = |extra: &str| Nginx::start(&config(&double.url(), &root, backend, extra));
    let n = front("ometascan_response_max_size 500k;");
    for path in [
        "/static/big.bin",
        "/proxied/big.bin",
        "/proxied/grow/big.bin",
    ] {
        let r = get(n.port, path, &[]);
        assert_eq!(r.status, 502, "{path}: {}", n.error_log());
        assert!(!r.body.windows(EICAR.len()).any(|w| w == EICAR), "{path}");
        assert_eq!(r.header("x-result"), Some("too_large"), "{path}");
    }
    assert!(n
        .error_log()
        .contains("is over \"ometascan_response_max_size\" 512000, refused"));
    // Its twin under the cap: scanned and sent.
    let r = get(n.port, "/static/small.bin", &[]);
    assert_eq!((r.status, r.body == small), (200, true));
    assert_eq!(r.header("x-result"), Some("allowed"));
    let scanned = double.received().len();
    assert_eq!(scanned, 1, "nothing over the cap went to the scanner");
    drop(n);
    // over=pass: sent whole, unscanned (the operator's choice), said in the log.
    let n = front("ometascan_response_max_size 500k over=pass;");
    for path in ["/static/big.bin", "/proxied/grow/big.bin"] {
        let r = get(n.port, path, &[]);
        assert_eq!(
            (r.status, r.body == big),
            (200, true),
            "{path}: {}",
            n.error_log()
        );
        assert_eq!(r.header("x-result"), Some("unscanned"), "{path}");
    }
    assert!(n.error_log().contains("sent unscanned"));
    assert_eq!(double.received().len(), scanned);
}

#[test]
fn listed_statuses_are_scanned_and_bypass_values_are_honoured() {
    let bad = infected(10_000, 14);
    let double = ScannerDouble::start(Action::EicarAware);
    let root = files(
        "statuses",
        &[("bad.bin", bad.clone()), ("skip/bad.bin", bad.clone())],
    );
    let extra = "error_page 404 =203 /static/bad.bin; ometascan_response_statuses 200 203;\n\
                 ometascan_response_bypass $skip_scan;";
    let http = format!(
        "map $uri $skip_scan {{ default 0; ~^/static/skip/ 1; }}\n{}",
        config(&double.url(), &root, nginx::free_port(), extra)
    );
    let n = Nginx::start(&http);
    // An error page answered with 203 from the file: scanned, blocked.
    let r = get(n.port, "/static/none.bin", &[]);
    assert_eq!(r.status, 403, "{}", n.error_log());
    // Bypassed by value: sent as it is, said in the log.
    let r = get(n.port, "/static/skip/bad.bin", &[]);
    assert_eq!((r.status, r.body == bad), (200, true));
    assert_eq!(r.header("x-result"), Some("skipped"));
    assert!(n
        .error_log()
        .contains("response not scanned: \"ometascan_response_bypass\" value \"1\""));
    // Its twin: the same file elsewhere is scanned.
    let r = get(n.port, "/static/bad.bin", &[]);
    assert_eq!(r.status, 403);
}

#[test]
fn the_verdict_cache_serves_the_second_download_and_the_status_page_counts_responses() {
    let cicap = CIcap::start();
    let clean = random_bytes(1 << 20, 15);
    let bad = infected(200_000, 16);
    let root = files("vcache", &[("clean.bin", clean.clone()), ("bad.bin", bad)]);
    let http = format!(
        "ometascan_cache_zone verdicts:1m;\n{}",
        config(
            &cicap.url("virus_scan"),
            &root,
            nginx::free_port(),
            "ometascan_cache verdicts; add_header X-Scan-Cache $ometascan_response_cache_status always;",
        )
    );
    let n = Nginx::start(&http);
    let respmods = || cicap.access_log().matches("RESPMOD").count();
    for (i, want) in [(0, "MISS"), (1, "HIT"), (2, "HIT")] {
        let r = get(n.port, "/static/clean.bin", &[]);
        assert_eq!((r.status, r.body == clean), (200, true), "{want}");
        assert_eq!(
            r.header("x-scan-cache"),
            Some(want),
            "{i}: {}",
            n.error_log()
        );
        let r = get(n.port, "/proxied/bad.bin", &[]);
        assert_eq!(r.status, 403, "{want}");
        assert_eq!(r.header("x-scan-cache"), Some(want));
    }
    assert_eq!(respmods(), 2, "each file scanned once");
    let page = get(n.port, "/ometascan_status", &[]).text();
    for line in [
        "ometascan_responses_total{result=\"allowed\"} 3",
        "ometascan_responses_total{result=\"blocked\"} 3",
        "ometascan_requests_total{result=\"allowed\"} 0",
    ] {
        assert!(page.contains(line), "{line}: {page}");
    }
}

/// A file of `len` bytes whose every 8-byte word is its own offset (checked as it streams).
fn pattern_file(path: &Path, len: u64) {
    use std::io::Write;
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    let mut buf = vec![0u8; 1 << 20];
    let mut at = 0u64;
    while at < len {
        for (i, w) in buf.chunks_mut(8).enumerate() {
            w.copy_from_slice(&(at + 8 * i as u64).to_le_bytes());
        }
        f.write_all(&buf).unwrap();
        at += buf.len() as u64;
    }
}

/// GETs `path` and reads the body as it comes, checking the pattern; returns the status and
/// the body's length.
fn get_pattern(port: u16, path: &str) -> (u16, u64) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes())
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).unwrap() == 0 {
            break;
        }
        head.push(byte[0]);
    }
    let status = String::from_utf8_lossy(&head)[9..12].parse().unwrap_or(0);
    let (mut at, mut buf, mut carry) = (0u64, vec![0u8; 1 << 20], Vec::new());
    loop {
        let n = s.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        carry.extend_from_slice(&buf[..n]);
        let whole = carry.len() / 8 * 8;
        for w in carry[..whole].chunks(8) {
            let v = u64::from_le_bytes(w.try_into().unwrap());
            assert_eq!(v, at, "byte-exact at offset {at}");
            at += 8;
        }
        carry.drain(..whole);
    }
    (status, at + carry.len() as u64)
}

#[test]
fn a_2_gb_download_is_held_and_scanned_with_flat_worker_memory() {
    const LEN: u64 = 2 << 30;
    let double = ScannerDouble::start(Action::Allow);
    let root = files("big", &[]);
    pattern_file(&root.join("2g.bin"), LEN);
    let n = Nginx::start(&config(&double.url(), &root, nginx::free_port(), ""));
    let worker = n.worker();
    let base = nginx::rss_kib(worker);
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(base));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (peak, stop) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Acquire) {
                peak.fetch_max(nginx::rss_kib(worker), std::sync::atomic::Ordering::AcqRel);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    for path in ["/static/2g.bin", "/proxied/2g.bin"] {
        let started = std::time::Instant::now();
        assert_eq!(
            get_pattern(n.port, path),
            (200, LEN),
            "{path}: {}",
            n.error_log()
        );
        let seen = double.received();
        assert_eq!(
            seen.last().map(|r| r.body_len),
            Some(LEN),
            "{path}: scanned whole"
        );
        eprintln!("{path}: {:?}", started.elapsed());
    }
    stop.store(true, std::sync::atomic::Ordering::Release);
    sampler.join().unwrap();
    let grew = peak
        .load(std::sync::atomic::Ordering::Acquire)
        .saturating_sub(base);
    eprintln!("worker memory: {base} KiB at rest, {grew} KiB more at most");
    assert!(
        grew < 64 * 1024,
        "the worker grew by {grew} KiB holding 2 GB"
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn responses_go_to_their_own_scanner_and_a_location_may_scan_downloads_alone() {
    let uploads = ScannerDouble::start(Action::EicarAware);
    let downloads = ScannerDouble::start(Action::EicarAware);
    let bad = infected(50_000, 17);
    let root = files("own", &[("bad.bin", bad.clone())]);
    let backend = Backend::start();
    let http = format!(
        "server {{ listen 127.0.0.1:%PORT%;\n\
           location /both/ {{ alias {root}/; ometascan_pass {up}; ometascan_response on;\n\
             ometascan_methods POST;\n\
             ometascan_response_pass {down}; }}\n\
           location /up/ {{ ometascan_pass {up}; ometascan_response on;\n\
             ometascan_response_pass {down}; proxy_pass http://127.0.0.1:{b}; }}\n\
           location /only/ {{ alias {root}/; ometascan_pass off; ometascan_response on;\n\
             ometascan_response_pass {down}; }}\n\
         }}",
        root = root.display(),
        up = uploads.url(),
        down = downloads.url(),
        b = backend.port(),
    );
    let n = Nginx::start(&http);
    for path in ["/both/bad.bin", "/only/bad.bin"] {
        let r = get(n.port, path, &[]);
        assert_eq!(r.status, 403, "{path}: {}", n.error_log());
    }
    assert_eq!(downloads.received().len(), 2);
    assert_eq!(
        uploads.received().len(),
        0,
        "downloads go to their own scanner"
    );
    // An upload goes to the request scanner; the backend's answer to the response one.
    let r = client::post(n.port, "/up/x", EICAR).unwrap();
    assert_eq!(r.status, 403);
    let r = client::post(n.port, "/up/y", b"clean upload").unwrap();
    assert_eq!(r.status, 200, "{}", n.error_log());
    assert_eq!(uploads.received().len(), 2);
    assert_eq!(
        downloads.received().len(),
        3,
        "the backend's answer to the clean upload"
    );
    assert_eq!(backend.received().len(), 1);
    // A URL that cannot be one stops nginx -t, naming the directive.
    let c = nginx::check_http(
        "server { listen 127.0.0.1:%PORT%; location / { ometascan_response_pass ftp://x; } }",
    );
    assert!(!c.ok);
    assert!(
        c.output
            .contains("invalid value \"ftp://x\" in \"ometascan_response_pass\" directive"),
        "{}",
        c.output
    );
}

/// An ICAP answer carrying a response: `status`, the threat header if any, `body`.
fn respmod_answer(status: &str, threat: Option<&str>, body: &str) -> Vec<u8> {
    let http = format!("HTTP/1.1 {status}\r\nContent-Type: text/plain\r\n\r\n");
    let threat = threat
        .map(|t| format!("X-Virus-ID: {t}\r\n"))
        .unwrap_or_default();
    format!(
        "ICAP/1.0 200 OK\r\nISTag: \"double-1\"\r\n{threat}Encapsulated: res-hdr=0, res-body={}\r\n\r\n\
         {http}{:x}\r\n{body}\r\n0\r\n\r\n",
        http.len(),
        body.len()
    )
    .into_bytes()
}

#[test]
fn respmod_answers_the_same_status_sanitizes_another_status_or_a_threat_blocks() {
    use ometascan_testkit::icap_double::{IcapAction, IcapDouble};
    let file = random_bytes(300_000, 18);
    let icap = IcapDouble::start(IcapAction::Allow, Some(1024));
    let root = files("respmod", &[("f.bin", file.clone())]);
    let n = Nginx::start(&config(&icap.url("respmod"), &root, nginx::free_port(), ""));
    let cases: [(IcapAction, u16, &[u8], &str); 4] = [
        (IcapAction::Allow, 200, &file, "allowed"),
        (
            IcapAction::Raw(respmod_answer("200 OK", None, "the file, cleaned")),
            200,
            b"the file, cleaned",
            "sanitized",
        ),
        (
            IcapAction::Raw(respmod_answer("403 Forbidden", None, "blocked here")),
            403,
            b"blocked here",
            "blocked",
        ),
        (
            IcapAction::Raw(respmod_answer("200 OK", Some("Some.Threat"), "a page")),
            200,
            b"a page",
            "blocked",
        ),
    ];
    for (action, status, body, result) in cases {
        icap.script([action.clone(), action]);
        for path in ["/static/f.bin", "/proxied/f.bin"] {
            let r = get(n.port, path, &[]);
            assert_eq!(r.status, status, "{result} {path}: {}", n.error_log());
            assert!(r.body == body, "{result} {path}: {}", r.text());
            assert_eq!(r.header("x-result"), Some(result), "{path}");
            assert_eq!(
                icap.bodies().last(),
                Some(&file.len()),
                "{path}: the whole file"
            );
        }
    }
    assert!(n.error_log().contains("threat \"Some.Threat\""));
}

#[test]
fn clamd_scans_downloads_on_its_local_socket() {
    let clamd = ometascan_testkit::clamd::Clamd::start();
    let clean = random_bytes(2 << 20, 19);
    let bad = infected(1 << 20, 20);
    let root = files("clamd", &[("clean.bin", clean.clone()), ("bad.bin", bad)]);
    let url = format!("clamd+unix://{}", clamd.socket().display());
    let n = Nginx::start(&config(&url, &root, nginx::free_port(), ""));
    for path in ["/static/", "/proxied/"] {
        let r = get(n.port, &format!("{path}bad.bin"), &[]);
        assert_eq!(r.status, 403, "{path}: {}", n.error_log());
        assert_eq!(r.header("x-threat"), Some(THREAT));
        let r = get(n.port, &format!("{path}clean.bin"), &[]);
        assert_eq!((r.status, r.body == clean), (200, true), "{path}");
    }
}

#[test]
fn a_fastcgi_application_s_download_is_scanned() {
    let bad = infected(300_000, 21);
    let clean = random_bytes(300_000, 22);
    let root = files(
        "fastcgi",
        &[
            ("bad.bin", bad),
            ("clean.bin", clean.clone()),
            (
                "dl.php",
                b"<?php header('Content-Type: application/octet-stream');\n\
                  readfile(__DIR__ . '/' . basename($_GET['f']));\n"
                    .to_vec(),
            ),
        ],
    );
    let fcgi = nginx::free_port();
    let mut php = std::process::Command::new("php-cgi")
        .args(["-b", &format!("127.0.0.1:{fcgi}")])
        .env("PHP_FCGI_CHILDREN", "0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("php-cgi (apt-get install php-cgi)");
    assert!(wait_for(Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", fcgi)).is_ok()
    }));
    let double = ScannerDouble::start(Action::EicarAware);
    let http = format!(
        "server {{ listen 127.0.0.1:%PORT%;\n\
           location /php/ {{ fastcgi_pass 127.0.0.1:{fcgi};\n\
             fastcgi_param SCRIPT_FILENAME {root}/dl.php; fastcgi_param QUERY_STRING $query_string;\n\
             fastcgi_param REQUEST_METHOD $request_method; fastcgi_param REDIRECT_STATUS 200;\n\
             ometascan_pass {scanner}; ometascan_response on; ometascan_methods POST; }}\n\
         }}",
        root = root.display(),
        scanner = double.url(),
    );
    let n = Nginx::start(&http);
    let r = get(n.port, "/php/dl?f=bad.bin", &[]);
    assert_eq!(r.status, 403, "{}", n.error_log());
    assert!(!r.body.windows(EICAR.len()).any(|w| w == EICAR));
    let r = get(n.port, "/php/dl?f=clean.bin", &[]);
    assert_eq!(
        (r.status, r.body == clean),
        (200, true),
        "{}",
        n.error_log()
    );
    assert_eq!(double.received().last().unwrap().body_hash, fnv1a(&clean));
    let _ = php.kill();
    let _ = php.wait();
}

#[test]
fn with_on_error_pass_a_failed_response_scan_sends_the_response_unscanned_and_says_so() {
    let file = random_bytes(200_000, 23);
    let (n, double, _root) = with_double(
        Action::ResetAfterHead,
        &[("f.bin", file.clone())],
        "ometascan_on_error pass;",
    );
    for path in ["/static/f.bin", "/proxied/f.bin"] {
        let r = get(n.port, path, &[]);
        assert_eq!(
            (r.status, r.body == file),
            (200, true),
            "{path}: {}",
            n.error_log()
        );
        assert_eq!(r.header("x-result"), Some("unscanned"), "{path}");
    }
    assert!(n
        .error_log()
        .contains("sending the response unscanned because of"));
    // Its twin: a verdict still decides.
    double.set_default(Action::EicarAware);
    let r = get(n.port, "/static/f.bin", &[]);
    assert_eq!((r.status, r.header("x-result")), (200, Some("allowed")));
}

#[test]
fn a_blocked_download_is_answered_by_error_page_when_intercepting() {
    let bad = infected(20_000, 24);
    let good = random_bytes(20_000, 25);
    let (n, _double, _root) = with_double(
        Action::EicarAware,
        &[
            ("bad.bin", bad),
            ("good.bin", good.clone()),
            ("blocked.html", b"<p>this file was blocked</p>\n".to_vec()),
        ],
        "ometascan_intercept_errors on; error_page 403 /plain/blocked.html;",
    );
    for path in ["/static/bad.bin", "/proxied/bad.bin"] {
        let r = get(n.port, path, &[]);
        assert_eq!(r.status, 403, "{path}: {}", n.error_log());
        assert_eq!(r.text(), "<p>this file was blocked</p>\n", "{path}");
        assert!(!r.body.windows(EICAR.len()).any(|w| w == EICAR));
        // The twin: a clean file under the same configuration arrives whole.
        let r = get(n.port, &path.replace("bad", "good"), &[]);
        assert_eq!((r.status, r.body == good), (200, true), "{path}");
    }
}
