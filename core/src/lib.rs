//! The nginx-independent part of the ometascan module.
//!
//! Everything here works on owned data and tokio: the scanner URL, the request to scan
//! ([`ScanRequest`]), the scanner's answer turned into a [`Verdict`], and the HTTP scan
//! protocol client. The nginx adapter builds a [`ScanRequest`] on the nginx thread, hands it
//! to [`Scanner::scan`] on the worker's tokio runtime and applies the verdict it gets back.

pub mod balancer;
pub mod body;
pub mod disposition;
pub mod error;
pub mod headers;
pub mod health;
pub mod http_scan;
pub mod icap;
pub mod icap_client;
pub mod methods;
pub mod notices;
pub mod pool;
pub mod sink;
pub mod timed_io;
pub mod tls;
pub mod transport;
pub mod url;
pub mod verdict;

pub use body::{BodyPart, RequestBody};
pub use error::ScanError;
pub use http_scan::{ScanOptions, ScanRequest, Scanner, Timeouts};
pub use url::{ScannerUrl, Scheme};
pub use verdict::{ResponsePage, SanitizedBody, Verdict};
