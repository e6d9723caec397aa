//! Where a scanner's replacement body goes: memory up to a threshold, then an unlinked temp
//! file, so that a large sanitized body never sits in memory.

use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::BytesMut;

use crate::scan::SanitizedBody;
use crate::scan::ScanError;

static SPILL_SEQ: AtomicU64 = AtomicU64::new(0);

/// An unlinked temp file in `dir`, readable through its descriptor only.
pub fn spill_file(dir: &Path) -> io::Result<std::fs::File> {
    let n = SPILL_SEQ.fetch_add(1, Ordering::Relaxed);
    let path = dir.join(format!("ometascan-{}-{n}", std::process::id()));
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(f)
}

/// Writes to a spilled body's file are gathered up to this many bytes.
const WRITE_BUFFER: usize = 256 * 1024;

/// Collects a body: in memory up to `threshold` bytes, in a temp file beyond.
pub struct BodySink<'a> {
    mem: BytesMut,
    file: Option<(std::fs::File, u64)>,
    threshold: usize,
    dir: &'a Path,
    /// Bytes still accepted (the location's `client_max_body_size`), if bounded.
    room: Option<u64>,
}

impl<'a> BodySink<'a> {
    pub fn new(threshold: usize, dir: &'a Path) -> Self {
        BodySink {
            mem: BytesMut::new(),
            file: None,
            threshold,
            dir,
            room: None,
        }
    }

    /// Refuses a body larger than `max` bytes (`None`: no limit).
    pub fn limited(mut self, max: Option<u64>) -> Self {
        self.room = max;
        self
    }

    pub fn push(&mut self, chunk: &[u8]) -> Result<(), ScanError> {
        if let Some(room) = &mut self.room {
            *room = room.checked_sub(chunk.len() as u64).ok_or_else(|| {
                ScanError::Protocol("the sanitized body is larger than client_max_body_size".into())
            })?;
        }
        match &mut self.file {
            Some((f, len)) => {
                // Small pieces are gathered into writes of WRITE_BUFFER bytes.
                *len += chunk.len() as u64;
                if self.mem.len() + chunk.len() > WRITE_BUFFER {
                    f.write_all(&self.mem).map_err(ScanError::Spill)?;
                    self.mem.clear();
                    if chunk.len() > WRITE_BUFFER {
                        return f.write_all(chunk).map_err(ScanError::Spill);
                    }
                }
                self.mem.extend_from_slice(chunk);
            }
            None if self.mem.len() + chunk.len() > self.threshold => {
                let mut f = spill_file(self.dir).map_err(ScanError::Spill)?;
                f.write_all(&self.mem).map_err(ScanError::Spill)?;
                f.write_all(chunk).map_err(ScanError::Spill)?;
                self.file = Some((f, (self.mem.len() + chunk.len()) as u64));
                self.mem = BytesMut::new();
            }
            None => self.mem.extend_from_slice(chunk),
        }
        Ok(())
    }

    /// The body, with what is still gathered written out.
    pub fn finish(mut self) -> Result<SanitizedBody, ScanError> {
        match self.file.take() {
            Some((mut file, len)) => {
                file.write_all(&self.mem).map_err(ScanError::Spill)?;
                Ok(SanitizedBody::File { file, len })
            }
            None => Ok(SanitizedBody::Memory(self.mem.freeze())),
        }
    }
}

/// Collects a block page, refusing one larger than `max`.
pub struct PageSink {
    buf: BytesMut,
    max: usize,
}

impl PageSink {
    pub fn new(max: usize) -> Self {
        PageSink {
            buf: BytesMut::new(),
            max,
        }
    }

    pub fn push(&mut self, chunk: &[u8]) -> Result<(), ScanError> {
        if self.buf.len() + chunk.len() > self.max {
            return Err(ScanError::PageTooLarge(self.max));
        }
        self.buf.extend_from_slice(chunk);
        Ok(())
    }

    pub fn finish(self) -> bytes::Bytes {
        self.buf.freeze()
    }
}
