//! The bridge between nginx's event loop and the worker's tokio runtime.
//!
//! One runtime per worker process, created in `init_process` (never in the master: no threads
//! before fork), with the worker's one `Scanner` and the cycle's health checks on it. A scan
//! runs as a tokio task that owns only plain data; when it ends it pushes a `Message` (its slot
//! and outcome) onto a queue and, if the queue was empty, writes to an eventfd that nginx's
//! event loop watches like any socket. The eventfd's read handler, on the nginx thread, drains
//! the queue and resumes the requests. Nothing polls: a worker waiting for scans sleeps in
//! `epoll_wait`. The same read handler takes the scanner's notices (servers going down or up,
//! tracing events) to the error log and the status counters.
//!
//! Requests are tracked in a slot table that only the nginx thread touches.
//!
//! The request body's memory buffers are not copied: they are lent to the scan as `Bytes`
//! (see [`Loan`]). While a scan runs, its request is *blocked* (`r->main->blocked`, as nginx's
//! own thread pools do it), so nginx frees neither the request nor its pool, even when the
//! client goes away and the request is terminated. The message that ends a scan is sent only
//! when the last piece of lent memory is dropped, wherever that happens (the scan task, or a
//! scanner connection task that still held part of the body). On that message the nginx
//! thread unblocks the request and either applies the verdict or, if the request was
//! terminated meanwhile (its cleanup cancelled the task), lets nginx finish it. A message
//! whose slot was freed or reused (generation mismatch) is dropped without touching nginx
//! memory.

use std::cell::RefCell;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

mod loan;
mod notify;
mod trace;

use ngx::ffi::*;
use ngx::http::Request;
use ometascan_core::{ScanError, ScanOutcome, Scanner};

pub use loan::Lender;
use loan::Loan;

use crate::ngx_ext::request::RequestExt;

/// Identifies a scan in flight: slot index plus generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotId {
    index: u32,
    gen: u32,
}

/// A scan is over and none of its request's memory is in use any more; `done` is `None`
/// when the task was cancelled or stopped before it had a verdict.
struct Message {
    slot: SlotId,
    /// The outcome and when the scan ended.
    done: Option<(ScanOutcome, std::time::Instant)>,
}

/// What runs on the nginx thread when a scan's message arrives for a live request (unblocked):
/// it keeps the outcome and says how the request goes on.
pub type OnDone = fn(&mut Request, ScanOutcome) -> AfterScan;

/// How a request goes on after its scan.
pub enum AfterScan {
    /// Give back the reference the flow took for the scan (`RequestExt::hold`) and, if the
    /// request is still wanted, run its phases again.
    Phases,
    /// Finalize it with this code (a response scan: what sending the response returned).
    Finalize(ngx_int_t),
}

#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("eventfd() failed ({0})")]
    EventFd(std::io::Error),
    #[error("could not start the scanner runtime ({0})")]
    Runtime(std::io::Error),
    #[error("no free connection for the scanner notification channel")]
    Connection,
    #[error("could not add the scanner notification channel to the event loop")]
    Event,
}

/// Shared with tokio threads: the message queue and the eventfd.
struct Shared {
    queue: Mutex<Vec<Message>>,
    efd: AtomicI32,
    closed: AtomicBool,
}

static SHARED: Shared = Shared {
    queue: Mutex::new(Vec::new()),
    efd: AtomicI32::new(-1),
    closed: AtomicBool::new(true),
};

static RUNTIME: Mutex<Option<tokio::runtime::Runtime>> = Mutex::new(None);
static HANDLE: OnceLock<tokio::runtime::Handle> = OnceLock::new();
static SCANNER: OnceLock<Arc<Scanner>> = OnceLock::new();

/// The request a slot belongs to, and how to cancel its task. nginx thread only.
struct Slot {
    gen: u32,
    request: *mut ngx_http_request_t,
    on_done: Option<OnDone>,
    abort: Option<tokio::task::AbortHandle>,
    /// The request was terminated while its scan ran: nginx finishes it on the message.
    cancelled: bool,
}

#[derive(Default)]
struct Slots {
    entries: Vec<Slot>,
    free: Vec<u32>,
    in_use: usize,
}

/// nginx-thread state: the eventfd connection and the timer that keeps a shutting-down worker
/// alive while scans are in flight.
struct Local {
    slots: Slots,
    conn: *mut ngx_connection_t,
    keeper: Box<ngx_event_t>,
}

thread_local! {
    static LOCAL: RefCell<Option<Local>> = const { RefCell::new(None) };
}

/// While scans are in flight a gracefully exiting worker must wait for them; nginx waits as
/// long as a non-cancelable timer is pending. This timer exists only while scans are in
/// flight, and fires at most once a day.
const KEEPER_INTERVAL: ngx_msec_t = 24 * 60 * 60 * 1000;

/// Starts the runtime and registers the eventfd with nginx's event loop.
///
/// # Safety
/// Called once per worker process from `init_process`, on the nginx thread.
pub unsafe fn init(cycle: *mut ngx_cycle_t) -> Result<(), BridgeError> {
    // SAFETY: plain syscall.
    let efd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if efd < 0 {
        return Err(BridgeError::EventFd(std::io::Error::last_os_error()));
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("ometascan")
        .on_thread_start(block_signals)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            // SAFETY: efd is ours.
            unsafe { libc::close(efd) };
            return Err(BridgeError::Runtime(e));
        }
    };
    let _ = HANDLE.set(runtime.handle().clone());
    let scanner = Arc::new(Scanner::new());
    // SAFETY: the cycle is live in init_process; its core configuration is set.
    scanner.set_workers(unsafe { worker_processes(cycle) });
    // Lines from the scanner side (servers going down or up, tracing events) ring the same
    // bell.
    scanner.notices().set_bell(Box::new(ring));
    // SAFETY: the cycle's log is valid in init_process.
    let log_level = unsafe { (*(*cycle).log).log_level };
    trace::install(scanner.notices(), trace::max_level(log_level));
    // Active health checks configured for this cycle, one task per scanner group.
    // SAFETY: the cycle is live in init_process, on the nginx thread.
    let checks = unsafe { crate::conf::main::of_cycle(cycle) }
        .map(|m| m.health_checks.clone())
        .unwrap_or_default();
    for spec in checks {
        let task =
            ometascan_core::upstream::health::run(spec, scanner.balancer(), scanner.notices());
        runtime.spawn(task);
    }
    let _ = SCANNER.set(scanner);
    *RUNTIME.lock().unwrap_or_else(|e| e.into_inner()) = Some(runtime);

    // SAFETY: in a worker after the event module initialised connections.
    let c = unsafe { ngx_get_connection(efd, (*cycle).log) };
    if c.is_null() {
        // SAFETY: efd is ours.
        unsafe { libc::close(efd) };
        return Err(BridgeError::Connection);
    }
    // SAFETY: c is a fresh connection with valid read/write events.
    unsafe {
        let rev = (*c).read;
        (*rev).handler = Some(notify::on_notify);
        (*rev).log = (*cycle).log;
        (*(*c).write).log = (*cycle).log;
        (*c).log = (*cycle).log;
        if ngx_handle_read_event(rev, 0) != NGX_OK as ngx_int_t {
            ngx_close_connection(c);
            return Err(BridgeError::Event);
        }
    }
    SHARED.efd.store(efd, Ordering::Release);
    SHARED.closed.store(false, Ordering::Release);

    // SAFETY: a zeroed event is nginx's starting state for a timer-only event.
    let mut keeper: Box<ngx_event_t> = Box::new(unsafe { std::mem::zeroed() });
    keeper.handler = Some(on_keeper);
    // SAFETY: the cycle log lives as long as the worker.
    keeper.log = unsafe { (*cycle).log };
    LOCAL.with(|l| {
        *l.borrow_mut() = Some(Local {
            slots: Slots::default(),
            conn: c,
            keeper,
        });
    });
    Ok(())
}

/// nginx's `worker_processes` for the cycle.
///
/// # Safety
/// `cycle` is a live cycle whose configuration has been parsed.
unsafe fn worker_processes(cycle: *mut ngx_cycle_t) -> usize {
    // SAFETY: conf_ctx holds each core module's configuration at its index; the core
    // module's is an ngx_core_conf_t (caller).
    unsafe {
        let ctx = (*cycle).conf_ctx;
        let ccf = *ctx.add(ngx_core_module.index) as *const ngx_core_conf_t;
        ccf.as_ref()
            .map_or(1, |c| usize::try_from(c.worker_processes).unwrap_or(1))
    }
}

/// Runtime threads take no signals: nginx's signal handlers only set flags that its own event
/// loop checks, and a signal caught by another thread would leave that loop asleep (as in
/// nginx's thread pools, all signals but the synchronous faults are blocked).
fn block_signals() {
    // SAFETY: sigset_t is plain data, initialised by sigfillset before use; pthread_sigmask
    // only changes the calling thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        for s in [libc::SIGILL, libc::SIGFPE, libc::SIGSEGV, libc::SIGBUS] {
            libc::sigdelset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// Stops the runtime (cancelling what still runs) and closes the eventfd.
///
/// # Safety
/// Called from `exit_process`, on the nginx thread.
pub unsafe fn exit() {
    SHARED.closed.store(true, Ordering::Release);
    if let Some(rt) = RUNTIME.lock().unwrap_or_else(|e| e.into_inner()).take() {
        rt.shutdown_timeout(Duration::from_millis(200));
    }
    LOCAL.with(|l| {
        if let Some(local) = l.borrow_mut().take() {
            // SAFETY: the connection was obtained in init and is still open.
            unsafe {
                if local.keeper.timer_set() != 0 {
                    ngx_del_timer(&*local.keeper as *const _ as *mut _);
                }
                ngx_close_connection(local.conn);
            }
        }
    });
    SHARED.efd.store(-1, Ordering::Release);
    SHARED
        .queue
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clear();
}

/// The worker's scanner client, once the bridge is up.
pub fn scanner() -> Option<Arc<Scanner>> {
    SCANNER.get().cloned()
}

/// Runs the scan `build` makes for the main request `r` on the runtime, and blocks the request
/// until the scan's message (see the module docs); then `on_done` gets the outcome on the nginx
/// thread. `build` gets a [`Lender`] for the memory of `r` the scan reads; a scan that `build`
/// could not make ends at once with its error, through `on_done` like any other. A request
/// cleanup cancels the scan if nginx terminates the request first. `Err` when the runtime is
/// not running or out of memory: then nothing was started or blocked.
pub fn start<F, B>(r: &mut Request, build: B, on_done: OnDone) -> Result<SlotId, ScanError>
where
    F: Future<Output = ScanOutcome> + Send + 'static,
    B: FnOnce(&mut Request, &Lender) -> Result<F, ScanError>,
{
    let not_running = || ScanError::Module("the scanner runtime is not running".into());
    let handle = HANDLE.get().ok_or_else(not_running)?;
    if SHARED.closed.load(Ordering::Acquire) {
        return Err(not_running());
    }
    let cancel_at = add_cancel_cleanup(r)
        .ok_or_else(|| ScanError::Module("no memory for the request cleanup".into()))?;
    let loan = Loan::new();
    let scan = build(r, &Lender(&loan));
    let raw = r.raw();
    LOCAL.with(|l| {
        let mut guard = l.borrow_mut();
        let local = guard.as_mut().ok_or_else(not_running)?;
        let slot = local.slots.take(raw, on_done);
        // SAFETY: the cleanup's data was allocated for a SlotId (`add_cancel_cleanup`), in the
        // request's pool.
        unsafe { cancel_at.write(slot) };
        loan.attach(slot);
        // The message for this slot unblocks the request.
        r.block();
        let task = handle.spawn(async move {
            let outcome = match scan {
                // A bug in the scanner client must not leave the request waiting forever.
                Ok(scan) => {
                    let mut scan = CatchUnwind(Box::pin(scan));
                    let outcome = (&mut scan)
                        .await
                        .unwrap_or_else(|_| failed(ScanError::Internal));
                    // The request (and what it borrowed) goes first; the message leaves when
                    // the last borrowed piece is dropped, here or in a connection task.
                    drop(scan);
                    outcome
                }
                Err(e) => failed(e),
            };
            loan.finish(outcome, std::time::Instant::now());
        });
        local.slots.entries[slot.index as usize].abort = Some(task.abort_handle());
        if local.keeper.timer_set() == 0 {
            // SAFETY: the keeper event lives in LOCAL for the whole worker.
            unsafe { ngx_add_timer(&mut *local.keeper, KEEPER_INTERVAL) };
        }
        Ok(slot)
    })
}

impl Slots {
    /// A slot for a scan of `request`.
    fn take(&mut self, request: *mut ngx_http_request_t, on_done: OnDone) -> SlotId {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.entries.push(Slot {
                    gen: 0,
                    request: std::ptr::null_mut(),
                    on_done: None,
                    abort: None,
                    cancelled: false,
                });
                (self.entries.len() - 1) as u32
            }
        };
        let entry = &mut self.entries[index as usize];
        entry.gen = entry.gen.wrapping_add(1);
        entry.request = request;
        entry.on_done = Some(on_done);
        entry.cancelled = false;
        entry.abort = None;
        self.in_use += 1;
        SlotId {
            index,
            gen: entry.gen,
        }
    }
}

/// A slot no scan has.
const NO_SLOT: SlotId = SlotId {
    index: u32::MAX,
    gen: 0,
};

/// Adds the request cleanup that cancels its scan (nginx terminating the request: the client
/// gone, the worker stopping); returns where the slot is to be written. `None`: out of memory.
fn add_cancel_cleanup(r: &mut Request) -> Option<*mut SlotId> {
    // SAFETY: nginx allocates the cleanup and its data from the request's pool and runs it on
    // its thread before the request is freed.
    let cln = unsafe { ngx_http_cleanup_add(r.raw(), std::mem::size_of::<SlotId>()).as_mut() }?;
    let at = cln.data as *mut SlotId;
    // SAFETY: the data has room for a SlotId, aligned as pool allocations are (for a u32 pair).
    unsafe { at.write(NO_SLOT) };
    cln.handler = Some(cancel_on_cleanup);
    Some(at)
}

unsafe extern "C" fn cancel_on_cleanup(data: *mut std::ffi::c_void) {
    // SAFETY: the SlotId written by `add_cancel_cleanup` and `start`, in the request's pool.
    cancel(unsafe { *(data as *const SlotId) });
}

/// An outcome without a verdict.
fn failed(e: ScanError) -> ScanOutcome {
    ScanOutcome::failed(e)
}

/// Polls a future, turning a panic inside it into an error value.
struct CatchUnwind<F>(std::pin::Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, ()>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let inner = self.0.as_mut();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(std::task::Poll::Ready(v)) => std::task::Poll::Ready(Ok(v)),
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Err(_) => std::task::Poll::Ready(Err(())),
        }
    }
}

/// Cancels the scan of a request that nginx is terminating. The request stays blocked until
/// the scan's message; then nginx finishes it.
pub fn cancel(slot: SlotId) {
    LOCAL.with(|l| {
        if let Some(local) = l.borrow_mut().as_mut() {
            if let Some(entry) = local.slots.entries.get_mut(slot.index as usize) {
                if entry.gen == slot.gen && !entry.request.is_null() {
                    entry.cancelled = true;
                    if let Some(abort) = entry.abort.take() {
                        abort.abort();
                    }
                }
            }
        }
    });
}

/// Forgets the slot of a request that is being freed. Blocking makes this unreachable while a
/// scan runs; if it ever happens, the scan's message is dropped without touching the request.
pub fn forget(slot: SlotId) {
    LOCAL.with(|l| {
        if let Some(local) = l.borrow_mut().as_mut() {
            if let Some(abort) = release(local, slot) {
                abort.abort();
            }
        }
    });
}

/// Frees a live slot; returns its abort handle.
fn release(local: &mut Local, slot: SlotId) -> Option<tokio::task::AbortHandle> {
    let entry = local.slots.entries.get_mut(slot.index as usize)?;
    if entry.gen != slot.gen || entry.request.is_null() {
        return None;
    }
    entry.request = std::ptr::null_mut();
    let abort = entry.abort.take();
    local.slots.free.push(slot.index);
    local.slots.in_use -= 1;
    if local.slots.in_use == 0 && local.keeper.timer_set() != 0 {
        // SAFETY: the keeper event is in the timer tree.
        unsafe { ngx_del_timer(&mut *local.keeper) };
    }
    abort
}

/// Called on a tokio thread when a scan ends.
fn push(slot: SlotId, done: Option<(ScanOutcome, std::time::Instant)>) {
    let c = Message { slot, done };
    if SHARED.closed.load(Ordering::Acquire) {
        return;
    }
    let was_empty = {
        let mut q = SHARED.queue.lock().unwrap_or_else(|e| e.into_inner());
        q.push(c);
        q.len() == 1
    };
    if was_empty {
        ring();
    }
}

/// Wakes the nginx event loop.
fn ring() {
    let efd = SHARED.efd.load(Ordering::Acquire);
    if efd >= 0 {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64 to our eventfd.
        unsafe { libc::write(efd, &one as *const u64 as *const libc::c_void, 8) };
    }
}

/// Re-arms the keeper while scans are still in flight.
unsafe extern "C" fn on_keeper(ev: *mut ngx_event_t) {
    let busy = LOCAL.with(|l| l.borrow().as_ref().is_some_and(|x| x.slots.in_use > 0));
    if busy {
        // SAFETY: ev is the keeper event, owned by LOCAL.
        unsafe { ngx_add_timer(ev, KEEPER_INTERVAL) };
    }
}
