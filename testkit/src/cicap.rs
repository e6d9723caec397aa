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

    pub fn pids(&self) -> (u32, u32) {
        (self.clamd.id(), self.cicap.id())
    }
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
