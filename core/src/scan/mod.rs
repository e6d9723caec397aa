//! The scan as a whole, independent of the protocol: what is scanned and where
//! ([`ScanRequest`], [`Target`]), how ([`ScanOptions`] and its defaults), what comes back
//! ([`Verdict`], [`ScanError`], [`ScanOutcome`]) and the failover loop over a scanner group
//! ([`Scanner`]).

mod cached;
mod combine;
pub mod error;
pub mod failover;
pub mod form;
mod gates;
mod jobs;
pub mod options;
pub mod relayed;
pub mod report;
pub mod request;
mod response;
mod retry;
pub mod verdict;

pub use error::{ErrorKind, ScanError};
pub use failover::Scanner;
pub use options::{BodyLimits, ScanLimit, ScanOptions, Timeouts, SPILL_THRESHOLD};
pub use report::{Phases, ScanOutcome, UploadReport};
pub use request::{ResponseHead, ScanRequest, Target};
pub(crate) use retry::Failed;
pub use verdict::{ResponsePage, ResultKind, SanitizedBody, Verdict};
