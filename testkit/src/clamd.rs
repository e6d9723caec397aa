//! A private clamd from Debian's `clamav-daemon` for tests, the demo and the benchmark: a
//! signature database made here that detects the EICAR test string (no network is needed for
//! signatures), on a local socket and, when asked, a TCP port.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::EICAR;

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// Name under which ClamAV reports the EICAR string (ClamAV marks local signatures UNOFFICIAL).
pub const THREAT: &str = "Ometascan.Test.EICAR.UNOFFICIAL";

/// How clamd is configured.
#[derive(Debug, Clone)]
pub struct ClamdConfig {
    /// Also listen on a TCP port of 127.0.0.1.
    pub tcp: bool,
    /// clamd's `StreamMaxLength` (and its scan and file size limits).
    pub stream_max_length: String,
    /// Let clamd cache results for files it saw (off for benchmarks over repeating data).
    pub cache: bool,
}

impl Default for ClamdConfig {
    fn default() -> Self {
        ClamdConfig {
            tcp: false,
            stream_max_length: "300M".into(),
            cache: true,
        }
    }
}

/// A running clamd; stopped when dropped.
pub struct Clamd {
    pub dir: PathBuf,
    /// Its TCP port, when it has one.
    pub port: Option<u16>,
    child: Child,
}

impl Clamd {
    pub fn start() -> Clamd {
        Self::start_with(ClamdConfig::default())
    }

    /// Starts clamd in a directory of its own, `dir` when given.
    pub fn start_in(dir: Option<PathBuf>, cfg: ClamdConfig) -> Clamd {
        let dir = dir.unwrap_or_else(|| {
            std::env::temp_dir().join(format!(
                "ometascan-clamd-{}-{}",
                std::process::id(),
                SEQ.fetch_add(1, Ordering::Relaxed)
            ))
        });
        let _ = std::fs::remove_dir_all(dir.join("db"));
        std::fs::create_dir_all(dir.join("db")).expect("clamd dir");
        std::fs::create_dir_all(dir.join("tmp")).expect("clamd tmp dir");
        let hex: String = EICAR.iter().map(|b| format!("{b:02x}")).collect();
        std::fs::write(
            dir.join("db/ometascan.ndb"),
            format!("Ometascan.Test.EICAR:0:*:{hex}\n"),
        )
        .expect("signature db");
        write_daily(&dir, 1, &[]);
        let d = dir.display();
        let cache = if cfg.cache { "" } else { "DisableCache yes\n" };
        let port = cfg.tcp.then(crate::nginx::free_port);
        let tcp = port
            .map(|p| format!("TCPSocket {p}\nTCPAddr 127.0.0.1\n"))
            .unwrap_or_default();
        let max = &cfg.stream_max_length;
        std::fs::write(
            dir.join("clamd.conf"),
            format!(
                "LocalSocket {d}/clamd.sock\nDatabaseDirectory {d}/db\nForeground yes\n\
                 LogFile {d}/clamd.log\nStreamMaxLength {max}\nMaxScanSize {max}\n\
                 MaxFileSize {max}\nMaxThreads 8\nLocalSocketMode 666\nTemporaryDirectory {d}/tmp\n{tcp}{cache}"
            ),
        )
        .expect("clamd.conf");
        let child = Command::new("clamd")
            .arg(format!("--config-file={d}/clamd.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start clamd (apt-get install clamav-daemon)");
        let me = Clamd { dir, port, child };
        let deadline = Instant::now() + Duration::from_secs(60);
        let ready = |me: &Clamd| {
            me.socket().exists()
                && me
                    .port
                    .is_none_or(|p| std::net::TcpStream::connect(("127.0.0.1", p)).is_ok())
        };
        while !ready(&me) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(ready(&me), "clamd did not start: {}", me.log());
        me
    }

    pub fn start_with(cfg: ClamdConfig) -> Clamd {
        Self::start_in(None, cfg)
    }

    /// Its local socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("clamd.sock")
    }

    /// `clamd://127.0.0.1:PORT` (it must have a TCP port).
    pub fn url(&self) -> String {
        format!(
            "clamd://127.0.0.1:{}",
            self.port.expect("clamd has no TCP port")
        )
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("clamd.log")).unwrap_or_default()
    }

    /// Whether clamd holds a stream it is receiving or scanning (its temp files).
    pub fn has_stream(&self) -> bool {
        std::fs::read_dir(self.dir.join("tmp")).is_ok_and(|mut d| d.next().is_some())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops clamd at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// One clamd command on its socket, and its answer.
    pub fn command(&self, cmd: &str) -> String {
        use std::io::{Read, Write};
        let mut s = std::os::unix::net::UnixStream::connect(self.socket()).expect("clamd socket");
        s.write_all(format!("z{cmd}\0").as_bytes())
            .expect("clamd write");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }

    /// A signature update as an operator makes it: version `version` of the database with
    /// `sigs` added (ClamAV `.ndb` lines), clamd told to reload it. Returns once clamd reports
    /// the new version.
    pub fn update_signatures(&self, version: u32, sigs: &[String]) {
        write_daily(&self.dir, version, sigs);
        self.command("RELOAD");
        let want = format!("/{version}/");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.command("VERSION").contains(&want) {
            assert!(
                Instant::now() < deadline,
                "clamd did not load version {version}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Clamd {
    fn drop(&mut self) {
        // SAFETY: plain kill(2) on our child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `db/daily.cud`: an unsigned ClamAV database whose version clamd reports (and c-icap puts
/// into its ISTag): a 512-byte header, then a tar of `daily.info` (header and the SHA-256 of
/// each file) and `daily.ndb`.
fn write_daily(dir: &std::path::Path, version: u32, sigs: &[String]) {
    // Never an empty database: one signature nothing matches.
    let placeholder =
        "Ometascan.Test.Placeholder:0:*:6f6d6574617363616e2d706c616365686f6c6465722d6e65766572";
    let ndb: String = std::iter::once(placeholder)
        .chain(sigs.iter().map(String::as_str))
        .map(|s| format!("{s}\n"))
        .collect();
    let time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let head = format!(
        "ClamAV-VDB:30 Nov 2026 00-00 +0000:{version}:{}:90:X:X:ometascan:{time}",
        sigs.len() + 1
    );
    let digest = ring::digest::digest(&ring::digest::SHA256, ndb.as_bytes());
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    let info = format!("{head}\ndaily.ndb:{}:{hex}\n", ndb.len());
    let mut out = head.into_bytes();
    out.resize(512, b' ');
    for (name, data) in [
        ("COPYING", &b"ometascan test database\n"[..]),
        ("daily.info", info.as_bytes()),
        ("daily.ndb", ndb.as_bytes()),
    ] {
        tar_entry(&mut out, name, data, time);
    }
    out.resize(out.len() + 1024, 0);
    std::fs::write(dir.join("db/daily.cud"), out).expect("daily.cud");
}

/// One file of a ustar archive.
fn tar_entry(out: &mut Vec<u8>, name: &str, data: &[u8], time: u64) {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    let mut field =
        |at: usize, text: String| h[at..at + text.len()].copy_from_slice(text.as_bytes());
    field(100, "0000644\0".into());
    field(108, "0000000\0".into());
    field(116, "0000000\0".into());
    field(124, format!("{:011o}\0", data.len()));
    field(136, format!("{time:011o}\0"));
    field(156, "0".into());
    field(257, "ustar\0".into());
    field(263, "00".into());
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}
