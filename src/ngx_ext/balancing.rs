//! What an nginx `upstream {}` block asks of its balancing beyond its servers: the
//! load-balancing method (`least_conn`, `ip_hash`, `random`, `hash`, a third-party one), nginx's
//! `keepalive`, a `zone`, servers with `resolve`. The module applies some and must say so for
//! the others at `nginx -t`.
//!
//! nginx keeps the method only as the function its directive stored in
//! `peer.init_upstream`, and those functions are private to their modules. To tell them
//! apart, each method's own directive handler (found in the module's command table, by name)
//! is run once against a blank upstream, and the function it stores is compared.

use std::ffi::{c_char, c_void, CStr};
use std::ptr;

use ngx::ffi::*;

/// A load-balancing method, as the module sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// No method named: nginx's weighted round-robin.
    RoundRobin,
    LeastConn,
    /// Another method, by its directive's name.
    Other(&'static str),
}

/// What the module finds in an upstream block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Balancing {
    pub method: Method,
    /// nginx's `keepalive` is set in the block.
    pub keepalive: bool,
    /// The block has a `zone`.
    pub zone: bool,
    /// Servers written with `resolve`, by name.
    pub resolved: Vec<String>,
}

type InitUpstream =
    unsafe extern "C" fn(*mut ngx_conf_t, *mut ngx_http_upstream_srv_conf_t) -> ngx_int_t;

/// The module of that name among the cycle's, if nginx has it.
///
/// # Safety
/// `cf` must be the configuration being parsed or merged, on nginx's thread.
unsafe fn module_named(cf: *mut ngx_conf_t, name: &CStr) -> Option<&'static ngx_module_t> {
    // SAFETY: the cycle being configured holds `modules_n` modules, each named by nginx before
    // any configuration is read; they live as long as the process.
    unsafe {
        let cycle = &*(*cf).cycle;
        (0..cycle.modules_n)
            .map(|i| &**cycle.modules.add(i))
            .find(|m| !m.name.is_null() && CStr::from_ptr(m.name) == name)
    }
}

/// The `init_upstream` a method's directive stores, found by running its handler (named
/// `directive` in `module`'s command table) on a blank upstream with no arguments; `None` when
/// nginx has no such module or directive.
///
/// # Safety
/// `cf` must be the configuration being merged, on nginx's thread.
unsafe fn init_of(cf: *mut ngx_conf_t, module: &CStr, directive: &str) -> Option<InitUpstream> {
    // SAFETY: cf is the configuration being merged, on nginx's thread (caller).
    let m = unsafe { module_named(cf, module) }?;
    let mut cmd = m.commands;
    // SAFETY: a module's command table ends with an entry of no name; its entries are static.
    let handler = unsafe {
        loop {
            let c = &*cmd;
            if c.name.len == 0 {
                return None;
            }
            if c.name.as_bytes() == directive.as_bytes() {
                break c.set?;
            }
            cmd = cmd.add(1);
        }
    };
    // A blank upstream, reached the way the handlers reach theirs: the http context's server
    // configuration at the upstream module's index.
    // SAFETY: zeroed is the state ngx_pcalloc gives a new upstream; nothing in it is read by
    // these handlers but `peer.init_upstream` (null: "not redefined").
    let mut blank: ngx_http_upstream_srv_conf_t = unsafe { std::mem::zeroed() };
    // SAFETY: nginx sets ngx_http_max_module before any http configuration is merged; the
    // upstream module's index is below it.
    let (slots, index) = unsafe { (ngx_http_max_module, ngx_http_upstream_module.ctx_index) };
    let mut srv_conf: Vec<*mut c_void> = vec![ptr::null_mut(); slots.max(index + 1)];
    srv_conf[index] = &mut blank as *mut _ as *mut c_void;
    let mut ctx = ngx_http_conf_ctx_t {
        main_conf: ptr::null_mut(),
        srv_conf: srv_conf.as_mut_ptr(),
        loc_conf: ptr::null_mut(),
    };
    let mut name = ngx_str_t {
        len: directive.len(),
        data: directive.as_ptr() as *mut u8,
    };
    let mut args = ngx_array_t {
        elts: &mut name as *mut _ as *mut c_void,
        nelts: 1,
        size: std::mem::size_of::<ngx_str_t>(),
        nalloc: 1,
        pool: ptr::null_mut(),
    };
    // Room for the method's own server configuration, which none of them writes without
    // arguments.
    let mut own = [0u64; 64];
    // SAFETY: cf is live; the copy differs only in the context and the words, which live on
    // this stack for the call. The handlers store into the blank upstream and return a static
    // string or null.
    let rc: *mut c_char = unsafe {
        let mut probe = *cf;
        probe.ctx = &mut ctx as *mut _ as *mut c_void;
        probe.args = &mut args;
        handler(&mut probe, cmd, own.as_mut_ptr() as *mut c_void)
    };
    if !rc.is_null() {
        return None;
    }
    blank.peer.init_upstream
}

/// What the upstream block `us` asks for.
///
/// # Safety
/// `cf` must be the configuration being merged, on nginx's thread; `us` an upstream of it.
pub unsafe fn balancing(cf: *mut ngx_conf_t, us: *mut ngx_http_upstream_srv_conf_t) -> Balancing {
    // SAFETY: us is one of the configuration's upstream blocks (caller), in its pool, which
    // outlives the merge.
    let us = unsafe { &*us };
    let mut found = Balancing {
        method: Method::RoundRobin,
        keepalive: false,
        zone: !us.shm_zone.is_null(),
        resolved: Vec::new(),
    };
    // An implicit upstream (a host in ometascan_pass, no block) has no server configurations.
    if us.srv_conf.is_null() {
        return found;
    }
    // SAFETY: cf is the configuration being merged, on nginx's thread (caller).
    if let Some(ka) = unsafe { module_named(cf, c"ngx_http_upstream_keepalive_module") } {
        // SAFETY: the block's server configurations have a slot for every http module;
        // keepalive's starts with `max_cached`, 0 unless `keepalive` was set.
        let max_cached = unsafe { (*us.srv_conf.add(ka.ctx_index) as *const ngx_uint_t).as_ref() };
        found.keepalive = max_cached.is_some_and(|&n| n != 0);
    }
    if let Some(init) = us.peer.init_upstream {
        let methods: [(&CStr, &'static str); 3] = [
            (c"ngx_http_upstream_least_conn_module", "least_conn"),
            (c"ngx_http_upstream_ip_hash_module", "ip_hash"),
            (c"ngx_http_upstream_random_module", "random"),
        ];
        found.method = Method::Other(if found.keepalive {
            "keepalive"
        } else {
            "hash or a third-party method"
        });
        for (module, directive) in methods {
            // SAFETY: cf is the configuration being merged, on nginx's thread (caller).
            if unsafe { init_of(cf, module, directive) }
                .is_some_and(|f| std::ptr::fn_addr_eq(f, init))
            {
                found.method = if directive == "least_conn" {
                    Method::LeastConn
                } else {
                    Method::Other(directive)
                };
            }
        }
    }
    found.resolved = resolved_servers(us);
    found
}

/// The servers written with `resolve` (nginx 1.27.3 and later keep their name).
#[cfg(ngx_upstream_resolve)]
fn resolved_servers(us: &ngx_http_upstream_srv_conf_t) -> Vec<String> {
    // SAFETY: null, or the block's servers: an array of ngx_http_upstream_server_t in the
    // configuration pool.
    let Some(servers) = (unsafe { us.servers.as_ref() }) else {
        return Vec::new();
    };
    // SAFETY: the array's elements are ngx_http_upstream_server_t, `nelts` of them, as the
    // upstream module pushed them.
    unsafe { servers.as_slice::<ngx_http_upstream_server_t>() }
        .iter()
        .filter(|s| !s.host.is_empty())
        .map(|s| crate::ngx_ext::conf::text(&s.name))
        .collect()
}

/// Before nginx 1.27.3 there is no `resolve` for servers.
#[cfg(not(ngx_upstream_resolve))]
fn resolved_servers(_us: &ngx_http_upstream_srv_conf_t) -> Vec<String> {
    Vec::new()
}
