//! The outcome of a scan, in owned data the adapter can apply on the nginx thread.

use std::fs::File;

use bytes::Bytes;

use crate::headers::HeaderList;

/// A complete HTTP response to relay to the client (the scanner's block page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponsePage {
    pub status: u16,
    /// Fields to send, hop-by-hop ones and `Content-Length` already removed.
    pub headers: HeaderList,
    pub body: Bytes,
    /// The `Content-Length` the scanner declared for a page it did not send (its answer to a
    /// `HEAD` request), for the client's `HEAD` answer.
    pub head_length: Option<u64>,
}

/// The body the scanner returned in place of the client's.
#[derive(Debug)]
pub enum SanitizedBody {
    Memory(Bytes),
    /// Spilled to an unlinked temp file; `len` bytes from offset 0.
    File {
        file: File,
        len: u64,
    },
    /// Pieces in order: memory the module owns (never memory lent by nginx) and file ranges
    /// (a form rebuilt around its sanitized parts).
    Parts(crate::body::RequestBody),
}

impl SanitizedBody {
    pub fn len(&self) -> u64 {
        match self {
            SanitizedBody::Memory(b) => b.len() as u64,
            SanitizedBody::File { len, .. } => *len,
            SanitizedBody::Parts(body) => body.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug)]
pub enum Verdict {
    /// Forward the client's request unchanged.
    Allowed,
    /// Forward the request with this body instead of the client's.
    Sanitized {
        body: SanitizedBody,
        /// The scanner's `Content-Type`, to replace the client's.
        content_type: Option<Bytes>,
        /// The scanner's `Content-Disposition`, whose filename replaces the client's.
        content_disposition: Option<Bytes>,
        /// Request line and headers to forward instead of the client's (ICAP).
        headers: Option<HeaderList>,
    },
    /// Relay this response; nothing goes to the backend.
    Blocked {
        page: ResponsePage,
        threat: Option<String>,
    },
    /// The scanner could not parse the request (400).
    BadRequest { page: ResponsePage },
}

impl Verdict {
    pub fn kind(&self) -> ResultKind {
        match self {
            Verdict::Allowed => ResultKind::Allowed,
            Verdict::Sanitized { .. } => ResultKind::Sanitized,
            Verdict::Blocked { .. } => ResultKind::Blocked,
            Verdict::BadRequest { .. } => ResultKind::BadRequest,
        }
    }
}

/// What became of a request, as `$ometascan_result`, the status counters and the logs name
/// it: the one list of results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultKind {
    Allowed,
    Sanitized,
    Blocked,
    BadRequest,
    /// The scan failed (or could not start): 502/504/500.
    Error,
    /// Scanning is configured, but not for this request (method without a body, not listed,
    /// `ometascan_bypass`).
    Skipped,
    /// Forwarded without a verdict: the scan failed under `ometascan_on_error pass`, or the
    /// body was over `ometascan_max_size ... over=pass`.
    Unscanned,
    /// Refused for its size (`ometascan_max_size`): 413.
    TooLarge,
}

impl ResultKind {
    /// Every kind, in the order of their counters.
    pub const ALL: [ResultKind; 8] = [
        ResultKind::Allowed,
        ResultKind::Sanitized,
        ResultKind::Blocked,
        ResultKind::BadRequest,
        ResultKind::Error,
        ResultKind::Skipped,
        ResultKind::Unscanned,
        ResultKind::TooLarge,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ResultKind::Allowed => "allowed",
            ResultKind::Sanitized => "sanitized",
            ResultKind::Blocked => "blocked",
            ResultKind::BadRequest => "bad_request",
            ResultKind::Error => "error",
            ResultKind::Skipped => "skipped",
            ResultKind::Unscanned => "unscanned",
            ResultKind::TooLarge => "too_large",
        }
    }

    /// Its place in [`ResultKind::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}
