//! Runs the real nginx binary with the module, each instance in its own prefix and port.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// `target/<profile>` of the running test binary (`target/<profile>/deps/<test>`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let mut dir = exe.parent().expect("deps dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

/// The nginx binary: `$OMETASCAN_NGINX` or the one built from the vendored source.
pub fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("OMETASCAN_NGINX") {
        return PathBuf::from(p);
    }
    let build = profile_dir().join("build");
    let mut best: Option<(std::time::SystemTime, PathBuf)> = None;
    if let Ok(entries) = std::fs::read_dir(&build) {
        for e in entries.flatten() {
            if !e.file_name().to_string_lossy().starts_with("nginx-sys-") {
                continue;
            }
            let p = e.path().join("out/objs/nginx");
            if let Ok(m) = p.metadata().and_then(|m| m.modified()) {
                if best.as_ref().is_none_or(|(t, _)| m > *t) {
                    best = Some((m, p));
                }
            }
        }
    }
    best.map(|(_, p)| p)
        .expect("no nginx binary under target/*/build/nginx-sys-*/out/objs")
}

/// The module: `$OMETASCAN_MODULE`, or the cargo artifact next to the test binary.
///
/// `cargo test` does not build a cdylib for integration tests, so the first call builds it
/// (same profile) with the cargo that runs the tests: a test never runs a stale module.
pub fn module() -> PathBuf {
    if let Some(p) = std::env::var_os("OMETASCAN_MODULE") {
        return PathBuf::from(p);
    }
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = profile_dir();
            if let (Some(cargo), Some(manifest)) = (
                std::env::var_os("CARGO"),
                std::env::var_os("CARGO_MANIFEST_DIR"),
            ) {
                let mut cmd = Command::new(cargo);
                cmd.arg("build")
                    .arg("--lib")
                    .arg("--manifest-path")
                    .arg(Path::new(&manifest).join("Cargo.toml"));
                if dir.ends_with("release") {
                    cmd.arg("--release");
                }
                // Variables cargo sets for test binaries but not for itself: build scripts
                // (nginx's, ring's) rerun when they change, which would rebuild them on every
                // test run.
                for (var, _) in std::env::vars_os() {
                    let name = var.to_string_lossy();
                    let set_for_tests = name == "OUT_DIR"
                        || name == "CARGO_TARGET_TMPDIR"
                        || name == "CARGO_PRIMARY_PACKAGE"
                        || [
                            "CARGO_PKG_",
                            "CARGO_CRATE_",
                            "CARGO_MANIFEST_",
                            "CARGO_BIN_",
                        ]
                        .iter()
                        .any(|p| name.starts_with(p));
                    if set_for_tests {
                        cmd.env_remove(&var);
                    }
                }
                let status = cmd.status().expect("run cargo build for the module");
                assert!(status.success(), "building the module failed");
            }
            dir.join("libngx_http_ometascan_module.so")
        })
        .clone()
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn new_prefix() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "ometascan-test-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("logs")).expect("prefix");
    std::fs::create_dir_all(dir.join("conf")).expect("prefix");
    dir
}

/// A whole configuration: the module, one worker, logs in `prefix`, and `http` inside the
/// http block. `%PORT%` in `http` becomes `port`, `%PREFIX%` the prefix.
pub fn config(prefix: &Path, port: u16, http: &str) -> String {
    format!(
        "load_module {module};\n\
         worker_processes 1;\n\
         daemon off;\n\
         error_log {prefix}/logs/error.log info;\n\
         pid {prefix}/logs/nginx.pid;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n\
         access_log off;\n\
         {http}\n\
         }}\n",
        module = module().display(),
        prefix = prefix.display(),
        http = http
            .replace("%PORT%", &port.to_string())
            .replace("%PREFIX%", &prefix.display().to_string()),
    )
}

/// `nginx -p PREFIX -c CONF -e PREFIX/logs/error.log`.
fn command(prefix: &Path, conf: &Path) -> Command {
    let mut c = Command::new(binary());
    c.arg("-p")
        .arg(prefix)
        .arg("-c")
        .arg(conf)
        .arg("-e")
        .arg(prefix.join("logs/error.log"));
    c
}

/// Result of `nginx -t`.
#[derive(Debug)]
pub struct Check {
    pub ok: bool,
    pub output: String,
    pub conf_path: PathBuf,
}

/// Runs `nginx -t` on a full configuration text.
pub fn check_config(text: &str) -> Check {
    check_config_env(text, &[])
}

/// [`check_config`] with environment variables set for nginx.
pub fn check_config_env(text: &str, env: &[(&str, &str)]) -> Check {
    let prefix = new_prefix();
    let conf = prefix.join("conf/nginx.conf");
    std::fs::write(
        &conf,
        text.replace("%PREFIX%", &prefix.display().to_string()),
    )
    .expect("write conf");
    let out = command(&prefix, &conf)
        .arg("-t")
        .envs(env.iter().copied())
        .output()
        .expect("run nginx -t");
    let output =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    Check {
        ok: out.status.success(),
        output,
        conf_path: conf,
    }
}

/// Runs `nginx -t` on an http-block snippet wrapped by [`config`].
pub fn check_http(http: &str) -> Check {
    check_http_env(http, &[])
}

/// [`check_http`] with environment variables set for nginx.
pub fn check_http_env(http: &str, env: &[(&str, &str)]) -> Check {
    let prefix = new_prefix();
    check_config_env(&config(&prefix, free_port(), http), env)
}

/// A running nginx; stopped and cleaned up when dropped.
pub struct Nginx {
    pub prefix: PathBuf,
    pub port: u16,
    child: Child,
}

impl Nginx {
    /// Starts nginx with `http` as the http block (see [`config`]).
    pub fn start(http: &str) -> Nginx {
        let prefix = new_prefix();
        let port = free_port();
        let text = config(&prefix, port, http);
        Self::start_with(prefix, port, &text)
    }

    /// Starts nginx with `workers` worker processes.
    pub fn start_workers(http: &str, workers: usize) -> Nginx {
        let prefix = new_prefix();
        let port = free_port();
        let text = config(&prefix, port, http).replace(
            "worker_processes 1;",
            &format!("worker_processes {workers};"),
        );
        Self::start_with(prefix, port, &text)
    }

    /// Starts nginx with a whole configuration text.
    pub fn start_with(prefix: PathBuf, port: u16, text: &str) -> Nginx {
        let conf = prefix.join("conf/nginx.conf");
        std::fs::write(&conf, text).expect("write conf");
        let child = command(&prefix, &conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start nginx");
        let n = Nginx {
            prefix,
            port,
            child,
        };
        n.wait_ready();
        n
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && !self.worker_pids().is_empty()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("nginx did not start; error log:\n{}", self.error_log());
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.prefix.join("logs/error.log")).unwrap_or_default()
    }

    /// Child processes of the master that are workers.
    pub fn worker_pids(&self) -> Vec<u32> {
        let master = self.child.id();
        let mut out = Vec::new();
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for e in entries.flatten() {
                let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                    continue;
                };
                let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                    continue;
                };
                // Fields after the command name: state ppid ...
                let Some(rest) = stat.rsplit_once(')').map(|x| x.1) else {
                    continue;
                };
                let fields: Vec<&str> = rest.split_whitespace().collect();
                if fields.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(master) {
                    let cmd =
                        std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                    if cmd.contains("worker process") {
                        out.push(pid);
                    }
                }
            }
        }
        out
    }

    pub fn worker(&self) -> u32 {
        *self.worker_pids().first().expect("a worker")
    }

    /// Sends a signal to the master.
    pub fn signal(&self, sig: i32) {
        // SAFETY: plain kill(2) on our child.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// `nginx -s reload`, then waits until a new worker runs.
    pub fn reload(&self) {
        let before = self.worker_pids();
        self.signal(libc::SIGHUP);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.worker_pids().iter().any(|p| !before.contains(p)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no new worker after reload");
    }

    /// Waits for the master to exit (after a quit signal).
    pub fn wait_exit(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

/// Number of open descriptors of a process.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Resident set size of a process in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// CPU time (user + system) of a process in clock ticks.
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some(rest) = stat.rsplit_once(')').map(|x| x.1) else {
        return 0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0);
    let stime: u64 = f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    utime + stime
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.signal(libc::SIGTERM);
        if !self.wait_exit(Duration::from_secs(5)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "nginx prefix kept for inspection: {}",
                self.prefix.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.prefix);
        }
    }
}
