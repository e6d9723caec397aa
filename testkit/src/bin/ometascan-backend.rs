//! A backend for demos: answers 200 to everything and prints what it received.
//!
//! Usage: ometascan-backend [ADDR]   (default 127.0.0.1:8082)

use ometascan_testkit::Backend;

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8082".into());
    let backend = Backend::bind(&addr);
    // Bodies are hashed, not kept.
    backend.keep_bodies_up_to(0);
    println!("backend listening on 127.0.0.1:{}", backend.port());
    let mut seen = 0;
    loop {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let received = backend.received_since(seen);
        for r in &received {
            println!(
                "backend: {} {} ({} bytes, fnv1a {:016x})",
                r.method(),
                r.target(),
                r.body_len,
                r.body_hash
            );
        }
        seen += received.len();
    }
}
