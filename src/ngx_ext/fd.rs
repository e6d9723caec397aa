//! Descriptors of the module's own for files nginx has open.

use std::fs::File;
use std::os::fd::FromRawFd;

use ngx::ffi::ngx_fd_t;

/// A descriptor of its own (close-on-exec) for the file nginx has open on `fd`, so that it can
/// be read whatever nginx does with its own.
pub fn dup(fd: ngx_fd_t) -> std::io::Result<File> {
    // SAFETY: plain fcntl; on an fd that is not open it fails with EBADF.
    let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: dup is a new descriptor that nothing else owns.
    Ok(unsafe { File::from_raw_fd(dup) })
}
