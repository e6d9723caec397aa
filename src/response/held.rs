//! A response held while it is scanned: its body as the filters gave it (memory copied, files
//! shared by a descriptor of the module's own), the scan's state, kept in a cleanup of the
//! request pool so that it outlives internal redirects and is dropped with the request.

use std::fs::File;
use std::os::fd::FromRawFd;
use std::ptr;
use std::sync::Arc;

use bytes::Bytes;
use ngx::ffi::*;
use ngx::http::Request;
use ometascan_core::{BodyPart, RequestBody, ScanError};

use crate::ngx_ext::pool::cleanup_data;
use crate::request::ctx::Report;
use crate::request::job::module_error;
use crate::runtime::{self, SlotId};

/// Memory a held response may take before what follows goes to a temp file.
const IN_MEMORY: usize = 1 << 20;

/// Where a held response is.
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
    pub fn take(&mut self, b: &mut ngx_buf_t) -> Result<(), ScanError> {
        if b.in_file() != 0 && !b.file.is_null() && b.file_last > b.file_pos {
            // SAFETY: an in-file buffer's file is valid while the buffer is in the chain.
            let fd = unsafe { (*b.file).fd };
            self.flush()?;
            let file = self.file_for(fd)?;
            let (start, end) = (b.file_pos as u64, b.file_last as u64);
            self.body.push(BodyPart::File {
                file,
                offset: start,
                len: end - start,
            });
            b.file_pos = b.file_last;
            if !b.pos.is_null() {
                b.pos = b.last;
            }
            return Ok(());
        }
        if !b.pos.is_null() && b.last > b.pos {
            let len = b.last as usize - b.pos as usize;
            // SAFETY: pos..last is the buffer's data, valid while it is in the chain.
            let bytes = unsafe { std::slice::from_raw_parts(b.pos, len) };
            self.pending.extend_from_slice(bytes);
            b.pos = b.last;
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

    fn file_for(&mut self, fd: ngx_fd_t) -> Result<Arc<File>, ScanError> {
        if let Some((_, f)) = self.files.iter().find(|(have, _)| *have == fd) {
            return Ok(f.clone());
        }
        // SAFETY: plain fcntl on a descriptor nginx keeps open while the buffer is in use.
        let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
        if dup < 0 {
            let e = std::io::Error::last_os_error();
            return Err(module_error(format!(
                "dup() of the response file failed ({e})"
            )));
        }
        // SAFETY: dup is a new descriptor that nothing else owns.
        let file = Arc::new(unsafe { File::from_raw_fd(dup) });
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

const _: () = assert!(std::mem::align_of::<Held>() <= std::mem::align_of::<usize>());

unsafe extern "C" fn drop_held(data: *mut std::ffi::c_void) {
    // SAFETY: data is the Held written by `create`; nginx runs a pool cleanup once.
    unsafe { ptr::drop_in_place(data as *mut Held) }
}

/// Puts `value` in a cleanup of the request's pool; `None` when out of memory.
///
/// # Safety
/// `r` must be a main request with no held response; the borrow must end before the pool is
/// destroyed, and no other reference to the value may be live meanwhile.
pub unsafe fn create<'a>(r: &Request, value: Held) -> Option<&'a mut Held> {
    // SAFETY: the cleanup and its data come from the request's pool.
    let cln = unsafe { ngx_pool_cleanup_add(r.pool().as_ptr(), std::mem::size_of::<Held>()) };
    // SAFETY: null, or a fresh cleanup of the pool.
    let cln = unsafe { cln.as_mut() }?;
    let p = cln.data as *mut Held;
    // SAFETY: the cleanup's data has room for a Held, aligned (assertion above); the cleanup
    // drops it once, when the pool goes.
    unsafe { ptr::write(p, value) };
    cln.handler = Some(drop_held);
    // SAFETY: p was just written; the caller keeps the borrow exclusive.
    unsafe { p.as_mut() }
}

/// The request's held response, if the module holds (or held) it.
///
/// # Safety
/// As for [`create`]: the borrow ends before the pool goes, exclusive meanwhile.
pub unsafe fn get<'a>(r: &Request) -> Option<&'a mut Held> {
    // SAFETY: the request's pool is live and read on nginx's thread; ours is found by its
    // handler.
    let data = unsafe { cleanup_data(r.pool().as_ptr(), drop_held) }?;
    // SAFETY: data is the Held `create` wrote, alive until the pool goes.
    unsafe { (data as *mut Held).as_mut() }
}
