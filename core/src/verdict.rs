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
}

impl SanitizedBody {
    pub fn len(&self) -> u64 {
        match self {
            SanitizedBody::Memory(b) => b.len() as u64,
            SanitizedBody::File { len, .. } => *len,
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
    pub fn name(&self) -> &'static str {
        match self {
            Verdict::Allowed => "allowed",
            Verdict::Sanitized { .. } => "sanitized",
            Verdict::Blocked { .. } => "blocked",
            Verdict::BadRequest { .. } => "bad_request",
        }
    }
}
