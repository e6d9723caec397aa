//! A stand-in scanner for demos: speaks the HTTP scan protocol, blocks bodies that contain the
//! EICAR test string (403 page) and allows everything else (204).
//!
//! Usage: ometascan-scanner-double [ADDR] [allow]   (default 127.0.0.1:8081; `allow`: allow
//! everything without looking at the body, for benchmarks)

use ometascan_testkit::{Action, ScannerDouble};

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8081".into());
    let allow_all = std::env::args().nth(2).as_deref() == Some("allow");
    let action = if allow_all {
        Action::Allow
    } else {
        Action::EicarAware
    };
    let double = ScannerDouble::bind(&addr, action);
    // Bodies are hashed; the EICAR check needs them kept.
    double.keep_bodies_up_to(if allow_all { 0 } else { 16 << 20 });
    println!(
        "scanner double listening on 127.0.0.1:{} ({})",
        double.port(),
        if allow_all {
            "allows all"
        } else {
            "blocks EICAR"
        }
    );
    let mut seen = 0;
    loop {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let received = double.received();
        for r in &received[seen..] {
            println!(
                "scanner: {} {} ({} bytes)",
                r.method(),
                r.target(),
                r.body_len
            );
        }
        seen = received.len();
    }
}
