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
use std::process::{Child, Command, Stdio};
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
struct TusServer(Child, u16);

impl TusServer {
    fn start(dir: &Path) -> TusServer {
        let port = nginx::free_port();
        let child = Command::new("node")
            .arg(root().join("tests/pieces/tus_server.js"))
            .arg(port.to_string())
            .arg(dir)
            .env("NODE_PATH", node_modules())
            .stdout(Stdio::null())
            .spawn()
            .expect("node");
        assert!(wait_for(Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        }));
        TusServer(child, port)
    }
}

impl Drop for TusServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// tus-js-client uploading `data` to `endpoint` in pieces of `chunk` bytes: its last line
/// (`success URL` or `error STATUS URL`).
fn tus_upload(endpoint: &str, data: &[u8], chunk: usize, dir: &Path) -> String {
    let file = dir.join(format!("upload-{}", data.len()));
    std::fs::write(&file, data).unwrap();
    let out = Command::new("node")
        .arg(root().join("tests/pieces/tus_client.js"))
        .arg(endpoint)
        .arg(&file)
        .arg(chunk.to_string())
        .env("NODE_PATH", node_modules())
        .output()
        .expect("node");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// What the server stored for the upload at `url`: the data file of @tus/file-store.
fn stored(store: &Path, url: &str) -> Option<Vec<u8>> {
    let id = url.rsplit('/').next()?;
    std::fs::read(store.join(id)).ok()
}

fn config(scanner: &str, tus: u16, spool: &Path, extra: &str) -> String {
    format!(
        "server {{ listen 127.0.0.1:%PORT%; client_max_body_size 50m;\n\
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
    let server = TusServer::start(&store);
    let scanner = ScannerDouble::start(Action::EicarAware);
    let n = Nginx::start(&config(&scanner.url(), server.1, &spool, ""));
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
}

/// A tus creation through `port`; the upload's path.
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
    let server = TusServer::start(&store);
    let scanner = ScannerDouble::start(Action::EicarAware);
    let a = Nginx::start(&config(&scanner.url(), server.1, &spool_a, "expire=2s"));
    let b = Nginx::start(&config(&scanner.url(), server.1, &spool_b, ""));
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
    let c = Nginx::start(&config(&scanner.url(), server.1, &spool_a, ""));
    let clean = random_bytes(2 * 4096, 9);
    let path = create(a.port, clean.len());
    assert_eq!(patch(a.port, &path, 0, &clean[..4096]), 204);
    assert_eq!(patch(c.port, &path, 4096, &clean[4096..]), 204);
    let held = std::fs::read(store.join(path.rsplit('/').next().unwrap())).unwrap();
    assert_eq!(held, clean);
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
