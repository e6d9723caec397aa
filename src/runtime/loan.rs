//! Request memory lent to a scan without copying: pieces handed out as `Bytes`, and the
//! scan's message sent when the last piece is dropped (see the runtime's module docs).

use std::sync::{Arc, Mutex, OnceLock};

use ngx::http::Request;
use ometascan_core::{BodyPart, RequestBody, ScanError, ScanOutcome};

use crate::ngx_ext::body::{body_buffers, Stored};
use crate::ngx_ext::fd;

use super::{push, SlotId};

/// The request memory lent to one scan. Pieces handed out by [`Loan::lend`] keep it alive;
/// when the last one (and the scan task's own handle) is gone, the scan's [`Message`] is sent.
pub struct Loan(Arc<LoanInner>);

struct LoanInner {
    slot: OnceLock<SlotId>,
    /// The outcome, and when the scan ended (the hand-back time runs from there).
    done: Mutex<Option<(ScanOutcome, std::time::Instant)>>,
}

impl Loan {
    /// Ties the loan to the scan's slot: its message goes there.
    pub(super) fn attach(&self, slot: SlotId) {
        let _ = self.0.slot.set(slot);
    }

    /// The scan is over: its outcome leaves with the message, once the last piece is dropped.
    pub(super) fn finish(self, outcome: ScanOutcome, ended: std::time::Instant) {
        *self.0.done.lock().unwrap_or_else(|e| e.into_inner()) = Some((outcome, ended));
    }

    pub fn new() -> Loan {
        Loan(Arc::new(LoanInner {
            slot: OnceLock::new(),
            done: Mutex::new(None),
        }))
    }

    /// Shares `len` bytes at `ptr` as `Bytes`, without copying.
    ///
    /// # Safety
    /// The memory must stay valid and unchanged until the loan's message has been handled on
    /// the nginx thread, or, if [`start`] is not reached, until the returned `Bytes` and the
    /// loan are dropped on the nginx thread.
    pub unsafe fn lend(&self, ptr: *const u8, len: usize) -> bytes::Bytes {
        bytes::Bytes::from_owner(Lent {
            ptr,
            len,
            _loan: self.0.clone(),
        })
    }
}

/// What a scan being built (see [`super::start`]) may borrow of its request.
pub struct Lender<'a>(pub(super) &'a Loan);

impl Lender<'_> {
    /// The body as nginx stored it: memory buffers lent, file ranges over a descriptor of the
    /// scan's own for the temp file.
    pub fn body(&self, r: &Request) -> Result<RequestBody, ScanError> {
        let mut body = RequestBody::new();
        let mut files: Vec<(ngx::ffi::ngx_fd_t, Arc<std::fs::File>)> = Vec::new();
        for stored in body_buffers(r) {
            match stored {
                Stored::File { fd, start, end } => {
                    let file = match files.iter().find(|(f, _)| *f == fd) {
                        Some((_, file)) => file.clone(),
                        None => {
                            let file = Arc::new(fd::dup(fd).map_err(|e| {
                                ScanError::Module(format!(
                                    "dup() of the request body file failed ({e})"
                                ))
                            })?);
                            files.push((fd, file.clone()));
                            file
                        }
                    };
                    body.push(BodyPart::File {
                        file,
                        offset: start,
                        len: end - start,
                    });
                }
                Stored::Memory { pos, len } => {
                    // SAFETY: the buffer is the request's body (pool or client buffer), unchanged
                    // while the request is blocked, which `start` does before this lender's
                    // pieces can leave the nginx thread and undoes only on the loan's message,
                    // after the last piece is dropped; nothing replaces a body while it is
                    // scanned.
                    body.push(BodyPart::Memory(unsafe { self.0.lend(pos, len) }));
                }
            }
        }
        Ok(body)
    }
}

impl Drop for LoanInner {
    fn drop(&mut self) {
        // A loan that never reached a slot (the scan did not start) has nobody to tell.
        if let Some(&slot) = self.slot.get() {
            let done = self
                .done
                .get_mut()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            push(slot, done);
        }
    }
}

/// A piece of request memory owned by `Bytes`.
struct Lent {
    ptr: *const u8,
    len: usize,
    _loan: Arc<LoanInner>,
}

// SAFETY: the memory is only read, and it stays valid and unchanged while any `Lent` exists:
// the request is blocked until the loan's message, which is sent after the last `Lent` is
// dropped (see `Loan::lend`).
unsafe impl Send for Lent {}
// SAFETY: as above; shared reads of immutable memory.
unsafe impl Sync for Lent {}

impl AsRef<[u8]> for Lent {
    fn as_ref(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: ptr/len describe live, unchanging memory for the life of `self` (see above).
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}
