//! A scan's result together with what the access log wants to know about it: which server
//! answered, with which status, after how long. The protocol clients note the server and the
//! status as they go; [`crate::scan::Scanner::scan_report`] collects them.

use std::net::SocketAddr;
use std::time::Duration;

use crate::scan::{ScanError, Verdict};

tokio::task_local! {
    /// The server tried last and the status of its answer, for the scan's report.
    pub(crate) static ANSWER: std::cell::Cell<(Option<SocketAddr>, Option<u16>)>;
}

/// Records the status line of the scanner's answer (HTTP or ICAP).
pub(crate) fn note_status(status: u16) {
    let _ = ANSWER.try_with(|c| c.set((c.get().0, Some(status))));
}

pub(crate) fn note_server(addr: SocketAddr) {
    let _ = ANSWER.try_with(|c| c.set((Some(addr), None)));
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
}
