//! The differential suite: request shapes that real backend parsers accept, each with a benign
//! twin, through nginx with the module in front of the real c-icap + ClamAV; what reached the
//! backend is read by PHP, werkzeug, Django, python-multipart, Python's json and urllib.parse,
//! busboy, formidable and body-parser, and every item they extract is scanned alone by ClamAV
//! (see tests/differential/harness.py). Real clients' requests are among them: curl, Python's
//! requests, Node's fetch and headless Chromium's forms, FormData and fetch. No flagged item may have been forwarded; every benign
//! twin passes byte for byte, or its refusal is one the README justifies.

mod common;
use common::*;
use ometascan_testkit::cicap::CIcap;
use std::path::Path;
use std::process::Command;

#[test]
fn no_request_shape_carries_a_file_past_the_module() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let st = Command::new("bash")
        .arg(root.join("scripts/install-difftest-deps.sh"))
        .status()
        .expect("install-difftest-deps.sh");
    assert!(st.success(), "the parsers could not be installed");
    let deps = root.join("target/difftest");
    let cicap = CIcap::start();
    let backend = nginx::free_port();
    let http = format!(
        "server {{ listen 127.0.0.1:%PORT%; client_max_body_size 100m;\n\
           location / {{ ometascan_pass {}; proxy_pass http://127.0.0.1:{backend}; }} }}",
        cicap.url("virus_scan"),
    );
    let n = Nginx::start(&http);
    let work = n.prefix.join("differential");
    let out = Command::new(deps.join("venv/bin/python"))
        .arg(root.join("tests/differential/harness.py"))
        .args([
            "--nginx",
            &n.port.to_string(),
            "--backend",
            &backend.to_string(),
        ])
        .arg("--clamdb")
        .arg(cicap.dir.join("db"))
        .arg("--work")
        .arg(&work)
        .args([
            "--php",
            "php-cgi",
            "--node",
            "node",
            "--chromium",
            "chromium",
        ])
        .arg("--node-modules")
        .arg(deps.join("node/node_modules"))
        .arg("--deps")
        .arg(&deps)
        .output()
        .expect("harness");
    let report = String::from_utf8_lossy(&out.stdout);
    println!("{report}");
    assert!(
        out.status.success(),
        "{report}\n{}\nerror log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        n.error_log()
    );
}
