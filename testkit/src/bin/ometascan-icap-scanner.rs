//! Runs c-icap + ClamAV (Debian's packages) with a signature database that detects the EICAR
//! test string, for demos. Prints the service URL, runs until its standard input closes, then
//! stops both servers.
//!
//! Usage: ometascan-icap-scanner < control-pipe

use std::io::Read;

use ometascan_testkit::cicap::{CIcap, CIcapConfig};

fn main() {
    // OMETASCAN_CLAMD_CACHE=off: ClamAV scans every body again (benchmarks over repeating data).
    let cache = std::env::var("OMETASCAN_CLAMD_CACHE").map_or(true, |v| v != "off");
    let scanner = CIcap::start_with(CIcapConfig {
        clamd_cache: cache,
        ..CIcapConfig::default()
    });
    eprintln!("pids {:?}", scanner.pids());
    println!("{}", scanner.url("virus_scan"));
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    drop(scanner);
}
