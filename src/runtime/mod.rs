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
mod trace;

use ngx::ffi::*;
use ngx::http::Request;
use ometascan_core::{ScanError, ScanOutcome, Scanner};

pub use loan::Loan;

use crate::ngx_ext::request::{finish_terminated, RequestExt};

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

/// What runs on the nginx thread when a scan's message arrives for a live request (its
/// callers guarantee that: the request is live and unblocked, on the nginx thread).
pub type OnDone = unsafe fn(*mut ngx_http_request_t, ScanOutcome);

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
        (*rev).handler = Some(on_notify);
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

/// Runs `scan` for the main request `r` on the runtime and blocks the request until the
/// scan's message (see the module docs); then `on_done` gets the outcome on the nginx thread.
/// `loan` is the memory `scan` borrows from `r`. `None` when the runtime is not running;
/// then nothing was started or blocked.
///
/// # Safety
/// On the nginx thread, with a live main request `r` that has a cleanup calling [`cancel`].
pub unsafe fn start<F>(
    r: *mut ngx_http_request_t,
    loan: Loan,
    scan: F,
    on_done: OnDone,
) -> Option<SlotId>
where
    F: Future<Output = ScanOutcome> + Send + 'static,
{
    let handle = HANDLE.get()?;
    if SHARED.closed.load(Ordering::Acquire) {
        return None;
    }
    LOCAL.with(|l| {
        let mut guard = l.borrow_mut();
        let local = guard.as_mut()?;
        let slots = &mut local.slots;
        let index = match slots.free.pop() {
            Some(i) => i,
            None => {
                slots.entries.push(Slot {
                    gen: 0,
                    request: std::ptr::null_mut(),
                    on_done: None,
                    abort: None,
                    cancelled: false,
                });
                (slots.entries.len() - 1) as u32
            }
        };
        let entry = &mut slots.entries[index as usize];
        entry.gen = entry.gen.wrapping_add(1);
        entry.request = r;
        entry.on_done = Some(on_done);
        entry.cancelled = false;
        let slot = SlotId {
            index,
            gen: entry.gen,
        };
        loan.attach(slot);
        // SAFETY: r is a live main request on nginx's thread (caller); the message for this
        // slot unblocks it.
        unsafe { Request::from_ngx_http_request(r) }.block();
        let task = handle.spawn(async move {
            // A bug in the scanner client must not leave the request waiting forever.
            let mut scan = CatchUnwind(Box::pin(scan));
            let outcome = (&mut scan)
                .await
                .unwrap_or_else(|_| failed(ScanError::Internal));
            let ended = std::time::Instant::now();
            // The request (and what it borrowed) goes first; the message leaves when the
            // last borrowed piece is dropped, here or in a connection task.
            drop(scan);
            loan.finish(outcome, ended);
        });
        entry.abort = Some(task.abort_handle());
        slots.in_use += 1;
        if local.keeper.timer_set() == 0 {
            // SAFETY: the keeper event lives in LOCAL for the whole worker.
            unsafe { ngx_add_timer(&mut *local.keeper, KEEPER_INTERVAL) };
        }
        Some(slot)
    })
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

/// The eventfd became readable: deliver every queued completion.
unsafe extern "C" fn on_notify(ev: *mut ngx_event_t) {
    let efd = SHARED.efd.load(Ordering::Acquire);
    if efd >= 0 {
        let mut counter: u64 = 0;
        // Reset the counter first, then drain: a completion pushed after the drain writes
        // the eventfd again.
        // SAFETY: reads 8 bytes into a valid u64 from our non-blocking eventfd.
        unsafe { libc::read(efd, &mut counter as *mut u64 as *mut libc::c_void, 8) };
    }
    if let Some(scanner) = SCANNER.get() {
        for (addr, down) in scanner.notices().drain_health() {
            crate::status::server_health(&addr, down);
        }
        // SAFETY: the event's log is the cycle log, valid for the worker's life.
        let log = unsafe { (*ev).log };
        let (lines, dropped) = scanner.notices().drain();
        for (level, line) in lines {
            use ometascan_core::notices::Level;
            let level = match level {
                Level::Error => NGX_LOG_ERR,
                Level::Warn => NGX_LOG_WARN,
                Level::Notice => NGX_LOG_NOTICE,
                Level::Info => NGX_LOG_INFO,
                Level::Debug => NGX_LOG_DEBUG,
            };
            ngx::ngx_log_error!(level, log, "{}", line);
        }
        if dropped > 0 {
            ngx::ngx_log_error!(
                NGX_LOG_WARN,
                log,
                "ometascan: {} log lines from the scanner side were dropped",
                dropped
            );
        }
    }
    let batch = std::mem::take(&mut *SHARED.queue.lock().unwrap_or_else(|e| e.into_inner()));
    for message in batch {
        let request = LOCAL.with(|l| {
            let mut guard = l.borrow_mut();
            let local = guard.as_mut()?;
            let entry = local.slots.entries.get(message.slot.index as usize)?;
            if entry.gen != message.slot.gen || entry.request.is_null() {
                return None;
            }
            let (r, cancelled, on_done) = (entry.request, entry.cancelled, entry.on_done);
            release(local, message.slot);
            Some((r, cancelled, on_done))
        });
        let Some((r, cancelled, on_done)) = request else {
            continue;
        };
        // SAFETY: the slot was live, so the request is blocked and has not been freed; none of
        // its memory is lent any more. Each of finish_terminated and on_done is the last use
        // of r here.
        unsafe {
            Request::from_ngx_http_request(r).unblock();
            if cancelled {
                finish_terminated(r);
            } else if let Some(on_done) = on_done {
                let done = match message.done {
                    Some((mut outcome, ended)) => {
                        outcome.handback = ended.elapsed();
                        outcome
                    }
                    None => failed(ScanError::Internal),
                };
                on_done(r, done);
            }
        }
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
