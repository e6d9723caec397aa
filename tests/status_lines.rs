//! Every response a client can read is scanned or refused, whatever its status line: a `1xx`
//! nginx relays as final (the final response in its body), a status line nginx cannot parse
//! (relayed as HTTP/0.9), statuses outside 200-599, and the default statuses; a backend that
//! dies mid-body closes the client's connection as plain nginx does. The backend writes exact
//! bytes; the clients are curl (HTTP/1.1 and HTTP/2) and headless Chromium.

mod common;
use common::*;
use ometascan_testkit::cicap::{CIcap, THREAT};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the backend does for a path: the bytes it writes, and whether it then stays silent
/// for a while before closing (a backend that dies mid-body closes at once).
#[derive(Clone)]
struct Answer {
    bytes: Vec<u8>,
}

/// A backend that answers each path with exact bytes, then closes the connection.
fn raw_backend(answers: HashMap<String, Answer>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let answers = Arc::new(answers);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let answers = answers.clone();
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 16384 {
                    match conn.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let line = String::from_utf8_lossy(&head).into_owned();
                let path = line.split(' ').nth(1).unwrap_or("/").to_string();
                if let Some(a) = answers.get(&path) {
                    let _ = conn.write_all(&a.bytes);
                }
                let _ = conn.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    port
}

fn response(status_line: &str, fields: &str, body: &[u8]) -> Vec<u8> {
    let mut v = format!(
        "{status_line}\r\n{fields}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    v.extend_from_slice(body);
    v
}

fn chunked(status_line: &str, fields: &str, body: &[u8]) -> Vec<u8> {
    let mut v = format!("{status_line}\r\n{fields}Transfer-Encoding: chunked\r\n\r\n").into_bytes();
    for piece in body.chunks(700) {
        v.extend_from_slice(format!("{:x};ext=1\r\n", piece.len()).as_bytes());
        v.extend_from_slice(piece);
        v.extend_from_slice(b"\r\n");
    }
    v.extend_from_slice(b"0\r\nX-Trailer: 1\r\n\r\n");
    v
}

/// `pzstd`'s output: each frame behind a skippable frame that gives its size.
fn pzstd(data: &[u8]) -> Vec<u8> {
    let dir = std::env::temp_dir().join(format!("ometascan-pzstd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("in");
    std::fs::write(&input, data).unwrap();
    let out = dir.join("in.zst");
    let _ = std::fs::remove_file(&out);
    let st = Command::new("pzstd")
        .args(["-q", "-p", "2"])
        .arg(&input)
        .arg("-o")
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    let v = std::fs::read(&out).unwrap();
    assert_eq!(
        v[1..4],
        [0x2a, 0x4d, 0x18],
        "pzstd begins with a skippable frame"
    );
    v
}

/// A text payload (so that Chromium renders it), infected or clean.
fn payload(bad: bool) -> Vec<u8> {
    let mut v = b"a text file served to the client\n".repeat(40);
    if bad {
        v.extend_from_slice(EICAR);
    } else {
        v.extend_from_slice(b"nothing to see here");
    }
    v.extend_from_slice(b"\nthe end\n");
    v
}

/// Every backend answer of the test, by path (`bad`/`clean` twins).
fn answers() -> HashMap<String, Answer> {
    let mut m = HashMap::new();
    let mut add = |path: String, bytes: Vec<u8>| {
        m.insert(path, Answer { bytes });
    };
    let text = "Content-Type: text/plain\r\n";
    for (name, bad) in [("bad", true), ("clean", false)] {
        let p = payload(bad);
        let early = b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n".to_vec();
        add(
            format!("/early/{name}"),
            [early.clone(), response("HTTP/1.1 200 OK", text, &p)].concat(),
        );
        // The final response gzip-encoded and chunked: only a decoded reading finds it.
        add(
            format!("/early-gz/{name}"),
            [
                early.clone(),
                chunked(
                    "HTTP/1.1 200 OK",
                    "Content-Type: text/plain\r\nContent-Encoding: gzip\r\n",
                    &gzip(&p),
                ),
            ]
            .concat(),
        );
        add(
            format!("/continue/{name}"),
            [
                b"HTTP/1.1 100 Continue\r\n\r\n".to_vec(),
                response("HTTP/1.1 200 OK", text, &p),
            ]
            .concat(),
        );
        add(
            format!("/s199/{name}"),
            [
                b"HTTP/1.1 199 Odd\r\n\r\n".to_vec(),
                response("HTTP/1.1 201 Created", text, &p),
            ]
            .concat(),
        );
        add(
            format!("/s600/{name}"),
            response("HTTP/1.1 600 Beyond", text, &p),
        );
        add(
            format!("/s999/{name}"),
            response("HTTP/1.1 999 Far", text, &p),
        );
        add(
            format!("/s203/{name}"),
            response("HTTP/1.1 203 Non-Authoritative", text, &p),
        );
        add(
            format!("/s404/{name}"),
            response("HTTP/1.1 404 Not Found", text, &p),
        );
        add(format!("/ok/{name}"), response("HTTP/1.1 200 OK", text, &p));
        // Status lines nginx does not parse: relayed as HTTP/0.9.
        add(
            format!("/lower/{name}"),
            response("http/1.1 200 OK", text, &p),
        );
        add(
            format!("/glued/{name}"),
            response("HTTP/1.1 200OK", text, &p),
        );
        add(
            format!("/four/{name}"),
            response("HTTP/1.1 2000 OK", text, &p),
        );
        add(
            format!("/v09/{name}"),
            response("HTTP/0.9 200 OK", text, &p),
        );
        add(format!("/none/{name}"), p.clone());
        // pzstd's frames (a skippable frame before each).
        add(
            format!("/pzstd/{name}"),
            response(
                "HTTP/1.1 200 OK",
                "Content-Type: text/plain\r\nContent-Encoding: zstd\r\n",
                &pzstd(&p),
            ),
        );
        // A protocol switch the client asked for.
        add(
            format!("/upgrade/{name}"),
            [b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n".to_vec(), p.clone()].concat(),
        );
    }
    // Backends that promise more than they send, then close.
    let mut cut = b"HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n".to_vec();
    cut.extend_from_slice(&payload(false));
    add("/dies/length".into(), cut);
    let mut cut = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1000\r\n".to_vec();
    cut.extend_from_slice(&payload(false));
    add("/dies/chunked".into(), cut);
    m
}

fn config(scanner: &str, backend: u16) -> String {
    format!(
        "map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}\n\
         server {{ listen 127.0.0.1:%PORT%; http2 on;\n\
           add_header X-Result $ometascan_response_result always;\n\
           location / {{ proxy_pass http://127.0.0.1:{backend}; ometascan_pass {scanner};\n\
             ometascan_methods POST; ometascan_response on;\n\
             proxy_http_version 1.1; proxy_set_header Upgrade $http_upgrade;\n\
             proxy_set_header Connection $connection_upgrade; }}\n\
           location /plain/ {{ proxy_pass http://127.0.0.1:{backend}/;\n\
             proxy_http_version 1.1; proxy_set_header Upgrade $http_upgrade;\n\
             proxy_set_header Connection $connection_upgrade; }}\n\
         }}"
    )
}

/// curl's reading: every status line it saw, then the body of the final response.
struct Curl {
    statuses: Vec<String>,
    body: Vec<u8>,
    ok: bool,
}

fn curl(port: u16, path: &str, h2: bool, extra: &[&str]) -> Curl {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-i", "--max-time", "20"]);
    if h2 {
        cmd.arg("--http2-prior-knowledge");
    } else {
        cmd.arg("--http1.1");
    }
    cmd.args(extra);
    let out = cmd
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .unwrap();
    // -i writes each head (interim ones too), then the body.
    let mut rest = &out.stdout[..];
    let mut statuses = Vec::new();
    while rest.starts_with(b"HTTP/") {
        let end = rest
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|i| i + 4)
            .unwrap_or(rest.len());
        let head = String::from_utf8_lossy(&rest[..end]).into_owned();
        statuses.push(head.lines().next().unwrap_or("").to_string());
        rest = &rest[end..];
    }
    Curl {
        statuses,
        body: rest.to_vec(),
        ok: out.status.success(),
    }
}

fn final_status(c: &Curl) -> u16 {
    c.statuses
        .last()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn has_eicar(b: &[u8]) -> bool {
    b.windows(EICAR.len()).any(|w| w == EICAR)
}

/// What headless Chromium renders for a URL (its DOM).
fn chromium(port: u16, path: &str, profile: &std::path::Path) -> String {
    let out = Command::new("chromium")
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--timeout=10000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const EICAR_TEXT: &str = "EICAR-STANDARD-ANTIVIRUS-TEST-FILE";

#[test]
fn interim_statuses_odd_statuses_and_unparsed_status_lines_are_scanned_or_refused() {
    let double = ScannerDouble::start(Action::EicarAware);
    let backend = raw_backend(answers());
    let n = Nginx::start(&config(&double.url(), backend));
    let port = n.port;

    // Without the module each class hands the client the file: the twin that shows the
    // attack is real (curl over HTTP/1.1 reads past the interim status, and reads any status).
    for path in [
        "/plain/early/bad",
        "/plain/early-gz/bad",
        "/plain/s600/bad",
        "/plain/s999/bad",
    ] {
        let c = curl(port, path, false, &["--compressed"]);
        assert!(has_eicar(&c.body), "{path}: {:?}", c.statuses);
    }

    // Scanned: interim statuses relayed as final (the final response read behind them,
    // decoded), 600 and above, and the 2xx/4xx statuses the default lists.
    for class in [
        "early", "early-gz", "continue", "s199", "s600", "s999", "s203", "s404", "ok", "pzstd",
    ] {
        for h2 in [false, true] {
            let bad = curl(port, &format!("/{class}/bad"), h2, &["--compressed"]);
            assert_eq!(
                final_status(&bad),
                403,
                "{class} h2={h2}: {:?}\n{}",
                bad.statuses,
                n.error_log()
            );
            assert!(
                !has_eicar(&bad.body),
                "{class} h2={h2}: nothing of the file"
            );
        }
        let before = double.received().len();
        let clean = curl(port, &format!("/{class}/clean"), false, &[]);
        assert_eq!(double.received().len(), before + 1, "{class}: scanned");
        assert!(clean.ok, "{class}: {:?}", clean.statuses);
        let want = match class {
            "early-gz" => gzip(&payload(false)),
            "pzstd" => pzstd(&payload(false)),
            _ => payload(false),
        };
        let direct = curl(port, &format!("/plain/{class}/clean"), false, &[]);
        assert_eq!(
            clean.statuses, direct.statuses,
            "{class}: the same heads as without the module"
        );
        assert!(
            clean.body == direct.body,
            "{class}: byte-exact as nginx passes it"
        );
        if class != "early-gz" && class != "pzstd" {
            assert!(clean.body == want, "{class}");
        }
    }
    // The scanner got the final response behind the interim one, decoded.
    let log = n.error_log();
    assert!(!log.contains("[alert]") && !log.contains("[crit]"), "{log}");

    // No status line nginx can parse, a protocol switch: refused (502), nothing sent.
    for class in ["lower", "glued", "four", "v09", "none", "upgrade"] {
        for name in ["bad", "clean"] {
            for h2 in [false, true] {
                if class == "upgrade" && h2 {
                    continue;
                }
                let extra: &[&str] = if class == "upgrade" {
                    &["-H", "Upgrade: websocket", "-H", "Connection: Upgrade"]
                } else {
                    &[]
                };
                let c = curl(port, &format!("/{class}/{name}"), h2, extra);
                assert_eq!(
                    final_status(&c),
                    502,
                    "{class}/{name} h2={h2}: {:?}",
                    c.statuses
                );
                assert!(
                    !has_eicar(&c.body) && !contains(&c.body, b"a text file"),
                    "{class}/{name}"
                );
            }
        }
    }
    let log = n.error_log();
    assert!(
        log.contains(
            "response with status 0 refused: the backend sent no status line nginx could parse"
        ),
        "{log}"
    );
    assert!(
        log.contains("response with status 101 refused: the backend switched protocols"),
        "{log}"
    );
    // Each unparsed class without the module: the client reads the file.
    let c = curl(port, "/plain/lower/bad", false, &["--http0.9"]);
    assert!(has_eicar(&c.body), "{:?}", c.statuses);

    // Headless Chromium over HTTP/1.1: what it renders.
    let profile = std::env::temp_dir().join(format!("ometascan-chromium-{}", std::process::id()));
    for path in ["/plain/early/bad", "/plain/s600/bad"] {
        assert!(
            chromium(port, path, &profile).contains(EICAR_TEXT),
            "{path}: the twin renders the file"
        );
    }
    for path in [
        "/early/bad",
        "/early-gz/bad",
        "/s600/bad",
        "/s999/bad",
        "/s203/bad",
        "/lower/bad",
        "/none/bad",
    ] {
        let dom = chromium(port, path, &profile);
        assert!(!dom.contains(EICAR_TEXT), "{path}: {dom}");
        let page = dom.to_lowercase();
        assert!(
            page.contains("blocked")
                || page.contains("502 bad gateway")
                || page.contains("this page isn"),
            "{path}: the block page or an error: {dom}"
        );
    }
    for path in ["/early/clean", "/s600/clean", "/s203/clean"] {
        let dom = chromium(port, path, &profile);
        assert!(dom.contains("nothing to see here"), "{path}: {dom}");
    }
    let _ = std::fs::remove_dir_all(&profile);
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// How long until the server closes a connection that asked for `path`, and what came.
fn until_closed(port: u16, path: &str) -> (Duration, Vec<u8>) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let t = Instant::now();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    (t.elapsed(), got)
}

#[test]
fn a_backend_that_dies_mid_body_closes_the_client_connection_at_once() {
    let double = ScannerDouble::start(Action::EicarAware);
    let backend = raw_backend(answers());
    let n = Nginx::start(&format!(
        "send_timeout 20s;\n{}",
        config(&double.url(), backend)
    ));
    for path in ["/dies/length", "/dies/chunked"] {
        let (plain, got_plain) = until_closed(n.port, &format!("/plain{path}"));
        assert!(
            got_plain.starts_with(b"HTTP/1.1 200"),
            "plain nginx sent what it had"
        );
        let (held, got) = until_closed(n.port, path);
        assert!(
            held < plain + Duration::from_secs(2) && held < Duration::from_secs(5),
            "{path}: closed after {held:?} (plain nginx: {plain:?})"
        );
        assert!(
            got.starts_with(b"HTTP/1.1 502"),
            "{path}: {}",
            String::from_utf8_lossy(&got)
        );
        assert!(
            !contains(&got, b"a text file"),
            "{path}: nothing of the body"
        );
    }
    assert_eq!(
        double.received().len(),
        0,
        "nothing scanned: the response was cut"
    );
    let log = n.error_log();
    assert!(
        log.contains("the backend's connection ended before the response did"),
        "{log}"
    );
    // Its twin: the whole response passes.
    let c = curl(n.port, "/ok/clean", false, &[]);
    assert!(c.body == payload(false));
}

#[test]
fn an_early_hints_response_is_scanned_by_clamav_behind_the_interim_status() {
    let cicap = CIcap::start();
    let backend = raw_backend(answers());
    let n = Nginx::start(&config(&cicap.url("virus_scan"), backend));
    for class in ["early", "early-gz"] {
        let c = curl(n.port, &format!("/{class}/bad"), false, &[]);
        assert_eq!(
            final_status(&c),
            403,
            "{class}: {:?} {}",
            c.statuses,
            n.error_log()
        );
        assert!(!has_eicar(&c.body));
        assert!(
            String::from_utf8_lossy(&c.body).contains(THREAT) || n.error_log().contains(THREAT)
        );
        let c = curl(n.port, &format!("/{class}/clean"), false, &["--compressed"]);
        assert_eq!(final_status(&c), 200, "{class}: {:?}", c.statuses);
        assert_eq!(c.statuses.len(), 2, "the interim head, then the final one");
        let direct = curl(
            n.port,
            &format!("/plain/{class}/clean"),
            false,
            &["--compressed"],
        );
        assert!(
            c.body == direct.body,
            "{class}: byte-exact as nginx passes it"
        );
        assert!(
            c.body.starts_with(&payload(false)),
            "{class}: the file (curl writes the trailer after it)"
        );
    }
}
