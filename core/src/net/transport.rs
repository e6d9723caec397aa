//! Connections to scanners: TCP, and TLS (rustls) for `https://` and `icaps://`. The connect
//! timeout covers both the TCP connection and the TLS handshake.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

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

impl Io for tokio_rustls::client::TlsStream<TcpStream> {}

pub type BoxIo = Box<dyn Io>;

/// Identifies connections that may be shared: same address, same TLS settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PoolKey {
    pub addr: SocketAddr,
    tls: usize,
}

impl PoolKey {
    pub fn new(addr: SocketAddr, tls: Option<&Arc<TlsClient>>) -> Self {
        PoolKey {
            addr,
            tls: tls.map(|t| Arc::as_ptr(t) as usize).unwrap_or(0),
        }
    }
}

pub async fn connect(
    addr: SocketAddr,
    limit: Duration,
    tls: Option<&TlsClient>,
) -> Result<BoxIo, ScanError> {
    let deadline = Instant::now() + limit;
    let tcp = match timeout_at(deadline, TcpStream::connect(addr)).await {
        Err(_) => return Err(ScanError::ConnectTimeout),
        Ok(Err(source)) => {
            return Err(ScanError::Connect {
                addr: addr.to_string(),
                source,
            })
        }
        Ok(Ok(s)) => s,
    };
    let _ = tcp.set_nodelay(true);
    let Some(tls) = tls else {
        return Ok(Box::new(tcp));
    };
    let config = tls.config().map_err(ScanError::Tls)?;
    let name = tls.server_name().map_err(ScanError::Tls)?;
    let connector = tokio_rustls::TlsConnector::from(config);
    match timeout_at(deadline, connector.connect(name, tcp)).await {
        Err(_) => Err(ScanError::ConnectTimeout),
        Ok(Err(e)) => Err(ScanError::Tls(describe_tls_error(&e))),
        Ok(Ok(s)) => Ok(Box::new(s)),
    }
}
