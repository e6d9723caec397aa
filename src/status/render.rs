//! The counters in Prometheus text format.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use ometascan_core::{ErrorKind, ResultKind};

use super::shm::{in_flight, unpack, Stats, BUCKETS_MS};

fn r(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// A label's value as the text format wants it: backslash, quote and newline escaped (a local
/// socket's path may hold any of them).
fn label_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// `# HELP` and `# TYPE` lines of a metric.
fn head(o: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

pub fn render(s: &Stats) -> String {
    let mut o = String::with_capacity(4096);
    totals(&mut o, s);
    histogram(&mut o, s);
    servers(&mut o, s);
    caches(&mut o);
    o
}

fn caches(o: &mut String) {
    let zones = crate::cache::zone::zones();
    let name = "ometascan_cache_events_total";
    head(
        o,
        name,
        "counter",
        "Verdict cache events per zone: hits, misses, expired, stores, evictions, invalidations, redis_hits, redis_errors.",
    );
    for (zone, header) in &zones {
        for (event, value) in crate::cache::zone::counters(header) {
            let _ = writeln!(o, "{name}{{zone=\"{zone}\",event=\"{event}\"}} {value}");
        }
    }
}

fn totals(o: &mut String, s: &Stats) {
    let name = "ometascan_requests_total";
    head(
        o,
        name,
        "counter",
        "Requests in scanning locations, by verdict.",
    );
    for k in ResultKind::ALL {
        let _ = writeln!(
            o,
            "{name}{{result=\"{}\"}} {}",
            k.name(),
            r(&s.results[k.index()])
        );
    }
    let name = "ometascan_responses_total";
    head(
        o,
        name,
        "counter",
        "Responses in locations that scan them, by verdict.",
    );
    for k in ResultKind::ALL {
        let _ = writeln!(
            o,
            "{name}{{result=\"{}\"}} {}",
            k.name(),
            r(&s.response_results[k.index()])
        );
    }
    let name = "ometascan_errors_total";
    head(o, name, "counter", "Failed scans, by kind.");
    for k in ErrorKind::ALL {
        let _ = writeln!(
            o,
            "{name}{{kind=\"{}\"}} {}",
            k.name(),
            r(&s.errors[k.index()])
        );
    }
    let name = "ometascan_scanned_bytes_total";
    head(
        o,
        name,
        "counter",
        "Body bytes (of requests and responses) sent to scanners.",
    );
    let _ = writeln!(o, "{name} {}", r(&s.bytes));
    let name = "ometascan_pieces_total";
    head(
        o,
        name,
        "counter",
        "Uploads in pieces: files assembled and allowed, blocked; pieces refused.",
    );
    for e in crate::status::shm::PieceEvent::ALL {
        let _ = writeln!(
            o,
            "{name}{{event=\"{}\"}} {}",
            e.name(),
            r(&s.pieces[e as usize])
        );
    }
    let name = "ometascan_uploads_in_progress";
    head(
        o,
        name,
        "gauge",
        "Uploads in pieces the spool holds a copy of, by spool directory.",
    );
    if let Some(main) = crate::conf::main::running() {
        for spool in &main.spools {
            let dir = label_value(&spool.dir().to_string_lossy());
            let _ = writeln!(o, "{name}{{spool=\"{dir}\"}} {}", spool.uploads());
        }
    }
    let name = "ometascan_scans_queued_total";
    head(
        o,
        name,
        "counter",
        "Scans that waited for a turn (max_scans, max_conns).",
    );
    let _ = writeln!(o, "{name} {}", r(&s.queued));
    let name = "ometascan_scans_rejected_total";
    head(
        o,
        name,
        "counter",
        "Scans refused for want of a turn (503).",
    );
    let _ = writeln!(o, "{name} {}", r(&s.errors[ErrorKind::Busy.index()]));
    let name = "ometascan_scans_in_flight";
    head(o, name, "gauge", "Scans waiting for a verdict.");
    let _ = writeln!(o, "{name} {}", in_flight(s));
}

fn histogram(o: &mut String, s: &Stats) {
    let name = "ometascan_scan_duration_seconds";
    head(
        o,
        name,
        "histogram",
        "Time from the start of a scan to its verdict.",
    );
    for (i, b) in BUCKETS_MS.iter().enumerate() {
        let le = *b as f64 / 1000.0;
        let _ = writeln!(o, "{name}_bucket{{le=\"{le}\"}} {}", r(&s.buckets[i]));
    }
    let _ = writeln!(o, "{name}_bucket{{le=\"+Inf\"}} {}", r(&s.time_count));
    let _ = writeln!(o, "{name}_sum {:.3}", r(&s.time_sum_ms) as f64 / 1000.0);
    let _ = writeln!(o, "{name}_count {}", r(&s.time_count));
}

fn servers(o: &mut String, s: &Stats) {
    let metrics = [
        (
            "ometascan_server_scans_total",
            "counter",
            "Scans per scanner server.",
        ),
        (
            "ometascan_server_failures_total",
            "counter",
            "Failed scans per scanner server.",
        ),
        (
            "ometascan_server_down_workers",
            "gauge",
            "Workers that consider the server down.",
        ),
    ];
    for (name, kind, help) in metrics {
        head(o, name, kind, help);
    }
    for server in s.servers.iter().filter(|sv| r(&sv.key) != 0) {
        let addr = label_value(&unpack(&server.name));
        let values = [&server.scans, &server.failures, &server.down_workers];
        for ((name, _, _), v) in metrics.iter().zip(values) {
            let _ = writeln!(o, "{name}{{server=\"{addr}\"}} {}", r(v));
        }
    }
}
