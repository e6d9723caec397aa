//! Runs c-icap + ClamAV (Debian's packages), or with `clamd` ClamAV's clamd alone on a TCP
//! port of 127.0.0.1, with a signature database that detects the EICAR test string, for demos
//! and the benchmark. Prints the scanner's URL (`icap://...` or `clamd://...`), runs until its
//! standard input closes or it gets SIGTERM/SIGINT/SIGHUP, then stops the servers.
//!
//! Usage: ometascan-icap-scanner [clamd] < control-pipe

use std::io::Read;

use ometascan_testkit::cicap::{CIcap, CIcapConfig};
use ometascan_testkit::clamd::{Clamd, ClamdConfig};

/// What runs: c-icap with its clamd, or clamd alone.
enum Running {
    CIcap(CIcap),
    Clamd(Clamd),
}

impl Running {
    /// Stops the servers (they stop when dropped).
    fn stop(self) {
        match self {
            Running::CIcap(c) => drop(c),
            Running::Clamd(c) => drop(c),
        }
    }
}

/// Blocks the stop signals in every thread (set before any thread starts) and returns them.
fn block_stop_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; it is initialised by sigemptyset before any other use,
    // and pthread_sigmask only reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

fn main() {
    let stop = block_stop_signals();
    // OMETASCAN_CLAMD_CACHE=off: ClamAV scans every body again (benchmarks over repeating data).
    let cache = std::env::var("OMETASCAN_CLAMD_CACHE").map_or(true, |v| v != "off");
    let scanner = if std::env::args().nth(1).as_deref() == Some("clamd") {
        let clamd = Clamd::start_with(ClamdConfig {
            tcp: true,
            cache,
            ..ClamdConfig::default()
        });
        eprintln!("pids ({}, {})", clamd.pid(), clamd.pid());
        println!("{}", clamd.url());
        println!("clamd+unix://{}", clamd.socket().display());
        Running::Clamd(clamd)
    } else {
        let cicap = CIcap::start_with(CIcapConfig {
            clamd_cache: cache,
            ..CIcapConfig::default()
        });
        eprintln!("pids {:?}", cicap.pids());
        println!("{}", cicap.url("virus_scan"));
        Running::CIcap(cicap)
    };
    std::thread::spawn(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
        // End of the control pipe: the same way out as a signal.
        // SAFETY: kill(2) on our own process.
        unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
    });
    let mut sig = 0;
    // SAFETY: `stop` was initialised by block_stop_signals; `sig` is a valid out pointer.
    unsafe { libc::sigwait(&stop, &mut sig) };
    scanner.stop();
}
