//! A transport wrapper that enforces the send and read timeouts the way nginx does: each is the
//! longest pause between two successive operations, not a limit on the whole transfer.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use hyper::rt::{Read, ReadBufCursor, Write};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{sleep, Sleep};

/// Which timer fired on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fired {
    None,
    Send,
    Read,
    /// The exchange refused the rest of the answer (too many interim answers).
    Refused,
}

/// Per-connection timer settings, shared between the transport and the exchange driving it.
#[derive(Debug, Default)]
pub struct IoClock {
    send_ms: AtomicU64,
    read_ms: AtomicU64,
    /// The read timer runs only once the whole request has been handed over.
    read_armed: AtomicBool,
    fired: AtomicU8,
    /// The reader parked while unarmed: woken on arming so that it starts its timer.
    parked_reader: Mutex<Option<Waker>>,
    /// When the exchange began and when the request was last fully handed over (nanoseconds
    /// since [`epoch`], 0: not yet): the scan's send and answer times.
    begun_ns: AtomicU64,
    armed_ns: AtomicU64,
}

/// The process's clock origin for the exchanges' timestamps.
fn epoch() -> std::time::Instant {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(std::time::Instant::now)
}

/// Nanoseconds since [`epoch`], at least 1.
fn now_ns() -> u64 {
    (epoch().elapsed().as_nanos() as u64).max(1)
}

impl IoClock {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Starts an exchange with these timeouts.
    pub fn begin(&self, send: Duration, read: Duration) {
        self.send_ms
            .store(send.as_millis() as u64, Ordering::Relaxed);
        self.read_ms
            .store(read.as_millis() as u64, Ordering::Relaxed);
        self.read_armed.store(false, Ordering::Release);
        self.fired.store(0, Ordering::Relaxed);
        self.begun_ns.store(now_ns(), Ordering::Relaxed);
        self.armed_ns.store(0, Ordering::Relaxed);
    }

    /// The request is fully handed over: from now on, waiting for the answer is timed.
    pub fn arm_read(&self) {
        self.armed_ns.store(now_ns(), Ordering::Relaxed);
        self.read_armed.store(true, Ordering::Release);
        let waker = self
            .parked_reader
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// More is to be sent before the answer (ICAP after `100 Continue`): reads wait untimed
    /// again until [`IoClock::arm_read`].
    pub fn disarm_read(&self) {
        self.read_armed.store(false, Ordering::Release);
    }

    /// The exchange is over: an idle pooled connection is not timed. The time spent sending
    /// and waiting for the answer is noted for the scan's report.
    pub fn end(&self) {
        self.read_armed.store(false, Ordering::Release);
        let begun = self.begun_ns.swap(0, Ordering::Relaxed);
        let armed = self.armed_ns.swap(0, Ordering::Relaxed);
        if begun > 0 {
            let now = now_ns();
            let armed = if armed == 0 { now } else { armed.max(begun) };
            crate::scan::report::note_exchange(
                Duration::from_nanos(armed - begun),
                Duration::from_nanos(now.saturating_sub(armed)),
            );
        }
    }

    pub fn fired(&self) -> Fired {
        match self.fired.load(Ordering::Acquire) {
            1 => Fired::Send,
            2 => Fired::Read,
            3 => Fired::Refused,
            _ => Fired::None,
        }
    }

    fn fire(&self, f: Fired) {
        let v = match f {
            Fired::None => 0,
            Fired::Send => 1,
            Fired::Read => 2,
            Fired::Refused => 3,
        };
        self.fired.store(v, Ordering::Release);
    }

    /// Ends the exchange from outside the transport: the next read fails.
    pub fn refuse(&self) {
        self.fire(Fired::Refused);
    }
}

pin_project_lite::pin_project! {
    /// Wraps a tokio stream for hyper, with the timers of [`IoClock`].
    pub struct TimedIo<S> {
        #[pin]
        inner: S,
        clock: Arc<IoClock>,
        read_timer: Option<Pin<Box<Sleep>>>,
        write_timer: Option<Pin<Box<Sleep>>>,
    }
}

impl<S> TimedIo<S> {
    pub fn new(inner: S, clock: Arc<IoClock>) -> Self {
        TimedIo {
            inner,
            clock,
            read_timer: None,
            write_timer: None,
        }
    }
}

impl TimedIo<crate::net::transport::BoxIo> {
    /// Whether files can be sent with `sendfile` (plain TCP, not TLS).
    pub fn sends_files(&self) -> bool {
        self.inner.as_tcp().is_some()
    }

    /// Sends up to `len` bytes of `file` from `*offset` with `sendfile`, under the send timer
    /// like any write.
    pub fn poll_sendfile(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        file: &std::fs::File,
        offset: &mut u64,
        len: usize,
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let r = match this.inner.as_tcp() {
            Some(tcp) => crate::net::sendfile::poll_sendfile(tcp, cx, file, offset, len),
            None => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "sendfile on a TLS connection",
            ))),
        };
        timed_write(r, this.write_timer, this.clock, cx)
    }
}

fn poll_timer(timer: &mut Option<Pin<Box<Sleep>>>, ms: u64, cx: &mut Context<'_>) -> bool {
    let t = timer.get_or_insert_with(|| Box::pin(sleep(Duration::from_millis(ms))));
    t.as_mut().poll(cx).is_ready()
}

use std::future::Future;

/// The error a refused exchange reads.
fn refused() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "scanner answer refused")
}

/// Applies the read timer to the result of one read attempt: a read that waits is timed
/// only once the clock is armed (the whole request handed over).
fn timed_read(
    result: Poll<io::Result<()>>,
    timer: &mut Option<Pin<Box<Sleep>>>,
    clock: &IoClock,
    cx: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    if !matches!(result, Poll::Pending) {
        *timer = None;
        return result;
    }
    if clock.read_armed.load(Ordering::Acquire) {
        if poll_timer(timer, clock.read_ms.load(Ordering::Relaxed), cx) {
            clock.fire(Fired::Read);
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "scanner read timed out",
            )));
        }
        return Poll::Pending;
    }
    *timer = None;
    let mut parked = clock
        .parked_reader
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    *parked = Some(cx.waker().clone());
    drop(parked);
    // Armed meanwhile: poll again so the timer starts.
    if clock.read_armed.load(Ordering::Acquire) {
        cx.waker().wake_by_ref();
    }
    Poll::Pending
}

impl<S: AsyncRead + AsyncWrite> Read for TimedIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        if this.clock.fired() == Fired::Refused {
            return Poll::Ready(Err(refused()));
        }
        // SAFETY: the bytes tokio reports as filled are initialized; `advance` is called with
        // exactly that count, as hyper's own tokio adapter does.
        let (result, n) = unsafe {
            let mut tbuf = ReadBuf::uninit(buf.as_mut());
            let r = this.inner.poll_read(cx, &mut tbuf);
            let n = tbuf.filled().len();
            (r, n)
        };
        if matches!(result, Poll::Ready(Ok(()))) {
            // SAFETY: `n` bytes were initialized by the inner read.
            unsafe { buf.advance(n) };
        }
        timed_read(result, this.read_timer, this.clock, cx)
    }
}

/// The same timers for tokio's traits (the ICAP client reads and writes directly).
impl<S: AsyncRead + AsyncWrite> AsyncRead for TimedIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        if this.clock.fired() == Fired::Refused {
            return Poll::Ready(Err(refused()));
        }
        let result = this.inner.poll_read(cx, buf);
        timed_read(result, this.read_timer, this.clock, cx)
    }
}

impl<S: AsyncRead + AsyncWrite> AsyncWrite for TimedIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let r = this.inner.poll_write(cx, buf);
        timed_write(r, this.write_timer, this.clock, cx)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

/// Applies the send timer to the result of one write attempt.
fn timed_write(
    result: Poll<io::Result<usize>>,
    timer: &mut Option<Pin<Box<Sleep>>>,
    clock: &IoClock,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    match result {
        Poll::Ready(r) => {
            *timer = None;
            Poll::Ready(r)
        }
        Poll::Pending => {
            if poll_timer(timer, clock.send_ms.load(Ordering::Relaxed), cx) {
                clock.fire(Fired::Send);
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "scanner send timed out",
                )));
            }
            Poll::Pending
        }
    }
}

impl<S: AsyncRead + AsyncWrite> Write for TimedIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let r = this.inner.poll_write(cx, buf);
        timed_write(r, this.write_timer, this.clock, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let r = this.inner.poll_write_vectored(cx, bufs);
        timed_write(r, this.write_timer, this.clock, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}
