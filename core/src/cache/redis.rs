//! The second level of the verdict cache: a Redis server shared by several nginx machines.
//! Two commands (`GET`, `SET ... PX`), spoken by hand in RESP so that every reply is bounded
//! before it is read: a Redis server that is down, slow or answers garbage costs at most its
//! timeout and counts as a miss, never as an allow.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::cache::key::Key;

/// Largest value read from Redis (a cache entry is far smaller).
const MAX_VALUE: usize = 1024 * 1024;
/// Longest reply line (`$<len>`, `+OK`, `-ERR ...`).
const MAX_LINE: usize = 256;
/// Idle connections kept per server and worker.
const IDLE: usize = 8;
/// After a failure, Redis is not asked for this long (by this worker): a Redis that hangs
/// costs one timeout per second, not one per request.
const BACKOFF: Duration = Duration::from_secs(1);

/// Where the second level is and how long each operation may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RedisSpec {
    pub addr: SocketAddr,
    pub timeout: Duration,
}

/// What went wrong with Redis (each one is a miss for the request).
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("redis {0}: timed out")]
    Timeout(SocketAddr),
    #[error("redis {0}: {1}")]
    Io(SocketAddr, std::io::Error),
    #[error("redis {0}: unexpected reply")]
    Garbage(SocketAddr),
    #[error("redis {0}: not asked for a second after a failure")]
    Resting(SocketAddr),
}

/// A worker's connections to one Redis server.
pub struct Redis {
    spec: RedisSpec,
    idle: Mutex<Vec<BufReader<TcpStream>>>,
    /// Not asked before this, after a failure.
    resting_until: Mutex<Option<tokio::time::Instant>>,
}

type Conn = BufReader<TcpStream>;

impl Redis {
    pub fn new(spec: RedisSpec) -> Self {
        Redis {
            spec,
            idle: Mutex::new(Vec::new()),
            resting_until: Mutex::new(None),
        }
    }

    /// The value stored under `key`, `None` when there is none.
    pub async fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, RedisError> {
        let name = redis_key(key);
        let cmd = command(&[b"GET", name.as_bytes()]);
        self.round_trip(cmd, read_bulk).await
    }

    /// Stores `value` under `key` for `ttl`.
    pub async fn set(&self, key: &Key, value: &[u8], ttl: Duration) -> Result<(), RedisError> {
        let name = redis_key(key);
        let ms = ttl.as_millis().max(1).to_string();
        let cmd = command(&[b"SET", name.as_bytes(), value, b"PX", ms.as_bytes()]);
        self.round_trip(cmd, read_ok).await
    }

    async fn round_trip<T>(
        &self,
        cmd: Vec<u8>,
        read: impl AsyncFnOnce(&mut Conn, SocketAddr) -> Result<T, RedisError>,
    ) -> Result<T, RedisError> {
        let addr = self.spec.addr;
        let now = tokio::time::Instant::now();
        if self.resting().is_some_and(|until| now < until) {
            return Err(RedisError::Resting(addr));
        }
        let work = async {
            let mut conn = match self.take() {
                Some(c) => c,
                None => BufReader::new(
                    TcpStream::connect(addr)
                        .await
                        .map_err(|e| RedisError::Io(addr, e))?,
                ),
            };
            conn.get_mut()
                .write_all(&cmd)
                .await
                .map_err(|e| RedisError::Io(addr, e))?;
            let value = read(&mut conn, addr).await?;
            self.put(conn);
            Ok(value)
        };
        // A connection in the middle of an exchange is dropped with the future.
        let result = tokio::time::timeout(self.spec.timeout, work)
            .await
            .map_err(|_| RedisError::Timeout(addr))
            .and_then(|r| r);
        if result.is_err() {
            *self.resting_until.lock().unwrap_or_else(|e| e.into_inner()) = Some(now + BACKOFF);
        }
        result
    }

    fn resting(&self) -> Option<tokio::time::Instant> {
        *self.resting_until.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn take(&self) -> Option<Conn> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }

    fn put(&self, conn: Conn) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < IDLE {
            idle.push(conn);
        }
    }
}

fn redis_key(key: &Key) -> String {
    format!("ometascan:v1:{}", key.hex())
}

/// A command as a RESP array of bulk strings.
fn command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// One reply line without its CRLF, at most [`MAX_LINE`] bytes.
async fn read_line(conn: &mut Conn, addr: SocketAddr) -> Result<Vec<u8>, RedisError> {
    let mut line = Vec::new();
    let mut limited = (&mut *conn).take(MAX_LINE as u64);
    limited
        .read_until(b'\n', &mut line)
        .await
        .map_err(|e| RedisError::Io(addr, e))?;
    match line.strip_suffix(b"\r\n") {
        Some(l) => Ok(l.to_vec()),
        None => Err(RedisError::Garbage(addr)),
    }
}

async fn read_ok(conn: &mut Conn, addr: SocketAddr) -> Result<(), RedisError> {
    match read_line(conn, addr).await?.as_slice() {
        b"+OK" => Ok(()),
        _ => Err(RedisError::Garbage(addr)),
    }
}

async fn read_bulk(conn: &mut Conn, addr: SocketAddr) -> Result<Option<Vec<u8>>, RedisError> {
    let line = read_line(conn, addr).await?;
    if line.as_slice() == b"$-1" {
        return Ok(None);
    }
    let len = line
        .strip_prefix(b"$")
        // Digits only (`parse` would take a sign).
        .filter(|n| !n.is_empty() && n.len() <= 12 && n.iter().all(u8::is_ascii_digit))
        .and_then(|n| std::str::from_utf8(n).ok())
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|&n| n <= MAX_VALUE)
        .ok_or(RedisError::Garbage(addr))?;
    let mut value = vec![0; len + 2];
    conn.read_exact(&mut value)
        .await
        .map_err(|e| RedisError::Io(addr, e))?;
    if !value.ends_with(b"\r\n") {
        return Err(RedisError::Garbage(addr));
    }
    value.truncate(len);
    Ok(Some(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A server that answers every connection with `reply`.
    async fn server(reply: &'static [u8]) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = s.read(&mut buf).await;
                    let _ = s.write_all(reply).await;
                    tokio::time::sleep(Duration::from_secs(5)).await;
                });
            }
        });
        addr
    }

    fn redis(addr: SocketAddr) -> Redis {
        Redis::new(RedisSpec {
            addr,
            timeout: Duration::from_millis(300),
        })
    }

    #[tokio::test]
    async fn a_value_and_a_missing_key_are_read() {
        let r = redis(server(b"$3\r\nabc\r\n").await);
        assert_eq!(r.get(&Key([0; 32])).await.unwrap(), Some(b"abc".to_vec()));
        let r = redis(server(b"$-1\r\n").await);
        assert_eq!(r.get(&Key([0; 32])).await.unwrap(), None);
    }

    #[tokio::test]
    async fn garbage_a_huge_length_and_silence_are_errors_within_the_timeout() {
        for reply in [
            &b"+OK\r\n"[..],
            b"$99999999999\r\n",
            b"$+3\r\nabc\r\n",
            b"$-3\r\n",
            b"$ 3\r\nabc\r\n",
            b"$5\r\nab",
            b"-ERR nope\r\n",
            b"",
        ] {
            let started = std::time::Instant::now();
            let r = redis(server(reply).await);
            assert!(r.get(&Key([0; 32])).await.is_err(), "{reply:?}");
            assert!(started.elapsed() < Duration::from_secs(2));
        }
        let r = redis(server(&[b'x'; 1000]).await);
        assert!(matches!(
            r.get(&Key([0; 32])).await,
            Err(RedisError::Garbage(_))
        ));
        // Then it rests: the next lookup does not wait for it.
        let started = std::time::Instant::now();
        assert!(matches!(
            r.get(&Key([0; 32])).await,
            Err(RedisError::Resting(_))
        ));
        assert!(started.elapsed() < Duration::from_millis(50));
    }
}
