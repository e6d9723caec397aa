//! Directive values compiled for nginx's variables (`$arg_x`, `"k-$host"`), evaluated for a
//! request.

use std::ptr::NonNull;

use ngx::ffi::*;
use ngx::http::Request;

/// A directive's value compiled by nginx, in the configuration pool of the cycle being
/// configured. Only [`ComplexValue::compile`] makes one, and the module keeps it only in that
/// configuration, which outlives every request that reads it.
#[derive(Clone, Copy, Debug)]
pub struct ComplexValue(NonNull<ngx_http_complex_value_t>);

impl ComplexValue {
    /// Compiles a directive argument; `None` when nginx refused it (it has logged why).
    ///
    /// # Safety
    /// `cf` must be the configuration nginx passes to a directive handler.
    pub unsafe fn compile(cf: *mut ngx_conf_t, value: &ngx_str_t) -> Option<Self> {
        // SAFETY: the complex value lives in the configuration pool, like nginx's own.
        let cv = unsafe {
            ngx_pcalloc((*cf).pool, std::mem::size_of::<ngx_http_complex_value_t>())
                as *mut ngx_http_complex_value_t
        };
        let cv = NonNull::new(cv)?;
        let mut value = *value;
        // SAFETY: zeroed is the documented starting state of ngx_http_compile_complex_value_t.
        let mut ccv: ngx_http_compile_complex_value_t = unsafe { std::mem::zeroed() };
        ccv.cf = cf;
        ccv.value = &mut value;
        ccv.complex_value = cv.as_ptr();
        // SAFETY: ccv is fully set up; nginx logs its own error for a bad variable.
        let rc = unsafe { ngx_http_compile_complex_value(&mut ccv) };
        (rc == NGX_OK as ngx_int_t).then_some(ComplexValue(cv))
    }

    /// The value for `r`; `None` when nginx could not evaluate it.
    pub fn evaluate(&self, r: &Request) -> Option<Vec<u8>> {
        // SAFETY: compiled in the configuration pool of the configuration that keeps it, which
        // outlives its requests (see the type).
        let cv = unsafe { self.0.as_ref() };
        r.get_complex_value(cv).map(|v| v.as_bytes().to_vec())
    }
}
