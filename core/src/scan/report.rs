//! A scan's result together with what the access log wants to know about it: which server
//! answered, with which status, after how long. The protocol clients note the server and the
//! status as they go; [`crate::scan::Scanner::scan_report`] collects them.

use std::time::Duration;

use crate::net::peer::PeerAddr;
use crate::scan::{ScanError, Verdict};

/// What the protocol clients note while a scan runs.
#[derive(Debug, Clone, Default)]
pub(crate) struct Notes {
    pub server: Option<PeerAddr>,
    pub status: Option<u16>,
    pub queued: bool,
    /// The hash of the ISTag the ICAP service answered under.
    pub istag: Option<[u8; 32]>,
    pub phases: Phases,
}

/// Where a scan's time went, summed over its exchanges with scanners (a form's parts, a
/// retry on another server): waiting for a turn (`ometascan_max_scans`, `max_conns`),
/// connecting (and the TLS handshake), sending the request and its body, waiting for and
/// reading the answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Phases {
    pub wait: Duration,
    pub connect: Duration,
    pub send: Duration,
    pub answer: Duration,
}

impl Phases {
    /// Adds `other`'s times to these.
    pub fn add(&mut self, other: &Phases) {
        self.wait += other.wait;
        self.connect += other.connect;
        self.send += other.send;
        self.answer += other.answer;
    }
}

tokio::task_local! {
    /// The server tried last, the status of its answer, whether the scan waited for a turn.
    pub(crate) static ANSWER: std::cell::RefCell<Notes>;
}

fn note(f: impl FnOnce(&mut Notes)) {
    let _ = ANSWER.try_with(|c| f(&mut c.borrow_mut()));
}

/// Records the status line of the scanner's answer (HTTP or ICAP).
pub(crate) fn note_status(status: u16) {
    note(|n| n.status = Some(status));
}

pub(crate) fn note_server(addr: &PeerAddr) {
    note(|n| {
        n.server = Some(addr.clone());
        n.status = None;
    });
}

/// The scan had to wait for a turn (a scan limit or a server's `max_conns`).
pub(crate) fn note_queued() {
    note(|n| n.queued = true);
}

/// Time spent waiting for a turn.
pub(crate) fn note_wait(d: Duration) {
    note(|n| n.phases.wait += d);
}

/// Time spent connecting to a scanner.
pub(crate) fn note_connect(d: Duration) {
    note(|n| n.phases.connect += d);
}

/// An exchange with a scanner: the time spent handing the request over, and then waiting for
/// and reading the answer.
pub(crate) fn note_exchange(send: Duration, answer: Duration) {
    note(|n| {
        n.phases.send += send;
        n.phases.answer += answer;
    });
}

/// The ISTag of an ICAP answer (the one announced in OPTIONS when the answer has none).
pub(crate) fn note_istag(istag: &str) {
    let digest = crate::cache::key::istag_digest(istag);
    note(|n| n.istag = Some(digest));
}

/// A scan's result with what the access log wants to know about it.
#[derive(Debug)]
pub struct ScanOutcome {
    pub result: Result<Verdict, ScanError>,
    /// The server that decided (or was tried last).
    pub server: Option<PeerAddr>,
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
    /// What the verdict cache did (`None`: no cache in this location).
    pub cache: Option<crate::cache::CacheStatus>,
    /// The upload in pieces the request was a piece of (`ometascan_pieces`).
    pub upload: Option<Box<UploadReport>>,
    /// Where the scan's time went.
    pub phases: Phases,
    /// From the end of the scan to nginx resuming the request (set by the adapter).
    pub handback: Duration,
}

/// What a piece did to its upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadReport {
    /// The upload's key (a tus upload's path, an S3 object's path and upload id, ...).
    pub key: String,
    /// The bytes of the assembled file scanned because of this piece, if it was scanned.
    pub assembled: Option<u64>,
}

impl ScanOutcome {
    /// A verdict given again from the verdict cache: no server, no status, no wait.
    pub fn from_cache(verdict: Verdict, elapsed: Duration) -> Self {
        ScanOutcome {
            result: Ok(verdict),
            server: None,
            status: None,
            elapsed,
            queued: false,
            objects: 0,
            part: None,
            cache: Some(crate::cache::CacheStatus::Hit),
            upload: None,
            phases: Phases::default(),
            handback: Duration::ZERO,
        }
    }

    /// A scan that failed before it started.
    pub fn failed(e: ScanError) -> Self {
        ScanOutcome {
            result: Err(e),
            server: None,
            status: None,
            elapsed: Duration::ZERO,
            queued: false,
            objects: 0,
            part: None,
            cache: None,
            upload: None,
            phases: Phases::default(),
            handback: Duration::ZERO,
        }
    }
}
