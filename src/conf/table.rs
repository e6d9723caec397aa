//! What follows from the declarations of `declared.rs`: the command table nginx reads, the
//! [`LocConf`] fields a level keeps (`None`: not set there), its inheritance (an inner level
//! takes every value it did not set from the outer one) and, for each directive with a
//! default, an accessor that applies it. Adding a directive is one entry there, plus the code
//! that uses its value.

use std::time::Duration;

use ngx::ffi::*;
use ometascan_core::cache::{self, RedisSpec};
use ometascan_core::methods::MethodSet;
use ometascan_core::net::tls::{self, Suite, TlsVersion};
use ometascan_core::scan::options::{DEFAULT_KEEPALIVE, DEFAULT_TIMEOUT};
use ometascan_core::upstream::health::HealthParams;
use ometascan_core::BodyLimits;

use super::cache::*;
use super::directives::*;
use super::policy::*;
use super::ssl::*;
use super::{CacheZone, MaxScans, OnError, OverSize, Pass, SetHeader};

/// Allowed in `http`, `server` and `location`.
const ANY: u32 = NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF;
/// Allowed in `location` only.
const LOC: u32 = NGX_HTTP_LOC_CONF;
/// Allowed in `http` only.
const MAIN: u32 = NGX_HTTP_MAIN_CONF;

/// The accessor of a directive with a default: its value at a merged level.
macro_rules! default_accessor {
    ($field:ident, $ty:ty) => {};
    ($field:ident, $ty:ty, $default:expr) => {
        #[doc = concat!("`", stringify!($field), "` as set, else its default.")]
        pub fn $field(&self) -> $ty {
            self.$field.clone().unwrap_or_else(|| $default)
        }
    };
}

macro_rules! directives {
    ($(
        $name:ident {
            $field:ident : $ty:ty = ($($default:expr)?), $ctx:ident, $args:ident, $set:path,
            $syntax:literal, $default_text:literal, $example:literal, $doc:literal
        }
    )*) => {
        /// One level's directives, as written (`None`: not set at this level), and after
        /// merging what a request uses.
        #[derive(Default)]
        pub struct LocConf {
            $( #[doc = $doc] pub $field: Option<$ty>, )*
            /// Where `ometascan_allow_bad_request_traffic on` was written, for the merge-time
            /// check (inherited with it).
            pub allow_bad_request_at: Option<String>,
            /// What a request uses: every value resolved, defaults applied (set when merging).
            pub settings: super::Settings,
            /// TLS client of a `https://` or `icaps://` scanner, made when merging.
            pub tls: Option<std::sync::Arc<ometascan_core::net::tls::TlsClient>>,
            /// The servers of the scanner's group, read from nginx's upstream when merging.
            pub peers: Option<std::sync::Arc<Vec<ometascan_core::upstream::balancer::PeerSpec>>>,
        }

        impl LocConf {
            /// Takes from `prev` (the enclosing level) every directive this level did not set.
            pub(super) fn inherit(&mut self, prev: &LocConf) {
                if self.allow_bad_request.is_none() {
                    self.allow_bad_request_at = prev.allow_bad_request_at.clone();
                }
                $( if self.$field.is_none() { self.$field = prev.$field.clone(); } )*
            }

            $( default_accessor!($field, $ty $(, $default)?); )*

            /// The directives this level has a value of, its own or inherited.
            #[cfg(debug_assertions)]
            pub(super) fn set_directives(&self) -> Vec<&'static str> {
                let mut set = Vec::new();
                $( if self.$field.is_some() { set.push(stringify!($name)); } )*
                set
            }
        }

        /// The directive table nginx reads while parsing the configuration.
        pub static mut COMMANDS: [ngx_command_t; [$(stringify!($name)),*].len() + 1] = [
            $( command(concat!(stringify!($name), "\0"), $ctx | $args, $set), )*
            ngx_command_t::empty(),
        ];
    };
}

type Handler = unsafe extern "C" fn(
    *mut ngx_conf_t,
    *mut ngx_command_t,
    *mut std::ffi::c_void,
) -> *mut std::ffi::c_char;

/// One entry of the command table; `name` ends with a NUL.
const fn command(name: &'static str, type_: u32, set: Handler) -> ngx_command_t {
    ngx_command_t {
        name: ngx_str_t {
            len: name.len() - 1,
            data: name.as_ptr() as *mut u8,
        },
        type_: type_ as ngx_uint_t,
        set: Some(set),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: 0,
        post: std::ptr::null_mut(),
    }
}

include!("declared.rs");
