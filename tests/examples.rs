//! The configurations shipped in nginx-conf/ pass `nginx -t` with this module.

mod common;
use common::*;

#[test]
fn shipped_examples_pass_nginx_t() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let ssl = std::env::temp_dir().join(format!("ometascan-examples-ssl-{}", std::process::id()));
    std::fs::create_dir_all(&ssl).unwrap();
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .arg("-keyout")
        .arg(ssl.join("server.key"))
        .arg("-out")
        .arg(ssl.join("server.crt"))
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl");
    assert!(status.success());
    let mut checked = 0;
    for e in std::fs::read_dir(root.join("nginx-conf")).unwrap() {
        let path = e.unwrap().path();
        if path.extension().and_then(|x| x.to_str()) != Some("conf") {
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace(
                "/usr/lib/nginx/modules/ngx_http_ometascan_module.so",
                &nginx::module().display().to_string(),
            )
            .replace("/etc/nginx/ssl/", &format!("{}/", ssl.display()))
            .replace("/var/spool/nginx/ometascan", &ssl.display().to_string());
        let c = nginx::check_config(&text);
        assert!(c.ok, "{}:\n{}", path.display(), c.output);
        checked += 1;
    }
    assert!(checked >= 3, "only {checked} examples found");
    std::fs::remove_dir_all(&ssl).unwrap();
}
