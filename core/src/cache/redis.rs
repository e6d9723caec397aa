//! The second level of the verdict cache: a Redis server shared by several nginx machines, as
//! operators run it: with a password or an ACL user, a database number, over TLS, or found
//! through Sentinel. A handful of commands (`AUTH`, `SELECT`, `GET`, `SET ... PX`, Sentinel's
//! `get-master-addr-by-name`), spoken by hand in RESP so that every reply is bounded before it
//! is read — the Redis client crates read whatever length a server announces, and this server
//! is one the module must not trust with its memory. A Redis server that is down, slow, refuses
//! the password or answers garbage costs at most its timeout and counts as a miss, never as an
//! allow.

use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::cache::key::Key;
use crate::net::tls::TlsClient;
use crate::net::transport::{self, BoxIo};

/// Largest value read from Redis (a cache entry is far smaller).
const MAX_VALUE: usize = 1024 * 1024;
/// Longest reply line (`$<len>`, `+OK`, `-ERR ...`).
const MAX_LINE: usize = 256;
/// Idle connections kept per server and worker.
const IDLE: usize = 8;
/// After a failure, Redis is not asked for this long (by this worker): a Redis that hangs
/// costs one timeout per second, not one per request.
const BACKOFF: Duration = Duration::from_secs(1);

/// Where the second level is, how to log in, and how long each operation may take.
#[derive(Clone)]
pub struct RedisSpec {
    /// The server; with `master`, the Sentinels that know it (asked in turn).
    pub addrs: Vec<SocketAddr>,
    pub timeout: Duration,
    /// Sentinel: the name of the master to ask for.
    pub master: Option<String>,
    /// ACL user for `AUTH user password`; without, `AUTH password` (`requirepass`).
    pub user: Option<String>,
    pub password: Option<String>,
    /// The database (`SELECT`), 0 by default.
    pub db: u32,
    /// TLS to the server (and the Sentinels).
    pub tls: Option<Arc<TlsClient>>,
}

impl RedisSpec {
    /// A plain server without login.
    pub fn plain(addr: SocketAddr, timeout: Duration) -> Self {
        RedisSpec {
            addrs: vec![addr],
            timeout,
            master: None,
            user: None,
            password: None,
            db: 0,
            tls: None,
        }
    }

    /// The values that tell one setup from another (the TLS client by identity).
    fn identity(&self) -> impl Hash + Eq + '_ {
        (
            &self.addrs,
            self.timeout,
            &self.master,
            &self.user,
            &self.password,
            self.db,
            self.tls.as_ref().map(|t| Arc::as_ptr(t) as usize),
        )
    }
}

/// Everything but the password, which no log line is to show.
impl std::fmt::Debug for RedisSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSpec")
            .field("addrs", &self.addrs)
            .field("timeout", &self.timeout)
            .field("master", &self.master)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "..."))
            .field("db", &self.db)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl PartialEq for RedisSpec {
    fn eq(&self, other: &Self) -> bool {
        self.identity() == other.identity()
    }
}

impl Eq for RedisSpec {}

impl Hash for RedisSpec {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.identity().hash(state)
    }
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
    /// An error reply (`-WRONGPASS ...`, `-NOPERM ...`), as Redis wrote it (bounded text).
    #[error("redis {0}: {1}")]
    Refused(SocketAddr, String),
    #[error("redis sentinel {0}: no master \"{1}\" known")]
    NoMaster(SocketAddr, String),
    #[error("redis {0}: not asked for a second after a failure")]
    Resting(SocketAddr),
}

/// A worker's connections to one Redis server.
pub struct Redis {
    spec: RedisSpec,
    idle: Mutex<Vec<(Conn, SocketAddr)>>,
    /// Not asked before this, after a failure.
    resting_until: Mutex<Option<tokio::time::Instant>>,
    /// The master Sentinel named last, until a failure.
    master: Mutex<Option<SocketAddr>>,
}

type Conn = BufReader<BoxIo>;

/// What a command is answered with.
#[derive(Clone, Copy)]
enum Answer {
    Bulk,
    Ok,
}

impl Redis {
    pub fn new(spec: RedisSpec) -> Self {
        Redis {
            spec,
            idle: Mutex::new(Vec::new()),
            resting_until: Mutex::new(None),
            master: Mutex::new(None),
        }
    }

    /// The address of the first server (for messages).
    pub fn shown(&self) -> SocketAddr {
        self.spec
            .addrs
            .first()
            .copied()
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// A new connection to the server, logged in and on its database.
    async fn open(&self) -> Result<(Conn, SocketAddr), RedisError> {
        let addr = match &self.spec.master {
            Some(name) => self.master_addr(name).await?,
            None => self.shown(),
        };
        let mut conn = self.connect(addr).await?;
        if let Some(password) = &self.spec.password {
            let cmd = match &self.spec.user {
                Some(user) => command(&[b"AUTH", user.as_bytes(), password.as_bytes()]),
                None => command(&[b"AUTH", password.as_bytes()]),
            };
            send(&mut conn, addr, &cmd).await?;
            read_ok(&mut conn, addr).await?;
        }
        if self.spec.db != 0 {
            let db = self.spec.db.to_string();
            send(&mut conn, addr, &command(&[b"SELECT", db.as_bytes()])).await?;
            read_ok(&mut conn, addr).await?;
        }
        Ok((conn, addr))
    }

    async fn connect(&self, addr: SocketAddr) -> Result<Conn, RedisError> {
        let io = transport::connect(&addr.into(), self.spec.timeout, self.spec.tls.as_deref())
            .await
            .map_err(|e| {
                let text = match e {
                    crate::scan::ScanError::Tls(m) => format!("SSL handshake failed: {m}"),
                    crate::scan::ScanError::ConnectTimeout => "timed out while connecting".into(),
                    e => e.to_string(),
                };
                RedisError::Io(addr, std::io::Error::other(text))
            })?;
        Ok(BufReader::new(io))
    }

    /// The master's address as the first Sentinel that knows it says.
    async fn master_addr(&self, name: &str) -> Result<SocketAddr, RedisError> {
        if let Some(addr) = *self.master.lock().unwrap_or_else(|e| e.into_inner()) {
            return Ok(addr);
        }
        let mut last = None;
        for &sentinel in &self.spec.addrs {
            match self.ask_sentinel(sentinel, name).await {
                Ok(addr) => {
                    *self.master.lock().unwrap_or_else(|e| e.into_inner()) = Some(addr);
                    return Ok(addr);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(RedisError::NoMaster(self.shown(), name.to_string())))
    }

    async fn ask_sentinel(
        &self,
        sentinel: SocketAddr,
        name: &str,
    ) -> Result<SocketAddr, RedisError> {
        let mut conn = self.connect(sentinel).await?;
        let cmd = command(&[b"SENTINEL", b"get-master-addr-by-name", name.as_bytes()]);
        send(&mut conn, sentinel, &cmd).await?;
        let head = read_line(&mut conn, sentinel).await?;
        match head.as_slice() {
            b"*2" => {}
            b"*-1" | b"_" => return Err(RedisError::NoMaster(sentinel, name.to_string())),
            _ => return Err(error_or_garbage(sentinel, &head)),
        }
        let ip = read_bulk(&mut conn, sentinel).await?;
        let port = read_bulk(&mut conn, sentinel).await?;
        let (Some(ip), Some(port)) = (ip, port) else {
            return Err(RedisError::Garbage(sentinel));
        };
        let ip = std::str::from_utf8(&ip)
            .ok()
            .and_then(|ip| ip.parse::<std::net::IpAddr>().ok());
        let port = std::str::from_utf8(&port)
            .ok()
            .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|p| p.parse::<u16>().ok());
        match (ip, port) {
            (Some(ip), Some(port)) if port > 0 => Ok(SocketAddr::new(ip, port)),
            _ => Err(RedisError::Garbage(sentinel)),
        }
    }

    /// The value stored under `key`, `None` when there is none.
    pub async fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, RedisError> {
        let name = redis_key(key);
        let cmd = command(&[b"GET", name.as_bytes()]);
        self.round_trip(cmd, Answer::Bulk).await
    }

    /// Stores `value` under `key` for `ttl`.
    pub async fn set(&self, key: &Key, value: &[u8], ttl: Duration) -> Result<(), RedisError> {
        let name = redis_key(key);
        let ms = ttl.as_millis().max(1).to_string();
        let cmd = command(&[b"SET", name.as_bytes(), value, b"PX", ms.as_bytes()]);
        self.round_trip(cmd, Answer::Ok).await.map(|_| ())
    }

    /// Sends `cmd` and reads the answer it expects (a bulk string or `+OK`).
    async fn round_trip(
        &self,
        cmd: Vec<u8>,
        answer: Answer,
    ) -> Result<Option<Vec<u8>>, RedisError> {
        let shown = self.shown();
        let now = tokio::time::Instant::now();
        if self.resting().is_some_and(|until| now < until) {
            return Err(RedisError::Resting(shown));
        }
        let work = async {
            let (mut conn, addr) = match self.take() {
                Some(c) => c,
                None => self.open().await?,
            };
            send(&mut conn, addr, &cmd).await?;
            let value = match answer {
                Answer::Bulk => read_bulk(&mut conn, addr).await?,
                Answer::Ok => read_ok(&mut conn, addr).await.map(|()| None)?,
            };
            self.put((conn, addr));
            Ok(value)
        };
        // A connection in the middle of an exchange is dropped with the future.
        let result = tokio::time::timeout(self.spec.timeout, work)
            .await
            .map_err(|_| RedisError::Timeout(shown))
            .and_then(|r| r);
        if result.is_err() {
            *self.resting_until.lock().unwrap_or_else(|e| e.into_inner()) = Some(now + BACKOFF);
            // The master may have moved: Sentinel is asked again next time.
            *self.master.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
        result
    }

    fn resting(&self) -> Option<tokio::time::Instant> {
        *self.resting_until.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn take(&self) -> Option<(Conn, SocketAddr)> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }

    fn put(&self, conn: (Conn, SocketAddr)) {
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

async fn send(conn: &mut Conn, addr: SocketAddr, cmd: &[u8]) -> Result<(), RedisError> {
    let io = conn.get_mut();
    io.write_all(cmd)
        .await
        .map_err(|e| RedisError::Io(addr, e))?;
    io.flush().await.map_err(|e| RedisError::Io(addr, e))
}

/// An error reply as Redis wrote it (`-WRONGPASS invalid username-password pair`), if the line
/// is one and is printable; otherwise garbage.
fn error_or_garbage(addr: SocketAddr, line: &[u8]) -> RedisError {
    match line.strip_prefix(b"-") {
        Some(text) if !text.is_empty() && text.iter().all(|b| (0x20..0x7f).contains(b)) => {
            RedisError::Refused(addr, String::from_utf8_lossy(text).into_owned())
        }
        _ => RedisError::Garbage(addr),
    }
}

async fn read_ok(conn: &mut Conn, addr: SocketAddr) -> Result<(), RedisError> {
    match read_line(conn, addr).await?.as_slice() {
        b"+OK" => Ok(()),
        other => Err(error_or_garbage(addr, other)),
    }
}

async fn read_bulk(conn: &mut Conn, addr: SocketAddr) -> Result<Option<Vec<u8>>, RedisError> {
    let line = read_line(conn, addr).await?;
    if line.as_slice() == b"$-1" {
        return Ok(None);
    }
    if line.starts_with(b"-") {
        return Err(error_or_garbage(addr, &line));
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
        Redis::new(RedisSpec::plain(addr, Duration::from_millis(300)))
    }

    /// A server that answers the n-th command of a connection with `replies[n]`, and keeps
    /// what it was sent.
    async fn scripted(replies: Vec<&'static [u8]>) -> (SocketAddr, Arc<Mutex<Vec<u8>>>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let (replies, record) = (replies.clone(), record.clone());
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    for reply in replies {
                        let Ok(n) = s.read(&mut buf).await else {
                            return;
                        };
                        record.lock().unwrap().extend_from_slice(&buf[..n]);
                        let _ = s.write_all(reply).await;
                    }
                    tokio::time::sleep(Duration::from_secs(5)).await;
                });
            }
        });
        (addr, seen)
    }

    fn spec(addr: SocketAddr) -> RedisSpec {
        RedisSpec::plain(addr, Duration::from_millis(300))
    }

    #[tokio::test]
    async fn it_logs_in_and_selects_its_database_before_the_first_command() {
        let (addr, seen) = scripted(vec![b"+OK\r\n", b"+OK\r\n", b"$3\r\nabc\r\n"]).await;
        let r = Redis::new(RedisSpec {
            user: Some("scan".into()),
            password: Some("s3cret".into()),
            db: 3,
            ..spec(addr)
        });
        assert_eq!(r.get(&Key([0; 32])).await.unwrap(), Some(b"abc".to_vec()));
        let seen = String::from_utf8_lossy(&seen.lock().unwrap()).into_owned();
        assert!(
            seen.starts_with("*3\r\n$4\r\nAUTH\r\n$4\r\nscan\r\n$6\r\ns3cret\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n*2\r\n$3\r\nGET"),
            "{seen:?}"
        );
    }

    #[tokio::test]
    async fn a_refused_password_is_an_error_naming_what_redis_said() {
        let (addr, _) = scripted(vec![
            b"-WRONGPASS invalid username-password pair or user is disabled.\r\n",
        ])
        .await;
        let r = Redis::new(RedisSpec {
            password: Some("wrong".into()),
            ..spec(addr)
        });
        match r.get(&Key([0; 32])).await {
            Err(RedisError::Refused(_, text)) => assert!(text.starts_with("WRONGPASS"), "{text}"),
            other => panic!("{other:?}"),
        }
        // An error line that is not text is garbage, not a message for the log.
        let (addr, _) = scripted(vec![b"-ERR \x1b[31mred\r\n"]).await;
        assert!(matches!(
            Redis::new(spec(addr)).get(&Key([0; 32])).await,
            Err(RedisError::Garbage(_))
        ));
    }

    #[tokio::test]
    async fn sentinel_names_the_master_and_a_bad_answer_is_an_error() {
        let (master, seen) = scripted(vec![b"$-1\r\n"]).await;
        let reply: &'static [u8] = Box::leak(
            format!(
                "*2\r\n$9\r\n127.0.0.1\r\n${}\r\n{}\r\n",
                master.port().to_string().len(),
                master.port()
            )
            .into_bytes()
            .into_boxed_slice(),
        );
        let (sentinel, asked) = scripted(vec![reply]).await;
        let r = Redis::new(RedisSpec {
            master: Some("mymaster".into()),
            ..spec(sentinel)
        });
        assert_eq!(r.get(&Key([0; 32])).await.unwrap(), None);
        assert!(String::from_utf8_lossy(&asked.lock().unwrap())
            .contains("get-master-addr-by-name\r\n$8\r\nmymaster"));
        assert!(String::from_utf8_lossy(&seen.lock().unwrap()).contains("GET"));
        for bad in [
            &b"*-1\r\n"[..],
            b"*2\r\n$9\r\n127.0.0.1\r\n$1\r\nx\r\n",
            b"*2\r\n$3\r\nabc\r\n$1\r\n1\r\n",
            b"-ERR no\r\n",
        ] {
            let (sentinel, _) = scripted(vec![bad]).await;
            let r = Redis::new(RedisSpec {
                master: Some("mymaster".into()),
                ..spec(sentinel)
            });
            assert!(r.get(&Key([0; 32])).await.is_err(), "{bad:?}");
        }
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
