//! A scan's result together with what the access log wants to know about it: which server
//! answered, with which status, after how long. The protocol clients note the server and the
//! status as they go; [`crate::scan::Scanner::scan_report`] collects them.

use std::net::SocketAddr;
use std::time::Duration;

use crate::scan::{ScanError, Verdict};

/// What the protocol clients note while a scan runs.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Notes {
    pub server: Option<SocketAddr>,
    pub status: Option<u16>,
    pub queued: bool,
}

tokio::task_local! {
    /// The server tried last, the status of its answer, whether the scan waited for a turn.
    pub(crate) static ANSWER: std::cell::Cell<Notes>;
}

fn note(f: impl FnOnce(&mut Notes)) {
    let _ = ANSWER.try_with(|c| {
        let mut n = c.get();
        f(&mut n);
        c.set(n);
    });
}

/// Records the status line of the scanner's answer (HTTP or ICAP).
pub(crate) fn note_status(status: u16) {
    note(|n| n.status = Some(status));
}

pub(crate) fn note_server(addr: SocketAddr) {
    note(|n| {
        n.server = Some(addr);
        n.status = None;
    });
}

/// The scan had to wait for a turn (a scan limit or a server's `max_conns`).
pub(crate) fn note_queued() {
    note(|n| n.queued = true);
}

/// A scan's result with what the access log wants to know about it.
#[derive(Debug)]
pub struct ScanOutcome {
    pub result: Result<Verdict, ScanError>,
    /// The server that decided (or was tried last).
    pub server: Option<SocketAddr>,
    /// The status of its answer.
    pub status: Option<u16>,
    /// How long the scan took.
    pub elapsed: Duration,
    /// Whether it waited for a turn.
    pub queued: bool,
    /// Objects sent to the scanner for it (the parts of a form, or 1).
    pub objects: usize,
    /// The part of a form that decided (blocked or failed), as `field "f", file "a.gz"`.
    pub part: Option<String>,
}
