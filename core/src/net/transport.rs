//! Connections to scanners: TCP, local (Unix-domain) sockets, and TLS (rustls) for `https://`
//! and `icaps://`. The connect timeout covers both the connection and the TLS handshake.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};
use tokio::time::{timeout_at, Instant};

use crate::net::peer::PeerAddr;
use crate::net::tls::{describe_tls_error, TlsClient};
use crate::scan::ScanError;

/// A byte stream to a scanner, plain or TLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {
    /// The TCP connection, when the stream is plain TCP (a file can be sent with `sendfile`).
    fn as_tcp(&self) -> Option<&TcpStream> {
        None
    }
}

impl Io for TcpStream {
    fn as_tcp(&self) -> Option<&TcpStream> {
        Some(self)
    }
}

impl Io for UnixStream {}

impl Io for tokio_rustls::client::TlsStream<TcpStream> {}

impl Io for tokio_rustls::client::TlsStream<UnixStream> {}

pub type BoxIo = Box<dyn Io>;

/// Identifies connections that may be shared: same address, same TLS settings.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PoolKey {
    pub addr: PeerAddr,
    tls: usize,
}

impl PoolKey {
    pub fn new(addr: PeerAddr, tls: Option<&Arc<TlsClient>>) -> Self {
        PoolKey {
            addr,
            tls: tls.map(|t| Arc::as_ptr(t) as usize).unwrap_or(0),
        }
    }
}

/// A new connection to `addr` (and its TLS session), within `limit`; the time it took is
/// noted for the scan's report.
pub async fn connect(
    addr: &PeerAddr,
    limit: Duration,
    tls: Option<&TlsClient>,
) -> Result<BoxIo, ScanError> {
    let started = Instant::now();
    let connected = connect_within(addr, limit, tls).await;
    crate::scan::report::note_connect(started.elapsed());
    connected
}

async fn connect_within(
    addr: &PeerAddr,
    limit: Duration,
    tls: Option<&TlsClient>,
) -> Result<BoxIo, ScanError> {
    let deadline = Instant::now() + limit;
    let failed = |source| ScanError::Connect {
        addr: addr.to_string(),
        source,
    };
    match addr {
        PeerAddr::Ip(a) => {
            let tcp = match timeout_at(deadline, TcpStream::connect(a)).await {
                Err(_) => return Err(ScanError::ConnectTimeout),
                Ok(r) => r.map_err(failed)?,
            };
            let _ = tcp.set_nodelay(true);
            with_tls(tcp, tls, deadline).await
        }
        PeerAddr::Local(p) => {
            let unix = match timeout_at(deadline, UnixStream::connect(p)).await {
                Err(_) => return Err(ScanError::ConnectTimeout),
                Ok(r) => r.map_err(failed)?,
            };
            with_tls(unix, tls, deadline).await
        }
    }
}

/// The stream as it is, or the TLS session over it.
async fn with_tls<S>(
    stream: S,
    tls: Option<&TlsClient>,
    deadline: Instant,
) -> Result<BoxIo, ScanError>
where
    S: Io + 'static,
    tokio_rustls::client::TlsStream<S>: Io,
{
    let Some(tls) = tls else {
        return Ok(Box::new(stream));
    };
    let config = tls.config().map_err(ScanError::Tls)?;
    let name = tls.server_name().map_err(ScanError::Tls)?;
    let connector = tokio_rustls::TlsConnector::from(config);
    match timeout_at(deadline, connector.connect(name, stream)).await {
        Err(_) => Err(ScanError::ConnectTimeout),
        Ok(Err(e)) => Err(ScanError::Tls(describe_tls_error(&e))),
        Ok(Ok(s)) => Ok(Box::new(s)),
    }
}
