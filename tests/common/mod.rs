//! Shared setup for the integration tests: nginx with the module in front of a recording
//! backend, scanning through a scanner double.
#![allow(dead_code, unused_imports)]

pub use ometascan_testkit::client::{self, Conn, Response};
pub use ometascan_testkit::nginx::{self, Nginx};
pub use ometascan_testkit::{fnv1a, random_bytes, Action, Backend, ScannerDouble, EICAR};

/// The three parts of a scanned setup.
pub struct Setup {
    pub nginx: Nginx,
    pub scanner: ScannerDouble,
    pub backend: Backend,
}

/// nginx with `location /` scanning through a double (default `action`) and proxying to a
/// backend; `extra` goes into the location.
pub fn setup(action: Action, extra: &str) -> Setup {
    let scanner = ScannerDouble::start(action);
    let backend = Backend::start();
    let http = format!(
        "server {{\n listen 127.0.0.1:%PORT%;\n location / {{\n  ometascan_pass {};\n  proxy_pass http://127.0.0.1:{};\n  {}\n }}\n}}",
        scanner.url(),
        backend.port(),
        extra
    );
    let nginx = Nginx::start(&http);
    Setup {
        nginx,
        scanner,
        backend,
    }
}

/// Waits until `f` holds or the time is up.
pub fn wait_for(limit: std::time::Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    f()
}

/// After a failure or an abort: the same worker still runs, its descriptors are back to `fds`
/// (within 3 s: every request and connection was freed), and nothing went wrong badly enough
/// for an alert.
pub fn assert_worker_recovered(n: &Nginx, worker: u32, fds: usize) {
    assert_eq!(n.worker(), worker, "worker survived");
    assert!(
        wait_for(std::time::Duration::from_secs(3), || nginx::fd_count(
            worker
        ) <= fds),
        "descriptors leaked: requests or connections were not freed"
    );
    let log = n.error_log();
    assert!(!log.contains("[alert]") && !log.contains("[crit]"), "{log}");
}

/// `data` compressed by the system's gzip (a real encoder, not ours).
pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = std::process::Command::new("gzip")
        .arg("-c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gzip");
    // Written from a thread: gzip's output is read meanwhile (a large input would otherwise
    // fill both pipes and stall).
    let mut stdin = child.stdin.take().unwrap();
    let input = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap().stdout;
    writer.join().unwrap().unwrap();
    out
}

/// A server program a test started (a backend, an S3 or tus server), killed when dropped.
pub struct Served {
    child: std::process::Child,
    pub port: u16,
}

impl Served {
    /// Runs `cmd`, which listens on `port` of 127.0.0.1, and waits until the port accepts.
    pub fn start(mut cmd: std::process::Command, port: u16) -> Served {
        let child = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        let served = Served { child, port };
        assert!(
            wait_for(std::time::Duration::from_secs(30), || {
                std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            }),
            "{cmd:?} does not listen on {port}"
        );
        served
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
