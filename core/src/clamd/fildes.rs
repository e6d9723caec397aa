//! `zFILDES`: an object handed to a clamd on a local socket as an open file descriptor
//! (`ometascan_clamd_fildes on`), so that clamd scans it where it is instead of receiving a
//! stream and writing it to a temporary file of its own. The object must be a whole file (a
//! body nginx wrote to its temp file: that file's descriptor), or small and in memory (a copy
//! in an anonymous memory file); anything else goes as a stream.
//!
//! clamd bounds a file by its `MaxFileSize` and `MaxScanSize`, not `StreamMaxLength`, and over
//! them it answers clean unless `AlertExceedsMax` is on: that is why the operator turns this on.

use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::UnixStream;

use crate::body::{BodyPart, RequestBody};
use crate::clamd::reply::{self, Reply};
use crate::scan::report::{note_connect, note_exchange};
use crate::scan::{Failed, ScanError, ScanOptions};

/// Largest object in memory copied into a memory file for clamd.
pub const MAX_COPY: u64 = 8 << 20;

/// Memory files kept for the next copies (their pages stay allocated: a copy into one costs no
/// page faults), at most [`POOLED`] per worker, each of at most [`POOLED_SIZE`] bytes.
static POOL: std::sync::Mutex<Vec<std::fs::File>> = std::sync::Mutex::new(Vec::new());
const POOLED: usize = 4;
const POOLED_SIZE: u64 = 1 << 20;

/// The file clamd is to scan for an object.
pub enum ScanFile {
    /// The body's own file.
    Own(Arc<std::fs::File>),
    /// A memory file holding a copy of the body (given back to the pool when dropped).
    Copy(Option<std::fs::File>),
}

impl ScanFile {
    pub fn file(&self) -> Option<&std::fs::File> {
        match self {
            ScanFile::Own(f) => Some(f),
            ScanFile::Copy(f) => f.as_ref(),
        }
    }
}

impl Drop for ScanFile {
    fn drop(&mut self) {
        let ScanFile::Copy(f) = self else { return };
        let Some(file) = f.take() else { return };
        if file.metadata().is_ok_and(|m| m.len() <= POOLED_SIZE) {
            let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
            if pool.len() < POOLED {
                pool.push(file);
            }
        }
    }
}

/// The file clamd is to scan for `body`, if it can take one: the body's own file, or a copy of
/// a small body in memory.
pub fn file_of(body: &RequestBody) -> Option<ScanFile> {
    match body.parts() {
        [BodyPart::File {
            file,
            offset: 0,
            len,
        }] => {
            let whole = file.metadata().ok().is_some_and(|m| m.len() == *len);
            whole.then(|| ScanFile::Own(file.clone()))
        }
        parts
            if body.len() <= MAX_COPY && parts.iter().all(|p| matches!(p, BodyPart::Memory(_))) =>
        {
            let pooled = POOL.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let file = match pooled {
                Some(f) => f,
                None => std::fs::File::from(
                    rustix::fs::memfd_create("ometascan", rustix::fs::MemfdFlags::CLOEXEC).ok()?,
                ),
            };
            let mut at = 0u64;
            for p in parts {
                if let BodyPart::Memory(b) = p {
                    file.write_all_at(b, at).ok()?;
                    at += b.len() as u64;
                }
            }
            file.set_len(at).ok()?;
            Some(ScanFile::Copy(Some(file)))
        }
        _ => None,
    }
}

/// Scans `file` with the clamd at `path`: its reply.
pub(crate) async fn scan(
    path: &Path,
    file: &std::fs::File,
    opts: &ScanOptions,
) -> Result<Reply, Failed> {
    let t = opts.timeouts;
    let started = Instant::now();
    let connected = tokio::time::timeout(t.connect, UnixStream::connect(path)).await;
    note_connect(started.elapsed());
    let mut stream = match connected {
        Err(_) => return Err(Failed::BeforeAnswer(ScanError::ConnectTimeout)),
        Ok(Err(e)) => {
            return Err(Failed::BeforeAnswer(ScanError::Connect {
                addr: format!("unix:{}", path.display()),
                source: e,
            }))
        }
        Ok(Ok(s)) => s,
    };
    let sending = Instant::now();
    let sent = tokio::time::timeout(t.send, async {
        stream.write_all(b"zFILDES\0").await?;
        send_fd(&stream, file).await
    })
    .await;
    let answering = Instant::now();
    match sent {
        Err(_) => return Err(Failed::Final(ScanError::SendTimeout)),
        Ok(Err(e)) => return Err(Failed::BeforeAnswer(ScanError::Io(e))),
        Ok(Ok(())) => {}
    }
    let mut buf = BytesMut::with_capacity(reply::MAX_REPLY + 1);
    let read = tokio::time::timeout(t.read, async {
        loop {
            if let Some((text, _)) = reply::split_reply(&buf).map_err(|e| protocol(&e))? {
                return Ok(text.to_string());
            }
            if stream.read_buf(&mut buf).await.map_err(ScanError::Io)? == 0 {
                return Err(ScanError::Closed);
            }
        }
    })
    .await;
    note_exchange(answering - sending, answering.elapsed());
    let text = match read {
        Err(_) => return Err(Failed::Final(ScanError::ReadTimeout)),
        Ok(r) => r.map_err(Failed::Final)?,
    };
    tracing::debug!("clamd answered \"{text}\" to FILDES");
    reply::fildes_reply(&text).map_err(|e| Failed::Final(protocol(&e)))
}

fn protocol(e: &reply::ReplyError) -> ScanError {
    ScanError::Protocol(e.to_string())
}

/// Sends `file`'s descriptor (with one byte, as clamd reads it) over `stream`.
async fn send_fd(stream: &UnixStream, file: &std::fs::File) -> std::io::Result<()> {
    loop {
        stream.writable().await?;
        let sent = stream.try_io(Interest::WRITABLE, || {
            let fds = [file.as_fd()];
            let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
            let mut control = rustix::net::SendAncillaryBuffer::new(&mut space);
            control.push(rustix::net::SendAncillaryMessage::ScmRights(&fds));
            rustix::net::sendmsg(
                stream,
                &[IoSlice::new(b"\0")],
                &mut control,
                rustix::net::SendFlags::NOSIGNAL,
            )
            .map_err(std::io::Error::from)
        });
        match sent {
            Ok(1) => return Ok(()),
            Ok(_) => return Err(std::io::ErrorKind::WriteZero.into()),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
}
