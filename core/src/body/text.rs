//! Values that are plain text, and the one object they are scanned in together.
//!
//! A short value that is plain text (UTF-8 without control bytes but TAB, CR and LF) cannot
//! hide anything from a scanner when it is scanned next to other such values: it is no
//! container, nothing is unpacked from it. Short binary values go into a tar bundle
//! ([`crate::body::bundle`]); longer values than [`JOIN_MAX`] are scanned alone, and a base64
//! value's decoding too.

use std::path::Path;

use crate::body::sink::BodySink;
use crate::body::RequestBody;
use crate::scan::{ScanError, SPILL_THRESHOLD};

/// Longest value scanned together with others; a longer one is an object of its own.
pub const JOIN_MAX: usize = 4096;

/// Whether `v` is plain text.
pub fn is_text(v: &[u8]) -> bool {
    match std::str::from_utf8(v) {
        Ok(s) => !s
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\t' | '\r' | '\n')),
        Err(_) => false,
    }
}

/// Text values one after the other, each on a line of its own.
pub struct Joined<'a> {
    sink: BodySink<'a>,
    count: usize,
}

impl<'a> Joined<'a> {
    pub fn new(dir: &'a Path) -> Self {
        Joined {
            sink: BodySink::new(SPILL_THRESHOLD, dir),
            count: 0,
        }
    }

    pub fn push(&mut self, v: &[u8]) -> Result<(), ScanError> {
        self.sink.push(v)?;
        self.sink.push(b"\n")?;
        self.count += 1;
        Ok(())
    }

    /// The values together, or `None` when there were none.
    pub fn finish(self) -> Result<Option<RequestBody>, ScanError> {
        if self.count == 0 {
            return Ok(None);
        }
        Ok(Some(self.sink.finish()?.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_utf8_without_control_bytes() {
        assert!(is_text(b"Montr\xc3\xa9al\r\n\tx"));
        assert!(is_text(b""));
        assert!(!is_text(b"a\x00b"));
        assert!(!is_text(b"\x1f\x8b\x08"));
        assert!(!is_text(b"caf\xe9"));
    }
}
