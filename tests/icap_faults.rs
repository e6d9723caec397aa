//! ICAP corner cases from a scanner double: nothing is forwarded unless the answer is a
//! complete, well-formed allow or modification.

mod common;
use common::*;
use ometascan_testkit::icap_double::{block_answer, IcapAction, IcapDouble};
use std::time::Duration;

fn with_double(
    action: IcapAction,
    preview: Option<usize>,
    extra: &str,
) -> (Nginx, Backend, IcapDouble) {
    let d = IcapDouble::start(action, preview);
    let backend = Backend::start();
    let http = format!(
        "client_max_body_size 100m; server {{ listen 127.0.0.1:%PORT%; location / {{ ometascan_pass {}; {extra}\n\
         proxy_pass http://127.0.0.1:{}; }} }}",
        d.url("svc"),
        backend.port()
    );
    (Nginx::start(&http), backend, d)
}

#[test]
fn allow_204_inside_preview_stops_the_upload() {
    let (n, backend, d) = with_double(IcapAction::AllowAfterPreview, Some(4096), "");
    let body = random_bytes(2_000_000, 1);
    let r = client::post(n.port, "/a.bin", &body).unwrap();
    assert_eq!(r.status, 200, "{}", n.error_log());
    assert_eq!(backend.received()[0].body, body);
    assert_eq!(d.bodies(), vec![4096], "only the preview was sent");
    // The connection stays usable after a preview answered early.
    assert_eq!(client::post(n.port, "/b.bin", &body).unwrap().status, 200);
}

#[test]
fn whole_body_in_preview_with_ieof() {
    let (n, backend, d) = with_double(IcapAction::Allow, Some(4096), "");
    let r = client::post(n.port, "/small.txt", b"tiny").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(backend.received()[0].body, b"tiny");
    assert_eq!(d.bodies(), vec![4]);
}

#[test]
fn preview_then_continue_then_rest() {
    let (n, backend, d) = with_double(IcapAction::Allow, Some(1024), "");
    let body = random_bytes(300_000, 5);
    assert_eq!(client::post(n.port, "/p.bin", &body).unwrap().status, 200);
    assert_eq!(backend.received()[0].body, body);
    assert_eq!(d.bodies(), vec![300_000]);
}

#[test]
fn continue_after_ieof_is_502() {
    let (n, backend, _d) = with_double(IcapAction::ContinueAfterIeof, Some(4096), "");
    assert_eq!(client::post(n.port, "/x", b"small").unwrap().status, 502);
    assert!(backend.received().is_empty());
    assert!(
        n.error_log().contains("100 Continue after the whole body"),
        "{}",
        n.error_log()
    );
}

#[test]
fn early_block_during_upload_stops_sending_and_is_relayed() {
    let (n, backend, _d) = with_double(IcapAction::EarlyBlock, None, "");
    let r = client::post(n.port, "/big.bin", &random_bytes(20 << 20, 9)).unwrap();
    assert_eq!(
        (r.status, r.text().as_str()),
        (403, "early block"),
        "{}",
        n.error_log()
    );
    assert!(backend.received().is_empty());
    assert!(n.error_log().contains("threat \"Double.Threat\""));
}

#[test]
fn malformed_answers_are_502() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("206", b"ICAP/1.0 206 Partial Content\r\nEncapsulated: null-body=0\r\n\r\n".to_vec()),
        ("500", b"ICAP/1.0 500 Server Error\r\n\r\n".to_vec()),
        ("missing Encapsulated", b"ICAP/1.0 200 OK\r\nISTag: x\r\n\r\n".to_vec()),
        (
            "wrong offsets",
            b"ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, res-body=10\r\n\r\nHTTP/1.0 403 Forbidden\r\n\r\n0\r\n\r\n".to_vec(),
        ),
        ("not ICAP", b"HTTP/1.1 200 OK\r\n\r\n".to_vec()),
        ("truncated block", {
            let mut b = block_answer("a block page that is cut");
            b.truncate(b.len() - 12);
            b
        }),
        ("bad chunk", b"ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, res-body=19\r\n\r\nHTTP/1.0 403 X\r\n\r\nzz\r\n".to_vec()),
    ];
    for (name, raw) in cases {
        let (n, backend, _d) = with_double(IcapAction::Raw(raw), None, "");
        let r = client::post(n.port, "/x", b"body").unwrap();
        assert_eq!(r.status, 502, "{name}: {}", n.error_log());
        assert!(backend.received().is_empty(), "{name}");
        assert!(n.error_log().contains("scan failed"), "{name}");
    }
}

#[test]
fn slow_drip_answer_within_read_timeout_between_bytes() {
    let (n, backend, _d) = with_double(
        IcapAction::SlowDrip(Duration::from_millis(40)),
        None,
        "ometascan_read_timeout 1s;",
    );
    let r = client::post(n.port, "/slow", b"slow").unwrap();
    assert_eq!(r.status, 200, "{}", n.error_log());
    assert_eq!(backend.received()[0].body, b"slow");
}

#[test]
fn options_are_cached_and_asked_again_when_the_istag_changes() {
    let (n, backend, d) = with_double(IcapAction::Allow, None, "");
    for i in 0..4 {
        assert_eq!(
            client::post(n.port, &format!("/o{i}"), b"x")
                .unwrap()
                .status,
            200
        );
    }
    assert_eq!(d.options_count(), 1, "OPTIONS once per service and worker");
    d.set_istag("\"double-2\"");
    assert_eq!(client::post(n.port, "/o4", b"x").unwrap().status, 200);
    assert_eq!(client::post(n.port, "/o5", b"x").unwrap().status, 200);
    assert_eq!(
        d.options_count(),
        2,
        "a changed ISTag drops the cached OPTIONS"
    );
    assert_eq!(backend.received().len(), 6);
}

#[test]
fn max_connections_is_never_exceeded_and_scans_queue() {
    let (n, backend, d) = with_double(IcapAction::Allow, None, "");
    d.set_options_extra("Max-Connections: 2\r\n");
    let port = n.port;
    let handles: Vec<_> = (0..12)
        .map(|i| {
            std::thread::spawn(move || {
                client::post(port, &format!("/m{i}"), &random_bytes(50_000, i))
                    .unwrap()
                    .status
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 200);
    }
    assert_eq!(backend.received().len(), 12);
    assert_eq!(
        d.max_concurrent(),
        2,
        "scans overlapped up to the limit and never beyond"
    );
}

#[test]
fn pooled_connection_closed_by_the_server_is_replaced_once() {
    let (n, backend, d) = with_double(IcapAction::Allow, None, "");
    d.close_after_each_answer(true);
    for i in 0..4 {
        let r = client::post(n.port, &format!("/c{i}"), b"x").unwrap();
        assert_eq!(r.status, 200, "{}", n.error_log());
    }
    assert_eq!(backend.received().len(), 4);
}

#[test]
fn a_silent_icap_server_is_a_504_after_the_read_timeout_and_nothing_is_forwarded() {
    let (n, backend, _d) =
        with_double(IcapAction::Silent, Some(1024), "ometascan_read_timeout 1s;");
    let t = std::time::Instant::now();
    let r = client::post(n.port, "/a", &random_bytes(100_000, 3)).unwrap();
    assert_eq!(r.status, 504);
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert!(backend.received().is_empty());
    assert!(
        n.error_log().contains("timed out while reading"),
        "{}",
        n.error_log()
    );
}

/// A block answer carrying `field` (its name and value) where c-icap puts X-Infection-Found.
fn block_with(field: &str) -> Vec<u8> {
    let http = "HTTP/1.0 403 Forbidden\r\nContent-Type: text/html\r\n\r\n";
    let page = "blocked";
    format!(
        "ICAP/1.0 200 OK\r\nISTag: \"double-1\"\r\n{field}\r\n\
         Encapsulated: res-hdr=0, res-body={}\r\n\r\n{http}{:x}\r\n{page}\r\n0\r\n\r\n",
        http.len(),
        page.len()
    )
    .into_bytes()
}

#[test]
fn the_threat_name_is_read_from_the_header_each_common_server_uses() {
    let extra = "add_header X-Threat $ometascan_threat always;";
    for (field, want) in [
        (
            "X-Infection-Found: Type=0; Resolution=2; Threat=Win.Test.EICAR_HDB-1;",
            "Win.Test.EICAR_HDB-1",
        ),
        ("X-Virus-ID: EICAR Test String", "EICAR Test String"),
        ("X-Virus-Name: EICAR-Test-File", "EICAR-Test-File"),
        (
            "X-Violations-Found: 1\r\n\teicar.com\r\n\tEICAR_test_file\r\n\t0\r\n\t0",
            "EICAR_test_file",
        ),
        ("X-Blocked-Reason: Virus found: EICAR", "Virus found: EICAR"),
    ] {
        let (n, backend, _d) = with_double(IcapAction::Raw(block_with(field)), None, extra);
        let r = client::post(n.port, "/t.bin", EICAR).unwrap();
        assert_eq!((r.status, r.text().as_str()), (403, "blocked"), "{field}");
        assert_eq!(r.header("x-threat"), Some(want), "{field}");
        assert!(
            n.error_log().contains(&format!("threat \"{want}\"")),
            "{field}: {}",
            n.error_log()
        );
        assert!(backend.received().is_empty());
    }
    // Its twin: a block that names no threat blocks all the same, with none in the log.
    let (n, backend, _d) = with_double(IcapAction::Raw(block_with("X-Other: 1")), None, extra);
    let r = client::post(n.port, "/t.bin", EICAR).unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(r.header("x-threat"), None);
    assert!(!n.error_log().contains("threat \""), "{}", n.error_log());
    assert!(backend.received().is_empty());
}
