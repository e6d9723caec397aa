//! The nginx-independent part of the ometascan module.
//!
//! Everything here works on owned data and tokio, and knows nothing of nginx: the scanner URL,
//! the request to scan ([`ScanRequest`]), the scan protocols (HTTP in [`http`], ICAP in
//! [`icap`], clamd's in [`clamd`]), the failover over a scanner group ([`Scanner`]) and the scanner's answer turned
//! into a [`Verdict`]. The nginx adapter builds a [`ScanRequest`] on the nginx thread, hands it
//! to [`Scanner::scan_decoded`] (every object a backend would see, each scanned through
//! [`Scanner::scan_report`]) on the worker's tokio runtime and applies the verdict it gets
//! back.
//!
//! Map: `scan/` the protocol-free model and the failover loop; `http/` and `icap/` one
//! protocol each, `clamd/` ClamAV's own; `net/` transport, TLS, pools and timeouts; `upstream/` balancer and health
//! checks; `body/` the request body and where a scanner's body goes; `headers`, `disposition`,
//! `methods`, `url`, `notices` small rules of their own.
//!
//! No `unsafe` here but in two audited modules of `net/`: `sendfile` (one `sendfile(2)` call on
//! borrowed descriptors) and `timed_io` (hyper's read cursor over uninitialised memory).
#![deny(unsafe_code)]

pub mod body;
pub mod cache;
pub mod clamd;
pub mod disposition;
pub mod headers;
pub mod http;
pub mod icap;
pub mod methods;
pub mod net;
pub mod notices;
pub mod pieces;
pub mod scan;
pub mod upstream;
pub mod url;

pub use body::{BodyPart, RequestBody};
pub use scan::{
    BodyLimits, ErrorKind, Phases, ResponseHead, ResponsePage, ResultKind, SanitizedBody,
    ScanError, ScanLimit, ScanOptions, ScanOutcome, ScanRequest, Scanner, Target, Timeouts,
    UploadReport, Verdict,
};
pub use url::{ScannerUrl, Scheme};
