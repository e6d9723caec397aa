//! The module's configuration. A level's [`LocConf`] keeps what its directives said (unset:
//! not set there); merging takes what an inner level left unset from the level above, resolves
//! every default once and builds what the level's requests read (its scanners, its scan
//! options). A request reads a directive through the accessor named after it, and a scan the
//! options built for its level.
//!
//! Files: `declared.rs` every directive declared once (name, levels, arguments, handler,
//! default, reference lines), from which `table` makes the command table, [`LocConf`], its
//! inheritance, its resolved defaults and the accessors; `slot` how a level keeps a value
//! (nginx's own flag, msec and num slots among them) and the checks after a slot setter;
//! `directives`, `policy`, `cache`, `pieces`, `response` and `ssl` the handlers of the
//! directives nginx's slot setters do not read; `merge` the merge and the checks `nginx -t`
//! makes; `scanner` and `options` what merging builds; `main` what is module-wide.

mod cache;
mod directives;
pub mod main;
mod merge;
mod options;
pub mod pieces;
mod policy;
mod response;
pub mod scanner;
mod slot;
mod ssl;
mod table;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use ngx::ffi::*;
use ometascan_core::ScannerUrl;

use crate::ngx_ext::value::ComplexValue;

pub use main::{create_main_conf, MainConf};
pub use merge::{create_loc_conf, merge_loc_conf};
pub use table::{LocConf, COMMANDS};

/// A number no other scanner group or `ometascan_max_scans` of this process has: what the
/// core's per-worker state (balancing, health, scan limits) is keyed by. Given while the
/// configuration is read; a worker only ever runs one configuration.
pub fn next_id() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Where `ometascan_pass` sends scans.
#[derive(Clone)]
pub struct PassTarget {
    pub url: ScannerUrl,
    /// The scanner group's id ([`next_id`]), one per nginx upstream.
    pub group: usize,
    /// The URL as written, for log lines.
    pub shown: String,
    /// nginx's upstream for the host: an `upstream {}` block of that name, or an implicit one
    /// that nginx resolves at startup.
    pub upstream: *mut ngx_http_upstream_srv_conf_t,
}

#[derive(Clone)]
pub enum Pass {
    Off,
    Scan(Box<PassTarget>),
}

/// One `ometascan_set_header` field; the value is compiled for nginx variables.
#[derive(Clone)]
pub struct SetHeader {
    pub name: Bytes,
    pub value: ComplexValue,
}

/// What a body over `ometascan_max_size` gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverSize {
    /// 413, nothing forwarded.
    Reject,
    /// Forwarded unscanned, logged at `warn`.
    Pass,
}

/// Which parsed statuses of 200 to 599 have their responses scanned
/// (`ometascan_response_statuses`). Responses of other statuses that a client can read (a `1xx`
/// nginx relays as final, 600 and above) are scanned whatever this says; no status line at
/// all, or a protocol switch, is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseStatuses {
    /// Every status with a body: all but `204` and `304`, and `206` (a part of a file is
    /// refused unless listed).
    Any,
    Listed(Vec<u16>),
}

impl ResponseStatuses {
    pub fn lists(&self, status: u16) -> bool {
        match self {
            ResponseStatuses::Any => !matches!(status, 204 | 206 | 304),
            ResponseStatuses::Listed(codes) => codes.contains(&status),
        }
    }
}

/// What a failed scan means (`ometascan_on_error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnError {
    /// 502/504/503, nothing forwarded.
    #[default]
    Block,
    /// Forwarded unscanned, logged at `warn`.
    Pass,
}

/// `ometascan_max_scans`: at most `max` at once per worker in the locations that inherit it
/// from the level it is written at (`id`), waiting at most `wait` for a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxScans {
    pub max: usize,
    pub wait: Duration,
    pub id: usize,
}

/// `ometascan_cache`: no verdict cache, or the shared memory zone of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheZone {
    Off,
    Zone(*mut ngx_shm_zone_t),
}

impl LocConf {
    /// The scanner of this location, unless scanning is off or not configured.
    pub fn target(&self) -> Option<&PassTarget> {
        match &self.pass {
            Some(Pass::Scan(t)) => Some(t),
            _ => None,
        }
    }

    /// The scanner of this location's responses: `ometascan_response_pass`'s, else
    /// `ometascan_pass`'s; with what merging made of it.
    pub fn response_target(&self) -> Option<(&PassTarget, &scanner::Built)> {
        let own = match &self.response_pass {
            Some(Pass::Scan(t)) => Some(t.as_ref()),
            _ => None,
        };
        match own {
            Some(t) => Some((t, self.response_scanner.as_ref()?)),
            None => Some((self.target()?, self.scanner.as_ref()?)),
        }
    }
}

/// The location configuration a directive writes to.
///
/// # Safety
/// `conf` must be the pointer nginx passes for an NGX_HTTP_LOC_CONF_OFFSET directive.
unsafe fn lcf<'a>(conf: *mut std::ffi::c_void) -> &'a mut LocConf {
    // SAFETY: nginx passes our own LocConf, created by create_loc_conf.
    unsafe { &mut *(conf as *mut LocConf) }
}
