//! Why a scan failed. Every failure fails closed: the adapter answers 502, or 504 for timeouts.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("connect() to {addr} failed ({})", os_error(.source))]
    Connect { addr: String, source: io::Error },
    #[error("could not resolve scanner host \"{0}\"")]
    Resolve(String),
    #[error("scanner timed out while connecting")]
    ConnectTimeout,
    #[error("scanner timed out while sending the request")]
    SendTimeout,
    #[error("scanner timed out while reading the response")]
    ReadTimeout,
    #[error("SSL handshake with the scanner failed: {0}")]
    Tls(String),
    #[error("scanner closed the connection prematurely")]
    Closed,
    #[error("scanner sent an invalid response: {0}")]
    Protocol(String),
    #[error("scanner response header is too large")]
    HeaderTooLarge,
    #[error("scanner response page is larger than {0} bytes")]
    PageTooLarge(usize),
    #[error("reading the body failed ({})", os_error(.0))]
    Body(io::Error),
    #[error("storing the scanner's body failed ({})", os_error(.0))]
    Spill(io::Error),
    #[error("I/O error talking to the scanner ({})", os_error(.0))]
    Io(io::Error),
    #[error("the request cannot be sent to the scanner: {0}")]
    Request(String),
    #[error("{0} scanners are not supported")]
    Unsupported(&'static str),
    #[error("no live scanners")]
    NoLiveScanner,
    #[error("internal error in the scanner client")]
    Internal,
    /// The body could not be decoded for scanning (corrupt stream, unknown coding): 502.
    #[error("the body cannot be decoded for scanning: {0}")]
    Decode(String),
    /// The decoded body is over its limit (a decompression bomb): 413.
    #[error("the decoded body is over {0} bytes")]
    DecodedTooLarge(u64),
    /// No turn within the wait (scan limit or the servers' `max_conns`): 503.
    #[error("no free scan slot within {0:?} ({1})")]
    Busy(std::time::Duration, &'static str),
    /// The module cannot see the body the way every backend would (parsers read it
    /// differently), or a limit of that reading was reached: 400 or 413, nothing forwarded.
    #[error("the body is refused: {reason}")]
    Refused { status: u16, reason: String },
    /// The module could not start the scan (no memory, a header it cannot copy, ...): 500.
    #[error("{0}")]
    Module(String),
    /// A piece of an upload whose file cannot be assembled from what the module saw (its
    /// first pieces went elsewhere, its offset does not fit): 409, counted as refused; a
    /// failure `ometascan_on_error pass` lets through.
    #[error("the upload cannot be assembled for scanning: {0}")]
    Unassembled(String),
}

/// The classes of failure, as the status counters name them: the one list of error kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Connect,
    Timeout,
    Tls,
    Protocol,
    Io,
    Internal,
    /// Rejected for want of a scan slot.
    Busy,
    /// The body could not be decoded for scanning.
    Decode,
    /// The body was refused: read differently by different parsers, or over a limit.
    Refused,
}

impl ErrorKind {
    /// Every kind, in the order of their counters.
    pub const ALL: [ErrorKind; 9] = [
        ErrorKind::Connect,
        ErrorKind::Timeout,
        ErrorKind::Tls,
        ErrorKind::Protocol,
        ErrorKind::Io,
        ErrorKind::Internal,
        ErrorKind::Busy,
        ErrorKind::Decode,
        ErrorKind::Refused,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Tls => "tls",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Io => "io",
            ErrorKind::Internal => "internal",
            ErrorKind::Busy => "busy",
            ErrorKind::Decode => "decode",
            ErrorKind::Refused => "refused",
        }
    }

    /// Its place in [`ErrorKind::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl ScanError {
    /// A body that parsers would read differently: 400.
    pub fn ambiguous(reason: impl Into<String>) -> Self {
        ScanError::Refused {
            status: 400,
            reason: reason.into(),
        }
    }

    /// A body over a limit of what the module reads out of it: 413.
    pub fn over_limit(reason: impl Into<String>) -> Self {
        ScanError::Refused {
            status: 413,
            reason: reason.into(),
        }
    }

    /// Timeouts are answered with 504, everything else with 502.
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            ScanError::ConnectTimeout | ScanError::SendTimeout | ScanError::ReadTimeout
        )
    }

    /// Whether the failure says something about the scanner server (counted for its health).
    pub fn is_server_failure(&self) -> bool {
        matches!(
            self,
            ScanError::Connect { .. }
                | ScanError::ConnectTimeout
                | ScanError::SendTimeout
                | ScanError::ReadTimeout
                | ScanError::Tls(_)
                | ScanError::Closed
                | ScanError::Protocol(_)
                | ScanError::HeaderTooLarge
                | ScanError::Io(_)
        )
    }

    /// Whether a kept-alive connection may have been closed or reset by the scanner while it
    /// sat idle: such a failure on a reused connection is worth one try on a fresh one.
    pub fn is_connection_loss(&self) -> bool {
        matches!(self, ScanError::Closed | ScanError::Io(_))
    }

    /// The class of failure the status counters and logs use.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ScanError::Connect { .. } | ScanError::Resolve(_) | ScanError::NoLiveScanner => {
                ErrorKind::Connect
            }
            ScanError::ConnectTimeout | ScanError::SendTimeout | ScanError::ReadTimeout => {
                ErrorKind::Timeout
            }
            ScanError::Tls(_) => ErrorKind::Tls,
            ScanError::Protocol(_)
            | ScanError::HeaderTooLarge
            | ScanError::PageTooLarge(_)
            | ScanError::Closed => ErrorKind::Protocol,
            ScanError::Io(_) => ErrorKind::Io,
            ScanError::Body(_)
            | ScanError::Spill(_)
            | ScanError::Request(_)
            | ScanError::Unsupported(_)
            | ScanError::Internal
            | ScanError::Module(_) => ErrorKind::Internal,
            ScanError::Busy(..) => ErrorKind::Busy,
            ScanError::Decode(_) | ScanError::DecodedTooLarge(_) => ErrorKind::Decode,
            ScanError::Refused { .. } | ScanError::Unassembled(_) => ErrorKind::Refused,
        }
    }

    /// Whether `ometascan_on_error pass` may let the request through unscanned: not when the
    /// body itself could not be decoded (a bomb or a corrupt stream is never passed).
    pub fn may_pass_unscanned(&self) -> bool {
        !matches!(
            self,
            ScanError::Decode(_) | ScanError::DecodedTooLarge(_) | ScanError::Refused { .. }
        )
    }

    /// The HTTP status the client gets for this failure.
    pub fn status(&self) -> u16 {
        if self.is_timeout() {
            504
        } else if matches!(self, ScanError::Module(_)) {
            500
        } else if matches!(self, ScanError::Busy(..)) {
            503
        } else if matches!(self, ScanError::DecodedTooLarge(_)) {
            413
        } else if let ScanError::Refused { status, .. } = self {
            *status
        } else if matches!(self, ScanError::Unassembled(_)) {
            409
        } else {
            502
        }
    }
}

/// An I/O error the way nginx prints one: `111: Connection refused`.
pub fn os_error(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => {
            let text = io::Error::from_raw_os_error(code).to_string();
            let text = text.split(" (os error").next().unwrap_or(&text).to_string();
            format!("{code}: {text}")
        }
        None => e.to_string(),
    }
}
