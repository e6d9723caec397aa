//! How a level keeps a directive's value: `Option<T>` where a handler of ours parses it, or the
//! value in nginx's own representation where one of nginx's slot setters writes it ([`Flag`],
//! [`Msec`], [`Num`]); and the `post` handlers that check what a slot setter read.
//!
//! A slot setter refuses a second occurrence ("is duplicate") and a value it cannot read, as
//! for nginx's own directives; a `post` handler refuses what reads but cannot work, naming the
//! directive and the value.

use std::ffi::{c_char, c_void};
use std::time::Duration;

use ngx::ffi::*;

use crate::ngx_ext::conf::{args, fail, invalid_text, text, CONF_OK};

/// What a level keeps of a directive.
pub trait Stored: Clone + Default {
    /// The value, resolved when merging.
    type Value;
    /// How a request reads the resolved value: a copy of a plain one, a reference otherwise.
    type Read<'a>
    where
        Self: 'a;
    /// Whether the directive was written at this level (or inherited).
    fn is_set(&self) -> bool;
    /// The value, if set.
    fn value(&self) -> Option<Self::Value>;
    /// Reads a resolved value.
    fn read(value: &Self::Value) -> Self::Read<'_>;
}

impl<T: Clone> Stored for Option<T> {
    type Value = T;
    type Read<'a>
        = &'a T
    where
        T: 'a;
    fn is_set(&self) -> bool {
        self.is_some()
    }
    fn value(&self) -> Option<T> {
        self.clone()
    }
    fn read(value: &T) -> &T {
        value
    }
}

/// An `on | off` directive as `ngx_conf_set_flag_slot` writes it: `NGX_CONF_UNSET` until the
/// directive is read, then 1 or 0.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct Flag(ngx_flag_t);

impl Default for Flag {
    fn default() -> Self {
        Flag(NGX_CONF_UNSET as ngx_flag_t)
    }
}

impl Stored for Flag {
    type Value = bool;
    type Read<'a> = bool;
    fn is_set(&self) -> bool {
        self.0 != NGX_CONF_UNSET as ngx_flag_t
    }
    fn value(&self) -> Option<bool> {
        self.is_set().then_some(self.0 != 0)
    }
    fn read(value: &bool) -> bool {
        *value
    }
}

/// A time directive as `ngx_conf_set_msec_slot` writes it: `NGX_CONF_UNSET_MSEC` until read,
/// then milliseconds.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct Msec(ngx_msec_t);

impl Default for Msec {
    fn default() -> Self {
        Msec(ngx_msec_t::MAX)
    }
}

impl Stored for Msec {
    type Value = Duration;
    type Read<'a> = Duration;
    fn is_set(&self) -> bool {
        self.0 != ngx_msec_t::MAX
    }
    fn value(&self) -> Option<Duration> {
        self.is_set().then(|| Duration::from_millis(self.0 as u64))
    }
    fn read(value: &Duration) -> Duration {
        *value
    }
}

/// A number directive as `ngx_conf_set_num_slot` writes it: `NGX_CONF_UNSET` until read.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct Num(ngx_int_t);

impl Default for Num {
    fn default() -> Self {
        Num(NGX_CONF_UNSET as ngx_int_t)
    }
}

impl Stored for Num {
    type Value = usize;
    type Read<'a> = usize;
    fn is_set(&self) -> bool {
        self.0 != NGX_CONF_UNSET as ngx_int_t
    }
    fn value(&self) -> Option<usize> {
        // The post handler of every number directive bounds it at zero or above.
        self.is_set().then(|| usize::try_from(self.0).unwrap_or(0))
    }
    fn read(value: &usize) -> usize {
        *value
    }
}

/// The `post` of a time directive: above zero, with a warning above `advice` (seconds; 0:
/// none).
#[repr(C)]
pub struct Time {
    handler: ngx_conf_post_handler_pt,
    advice: u64,
}

/// The `post` of a number directive: from `low` to `high`.
#[repr(C)]
pub struct Bounds {
    handler: ngx_conf_post_handler_pt,
    low: ngx_int_t,
    high: ngx_int_t,
}

/// Any time above zero.
pub static ABOVE_ZERO: Time = Time {
    handler: Some(check_time),
    advice: 0,
};

/// A connect timeout: above zero, warned about above 75 s (connections fail earlier anyway).
pub static CONNECT: Time = Time {
    handler: Some(check_time),
    advice: 75,
};

/// `ometascan_keepalive`: idle connections per server.
pub static KEEPALIVE: Bounds = Bounds {
    handler: Some(check_bounds),
    low: 0,
    high: 10_000,
};

/// `ometascan_ssl_verify_depth`.
pub static VERIFY_DEPTH: Bounds = Bounds {
    handler: Some(check_bounds),
    low: 1,
    high: 100,
};

/// The `post` pointer a command carries for `post`.
pub const fn post<T>(post: &'static T) -> *mut c_void {
    post as *const T as *mut c_void
}

/// The directive's name and its value, as written.
///
/// # Safety
/// `cf` is the configuration nginx passes to a directive handler, during the call.
unsafe fn written(cf: *mut ngx_conf_t) -> (String, String) {
    // SAFETY: the caller's contract; a slot setter runs its post with the directive's words
    // (its name and, for the directives declared with a post, one value).
    let words = unsafe { args(cf) };
    let word = |i: usize| words.get(i).map(text).unwrap_or_default();
    (word(0), word(1))
}

unsafe extern "C" fn check_time(
    cf: *mut ngx_conf_t,
    post: *mut c_void,
    data: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx's msec slot setter calls its post with the command's `post` (a `Time` of
    // ours) and the field it wrote (an ngx_msec_t).
    let (post, ms) = unsafe { (&*(post as *const Time), *(data as *const ngx_msec_t)) };
    // SAFETY: nginx calls a post during the directive's handler.
    let (name, value) = unsafe { written(cf) };
    if ms == 0 {
        // SAFETY: as above.
        return unsafe {
            fail(
                cf,
                &invalid_text(&value, &name, "it must be greater than zero"),
            )
        };
    }
    if post.advice > 0 && ms as u64 > post.advice * 1000 {
        crate::warn!(
            crate::ngx_ext::log::Parsing(cf),
            "\"{name}\" value \"{value}\" is above {}s; connections usually fail earlier",
            post.advice
        );
    }
    CONF_OK
}

unsafe extern "C" fn check_bounds(
    cf: *mut ngx_conf_t,
    post: *mut c_void,
    data: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx's num slot setter calls its post with the command's `post` (a `Bounds` of
    // ours) and the field it wrote (an ngx_int_t).
    let (b, n) = unsafe { (&*(post as *const Bounds), *(data as *const ngx_int_t)) };
    if (b.low..=b.high).contains(&n) {
        return CONF_OK;
    }
    // SAFETY: nginx calls a post during the directive's handler.
    let (name, value) = unsafe { written(cf) };
    let why = format!("it must be a number from {} to {}", b.low, b.high);
    // SAFETY: as above.
    unsafe { fail(cf, &invalid_text(&value, &name, &why)) }
}
