//! The one decision a failed try leaves behind: what may be tried next.

use crate::scan::ScanError;

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

    /// The failure, whatever the decision.
    pub(crate) fn into_error(self) -> ScanError {
        match self {
            Failed::BeforeAnswer(e) | Failed::Final(e) => e,
        }
    }
}
