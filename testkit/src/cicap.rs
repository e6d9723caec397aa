//! A real ICAP scanner for tests and the demo: c-icap with its virus_scan service on a private
//! clamd, both from Debian's packages, with a signature database made here that detects the
//! EICAR test string (no network is needed for signatures).

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::EICAR;

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// Name under which ClamAV reports the EICAR string (ClamAV marks local signatures UNOFFICIAL).
pub const THREAT: &str = "Ometascan.Test.EICAR.UNOFFICIAL";

/// Running clamd + c-icap; stopped when dropped.
pub struct CIcap {
    pub dir: PathBuf,
    pub port: u16,
    clamd: Child,
    cicap: Child,
}

/// Options of the virus_scan service.
#[derive(Debug, Clone)]
pub struct CIcapConfig {
    /// Extra lines for c-icap.conf.
    pub extra: String,
    /// Let clamd cache results for files it saw (off for benchmarks over repeating data).
    pub clamd_cache: bool,
}

impl Default for CIcapConfig {
    fn default() -> Self {
        CIcapConfig {
            extra: String::new(),
            clamd_cache: true,
        }
    }
}

impl CIcap {
    pub fn start() -> CIcap {
        Self::start_with(CIcapConfig::default())
    }

    pub fn start_with(cfg: CIcapConfig) -> CIcap {
        let dir = std::env::temp_dir().join(format!(
            "ometascan-cicap-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("db")).expect("c-icap dir");
        let hex: String = EICAR.iter().map(|b| format!("{b:02x}")).collect();
        std::fs::write(
            dir.join("db/ometascan.ndb"),
            format!("Ometascan.Test.EICAR:0:*:{hex}\n"),
        )
        .expect("signature db");
        write_daily(&dir, 1, &[]);
        let d = dir.display();
        let cache = if cfg.clamd_cache {
            ""
        } else {
            "DisableCache yes\n"
        };
        std::fs::write(
            dir.join("clamd.conf"),
            format!(
                "LocalSocket {d}/clamd.sock\nDatabaseDirectory {d}/db\nForeground yes\n\
                 LogFile {d}/clamd.log\nStreamMaxLength 300M\nMaxScanSize 300M\nMaxFileSize 300M\n\
                 MaxThreads 8\n{cache}"
            ),
        )
        .expect("clamd.conf");
        let clamd = Command::new("clamd")
            .arg(format!("--config-file={d}/clamd.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start clamd (apt-get install clamav-daemon)");
        let sock = dir.join("clamd.sock");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !sock.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            sock.exists(),
            "clamd did not start: {}",
            std::fs::read_to_string(dir.join("clamd.log")).unwrap_or_default()
        );

        let port = crate::nginx::free_port();
        std::fs::write(
            dir.join("c-icap.conf"),
            format!(
                "PidFile {d}/c-icap.pid\nCommandsSocket {d}/c-icap.ctl\nTimeout 300\n\
                 MaxKeepAliveRequests 1000\nKeepAliveTimeout 600\nStartServers 1\nMaxServers 2\n\
                 MinSpareThreads 4\nMaxSpareThreads 20\nThreadsPerChild 20\n\
                 Port 127.0.0.1:{port}\nTmpDir {d}\nMaxMemObject 131072\nDebugLevel 1\n\
                 ModulesDir /usr/lib/x86_64-linux-gnu/c_icap\nServicesDir /usr/lib/x86_64-linux-gnu/c_icap\n\
                 TemplateDir /usr/share/c_icap/templates/\nTemplateDefaultLanguage en\n\
                 LoadMagicFile /etc/c-icap/c-icap.magic\nServerLog {d}/server.log\nAccessLog {d}/access.log\n\
                 Service echo srv_echo.so\n\
                 Module common clamd_mod.so\nclamd_mod.ClamdSocket {d}/clamd.sock\n\
                 Service antivirus_module virus_scan.so\n\
                 ServiceAlias srv_clamav virus_scan\n\
                 ServiceAlias avscan virus_scan?allow204=on&sizelimit=off&mode=simple\n\
                 virus_scan.ScanFileTypes TEXT DATA EXECUTABLE ARCHIVE GIF JPEG MSOFFICE\n\
                 virus_scan.SendPercentData 0\nvirus_scan.StartSendPercentDataAfter 300M\n\
                 virus_scan.MaxObjectSize 300M\nvirus_scan.Allow204Responces on\n\
                 virus_scan.DefaultEngine clamd\n{}\n",
                cfg.extra
            ),
        )
        .expect("c-icap.conf");
        // Its own process group: its forked servers are stopped with it.
        let cicap = Command::new("c-icap")
            .process_group(0)
            .arg("-N")
            .arg("-f")
            .arg(dir.join("c-icap.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start c-icap (apt-get install c-icap libc-icap-mod-virus-scan)");
        let me = CIcap {
            dir,
            port,
            clamd,
            cicap,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return me;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("c-icap did not start: {}", me.server_log());
    }

    /// `icap://127.0.0.1:PORT/SERVICE`.
    pub fn url(&self, service: &str) -> String {
        format!("icap://127.0.0.1:{}/{service}", self.port)
    }

    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default()
    }

    /// A signature update as an operator makes it: version `version` of the database with
    /// `sigs` added (ClamAV `.ndb` lines), clamd told to reload it, c-icap to reconfigure (it
    /// recomputes its ISTag from clamd's database version). Returns once the service answers
    /// OPTIONS under a new ISTag.
    pub fn update_signatures(&self, version: u32, sigs: &[String]) {
        let before = self.istag("virus_scan");
        write_daily(&self.dir, version, sigs);
        self.clamd_command("RELOAD");
        let want = format!("/{version}/");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.clamd_command("VERSION").contains(&want) {
            assert!(
                Instant::now() < deadline,
                "clamd did not load version {version}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        std::fs::write(self.dir.join("c-icap.ctl"), "reconfigure").expect("c-icap command");
        while self.istag("virus_scan") == before {
            assert!(Instant::now() < deadline, "c-icap kept its ISTag");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// One clamd command on its socket, and its answer.
    fn clamd_command(&self, cmd: &str) -> String {
        use std::io::{Read, Write};
        let mut s = std::os::unix::net::UnixStream::connect(self.dir.join("clamd.sock"))
            .expect("clamd socket");
        s.write_all(format!("z{cmd}\0").as_bytes())
            .expect("clamd write");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }

    /// The ISTag a service announces in OPTIONS.
    pub fn istag(&self, service: &str) -> String {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("c-icap");
        s.set_read_timeout(Some(Duration::from_secs(5))).ok();
        let req = format!(
            "OPTIONS icap://127.0.0.1:{}/{service} ICAP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
            self.port
        );
        s.write_all(req.as_bytes()).expect("OPTIONS");
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out)
            .lines()
            .find_map(|l| l.strip_prefix("ISTag:").map(|t| t.trim().to_string()))
            .unwrap_or_default()
    }

    pub fn pids(&self) -> (u32, u32) {
        (self.clamd.id(), self.cicap.id())
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

impl Drop for CIcap {
    fn drop(&mut self) {
        for c in [&mut self.cicap, &mut self.clamd] {
            // SAFETY: plain kill(2) on our child.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        }
        // c-icap forks children that go with their parent's process group; give them a moment.
        let deadline = Instant::now() + Duration::from_secs(5);
        for c in [&mut self.cicap, &mut self.clamd] {
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        // Whatever c-icap forked and did not stop in time.
        // SAFETY: kill(2) on the process group c-icap was started in (its pid).
        unsafe { libc::kill(-(self.cicap.id() as i32), libc::SIGKILL) };
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
