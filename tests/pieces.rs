//! Files uploaded in pieces (`ometascan_pieces tus`): the tus reference server for Node
//! (`@tus/server` with `@tus/file-store`) behind nginx with the module, driven by tus-js-client
//! (what Uppy runs) and by raw requests. A clean file is assembled byte for byte at the server;
//! a file whose pieces are each clean alone but which carries the EICAR string across a piece
//! boundary is blocked at the piece that completes it, and the server never holds it whole; a
//! piece sent to a second nginx that has not seen the upload's creation is refused, so is a
//! piece of an expired upload.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn node_modules() -> PathBuf {
    root().join("target/difftest/node/node_modules")
}

fn work(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ometascan-pieces-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A directory the workers (`nobody`) can write, as the operator makes the spool.
fn writable(d: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(d).unwrap();
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o777)).unwrap();
}

fn deps() {
    let st = Command::new("bash")
        .arg(root().join("scripts/install-difftest-deps.sh"))
        .status()
        .expect("install-difftest-deps.sh");
    assert!(
        st.success(),
        "the tus server and client could not be installed"
    );
}

/// The tus reference server, storing uploads in `dir`.
fn tus_server(dir: &Path) -> Served {
    let port = nginx::free_port();
    let mut cmd = Command::new("node");
    cmd.arg(root().join("tests/pieces/tus_server.js"))
        .arg(port.to_string())
        .arg(dir)
        .env("NODE_PATH", node_modules());
    Served::start(cmd, port)
}

/// tus-js-client uploading `data` to `endpoint` in pieces of `chunk` bytes: its last line
/// (`success URL` or `error STATUS URL`).
fn tus_upload(endpoint: &str, data: &[u8], chunk: usize, dir: &Path) -> String {
    tus_upload_with(endpoint, data, chunk, dir, "{}")
}

/// tus-js-client with more `options` (JSON).
fn tus_upload_with(endpoint: &str, data: &[u8], chunk: usize, dir: &Path, options: &str) -> String {
    let file = dir.join(format!("upload-{}", data.len()));
    std::fs::write(&file, data).unwrap();
    let out = Command::new("node")
        .arg(root().join("tests/pieces/tus_client.js"))
        .arg(endpoint)
        .arg(&file)
        .arg(chunk.to_string())
        .arg(options)
        .env("NODE_PATH", node_modules())
        .output()
        .expect("node");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// tuspy uploading `data` to `endpoint` in pieces of `chunk` bytes, as [`tus_upload`].
fn tuspy_upload(endpoint: &str, data: &[u8], chunk: usize, dir: &Path) -> String {
    let file = dir.join(format!("tuspy-{}", data.len()));
    std::fs::write(&file, data).unwrap();
    let out = Command::new(root().join("target/difftest/tus/bin/python"))
        .arg(root().join("tests/pieces/tuspy_client.py"))
        .arg(endpoint)
        .arg(&file)
        .arg(chunk.to_string())
        .output()
        .expect("python");
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(!text.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    text
}

/// Whether any of `data`'s windows is the EICAR string.
fn has_eicar(data: &[u8]) -> bool {
    data.windows(EICAR.len()).any(|w| w == EICAR)
}

/// What the server stored for the upload at `url`: the data file of @tus/file-store.
fn stored(store: &Path, url: &str) -> Option<Vec<u8>> {
    let id = url.rsplit('/').next()?;
    std::fs::read(store.join(id)).ok()
}

fn config(scanner: &str, tus: u16, spool: &Path, extra: &str) -> String {
    format!(
        "log_format pieces '$request_method $ometascan_upload_key $ometascan_upload_bytes \
           $ometascan_result';\n\
         server {{ listen 127.0.0.1:%PORT%; client_max_body_size 50m;\n\
           access_log logs/pieces.log pieces;\n\
           location /files {{ ometascan_pass {scanner};\n\
             ometascan_pieces tus spool={} {extra};\n\
             proxy_set_header Host $http_host; proxy_pass http://127.0.0.1:{tus}; }}\n\
           location = /status {{ ometascan_status; }} }}",
        spool.display()
    )
}

/// A file of three 4096-byte pieces whose EICAR string lies across the boundary of the last two.
fn split_eicar() -> Vec<u8> {
    let mut v = random_bytes(3 * 4096, 5);
    let at = 2 * 4096 - EICAR.len() / 2;
    v[at..at + EICAR.len()].copy_from_slice(EICAR);
    v
}

#[test]
fn tus_uploads_are_assembled_and_scanned_whole() {
    deps();
    let w = work("tus");
    let (store, spool) = (w.join("store"), w.join("spool"));
    std::fs::create_dir_all(&store).unwrap();
    writable(&spool);
    let server = tus_server(&store);
    let scanner = ScannerDouble::start(Action::EicarAware);
    let n = Nginx::start(&config(&scanner.url(), server.port, &spool, ""));
    let endpoint = format!("http://127.0.0.1:{}/files/", n.port);

    // The clean twin: assembled byte for byte, in pieces of 4096 bytes.
    let clean = random_bytes(3 * 4096 + 100, 6);
    let r = tus_upload(&endpoint, &clean, 4096, &w);
    let url = r
        .strip_prefix("success ")
        .unwrap_or_else(|| panic!("{r}\n{}", n.error_log()));
    assert_eq!(stored(&store, url).as_deref(), Some(clean.as_slice()));

    // Each piece is clean alone; the file is not.
    let infected = split_eicar();
    for piece in infected.chunks(4096) {
        assert!(!piece.windows(EICAR.len()).any(|w| w == EICAR));
    }
    let r = tus_upload(&endpoint, &infected, 4096, &w);
    assert!(r.starts_with("error 403"), "{r}\n{}", n.error_log());
    let url = r.rsplit(' ').next().unwrap();
    let held = stored(&store, url).unwrap_or_default();
    assert!(
        held.len() < infected.len(),
        "the server holds {} of {} bytes",
        held.len(),
        infected.len()
    );
    assert!(!held.windows(EICAR.len()).any(|w| w == EICAR));
    let log = n.error_log();
    assert!(log.contains("request blocked by the scanner"), "{log}");
    // The upload stays blocked: its last piece again is refused.
    let key = url.split("/files/").nth(1).unwrap();
    let offset = held.len().to_string();
    let r = client::request(
        n.port,
        "PATCH",
        &format!("/files/{key}"),
        &[
            ("Tus-Resumable", "1.0.0"),
            ("Upload-Offset", &offset),
            ("Content-Type", "application/offset+octet-stream"),
        ],
        &infected[held.len()..],
    )
    .unwrap();
    assert_eq!(r.status, 403, "{}", n.error_log());
    assert!(stored(&store, url).unwrap_or_default().len() < infected.len());
    // What the access log and the status page say of it.
    // nginx writes a request's log line after its answer: wait for the last one.
    let access = || std::fs::read_to_string(n.prefix.join("logs/pieces.log")).unwrap_or_default();
    let path = format!("/files/{key}");
    let blocked = format!("PATCH {path} {} blocked", infected.len());
    let refused = format!("PATCH {path} - error");
    assert!(
        wait_for(Duration::from_secs(5), || {
            let a = access();
            a.contains(&blocked) && a.contains(&refused)
        }),
        "{}",
        access()
    );
    let status = client::request(n.port, "GET", "/status", &[], b"").unwrap();
    let text = status.text();
    for line in [
        "ometascan_pieces_total{event=\"completed\"} 1",
        "ometascan_pieces_total{event=\"blocked\"} 1",
        "ometascan_pieces_total{event=\"refused\"} 1",
    ] {
        assert!(text.contains(line), "{line}\n{text}");
    }
}

/// A tus creation through `port`; the upload's path.
#[test]
fn tus_creations_with_data_and_other_clients_are_assembled() {
    deps();
    let w = work("creation");
    let (store, spool) = (w.join("store"), w.join("spool"));
    std::fs::create_dir_all(&store).unwrap();
    writable(&spool);
    let server = tus_server(&store);
    let scanner = ScannerDouble::start(Action::EicarAware);
    let n = Nginx::start(&config(&scanner.url(), server.port, &spool, ""));
    let endpoint = format!("http://127.0.0.1:{}/files/", n.port);
    let clean = random_bytes(3 * 4096 + 100, 16);
    let infected = split_eicar();
    type Upload = Box<dyn Fn(&[u8]) -> String>;
    let (e, d) = (endpoint.clone(), w.clone());
    let with_data: Upload = Box::new(move |data| {
        tus_upload_with(&e, data, 4096, &d, r#"{"uploadDataDuringCreation": true}"#)
    });
    let (e, d) = (endpoint.clone(), w.clone());
    let tuspy: Upload = Box::new(move |data| tuspy_upload(&e, data, 4096, &d));
    for (name, upload) in [("creation-with-upload", with_data), ("tuspy", tuspy)] {
        // The clean twin, byte for byte at the server.
        let r = upload(&clean);
        let url = r
            .strip_prefix("success ")
            .unwrap_or_else(|| panic!("{name}: {r}\n{}", n.error_log()));
        assert_eq!(
            stored(&store, url).as_deref(),
            Some(clean.as_slice()),
            "{name}"
        );
        // The first piece went with the creation; the last one completes the infected file.
        let r = upload(&infected);
        assert!(r.starts_with("error 403"), "{name}: {r}\n{}", n.error_log());
        let url = r.rsplit(' ').next().unwrap();
        let held = stored(&store, url).unwrap_or_default();
        assert!(held.len() < infected.len() && !has_eicar(&held), "{name}");
    }
    // Nothing left of the creations' first bytes, nor of the completed uploads: the two
    // blocked ones are kept to refuse their later pieces.
    let names: Vec<String> = std::fs::read_dir(&spool)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 4, "two uploads, two files each: {names:?}");
    let status = client::request(n.port, "GET", "/status", &[], b"").unwrap();
    assert!(
        status.text().contains(&format!(
            "ometascan_uploads_in_progress{{spool=\"{}\"}} 2",
            spool.display()
        )),
        "{}",
        status.text()
    );
}

/// A tus server with the concatenation extension (resumable-upload, from PyPI), storing
/// uploads in `dir`.
fn tus_concat_server(dir: &Path) -> Served {
    let port = nginx::free_port();
    let mut cmd = Command::new(root().join("target/difftest/tus/bin/python"));
    cmd.args(["-m", "resumable_upload", "serve", "--host", "127.0.0.1"])
        .args(["--port", &port.to_string(), "--base-path", "/files"])
        .arg("--upload-dir")
        .arg(dir)
        .arg("--db-path")
        .arg(dir.join("uploads.db"))
        .args(["--log-level", "WARNING"]);
    Served::start(cmd, port)
}

#[test]
fn tus_concatenation_is_assembled_from_its_partial_uploads() {
    deps();
    let w = work("concat");
    let (store, spool) = (w.join("store"), w.join("spool"));
    std::fs::create_dir_all(&store).unwrap();
    writable(&spool);
    let server = tus_concat_server(&store);
    let scanner = ScannerDouble::start(Action::EicarAware);
    let n = Nginx::start(&config(&scanner.url(), server.port, &spool, ""));
    let endpoint = format!("http://127.0.0.1:{}/files", n.port);
    let parallel = r#"{"parallelUploads": 2}"#;
    // The clean twin: two partial uploads sent at once, then the final one.
    let clean = random_bytes(4 * 4096, 17);
    let r = tus_upload_with(&endpoint, &clean, 4096, &w, parallel);
    let url = r
        .strip_prefix("success ")
        .unwrap_or_else(|| panic!("{r}\n{}", n.error_log()));
    assert_eq!(stored(&store, url).as_deref(), Some(clean.as_slice()));
    // The EICAR string across the two partial uploads: each is clean, the final one is not.
    let mut infected = random_bytes(4 * 4096, 18);
    let at = 2 * 4096 - EICAR.len() / 2;
    infected[at..at + EICAR.len()].copy_from_slice(EICAR);
    let r = tus_upload_with(&endpoint, &infected, 4096, &w, parallel);
    assert!(r.starts_with("error 403"), "{r}\n{}", n.error_log());
    for entry in std::fs::read_dir(&store).unwrap() {
        let held = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!has_eicar(&held), "the server never holds the file");
    }
    // A final upload of partial uploads the module has not seen: refused.
    let r = client::request(
        n.port,
        "POST",
        "/files",
        &[
            ("Tus-Resumable", "1.0.0"),
            ("Upload-Concat", "final;/files/nosuch1 /files/nosuch2"),
        ],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 409, "{}", n.error_log());
}

fn create(port: u16, len: usize) -> String {
    let len = len.to_string();
    let r = client::request(
        port,
        "POST",
        "/files/",
        &[("Tus-Resumable", "1.0.0"), ("Upload-Length", &len)],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 201);
    let loc = r.header("location").expect("Location").to_string();
    format!("/files/{}", loc.rsplit('/').next().unwrap())
}

fn patch(port: u16, path: &str, offset: usize, data: &[u8]) -> u16 {
    let offset = offset.to_string();
    client::request(
        port,
        "PATCH",
        path,
        &[
            ("Tus-Resumable", "1.0.0"),
            ("Upload-Offset", &offset),
            ("Content-Type", "application/offset+octet-stream"),
        ],
        data,
    )
    .unwrap()
    .status
}

#[test]
fn pieces_the_module_has_not_seen_are_refused() {
    deps();
    let w = work("unseen");
    let (store, spool_a, spool_b) = (w.join("store"), w.join("a"), w.join("b"));
    std::fs::create_dir_all(&store).unwrap();
    writable(&spool_a);
    writable(&spool_b);
    let server = tus_server(&store);
    let scanner = ScannerDouble::start(Action::EicarAware);
    let a = Nginx::start(&config(&scanner.url(), server.port, &spool_a, "expire=2s"));
    let b = Nginx::start(&config(&scanner.url(), server.port, &spool_b, ""));
    let infected = split_eicar();
    // The first piece through one nginx, the rest through another that keeps its own spool:
    // the file cannot be assembled there, so the piece is refused.
    let path = create(a.port, infected.len());
    assert_eq!(patch(a.port, &path, 0, &infected[..8192]), 204);
    assert_eq!(patch(b.port, &path, 8192, &infected[8192..]), 409);
    assert!(
        b.error_log().contains("cannot be assembled"),
        "{}",
        b.error_log()
    );
    let held = std::fs::read(store.join(path.rsplit('/').next().unwrap())).unwrap();
    assert_eq!(held.len(), 8192);
    // Through the first nginx it is blocked.
    assert_eq!(patch(a.port, &path, 8192, &infected[8192..]), 403);
    // Its clean twin through two nginx sharing one spool completes.
    let c = Nginx::start(&config(&scanner.url(), server.port, &spool_a, ""));
    let clean = random_bytes(2 * 4096, 9);
    let path = create(a.port, clean.len());
    assert_eq!(patch(a.port, &path, 0, &clean[..4096]), 204);
    assert_eq!(patch(c.port, &path, 4096, &clean[4096..]), 204);
    let held = std::fs::read(store.join(path.rsplit('/').next().unwrap())).unwrap();
    assert_eq!(held, clean);
    // A reload keeps the uploads in progress: they are on disk.
    let path = create(a.port, clean.len());
    assert_eq!(patch(a.port, &path, 0, &clean[..4096]), 204);
    a.reload();
    assert_eq!(
        patch(a.port, &path, 4096, &clean[4096..]),
        204,
        "{}",
        a.error_log()
    );
    // An expired upload: its copy is gone, the piece is refused.
    let path = create(a.port, clean.len());
    assert_eq!(patch(a.port, &path, 0, &clean[..4096]), 204);
    std::thread::sleep(Duration::from_millis(3500));
    assert_eq!(patch(a.port, &path, 4096, &clean[4096..]), 409);
    let status = client::request(a.port, "GET", "/status", &[], b"").unwrap();
    assert!(
        status
            .text()
            .contains("ometascan_errors_total{kind=\"refused\"} 1"),
        "{}",
        status.text()
    );
}

/// Apache with mod_dav serving `root` (a `/dav/` directory inside it), which writes a `PUT`'s
/// `Content-Range` into the file.
struct Apache(PathBuf, u16);

impl Apache {
    fn start(dir: &Path) -> Apache {
        let port = nginx::free_port();
        writable(&dir.join("dav"));
        let conf = format!(
            "ServerRoot {d}\nDefaultRuntimeDir {d}\nListen 127.0.0.1:{port}\n\
             LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so\n\
             LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so\n\
             LoadModule dav_module /usr/lib/apache2/modules/mod_dav.so\n\
             LoadModule dav_fs_module /usr/lib/apache2/modules/mod_dav_fs.so\n\
             PidFile {d}/httpd.pid\nErrorLog {d}/error.log\nUser nobody\nGroup nogroup\n\
             ServerName localhost\nDavLockDB {d}/lockdb\nDocumentRoot {d}\n\
             <Directory {d}/dav>\n  Dav On\n  Require all granted\n</Directory>\n",
            d = dir.display()
        );
        writable(dir);
        std::fs::write(dir.join("httpd.conf"), conf).unwrap();
        let st = Command::new("/usr/sbin/apache2")
            .args([
                "-f",
                &dir.join("httpd.conf").to_string_lossy(),
                "-k",
                "start",
            ])
            .status()
            .expect("apache2 (scripts/install-deps.sh installs it)");
        assert!(st.success());
        assert!(wait_for(Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        }));
        Apache(dir.to_path_buf(), port)
    }
}

impl Drop for Apache {
    fn drop(&mut self) {
        let _ = Command::new("/usr/sbin/apache2")
            .args([
                "-f",
                &self.0.join("httpd.conf").to_string_lossy(),
                "-k",
                "stop",
            ])
            .status();
    }
}

/// curl sending `data` as the range at `offset` of a file of `total` bytes.
fn curl_range(port: u16, path: &str, offset: usize, data: &[u8], total: usize, dir: &Path) -> u16 {
    let file = dir.join("piece");
    std::fs::write(&file, data).unwrap();
    let range = format!(
        "Content-Range: bytes {offset}-{}/{total}",
        offset + data.len() - 1
    );
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            "Expect:",
            "-H",
            &range,
        ])
        .arg("-T")
        .arg(&file)
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).parse().unwrap_or(0)
}

#[test]
fn content_range_pieces_are_scanned_in_the_file_as_it_stands() {
    let w = work("range");
    let spool = w.join("spool");
    writable(&spool);
    let apache = Apache::start(&w.join("apache"));
    let served = |name: &str| std::fs::read(w.join("apache/dav").join(name)).unwrap_or_default();
    let scanner = ScannerDouble::start(Action::EicarAware);
    let n = Nginx::start(&format!(
        "server {{ listen 127.0.0.1:%PORT%; client_max_body_size 50m;\n\
           location /dav/ {{ ometascan_pass {};\n\
             ometascan_pieces content_range spool={};\n\
             proxy_pass http://127.0.0.1:{}; }} }}",
        scanner.url(),
        spool.display(),
        apache.1
    ));
    // The clean twin, in three ranges: the file Apache serves is the file.
    let clean = random_bytes(3 * 4096, 7);
    for (i, piece) in clean.chunks(4096).enumerate() {
        let st = curl_range(n.port, "/dav/clean.bin", i * 4096, piece, clean.len(), &w);
        assert!(st == 201 || st == 204, "{st}\n{}", n.error_log());
    }
    assert_eq!(served("clean.bin"), clean);
    // Each range clean alone, the file as it stands after the second is not: that range is
    // blocked, and Apache's file never holds the string.
    let infected = split_eicar();
    let total = infected.len();
    assert_eq!(
        curl_range(n.port, "/dav/x.bin", 0, &infected[..4096], total, &w),
        201
    );
    assert_eq!(
        curl_range(n.port, "/dav/x.bin", 4096, &infected[4096..8192], total, &w),
        204
    );
    let st = curl_range(n.port, "/dav/x.bin", 8192, &infected[8192..], total, &w);
    assert_eq!(st, 403, "{}", n.error_log());
    let held = served("x.bin");
    assert_eq!(held.len(), 8192);
    assert!(!held.windows(EICAR.len()).any(|w| w == EICAR));
    // The copy went with the block: a range past the start of a file the module holds no
    // copy of is refused, and so is one past the end of the copy.
    assert_eq!(
        curl_range(n.port, "/dav/x.bin", 8192, &infected[8192..], total, &w),
        409
    );
    assert_eq!(
        curl_range(n.port, "/dav/y.bin", 4096, b"late", 8192, &w),
        409
    );
    assert_eq!(curl_range(n.port, "/dav/y.bin", 0, b"head", 8192, &w), 201);
    assert_eq!(
        curl_range(n.port, "/dav/y.bin", 100, b"hole", 8192, &w),
        409
    );
    assert_eq!(served("y.bin"), b"head");
}

#[test]
fn a_gzip_file_cut_in_two_ranges_is_scanned_as_clamd_opens_it() {
    use ometascan_testkit::clamd::{Clamd, ClamdConfig};
    let w = work("gzip");
    let spool = w.join("spool");
    writable(&spool);
    let apache = Apache::start(&w.join("apache"));
    let served = |name: &str| std::fs::read(w.join("apache/dav").join(name)).unwrap_or_default();
    let clamd = Clamd::start_with(ClamdConfig {
        tcp: true,
        ..ClamdConfig::default()
    });
    let n = Nginx::start(&format!(
        "server {{ listen 127.0.0.1:%PORT%; client_max_body_size 50m;\n\
           location /dav/ {{ ometascan_pass {};\n\
             ometascan_pieces content_range spool={};\n\
             proxy_pass http://127.0.0.1:{}; }} }}",
        clamd.url(),
        spool.display(),
        apache.1
    ));
    // EICAR at the end of what the archive holds: its deflated bytes are in the second half,
    // which is no gzip file alone; the first half decompresses to random bytes only.
    let archive = |infected: bool| {
        let mut text = random_bytes(200_000, 23);
        if infected {
            text.extend_from_slice(EICAR);
        }
        gzip(&text)
    };
    for (name, infected) in [("clean.gz", false), ("bad.gz", true)] {
        let data = archive(infected);
        let half = data.len() / 2;
        let first = curl_range(
            n.port,
            &format!("/dav/{name}"),
            0,
            &data[..half],
            data.len(),
            &w,
        );
        assert_eq!(first, 201, "{name}: {}", n.error_log());
        let second = curl_range(
            n.port,
            &format!("/dav/{name}"),
            half,
            &data[half..],
            data.len(),
            &w,
        );
        if infected {
            assert_eq!(second, 403, "{}", n.error_log());
            assert_eq!(served(name), data[..half].to_vec());
        } else {
            assert_eq!(second, 204, "{}", n.error_log());
            assert_eq!(served(name), data);
        }
    }
}

/// moto's S3 server.
fn moto() -> Served {
    let port = nginx::free_port();
    let mut cmd = Command::new(root().join("target/difftest/s3new/bin/moto_server"));
    cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
    Served::start(cmd, port)
}

#[test]
fn s3_multipart_uploads_are_assembled_and_scanned_at_completion() {
    deps();
    let w = work("s3");
    let spool = w.join("spool");
    writable(&spool);
    let moto = moto();
    let scanner = ScannerDouble::start(Action::EicarAware);
    let ca = ometascan_testkit::tls::ca("test CA");
    let cert = ometascan_testkit::tls::server(&["127.0.0.1", "localhost"], Some(&ca), false);
    std::fs::write(w.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(w.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(w.join("key.pem"), cert.key.serialize_pem()).unwrap();
    let tls_port = nginx::free_port();
    let n = Nginx::start(&format!(
        "server {{ listen 127.0.0.1:%PORT%; listen 127.0.0.1:{tls_port} ssl;\n\
           ssl_certificate {d}/cert.pem; ssl_certificate_key {d}/key.pem;\n\
           client_max_body_size 100m;\n\
           location / {{ ometascan_pass {scanner}; ometascan_methods PUT POST;\n\
             ometascan_pieces s3 spool={spool};\n\
             proxy_pass http://127.0.0.1:{moto}; proxy_set_header Host $http_host;\n\
             proxy_http_version 1.1; }}\n\
         }}",
        d = w.display(),
        scanner = scanner.url(),
        spool = spool.display(),
        moto = moto.port,
    ));
    let direct = format!("http://127.0.0.1:{}", moto.port);
    // EICAR straddles the 5 MiB boundary of the first two parts: every part is clean alone.
    let clean = random_bytes(12 << 20, 92);
    let mut bad = random_bytes(12 << 20, 93);
    let at = (5 << 20) - EICAR.len() / 2;
    bad[at..at + EICAR.len()].copy_from_slice(EICAR);
    std::fs::write(w.join("clean.bin"), &clean).unwrap();
    std::fs::write(w.join("bad.bin"), &bad).unwrap();
    let python = root().join("target/difftest/s3new/bin/python");
    for (scheme, port) in [("https", tls_port), ("http", n.port)] {
        // upload_file sends two parts at once; "reversed" sends the last part first.
        for mode in ["multipart", "reversed"] {
            for name in ["clean", "bad"] {
                let key = format!("{scheme}-{mode}-{name}");
                let out = Command::new(&python)
                    .arg(root().join("tests/clients/s3.py"))
                    .arg(format!("{scheme}://127.0.0.1:{port}"))
                    .arg(&direct)
                    .arg(w.join("ca.pem"))
                    .arg("bucket")
                    .arg(&key)
                    .arg(w.join(format!("{name}.bin")))
                    .arg(mode)
                    .output()
                    .unwrap();
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                assert!(
                    out.status.success(),
                    "{key}: {text}{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                if name == "clean" {
                    assert!(
                        text.contains("\"uploaded\": true"),
                        "{key}: {text}\n{}",
                        n.error_log()
                    );
                    let sha = text
                        .split("\"sha256\": \"")
                        .nth(1)
                        .unwrap()
                        .split('"')
                        .next()
                        .unwrap();
                    assert!(
                        text.contains(&format!("\"stored_sha256\": \"{sha}\"")),
                        "{key}: {text}"
                    );
                } else {
                    assert!(
                        text.contains("\"uploaded\": false"),
                        "{key}: {text}\n{}",
                        n.error_log()
                    );
                    assert!(text.contains("\"stored_sha256\": null"), "{key}: {text}");
                }
            }
        }
    }
    let log = n.error_log();
    assert!(log.contains("request blocked by the scanner"), "{log}");
    // A completion that lists a part the module has not seen is refused.
    let r = client::request(
        n.port,
        "POST",
        "/bucket/unseen?uploadId=nosuchupload",
        &[("Content-Type", "application/xml")],
        b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"x\"</ETag></Part></CompleteMultipartUpload>",
    )
    .unwrap();
    assert_eq!(r.status, 409, "{}", n.error_log());
}

/// A chunk receiver as Dropzone's server examples write one.
fn receiver(store: &Path) -> Served {
    let port = nginx::free_port();
    let mut cmd = Command::new(root().join("target/difftest/venv/bin/python"));
    cmd.arg(root().join("tests/pieces/chunk_receiver.py"))
        .arg(port.to_string())
        .arg(store);
    Served::start(cmd, port)
}

/// Dropzone's request for one chunk (`chunking: true`): its fields and the chunk as `blob`.
fn dropzone_chunk(port: u16, uuid: &str, index: usize, size: usize, file: &[u8]) -> u16 {
    let chunk = &file[index * size..((index + 1) * size).min(file.len())];
    let count = file.len().div_ceil(size);
    let mut body = Vec::new();
    for (name, value) in [
        ("dzuuid", uuid.to_string()),
        ("dzchunkindex", index.to_string()),
        ("dztotalfilesize", file.len().to_string()),
        ("dzchunksize", size.to_string()),
        ("dztotalchunkcount", count.to_string()),
        ("dzchunkbyteoffset", (index * size).to_string()),
    ] {
        body.extend_from_slice(
            format!("--dzB\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                .as_bytes(),
        );
    }
    body.extend_from_slice(
        b"--dzB\r\nContent-Disposition: form-data; name=\"file\"; filename=\"blob\"\r\n\
          Content-Type: application/octet-stream\r\n\r\n",
    );
    body.extend_from_slice(chunk);
    body.extend_from_slice(b"\r\n--dzB--\r\n");
    client::request(
        port,
        "POST",
        "/upload",
        &[("Content-Type", "multipart/form-data; boundary=dzB")],
        &body,
    )
    .unwrap()
    .status
}

/// An uploader's chunk sent as the body, described in the query.
fn query_chunk(port: u16, id: &str, index: usize, size: usize, file: &[u8]) -> u16 {
    let query = format!(
        "/query?id={id}&offset={}&total={}&count={}",
        index * size,
        file.len(),
        file.len().div_ceil(size)
    );
    post_chunk(port, &query, index, size, file)
}

/// An uploader's chunk sent as the body, numbered in the query (the file's size in chunks).
fn counted_chunk(port: u16, id: &str, index: usize, size: usize, file: &[u8]) -> u16 {
    let query = format!(
        "/counted?id={id}&index={index}&size={size}&count={}",
        file.len().div_ceil(size)
    );
    post_chunk(port, &query, index, size, file)
}

/// Chunk `index` of `file` (chunks of `size` bytes) posted as the body to `path`.
fn post_chunk(port: u16, path: &str, index: usize, size: usize, file: &[u8]) -> u16 {
    let chunk = &file[index * size..((index + 1) * size).min(file.len())];
    client::request(
        port,
        "POST",
        path,
        &[("Content-Type", "application/octet-stream")],
        chunk,
    )
    .unwrap()
    .status
}

#[test]
fn chunking_uploaders_pieces_are_assembled_by_their_fields_and_arguments() {
    let w = work("fields");
    let (store, spool) = (w.join("store"), w.join("spool"));
    std::fs::create_dir_all(&store).unwrap();
    writable(&spool);
    let receiver = receiver(&store);
    let scanner = ScannerDouble::start(Action::EicarAware);
    let n = Nginx::start(&format!(
        "server {{ listen 127.0.0.1:%PORT%; client_max_body_size 50m;\n\
           location = /upload {{ ometascan_pass {0};\n\
             ometascan_pieces fields spool={1} key=dzuuid offset=dzchunkbyteoffset\n\
                              total=dztotalfilesize;\n\
             proxy_pass http://127.0.0.1:{2}; }}\n\
           location = /query {{ ometascan_pass {0};\n\
             ometascan_pieces fields spool={1} key=$arg_id offset=$arg_offset\n\
                              total=$arg_total;\n\
             proxy_pass http://127.0.0.1:{2}/upload; }}\n\
           location = /counted {{ ometascan_pass {0};\n\
             ometascan_pieces fields spool={1} key=$arg_id index=$arg_index chunk=4096\n\
                              count=$arg_count;\n\
             proxy_pass http://127.0.0.1:{2}/upload; }} }}",
        scanner.url(),
        spool.display(),
        receiver.port
    ));
    let size = 4096;
    let clean = random_bytes(3 * size + 10, 11);
    let bad = split_eicar();
    for (send, tag) in [
        (
            dropzone_chunk as fn(u16, &str, usize, usize, &[u8]) -> u16,
            "dz",
        ),
        (query_chunk, "query"),
        (counted_chunk, "counted"),
    ] {
        // The clean twin: assembled by the receiver byte for byte.
        let id = format!("{tag}-clean");
        for i in 0..4 {
            assert_eq!(send(n.port, &id, i, size, &clean), 200, "{}", n.error_log());
        }
        assert_eq!(std::fs::read(store.join(&id)).unwrap(), clean);
        // Each chunk clean alone: the last one is blocked, the receiver never assembles it.
        let id = format!("{tag}-bad");
        assert_eq!(send(n.port, &id, 0, size, &bad), 200);
        assert_eq!(send(n.port, &id, 1, size, &bad), 200);
        assert_eq!(send(n.port, &id, 2, size, &bad), 403, "{}", n.error_log());
        assert!(!store.join(&id).exists());
        // A chunk of an upload whose first chunk the module did not see: refused.
        assert_eq!(send(n.port, &format!("{tag}-unseen"), 2, size, &bad), 409);
    }
    // A file small enough to go whole, without the fields: scanned as any upload.
    let whole = b"--dzB\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\nsmall\r\n--dzB--\r\n";
    let r = client::request(
        n.port,
        "POST",
        "/upload",
        &[("Content-Type", "multipart/form-data; boundary=dzB")],
        whole,
    )
    .unwrap();
    assert_eq!(
        r.status, 400,
        "the receiver's own answer to a form without chunk fields"
    );
}

const UPLOADERS_PAGE: &str = r#"<!doctype html><html><head><title>waiting</title>
<script src="/lib/dropzone/dist/dropzone-min.js"></script>
<script src="/lib/resumablejs/resumable.js"></script></head><body><script>
Dropzone.autoDiscover = false;
const CHUNK = 65536;
async function file(name, as) {
  const blob = await (await fetch("/files/" + name)).blob();
  return new File([blob], as, {type: "application/octet-stream"});
}
function viaDropzone(f) {
  return new Promise(resolve => {
    const dz = new Dropzone(document.createElement("div"), {url: "/dz", chunking: true,
      forceChunking: true, chunkSize: CHUNK, parallelChunkUploads: true, parallelUploads: 4,
      retryChunks: false, maxFilesize: 100});
    dz.on("success", () => resolve("ok"));
    dz.on("error", (file, msg, xhr) => resolve("error " + (xhr ? xhr.status : msg)));
    dz.addFile(f);
  });
}
function viaResumable(f) {
  return new Promise(resolve => {
    const r = new Resumable({target: "/rs", chunkSize: CHUNK, simultaneousUploads: 3,
      testChunks: true, maxChunkRetries: 2});
    r.on("fileAdded", () => r.upload());
    r.on("fileSuccess", () => resolve("ok"));
    r.on("fileError", () => resolve("error"));
    r.addFile(f);
  });
}
(async () => {
  const out = [];
  for (const name of ["clean.bin", "bad.bin"]) {
    out.push("dz-" + name + "=" + await viaDropzone(await file(name, "dz-" + name)));
    out.push("rs-" + name + "=" + await viaResumable(await file(name, "rs-" + name)));
  }
  const pre = document.createElement("pre");
  pre.textContent = ["RESULTS", ...out, "END"].join("|");
  document.body.appendChild(pre);
})();
</script></body></html>"#;

#[test]
fn dropzone_and_resumable_js_sending_chunks_at_once_are_assembled_in_chromium() {
    deps();
    let w = work("browser");
    let (store, spool, files) = (w.join("store"), w.join("spool"), w.join("files"));
    std::fs::create_dir_all(&store).unwrap();
    std::fs::create_dir_all(&files).unwrap();
    writable(&spool);
    let receiver = receiver(&store);
    let scanner = ScannerDouble::start(Action::EicarAware);
    let clean = random_bytes(300_000, 21);
    let mut bad = random_bytes(300_000, 22);
    let at = 2 * 65536 - EICAR.len() / 2;
    bad[at..at + EICAR.len()].copy_from_slice(EICAR);
    for piece in bad.chunks(65536) {
        assert!(!has_eicar(piece));
    }
    std::fs::write(files.join("clean.bin"), &clean).unwrap();
    std::fs::write(files.join("bad.bin"), &bad).unwrap();
    std::fs::write(files.join("page.html"), UPLOADERS_PAGE).unwrap();
    let n = Nginx::start(&format!(
        "server {{ listen 127.0.0.1:%PORT%; client_max_body_size 50m;\n\
           location /lib/ {{ alias {modules}/; }}\n\
           location /files/ {{ alias {files}/; }}\n\
           location = /dz {{ ometascan_pass {scanner};\n\
             ometascan_pieces fields parallel spool={spool} key=dzuuid\n\
                              offset=dzchunkbyteoffset total=dztotalfilesize;\n\
             proxy_pass http://127.0.0.1:{port}; }}\n\
           location = /rs {{ ometascan_pass {scanner};\n\
             ometascan_pieces fields parallel spool={spool} key=resumableIdentifier\n\
                              number=resumableChunkNumber chunk=resumableChunkSize\n\
                              total=resumableTotalSize;\n\
             proxy_pass http://127.0.0.1:{port}; }} }}",
        modules = node_modules().display(),
        files = files.display(),
        scanner = scanner.url(),
        spool = spool.display(),
        port = receiver.port
    ));
    let out = Command::new("chromium")
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", w.join("chromium").display()))
        .args(["--virtual-time-budget=120000", "--dump-dom"])
        .arg(format!("http://127.0.0.1:{}/files/page.html", n.port))
        .output()
        .expect("chromium");
    let dom = String::from_utf8_lossy(&out.stdout);
    let results = dom
        .split("RESULTS|")
        .nth(1)
        .and_then(|r| r.split("|END").next())
        .unwrap_or_else(|| panic!("{dom}\n{}", n.error_log()))
        .to_string();
    for uploader in ["dz", "rs"] {
        // The clean twin: every chunk accepted, the file assembled byte for byte.
        assert!(
            results.contains(&format!("{uploader}-clean.bin=ok")),
            "{results}\n{}",
            n.error_log()
        );
        assert_eq!(
            std::fs::read(store.join(format!("{uploader}-clean.bin"))).ok(),
            Some(clean.clone()),
            "{uploader}"
        );
        // Each chunk clean alone: the one that completes the file is blocked.
        assert!(
            results.contains(&format!("{uploader}-bad.bin=error")),
            "{results}"
        );
        assert!(!store.join(format!("{uploader}-bad.bin")).exists());
    }
    // No file the receiver completed holds the string (its pieces of an incomplete upload may:
    // sent at once, the piece that completes a file need not be one that holds it).
    for entry in std::fs::read_dir(&store).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".part") && !name.contains(".chunk") {
            assert!(!has_eicar(&std::fs::read(&path).unwrap()), "{name}");
        }
    }
    let log = n.error_log();
    assert!(log.contains("request blocked by the scanner"), "{log}");
    assert!(!log.contains("cannot be assembled"), "{log}");
}

/// A `PATCH` with `Content-Range` through `port`.
fn patch_range(port: u16, path: &str, offset: usize, data: &[u8], total: usize) -> u16 {
    let range = format!("bytes {offset}-{}/{total}", offset + data.len() - 1);
    client::request(port, "PATCH", path, &[("Content-Range", &range)], data)
        .unwrap()
        .status
}

#[test]
fn content_range_patches_are_scanned_in_the_file_as_it_stands() {
    let w = work("patch");
    let (store, spool) = (w.join("store"), w.join("spool"));
    std::fs::create_dir_all(&store).unwrap();
    writable(&spool);
    let receiver = receiver(&store);
    let scanner = ScannerDouble::start(Action::EicarAware);
    let n = Nginx::start(&format!(
        "server {{ listen 127.0.0.1:%PORT%;\n\
           location /files/ {{ ometascan_pass {};\n\
             ometascan_pieces content_range spool={};\n\
             proxy_pass http://127.0.0.1:{}; }} }}",
        scanner.url(),
        spool.display(),
        receiver.port
    ));
    let clean = random_bytes(2 * 4096, 12);
    assert_eq!(
        patch_range(n.port, "/files/c.bin", 0, &clean[..4096], clean.len()),
        204
    );
    assert_eq!(
        patch_range(n.port, "/files/c.bin", 4096, &clean[4096..], clean.len()),
        204
    );
    assert_eq!(std::fs::read(store.join("c.bin")).unwrap(), clean);
    let bad = split_eicar();
    assert_eq!(
        patch_range(n.port, "/files/b.bin", 0, &bad[..8192], bad.len()),
        204
    );
    let st = patch_range(n.port, "/files/b.bin", 8192, &bad[8192..], bad.len());
    assert_eq!(st, 403, "{}", n.error_log());
    assert_eq!(std::fs::read(store.join("b.bin")).unwrap().len(), 8192);
}
