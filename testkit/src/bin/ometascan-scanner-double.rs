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
    let double = ScannerDouble::bind(&addr, Action::EicarAware);
    println!(
        "scanner double listening on 127.0.0.1:{} (blocks EICAR)",
        double.port()
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
