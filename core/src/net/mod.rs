//! Connections to scanners: TCP, local sockets and TLS, the keep-alive pools, and the send/read timeouts.

pub mod exchange;
pub mod peer;
pub mod pool;
#[allow(unsafe_code)] // Audited: one sendfile(2) call on borrowed descriptors.
pub mod sendfile;
#[allow(unsafe_code)] // Audited: hyper's read cursor over uninitialised memory.
pub mod timed_io;
pub mod tls;
pub mod transport;
