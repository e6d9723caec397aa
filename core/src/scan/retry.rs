//! The one decision a failed try leaves behind: what may be tried next.

use crate::scan::{ScanError, Verdict};

/// How far a failed try on one server got.
#[derive(Debug)]
pub(crate) enum Failed {
    /// Nothing of an answer arrived (refused, connect timeout, closed or reset before the
    /// first byte, OPTIONS failed): another server of the group may take the scan.
    BeforeAnswer(ScanError),
    /// The server answered, or the failure is not the server's: this is the scan's result.
    Final(ScanError),
}

impl Failed {
    /// On a kept-alive connection, whether the scan goes once more on a fresh connection to the
    /// same server: the connection was lost (closed or reset, as a scanner does with idle
    /// connections) before a complete answer, so nothing was decided or forwarded.
    pub(crate) fn retry_on_fresh_connection(&self) -> bool {
        match self {
            Failed::BeforeAnswer(e) | Failed::Final(e) => e.is_connection_loss(),
        }
    }

    /// What a try on a kept-alive connection leaves: `None` when the scan goes once more on a
    /// fresh connection (logged), else the result to return (a failure is then final: the
    /// server was reached).
    pub(crate) fn after_pooled_try(
        result: Result<Verdict, Failed>,
        what: &str,
    ) -> Option<Result<Verdict, Failed>> {
        match result {
            Ok(v) => Some(Ok(v)),
            Err(f) if f.retry_on_fresh_connection() => {
                let e = f.into_error();
                tracing::info!("pooled {what} connection failed ({e}), retrying on a new one");
                None
            }
            Err(f) => Some(Err(Failed::Final(f.into_error()))),
        }
    }

    /// The failure, whatever the decision.
    pub(crate) fn into_error(self) -> ScanError {
        match self {
            Failed::BeforeAnswer(e) | Failed::Final(e) => e,
        }
    }
}
