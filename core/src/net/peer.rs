//! Where a scanner listens: an IP address and port, or a local (Unix-domain) socket.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

/// A scanner server's address, as nginx's upstream machinery resolved it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PeerAddr {
    Ip(SocketAddr),
    /// A Unix-domain stream socket (`clamd+unix:///run/clamav/clamd.ctl`, or `server
    /// unix:/path;` in an upstream block).
    Local(Arc<Path>),
}

impl PeerAddr {
    /// A local socket's address.
    pub fn local(path: impl AsRef<Path>) -> Self {
        PeerAddr::Local(Arc::from(path.as_ref()))
    }
}

impl From<SocketAddr> for PeerAddr {
    fn from(a: SocketAddr) -> Self {
        PeerAddr::Ip(a)
    }
}

/// nginx's way of writing addresses: `127.0.0.1:1344`, `[::1]:3310`, `unix:/run/clamd.ctl`.
impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerAddr::Ip(a) => a.fmt(f),
            PeerAddr::Local(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_as_nginx_writes_addresses() {
        let ip: SocketAddr = "[::1]:3310".parse().unwrap();
        assert_eq!(PeerAddr::from(ip).to_string(), "[::1]:3310");
        assert_eq!(
            PeerAddr::local("/run/clamav/clamd.ctl").to_string(),
            "unix:/run/clamav/clamd.ctl"
        );
        assert_ne!(PeerAddr::local("/a"), PeerAddr::local("/b"));
    }
}
