//! An HTTP/1.1 backend that records exactly what it received.

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use crate::http1::{read_body, read_head, request_framing};
use crate::{Fnv, StreamFind, EICAR};

/// One request as the backend received it.
pub type Request = crate::http1::Recorded;

struct State {
    received: Mutex<Vec<Request>>,
    keep_body: AtomicUsize,
    stop: AtomicBool,
}

pub struct Backend {
    addr: SocketAddr,
    state: Arc<State>,
}

impl Backend {
    pub fn start() -> Backend {
        Self::bind("127.0.0.1:0")
    }

    pub fn bind(addr: &str) -> Backend {
        let listener = TcpListener::bind(addr).expect("bind backend");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(State {
            received: Mutex::new(Vec::new()),
            keep_body: AtomicUsize::new(16 * 1024 * 1024),
            stop: AtomicBool::new(false),
        });
        let st = state.clone();
        thread::spawn(move || {
            for conn in listener.incoming() {
                if st.stop.load(Ordering::Acquire) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let st = st.clone();
                thread::spawn(move || serve(conn, st));
            }
        });
        Backend { addr, state }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn keep_bodies_up_to(&self, n: usize) {
        self.state.keep_body.store(n, Ordering::Release);
    }

    pub fn received(&self) -> Vec<Request> {
        self.received_since(0)
    }

    /// The requests received after the first `n`.
    pub fn received_since(&self, n: usize) -> Vec<Request> {
        let all = self.state.received.lock().unwrap();
        all.get(n..).unwrap_or_default().to_vec()
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::Release);
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve(conn: TcpStream, st: Arc<State>) {
    let Ok(mut w) = conn.try_clone() else { return };
    let mut r = BufReader::with_capacity(256 * 1024, conn);
    loop {
        let Ok(Some(head)) = read_head(&mut r) else {
            return;
        };
        let keep = st.keep_body.load(Ordering::Acquire);
        let mut body = Vec::new();
        let mut hash = Fnv::default();
        let mut eicar = StreamFind::new(EICAR);
        let Ok(len) = read_body(&mut r, request_framing(&head), |c| {
            hash.update(c);
            eicar.update(c);
            if body.len() + c.len() <= keep {
                body.extend_from_slice(c);
            }
        }) else {
            return;
        };
        let reply = format!("backend received {len} bytes\n");
        st.received.lock().unwrap().push(Request {
            head,
            body,
            body_len: len,
            body_hash: hash.finish(),
        });
        // Tells a load generator that a body with the EICAR string got through.
        let flag = if eicar.found() {
            "X-Eicar-Received: yes\r\n"
        } else {
            ""
        };
        let out = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n{flag}Content-Length: {}\r\n\r\n{}",
            reply.len(),
            reply
        );
        if w.write_all(out.as_bytes()).is_err() {
            return;
        }
    }
}
