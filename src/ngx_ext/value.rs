//! Values of directives compiled for nginx's variables, evaluated for a request.

use ngx::ffi::ngx_http_complex_value_t;
use ngx::http::Request;

/// The value of `cv` for `r`; `None` when nginx could not evaluate it.
///
/// `cv` is one of the module's compiled values: made by `compile_complex` in the configuration
/// pool of the cycle that serves `r`, which outlives its requests.
#[allow(clippy::not_unsafe_ptr_arg_deref)]
pub fn evaluate(r: &Request, cv: *mut ngx_http_complex_value_t) -> Option<Vec<u8>> {
    // SAFETY: see above: the module keeps only values compiled for its configuration.
    unsafe { super::conf::complex_value(r, cv) }
}
