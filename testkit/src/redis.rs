//! A real Redis server for the verdict cache's tests: Debian's `redis-server`, on 127.0.0.1,
//! without persistence, configured as operators run it when asked (a password, ACL users,
//! TLS), and a Sentinel watching one; stopped when dropped.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    pub port: u16,
    /// The password the test's own commands log in with (`AUTH`), if the server wants one.
    pub admin: Option<String>,
    child: Option<Child>,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        Self::start_with(&[], None)
    }

    /// With `extra` arguments for redis-server (`--requirepass x`, `--user ...`, TLS settings);
    /// `admin` is the default user's password, for the test's own commands.
    pub fn start_with(extra: &[String], admin: Option<&str>) -> RedisServer {
        let port = crate::nginx::free_port();
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (apt-get install redis-server)");
        let me = RedisServer {
            port,
            admin: admin.map(str::to_string),
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if me.command("PING").starts_with("+PONG") {
                return me;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not start");
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// One inline command and the first line of its answer ("" when Redis is not there).
    pub fn command(&self, cmd: &str) -> String {
        use std::io::{BufRead, BufReader, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return String::new();
        };
        s.set_read_timeout(Some(Duration::from_secs(2))).ok();
        let mut r = BufReader::new(s.try_clone().expect("socket"));
        let mut line = String::new();
        if let Some(pass) = &self.admin {
            if s.write_all(format!("AUTH {pass}\r\n").as_bytes()).is_err() {
                return String::new();
            }
            let _ = r.read_line(&mut line);
            line.clear();
        }
        if s.write_all(format!("{cmd}\r\n").as_bytes()).is_err() {
            return String::new();
        }
        let _ = r.read_line(&mut line);
        line
    }

    /// Keys stored (`DBSIZE`).
    pub fn keys(&self) -> usize {
        self.keys_in(0)
    }

    /// Keys stored in database `db`.
    pub fn keys_in(&self, db: u32) -> usize {
        self.command(&format!(
            "EVAL \"redis.call('SELECT', {db}) return redis.call('DBSIZE')\" 0"
        ))
        .trim()
        .trim_start_matches(':')
        .parse()
        .unwrap_or(0)
    }

    /// Kills the server (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A Sentinel (`redis-server --sentinel`) watching one master under a name; stopped when
/// dropped.
pub struct Sentinel {
    pub port: u16,
    dir: std::path::PathBuf,
    child: Child,
}

impl Sentinel {
    pub fn start(master: &RedisServer, name: &str) -> Sentinel {
        let port = crate::nginx::free_port();
        let dir = std::env::temp_dir().join(format!("ometascan-sentinel-{port}"));
        std::fs::create_dir_all(&dir).expect("sentinel dir");
        let conf = dir.join("sentinel.conf");
        let auth = master
            .admin
            .as_ref()
            .map(|p| format!("sentinel auth-pass {name} {p}\n"))
            .unwrap_or_default();
        std::fs::write(
            &conf,
            format!(
                "bind 127.0.0.1\nport {port}\nprotected-mode no\ndir {}\n\
                 sentinel monitor {name} 127.0.0.1 {} 1\n{auth}",
                dir.display(),
                master.port
            ),
        )
        .expect("sentinel.conf");
        let child = Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server --sentinel");
        let me = Sentinel { port, dir, child };
        let probe = RedisServer {
            port,
            admin: None,
            child: None,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if probe
                .command(&format!("SENTINEL get-master-addr-by-name {name}"))
                .starts_with("*2")
            {
                return me;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis sentinel did not start");
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
