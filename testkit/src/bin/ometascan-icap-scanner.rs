//! Runs c-icap + ClamAV (Debian's packages) with a signature database that detects the EICAR
//! test string, for demos. Prints the service URL, runs until its standard input closes, then
//! stops both servers.
//!
//! Usage: ometascan-icap-scanner < control-pipe

use std::io::Read;

use ometascan_testkit::cicap::CIcap;

fn main() {
    let scanner = CIcap::start();
    println!("{}", scanner.url("virus_scan"));
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    drop(scanner);
}
