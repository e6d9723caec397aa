//! What follows from the declarations of `declared.rs`: the command table nginx reads, the
//! [`LocConf`] fields a level keeps (unset until its directive is read), its inheritance (an
//! inner level takes every value it did not set from the outer one), the defaults resolved once
//! when merging, and an accessor per directive. Adding a directive of a plain value is one
//! entry there (with nginx's slot setter, or a handler), its use through the accessor, and its
//! reference entry in docs/directives.md.

use ngx::ffi::*;
use ometascan_core::cache::{self, RedisSpec};
use ometascan_core::methods::MethodSet;
use ometascan_core::net::tls::{self, Suite, TlsVersion};
use ometascan_core::scan::options::{DEFAULT_KEEPALIVE, DEFAULT_TIMEOUT};
use ometascan_core::upstream::health::HealthParams;
use ometascan_core::BodyLimits;

use super::cache::*;
use super::directives::*;
use super::pieces::*;
use super::policy::*;
use super::response::*;
use super::slot::{Flag, Msec, Num, Stored, ABOVE_ZERO, CONNECT, KEEPALIVE, VERIFY_DEPTH};
use super::ssl::*;
use super::{CacheZone, MaxScans, OnError, OverSize, Pass, ResponseStatuses, SetHeader};
use crate::ngx_ext::value::ComplexValue;

/// Allowed in `http`, `server` and `location`.
const ANY: u32 = NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF;
/// Allowed in `location` only.
const LOC: u32 = NGX_HTTP_LOC_CONF;
/// Allowed in `http` only.
const MAIN: u32 = NGX_HTTP_MAIN_CONF;

/// A resolved default as the reference writes it (for the declarations test).
#[cfg(debug_assertions)]
trait Shown {
    fn shown(&self) -> String;
}

#[cfg(debug_assertions)]
mod shown {
    use std::time::Duration;

    use super::*;

    impl Shown for bool {
        fn shown(&self) -> String {
            if *self { "on" } else { "off" }.into()
        }
    }
    impl Shown for usize {
        fn shown(&self) -> String {
            self.to_string()
        }
    }
    impl Shown for Vec<u16> {
        fn shown(&self) -> String {
            let words: Vec<String> = self.iter().map(u16::to_string).collect();
            words.join(" ")
        }
    }
    impl Shown for ResponseStatuses {
        fn shown(&self) -> String {
            match self {
                ResponseStatuses::Any => "any".into(),
                ResponseStatuses::Listed(codes) => codes.shown(),
            }
        }
    }
    impl Shown for Duration {
        fn shown(&self) -> String {
            let ms = self.as_millis();
            let units = [
                (86_400_000, "d"),
                (3_600_000, "h"),
                (60_000, "m"),
                (1000, "s"),
            ];
            units
                .iter()
                .find(|(u, _)| ms.is_multiple_of(*u) && ms > 0)
                .map_or_else(|| format!("{ms}ms"), |(u, s)| format!("{}{s}", ms / u))
        }
    }
    impl Shown for MethodSet {
        fn shown(&self) -> String {
            self.to_string()
        }
    }
    impl Shown for Vec<TlsVersion> {
        fn shown(&self) -> String {
            let name = |v: &TlsVersion| match v {
                TlsVersion::Tls12 => "TLSv1.2",
                TlsVersion::Tls13 => "TLSv1.3",
            };
            self.iter().map(name).collect::<Vec<_>>().join(" ")
        }
    }
    impl Shown for Vec<Suite> {
        fn shown(&self) -> String {
            if self.as_slice() == tls::TLS12_SUITES {
                "DEFAULT".into()
            } else {
                format!("{} suites", self.len())
            }
        }
    }
    impl Shown for OnError {
        fn shown(&self) -> String {
            match self {
                OnError::Block => "block",
                OnError::Pass => "pass",
            }
            .into()
        }
    }
    impl Shown for BodyLimits {
        fn shown(&self) -> String {
            let header = self.multipart.max_header;
            let header = if header.is_multiple_of(1024) {
                format!("{}k", header / 1024)
            } else {
                header.to_string()
            };
            let size = |n: u64| match n {
                n if n % (1 << 30) == 0 => format!("{}g", n >> 30),
                n if n % (1 << 20) == 0 => format!("{}m", n >> 20),
                n if n % (1 << 10) == 0 => format!("{}k", n >> 10),
                n => n.to_string(),
            };
            let d = &self.decode;
            format!(
                "parts={} part_header={header} fields={} objects={} decoded={} decode_time={} \
                 zstd_window={} depth={}",
                self.multipart.max_parts,
                self.max_fields,
                self.max_objects,
                size(d.max_bytes),
                d.max_time.shown(),
                size(d.zstd_window),
                self.max_depth
            )
        }
    }
    impl Shown for CacheZone {
        fn shown(&self) -> String {
            match self {
                CacheZone::Off => "off".into(),
                CacheZone::Zone(_) => "a zone".into(),
            }
        }
    }
    impl Shown for Option<Pieces> {
        fn shown(&self) -> String {
            match self {
                None => "off".into(),
                Some(p) => {
                    let mut v: Vec<&str> = Vec::new();
                    if p.tus {
                        v.push("tus");
                    }
                    if p.range {
                        v.push("content_range");
                    }
                    if p.s3 {
                        v.push("s3");
                    }
                    if p.fields.is_some() {
                        v.push("fields");
                    }
                    format!("{} spool={}", v.join(" "), p.spool.dir().display())
                }
            }
        }
    }
    impl Shown for Option<RedisSpec> {
        fn shown(&self) -> String {
            match self {
                None => "off".into(),
                Some(r) => r
                    .addrs
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(" "),
            }
        }
    }
}

/// Pushes `name=value` of a directive with a default (nothing for one without).
#[cfg(debug_assertions)]
macro_rules! shown_default {
    ($out:ident, $c:ident, $name:ident, $field:ident) => {};
    ($out:ident, $c:ident, $name:ident, $field:ident, $default:expr) => {
        $out.push(format!("{}={}", stringify!($name), $c.$field().shown()));
    };
}

/// The accessor of a directive: its value at a merged level, the default applied; for a
/// directive without one (kept as an `Option`), the value if set.
macro_rules! accessor {
    ($field:ident, $ty:ty) => {
        #[doc = concat!("`", stringify!($field), "` if set.")]
        pub fn $field(&self) -> Option<&<$ty as Stored>::Value> {
            self.$field.as_ref()
        }
    };
    ($field:ident, $ty:ty, $default:expr) => {
        #[doc = concat!("`", stringify!($field), "` as set, else its default.")]
        pub fn $field(&self) -> <$ty as Stored>::Read<'_> {
            <$ty as Stored>::read(&self.resolved.$field)
        }
    };
}

/// What [`Resolved`] keeps of a directive: its value for one with a default, nothing for
/// one without (read from the level's own field).
macro_rules! resolved_type {
    ($ty:ty) => {
        ()
    };
    ($ty:ty, $default:expr) => {
        <$ty as Stored>::Value
    };
}

/// A directive's default, for a level nothing is merged into.
macro_rules! resolved_default {
    () => {
        ()
    };
    ($default:expr) => {
        $default
    };
}

/// A directive's resolved value: as set, else its default.
macro_rules! resolved_value {
    ($c:ident, $field:ident) => {
        ()
    };
    ($c:ident, $field:ident, $default:expr) => {
        $c.$field.value().unwrap_or_else(|| $default)
    };
}

macro_rules! directives {
    ($(
        $name:ident {
            $field:ident : $ty:ty = ($($default:expr)?), $ctx:ident, $args:ident,
            $set:path $([$post:expr])?,
            $syntax:literal, $default_text:literal, $example:literal, $doc:literal
        }
    )*) => {
        /// One level's directives, as written (unset: not set at this level), and after
        /// merging what a request uses.
        #[derive(Default)]
        pub struct LocConf {
            $( #[doc = $doc] pub $field: $ty, )*
            /// Where `ometascan_allow_bad_request_traffic on` was written, for the merge-time
            /// check (inherited with it).
            pub allow_bad_request_at: Option<String>,
            /// Every directive with a default as this level resolves it (the defaults alone
            /// until the level is merged).
            resolved: Resolved,
            /// What a scan of this level reads, built when merging (`None` at a level no
            /// request uses: the http block's own).
            pub options: Option<ometascan_core::ScanOptions>,
            /// The scanner of `ometascan_pass`, made ready when merging.
            pub scanner: Option<super::scanner::Built>,
            /// ... and the one of `ometascan_response_pass`.
            pub response_scanner: Option<super::scanner::Built>,
        }

        /// The values of a level's directives with a default, resolved once.
        #[allow(dead_code)] // the `()` of each directive without a default
        struct Resolved {
            $( $field: resolved_type!($ty $(, $default)?), )*
        }

        impl Default for Resolved {
            fn default() -> Self {
                Resolved { $( $field: resolved_default!($($default)?), )* }
            }
        }

        impl Resolved {
            fn of(c: &LocConf) -> Resolved {
                Resolved { $( $field: resolved_value!(c, $field $(, $default)?), )* }
            }
        }

        impl LocConf {
            /// Takes from `prev` (the enclosing level) every directive this level did not set
            /// and resolves what the level's requests read.
            pub(super) fn inherit(&mut self, prev: &LocConf) {
                if self.allow_bad_request.is_none() {
                    self.allow_bad_request_at = prev.allow_bad_request_at.clone();
                }
                $( if !self.$field.is_set() { self.$field = prev.$field.clone(); } )*
                self.resolved = Resolved::of(self);
            }

            $( accessor!($field, $ty $(, $default)?); )*

            /// The directives this level has a value of, its own or inherited.
            #[cfg(debug_assertions)]
            pub(super) fn set_directives(&self) -> Vec<&'static str> {
                let mut set = Vec::new();
                $( if self.$field.is_set() { set.push(stringify!($name)); } )*
                set
            }

            /// `name=value` of every directive with a default, as this level resolves it.
            #[cfg(debug_assertions)]
            pub(super) fn resolved_defaults(&self) -> Vec<String> {
                let mut out = Vec::new();
                $( shown_default!(out, self, $name, $field $(, $default)?); )*
                out
            }
        }

        /// The directive table nginx reads while parsing the configuration.
        pub static mut COMMANDS: [ngx_command_t; [$(stringify!($name)),*].len() + 1] = [
            $( command(
                concat!(stringify!($name), "\0"),
                $ctx | $args,
                $set,
                std::mem::offset_of!(LocConf, $field),
                post_of!($($post)?),
            ), )*
            ngx_command_t::empty(),
        ];
    };
}

type Handler = unsafe extern "C" fn(
    *mut ngx_conf_t,
    *mut ngx_command_t,
    *mut std::ffi::c_void,
) -> *mut std::ffi::c_char;

/// A command's `post`: the check of what a slot setter read, if any.
macro_rules! post_of {
    () => {
        std::ptr::null_mut()
    };
    ($post:expr) => {
        super::slot::post(&$post)
    };
}

/// One entry of the command table; `name` ends with a NUL. `offset` is the field's place in
/// [`LocConf`], where nginx's slot setters write (our handlers find the field by name); `post`
/// what a slot setter calls with the value it read.
const fn command(
    name: &'static str,
    type_: u32,
    set: Handler,
    offset: usize,
    post: *mut std::ffi::c_void,
) -> ngx_command_t {
    ngx_command_t {
        name: ngx_str_t {
            len: name.len() - 1,
            data: name.as_ptr() as *mut u8,
        },
        type_: type_ as ngx_uint_t,
        set: Some(set),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: offset as ngx_uint_t,
        post,
    }
}

include!("declared.rs");
