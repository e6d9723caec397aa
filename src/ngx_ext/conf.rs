//! Reading directive arguments and reporting configuration errors the way nginx does.

use std::ffi::c_char;
use std::ptr;

use ngx::ffi::*;

/// The arguments of the directive being parsed, name first.
///
/// # Safety
/// `cf` must be the configuration nginx passes to a directive handler.
pub unsafe fn args<'a>(cf: *mut ngx_conf_t) -> &'a [ngx_str_t] {
    // SAFETY: during a directive handler `cf->args` is a valid array of ngx_str_t.
    unsafe { (*(*cf).args).as_slice() }
}

pub fn text(s: &ngx_str_t) -> String {
    String::from_utf8_lossy(s.as_bytes()).into_owned()
}

/// "file:line" of the directive being parsed.
///
/// # Safety
/// `cf` must be a valid configuration with a current file.
pub unsafe fn position(cf: *mut ngx_conf_t) -> String {
    // SAFETY: while parsing, cf->conf_file points to the file being read.
    unsafe {
        let file = (*cf).conf_file;
        if file.is_null() {
            return String::from("(unknown)");
        }
        format!("{}:{}", text(&(*file).file.name), (*file).line)
    }
}

pub const CONF_OK: *mut c_char = ptr::null_mut();

pub fn conf_error() -> *mut c_char {
    ngx::core::NGX_CONF_ERROR as *mut c_char
}

/// Logs `message` as an `emerg` configuration error (nginx appends the file and line) and
/// returns NGX_CONF_ERROR.
///
/// # Safety
/// `cf` must be valid.
pub unsafe fn fail(cf: *mut ngx_conf_t, message: &str) -> *mut c_char {
    crate::emerg!(super::log::Parsing(cf), "{message}");
    conf_error()
}

/// `invalid value "..." in "..." directive[, why]`.
pub fn invalid(value: &ngx_str_t, name: &str, why: &str) -> String {
    invalid_text(&text(value), name, why)
}

/// As [`invalid`], for a value already read.
pub fn invalid_text(value: &str, name: &str, why: &str) -> String {
    if why.is_empty() {
        format!("invalid value \"{value}\" in \"{name}\" directive")
    } else {
        format!("invalid value \"{value}\" in \"{name}\" directive, {why}")
    }
}

/// Returns nginx's "is duplicate" error from a directive handler when `field` is set already.
macro_rules! duplicate_check {
    ($d:expr, $field:expr) => {
        if $field.is_some() {
            return $d.duplicate();
        }
    };
}
pub(crate) use duplicate_check;

/// A directive being handled: its words and the configuration being parsed, for the length
/// of the handler's call.
pub struct Directive<'a> {
    cf: *mut ngx_conf_t,
    /// The directive's words, its name first.
    pub args: &'a [ngx_str_t],
    /// Its name, for messages.
    pub name: String,
}

impl Directive<'_> {
    /// # Safety
    /// `cf` and `cmd` must be what nginx passes to a directive handler, and the value must not
    /// outlive the call (nginx reuses `cf->args` for the next directive).
    pub unsafe fn new(cf: *mut ngx_conf_t, cmd: *mut ngx_command_t) -> Self {
        Directive {
            cf,
            // SAFETY: cf is what nginx passed to the handler (caller); cf->args holds the
            // directive's words until the handler returns, which the value does not outlive.
            args: unsafe { args(cf) },
            name: name_of(cmd),
        }
    }

    /// Logs `message` as an `emerg` configuration error (nginx adds the file and line) and
    /// returns NGX_CONF_ERROR.
    pub fn fail(&self, message: &str) -> *mut c_char {
        // SAFETY: cf is the configuration nginx passed for this handler call, which the value
        // does not outlive (see `new`).
        unsafe { fail(self.cf, message) }
    }

    /// `invalid value "..." in "..." directive, why`.
    pub fn invalid(&self, value: &ngx_str_t, why: &str) -> *mut c_char {
        self.fail(&invalid(value, &self.name, why))
    }

    /// `"..." directive is duplicate`.
    pub fn duplicate(&self) -> *mut c_char {
        self.fail(&format!("\"{}\" directive is duplicate", self.name))
    }
}

pub fn name_of(cmd: *mut ngx_command_t) -> String {
    // SAFETY: nginx passes the command being handled; its name is static.
    unsafe { text(&(*cmd).name) }
}

pub fn parse_on_off(v: &ngx_str_t) -> Option<bool> {
    match v.as_bytes() {
        b if b.eq_ignore_ascii_case(b"on") => Some(true),
        b if b.eq_ignore_ascii_case(b"off") => Some(false),
        _ => None,
    }
}

/// Logs `message` at `emerg` in the configuration log, for checks made when levels are
/// merged (nginx knows no directive position by then), and returns NGX_CONF_ERROR.
///
/// # Safety
/// `cf` must be valid.
pub unsafe fn merge_error(cf: *mut ngx_conf_t, message: &str) -> *mut c_char {
    crate::emerg!(super::log::Merging(cf), "{message}");
    conf_error()
}

/// The time of a `key=time` argument (`wait=10s`), `None` for another key or no time.
pub fn time_param(arg: &ngx_str_t, key: &str) -> Option<std::time::Duration> {
    let v = arg.as_bytes().strip_prefix(key.as_bytes())?;
    parse_time(&ngx_str_t {
        len: v.len(),
        data: v.as_ptr() as *mut u8,
    })
}

/// Parses an nginx time (`500ms`, `90s`, `1d`); `None` unless it is positive.
pub fn parse_time(value: &ngx_str_t) -> Option<std::time::Duration> {
    let mut v = *value;
    // SAFETY: ngx_parse_time only reads the string.
    let ms = unsafe { ngx_parse_time(&mut v, 0) };
    (ms != NGX_ERROR as ngx_int_t && ms > 0).then(|| std::time::Duration::from_millis(ms as u64))
}
