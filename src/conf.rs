//! Directives and the per-location configuration: parsing, validation and merging.
//!
//! Every directive is accepted at `http`, `server` and `location` level. Values are kept as
//! `Option`s while parsing so that merging can tell "not set here" from "set to the default";
//! [`LocConf::merge`] fills what a level left unset from the level above.

use std::ffi::{c_char, c_void, CStr};
use std::ptr;
use std::time::Duration;

use bytes::Bytes;
use ngx::ffi::*;
use ngx::ngx_conf_log_error;
use ometascan_core::balancer::PeerSpec;
use ometascan_core::health::HealthSpec;
use ometascan_core::methods::MethodSet;
use ometascan_core::tls::{self, Suite, TlsVersion};
use ometascan_core::ScannerUrl;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT_ADVICE: Duration = Duration::from_secs(75);

/// Where `ometascan_pass` sends scans.
pub struct PassTarget {
    pub url: ScannerUrl,
    /// The URL as written, for log lines.
    pub shown: String,
    /// nginx's upstream for the host: an `upstream {}` block of that name, or an implicit one
    /// that nginx resolves at startup.
    pub upstream: *mut ngx_http_upstream_srv_conf_t,
}

pub enum Pass {
    Off,
    Scan(Box<PassTarget>),
}

/// One `ometascan_set_header` field; the value is compiled for nginx variables.
pub struct SetHeader {
    pub name: Bytes,
    pub value: *mut ngx_http_complex_value_t,
}

/// The TLS directives, resolved.
#[derive(Clone)]
pub struct SslConf {
    pub trusted_certificate: Option<String>,
    pub verify: bool,
    pub verify_depth: u32,
    pub versions: Vec<TlsVersion>,
    pub ciphers: Vec<Suite>,
    pub session_reuse: bool,
    pub name: Option<String>,
    pub server_name: bool,
}

#[derive(Default)]
pub struct LocConf {
    pub pass: Option<Pass>,
    pub methods: Option<MethodSet>,
    pub connect_timeout: Option<Duration>,
    pub send_timeout: Option<Duration>,
    pub read_timeout: Option<Duration>,
    pub x_forwarded_for: Option<bool>,
    pub intercept_errors: Option<bool>,
    pub allow_bad_request: Option<bool>,
    /// Where `ometascan_allow_bad_request_traffic on` was written, for the merge-time check.
    allow_bad_request_at: Option<String>,
    pub set_headers: Option<Vec<SetHeader>>,
    pub pre_cache: Option<bool>,
    pub ssl_trusted_certificate: Option<String>,
    pub ssl_verify: Option<bool>,
    pub ssl_verify_depth: Option<u32>,
    pub ssl_protocols: Option<Vec<TlsVersion>>,
    pub ssl_ciphers: Option<Vec<Suite>>,
    pub ssl_session_reuse: Option<bool>,
    pub ssl_name: Option<String>,
    pub ssl_server_name: Option<bool>,
    /// TLS client of a `https://` or `icaps://` scanner, made when merging.
    pub tls: Option<std::sync::Arc<tls::TlsClient>>,
    pub log_blocked: Option<bool>,
    pub keepalive: Option<usize>,
    pub keepalive_timeout: Option<Duration>,
    pub health_check: Option<HealthConf>,
    /// The servers of the scanner's group, read from nginx's upstream when merging.
    pub peers: Option<std::sync::Arc<Vec<PeerSpec>>>,
}

/// `ometascan_health_check` parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthConf {
    pub interval: Duration,
    pub fails: u32,
    pub passes: u32,
    pub uri: String,
    pub timeout: Duration,
}

impl Default for HealthConf {
    fn default() -> Self {
        HealthConf {
            interval: Duration::from_secs(5),
            fails: 2,
            passes: 1,
            uri: "/".into(),
            timeout: Duration::from_secs(2),
        }
    }
}

/// Health checks to start in each worker, by configuration cycle (set while parsing, in the
/// master; read after fork).
pub static HEALTH_CHECKS: std::sync::Mutex<Vec<(usize, HealthSpec)>> =
    std::sync::Mutex::new(Vec::new());

impl LocConf {
    /// The scanner of this location, unless scanning is off or not configured.
    pub fn target(&self) -> Option<&PassTarget> {
        match &self.pass {
            Some(Pass::Scan(t)) => Some(t),
            _ => None,
        }
    }

    pub fn methods(&self) -> &MethodSet {
        static DEFAULT: std::sync::OnceLock<MethodSet> = std::sync::OnceLock::new();
        self.methods
            .as_ref()
            .unwrap_or_else(|| DEFAULT.get_or_init(MethodSet::default))
    }

    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout.unwrap_or(DEFAULT_TIMEOUT)
    }

    pub fn send_timeout(&self) -> Duration {
        self.send_timeout.unwrap_or(DEFAULT_TIMEOUT)
    }

    pub fn read_timeout(&self) -> Duration {
        self.read_timeout.unwrap_or(DEFAULT_TIMEOUT)
    }

    pub fn x_forwarded_for(&self) -> bool {
        self.x_forwarded_for.unwrap_or(false)
    }

    pub fn intercept_errors(&self) -> bool {
        self.intercept_errors.unwrap_or(false)
    }

    pub fn allow_bad_request(&self) -> bool {
        self.allow_bad_request.unwrap_or(false)
    }

    pub fn pre_cache(&self) -> bool {
        self.pre_cache.unwrap_or(false)
    }

    pub fn log_blocked(&self) -> bool {
        self.log_blocked.unwrap_or(true)
    }

    pub fn keepalive(&self) -> usize {
        self.keepalive.unwrap_or(32)
    }

    pub fn keepalive_timeout(&self) -> Duration {
        self.keepalive_timeout.unwrap_or(Duration::from_secs(60))
    }

    pub fn set_headers(&self) -> &[SetHeader] {
        self.set_headers.as_deref().unwrap_or(&[])
    }

    /// The TLS settings, defaults applied.
    pub fn ssl(&self) -> SslConf {
        SslConf {
            trusted_certificate: self.ssl_trusted_certificate.clone(),
            verify: self.ssl_verify.unwrap_or(false),
            verify_depth: self.ssl_verify_depth.unwrap_or(1),
            versions: self
                .ssl_protocols
                .clone()
                .unwrap_or_else(|| vec![TlsVersion::Tls12, TlsVersion::Tls13]),
            ciphers: self
                .ssl_ciphers
                .clone()
                .unwrap_or_else(|| tls::TLS12_SUITES.to_vec()),
            session_reuse: self.ssl_session_reuse.unwrap_or(true),
            name: self.ssl_name.clone(),
            server_name: self.ssl_server_name.unwrap_or(false),
        }
    }

    /// Takes from `prev` (the enclosing level) whatever this level did not set. `set_headers`
    /// is inherited only as a whole, like `proxy_set_header`.
    fn merge(&mut self, prev: &mut LocConf) {
        if self.pass.is_none() {
            // The target is shared: only a pointer to nginx's upstream and the parsed URL.
            self.pass = prev.pass.as_ref().map(|p| match p {
                Pass::Off => Pass::Off,
                Pass::Scan(t) => Pass::Scan(Box::new(PassTarget {
                    url: t.url.clone(),
                    shown: t.shown.clone(),
                    upstream: t.upstream,
                })),
            });
        }
        macro_rules! inherit {
            ($($f:ident),*) => { $( if self.$f.is_none() { self.$f = prev.$f.clone(); } )* };
        }
        inherit!(
            methods,
            connect_timeout,
            send_timeout,
            read_timeout,
            x_forwarded_for,
            intercept_errors,
            allow_bad_request,
            allow_bad_request_at,
            pre_cache,
            ssl_trusted_certificate,
            ssl_verify,
            ssl_verify_depth,
            ssl_protocols,
            ssl_ciphers,
            ssl_session_reuse,
            ssl_name,
            ssl_server_name,
            log_blocked,
            keepalive,
            keepalive_timeout,
            health_check
        );
        if self.set_headers.is_none() {
            self.set_headers = prev.set_headers.as_ref().map(|v| {
                v.iter()
                    .map(|h| SetHeader {
                        name: h.name.clone(),
                        value: h.value,
                    })
                    .collect()
            });
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers over nginx's configuration structures.

/// The arguments of the directive being parsed, name first.
///
/// # Safety
/// `cf` must be the configuration nginx passes to a directive handler.
unsafe fn args<'a>(cf: *mut ngx_conf_t) -> &'a [ngx_str_t] {
    // SAFETY: during a directive handler `cf->args` is a valid array of ngx_str_t.
    unsafe { (*(*cf).args).as_slice() }
}

fn text(s: &ngx_str_t) -> String {
    String::from_utf8_lossy(s.as_bytes()).into_owned()
}

/// "file:line" of the directive being parsed.
///
/// # Safety
/// `cf` must be a valid configuration with a current file.
unsafe fn position(cf: *mut ngx_conf_t) -> String {
    // SAFETY: while parsing, cf->conf_file points to the file being read.
    unsafe {
        let file = (*cf).conf_file;
        if file.is_null() {
            return String::from("(unknown)");
        }
        format!("{}:{}", text(&(*file).file.name), (*file).line)
    }
}

const CONF_OK: *mut c_char = ptr::null_mut();

fn conf_error() -> *mut c_char {
    ngx::core::NGX_CONF_ERROR as *mut c_char
}

/// Logs `message` as an `emerg` configuration error (nginx appends the file and line) and
/// returns NGX_CONF_ERROR.
///
/// # Safety
/// `cf` must be valid.
unsafe fn fail(cf: *mut ngx_conf_t, message: &str) -> *mut c_char {
    ngx_conf_log_error!(NGX_LOG_EMERG, cf, "{}", message);
    conf_error()
}

fn invalid(value: &ngx_str_t, name: &str, why: &str) -> String {
    if why.is_empty() {
        format!(
            "invalid value \"{}\" in \"{}\" directive",
            text(value),
            name
        )
    } else {
        format!(
            "invalid value \"{}\" in \"{}\" directive, {}",
            text(value),
            name,
            why
        )
    }
}

/// The location configuration a directive writes to.
///
/// # Safety
/// `conf` must be the pointer nginx passes for an NGX_HTTP_LOC_CONF_OFFSET directive.
unsafe fn lcf<'a>(conf: *mut c_void) -> &'a mut LocConf {
    // SAFETY: nginx passes our own LocConf, created by create_loc_conf.
    unsafe { &mut *(conf as *mut LocConf) }
}

macro_rules! duplicate_check {
    ($cf:expr, $field:expr, $name:expr) => {
        if $field.is_some() {
            // SAFETY: cf is the configuration nginx passed to the directive handler.
            return unsafe { fail($cf, &format!("\"{}\" directive is duplicate", $name)) };
        }
    };
}

fn name_of(cmd: *mut ngx_command_t) -> String {
    // SAFETY: nginx passes the command being handled; its name is static.
    unsafe { text(&(*cmd).name) }
}

fn parse_on_off(v: &ngx_str_t) -> Option<bool> {
    match v.as_bytes() {
        b if b.eq_ignore_ascii_case(b"on") => Some(true),
        b if b.eq_ignore_ascii_case(b"off") => Some(false),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Directive handlers.

macro_rules! flag_handler {
    ($fn:ident, $field:ident) => {
        /// Handler of an `on | off` directive.
        pub unsafe extern "C" fn $fn(
            cf: *mut ngx_conf_t,
            cmd: *mut ngx_command_t,
            conf: *mut c_void,
        ) -> *mut c_char {
            // SAFETY: called by nginx with its own cf/cmd and our LocConf.
            let (a, c) = unsafe { (args(cf), lcf(conf)) };
            let name = name_of(cmd);
            duplicate_check!(cf, c.$field, name);
            match parse_on_off(&a[1]) {
                Some(v) => {
                    c.$field = Some(v);
                    CONF_OK
                }
                // SAFETY: cf is valid during the handler.
                None => unsafe { fail(cf, &invalid(&a[1], &name, "it must be \"on\" or \"off\"")) },
            }
        }
    };
}

flag_handler!(set_x_forwarded_for, x_forwarded_for);
flag_handler!(set_intercept_errors, intercept_errors);
flag_handler!(set_pre_cache, pre_cache);
flag_handler!(set_ssl_verify, ssl_verify);
flag_handler!(set_ssl_session_reuse, ssl_session_reuse);
flag_handler!(set_ssl_server_name, ssl_server_name);
flag_handler!(set_log_blocked, log_blocked);

/// `ometascan_allow_bad_request_traffic on | off`.
pub unsafe extern "C" fn set_allow_bad_request(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: called by nginx with its own cf/cmd and our LocConf.
    let (a, c) = unsafe { (args(cf), lcf(conf)) };
    let name = name_of(cmd);
    duplicate_check!(cf, c.allow_bad_request, name);
    match parse_on_off(&a[1]) {
        Some(v) => {
            c.allow_bad_request = Some(v);
            // SAFETY: cf is valid during the handler.
            c.allow_bad_request_at = Some(unsafe { position(cf) });
            CONF_OK
        }
        // SAFETY: cf is valid during the handler.
        None => unsafe { fail(cf, &invalid(&a[1], &name, "it must be \"on\" or \"off\"")) },
    }
}

macro_rules! time_handler {
    ($fn:ident, $field:ident, $advice:expr) => {
        /// Handler of a time directive (nginx time syntax).
        pub unsafe extern "C" fn $fn(
            cf: *mut ngx_conf_t,
            cmd: *mut ngx_command_t,
            conf: *mut c_void,
        ) -> *mut c_char {
            // SAFETY: called by nginx with its own cf/cmd and our LocConf.
            let (a, c) = unsafe { (args(cf), lcf(conf)) };
            let name = name_of(cmd);
            duplicate_check!(cf, c.$field, name);
            let mut v = a[1];
            // SAFETY: ngx_parse_time only reads the string.
            let ms = unsafe { ngx_parse_time(&mut v, 0) };
            if ms == NGX_ERROR as ngx_int_t || ms <= 0 {
                let why = if ms == 0 {
                    "it must be greater than zero"
                } else {
                    ""
                };
                // SAFETY: cf is valid during the handler.
                return unsafe { fail(cf, &invalid(&a[1], &name, why)) };
            }
            let d = Duration::from_millis(ms as u64);
            let advice: Option<Duration> = $advice;
            if let Some(limit) = advice {
                if d > limit {
                    ngx_conf_log_error!(
                        NGX_LOG_WARN,
                        cf,
                        "\"{}\" value \"{}\" is above {}s; connections usually fail earlier",
                        name,
                        text(&a[1]),
                        limit.as_secs()
                    );
                }
            }
            c.$field = Some(d);
            CONF_OK
        }
    };
}

time_handler!(
    set_connect_timeout,
    connect_timeout,
    Some(CONNECT_TIMEOUT_ADVICE)
);
time_handler!(set_send_timeout, send_timeout, None);
time_handler!(set_read_timeout, read_timeout, None);
time_handler!(set_keepalive_timeout, keepalive_timeout, None);

/// `ometascan_keepalive number`: idle connections kept per scanner server (0: none).
pub unsafe extern "C" fn set_keepalive(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: called by nginx with its own cf/cmd and our LocConf.
    let (a, c) = unsafe { (args(cf), lcf(conf)) };
    let name = name_of(cmd);
    duplicate_check!(cf, c.keepalive, name);
    match text(&a[1]).parse::<usize>() {
        Ok(n) if n <= 10_000 => {
            c.keepalive = Some(n);
            CONF_OK
        }
        // SAFETY: cf is valid during the handler.
        _ => unsafe {
            fail(
                cf,
                &invalid(&a[1], &name, "it must be a number from 0 to 10000"),
            )
        },
    }
}

/// `ometascan_health_check [interval=time] [fails=n] [passes=n] [uri=path] [timeout=time]`.
pub unsafe extern "C" fn set_health_check(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: called by nginx with its own cf/cmd and our LocConf.
    let (a, c) = unsafe { (args(cf), lcf(conf)) };
    let name = name_of(cmd);
    duplicate_check!(cf, c.health_check, name);
    let mut h = HealthConf::default();
    for v in &a[1..] {
        let item = text(v);
        let Some((key, value)) = item.split_once('=') else {
            // SAFETY: cf is valid during the handler.
            return unsafe { fail(cf, &invalid(v, &name, "parameters are key=value")) };
        };
        let time = |value: &str| {
            let mut s = ngx_str_t {
                len: value.len(),
                data: value.as_ptr() as *mut u8,
            };
            // SAFETY: ngx_parse_time only reads the string.
            let ms = unsafe { ngx_parse_time(&mut s, 0) };
            (ms > 0).then(|| Duration::from_millis(ms as u64))
        };
        let ok = match key {
            "interval" => time(value).map(|d| h.interval = d).is_some(),
            "timeout" => time(value).map(|d| h.timeout = d).is_some(),
            "fails" => value
                .parse::<u32>()
                .ok()
                .filter(|&n| n > 0)
                .map(|n| h.fails = n)
                .is_some(),
            "passes" => value
                .parse::<u32>()
                .ok()
                .filter(|&n| n > 0)
                .map(|n| h.passes = n)
                .is_some(),
            "uri" => {
                let ok = value.starts_with('/') && !value.bytes().any(|b| b <= b' ');
                if ok {
                    h.uri = value.to_string();
                }
                ok
            }
            _ => false,
        };
        if !ok {
            // SAFETY: cf is valid during the handler.
            return unsafe { fail(cf, &invalid(v, &name, "")) };
        }
    }
    c.health_check = Some(h);
    CONF_OK
}

/// The servers of an upstream group as nginx initialised them: primaries, then backups;
/// `down` ones left out.
///
/// # Safety
/// `us` must be an upstream whose round-robin peers nginx has initialised.
pub unsafe fn upstream_peers(us: *mut ngx_http_upstream_srv_conf_t) -> Vec<PeerSpec> {
    let mut out = Vec::new();
    // SAFETY: per the contract, the peer lists are valid and read-only.
    unsafe {
        if us.is_null() {
            return out;
        }
        let mut group = (*us).peer.data as *mut ngx_http_upstream_rr_peers_t;
        let mut backup = false;
        while !group.is_null() {
            let mut p = (*group).peer;
            while !p.is_null() {
                if (*p).down == 0 {
                    if let Some(addr) = sockaddr_to_std((*p).sockaddr) {
                        out.push(PeerSpec {
                            addr,
                            name: text(&(*p).name),
                            weight: (*p).weight.max(1) as u32,
                            max_fails: (*p).max_fails as u32,
                            fail_timeout: Duration::from_secs((*p).fail_timeout.max(0) as u64),
                            backup,
                        });
                    }
                }
                p = (*p).next;
            }
            group = (*group).next;
            backup = true;
        }
    }
    out
}

unsafe fn sockaddr_to_std(sa: *const sockaddr) -> Option<std::net::SocketAddr> {
    // SAFETY: sa points to a sockaddr of the family it declares.
    unsafe {
        if sa.is_null() {
            return None;
        }
        match (*sa).sa_family as i32 {
            libc::AF_INET => {
                let sin = &*(sa as *const libc::sockaddr_in);
                let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                Some(std::net::SocketAddr::from((ip, u16::from_be(sin.sin_port))))
            }
            libc::AF_INET6 => {
                let sin6 = &*(sa as *const libc::sockaddr_in6);
                let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                Some(std::net::SocketAddr::from((
                    ip,
                    u16::from_be(sin6.sin6_port),
                )))
            }
            _ => None,
        }
    }
}

/// `ometascan_pass URL | off`.
pub unsafe extern "C" fn set_pass(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: called by nginx with its own cf/cmd and our LocConf.
    let (a, c) = unsafe { (args(cf), lcf(conf)) };
    let name = name_of(cmd);
    duplicate_check!(cf, c.pass, name);
    let raw = text(&a[1]);
    if raw == "off" {
        c.pass = Some(Pass::Off);
        return CONF_OK;
    }
    let url = match ScannerUrl::parse(&raw) {
        Ok(u) => u,
        // SAFETY: cf is valid during the handler.
        Err(e) => return unsafe { fail(cf, &invalid(&a[1], &name, &e.to_string())) },
    };
    // Hand the host to nginx's upstream machinery, as proxy_pass does: an upstream{} block of
    // that name is used as is; otherwise nginx resolves the host when the configuration is
    // initialised and fails with "host not found" if it cannot.
    let host = if url.host.contains(':') {
        format!("[{}]", url.host)
    } else {
        url.host.clone()
    };
    let authority = if url.explicit_port {
        format!("{host}:{}", url.port)
    } else {
        host
    };
    // SAFETY: a zeroed ngx_url_t is the documented starting state (ngx_memzero in nginx).
    let mut u: ngx_url_t = unsafe { std::mem::zeroed() };
    // SAFETY: the pool outlives the configuration; the string is copied into it.
    let Some(s) = (unsafe { ngx_str_t::from_bytes((*cf).pool, authority.as_bytes()) }) else {
        return conf_error();
    };
    u.url = s;
    u.default_port = url.scheme.default_port();
    u.set_no_resolve(1);
    // SAFETY: cf is the http-level configuration context nginx gives the directive.
    let upstream = unsafe { ngx_http_upstream_add(cf, &mut u, 0) };
    if upstream.is_null() {
        return conf_error();
    }
    c.pass = Some(Pass::Scan(Box::new(PassTarget {
        url,
        shown: raw,
        upstream,
    })));
    CONF_OK
}

/// `ometascan_methods METHOD ... [any_with_body]`.
pub unsafe extern "C" fn set_methods(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: called by nginx with its own cf/cmd and our LocConf.
    let (a, c) = unsafe { (args(cf), lcf(conf)) };
    let name = name_of(cmd);
    duplicate_check!(cf, c.methods, name);
    match MethodSet::parse(a[1..].iter().map(|v| v.as_bytes())) {
        Ok(set) => c.methods = Some(set),
        Err((word, e)) => {
            let word = ngx_str_t {
                len: word.len(),
                data: word.as_ptr() as *mut u8,
            };
            // SAFETY: cf is valid during the handler.
            return unsafe { fail(cf, &invalid(&word, &name, &e.to_string())) };
        }
    }
    CONF_OK
}

/// `ometascan_set_header field value`.
pub unsafe extern "C" fn set_set_header(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: called by nginx with its own cf/cmd and our LocConf.
    let (a, c) = unsafe { (args(cf), lcf(conf)) };
    let name = name_of(cmd);
    let field = a[1].as_bytes();
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if field.is_empty() || !field.iter().all(|&b| token(b)) {
        // SAFETY: cf is valid during the handler.
        return unsafe { fail(cf, &invalid(&a[1], &name, "it is not a valid header name")) };
    }
    // SAFETY: the complex value lives in the configuration pool, like nginx's own.
    let cv = unsafe {
        ngx_pcalloc((*cf).pool, std::mem::size_of::<ngx_http_complex_value_t>())
            as *mut ngx_http_complex_value_t
    };
    if cv.is_null() {
        return conf_error();
    }
    let mut value = a[2];
    // SAFETY: zeroed is the documented starting state of ngx_http_compile_complex_value_t.
    let mut ccv: ngx_http_compile_complex_value_t = unsafe { std::mem::zeroed() };
    ccv.cf = cf;
    ccv.value = &mut value;
    ccv.complex_value = cv;
    // SAFETY: ccv is fully set up; nginx logs its own error for a bad variable.
    if unsafe { ngx_http_compile_complex_value(&mut ccv) } != NGX_OK as ngx_int_t {
        return conf_error();
    }
    c.set_headers.get_or_insert_with(Vec::new).push(SetHeader {
        name: Bytes::copy_from_slice(field),
        value: cv,
    });
    CONF_OK
}

/// `ometascan_pre_cache_size size` (deprecated, no effect).
pub unsafe extern "C" fn set_pre_cache_size(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    _conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: called by nginx with its own cf/cmd.
    let a = unsafe { args(cf) };
    let name = name_of(cmd);
    let mut v = a[1];
    // SAFETY: ngx_parse_offset only reads the string.
    if unsafe { ngx_parse_offset(&mut v) } < 0 {
        // SAFETY: cf is valid during the handler.
        return unsafe { fail(cf, &invalid(&a[1], &name, "")) };
    }
    ngx_conf_log_error!(
        NGX_LOG_WARN,
        cf,
        "the \"{}\" directive is deprecated and has no effect",
        name
    );
    CONF_OK
}

/// `ometascan_ssl_trusted_certificate file`.
pub unsafe extern "C" fn set_ssl_trusted_certificate(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: called by nginx with its own cf/cmd and our LocConf.
    let (a, c) = unsafe { (args(cf), lcf(conf)) };
    let name = name_of(cmd);
    duplicate_check!(cf, c.ssl_trusted_certificate, name);
    let mut path = a[1];
    // SAFETY: resolves a relative name against the prefix, allocating from the cycle pool.
    if unsafe { ngx_conf_full_name((*cf).cycle, &mut path, 1) } != NGX_OK as ngx_int_t {
        return conf_error();
    }
    let full = text(&path);
    if let Err(e) = tls::load_ca_file(std::path::Path::new(&full)) {
        // SAFETY: cf is valid during the handler.
        return unsafe { fail(cf, &format!("\"{name}\" directive: {e}")) };
    }
    c.ssl_trusted_certificate = Some(full);
    CONF_OK
}

/// `ometascan_ssl_verify_depth number`.
pub unsafe extern "C" fn set_ssl_verify_depth(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: called by nginx with its own cf/cmd and our LocConf.
    let (a, c) = unsafe { (args(cf), lcf(conf)) };
    let name = name_of(cmd);
    duplicate_check!(cf, c.ssl_verify_depth, name);
    match text(&a[1]).parse::<u32>() {
        Ok(n) if (1..=100).contains(&n) => {
            c.ssl_verify_depth = Some(n);
            CONF_OK
        }
        // SAFETY: cf is valid during the handler.
        _ => unsafe {
            fail(
                cf,
                &invalid(&a[1], &name, "it must be a number from 1 to 100"),
            )
        },
    }
}

/// `ometascan_ssl_protocols [SSLv3] [TLSv1] [TLSv1.1] [TLSv1.2] [TLSv1.3]`.
pub unsafe extern "C" fn set_ssl_protocols(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: called by nginx with its own cf/cmd and our LocConf.
    let (a, c) = unsafe { (args(cf), lcf(conf)) };
    let name = name_of(cmd);
    duplicate_check!(cf, c.ssl_protocols, name);
    let names: Vec<String> = a[1..].iter().map(text).collect();
    match tls::parse_protocols(&names) {
        Ok(p) => {
            for ignored in &p.ignored {
                ngx_conf_log_error!(
                    NGX_LOG_WARN,
                    cf,
                    "\"{}\": {} is not supported by the TLS library and is ignored",
                    name,
                    ignored
                );
            }
            c.ssl_protocols = Some(p.versions);
            CONF_OK
        }
        Err(tls::TlsConfigError::UnknownProtocol(p)) => {
            let bad = ngx_str_t {
                len: p.len(),
                data: p.as_ptr() as *mut u8,
            };
            let why = "it must be SSLv3, TLSv1, TLSv1.1, TLSv1.2 or TLSv1.3";
            // SAFETY: cf is valid during the handler.
            unsafe { fail(cf, &invalid(&bad, &name, why)) }
        }
        // SAFETY: cf is valid during the handler.
        Err(e) => unsafe { fail(cf, &format!("\"{name}\" directive: {e}")) },
    }
}

/// `ometascan_ssl_ciphers ciphers`.
pub unsafe extern "C" fn set_ssl_ciphers(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: called by nginx with its own cf/cmd and our LocConf.
    let (a, c) = unsafe { (args(cf), lcf(conf)) };
    let name = name_of(cmd);
    duplicate_check!(cf, c.ssl_ciphers, name);
    match tls::select_ciphers(&text(&a[1])) {
        Ok(s) => {
            c.ssl_ciphers = Some(s);
            CONF_OK
        }
        // SAFETY: cf is valid during the handler.
        Err(e) => unsafe { fail(cf, &invalid(&a[1], &name, &e.to_string())) },
    }
}

/// `ometascan_ssl_name name`.
pub unsafe extern "C" fn set_ssl_name(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: called by nginx with its own cf/cmd and our LocConf.
    let (a, c) = unsafe { (args(cf), lcf(conf)) };
    let name = name_of(cmd);
    duplicate_check!(cf, c.ssl_name, name);
    let v = text(&a[1]);
    let ok = !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'));
    if !ok {
        // SAFETY: cf is valid during the handler.
        return unsafe { fail(cf, &invalid(&a[1], &name, "it must be a host name")) };
    }
    c.ssl_name = Some(v);
    CONF_OK
}

// ---------------------------------------------------------------------------------------------
// Module configuration callbacks.

/// Creates a location configuration with nothing set.
pub unsafe extern "C" fn create_loc_conf(cf: *mut ngx_conf_t) -> *mut c_void {
    // SAFETY: the configuration pool outlives the configuration; the pool drops the value.
    let pool = unsafe { ngx::core::Pool::from_ngx_pool((*cf).pool) };
    pool.allocate(LocConf::default()) as *mut c_void
}

/// Merges a level into the next inner one and checks the combinations.
pub unsafe extern "C" fn merge_loc_conf(
    cf: *mut ngx_conf_t,
    parent: *mut c_void,
    child: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx passes two of our LocConfs.
    let (prev, conf) = unsafe { (lcf(parent), lcf(child)) };
    conf.merge(prev);
    if let Some(target) = conf.target() {
        if target.url.scheme.is_tls() {
            let ssl = conf.ssl();
            let client = tls::TlsClient::new(tls::TlsSettings {
                verify: ssl.verify,
                trusted_certificate: ssl.trusted_certificate,
                verify_depth: ssl.verify_depth,
                versions: ssl.versions,
                ciphers: ssl.ciphers,
                session_reuse: ssl.session_reuse,
                name: ssl.name.unwrap_or_else(|| target.url.host.clone()),
                send_sni: ssl.server_name,
            });
            // Built now so that nginx -t reports what cannot work (no CA bundle, bad name).
            if let Err(e) = client
                .config()
                .and_then(|_| client.server_name().map(|_| ()))
            {
                let msg = format!("ometascan: TLS settings for \"{}\": {e}\0", target.shown);
                // SAFETY: cf->log is the configuration log.
                unsafe {
                    ngx_log_error_core(
                        NGX_LOG_EMERG as ngx_uint_t,
                        (*cf).log,
                        0,
                        c"%s".as_ptr(),
                        msg.as_ptr() as *const c_char,
                    );
                }
                return conf_error();
            }
            conf.tls = Some(std::sync::Arc::new(client));
        }
    }
    if let Some(target) = conf.target() {
        // SAFETY: the upstream module initialised its groups before modules after it merge.
        let peers = unsafe { upstream_peers(target.upstream) };
        if peers.is_empty() {
            let msg = format!("ometascan: no usable servers for \"{}\"\0", target.shown);
            // SAFETY: cf->log is the configuration log.
            unsafe {
                ngx_log_error_core(
                    NGX_LOG_EMERG as ngx_uint_t,
                    (*cf).log,
                    0,
                    c"%s".as_ptr(),
                    msg.as_ptr() as *const c_char,
                );
            }
            return conf_error();
        }
        let peers = std::sync::Arc::new(peers);
        if let Some(h) = &conf.health_check {
            let spec = HealthSpec {
                group: target.upstream as usize,
                peers: peers.clone(),
                url: target.url.clone(),
                tls: conf.tls.clone(),
                interval: h.interval,
                fails: h.fails,
                passes: h.passes,
                uri: h.uri.clone(),
                timeout: h.timeout,
            };
            // SAFETY: cf->cycle is the cycle being configured.
            let cycle = unsafe { (*cf).cycle } as usize;
            let mut all = HEALTH_CHECKS.lock().unwrap_or_else(|e| e.into_inner());
            if !all
                .iter()
                .any(|(c, s)| *c == cycle && s.group == spec.group)
            {
                all.push((cycle, spec));
            }
        }
        conf.peers = Some(peers);
    }
    if conf.allow_bad_request() && !conf.pre_cache() {
        let at = conf.allow_bad_request_at.clone().unwrap_or_default();
        // SAFETY: cf->log is the configuration log.
        unsafe {
            let msg = format!(
                "\"ometascan_allow_bad_request_traffic on\" requires \"ometascan_pre_cache on\" in {at}\0"
            );
            ngx_log_error_core(
                NGX_LOG_EMERG as ngx_uint_t,
                (*cf).log,
                0,
                c"%s".as_ptr(),
                msg.as_ptr() as *const c_char,
            );
        }
        return conf_error();
    }
    CONF_OK
}

type Handler =
    unsafe extern "C" fn(*mut ngx_conf_t, *mut ngx_command_t, *mut c_void) -> *mut c_char;

const ANY_LEVEL: u32 = NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF;

const fn cmd(name: &'static CStr, args: u32, set: Handler) -> ngx_command_t {
    ngx_command_t {
        name: ngx_str_t {
            len: name.to_bytes().len(),
            data: name.as_ptr() as *mut u8,
        },
        type_: (ANY_LEVEL | args) as ngx_uint_t,
        set: Some(set),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: 0,
        post: ptr::null_mut(),
    }
}

/// The directive table nginx reads while parsing the configuration.
pub static mut COMMANDS: [ngx_command_t; 25] = [
    ngx_command_t {
        name: ngx_str_t {
            len: 16,
            data: c"ometascan_status".as_ptr() as *mut u8,
        },
        type_: (NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS) as ngx_uint_t,
        set: Some(crate::stats::set_status),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: 0,
        post: ptr::null_mut(),
    },
    cmd(c"ometascan_log_blocked", NGX_CONF_TAKE1, set_log_blocked),
    cmd(c"ometascan_keepalive", NGX_CONF_TAKE1, set_keepalive),
    cmd(
        c"ometascan_keepalive_timeout",
        NGX_CONF_TAKE1,
        set_keepalive_timeout,
    ),
    cmd(c"ometascan_health_check", NGX_CONF_ANY, set_health_check),
    cmd(c"ometascan_pass", NGX_CONF_TAKE1, set_pass),
    cmd(c"ometascan_methods", NGX_CONF_1MORE, set_methods),
    cmd(
        c"ometascan_connect_timeout",
        NGX_CONF_TAKE1,
        set_connect_timeout,
    ),
    cmd(c"ometascan_send_timeout", NGX_CONF_TAKE1, set_send_timeout),
    cmd(c"ometascan_read_timeout", NGX_CONF_TAKE1, set_read_timeout),
    cmd(
        c"ometascan_x_forwarded_for",
        NGX_CONF_TAKE1,
        set_x_forwarded_for,
    ),
    cmd(
        c"ometascan_intercept_errors",
        NGX_CONF_TAKE1,
        set_intercept_errors,
    ),
    cmd(
        c"ometascan_allow_bad_request_traffic",
        NGX_CONF_TAKE1,
        set_allow_bad_request,
    ),
    cmd(c"ometascan_set_header", NGX_CONF_TAKE2, set_set_header),
    cmd(c"ometascan_pre_cache", NGX_CONF_TAKE1, set_pre_cache),
    cmd(
        c"ometascan_pre_cache_size",
        NGX_CONF_TAKE1,
        set_pre_cache_size,
    ),
    cmd(
        c"ometascan_ssl_trusted_certificate",
        NGX_CONF_TAKE1,
        set_ssl_trusted_certificate,
    ),
    cmd(c"ometascan_ssl_verify", NGX_CONF_TAKE1, set_ssl_verify),
    cmd(
        c"ometascan_ssl_verify_depth",
        NGX_CONF_TAKE1,
        set_ssl_verify_depth,
    ),
    cmd(
        c"ometascan_ssl_protocols",
        NGX_CONF_1MORE,
        set_ssl_protocols,
    ),
    cmd(c"ometascan_ssl_ciphers", NGX_CONF_TAKE1, set_ssl_ciphers),
    cmd(
        c"ometascan_ssl_session_reuse",
        NGX_CONF_TAKE1,
        set_ssl_session_reuse,
    ),
    cmd(c"ometascan_ssl_name", NGX_CONF_TAKE1, set_ssl_name),
    cmd(
        c"ometascan_ssl_server_name",
        NGX_CONF_TAKE1,
        set_ssl_server_name,
    ),
    ngx_command_t::empty(),
];
