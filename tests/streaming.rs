//! Bodies that come slowly or never end: a body announced and never sent is answered within
//! nginx's own `client_body_timeout`, as without the module; gRPC calls in a scanned location
//! (unary calls scanned; streaming calls kept working by a documented bypass).

mod common;
use common::*;
use std::time::{Duration, Instant};

/// How a stalled upload ends at `path`: what the client saw and after how long.
fn stall(n: &Nginx, path: &str) -> (Option<u16>, Duration) {
    let mut c = Conn::open(n.port).unwrap();
    c.send_raw(
        format!("POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\nonly this")
            .as_bytes(),
    )
    .unwrap();
    let t = Instant::now();
    let status = c.read_response(false).ok().map(|r| r.status);
    (status, t.elapsed())
}

#[test]
fn a_body_announced_and_never_sent_is_answered_within_client_body_timeout_as_without_the_module() {
    let scanner = ScannerDouble::start(Action::Allow);
    let backend = Backend::start();
    let n = Nginx::start(&format!(
        "server {{ listen 127.0.0.1:%PORT%; client_body_timeout 2s;\n\
           location /scanned {{ ometascan_pass {}; proxy_pass http://127.0.0.1:{}; }}\n\
           location /plain {{ proxy_pass http://127.0.0.1:{}; }} }}",
        scanner.url(),
        backend.port(),
        backend.port()
    ));
    let worker = n.worker();
    let fds = nginx::fd_count(worker);
    let (plain, plain_took) = stall(&n, "/plain");
    let (scanned, scanned_took) = stall(&n, "/scanned");
    // nginx ends a timed-out body read by closing the connection (its 408 is not sent).
    assert_eq!(
        scanned, plain,
        "the client sees what it sees without the module"
    );
    for took in [plain_took, scanned_took] {
        assert!(
            took >= Duration::from_millis(1900) && took < Duration::from_secs(5),
            "{took:?}"
        );
    }
    assert!(scanner.received().is_empty(), "nothing scanned");
    assert!(backend.received().is_empty(), "nothing forwarded");
    assert_worker_recovered(&n, worker, fds);
    // Its twin: the same upload sent whole passes.
    let r = client::post(n.port, "/scanned", &random_bytes(100_000, 1)).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(backend.received().len(), 1);
}

/// The gRPC echo server of `tests/streaming/grpc_peer.py`, killed when dropped.
struct GrpcServer {
    child: std::process::Child,
    port: u16,
    log: std::path::PathBuf,
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python() -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let st = std::process::Command::new("bash")
        .arg(root.join("scripts/install-difftest-deps.sh"))
        .status()
        .expect("install-difftest-deps.sh");
    assert!(st.success(), "grpcio could not be installed");
    root.join("target/difftest/venv/bin/python")
}

fn peer() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/streaming/grpc_peer.py")
}

fn grpc_server(dir: &std::path::Path) -> GrpcServer {
    use std::io::BufRead;
    let port = nginx::free_port();
    let log = dir.join("grpc-received.log");
    let mut child = std::process::Command::new(python())
        .arg(peer())
        .args(["server", &port.to_string()])
        .arg(&log)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the gRPC server");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    GrpcServer { child, port, log }
}

fn grpc_client(args: &[&str]) -> String {
    let out = std::process::Command::new(python())
        .arg(peer())
        .args(args)
        .output()
        .expect("the gRPC client");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// nginx in front of `grpc`, scanning every call except those `$ometascan_grpc_streaming`
/// (a map of the service's streaming methods) names, when `bypass_streaming`.
fn grpc_nginx(scanner: &ScannerDouble, grpc: &GrpcServer, bypass_streaming: bool) -> Nginx {
    let bypass = if bypass_streaming {
        "ometascan_bypass $grpc_streaming;"
    } else {
        ""
    };
    Nginx::start(&format!(
        "map $uri $grpc_streaming {{ /t.Echo/Chat 1; default \"\"; }}\n\
         server {{ listen 127.0.0.1:%PORT%; http2 on;\n\
           location / {{ ometascan_pass {}; {bypass} grpc_pass grpc://127.0.0.1:{}; }} }}",
        scanner.url(),
        grpc.port
    ))
}

#[test]
fn a_unary_grpc_call_is_scanned_and_a_streaming_one_goes_on_where_it_is_bypassed() {
    let scanner = ScannerDouble::start(Action::EicarAware);
    let dir = std::env::temp_dir().join(format!("ometascan-grpc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let grpc = grpc_server(&dir);
    let n = grpc_nginx(&scanner, &grpc, true);
    let port = n.port.to_string();
    let received = || std::fs::read_to_string(&grpc.log).unwrap_or_default();

    // Unary, clean: scanned (the message in its gRPC frame), then answered.
    let clean = b"a harmless message".to_vec();
    assert_eq!(
        grpc_client(&["unary", &port, &hex(&clean)]),
        format!("ok {}", hex(&clean)),
        "{}",
        n.error_log()
    );
    assert!(received().contains(&hex(&clean)));
    let seen = scanner.received();
    assert_eq!(seen.len(), 1);
    assert_eq!(&seen[0].body[5..], &clean[..], "the call's body as sent");
    // Unary, infected: the call fails and the service never sees the message.
    let verdict = grpc_client(&["unary", &port, &hex(EICAR)]);
    assert!(verdict.starts_with("error"), "{verdict}");
    assert!(!received().contains(&hex(EICAR)));
    assert_eq!(scanner.received().len(), 2);

    // A compressed message is not what the service reads once it decompresses it: refused
    // (400), whatever it holds.
    let verdict = grpc_client(&["unary", &port, &hex(EICAR), "gzip"]);
    assert!(verdict.starts_with("error"), "{verdict}");
    assert!(!received().contains(&hex(EICAR)));
    assert_eq!(scanner.received().len(), 2, "refused before any scan");
    assert!(n.error_log().contains("are not decoded for the scan"));

    // A conversation (each message waits for the previous answer) on a bypassed method.
    assert_eq!(grpc_client(&["chat", &port, "3", "10"]), "ok 3");
    assert_eq!(scanner.received().len(), 2, "bypassed, not scanned");
    assert!(n.error_log().contains("not scanned: \"ometascan_bypass\""));
}

#[test]
fn a_grpc_conversation_cannot_progress_where_it_is_scanned() {
    let scanner = ScannerDouble::start(Action::Allow);
    let dir = std::env::temp_dir().join(format!("ometascan-grpc2-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let grpc = grpc_server(&dir);
    let n = grpc_nginx(&scanner, &grpc, false);
    // The scan waits for the whole body; the client waits for an answer first.
    assert_eq!(
        grpc_client(&["chat", &n.port.to_string(), "3", "3"]),
        "error DEADLINE_EXCEEDED"
    );
    let received = std::fs::read_to_string(&grpc.log).unwrap_or_default();
    assert!(received.is_empty(), "nothing unscanned reached the service");
}
