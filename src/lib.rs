//! ngx_http_ometascan_module: scans requests with an external scanning server before nginx
//! lets them through.
//!
//! This crate is the nginx adapter; this file holds the module's descriptor and its process
//! hooks. The rest: [`conf`] the directives (declared once, in `conf/declared.rs`) and the
//! module-wide state of a cycle, [`request`] the request flow, [`runtime`] the worker's tokio
//! runtime and its wake-up of nginx's event loop, [`status`] the shared counters and their
//! endpoint, [`cache`] the verdict cache's zones, [`variables`] the `$ometascan_*` variables,
//! and [`ngx_ext`] walks over nginx's raw structures. The adapter is where the project's
//! `unsafe` code is, apart from two audited modules of the core's `net/`; the protocols, the
//! scanner client and the verdict rules are in the nginx-independent `ometascan-core` crate.

use std::ffi::c_void;
use std::ptr;

use ngx::ffi::*;
use ngx::http::{HttpModule, HttpModuleLocationConf, HttpModuleMainConf};
use ngx::ngx_modules;

mod cache;
mod conf;
mod ngx_ext;
// The flows are safe code: what they need of nginx is behind `ngx_ext/` and `runtime/`.
#[deny(unsafe_code)]
mod request;
#[deny(unsafe_code)]
mod response;
mod runtime;
mod status;
#[deny(unsafe_code)]
mod variables;

/// Type that ties the module to `ngx`'s configuration accessors.
pub struct Module;

impl HttpModule for Module {
    fn module() -> &'static ngx_module_t {
        module()
    }
}

// SAFETY: the location configuration of this module is always a `conf::LocConf`.
unsafe impl HttpModuleLocationConf for Module {
    type LocationConf = conf::LocConf;
}

// SAFETY: the main configuration of this module is always a `conf::MainConf`
// (create_main_conf).
unsafe impl HttpModuleMainConf for Module {
    type MainConf = conf::MainConf;
}

/// The module descriptor.
pub fn module() -> &'static ngx_module_t {
    // SAFETY: nginx writes the indexes once while loading the module, before any request.
    unsafe { &*ptr::addr_of!(ngx_http_ometascan_module) }
}

static MODULE_CTX: ngx_http_module_t = ngx_http_module_t {
    preconfiguration: Some(preconfiguration),
    postconfiguration: Some(postconfiguration),
    create_main_conf: Some(conf::create_main_conf),
    init_main_conf: None,
    create_srv_conf: None,
    merge_srv_conf: None,
    create_loc_conf: Some(conf::create_loc_conf),
    merge_loc_conf: Some(conf::merge_loc_conf),
};

#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut ngx_http_ometascan_module: ngx_module_t = ngx_module_t {
    ctx: ptr::addr_of!(MODULE_CTX) as *mut c_void,
    // SAFETY: only the address is taken; nginx reads the table while parsing.
    commands: ptr::addr_of_mut!(conf::COMMANDS) as *mut ngx_command_t,
    type_: NGX_HTTP_MODULE as ngx_uint_t,
    init_process: Some(init_process),
    exit_process: Some(exit_process),
    ..ngx_module_t::default()
};

ngx_modules!(ngx_http_ometascan_module);

/// Registers the `$ometascan_*` variables.
unsafe extern "C" fn preconfiguration(cf: *mut ngx_conf_t) -> ngx_int_t {
    // SAFETY: cf is the http configuration being parsed.
    match unsafe { ngx_ext::hooks::add_variables::<variables::ScanVariables>(cf) } {
        Some(()) => NGX_OK as ngx_int_t,
        None => NGX_ERROR as ngx_int_t,
    }
}

/// Registers the scan handler in the precontent phase and the response filters.
unsafe extern "C" fn postconfiguration(cf: *mut ngx_conf_t) -> ngx_int_t {
    use ngx_ext::hooks::{add_phase_handler, install_filters};
    let phase = ngx_http_phases_NGX_HTTP_PRECONTENT_PHASE;
    // SAFETY: cf is the http configuration being parsed, on nginx's thread.
    if unsafe { add_phase_handler::<request::ScanPhase>(cf, phase) }.is_none() {
        return NGX_ERROR as ngx_int_t;
    }
    // SAFETY: as above.
    let Some(main) = (unsafe { conf::main::configuring(cf) }) else {
        return NGX_ERROR as ngx_int_t;
    };
    // SAFETY: the postconfiguration of the http block, after the filter modules' own.
    main.next = unsafe { install_filters::<response::ResponseFilters>() };
    // SAFETY: as above.
    unsafe { status::add_zone(cf) }
}

unsafe extern "C" fn init_process(cycle: *mut ngx_cycle_t) -> ngx_int_t {
    // SAFETY: called once in each worker on the nginx thread.
    unsafe {
        status::claim_worker_slot();
        if let Err(e) = runtime::init(cycle) {
            emerg!((*cycle).log, "ometascan: {}", e);
            return NGX_ERROR as ngx_int_t;
        }
        notice!(
            (*cycle).log,
            "ometascan module {} started",
            env!("CARGO_PKG_VERSION")
        );
    }
    NGX_OK as ngx_int_t
}

unsafe extern "C" fn exit_process(_cycle: *mut ngx_cycle_t) {
    // SAFETY: called once in each worker on the nginx thread.
    unsafe { runtime::exit() };
    status::release_worker_slot();
}
