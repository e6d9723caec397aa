//! What is module-wide, kept where nginx keeps such state: in the module's main configuration,
//! one per configuration cycle (made with it, freed with its pool). The running cycle's is
//! found from `ngx_cycle`, a cycle being configured's from its `ngx_conf_t`.

use std::ffi::c_void;

use ngx::ffi::*;
use ngx::http::HttpModuleMainConf;
use ometascan_core::upstream::health::HealthSpec;

use crate::Module;

/// The module's state of one configuration cycle.
pub struct MainConf {
    /// Active health checks each worker starts, one per scanner group.
    pub health_checks: Vec<HealthSpec>,
    /// The status counters' shared zone (added in postconfiguration).
    pub status_zone: *mut ngx_shm_zone_t,
    /// The verdict cache zones `ometascan_cache_zone` declared, by name.
    pub cache_zones: Vec<(String, *mut ngx_shm_zone_t)>,
    /// The spools of `ometascan_pieces`, one per directory (the status page counts their
    /// uploads).
    pub spools: Vec<ometascan_core::pieces::Spool>,
    /// The scanner groups' ids, by their nginx upstream: ngx_http_upstream_add gives the same
    /// upstream for the same host (or `upstream {}` block), so its address names the group
    /// while the configuration is read; requests and the core use the id only.
    pub groups: Vec<(*mut ngx_http_upstream_srv_conf_t, usize)>,
    /// Scanner groups already warned about at `nginx -t` (each warning once, not per level).
    pub warned_groups: Vec<usize>,
    /// The filters after the module's response filters in this cycle's chain.
    pub next: crate::ngx_ext::hooks::Next,
}

impl Default for MainConf {
    fn default() -> Self {
        MainConf {
            health_checks: Vec::new(),
            status_zone: std::ptr::null_mut(),
            cache_zones: Vec::new(),
            spools: Vec::new(),
            groups: Vec::new(),
            warned_groups: Vec::new(),
            next: Default::default(),
        }
    }
}

impl MainConf {
    /// The id of the scanner group of `upstream`, given the first time it is asked.
    pub fn group_id(&mut self, upstream: *mut ngx_http_upstream_srv_conf_t) -> usize {
        if let Some(&(_, id)) = self.groups.iter().find(|(u, _)| *u == upstream) {
            return id;
        }
        let id = super::next_id();
        self.groups.push((upstream, id));
        id
    }

    /// Whether group `group` is to be warned about now (the first time it is asked).
    pub fn first_warning(&mut self, group: usize) -> bool {
        let first = !self.warned_groups.contains(&group);
        if first {
            self.warned_groups.push(group);
        }
        first
    }

    /// One check per scanner group.
    pub fn add_health_check(&mut self, spec: HealthSpec) {
        if !self.health_checks.iter().any(|s| s.group == spec.group) {
            self.health_checks.push(spec);
        }
    }
}

/// Creates the main configuration of a cycle being configured.
pub unsafe extern "C" fn create_main_conf(cf: *mut ngx_conf_t) -> *mut c_void {
    // SAFETY: cf is the http block being configured; its pool lives as long as the cycle and
    // drops the value with it.
    let pool = unsafe { ngx::core::Pool::from_ngx_pool((*cf).pool) };
    pool.allocate(MainConf::default()) as *mut c_void
}

/// The main configuration of the cycle `cf` configures.
///
/// # Safety
/// `cf` must be a configuration inside the http block, on the nginx thread.
pub unsafe fn configuring<'a>(cf: *mut ngx_conf_t) -> Option<&'a mut MainConf> {
    // SAFETY: cf is inside the http block (caller), so cf->ctx is an http configuration
    // context whose main configuration array holds ours (created by create_main_conf).
    unsafe { Module::main_conf_mut(&*cf) }
}

/// The main configuration of `cycle` (`None` without an http block).
///
/// # Safety
/// `cycle` must be a live cycle, read on the nginx thread.
pub unsafe fn of_cycle<'a>(cycle: *const ngx_cycle_t) -> Option<&'a MainConf> {
    // SAFETY: the cycle is live (caller); its http context, when it has one, holds our main
    // configuration, allocated in the cycle's pool.
    unsafe { cycle.as_ref().and_then(|c| Module::main_conf(c)) }
}

/// The main configuration of the cycle the worker runs.
pub fn running() -> Option<&'static MainConf> {
    // SAFETY: ngx_cycle is the running cycle; it is read on the nginx thread only (every caller
    // runs in a handler or an event of nginx's), and its configuration lives as long as it.
    unsafe { of_cycle(ngx_cycle) }
}
