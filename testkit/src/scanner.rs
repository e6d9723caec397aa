//! A scanner that speaks the HTTP scan protocol, scriptable per request.

use std::collections::VecDeque;
use std::io::{BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use crate::http1::{read_body, read_head, request_framing, Framing, Head};
use crate::{contains, Fnv, EICAR};

/// What the double does with one request.
#[derive(Debug, Clone)]
pub enum Action {
    /// `204 No Content`.
    Allow,
    /// `200` with an empty body.
    AllowEmpty,
    /// `200` with the request's own body.
    Echo,
    /// Any complete response.
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// `403` block page when the body holds the EICAR string, `204` otherwise.
    EicarAware,
    /// `200` with this body (a sanitized version, named `<name>.txt` in `Content-Disposition`,
    /// typed `text/plain`) when the body holds the EICAR string, `204` otherwise.
    SanitizeEicar(Vec<u8>),
    /// Wait, then do the inner action.
    Delay(Duration, Box<Action>),
    /// Close the connection with a reset once the request head arrived.
    ResetAfterHead,
    /// Read this many body bytes, then reset.
    ResetMidBody(usize),
    /// Read the request and never answer.
    Silent,
    /// Stop reading after the head; never answer (the sender's buffers fill up).
    StallReading,
    /// Read the request, write these bytes, close.
    Raw(Vec<u8>),
    /// Read the body slowly (a pause after every piece the reader gets), then allow.
    SlowRead(Duration),
    /// Read this many body bytes, write the response, then never read again (the connection
    /// stays open: the sender's buffers fill up).
    AnswerEarly { after: usize, response: Vec<u8> },
    /// Read the request, then send `102 Processing` interim answers, one per interval, for
    /// as long as the connection lasts (never a final answer).
    InterimFlood(Duration),
    /// Read the request, then write the response one byte per interval.
    SlowDrip {
        interval: Duration,
        response: Vec<u8>,
    },
}

impl Action {
    pub fn block(status: u16, body: &[u8]) -> Action {
        Action::Respond {
            status,
            headers: vec![("Content-Type".into(), "text/html".into())],
            body: body.to_vec(),
        }
    }
}

/// One request as the double received it.
pub type Received = crate::http1::Recorded;

struct State {
    script: Mutex<VecDeque<Action>>,
    default: Mutex<Action>,
    received: Mutex<Vec<Received>>,
    connections: AtomicUsize,
    /// Requests being handled now, and the most at once.
    active: AtomicUsize,
    max_active: AtomicUsize,
    /// Keep bodies up to this size in `Received::body`.
    keep_body: AtomicUsize,
    stop: AtomicBool,
    held: Mutex<Vec<TcpStream>>,
    held_readers: Mutex<Vec<BufReader<TcpStream>>>,
    /// Every open connection, to cut them all when the double stops.
    open: Mutex<std::collections::HashMap<usize, TcpStream>>,
}

/// The running double; stops when dropped.
pub struct ScannerDouble {
    addr: SocketAddr,
    state: Arc<State>,
}

impl ScannerDouble {
    pub fn start(default: Action) -> ScannerDouble {
        Self::bind("127.0.0.1:0", default)
    }

    pub fn bind(addr: &str, default: Action) -> ScannerDouble {
        let listener = TcpListener::bind(addr).expect("bind scanner double");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(State {
            script: Mutex::new(VecDeque::new()),
            default: Mutex::new(default),
            received: Mutex::new(Vec::new()),
            connections: AtomicUsize::new(0),
            active: AtomicUsize::new(0),
            max_active: AtomicUsize::new(0),
            keep_body: AtomicUsize::new(16 * 1024 * 1024),
            stop: AtomicBool::new(false),
            held: Mutex::new(Vec::new()),
            held_readers: Mutex::new(Vec::new()),
            open: Mutex::new(std::collections::HashMap::new()),
        });
        let st = state.clone();
        thread::spawn(move || {
            for conn in listener.incoming() {
                if st.stop.load(Ordering::Acquire) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let id = st.connections.fetch_add(1, Ordering::AcqRel);
                if let Ok(c) = conn.try_clone() {
                    st.open.lock().unwrap().insert(id, c);
                }
                let st = st.clone();
                thread::spawn(move || serve(conn, st, id));
            }
        });
        ScannerDouble { addr, state }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port())
    }

    /// Actions for the next requests, in order; the default applies after them.
    pub fn script(&self, actions: impl IntoIterator<Item = Action>) {
        self.state.script.lock().unwrap().extend(actions);
    }

    pub fn set_default(&self, a: Action) {
        *self.state.default.lock().unwrap() = a;
    }

    pub fn keep_bodies_up_to(&self, n: usize) {
        self.state.keep_body.store(n, Ordering::Release);
    }

    pub fn received(&self) -> Vec<Received> {
        self.received_since(0)
    }

    /// The requests received after the first `n`.
    pub fn received_since(&self, n: usize) -> Vec<Received> {
        let all = self.state.received.lock().unwrap();
        all.get(n..).unwrap_or_default().to_vec()
    }

    /// The most requests the double handled at once.
    pub fn max_concurrent(&self) -> usize {
        self.state.max_active.load(Ordering::Acquire)
    }

    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::Acquire)
    }
}

impl Drop for ScannerDouble {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::Release);
        for s in self.state.held.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
        // A stopped scanner is gone for kept-alive connections too.
        for (_, s) in self.state.open.lock().unwrap().drain() {
            let _ = s.shutdown(Shutdown::Both);
        }
        let _ = TcpStream::connect(self.addr);
    }
}

/// Makes the next close of `s` a reset (RST) instead of a FIN.
pub fn reset(s: &TcpStream) {
    // SO_LINGER 0 turns the close into a reset.
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: valid fd and option struct.
    unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(s),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &l as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as u32,
        );
    }
}

/// Forgets a connection's extra handle when its thread ends, so that closing it (or
/// resetting it) really closes the socket.
struct Open<'a>(&'a State, usize);

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0.open.lock().unwrap().remove(&self.1);
    }
}

fn serve(conn: TcpStream, st: Arc<State>, id: usize) {
    let Ok(write_half) = conn.try_clone() else {
        return;
    };
    let mut w = write_half;
    let mut r = BufReader::with_capacity(256 * 1024, conn);
    // Declared last: dropped first, before the handles above.
    let _open = Open(&st, id);
    loop {
        let Ok(Some(head)) = read_head(&mut r) else {
            return;
        };
        let action = {
            let next = st.script.lock().unwrap().pop_front();
            next.unwrap_or_else(|| st.default.lock().unwrap().clone())
        };
        let now = st.active.fetch_add(1, Ordering::AcqRel) + 1;
        st.max_active.fetch_max(now, Ordering::AcqRel);
        let _active = Busy(&st.active);
        match &action {
            Action::ResetAfterHead => {
                record(&st, head, Vec::new(), 0, Fnv::default());
                reset(&w);
                return;
            }
            Action::StallReading => {
                record(&st, head, Vec::new(), 0, Fnv::default());
                st.held.lock().unwrap().push(w);
                return;
            }
            _ => {}
        }
        let keep = st.keep_body.load(Ordering::Acquire);
        let mut body = Vec::new();
        let mut hash = Fnv::default();
        let limit = match action {
            Action::ResetMidBody(n) | Action::AnswerEarly { after: n, .. } => Some(n),
            _ => None,
        };
        let framing = request_framing(&head);
        let result = match (limit, framing) {
            (Some(n), Framing::Length(len)) => {
                let mut got = 0usize;
                let mut buf = vec![0u8; 4096];
                let want = (n as u64).min(len) as usize;
                while got < want {
                    match std::io::Read::read(&mut r, &mut buf[..(want - got).min(4096)]) {
                        Ok(0) | Err(_) => break,
                        Ok(k) => got += k,
                    }
                }
                record(&st, head, Vec::new(), got as u64, hash);
                if let Action::AnswerEarly { response, .. } = action {
                    let _ = w.write_all(&response);
                    st.held.lock().unwrap().push(w);
                    // The reader half stays open with it, unread.
                    st.held_readers.lock().unwrap().push(r);
                    return;
                }
                reset(&w);
                return;
            }
            (_, framing) => read_body(&mut r, framing, |c| {
                if let Action::SlowRead(pause) = &action {
                    thread::sleep(*pause);
                }
                hash.update(c);
                if body.len() + c.len() <= keep {
                    body.extend_from_slice(c);
                }
            }),
        };
        let Ok(len) = result else { return };
        let is_head = head.start.starts_with("HEAD ");
        record(&st, head.clone(), body.clone(), len, hash);
        let mut action = action;
        if let Action::Delay(d, inner) = action {
            thread::sleep(d);
            action = *inner;
        }
        let out: Vec<u8> = match action {
            Action::Allow | Action::SlowRead(_) => b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(),
            Action::AllowEmpty => b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec(),
            Action::Echo => response(200, &[], &body),
            Action::Respond {
                status,
                headers,
                body,
            } => response(status, &headers, &body),
            Action::EicarAware => {
                if contains(&body, EICAR) {
                    response(
                        403,
                        &[("Content-Type".into(), "text/html".into())],
                        b"<html><body><h1>Blocked</h1>The upload contains the EICAR test virus.</body></html>\n",
                    )
                } else {
                    b"HTTP/1.1 204 No Content\r\n\r\n".to_vec()
                }
            }
            Action::SanitizeEicar(clean) => {
                if contains(&body, EICAR) {
                    response(
                        200,
                        &[
                            ("Content-Type".into(), "text/plain".into()),
                            (
                                "Content-Disposition".into(),
                                "attachment; filename=\"cleaned.txt\"".into(),
                            ),
                        ],
                        &clean,
                    )
                } else {
                    b"HTTP/1.1 204 No Content\r\n\r\n".to_vec()
                }
            }
            Action::Silent => {
                st.held.lock().unwrap().push(w);
                return;
            }
            Action::Raw(bytes) => {
                let _ = w.write_all(&bytes);
                let _ = w.shutdown(Shutdown::Write);
                return;
            }
            Action::InterimFlood(interval) => {
                while w.write_all(b"HTTP/1.1 102 Processing\r\n\r\n").is_ok() {
                    thread::sleep(interval);
                }
                return;
            }
            Action::SlowDrip { interval, response } => {
                for b in response {
                    if w.write_all(&[b]).is_err() {
                        return;
                    }
                    thread::sleep(interval);
                }
                continue;
            }
            _ => return,
        };
        // An answer to HEAD is its head alone (Content-Length still tells the page's size).
        let out = if is_head {
            match out.windows(4).position(|w| w == b"\r\n\r\n") {
                Some(end) => out[..end + 4].to_vec(),
                None => out,
            }
        } else {
            out
        };
        if w.write_all(&out).is_err() {
            return;
        }
    }
}

fn record(st: &State, head: Head, body: Vec<u8>, len: u64, hash: Fnv) {
    st.received.lock().unwrap().push(Received {
        head,
        body,
        body_len: len,
        body_hash: hash.finish(),
    });
}

fn response(status: u16, headers: &[(String, String)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} Status\r\n").into_bytes();
    for (n, v) in headers {
        out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    out
}

/// Counts a request being handled for as long as it lives.
struct Busy<'a>(&'a AtomicUsize);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
