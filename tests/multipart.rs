//! Scanning what the backend will see: the files of a multipart form, each as one object.

mod common;
use common::*;
use ometascan_testkit::cicap::CIcap;

const BOUNDARY: &str = "----ometascanFormBoundary7MA4YWxkTrZu0gW";

/// One part of a form: name, file name, content type, data.
type FormPart<'a> = (&'a str, Option<&'a str>, Option<&'a str>, &'a [u8]);

/// A form as curl -F / a browser sends it.
fn form(parts: &[FormPart]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, filename, ct, data) in parts {
        out.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        let cd = match filename {
            Some(f) => {
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\n")
            }
            None => format!("Content-Disposition: form-data; name=\"{name}\"\r\n"),
        };
        out.extend_from_slice(cd.as_bytes());
        if let Some(ct) = ct {
            out.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    out
}

fn post_form(port: u16, path: &str, body: &[u8]) -> Response {
    let ct = format!("multipart/form-data; boundary={BOUNDARY}");
    client::request(port, "POST", path, &[("Content-Type", &ct)], body).unwrap()
}

fn cicap_setup(extra: &str) -> (Nginx, Backend, CIcap) {
    let cicap = CIcap::start();
    let backend = Backend::start();
    let http = format!(
        "server {{ listen 127.0.0.1:%PORT%;\n\
           location / {{ ometascan_pass {}; proxy_pass http://127.0.0.1:{}; {extra} }} }}",
        cicap.url("virus_scan"),
        backend.port(),
    );
    (Nginx::start(&http), backend, cicap)
}

#[test]
fn a_gzipped_eicar_file_in_a_form_is_blocked_by_c_icap_and_clamav() {
    let gz = gzip(EICAR);
    let body = form(&[
        ("title", None, None, b"holiday pictures"),
        ("file", Some("eicar.gz"), Some("application/gzip"), &gz),
    ]);
    let (n, backend, _cicap) = cicap_setup("");
    let r = post_form(n.port, "/upload", &body);
    assert_eq!(r.status, 403, "{}", n.error_log());
    assert!(r.text().contains("VIRUS FOUND"), "{}", r.text());
    assert!(backend.received().is_empty());
    let log = n.error_log();
    assert!(
        log.contains("in field \"file\", file \"eicar.gz\""),
        "{log}"
    );
    // A clean form goes through whole and byte-exact.
    let clean = form(&[
        ("title", None, None, b"holiday pictures"),
        (
            "file",
            Some("beach.gz"),
            Some("application/gzip"),
            &gzip(&random_bytes(50_000, 3)),
        ),
    ]);
    let r = post_form(n.port, "/upload", &clean);
    assert_eq!(r.status, 200, "{}", n.error_log());
    assert_eq!(backend.received()[0].body, clean);
}

#[test]
fn with_multipart_off_the_same_form_passes_which_is_why_the_feature_exists() {
    let gz = gzip(EICAR);
    let body = form(&[("file", Some("eicar.gz"), Some("application/gzip"), &gz)]);
    let (n, backend, _cicap) = cicap_setup("ometascan_multipart off;");
    let r = post_form(n.port, "/upload", &body);
    assert_eq!(
        r.status, 200,
        "ClamAV does not unpack a gzip after a part header"
    );
    assert_eq!(backend.received()[0].body, body);
}

/// nginx scanning through the HTTP double, telling the backend how many objects were scanned.
fn double_setup(action: Action) -> (Nginx, ScannerDouble, Backend) {
    let scanner = ScannerDouble::start(action);
    let backend = Backend::start();
    let http = format!(
        "server {{ listen 127.0.0.1:%PORT%;\n\
           location / {{ ometascan_pass {}; proxy_set_header X-Scan-Parts $ometascan_parts;\n\
           client_max_body_size 300m;\n\
           proxy_pass http://127.0.0.1:{}; }} }}",
        scanner.url(),
        backend.port(),
    );
    (Nginx::start(&http), scanner, backend)
}

#[test]
fn each_file_is_scanned_with_its_own_headers_and_the_fields_together() {
    let (n, scanner, backend) = double_setup(Action::EicarAware);
    let body = form(&[
        ("title", None, None, b"two files"),
        ("a", Some("a.txt"), Some("text/plain"), b"first file"),
        ("b", Some("b.bin"), None, b"second file"),
        ("note", None, None, b"a note"),
    ]);
    let r = post_form(n.port, "/up?x=1", &body);
    assert_eq!(r.status, 200, "{}", n.error_log());
    let got = &backend.received()[0];
    assert_eq!(got.body, body, "the backend gets the form as sent");
    assert_eq!(got.head.header("x-scan-parts"), Some("3"));
    let mut seen = scanner.received();
    seen.sort_by_key(|s| s.body.len());
    assert_eq!(seen.len(), 3);
    for s in &seen {
        assert_eq!(s.target(), "/up?x=1");
        assert_eq!(
            s.head.header("content-length").unwrap(),
            s.body.len().to_string()
        );
    }
    let file_a = seen.iter().find(|s| s.body == b"first file").unwrap();
    assert_eq!(file_a.head.header("content-type"), Some("text/plain"));
    assert_eq!(
        file_a.head.header("content-disposition"),
        Some("form-data; name=\"a\"; filename=\"a.txt\"")
    );
    let file_b = seen.iter().find(|s| s.body == b"second file").unwrap();
    assert_eq!(
        file_b.head.header("content-type"),
        Some("application/octet-stream")
    );
    // The plain fields together, each on a line: text that cannot hide a file.
    let fields = seen
        .iter()
        .find(|s| s.body == b"two files\na note\n")
        .unwrap();
    assert_eq!(fields.head.header("content-type"), Some("text/plain"));
}

#[test]
fn when_only_the_second_file_is_infected_the_form_is_blocked_and_the_part_named() {
    let (n, _scanner, backend) = double_setup(Action::EicarAware);
    let body = form(&[
        ("first", Some("clean.bin"), None, &random_bytes(20_000, 1)),
        ("second", Some("eicar.com"), None, EICAR),
    ]);
    let r = post_form(n.port, "/up", &body);
    assert_eq!(r.status, 403);
    assert!(backend.received().is_empty());
    assert!(
        n.error_log()
            .contains("in field \"second\", file \"eicar.com\""),
        "{}",
        n.error_log()
    );
}

#[test]
fn an_odd_form_is_read_as_the_parsers_read_it_never_scanned_whole() {
    let (n, scanner, backend) = double_setup(Action::EicarAware);
    let mut cases: Vec<Vec<u8>> = Vec::new();
    // No closing delimiter: the last part runs to the end, as PHP reads it.
    let mut cut = form(&[("f", Some("e.com"), None, EICAR)]);
    cut.truncate(cut.len() - (BOUNDARY.len() + 8));
    cases.push(cut);
    // A preamble.
    let mut pre = b"preamble\r\n".to_vec();
    pre.extend_from_slice(&form(&[("f", Some("e.com"), None, EICAR)]));
    cases.push(pre);
    // A part in a transfer encoding no parser decodes: its data as it stands.
    let qp = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"e.com\"\r\n\
         Content-Transfer-Encoding: x-uuencode\r\n\r\n"
    );
    let mut with_eicar = qp.into_bytes();
    with_eicar.extend_from_slice(EICAR);
    with_eicar.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    cases.push(with_eicar);
    // The payload in the epilogue.
    let mut epi = form(&[("a", None, None, b"1")]);
    epi.extend_from_slice(EICAR);
    cases.push(epi);
    for (i, body) in cases.iter().enumerate() {
        let before = scanner.received().len();
        let r = post_form(n.port, "/up", body);
        assert_eq!(r.status, 403, "case {i}: {}", n.error_log());
        let seen = scanner.received_since(before);
        assert!(
            seen.iter().all(|s| s.body != *body),
            "case {i}: never the whole body"
        );
        assert!(
            seen.iter()
                .any(|s| s.body.windows(EICAR.len()).any(|w| w == EICAR)),
            "case {i}: the payload in an object of its own"
        );
    }
    assert!(backend.received().is_empty());
}

/// What parsers would read differently is refused with 400 and logged at info; nothing is
/// forwarded, nothing scanned.
#[test]
fn a_form_that_parsers_split_differently_is_refused() {
    let (n, scanner, backend) = double_setup(Action::EicarAware);
    // `\n--boundary` inside CRLF data: PHP and werkzeug start a part there.
    let hidden = format!(
        "x\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"e.com\"\r\n\r\n"
    );
    let mut data = hidden.into_bytes();
    data.extend_from_slice(EICAR);
    let body = form(&[("a", None, None, &data)]);
    let r = post_form(n.port, "/up", &body);
    assert_eq!(r.status, 400);
    // Two boundary parameters that PHP and the RFC parsers read differently.
    let ct = format!("multipart/form-data; xboundary=K; boundary={BOUNDARY}");
    let r = client::request(n.port, "POST", "/up", &[("Content-Type", &ct)], &form(&[])).unwrap();
    assert_eq!(r.status, 400);
    // Two request Content-Type headers that differ.
    let r = client::request(
        n.port,
        "POST",
        "/up",
        &[
            ("Content-Type", "text/plain"),
            (
                "Content-Type",
                &format!("multipart/form-data; boundary={BOUNDARY}"),
            ),
        ],
        &form(&[("f", Some("e.com"), None, EICAR)]),
    )
    .unwrap();
    assert_eq!(r.status, 400);
    assert!(scanner.received().is_empty());
    assert!(backend.received().is_empty());
    let log = n.error_log();
    assert!(
        log.contains("[info]") && log.contains("request refused with status 400: multipart body: the form mixes CRLF and bare LF line endings"),
        "{log}"
    );
    // The benign twin of the first: the same form without the stray delimiter passes.
    let clean = form(&[("a", None, None, b"x\nno delimiter here")]);
    let r = post_form(n.port, "/up", &clean);
    assert_eq!(r.status, 200);
    assert_eq!(backend.received()[0].body, clean);
}

#[test]
fn a_200_mb_file_part_is_scanned_from_the_temp_file_with_flat_worker_memory() {
    let (n, scanner, backend) = double_setup(Action::Allow);
    let big = random_bytes(200 << 20, 9);
    let body = form(&[
        ("title", None, None, b"a big one"),
        (
            "file",
            Some("big.bin"),
            Some("application/octet-stream"),
            &big,
        ),
    ]);
    drop(big);
    let worker = n.worker();
    let before = nginx::rss_kib(worker);
    let r = post_form(n.port, "/big", &body);
    assert_eq!(r.status, 200, "{}", n.error_log());
    let grown = nginx::rss_kib(worker).saturating_sub(before);
    assert!(grown < 32 * 1024, "worker grew by {grown} KiB");
    let got = &backend.received()[0];
    assert_eq!(got.body_len, body.len() as u64);
    assert_eq!(got.body_hash, fnv1a(&body));
    let seen = scanner.received();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().any(|s| s.body_len == 200 << 20));
}

fn raw_post(port: u16, headers: &[(&str, &str)], body: &[u8]) -> Response {
    client::request(port, "POST", "/up", headers, body).unwrap()
}

fn deflate(data: &[u8]) -> Vec<u8> {
    // zlib framing, as HTTP's "deflate" is.
    let script = "import sys,zlib; sys.stdout.buffer.write(zlib.compress(sys.stdin.buffer.read()))";
    python(script, "", data)
}

fn brotli(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = std::process::Command::new("brotli")
        .arg("-c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("brotli (Debian's package)");
    child.stdin.take().unwrap().write_all(data).unwrap();
    child.wait_with_output().unwrap().stdout
}

#[test]
fn deflate_br_zstd_base64_and_quoted_printable_representations_are_decoded_before_c_icap_and_clamav_see_them(
) {
    let (n, backend, _cicap) = cicap_setup("");
    // Content-Encoding: deflate, and br, of the EICAR file.
    let body = deflate(EICAR);
    let r = raw_post(n.port, &[("Content-Encoding", "deflate")], &body);
    assert_eq!(r.status, 403, "{}", n.error_log());
    let r = raw_post(n.port, &[("Content-Encoding", "br")], &brotli(EICAR));
    assert_eq!(r.status, 403, "{}", n.error_log());
    let r = raw_post(
        n.port,
        &[("Content-Encoding", "zstd")],
        &ometascan_testkit::zstd(EICAR),
    );
    assert_eq!(r.status, 403, "{}", n.error_log());
    // A quoted-printable part: escapes and a soft line break inside the signature.
    let eicar = String::from_utf8_lossy(EICAR).to_string();
    let qp = format!("=58{}=\r\n{}", &eicar[1..30], &eicar[30..]);
    let form_body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"e.txt\"\r\n\
         Content-Transfer-Encoding: quoted-printable\r\n\r\n{qp}\r\n--{BOUNDARY}--\r\n"
    );
    let r = post_form(n.port, "/up", form_body.as_bytes());
    assert_eq!(r.status, 403, "{}", n.error_log());
    // A base64 part of a form.
    let b64 = "WDVPIVAlQEFQWzRcUFpYNTQoUF4pN0NDKTd9JEVJQ0FSLVNUQU5EQVJELUFOVElWSVJVUy1URVNULUZJTEUhJEgrSCo=";
    let form_body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"e.com\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{b64}\r\n--{BOUNDARY}--\r\n"
    );
    let r = post_form(n.port, "/up", form_body.as_bytes());
    assert_eq!(r.status, 403, "{}", n.error_log());
    assert!(backend.received().is_empty());
    // A clean deflated body reaches the backend as the client sent it.
    let clean = deflate(&random_bytes(30_000, 4));
    let r = raw_post(n.port, &[("Content-Encoding", "deflate")], &clean);
    assert_eq!(r.status, 200, "{}", n.error_log());
    assert_eq!(backend.received()[0].body, clean);
    assert_eq!(
        backend.received()[0].head.header("content-encoding"),
        Some("deflate")
    );
}

#[test]
fn a_gzip_encoded_form_is_decoded_then_split() {
    let (n, scanner, backend) = double_setup(Action::EicarAware);
    let inner = form(&[
        ("a", Some("clean.bin"), None, b"clean"),
        ("b", Some("e.com"), None, EICAR),
    ]);
    let ct = format!("multipart/form-data; boundary={BOUNDARY}");
    let r = raw_post(
        n.port,
        &[("Content-Type", &ct), ("Content-Encoding", "gzip")],
        &gzip(&inner),
    );
    assert_eq!(r.status, 403);
    assert!(backend.received().is_empty());
    assert!(scanner.received().iter().any(|s| s.body == EICAR));
}

#[test]
fn a_gzip_bomb_is_refused_quickly_and_an_unknown_coding_fails() {
    let scanner = ScannerDouble::start(Action::Allow);
    let backend = Backend::start();
    // The decoded bytes an operator allows: a bomb stops there, however well it compresses.
    let n = Nginx::start(&format!(
        "server {{ listen 127.0.0.1:%PORT%;\n\
           location / {{ ometascan_pass {}; client_max_body_size 300m;\n\
           ometascan_body_limits decoded=200m;\n\
           proxy_pass http://127.0.0.1:{}; }} }}",
        scanner.url(),
        backend.port(),
    ));
    // 1 GiB of zeros, gzipped to about 1 MB.
    let bomb = std::process::Command::new("sh")
        .args(["-c", "head -c 1073741824 /dev/zero | gzip -1"])
        .output()
        .unwrap()
        .stdout;
    assert!(bomb.len() < 8 << 20, "{}", bomb.len());
    let worker = n.worker();
    let before = nginx::rss_kib(worker);
    let t = std::time::Instant::now();
    let r = raw_post(n.port, &[("Content-Encoding", "gzip")], &bomb);
    assert_eq!(r.status, 413, "{}", n.error_log());
    assert!(t.elapsed() < std::time::Duration::from_secs(20));
    let grown = nginx::rss_kib(worker).saturating_sub(before);
    assert!(grown < 32 * 1024, "worker grew by {grown} KiB");
    assert!(
        n.error_log()
            .contains("the decoded body is over 209715200 bytes"),
        "{}",
        n.error_log()
    );
    let r = raw_post(n.port, &[("Content-Encoding", "compress")], b"\x1f\x9d\x90");
    assert_eq!(r.status, 502);
    // A zstd frame cut after its magic number: no pass either.
    let r = raw_post(n.port, &[("Content-Encoding", "zstd")], b"\x28\xb5\x2f\xfd");
    assert_eq!(r.status, 502);
    assert!(backend.received().is_empty());
    assert!(
        n.error_log().contains("cannot be decoded for scanning"),
        "{}",
        n.error_log()
    );
}

#[test]
fn a_sanitized_answer_for_a_decoded_body_is_a_failure_not_a_mislabelled_forward() {
    let (n, _scanner, backend) = double_setup(Action::Respond {
        status: 200,
        headers: vec![],
        body: b"cleaned".to_vec(),
    });
    let r = raw_post(
        n.port,
        &[("Content-Encoding", "gzip")],
        &gzip(b"some content"),
    );
    assert_eq!(r.status, 502);
    assert!(backend.received().is_empty());
    // Without an encoding the same answer sanitizes, as before.
    let r = raw_post(n.port, &[], b"some content");
    assert_eq!(r.status, 200);
    assert_eq!(backend.received()[0].body, b"cleaned");
}

#[test]
fn a_url_encoded_eicar_field_is_decoded_before_c_icap_and_clamav_see_it() {
    let (n, backend, _cicap) = cicap_setup("");
    let encoded: String = EICAR.iter().map(|b| format!("%{b:02X}")).collect();
    let body = format!("name=report&file={encoded}&ok=1");
    let ct = ("Content-Type", "application/x-www-form-urlencoded");
    let r = raw_post(n.port, &[ct], body.as_bytes());
    assert_eq!(r.status, 403, "{}", n.error_log());
    assert!(
        n.error_log().contains("in the form fields"),
        "{}",
        n.error_log()
    );
    // A clean form goes through as sent.
    let clean = format!("name=report&text={}&ok=1", "a+b%21".repeat(40));
    let r = raw_post(n.port, &[ct], clean.as_bytes());
    assert_eq!(r.status, 200, "{}", n.error_log());
    assert_eq!(backend.received()[0].body, clean.as_bytes());
}

#[test]
fn a_form_of_500_small_fields_is_one_scan() {
    let (n, scanner, backend) = double_setup(Action::EicarAware);
    let parts: Vec<(String, Vec<u8>)> = (0..500)
        .map(|i| (format!("f{i}"), format!("value {i}").into_bytes()))
        .collect();
    let refs: Vec<FormPart> = parts
        .iter()
        .map(|(k, v)| (k.as_str(), None, None, v.as_slice()))
        .collect();
    let body = form(&refs);
    let r = post_form(n.port, "/many", &body);
    assert_eq!(r.status, 200);
    assert_eq!(
        scanner.received().len(),
        1,
        "no file: the form is scanned whole"
    );
    assert_eq!(backend.received()[0].body, body);
}

/// Runs a python3 one-liner with `arg`, `data` on its standard input; its output.
fn python(script: &str, arg: &str, data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = std::process::Command::new("python3")
        .args(["-c", script, arg])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    child.stdin.take().unwrap().write_all(data).unwrap();
    child.wait_with_output().unwrap().stdout
}

/// `{"name": ..., "content": base64}` with `data` as content.
fn json_upload(name: &str, data: &[u8]) -> Vec<u8> {
    let script = "import sys,base64,json; d=sys.stdin.buffer.read(); \
                  sys.stdout.write(json.dumps({'name': sys.argv[1], 'content': base64.b64encode(d).decode()}))";
    python(script, name, data)
}

fn zip_of(name: &str, data: &[u8]) -> Vec<u8> {
    let script = "import sys,io,zipfile; b=io.BytesIO(); z=zipfile.ZipFile(b,'w'); \
                  z.writestr(sys.argv[1], sys.stdin.buffer.read()); z.close(); sys.stdout.buffer.write(b.getvalue())";
    python(script, name, data)
}

#[test]
fn base64_files_in_json_are_decoded_before_c_icap_and_clamav_see_them() {
    let (n, backend, _cicap) = cicap_setup("");
    let ct = ("Content-Type", "application/json");
    for body in [
        json_upload("eicar.com", EICAR),
        json_upload("eicar.zip", &zip_of("eicar.com", EICAR)),
    ] {
        let r = raw_post(n.port, &[ct], &body);
        assert_eq!(r.status, 403, "{}", n.error_log());
    }
    assert!(
        n.error_log().contains("in JSON key \"content\""),
        "{}",
        n.error_log()
    );
    assert!(backend.received().is_empty());
    let clean = json_upload("a.bin", &random_bytes(5000, 8));
    let r = raw_post(n.port, &[ct], &clean);
    assert_eq!(r.status, 200, "{}", n.error_log());
    assert_eq!(backend.received()[0].body, clean);
}

#[test]
fn at_most_four_parts_are_scanned_at_once() {
    let (n, scanner, backend) = double_setup(Action::Delay(
        std::time::Duration::from_millis(300),
        Box::new(Action::Allow),
    ));
    let datas: Vec<Vec<u8>> = (0..10).map(|i| random_bytes(1000 + i, i as u64)).collect();
    let names: Vec<String> = (0..10).map(|i| format!("f{i}.bin")).collect();
    let parts: Vec<FormPart> = (0..10)
        .map(|i| ("file", Some(names[i].as_str()), None, datas[i].as_slice()))
        .collect();
    let r = post_form(n.port, "/ten", &form(&parts));
    assert_eq!(r.status, 200);
    assert_eq!(scanner.received().len(), 10);
    assert_eq!(scanner.max_concurrent(), 4);
    assert_eq!(
        backend.received()[0].head.header("x-scan-parts"),
        Some("10")
    );
}

#[test]
fn the_first_blocked_part_stops_the_other_scans() {
    let slow = || Action::Delay(std::time::Duration::from_secs(3), Box::new(Action::Allow));
    let (n, scanner, backend) = double_setup(Action::Allow);
    scanner.script([slow(), slow(), slow(), Action::block(403, b"part blocked")]);
    let datas: Vec<Vec<u8>> = (0..6).map(|i| random_bytes(500, i)).collect();
    let parts: Vec<FormPart> = datas
        .iter()
        .map(|d| ("file", Some("x.bin"), None, d.as_slice()))
        .collect();
    let t = std::time::Instant::now();
    let r = post_form(n.port, "/six", &form(&parts));
    assert_eq!((r.status, r.text().as_str()), (403, "part blocked"));
    assert!(
        t.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        t.elapsed()
    );
    assert!(backend.received().is_empty());
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(
        scanner.received().len(),
        4,
        "the last two parts were never sent"
    );
}

#[test]
fn tgz_and_bz2_files_in_a_form_are_blocked_by_c_icap_and_clamav() {
    let dir = std::env::temp_dir().join(format!("ometascan-archives-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("eicar.com"), EICAR).unwrap();
    let tgz = std::process::Command::new("tar")
        .args(["czf", "-", "-C"])
        .arg(&dir)
        .arg("eicar.com")
        .output()
        .unwrap()
        .stdout;
    let bz2 = std::process::Command::new("bzip2")
        .args(["-c"])
        .arg(dir.join("eicar.com"))
        .output()
        .unwrap()
        .stdout;
    let _ = std::fs::remove_dir_all(&dir);
    let (n, backend, _cicap) = cicap_setup("");
    for (name, data) in [("eicar.tgz", &tgz), ("eicar.bz2", &bz2)] {
        let body = form(&[("file", Some(name), Some("application/octet-stream"), data)]);
        let r = post_form(n.port, "/upload", &body);
        assert_eq!(r.status, 403, "{name}: {}", n.error_log());
    }
    assert!(backend.received().is_empty());
}

#[test]
fn a_sanitized_part_is_put_back_into_the_form_and_every_other_byte_is_as_sent() {
    let clean = b"the scanner's clean version".to_vec();
    let (n, scanner, backend) = double_setup(Action::SanitizeEicar(clean.clone()));
    let mut infected = random_bytes(3_000, 21);
    infected.extend_from_slice(EICAR);
    let first = random_bytes(5_000, 23);
    let parts = |middle: &[u8]| {
        form(&[
            ("title", None, None, b"a form"),
            ("a", Some("a.bin"), Some("application/octet-stream"), &first),
            (
                "b",
                Some("bad.exe"),
                Some("application/x-msdownload"),
                middle,
            ),
            ("c", Some("c.txt"), Some("text/plain"), b"last file"),
        ])
    };
    let sent = parts(&infected);
    let r = post_form(n.port, "/up", &sent);
    assert_eq!(r.status, 200, "{}", n.error_log());
    // What the backend must get: part b's bytes are the scanner's, its type and name too.
    let mut want = parts(&clean);
    let old = b"filename=\"bad.exe\"\r\nContent-Type: application/x-msdownload";
    let new = b"filename=\"cleaned.txt\"\r\nContent-Type: text/plain";
    let at = want
        .windows(old.len())
        .position(|w| w == old)
        .expect("part b's header");
    want.splice(at..at + old.len(), new.iter().copied());
    let got = &backend.received()[0];
    assert_eq!(
        String::from_utf8_lossy(&got.body),
        String::from_utf8_lossy(&want)
    );
    assert_eq!(
        got.head.header("content-length"),
        Some(want.len().to_string().as_str())
    );
    assert!(got
        .head
        .header("content-type")
        .unwrap()
        .starts_with("multipart/form-data"));
    // Each part was scanned once; the form was not scanned again as a whole.
    assert_eq!(scanner.received().len(), 4);
}

#[test]
fn a_100_mb_form_with_a_sanitized_part_is_rebuilt_from_the_temp_file_with_flat_memory() {
    let clean = b"cleaned".to_vec();
    let (n, _scanner, backend) = double_setup(Action::SanitizeEicar(clean.clone()));
    let big = random_bytes(100 << 20, 25);
    let mut infected = b"macro ".to_vec();
    infected.extend_from_slice(EICAR);
    let parts = |middle: &[u8]| {
        form(&[
            (
                "big",
                Some("big.bin"),
                Some("application/octet-stream"),
                &big,
            ),
            ("bad", Some("bad.doc"), None, middle),
            ("after", None, None, b"a field after it"),
        ])
    };
    let sent = parts(&infected);
    let mut want = parts(&clean);
    let old = b"filename=\"bad.doc\"\r\n";
    let new = b"filename=\"cleaned.txt\"\r\nContent-Type: text/plain\r\n";
    let at = want
        .windows(old.len())
        .rposition(|w| w == old)
        .expect("part header");
    // The scanner's type is added after the part's own fields (the part had none).
    want.splice(at..at + old.len(), new.iter().copied());
    let worker = n.worker();
    let before = nginx::rss_kib(worker);
    let r = post_form(n.port, "/big", &sent);
    assert_eq!(r.status, 200, "{}", n.error_log());
    let grown = nginx::rss_kib(worker).saturating_sub(before);
    assert!(grown < 32 * 1024, "worker grew by {grown} KiB");
    let got = &backend.received()[0];
    assert_eq!(got.body_len, want.len() as u64);
    assert_eq!(got.body_hash, fnv1a(&want));
}

/// Every limit of reading a body refuses (413) rather than scanning less, and the operator can
/// raise it: a form of more parts than `parts=`, more objects than `objects=`.
#[test]
fn over_a_body_limit_the_request_is_refused_and_the_limit_can_be_raised() {
    let scanner = ScannerDouble::start(Action::EicarAware);
    let backend = Backend::start();
    let http = format!(
        "server {{ listen 127.0.0.1:%PORT%;\n\
           location / {{ ometascan_pass {0}; proxy_pass http://127.0.0.1:{1}; }}\n\
           location /tight {{ ometascan_pass {0}; proxy_pass http://127.0.0.1:{1};\n\
             ometascan_body_limits parts=3 objects=2; }}\n\
           location = /status {{ ometascan_status; }} }}",
        scanner.url(),
        backend.port()
    );
    let n = Nginx::start(&http);
    let four = form(&[
        ("a", None, None, b"1"),
        ("b", None, None, b"2"),
        ("c", None, None, b"3"),
        ("d", None, None, b"4"),
    ]);
    let files = form(&[
        ("a", Some("a.bin"), None, b"1"),
        ("b", Some("b.bin"), None, b"2"),
        ("c", Some("c.bin"), None, b"3"),
    ]);
    assert_eq!(post_form(n.port, "/tight", &four).status, 413);
    assert_eq!(post_form(n.port, "/tight", &files).status, 413);
    assert!(backend.received().is_empty());
    let log = n.error_log();
    assert!(
        log.contains("request refused with status 413: multipart body: more than 3 parts"),
        "{log}"
    );
    assert!(log.contains("more than 2 objects to scan"), "{log}");
    let status = client::request(n.port, "GET", "/status", &[], b"").unwrap();
    assert!(
        status
            .text()
            .contains("ometascan_errors_total{kind=\"refused\"} 2"),
        "{}",
        status.text()
    );
    // The same forms under the defaults.
    assert_eq!(post_form(n.port, "/", &four).status, 200);
    assert_eq!(post_form(n.port, "/", &files).status, 200);
    assert_eq!(backend.received().len(), 2);
    assert_eq!(backend.received()[0].body, four);
}

#[test]
fn a_body_that_ends_inside_a_header_block_is_checked_like_any_header_block() {
    let (n, scanner, backend) = double_setup(Action::EicarAware);
    // werkzeug (Flask) ends this block at the bare-CR blank line and hands the gzip over as
    // the file; no other end of the block follows.
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.gz\"\r\r"
    )
    .into_bytes();
    body.extend_from_slice(&gzip(EICAR));
    let r = post_form(n.port, "/up", &body);
    assert_eq!(r.status, 400, "{}", n.error_log());
    assert!(backend.received().is_empty());
    assert!(scanner.received().is_empty());
    assert!(
        n.error_log().contains("a bare CR in a part header block"),
        "{}",
        n.error_log()
    );
    // Its twins: a body cut inside an ordinary header block is still an epilogue, and the
    // well-formed form passes.
    let cut = format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"f\"\r\nX-A: 1");
    let r = post_form(n.port, "/cut", cut.as_bytes());
    assert_eq!(r.status, 200, "{}", n.error_log());
    let clean = form(&[("f", Some("a.gz"), None, &gzip(b"a clean file"))]);
    let r = post_form(n.port, "/clean", &clean);
    assert_eq!(r.status, 200);
    assert_eq!(backend.received().last().unwrap().body, clean);
}

/// Bodies inside bodies: a GraphQL multipart request whose `operations` field holds the file
/// in base64 is blocked, the same request with a clean file passes byte for byte; nested
/// deeper than `depth=` it is refused (413, logged, counted), and `depth=` raises it.
#[test]
fn a_file_in_json_in_a_form_field_is_scanned_to_the_configured_depth() {
    let scanner = ScannerDouble::start(Action::EicarAware);
    let backend = Backend::start();
    let http = format!(
        "server {{ listen 127.0.0.1:%PORT%;\n\
           location / {{ ometascan_pass {0}; proxy_pass http://127.0.0.1:{1}; }}\n\
           location /shallow {{ ometascan_pass {0}; proxy_pass http://127.0.0.1:{1};\n\
             ometascan_body_limits depth=1; }}\n\
           location = /status {{ ometascan_status; }} }}",
        scanner.url(),
        backend.port()
    );
    let n = Nginx::start(&http);
    let operations = |file: &[u8]| {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(file);
        format!(
            r#"{{"query":"mutation ($file: Upload!) {{ upload(file: $file) {{ id }} }}","variables":{{"file":"data:application/octet-stream;base64,{b64}"}}}}"#
        )
    };
    let request = |file: &[u8]| {
        form(&[
            ("operations", None, None, operations(file).as_bytes()),
            ("map", None, None, b"{}"),
        ])
    };
    // The field (depth 1), its JSON strings (2), the base64 decoded (3).
    let r = post_form(n.port, "/", &request(EICAR));
    assert_eq!(r.status, 403, "{}", n.error_log());
    assert!(n
        .error_log()
        .contains("in field \"operations\" > JSON key \"file\" (base64)"));
    let clean = request(b"a clean file, long enough to be taken for one in base64 form.....");
    assert_eq!(post_form(n.port, "/", &clean).status, 200);
    assert_eq!(backend.received().last().unwrap().body, clean);
    // One level: the form is read, the JSON in its field is not, so the request is refused.
    assert_eq!(post_form(n.port, "/shallow", &clean).status, 413);
    assert_eq!(backend.received().len(), 1);
    let log = n.error_log();
    assert!(log.contains("request refused with status 413"), "{log}");
    assert!(log.contains("nested more than 1 deep"), "{log}");
    let status = client::request(n.port, "GET", "/status", &[], b"").unwrap();
    assert!(status
        .text()
        .contains("ometascan_errors_total{kind=\"refused\"} 1"));
}
