//! Where nginx calls the module's request flow: a phase handler with its body-read handler,
//! the header and body filters, and the variables' getter. Each entry point turns nginx's raw request into ngx's
//! `&mut Request` for the flow's safe code, and does itself what may free the request
//! (finalizing it, running the phases again), after the flow's code has returned: the flow
//! never holds a request nginx may have freed.

use std::marker::PhantomData;

use ngx::ffi::*;
use ngx::http::{HttpModuleMainConf, NgxHttpCoreModule, Request};

use super::request::RequestExt;

const NGX_DONE_: ngx_int_t = NGX_DONE as ngx_int_t;

/// What a phase handler asks of nginx.
pub enum Step {
    /// Returned to the phase engine as it is (`NGX_DECLINED`, `NGX_DONE`, a status, ...).
    Rc(ngx_int_t),
    /// Read the body; the handler's `body_read` runs when it is read.
    ReadBody,
    /// The request is answered: finalize it with this code (the response sent, or a status
    /// for nginx's error page) and end the phase handler.
    Finalize(ngx_int_t),
}

/// What follows a body read, or a scan's end.
pub enum Resume {
    /// The flow goes on later (a scan runs): nothing now.
    Wait,
    /// Run the phases again from the current one.
    Phases,
}

/// A request phase handler of the module, with what runs once the body is read.
pub trait Phase {
    fn handle(r: &mut Request) -> Step;
    fn body_read(r: &mut Request) -> Resume;
}

/// Adds `P` to the handlers of nginx's `phase` (postconfiguration).
///
/// # Safety
/// `cf` is the http configuration being parsed, on nginx's thread.
pub unsafe fn add_phase_handler<P: Phase>(
    cf: *mut ngx_conf_t,
    phase: ngx_http_phases,
) -> Option<()> {
    // SAFETY: cf is the http configuration (caller); its core main configuration exists and
    // its phase arrays are initialised before any module's postconfiguration.
    unsafe {
        let cmcf = NgxHttpCoreModule::main_conf_mut(&*cf)?;
        let handlers = &mut cmcf.phases[phase as usize].handlers;
        let h = ngx_array_push(handlers) as *mut ngx_http_handler_pt;
        h.as_mut()?.replace(phase_handler::<P>);
    }
    Some(())
}

unsafe extern "C" fn phase_handler<P: Phase>(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx's phase engine calls this on its thread with a request it has allocated and
    // frees only after finalizing it, which happens below at the earliest.
    let req = unsafe { Request::from_ngx_http_request(r) };
    match P::handle(req) {
        Step::Rc(rc) => rc,
        Step::ReadBody => {
            // SAFETY: a live request on nginx's thread; the body reader keeps a reference on it
            // until it calls the handler.
            let rc = unsafe { ngx_http_read_client_request_body(r, Some(body_read::<P>)) };
            if rc >= NGX_HTTP_SPECIAL_RESPONSE as ngx_int_t {
                return rc;
            }
            // SAFETY: gives back the reference the body reader took, nginx's way; the
            // request's own keeps it allocated, and r is not used after.
            unsafe { ngx_http_finalize_request(r, NGX_DONE_) };
            NGX_DONE_
        }
        Step::Finalize(rc) => {
            // SAFETY: the phase engine's caller holds the request; r is not used after.
            unsafe { ngx_http_finalize_request(r, rc) };
            NGX_DONE_
        }
    }
}

unsafe extern "C" fn body_read<P: Phase>(r: *mut ngx_http_request_t) {
    // SAFETY: nginx's body reader calls this on its thread with the request whose body it
    // read, allocated for the call.
    let req = unsafe { Request::from_ngx_http_request(r) };
    if let Resume::Phases = P::body_read(req) {
        // SAFETY: as above; the phase engine may finalize and free the request, which is not
        // used after.
        unsafe { run_phases(r) };
    }
}

/// Runs the phases again from the current one.
///
/// # Safety
/// `r` is a live request on nginx's thread; nginx may free it here: the caller must not use
/// it after.
pub unsafe fn run_phases(r: *mut ngx_http_request_t) {
    // SAFETY: caller.
    unsafe {
        (*r).write_event_handler = Some(ngx_http_core_run_phases);
        ngx_http_core_run_phases(r);
    }
}

/// The module's header and body filters.
pub trait Filters {
    fn header(r: &mut Request) -> ngx_int_t;
    fn body(r: &mut Request, chain: Chain<'_>) -> ngx_int_t;
}

/// The filters after the module's in the chain of the running configuration.
#[derive(Clone, Copy, Default)]
pub struct Next {
    header: ngx_http_output_header_filter_pt,
    body: ngx_http_output_body_filter_pt,
}

impl Next {
    /// Sends the response head on.
    pub fn header(&self, r: &mut Request) -> ngx_int_t {
        match self.header {
            // SAFETY: the next filter of this configuration's chain (set by `install_filters`),
            // with a live request on nginx's thread.
            Some(f) => unsafe { f(r.raw()) },
            None => NGX_ERROR as ngx_int_t,
        }
    }

    /// Sends `chain` on.
    pub fn body(&self, r: &mut Request, chain: Chain<'_>) -> ngx_int_t {
        match self.body {
            // SAFETY: as above; the chain is nginx's or the module's, live for the call.
            Some(f) => unsafe { f(r.raw(), chain.raw) },
            None => NGX_ERROR as ngx_int_t,
        }
    }
}

/// Puts `F`'s filters first in nginx's chain (postconfiguration); the filters they pass to are
/// what this returns, to keep with the configuration.
///
/// # Safety
/// On nginx's thread, in the postconfiguration of the http block being parsed.
pub unsafe fn install_filters<F: Filters>() -> Next {
    // SAFETY: nginx's filter chain heads, set by the filter modules' postconfiguration before
    // ours (a dynamic module comes after the built-in ones); nginx's thread only.
    unsafe {
        let next = Next {
            header: ngx_http_top_header_filter,
            body: ngx_http_top_body_filter,
        };
        ngx_http_top_header_filter = Some(header_filter::<F>);
        ngx_http_top_body_filter = Some(body_filter::<F>);
        next
    }
}

unsafe extern "C" fn header_filter<F: Filters>(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx calls a header filter with a live request on its thread, inside a call
    // (the content handler's, or a finalization's) that holds the request.
    F::header(unsafe { Request::from_ngx_http_request(r) })
}

unsafe extern "C" fn body_filter<F: Filters>(
    r: *mut ngx_http_request_t,
    chain: *mut ngx_chain_t,
) -> ngx_int_t {
    // SAFETY: as for the header filter; the chain's links and buffers are live for the call.
    let (req, chain) = unsafe { (Request::from_ngx_http_request(r), Chain::from_raw(chain)) };
    F::body(req, chain)
}

/// The module's variables: each name with a number its getter is called with.
pub trait Variables {
    const NAMES: &'static [(&'static str, usize)];
    /// The text of variable `index` for `r`; `None` when it has no value.
    fn value(r: &mut Request, index: usize) -> Option<String>;
}

/// Registers `V`'s variables (preconfiguration), not cacheable: they change as the scan goes.
///
/// # Safety
/// `cf` is the http configuration being parsed, on nginx's thread.
pub unsafe fn add_variables<V: Variables>(cf: *mut ngx_conf_t) -> Option<()> {
    for &(name, index) in V::NAMES {
        let mut n = ngx_str_t {
            len: name.len(),
            data: name.as_ptr() as *mut u8,
        };
        let flags = NGX_HTTP_VAR_NOCACHEABLE as ngx_uint_t;
        // SAFETY: nginx copies the name; cf is the configuration being parsed (caller).
        let var = unsafe { ngx_http_add_variable(cf, &mut n, flags).as_mut() }?;
        var.get_handler = Some(variable::<V>);
        var.data = index;
    }
    Some(())
}

unsafe extern "C" fn variable<V: Variables>(
    r: *mut ngx_http_request_t,
    v: *mut ngx_http_variable_value_t,
    data: usize,
) -> ngx_int_t {
    // SAFETY: nginx evaluates a variable on its thread for a request it has allocated, with a
    // value slot of that request to fill, both valid for this call.
    let (r, v) = unsafe { (Request::from_ngx_http_request(r), &mut *v) };
    let Some(text) = V::value(r, data) else {
        v.set_not_found(1);
        return NGX_OK as ngx_int_t;
    };
    let p = r.pool().alloc_unaligned(text.len().max(1)) as *mut u8;
    if p.is_null() {
        return NGX_ERROR as ngx_int_t;
    }
    // SAFETY: p has room for the text (pool memory of the request, which outlives the value).
    unsafe { std::ptr::copy_nonoverlapping(text.as_ptr(), p, text.len()) };
    v.data = p;
    v.set_len(text.len() as u32);
    v.set_valid(1);
    v.set_no_cacheable(0);
    v.set_not_found(0);
    NGX_OK as ngx_int_t
}

/// A chain of buffers as nginx's body filters pass it: valid for one call.
pub struct Chain<'a> {
    raw: *mut ngx_chain_t,
    _call: PhantomData<&'a mut ngx_chain_t>,
}

impl<'a> Chain<'a> {
    /// # Safety
    /// `raw` is null or a chain whose links and buffers stay live and unaliased for `'a`.
    pub(super) unsafe fn from_raw(raw: *mut ngx_chain_t) -> Self {
        Chain {
            raw,
            _call: PhantomData,
        }
    }

    /// Each buffer of the chain, in order.
    pub fn for_each_buf(&mut self, mut f: impl FnMut(&mut Buf)) {
        let mut cl = self.raw;
        // SAFETY: each link and its buffer are live for 'a, and this chain's alone (from_raw).
        while let Some(link) = unsafe { cl.as_mut() } {
            // SAFETY: as above.
            if let Some(b) = unsafe { (link.buf as *mut Buf).as_mut() } {
                f(b);
            }
            cl = link.next;
        }
    }
}

/// One buffer of a body filter's chain.
#[repr(transparent)]
pub struct Buf(ngx_buf_t);

impl Buf {
    /// The range of a file the buffer stands for (nginx's descriptor of the file, and the
    /// bytes `start..end`), if it is in a file.
    pub fn file_range(&self) -> Option<(ngx_fd_t, u64, u64)> {
        let b = &self.0;
        if b.in_file() == 0 || b.file_last <= b.file_pos {
            return None;
        }
        // SAFETY: an in-file buffer's file is valid while the buffer is in the chain.
        let file = unsafe { b.file.as_ref() }?;
        Some((file.fd, b.file_pos as u64, b.file_last as u64))
    }

    /// A descriptor of the module's own for the buffer's file, if it is in one.
    pub fn dup_file(&self) -> Option<std::io::Result<std::fs::File>> {
        let (fd, _, _) = self.file_range()?;
        Some(super::fd::dup(fd))
    }

    /// The bytes the buffer holds in memory (read when it is not [`Buf::file_range`]).
    pub fn memory(&self) -> &[u8] {
        let b = &self.0;
        if b.pos.is_null() || b.last <= b.pos {
            return &[];
        }
        // SAFETY: pos..last is the buffer's data, valid while it is in the chain.
        unsafe { std::slice::from_raw_parts(b.pos, b.last as usize - b.pos as usize) }
    }

    /// Marks what the buffer holds as sent.
    pub fn consume(&mut self) {
        let b = &mut self.0;
        b.file_pos = b.file_last;
        if !b.pos.is_null() {
            b.pos = b.last;
        }
    }

    /// The response's last buffer.
    pub fn is_last(&self) -> bool {
        self.0.last_buf() != 0
    }

    /// A buffer that asks for what is buffered to be sent.
    pub fn is_flush(&self) -> bool {
        self.0.flush() != 0
    }
}
