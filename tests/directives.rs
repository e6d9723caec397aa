//! Every directive: good values pass `nginx -t`, bad values fail with a message naming the
//! directive, the value, the file and the line.

mod common;
use common::*;

fn location(directives: &str) -> String {
    format!(
        "server {{ listen 127.0.0.1:%PORT%;\n location / {{\n  ometascan_pass http://127.0.0.1:9;\n  {directives}\n  proxy_pass http://127.0.0.1:9;\n }}\n}}"
    )
}

#[track_caller]
fn good(directives: &str) {
    let c = nginx::check_http(&location(directives));
    assert!(c.ok, "expected success for {directives:?}:\n{}", c.output);
}

/// Fails, naming the directive and value, at `nginx.conf:<line>`.
#[track_caller]
fn bad(directives: &str, name: &str, value: &str) -> String {
    let c = nginx::check_http(&location(directives));
    assert!(!c.ok, "expected failure for {directives:?}:\n{}", c.output);
    assert!(c.output.contains("[emerg]"), "{}", c.output);
    assert!(
        c.output.contains(&format!("\"{name}\"")),
        "no directive name in:\n{}",
        c.output
    );
    assert!(
        c.output.contains(value),
        "no value {value:?} in:\n{}",
        c.output
    );
    let conf = c.conf_path.display().to_string();
    assert!(
        c.output.contains(&format!("{conf}:")),
        "no file:line in:\n{}",
        c.output
    );
    c.output
}

#[test]
fn pass() {
    good("");
    for url in [
        "http://127.0.0.1:8043/scan/",
        "http://[::1]:8043",
        "http://localhost",
        "HTTP://127.0.0.1",
        "icap://127.0.0.1/avscan",
        "icap://127.0.0.1:1344/virus_scan",
        "clamd://127.0.0.1",
        // nginx does not need the socket to exist at start (clamd may come up later).
        "clamd+unix:///run/clamav/clamd.ctl",
    ] {
        let c = nginx::check_http(&format!(
            "server {{ listen 127.0.0.1:%PORT%; location / {{ ometascan_pass {url}; }} }}"
        ));
        assert!(c.ok, "{url}: {}", c.output);
    }
    for (url, why) in [
        ("ftp://x", "invalid URL prefix"),
        ("127.0.0.1:80", "invalid URL prefix"),
        ("http://", "no host"),
        ("http://h:99999", "invalid port"),
        ("http://h:0", "invalid port"),
        ("http://u@h", "user info"),
        ("http://[zz]", "invalid host"),
        // Cut inside a UTF-8 character where a scheme would end: an error, not an abort.
        ("http:/é", "invalid URL prefix"),
        ("clamd+unix://run/clamd.ctl", "must be absolute"),
        ("clamd+unix://", "must be absolute"),
        ("clamd://h/scan", "takes no path"),
    ] {
        let c = nginx::check_http(&format!(
            "server {{ listen 127.0.0.1:%PORT%; location / {{ ometascan_pass {url}; }} }}"
        ));
        assert!(!c.ok);
        assert!(
            c.output.contains(&format!(
                "invalid value \"{url}\" in \"ometascan_pass\" directive"
            )),
            "{}",
            c.output
        );
        assert!(c.output.contains(why), "{why}: {}", c.output);
    }
    // A host that does not resolve is nginx's own "host not found" error.
    let c = nginx::check_http(
        "server { listen 127.0.0.1:%PORT%; location / { ometascan_pass http://no-such-host.invalid; } }",
    );
    assert!(!c.ok);
    assert!(c.output.contains("host not found"), "{}", c.output);
    // Duplicate at one level.
    let out = bad(
        "ometascan_pass http://127.0.0.1:10;",
        "ometascan_pass",
        "is duplicate",
    );
    assert!(out.contains("is duplicate"));
    // off is accepted.
    let c = nginx::check_http("ometascan_pass http://127.0.0.1:9; server { listen 127.0.0.1:%PORT%; location / { ometascan_pass off; } }");
    assert!(c.ok, "{}", c.output);
}

#[test]
fn tls_schemes_are_accepted_and_checked_at_startup() {
    for url in [
        "https://127.0.0.1",
        "icaps://127.0.0.1/avscan",
        "https://localhost:8443/scan",
    ] {
        let c = nginx::check_http(&format!(
            "server {{ listen 127.0.0.1:%PORT%; location / {{ ometascan_pass {url}; }} }}"
        ));
        assert!(c.ok, "{url}: {}", c.output);
    }
    // An IP address is a valid name to verify; a name rustls cannot use is refused.
    let c = nginx::check_http(
        "server { listen 127.0.0.1:%PORT%; location / { ometascan_pass https://127.0.0.1; ometascan_ssl_name \"a..b\"; } }",
    );
    assert!(!c.ok, "{}", c.output);
    assert!(
        c.output.contains("TLS settings for \"https://127.0.0.1\""),
        "{}",
        c.output
    );
}

#[test]
fn methods() {
    good("ometascan_methods POST;");
    good("ometascan_methods get head post put patch delete;");
    good("ometascan_methods POST OPTIONS PROPFIND MKCOL X-Upload;");
    good("ometascan_methods any_with_body;");
    good("ometascan_methods GET any_with_body;");
    bad(
        "ometascan_methods POST PO/ST;",
        "ometascan_methods",
        "\"PO/ST\"",
    );
    bad(
        "ometascan_methods \"PROP FIND\";",
        "ometascan_methods",
        "not a method token",
    );
}

#[test]
fn timeouts() {
    for d in [
        "ometascan_connect_timeout",
        "ometascan_send_timeout",
        "ometascan_read_timeout",
    ] {
        good(&format!("{d} 500ms;"));
        good(&format!("{d} 1d;"));
        good(&format!("{d} 1m30s;"));
        // nginx's own msec slot reads the value, with nginx's own words for what it cannot
        // read; the module's check refuses zero, naming the value.
        bad(&format!("{d} abc;"), d, "directive invalid value");
        bad(&format!("{d} 10q;"), d, "directive invalid value");
        bad(&format!("{d} -5s;"), d, "directive invalid value");
        bad(&format!("{d} 0;"), d, "\"0\" in");
        bad(&format!("{d} 0;"), d, "greater than zero");
        bad(&format!("{d} 5s; {d} 6s;"), d, "is duplicate");
    }
    let c = nginx::check_http(&location("ometascan_connect_timeout 90s;"));
    assert!(c.ok);
    assert!(
        c.output.contains("[warn]") && c.output.contains("above 75s"),
        "{}",
        c.output
    );
    let c = nginx::check_http(&location("ometascan_connect_timeout 75s;"));
    assert!(c.ok && !c.output.contains("[warn]"), "{}", c.output);
}

#[test]
fn flags() {
    for d in [
        "ometascan_x_forwarded_for",
        "ometascan_intercept_errors",
        "ometascan_pre_cache",
        "ometascan_ssl_verify",
        "ometascan_ssl_session_reuse",
        "ometascan_ssl_server_name",
        "ometascan_log_blocked",
        "ometascan_multipart",
    ] {
        good(&format!("{d} on;"));
        good(&format!("{d} OFF;"));
        let out = bad(&format!("{d} yes;"), d, "\"yes\"");
        assert!(out.contains("it must be \"on\" or \"off\""), "{out}");
        bad(&format!("{d} on; {d} on;"), d, "is duplicate");
    }
}

#[test]
fn allow_bad_request_traffic_requires_pre_cache() {
    good("ometascan_allow_bad_request_traffic on; ometascan_pre_cache on;");
    good("ometascan_allow_bad_request_traffic off;");
    bad(
        "ometascan_allow_bad_request_traffic maybe;",
        "ometascan_allow_bad_request_traffic",
        "\"maybe\"",
    );
    let c = nginx::check_http(&location("ometascan_allow_bad_request_traffic on;"));
    assert!(!c.ok);
    assert!(
        c.output.contains("requires \"ometascan_pre_cache on\""),
        "{}",
        c.output
    );
    assert!(
        c.output.contains(&format!("{}:", c.conf_path.display())),
        "{}",
        c.output
    );
    // Inherited from http level, switched off below: still an error where it applies.
    let c = nginx::check_http(
        "ometascan_allow_bad_request_traffic on; ometascan_pre_cache on;\n\
         server { listen 127.0.0.1:%PORT%; location / { ometascan_pre_cache off; ometascan_pass http://127.0.0.1:9; } }",
    );
    assert!(!c.ok, "{}", c.output);
}

#[test]
fn set_header() {
    good("ometascan_set_header X-MDCLOUD-APIKEY $http_x_key;");
    good("ometascan_set_header Accept-Encoding \"\";");
    good("ometascan_set_header X-A a; ometascan_set_header X-B \"$remote_addr:$request_uri\";");
    bad(
        "ometascan_set_header \"Bad Name\" v;",
        "ometascan_set_header",
        "\"Bad Name\"",
    );
    let c = nginx::check_http(&location(
        "ometascan_set_header X-A $no_such_variable_here;",
    ));
    assert!(!c.ok);
    assert!(
        c.output
            .contains("unknown \"no_such_variable_here\" variable"),
        "{}",
        c.output
    );
    let c = nginx::check_http(&location("ometascan_set_header X-A;"));
    assert!(
        !c.ok
            && c.output
                .contains("invalid number of arguments in \"ometascan_set_header\""),
        "{}",
        c.output
    );
}

#[test]
fn pre_cache_size_is_deprecated() {
    let c = nginx::check_http(&location("ometascan_pre_cache_size 9223372036854775807;"));
    assert!(c.ok, "{}", c.output);
    assert!(
        c.output.contains("[warn]") && c.output.contains("deprecated"),
        "{}",
        c.output
    );
    good("ometascan_pre_cache_size 8k;");
    bad(
        "ometascan_pre_cache_size lots;",
        "ometascan_pre_cache_size",
        "\"lots\"",
    );
}

#[test]
fn ssl_directives() {
    good("ometascan_ssl_verify_depth 3;");
    bad(
        "ometascan_ssl_verify_depth 0;",
        "ometascan_ssl_verify_depth",
        "\"0\"",
    );
    bad(
        "ometascan_ssl_verify_depth x;",
        "ometascan_ssl_verify_depth",
        "invalid number",
    );
    bad(
        "ometascan_ssl_verify_depth 101;",
        "ometascan_ssl_verify_depth",
        "from 1 to 100",
    );

    good("ometascan_ssl_protocols TLSv1.2 TLSv1.3;");
    let c = nginx::check_http(&location("ometascan_ssl_protocols TLSv1.1 TLSv1.2;"));
    assert!(
        c.ok && c.output.contains("[warn]") && c.output.contains("TLSv1.1"),
        "{}",
        c.output
    );
    bad(
        "ometascan_ssl_protocols TLSv2;",
        "ometascan_ssl_protocols",
        "\"TLSv2\"",
    );
    let c = nginx::check_http(&location("ometascan_ssl_protocols SSLv3 TLSv1;"));
    assert!(
        !c.ok && c.output.contains("no protocol version usable"),
        "{}",
        c.output
    );

    good("ometascan_ssl_ciphers DEFAULT;");
    good("ometascan_ssl_ciphers HIGH:!aNULL:!MD5;");
    good("ometascan_ssl_ciphers ECDHE-RSA-AES128-GCM-SHA256;");
    bad(
        "ometascan_ssl_ciphers RC4-MD5;",
        "ometascan_ssl_ciphers",
        "\"RC4-MD5\"",
    );

    good("ometascan_ssl_name scanner.example.com;");
    bad(
        "ometascan_ssl_name \"bad name\";",
        "ometascan_ssl_name",
        "\"bad name\"",
    );

    let c = nginx::check_http(&location(
        "ometascan_ssl_trusted_certificate /nonexistent/ca.pem;",
    ));
    assert!(
        !c.ok
            && c.output.contains("/nonexistent/ca.pem")
            && c.output.contains("ometascan_ssl_trusted_certificate"),
        "{}",
        c.output
    );
    let junk = std::env::temp_dir().join(format!("ometascan-junk-ca-{}.pem", std::process::id()));
    std::fs::write(&junk, "junk").unwrap();
    let c = nginx::check_http(&location(&format!(
        "ometascan_ssl_trusted_certificate {};",
        junk.display()
    )));
    assert!(
        !c.ok && c.output.contains("no certificate found"),
        "{}",
        c.output
    );
    std::fs::remove_file(&junk).unwrap();
}

#[test]
fn many_directives_together_are_accepted_at_every_level() {
    let all = "ometascan_methods POST PUT; ometascan_connect_timeout 5s; ometascan_send_timeout 5s;\n\
               ometascan_read_timeout 1d; ometascan_x_forwarded_for on; ometascan_intercept_errors on;\n\
               ometascan_pre_cache on; ometascan_allow_bad_request_traffic on; ometascan_set_header X-K v;\n\
               ometascan_ssl_verify off; ometascan_ssl_verify_depth 2; ometascan_ssl_protocols TLSv1.2;\n\
               ometascan_ssl_ciphers HIGH; ometascan_ssl_session_reuse off; ometascan_ssl_name s.example;\n\
               ometascan_ssl_server_name on; ometascan_body_limits parts=50 objects=20;";
    for level in ["http", "server", "location"] {
        let http = match level {
            "http" => format!("ometascan_pass http://127.0.0.1:9; {all} server {{ listen 127.0.0.1:%PORT%; location / {{ }} }}"),
            "server" => format!("server {{ listen 127.0.0.1:%PORT%; ometascan_pass http://127.0.0.1:9; {all} location / {{ }} }}"),
            _ => format!("server {{ listen 127.0.0.1:%PORT%; location / {{ ometascan_pass http://127.0.0.1:9; {all} }} }}"),
        };
        let c = nginx::check_http(&http);
        assert!(c.ok, "{level}: {}", c.output);
    }
}

#[test]
fn inherited_settings_apply_in_locations() {
    // Set at http level, used in a location that sets nothing.
    let scanner = ScannerDouble::start(Action::block(403, b"no"));
    let backend = Backend::start();
    let http = format!(
        "ometascan_pass {}; ometascan_methods PUT; ometascan_x_forwarded_for on;\n\
         server {{ listen 127.0.0.1:%PORT%; location / {{ proxy_pass http://127.0.0.1:{}; }} }}",
        scanner.url(),
        backend.port()
    );
    let n = Nginx::start(&http);
    assert_eq!(client::post(n.port, "/a", b"x").unwrap().status, 200);
    assert_eq!(
        client::request(n.port, "PUT", "/a", &[], b"x")
            .unwrap()
            .status,
        403
    );
    assert_eq!(scanner.received().len(), 1);
    assert_eq!(
        scanner.received()[0].head.header("x-forwarded-for"),
        Some("127.0.0.1")
    );
}

#[test]
fn keepalive_and_health_check() {
    good("ometascan_keepalive 0;");
    good("ometascan_keepalive 64; ometascan_keepalive_timeout 30s;");
    bad(
        "ometascan_keepalive lots;",
        "ometascan_keepalive",
        "invalid number",
    );
    bad(
        "ometascan_keepalive 10001;",
        "ometascan_keepalive",
        "\"10001\"",
    );
    good("ometascan_keepalive 10000;");
    bad(
        "ometascan_keepalive_timeout 3x;",
        "ometascan_keepalive_timeout",
        "invalid value",
    );
    good("ometascan_health_check;");
    good("ometascan_health_check interval=1s fails=3 passes=2 uri=/status timeout=500ms;");
    bad(
        "ometascan_health_check interval=never;",
        "ometascan_health_check",
        "\"interval=never\"",
    );
    bad(
        "ometascan_health_check fails=0;",
        "ometascan_health_check",
        "\"fails=0\"",
    );
    bad(
        "ometascan_health_check uri=status;",
        "ometascan_health_check",
        "\"uri=status\"",
    );
    bad(
        "ometascan_health_check color=red;",
        "ometascan_health_check",
        "\"color=red\"",
    );
    bad(
        "ometascan_health_check 5s;",
        "ometascan_health_check",
        "\"5s\"",
    );
}

#[test]
fn upstream_groups_are_nginx_upstreams() {
    let c = nginx::check_http(
        "upstream icap { server 127.0.0.1:8043 weight=2 max_fails=2 fail_timeout=5s; server 127.0.0.1:8044 backup; }\n\
         server { listen 127.0.0.1:%PORT%; location / { ometascan_pass http://icap; } }",
    );
    assert!(c.ok, "{}", c.output);
    // An upstream name with a port is nginx's own error.
    let c = nginx::check_http(
        "upstream icap { server 127.0.0.1:8043; }\n\
         server { listen 127.0.0.1:%PORT%; location / { ometascan_pass http://icap:99; } }",
    );
    assert!(!c.ok, "{}", c.output);
}

#[test]
fn policy_directives_check_their_values() {
    good("ometascan_bypass $arg_skip $http_x_skip;");
    good("ometascan_max_size 100m; ometascan_on_error pass; ometascan_max_scans 8 wait=2s;");
    good("ometascan_max_size 1k over=pass; ometascan_on_error block; ometascan_max_scans 1;");
    bad("ometascan_max_size 0;", "ometascan_max_size", "\"0\"");
    bad("ometascan_max_size lots;", "ometascan_max_size", "\"lots\"");
    bad(
        "ometascan_max_size 1m over=maybe;",
        "ometascan_max_size",
        "\"over=maybe\"",
    );
    bad(
        "ometascan_on_error ignore;",
        "ometascan_on_error",
        "\"ignore\"",
    );
    bad("ometascan_max_scans 0;", "ometascan_max_scans", "\"0\"");
    bad(
        "ometascan_max_scans 4 wait=soon;",
        "ometascan_max_scans",
        "\"wait=soon\"",
    );
    bad(
        "ometascan_max_scans 4 queue=2;",
        "ometascan_max_scans",
        "\"queue=2\"",
    );
    good("ometascan_body_limits parts=20000 part_header=64k fields=50000 objects=100;");
    good("ometascan_body_limits objects=1;");
    bad(
        "ometascan_body_limits parts=0;",
        "ometascan_body_limits",
        "\"parts=0\"",
    );
    bad(
        "ometascan_body_limits part_header=lots;",
        "ometascan_body_limits",
        "\"part_header=lots\"",
    );
    good("ometascan_body_limits depth=3;");
    good("ometascan_pieces tus content_range s3 spool=/tmp expire=1h size=1g uploads=10;");
    good("ometascan_pieces fields spool=/tmp key=dzuuid offset=$arg_o total=dztotalfilesize;");
    bad(
        "ometascan_pieces tus spool=relative/dir;",
        "ometascan_pieces",
        "\"spool=relative/dir\"",
    );
    bad(
        "ometascan_pieces zip spool=/tmp;",
        "ometascan_pieces",
        "\"zip\"",
    );
    bad(
        "ometascan_pieces tus tus spool=/tmp;",
        "ometascan_pieces",
        "\"tus\"",
    );
    let c = nginx::check_http(&location("ometascan_pieces tus;"));
    assert!(
        !c.ok && c.output.contains("\"spool=\" is required"),
        "{}",
        c.output
    );
    let c = nginx::check_http(&location("ometascan_pieces fields spool=/tmp key=a;"));
    assert!(!c.ok && c.output.contains("needs"), "{}", c.output);
    good(
        "ometascan_pieces fields parallel spool=/tmp key=resumableIdentifier \
         number=resumableChunkNumber chunk=resumableChunkSize total=resumableTotalSize;",
    );
    good("ometascan_pieces fields spool=/tmp key=name index=chunk chunk=1048576 count=chunks;");
    for (args, why) in [
        ("key=a index=i total=t", "need \"chunk=\""),
        ("key=a offset=o index=i chunk=1 total=t", "needs one of"),
        ("key=a offset=o chunk=1 total=t", "needs one of"),
        ("key=a offset=o count=c", "needs one of"),
        ("key=a offset=o total=t total=u", "each once"),
    ] {
        let c = nginx::check_http(&location(&format!(
            "ometascan_pieces fields spool=/tmp {args};"
        )));
        assert!(!c.ok && c.output.contains(why), "{args}: {}", c.output);
    }
    let c = nginx::check_http(&location("ometascan_pieces tus parallel spool=/tmp;"));
    assert!(!c.ok && c.output.contains("go with"), "{}", c.output);
    bad(
        "ometascan_body_limits depth=0;",
        "ometascan_body_limits",
        "\"depth=0\"",
    );
    bad(
        "ometascan_body_limits depth=65;",
        "ometascan_body_limits",
        "\"depth=65\"",
    );
    bad(
        "ometascan_body_limits width=3;",
        "ometascan_body_limits",
        "\"width=3\"",
    );
    bad(
        "ometascan_body_limits objects=5; ometascan_body_limits objects=6;",
        "ometascan_body_limits",
        "duplicate",
    );
    let c = nginx::check_http(&location("ometascan_bypass $no_such_variable;"));
    assert!(
        !c.ok && c.output.contains("unknown \"no_such_variable\" variable"),
        "{}",
        c.output
    );
}

#[test]
fn cache_directives() {
    let zone = |loc: &str| {
        format!(
            "ometascan_cache_zone v:1m;\nserver {{ listen 127.0.0.1:%PORT%;\n location / {{\n  ometascan_pass http://127.0.0.1:9;\n  {loc}\n  proxy_pass http://127.0.0.1:9;\n }}\n}}"
        )
    };
    for loc in [
        "ometascan_cache v;",
        "ometascan_cache v; ometascan_cache_valid 1h; ometascan_cache_revalidate 5s;",
        "ometascan_cache v; ometascan_cache_redis 127.0.0.1:6379;",
        "ometascan_cache v; ometascan_cache_redis localhost:6379 timeout=50ms;",
        "ometascan_cache off; ometascan_cache_redis off;",
    ] {
        let c = nginx::check_http(&zone(loc));
        assert!(c.ok, "{loc}: {}", c.output);
    }
    // A zone nobody declared is caught at startup, by name.
    let c = nginx::check_http(&location("ometascan_cache nowhere;"));
    assert!(!c.ok && c.output.contains("\"nowhere\""), "{}", c.output);
    bad(
        "ometascan_cache_valid soon;",
        "ometascan_cache_valid",
        "invalid value",
    );
    bad(
        "ometascan_cache_revalidate 0;",
        "ometascan_cache_revalidate",
        "greater than zero",
    );
    bad(
        "ometascan_cache_redis nowhere.invalid:6379;",
        "ometascan_cache_redis",
        "nowhere.invalid",
    );
    bad(
        "ometascan_cache_redis 127.0.0.1:6379 timeout=x;",
        "ometascan_cache_redis",
        "timeout=x",
    );
    bad(
        "ometascan_cache off; ometascan_cache off;",
        "ometascan_cache",
        "is duplicate",
    );
    // The zone: http level only, a name and a size of at least 64k, declared once.
    let c = nginx::check_http(&location("ometascan_cache_zone v:1m;"));
    assert!(
        !c.ok
            && c.output
                .contains("\"ometascan_cache_zone\" directive is not allowed here"),
        "{}",
        c.output
    );
    for (decl, why) in [
        ("ometascan_cache_zone v;", "name:size"),
        ("ometascan_cache_zone :1m;", "name:size"),
        ("ometascan_cache_zone v:lots;", "name:size"),
        ("ometascan_cache_zone v:8k;", "at least 64k"),
        (
            "ometascan_cache_zone v:1m; ometascan_cache_zone v:1m;",
            "already declared",
        ),
    ] {
        let c = nginx::check_http(&format!("{decl}\n{}", location("")));
        assert!(!c.ok, "{decl}: {}", c.output);
        assert!(
            c.output.contains("\"ometascan_cache_zone\"") && c.output.contains(why),
            "{decl}: {}",
            c.output
        );
    }
}
