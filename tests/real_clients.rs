//! Real clients are never refused: binary files that start with `{` or `[` sent raw by curl
//! (HTTP/1.1 and HTTP/2), Python requests and headless Chromium; boto3 (current, and a release
//! before 1.36) uploading to moto's S3 server through the module over HTTPS (`aws-chunked`
//! with a checksum trailer) and HTTP; and three benign shapes that were refused (a JSON list
//! of base64 thumbnails, white space gzipped far past any ratio, a zstd frame with a 16 MiB
//! window). Each with its infected twin blocked, and what the backend stored checked.

mod common;
use common::*;
use ometascan_testkit::cicap::CIcap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn work(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ometascan-clients-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Random bytes whose first byte is `first` (what 2 in 256 compressed files look like).
fn binary(len: usize, first: u8, seed: u64) -> Vec<u8> {
    let mut v = random_bytes(len, seed);
    v[0] = first;
    v
}

fn with_eicar(mut v: Vec<u8>, at: usize) -> Vec<u8> {
    v.splice(at..at, EICAR.iter().copied());
    v
}

fn python(venv: &str) -> PathBuf {
    root().join("target/difftest").join(venv).join("bin/python")
}

/// The backend's copy of the request whose target is `target`.
fn stored(backend: &Backend, target: &str) -> Option<(u64, u64)> {
    backend
        .received()
        .iter()
        .find(|r| r.target() == target)
        .map(|r| (r.body_len, r.body_hash))
}

fn curl_upload(port: u16, path: &str, file: &Path, h2: bool, put: bool) -> u16 {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "60",
    ]);
    cmd.arg(if h2 {
        "--http2-prior-knowledge"
    } else {
        "--http1.1"
    });
    if put {
        cmd.arg("-T").arg(file);
    } else {
        cmd.args([
            "-H",
            "Content-Type: application/octet-stream",
            "--data-binary",
        ])
        .arg(format!("@{}", file.display()));
    }
    let out = cmd
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).parse().unwrap_or(0)
}

const PAGE: &str = r#"<!doctype html><html><head><title>waiting</title></head><body><script>
(async () => {
  const out = [];
  for (const name of NAMES) {
    const blob = await (await fetch("/files/" + name)).blob();
    const a = await fetch("/up/chromium-fetch-" + name, {method: "POST", body: new File([blob], name)});
    const xhr = await new Promise(r => { const x = new XMLHttpRequest();
      x.open("POST", "/up/chromium-xhr-" + name); x.onload = () => r(x.status); x.send(blob); });
    out.push(name + ":" + a.status + ":" + xhr);
  }
  document.title = "done " + out.join(" ");
})();
</script></body></html>"#;

#[test]
fn binaries_that_start_like_json_are_never_refused_and_their_infected_twins_are_blocked() {
    let dir = work("binaries");
    let double = ScannerDouble::start(Action::EicarAware);
    let backend = Backend::start();
    let mut names = Vec::new();
    for (i, (len, first)) in [(1usize << 20, b'{'), (5 << 20, b'['), (20 << 20, b'{')]
        .into_iter()
        .enumerate()
    {
        let name = format!("clean-{i}.bin");
        std::fs::write(dir.join(&name), binary(len, first, 40 + i as u64)).unwrap();
        names.push(name);
    }
    let bad = with_eicar(binary(3 << 20, b'{', 50), 1 << 20);
    std::fs::write(dir.join("bad.bin"), &bad).unwrap();
    let quoted: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    let page = PAGE.replace("NAMES", &format!("[{}]", quoted.join(", ")));
    std::fs::write(dir.join("page.html"), page).unwrap();
    let n = Nginx::start(&format!(
        "server {{ listen 127.0.0.1:%PORT%; http2 on; client_max_body_size 100m;\n\
           location /up/ {{ ometascan_pass {}; ometascan_methods POST PUT;\n\
             proxy_pass http://127.0.0.1:{}; }}\n\
           location /files/ {{ alias {}/; }}\n\
         }}",
        double.url(),
        backend.port(),
        dir.display()
    ));
    let check = |target: &str, file: &Path| {
        let want = std::fs::read(file).unwrap();
        assert_eq!(
            stored(&backend, target),
            Some((want.len() as u64, fnv1a(&want))),
            "{target}: byte-exact at the backend\n{}",
            n.error_log()
        );
    };
    for name in &names {
        let file = dir.join(name);
        for (h2, put) in [(false, false), (true, false), (false, true), (true, true)] {
            let target = format!("/up/curl-{h2}-{put}-{name}");
            assert_eq!(
                curl_upload(n.port, &target, &file, h2, put),
                200,
                "{target}: {}",
                n.error_log()
            );
            check(&target, &file);
        }
        let target = format!("/up/requests-{name}");
        let out = Command::new(python("venv"))
            .arg(root().join("tests/clients/upload.py"))
            .arg(format!("http://127.0.0.1:{}{target}", n.port))
            .arg(&file)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "200",
            "{target}"
        );
        check(&target, &file);
    }
    // Headless Chromium: fetch with a File and XHR with a Blob.
    let out = Command::new("chromium")
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.join("chromium").display()
        ))
        .args(["--virtual-time-budget=60000", "--dump-dom"])
        .arg(format!("http://127.0.0.1:{}/files/page.html", n.port))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    for name in &names {
        assert!(dom.contains(&format!("{name}:200:200")), "{name}: {dom}");
        for how in ["fetch", "xhr"] {
            check(&format!("/up/chromium-{how}-{name}"), &dir.join(name));
        }
    }
    assert!(!n.error_log().contains("refused"), "{}", n.error_log());
    // The infected twin, sent the same ways: blocked, nothing at the backend.
    let file = dir.join("bad.bin");
    for (h2, put) in [(false, false), (true, true)] {
        let target = format!("/up/bad-{h2}-{put}");
        assert_eq!(curl_upload(n.port, &target, &file, h2, put), 403);
        assert_eq!(stored(&backend, &target), None);
    }
}

/// A JSON list of base64 thumbnails (more strings than are scanned alone), one of them
/// infected in the twin, late in the list.
fn thumbnails(infected: bool) -> Vec<u8> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut items = Vec::new();
    for i in 0..1500u64 {
        let mut img = random_bytes(4500, 1000 + i);
        if infected && i == 1400 {
            img = EICAR.to_vec();
        }
        items.push(format!(
            "{{\"id\": {i}, \"thumb\": \"{}\"}}",
            b64.encode(&img)
        ));
    }
    format!("{{\"thumbnails\": [{}]}}", items.join(", ")).into_bytes()
}

/// `zstd --long=24`: a frame whose window is 16 MiB.
fn zstd_long(data: &[u8], dir: &Path) -> Vec<u8> {
    let input = dir.join("long.in");
    std::fs::write(&input, data).unwrap();
    let out = dir.join("long.zst");
    let _ = std::fs::remove_file(&out);
    let st = Command::new("zstd")
        .args(["-q", "--long=24", "-3"])
        .arg(&input)
        .arg("-o")
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::read(out).unwrap()
}

#[test]
fn many_json_strings_white_space_gzipped_and_a_wide_zstd_window_pass_and_their_twins_are_blocked() {
    let dir = work("shapes");
    let double = ScannerDouble::start(Action::EicarAware);
    let backend = Backend::start();
    let n = Nginx::start(&format!(
        "server {{ listen 127.0.0.1:%PORT%; client_max_body_size 100m;\n\
           location / {{ ometascan_pass {}; proxy_pass http://127.0.0.1:{}; }}\n\
           location /wide/ {{ ometascan_pass {0}; ometascan_body_limits zstd_window=16m;\n\
             proxy_pass http://127.0.0.1:{1}; }}\n\
         }}",
        double.url(),
        backend.port()
    ));
    let post = |path: &str, headers: &[(&str, &str)], body: &[u8]| {
        client::request(n.port, "POST", path, headers, body).unwrap()
    };
    let json = [("Content-Type", "application/json")];
    let clean = thumbnails(false);
    let r = post("/json/clean", &json, &clean);
    assert_eq!(r.status, 200, "{}", n.error_log());
    assert_eq!(
        stored(&backend, "/json/clean"),
        Some((clean.len() as u64, fnv1a(&clean)))
    );
    let r = post("/json/bad", &json, &thumbnails(true));
    assert_eq!(
        r.status,
        403,
        "the infected thumbnail in an archive: {}",
        n.error_log()
    );
    assert_eq!(stored(&backend, "/json/bad"), None);

    let gz = [("Content-Type", "text/plain"), ("Content-Encoding", "gzip")];
    let spaces = vec![b' '; 2 << 20];
    let packed = gzip(&spaces);
    assert!(packed.len() * 100 < spaces.len(), "past the old ratio rule");
    let r = post("/gz/clean", &gz, &packed);
    assert_eq!(r.status, 200, "{}", n.error_log());
    assert_eq!(
        stored(&backend, "/gz/clean"),
        Some((packed.len() as u64, fnv1a(&packed)))
    );
    let mut bad = spaces.clone();
    bad.extend_from_slice(EICAR);
    let r = post("/gz/bad", &gz, &gzip(&bad));
    assert_eq!(r.status, 403);
    assert_eq!(stored(&backend, "/gz/bad"), None);

    let zs = [
        ("Content-Type", "application/octet-stream"),
        ("Content-Encoding", "zstd"),
    ];
    let content = random_bytes(20 << 20, 77);
    let wide = zstd_long(&content, &dir);
    let r = post("/narrow", &zs, &wide);
    assert_eq!(r.status, 413, "a 4xx by default");
    assert_eq!(stored(&backend, "/narrow"), None);
    let log = n.error_log();
    assert!(log.contains("zstd_window="), "the reason is named: {log}");
    let r = post("/wide/clean", &zs, &wide);
    assert_eq!(
        r.status,
        200,
        "accepted once the operator raises the cap: {}",
        n.error_log()
    );
    assert_eq!(
        stored(&backend, "/wide/clean"),
        Some((wide.len() as u64, fnv1a(&wide)))
    );
    let r = post(
        "/wide/bad",
        &zs,
        &zstd_long(&with_eicar(content, 12 << 20), &dir),
    );
    assert_eq!(r.status, 403);
    assert_eq!(stored(&backend, "/wide/bad"), None);
    // Malformed aws-chunked framing: 400 with the reason, nothing forwarded.
    let aws = [
        ("Content-Encoding", "aws-chunked"),
        ("x-amz-decoded-content-length", "3"),
    ];
    let r = post(
        "/aws/bad-framing",
        &aws,
        b"3;chunk-signature=ab\r\nabcd\r\n0\r\n\r\n",
    );
    assert_eq!(r.status, 400);
    assert_eq!(stored(&backend, "/aws/bad-framing"), None);
    assert!(
        n.error_log().contains("the aws-chunked body is malformed"),
        "{}",
        n.error_log()
    );
    let r = post(
        "/aws/good",
        &aws,
        b"3;chunk-signature=ab\r\nabc\r\n0;chunk-signature=cd\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    let check = nginx::check_http(
        "server { listen 127.0.0.1:%PORT%; location / { ometascan_body_limits zstd_window=1g; } }",
    );
    assert!(
        !check.ok && check.output.contains("zstd_window=1g"),
        "{}",
        check.output
    );
}

/// moto's S3 server.
fn moto() -> Served {
    let port = nginx::free_port();
    let mut cmd = Command::new(root().join("target/difftest/s3new/bin/moto_server"));
    cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
    Served::start(cmd, port)
}

#[test]
fn boto3_uploads_to_an_s3_server_through_the_module_over_https_and_http() {
    let dir = work("s3");
    let moto = moto();
    let cicap = CIcap::start();
    let ca = ometascan_testkit::tls::ca("test CA");
    let cert = ometascan_testkit::tls::server(&["127.0.0.1", "localhost"], Some(&ca), false);
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), cert.key.serialize_pem()).unwrap();
    let tls_port = nginx::free_port();
    let n = Nginx::start(&format!(
        "server {{ listen 127.0.0.1:%PORT%; listen 127.0.0.1:{tls_port} ssl;\n\
           ssl_certificate {d}/cert.pem; ssl_certificate_key {d}/key.pem;\n\
           client_max_body_size 100m;\n\
           location / {{ ometascan_pass {scanner}; ometascan_methods PUT POST;\n\
             proxy_pass http://127.0.0.1:{moto}; proxy_set_header Host $http_host;\n\
             proxy_http_version 1.1; }}\n\
         }}",
        d = dir.display(),
        scanner = cicap.url("virus_scan"),
        moto = moto.port,
    ));
    let direct = format!("http://127.0.0.1:{}", moto.port);
    // EICAR straddles the 1 MiB boundary where botocore cuts its aws-chunked chunks: it is
    // whole only in the decoded body.
    let clean = random_bytes(12 << 20, 90);
    let bad = with_eicar(random_bytes(12 << 20, 91), (1 << 20) - 20);
    std::fs::write(dir.join("clean.bin"), &clean).unwrap();
    std::fs::write(dir.join("bad.bin"), &bad).unwrap();
    let mut versions = Vec::new();
    for venv in ["s3new", "s3old"] {
        for (scheme, port) in [("https", tls_port), ("http", n.port)] {
            for mode in ["put", "multipart"] {
                for name in ["clean", "bad"] {
                    let key = format!("{venv}-{scheme}-{mode}-{name}");
                    let out = Command::new(python(venv))
                        .arg(root().join("tests/clients/s3.py"))
                        .arg(format!("{scheme}://127.0.0.1:{port}"))
                        .arg(&direct)
                        .arg(dir.join("ca.pem"))
                        .arg("bucket")
                        .arg(&key)
                        .arg(dir.join(format!("{name}.bin")))
                        .arg(mode)
                        .output()
                        .unwrap();
                    let text = String::from_utf8_lossy(&out.stdout).into_owned();
                    assert!(
                        out.status.success(),
                        "{key}: {text}{}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                    let field = |f: &str| {
                        text.split(&format!("\"{f}\": ")).nth(1).map(|r| {
                            r.split([',', '}'])
                                .next()
                                .unwrap_or("")
                                .trim()
                                .trim_matches('"')
                                .to_string()
                        })
                    };
                    versions.push(field("botocore").unwrap_or_default());
                    if name == "clean" {
                        assert_eq!(
                            field("uploaded").as_deref(),
                            Some("true"),
                            "{key}: {text}\n{}",
                            n.error_log()
                        );
                        assert_eq!(
                            field("stored_sha256"),
                            field("sha256"),
                            "{key}: stored byte-exact"
                        );
                    } else {
                        assert_eq!(field("uploaded").as_deref(), Some("false"), "{key}: {text}");
                        assert_eq!(
                            field("stored_sha256").as_deref(),
                            Some("null"),
                            "{key}: nothing stored"
                        );
                    }
                }
            }
        }
    }
    let log = n.error_log();
    assert!(!log.contains("cannot be decoded"), "{log}");
    assert!(log.contains("request blocked by the scanner"), "{log}");
    // The two releases: one that sends aws-chunked over HTTPS, one before it.
    let minor = |v: &str| {
        v.split('.')
            .nth(1)
            .and_then(|m| m.parse::<u32>().ok())
            .unwrap_or(0)
    };
    assert!(versions.iter().any(|v| minor(v) >= 36), "{versions:?}");
    assert!(versions.iter().any(|v| minor(v) < 36), "{versions:?}");
}
