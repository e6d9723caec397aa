//! Uploads to nginx itself: WebDAV's `PUT` (and what follows it) in a scanned location, with
//! nginx's own DAV module. The body WebDAV renames into place is the scanned one, in the form
//! WebDAV asks for, and nothing of a blocked upload reaches the disk. And the forms other
//! locations ask nginx for (`client_body_in_file_only`, `client_body_in_single_buffer`) hold
//! for a body the scanner replaced.

mod common;
use common::*;
use ometascan_testkit::Fnv;
use std::path::{Path, PathBuf};
use std::process::Command;

/// nginx serving `/dav/` from `www/` under its prefix with WebDAV, scanned by `scanner`;
/// `extra` goes into the location.
fn dav(scanner: &ScannerDouble, extra: &str) -> (Nginx, PathBuf) {
    let http = format!(
        "server {{ listen 127.0.0.1:%PORT%; http2 on;\n\
           location /dav/ {{ root www; dav_methods PUT DELETE MKCOL COPY MOVE;\n\
             create_full_put_path on; client_body_temp_path body;\n\
             ometascan_pass {}; {extra} }} }}",
        scanner.url(),
    );
    let n = Nginx::start(&http);
    let www = n.prefix.join("www/dav");
    std::fs::create_dir_all(&www).unwrap();
    // The workers (nobody, when the tests run as root) write there.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&www, std::fs::Permissions::from_mode(0o777)).unwrap();
    (n, www)
}

fn read(p: &Path) -> Option<Vec<u8>> {
    std::fs::read(p).ok()
}

/// Files left in nginx's body temp directory (none once every request is over).
fn temp_files(n: &Nginx) -> usize {
    let mut count = 0;
    let mut dirs = vec![n.prefix.join("body")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                dirs.push(e.path());
            } else {
                count += 1;
            }
        }
    }
    count
}

fn curl_h2_put(port: u16, path: &str, file: &Path) -> String {
    let out = Command::new("curl")
        .args(["-s", "--http2-prior-knowledge", "-o", "/dev/null"])
        .args(["-w", "%{http_code} %{http_version}", "-T"])
        .arg(file)
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn webdav_put_with_a_length_chunked_empty_and_over_http2_is_scanned_and_stored_then_copy_move_delete_work(
) {
    let scanner = ScannerDouble::start(Action::EicarAware);
    let (n, www) = dav(&scanner, "");

    // Content-Length.
    let a = random_bytes(300_000, 1);
    let r = client::request(n.port, "PUT", "/dav/a.bin", &[], &a).unwrap();
    assert_eq!(r.status, 201, "{}", n.error_log());
    assert_eq!(read(&www.join("a.bin")), Some(a.clone()));

    // Chunked, in pieces.
    let b = random_bytes(100_000, 2);
    let mut c = Conn::open(n.port).unwrap();
    c.send_raw(b"PUT /dav/sub/b.bin HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    for piece in b.chunks(30_000) {
        c.send_raw(format!("{:x}\r\n", piece.len()).as_bytes())
            .unwrap();
        c.send_raw(piece).unwrap();
        c.send_raw(b"\r\n").unwrap();
    }
    c.send_raw(b"0\r\n\r\n").unwrap();
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 201, "{}", n.error_log());
    assert_eq!(read(&www.join("sub/b.bin")), Some(b.clone()));

    // Empty.
    let r = client::request(n.port, "PUT", "/dav/empty", &[], b"").unwrap();
    assert_eq!(r.status, 201, "{}", n.error_log());
    assert_eq!(read(&www.join("empty")), Some(Vec::new()));

    // HTTP/2.
    let h2 = random_bytes(200_000, 3);
    let src = n.prefix.join("h2.bin");
    std::fs::write(&src, &h2).unwrap();
    assert_eq!(curl_h2_put(n.port, "/dav/h2.bin", &src), "201 2");
    assert_eq!(read(&www.join("h2.bin")), Some(h2.clone()));

    // What was scanned is what was stored: every body with content went to the scanner whole.
    let scanned: Vec<u64> = scanner.received().iter().map(|s| s.body_hash).collect();
    for body in [&a, &b, &h2] {
        assert!(scanned.contains(&fnv1a(body)), "a body went unscanned");
    }

    // Then the rest of WebDAV on what was put.
    let r = client::request(n.port, "GET", "/dav/a.bin", &[], b"").unwrap();
    assert_eq!((r.status, &r.body), (200, &a));
    let dest = [("Destination", "/dav/c.bin")];
    let r = client::request(n.port, "COPY", "/dav/a.bin", &dest, b"").unwrap();
    assert_eq!(r.status, 204, "{}", n.error_log());
    assert_eq!(read(&www.join("c.bin")), Some(a.clone()));
    let dest = [("Destination", "/dav/d.bin")];
    let r = client::request(n.port, "MOVE", "/dav/c.bin", &dest, b"").unwrap();
    assert_eq!(r.status, 204, "{}", n.error_log());
    assert!(read(&www.join("c.bin")).is_none());
    assert_eq!(read(&www.join("d.bin")), Some(a.clone()));
    let r = client::request(n.port, "DELETE", "/dav/d.bin", &[], b"").unwrap();
    assert_eq!(r.status, 204, "{}", n.error_log());
    assert!(read(&www.join("d.bin")).is_none());
    let r = client::request(n.port, "PUT", "/dav/a.bin", &[], b"replaced").unwrap();
    assert_eq!(r.status, 204, "overwritten: {}", n.error_log());
    assert_eq!(read(&www.join("a.bin")), Some(b"replaced".to_vec()));

    assert!(!n.error_log().contains("must be in a file"));
    assert!(wait_for(std::time::Duration::from_secs(3), || temp_files(
        &n
    ) == 0));
}

#[test]
fn a_blocked_webdav_put_creates_no_file_and_leaves_no_temp_file() {
    let scanner = ScannerDouble::start(Action::EicarAware);
    let (n, www) = dav(&scanner, "");
    let r = client::request(n.port, "PUT", "/dav/eicar.com", &[], EICAR).unwrap();
    assert_eq!(r.status, 403);
    assert!(read(&www.join("eicar.com")).is_none(), "no file");
    // An upload over an existing file leaves the file as it was.
    std::fs::write(www.join("kept.txt"), b"before").unwrap();
    let r = client::request(n.port, "PUT", "/dav/kept.txt", &[], EICAR).unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(read(&www.join("kept.txt")), Some(b"before".to_vec()));
    assert!(wait_for(std::time::Duration::from_secs(3), || temp_files(
        &n
    ) == 0));
    // The benign twin is stored.
    let r = client::request(n.port, "PUT", "/dav/kept.txt", &[], b"after").unwrap();
    assert_eq!(r.status, 204, "{}", n.error_log());
    assert_eq!(read(&www.join("kept.txt")), Some(b"after".to_vec()));
    assert_eq!(scanner.received().len(), 3);
}

#[test]
fn a_sanitized_webdav_put_stores_the_scanners_version() {
    let scanner = ScannerDouble::start(Action::SanitizeEicar(b"cleaned by the scanner".to_vec()));
    let (n, www) = dav(&scanner, "");
    let r = client::request(n.port, "PUT", "/dav/up.com", &[], EICAR).unwrap();
    assert_eq!(r.status, 201, "{}", n.error_log());
    assert_eq!(
        read(&www.join("up.com")),
        Some(b"cleaned by the scanner".to_vec())
    );
    assert!(wait_for(std::time::Duration::from_secs(3), || temp_files(
        &n
    ) == 0));
    // Unsanitized, a clean one is stored as sent.
    let r = client::request(n.port, "PUT", "/dav/clean.txt", &[], b"plain text").unwrap();
    assert_eq!(r.status, 201);
    assert_eq!(read(&www.join("clean.txt")), Some(b"plain text".to_vec()));
}

/// `client_body_in_file_only` promises the body in `$request_body_file`: after a sanitized
/// verdict that file holds the scanner's version, not the client's.
#[test]
fn under_client_body_in_file_only_the_request_body_file_holds_the_sanitized_body() {
    let scanner = ScannerDouble::start(Action::SanitizeEicar(b"the scanner's version".to_vec()));
    let backend = Backend::start();
    let http = format!(
        "server {{ listen 127.0.0.1:%PORT%;\n\
           location / {{ ometascan_pass {}; client_body_in_file_only on;\n\
             proxy_set_header X-Body-File $request_body_file;\n\
             proxy_pass http://127.0.0.1:{}; }} }}",
        scanner.url(),
        backend.port()
    );
    let n = Nginx::start(&http);
    let r = client::post(n.port, "/up", EICAR).unwrap();
    assert_eq!(r.status, 200, "{}", n.error_log());
    let got = &backend.received()[0];
    assert_eq!(got.body, b"the scanner's version");
    let file = got
        .head
        .header("x-body-file")
        .expect("a body file")
        .to_string();
    assert_eq!(
        read(Path::new(&file)),
        Some(b"the scanner's version".to_vec())
    );
    // Its benign twin: the client's body in the file, as sent.
    let r = client::post(n.port, "/up", b"harmless").unwrap();
    assert_eq!(r.status, 200);
    let got = &backend.received()[1];
    assert_eq!(got.body, b"harmless");
    let file = got.head.header("x-body-file").unwrap().to_string();
    assert_eq!(read(Path::new(&file)), Some(b"harmless".to_vec()));
}

/// 1 GiB through WebDAV: nginx writes it to its temp file, the scan streams it from there,
/// WebDAV renames it into place; the worker's memory stays flat.
#[test]
fn a_1_gib_webdav_put_is_scanned_and_stored_with_flat_worker_memory() {
    use std::io::Write;
    const SIZE: u64 = 1 << 30;
    let scanner = ScannerDouble::start(Action::Allow);
    let (n, www) = dav(&scanner, "client_max_body_size 2g;");
    let worker = n.worker();
    let before = nginx::rss_kib(worker);
    let mut c = Conn::open(n.port).unwrap();
    c.send_raw(
        format!("PUT /dav/big.bin HTTP/1.1\r\nHost: t\r\nContent-Length: {SIZE}\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    let mut sent = Fnv::default();
    let piece = random_bytes(1 << 20, 7);
    let mut w = std::io::BufWriter::new(c.stream());
    for i in 0..(SIZE >> 20) {
        let mut p = piece.clone();
        p[..8].copy_from_slice(&i.to_le_bytes());
        sent.update(&p);
        w.write_all(&p).unwrap();
    }
    w.flush().unwrap();
    drop(w);
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 201, "{}", n.error_log());
    let grown = nginx::rss_kib(worker).saturating_sub(before);
    assert!(grown < 32 * 1024, "worker grew by {grown} KiB");
    let seen = scanner.received();
    assert_eq!(seen.len(), 1);
    assert_eq!((seen[0].body_len, seen[0].body_hash), (SIZE, sent.finish()));
    let mut stored = Fnv::default();
    let mut f = std::fs::File::open(www.join("big.bin")).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let k = std::io::Read::read(&mut f, &mut buf).unwrap();
        if k == 0 {
            break;
        }
        stored.update(&buf[..k]);
    }
    assert_eq!(stored.finish(), sent.finish());
    std::fs::remove_file(www.join("big.bin")).unwrap();
}

/// `client_body_in_single_buffer`: a form rebuilt around a sanitized part is stored in one
/// buffer (a small body) or in a new temp file (one over `client_body_buffer_size`, as nginx
/// itself would store it), and reaches the backend whole.
#[test]
fn under_client_body_in_single_buffer_a_rebuilt_form_reaches_the_backend_whole() {
    let scanner = ScannerDouble::start(Action::SanitizeEicar(b"CLEANED".to_vec()));
    let backend = Backend::start();
    let http = format!(
        "server {{ listen 127.0.0.1:%PORT%;\n\
           location / {{ ometascan_pass {}; client_body_in_single_buffer on;\n\
             client_body_buffer_size 16k; proxy_pass http://127.0.0.1:{}; }} }}",
        scanner.url(),
        backend.port()
    );
    let n = Nginx::start(&http);
    let form = |text: &[u8]| {
        let mut f = b"--b\r\nContent-Disposition: form-data; name=\"t\"\r\n\r\n".to_vec();
        f.extend_from_slice(text);
        f.extend_from_slice(
            b"\r\n--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"e.com\"\r\n\
              Content-Type: application/octet-stream\r\n\r\n",
        );
        f
    };
    let ct = [("Content-Type", "multipart/form-data; boundary=b")];
    for (i, text) in [random_bytes(1000, 5), random_bytes(100_000, 6)]
        .iter()
        .map(|t| t.iter().map(|b| b'a' + b % 26).collect::<Vec<u8>>())
        .enumerate()
    {
        let mut body = form(&text);
        body.extend_from_slice(EICAR);
        body.extend_from_slice(b"\r\n--b--\r\n");
        let r = client::request(n.port, "POST", "/up", &ct, &body).unwrap();
        assert_eq!(r.status, 200, "{}", n.error_log());
        let got = &backend.received()[i];
        let mut expected = form(&text);
        expected.extend_from_slice(b"CLEANED\r\n--b--\r\n");
        // The part carries the scanner's file name and type.
        let expected = String::from_utf8_lossy(&expected)
            .replace("e.com", "cleaned.txt")
            .replace("application/octet-stream", "text/plain");
        assert_eq!(String::from_utf8_lossy(&got.body), expected, "body {i}");
    }
}
