//! The module's state of a request: one value kept in a cleanup of the main request's pool, so
//! that it outlives nginx's internal redirects (which clear every module's ctx slot, but not
//! the pool) and is dropped with the request. It is found through the module's ctx slot, and,
//! once nginx may have cleared the slot, by its cleanup (realip's rule), which also puts it back
//! in the slot.
//!
//! The value is borrowed only inside [`with`], which takes the request mutably for as long as
//! the borrow lasts: no nginx code that could reach the module again (a filter, a variable, the
//! phase engine) can run while the value is borrowed. A borrow that would overlap one in
//! progress is refused (`None`) instead of aliasing.

use std::any::Any;
use std::cell::RefCell;
use std::ffi::c_void;
use std::ptr;

use ngx::ffi::*;
use ngx::http::Request;

use super::pool::cleanup_data;
use super::request::RequestExt;

/// What the pool cleanup holds.
type Kept = RefCell<Box<dyn Any>>;

// Pool allocations are aligned for any pointer-sized field, which is all a `Kept` has.
const _: () = assert!(std::mem::align_of::<Kept>() <= std::mem::align_of::<usize>());

/// Drops the value when the pool goes.
unsafe extern "C" fn drop_kept(data: *mut c_void) {
    // SAFETY: data is the `Kept` written by `create`; nginx runs a pool cleanup once.
    unsafe { ptr::drop_in_place(data as *mut Kept) }
}

/// The main request of `r` (`r` itself for a main request).
fn main_of(r: &Request) -> &Request {
    // SAFETY: a request's main request is set when nginx creates it and outlives it (it is the
    // request itself, or the one whose pool holds this subrequest).
    unsafe { Request::from_ngx_http_request(r.as_ref().main) }
}

/// What the ctx slot holds once a walk found no state: the next call need not walk again
/// (until nginx clears the slot once more).
static NONE: u8 = 0;

fn none() -> *mut c_void {
    ptr::addr_of!(NONE) as *mut c_void
}

/// The kept value of the main request, if it has one.
fn find(r: &Request) -> Option<&Kept> {
    let main = main_of(r);
    let mut p = main.ctx_ptr() as *const Kept;
    if p as *mut c_void == none() {
        return None;
    }
    if p.is_null() {
        if !main.ctx_may_be_cleared() {
            return None;
        }
        // SAFETY: the main request's pool is live and read on nginx's thread; ours is found by
        // its handler.
        let Some(data) = (unsafe { cleanup_data(main.pool().as_ptr(), drop_kept) }) else {
            main.set_ctx_ptr(none());
            return None;
        };
        main.set_ctx_ptr(data);
        p = data as *const Kept;
    }
    // SAFETY: the slot holds null, the marker, or the `Kept` that `create` wrote in the main
    // request's pool, alive until that pool goes, after every call with the request (or a
    // subrequest of it).
    Some(unsafe { &*p })
}

/// Keeps `value` as the state of `r`'s main request; `None` when out of memory or when the
/// request has a state already.
pub fn create<T: 'static>(r: &mut Request, value: T) -> Option<()> {
    if find(r).is_some() {
        return None;
    }
    let main = main_of(r);
    let size = std::mem::size_of::<Kept>();
    // SAFETY: the cleanup and its data come from the main request's pool, which lives as long
    // as the request.
    let cln = unsafe { ngx_pool_cleanup_add(main.pool().as_ptr(), size).as_mut() }?;
    let p = cln.data as *mut Kept;
    // SAFETY: the cleanup's data has room for a `Kept`, aligned (see the assertion above); the
    // cleanup drops it once, when the pool goes.
    unsafe { ptr::write(p, RefCell::new(Box::new(value))) };
    cln.handler = Some(drop_kept);
    main.set_ctx_ptr(p as *mut c_void);
    Some(())
}

/// Runs `f` on the state of `r`'s main request if it has one of type `T` and it is not borrowed
/// already. The request stays borrowed meanwhile, so `f` cannot run nginx code with it.
pub fn with<T: 'static, R>(r: &mut Request, f: impl FnOnce(&mut T) -> R) -> Option<R> {
    let kept = find(r)?;
    let mut value = kept.try_borrow_mut().ok()?;
    Some(f(value.downcast_mut::<T>()?))
}

/// Whether `r`'s main request has a state (of any type).
pub fn exists(r: &Request) -> bool {
    find(r).is_some()
}
