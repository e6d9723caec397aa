//! What the fuzz targets share: cutting an input into pieces the way the network or nginx's
//! buffers may cut it, bodies made of those pieces, and a loopback server that answers every
//! connection with the input (for the targets that run the real clients).
//!
//! Every parser of hostile input must give one answer however its input is cut: each target
//! feeds the same bytes whole and in cuts derived from the input and compares.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use ometascan_core::{BodyPart, RequestBody};

/// Cuts of `data`: pieces of pseudo-random sizes (1 to 64 bytes, seeded by the input itself),
/// and for short inputs pieces of one byte.
pub fn cuts(data: &[u8]) -> Vec<Vec<&[u8]>> {
    let mut seed = data.iter().fold(0x9e37_79b9_7f4a_7c15u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    }) | 1;
    let mut random = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let n = ((seed % 64) as usize + 1).min(rest.len());
        random.push(&rest[..n]);
        rest = &rest[n..];
    }
    let mut all = vec![random];
    if data.len() <= 512 {
        all.push(data.chunks(1).collect());
    }
    all
}

/// A body of memory parts, one per piece (as nginx's buffers hold it).
pub fn body(pieces: &[&[u8]]) -> RequestBody {
    let mut b = RequestBody::new();
    for p in pieces {
        b.push(BodyPart::Memory(Bytes::copy_from_slice(p)));
    }
    b
}

/// A body's bytes (it is memory, or a spilled temp file of the core's own).
pub fn bytes_of(b: &RequestBody) -> Vec<u8> {
    let mut out = Vec::new();
    let mut r = b.reader(64 * 1024);
    while let Some(c) = r.next_chunk() {
        match c {
            Ok(c) => out.extend_from_slice(&c),
            Err(e) => panic!("a body the core made cannot be read: {e}"),
        }
    }
    out
}

/// Where spilled bodies go.
pub fn dir() -> std::path::PathBuf {
    std::env::temp_dir()
}

/// A tokio runtime for the targets that run the real clients.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

static ANSWER: Mutex<Vec<u8>> = Mutex::new(Vec::new());
static WHOLE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// A loopback server that answers every connection, one at a time, with the bytes set by
/// [`answer_with`]: it waits for the end of the request head (or a pause after the first bytes), writes the answer in pieces, closes
/// its side and drains what the client still sends.
pub fn server() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        let l = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let addr = l.local_addr().expect("its address");
        // One thread serves the connections one after the other: a thread per connection
        // would leave threads exiting while LeakSanitizer looks (their thread-local
        // destructors' records read as leaks).
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                let answer = ANSWER.lock().unwrap_or_else(|e| e.into_inner()).clone();
                serve(s, &answer);
            }
        });
        addr
    })
}

fn serve(mut s: std::net::TcpStream, answer: &[u8]) {
    let _ = s.set_nodelay(true);
    let _ = s.set_read_timeout(Some(Duration::from_millis(20)));
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") && seen.len() < 1 << 16 {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                seen.extend_from_slice(&buf[..n]);
                // The rest of a request comes at once (a Redis command has no blank line).
                let _ = s.set_read_timeout(Some(Duration::from_millis(2)));
            }
        }
    }
    let pieces = if WHOLE.load(std::sync::atomic::Ordering::SeqCst) {
        vec![answer]
    } else {
        cuts(answer).swap_remove(0)
    };
    for piece in pieces {
        if s.write_all(piece).is_err() {
            return;
        }
    }
    let _ = s.shutdown(std::net::Shutdown::Write);
    let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
    while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
}

/// Sets what the server answers from now on, in one write or cut into pieces.
pub fn answer_with(data: &[u8], whole: bool) {
    *ANSWER.lock().unwrap_or_else(|e| e.into_inner()) = data.to_vec();
    WHOLE.store(whole, std::sync::atomic::Ordering::SeqCst);
}

/// `run` against the answer sent whole and sent cut: the two results must agree. Over a real
/// socket a mismatch could be timing (a reset racing a read), so a mismatch is tried once more
/// before it counts.
pub fn same_whole_and_cut<T: PartialEq + std::fmt::Debug>(data: &[u8], run: impl Fn() -> T) {
    let mut last = None;
    for _ in 0..2 {
        answer_with(data, true);
        let whole = run();
        answer_with(data, false);
        let cut = run();
        if whole == cut {
            return;
        }
        last = Some((whole, cut));
    }
    if let Some((whole, cut)) = last {
        panic!("whole: {whole:?}, cut: {cut:?}");
    }
}
