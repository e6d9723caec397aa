//! A stand-in scanner for demos: speaks the HTTP scan protocol, blocks bodies that contain the
//! EICAR test string (403 page) and allows everything else (204).
//!
//! Usage: ometascan-scanner-double [ADDR] [allow] [delay=SECS]
//!   ADDR       default 127.0.0.1:8081
//!   allow      allow everything without looking at the body (benchmarks)
//!   delay=SECS wait this long before each answer (a slow scanner)
//!   slow-read=SECS pause this long after every piece of body read (a slow reader), then allow

use std::time::Duration;

use ometascan_testkit::{Action, ScannerDouble};

/// The value of an argument `PREFIX<seconds>`; exits on a bad number.
fn seconds(args: &[String], prefix: &str) -> Option<Duration> {
    let s = args.iter().find_map(|a| a.strip_prefix(prefix))?;
    match s.parse::<f64>() {
        Ok(v) if v >= 0.0 && v.is_finite() => Some(Duration::from_secs_f64(v)),
        _ => {
            eprintln!("ometascan-scanner-double: bad {prefix}\"{s}\"");
            std::process::exit(2);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr = args
        .first()
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:8081".into());
    let allow_all = args.iter().any(|a| a == "allow");
    let delay = seconds(&args, "delay=");
    let mut action = if allow_all {
        Action::Allow
    } else {
        Action::EicarAware
    };
    if let Some(d) = delay {
        action = Action::Delay(d, Box::new(action));
    }
    if let Some(p) = seconds(&args, "slow-read=") {
        action = Action::SlowRead(p);
    }
    let double = ScannerDouble::bind(&addr, action);
    // Bodies are hashed; the EICAR check needs them kept.
    double.keep_bodies_up_to(if allow_all { 0 } else { 16 << 20 });
    println!(
        "scanner double listening on 127.0.0.1:{} ({}{})",
        double.port(),
        if allow_all {
            "allows all"
        } else {
            "blocks EICAR"
        },
        delay
            .map(|d| format!(", answers after {d:?}"))
            .unwrap_or_default()
    );
    let mut seen = 0;
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let received = double.received_since(seen);
        for r in &received {
            println!(
                "scanner: {} {} ({} bytes)",
                r.method(),
                r.target(),
                r.body_len
            );
        }
        seen += received.len();
    }
}
