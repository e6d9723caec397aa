//! A response held while it is scanned: its body as the filters gave it (memory copied, files
//! shared by a descriptor of the module's own), the scan's state; kept with the request's state
//! (`request::ctx`), so that it outlives internal redirects and is dropped with the request.

use std::fs::File;
use std::sync::Arc;

use bytes::Bytes;
use ngx::ffi::*;
use ometascan_core::{BodyPart, RequestBody, ScanError};

use crate::ngx_ext::hooks::Buf;
use crate::request::job::module_error;
use crate::request::report::Report;
use crate::runtime::{self, SlotId};

/// Memory a held response may take before what follows goes to a temp file.
const IN_MEMORY: usize = 1 << 20;

/// Where a held response is.
#[derive(Clone, Copy)]
pub enum Phase {
    /// The body is being taken from the filters.
    Holding,
    Scanning(SlotId),
    /// Released (passed, replaced or refused): the filters let everything through.
    Released,
}

/// A response under the module's hold.
pub struct Held {
    pub phase: Phase,
    /// What the `$ometascan_response_*` variables show.
    pub report: Report,
    pub body: RequestBody,
    /// Bytes taken from memory buffers not yet in `body` (joined into one piece, then kept in
    /// memory or written to the spill file).
    pending: Vec<u8>,
    /// The unlinked file memory beyond [`IN_MEMORY`] goes to, and its length.
    spill: Option<(Arc<File>, u64)>,
    in_memory: usize,
    /// The directory of the spill file (the location's `client_body_temp_path`).
    dir: std::path::PathBuf,
    /// The files the filters' buffers were in, by nginx's descriptor, with ours.
    files: Vec<(ngx_fd_t, Arc<File>)>,
}

impl Held {
    pub fn new(dir: std::path::PathBuf) -> Self {
        Held {
            phase: Phase::Holding,
            report: Report::default(),
            body: RequestBody::new(),
            pending: Vec::new(),
            spill: None,
            in_memory: 0,
            dir,
            files: Vec::new(),
        }
    }

    /// Takes what the buffer holds: bytes in memory are copied, a file range is kept as a
    /// range of the file (through a descriptor of its own). The buffer is left consumed.
    pub fn take(&mut self, b: &mut Buf) -> Result<(), ScanError> {
        if let Some((fd, start, end)) = b.file_range() {
            self.flush()?;
            let file = self.file_for(fd, b)?;
            self.body.push(BodyPart::File {
                file,
                offset: start,
                len: end - start,
            });
            b.consume();
            return Ok(());
        }
        let bytes = b.memory();
        if !bytes.is_empty() {
            self.pending.extend_from_slice(bytes);
            b.consume();
            if self.pending.len() >= 64 * 1024 {
                self.flush()?;
            }
        }
        Ok(())
    }

    /// The bytes taken so far.
    pub fn len(&self) -> u64 {
        self.body.len() + self.pending.len() as u64
    }

    /// Ends the taking: what is pending joins the body.
    pub fn finish(&mut self) -> Result<(), ScanError> {
        self.flush()
    }

    /// Moves the pending bytes into the body: in memory up to [`IN_MEMORY`], then appended
    /// to the spill file.
    fn flush(&mut self) -> Result<(), ScanError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let bytes = std::mem::take(&mut self.pending);
        if self.in_memory + bytes.len() <= IN_MEMORY {
            self.in_memory += bytes.len();
            self.body.push(BodyPart::Memory(Bytes::from(bytes)));
            return Ok(());
        }
        let (file, at) = match &self.spill {
            Some((f, at)) => (f.clone(), *at),
            None => {
                let f = Arc::new(unnamed_file(&self.dir)?);
                self.spill = Some((f.clone(), 0));
                (f, 0)
            }
        };
        use std::os::unix::fs::FileExt;
        file.write_all_at(&bytes, at).map_err(|e| {
            module_error(format!(
                "writing the held response to {} failed ({e})",
                self.dir.display()
            ))
        })?;
        self.spill = Some((file.clone(), at + bytes.len() as u64));
        self.body.push(BodyPart::File {
            file,
            offset: at,
            len: bytes.len() as u64,
        });
        Ok(())
    }

    /// The module's descriptor for the file nginx has open on `fd` (the file of `b`).
    fn file_for(&mut self, fd: ngx_fd_t, b: &Buf) -> Result<Arc<File>, ScanError> {
        if let Some((_, f)) = self.files.iter().find(|(have, _)| *have == fd) {
            return Ok(f.clone());
        }
        let file = match b.dup_file() {
            Some(Ok(file)) => Arc::new(file),
            Some(Err(e)) => {
                return Err(module_error(format!(
                    "dup() of the response file failed ({e})"
                )))
            }
            None => return Err(module_error("the response buffer has no file")),
        };
        self.files.push((fd, file.clone()));
        Ok(file)
    }
}

/// A file of no name in `dir`, gone when closed.
fn unnamed_file(dir: &std::path::Path) -> Result<File, ScanError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_TMPFILE)
        .open(dir)
        .map_err(|e| {
            module_error(format!(
                "cannot hold the response in {} ({e})",
                dir.display()
            ))
        })
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Phase::Scanning(slot) = self.phase {
            runtime::forget(slot);
            crate::status::response_finished(None, None, None, None, false);
        }
    }
}
