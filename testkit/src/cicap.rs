//! A real ICAP scanner for tests and the demo: c-icap with its virus_scan service on a private
//! clamd ([`crate::clamd`]), both from Debian's packages.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub use crate::clamd::THREAT;
use crate::clamd::{Clamd, ClamdConfig};

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// Running clamd + c-icap; stopped when dropped.
pub struct CIcap {
    pub dir: PathBuf,
    pub port: u16,
    cicap: Child,
    /// Dropped after c-icap (field order).
    clamd: Clamd,
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
        std::fs::create_dir_all(&dir).expect("c-icap dir");
        let clamd = Clamd::start_in(
            Some(dir.clone()),
            ClamdConfig {
                cache: cfg.clamd_cache,
                ..ClamdConfig::default()
            },
        );
        let d = dir.display();
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
            cicap,
            clamd,
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
        self.clamd.update_signatures(version, sigs);
        let deadline = Instant::now() + Duration::from_secs(60);
        std::fs::write(self.dir.join("c-icap.ctl"), "reconfigure").expect("c-icap command");
        while self.istag("virus_scan") == before {
            assert!(Instant::now() < deadline, "c-icap kept its ISTag");
            std::thread::sleep(Duration::from_millis(100));
        }
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
        (self.clamd.pid(), self.cicap.id())
    }
}

impl Drop for CIcap {
    fn drop(&mut self) {
        // SAFETY: plain kill(2) on our child.
        unsafe { libc::kill(self.cicap.id() as i32, libc::SIGTERM) };
        // c-icap forks children that go with their parent's process group; give them a moment.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.cicap.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.cicap.kill();
        let _ = self.cicap.wait();
        // Whatever c-icap forked and did not stop in time.
        // SAFETY: kill(2) on the process group c-icap was started in (its pid).
        unsafe { libc::kill(-(self.cicap.id() as i32), libc::SIGKILL) };
        // clamd stops when its field is dropped, after this.
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
