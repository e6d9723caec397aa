//! An ICAP server double for the corner cases a real server does not produce on demand.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// What the double does with a REQMOD (or a RESPMOD).
#[derive(Debug, Clone)]
pub enum IcapAction {
    /// 204 after reading the whole request.
    Allow,
    /// 204 right after the preview (the rest is never asked for).
    AllowAfterPreview,
    /// `100 Continue` even after a preview that ended in `ieof`.
    ContinueAfterIeof,
    /// A block page as soon as the ICAP head arrived, while the body is still coming; then
    /// the connection is closed.
    EarlyBlock,
    /// A raw answer after reading the whole request.
    Raw(Vec<u8>),
    /// The 204 answer one byte per interval.
    SlowDrip(Duration),
    /// Reads the whole body: c-icap's block answer if it holds the EICAR string, else 204.
    EicarAware,
    /// 204 as soon as the ICAP head arrived, while the body is still coming (without a
    /// preview); the connection then stays open, unread.
    EarlyAllow,
    /// After the preview: `100 Continue`, one chunk of the rest read, then 204 before the
    /// last chunk; the connection then stays open, unread.
    AllowMidBody,
    /// After the preview: `100 Continue`, one chunk of the rest read, then a reset.
    ResetAfterContinue,
    /// Reads the whole request and never answers.
    Silent,
}

/// A block answer in c-icap's shape (encapsulated HTTP/1.0 403, no Content-Length).
pub fn block_answer(page: &str) -> Vec<u8> {
    let http = "HTTP/1.0 403 Forbidden\r\nContent-Type: text/html\r\n\r\n";
    format!(
        "ICAP/1.0 200 OK\r\nISTag: \"double-1\"\r\nX-Infection-Found: Type=0; Resolution=2; Threat=Double.Threat;\r\n\
         Encapsulated: res-hdr=0, res-body={}\r\n\r\n{http}{:x}\r\n{page}\r\n0\r\n\r\n",
        http.len(),
        page.len()
    )
    .into_bytes()
}

struct State {
    action: Mutex<IcapAction>,
    /// Actions for the next REQMODs, before `action` applies again.
    script: Mutex<std::collections::VecDeque<IcapAction>>,
    /// An OPTIONS answer sent as it is, instead of the usual one.
    options_answer: Mutex<Option<String>>,
    /// Connections kept open, unread, by the early answers.
    held: Mutex<Vec<TcpStream>>,
    connections: AtomicUsize,
    preview: Mutex<Option<usize>>,
    /// Extra OPTIONS header lines (e.g. `Max-Connections: 1\r\n`).
    options_extra: Mutex<String>,
    /// ISTag sent in OPTIONS and REQMOD answers.
    istag: Mutex<String>,
    /// Close the connection after each answer, without saying so.
    close_after: AtomicBool,
    options_count: AtomicUsize,
    active: AtomicUsize,
    max_active: AtomicUsize,
    stop: AtomicBool,
    /// Body bytes received per REQMOD.
    bodies: Mutex<Vec<usize>>,
}

pub struct IcapDouble {
    port: u16,
    state: Arc<State>,
}

impl IcapDouble {
    pub fn start(action: IcapAction, preview: Option<usize>) -> IcapDouble {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(State {
            action: Mutex::new(action),
            script: Mutex::new(std::collections::VecDeque::new()),
            options_answer: Mutex::new(None),
            held: Mutex::new(Vec::new()),
            connections: AtomicUsize::new(0),
            preview: Mutex::new(preview),
            options_extra: Mutex::new(String::new()),
            istag: Mutex::new("\"double-1\"".into()),
            close_after: AtomicBool::new(false),
            options_count: AtomicUsize::new(0),
            active: AtomicUsize::new(0),
            max_active: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            bodies: Mutex::new(Vec::new()),
        });
        let st = state.clone();
        thread::spawn(move || {
            for c in listener.incoming() {
                if st.stop.load(Ordering::Acquire) {
                    break;
                }
                let Ok(c) = c else { continue };
                st.connections.fetch_add(1, Ordering::AcqRel);
                let st = st.clone();
                thread::spawn(move || serve(c, st));
            }
        });
        IcapDouble { port, state }
    }

    pub fn url(&self, service: &str) -> String {
        format!("icap://127.0.0.1:{}/{service}", self.port)
    }

    pub fn set_options_extra(&self, lines: &str) {
        *self.state.options_extra.lock().unwrap() = lines.to_string();
    }

    /// The next REQMODs get these actions, in order; then the default applies again.
    pub fn script(&self, actions: impl IntoIterator<Item = IcapAction>) {
        self.state.script.lock().unwrap().extend(actions);
    }

    /// Answers OPTIONS with exactly these bytes.
    pub fn set_options_answer(&self, raw: &str) {
        *self.state.options_answer.lock().unwrap() = Some(raw.to_string());
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::Acquire)
    }

    pub fn set_istag(&self, tag: &str) {
        *self.state.istag.lock().unwrap() = tag.to_string();
    }

    pub fn close_after_each_answer(&self, on: bool) {
        self.state.close_after.store(on, Ordering::Release);
    }

    pub fn options_count(&self) -> usize {
        self.state.options_count.load(Ordering::Acquire)
    }

    /// The most REQMODs that were in progress at once.
    pub fn max_concurrent(&self) -> usize {
        self.state.max_active.load(Ordering::Acquire)
    }

    /// Body bytes received by each REQMOD so far.
    pub fn bodies(&self) -> Vec<usize> {
        self.state.bodies.lock().unwrap().clone()
    }
}

impl Drop for IcapDouble {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::Release);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn read_head(r: &mut BufReader<TcpStream>) -> Option<Vec<String>> {
    let mut lines = Vec::new();
    loop {
        let mut l = String::new();
        if r.read_line(&mut l).ok()? == 0 {
            return None;
        }
        let l = l.trim_end().to_string();
        if l.is_empty() {
            return Some(lines);
        }
        lines.push(l);
    }
}

/// Reads chunks until the last one; returns (bytes, ended with ieof). The data is appended
/// to `keep` up to 1 MB.
fn read_chunks(r: &mut BufReader<TcpStream>, keep: &mut Vec<u8>) -> Option<(usize, bool)> {
    let mut total = 0;
    loop {
        let mut l = String::new();
        r.read_line(&mut l).ok()?;
        let l = l.trim_end();
        let (size, ext) = l
            .split_once(';')
            .map(|(a, b)| (a, b.trim()))
            .unwrap_or((l, ""));
        let n = usize::from_str_radix(size.trim(), 16).ok()?;
        if n == 0 {
            let mut e = String::new();
            r.read_line(&mut e).ok()?;
            return Some((total, ext == "ieof"));
        }
        let mut buf = vec![0u8; n + 2];
        r.read_exact(&mut buf).ok()?;
        total += n;
        if keep.len() + n <= 1024 * 1024 {
            keep.extend_from_slice(&buf[..n]);
        }
    }
}

/// Reads one chunk of a body (its size line, data and CRLF); `None` at the last chunk or on
/// an error.
/// Reads the head of the next chunk and at most 64 KiB of its data (whatever size the client
/// chose for its chunks): a server that answers in the middle of the body.
fn read_one_chunk(r: &mut BufReader<TcpStream>) -> Option<usize> {
    let mut l = String::new();
    r.read_line(&mut l).ok()?;
    let n = usize::from_str_radix(l.trim_end().split(';').next()?.trim(), 16).ok()?;
    if n == 0 {
        return None;
    }
    let take = n.min(64 * 1024);
    let mut buf = vec![0u8; take];
    r.read_exact(&mut buf).ok()?;
    Some(take)
}

fn serve(c: TcpStream, st: Arc<State>) {
    let Ok(mut w) = c.try_clone() else { return };
    let mut r = BufReader::new(c);
    loop {
        let Some(head) = read_head(&mut r) else {
            return;
        };
        let Some(first) = head.first() else { return };
        if first.starts_with("OPTIONS") {
            st.options_count.fetch_add(1, Ordering::AcqRel);
            if let Some(raw) = st.options_answer.lock().unwrap().clone() {
                if w.write_all(raw.as_bytes()).is_err() {
                    return;
                }
                continue;
            }
            let extra = st.options_extra.lock().unwrap().clone();
            let istag = st.istag.lock().unwrap().clone();
            let preview = st
                .preview
                .lock()
                .unwrap()
                .map(|p| format!("Preview: {p}\r\n"))
                .unwrap_or_default();
            let out = format!(
                "ICAP/1.0 200 OK\r\nMethods: REQMOD, RESPMOD\r\nISTag: {istag}\r\n{preview}Allow: 204\r\n{extra}\
                 Transfer-Preview: *\r\nOptions-TTL: 60\r\nEncapsulated: null-body=0\r\n\r\n"
            );
            if w.write_all(out.as_bytes()).is_err() {
                return;
            }
            continue;
        }
        let scripted = st.script.lock().unwrap().pop_front();
        let action = scripted.unwrap_or_else(|| st.action.lock().unwrap().clone());
        let now = st.active.fetch_add(1, Ordering::AcqRel) + 1;
        st.max_active.fetch_max(now, Ordering::AcqRel);
        let _active = Active(&st.active);
        let header = |name: &str| {
            head.iter()
                .find(|l| l.to_ascii_lowercase().starts_with(&format!("{name}:")))
                .map(|l| l[name.len() + 1..].trim().to_string())
        };
        if let IcapAction::EarlyBlock = action {
            let _ = w.write_all(&block_answer("early block"));
            thread::sleep(Duration::from_millis(200));
            let _ = w.shutdown(Shutdown::Both);
            return;
        }
        if let IcapAction::EarlyAllow = action {
            let _ = w.write_all(b"ICAP/1.0 204 No Content\r\nISTag: \"double-1\"\r\n\r\n");
            st.held.lock().unwrap().push(w);
            return;
        }
        let enc = header("encapsulated").unwrap_or_default();
        let body_off: usize = enc
            .split(',')
            .find_map(|p| {
                p.trim()
                    .split_once('=')
                    .filter(|(k, _)| k.ends_with("body"))
                    .map(|(_, v)| v.parse().unwrap_or(0))
            })
            .unwrap_or(0);
        let mut hdr = vec![0u8; body_off];
        if r.read_exact(&mut hdr).is_err() {
            return;
        }
        let has_body = enc.contains("req-body") || enc.contains("res-body");
        let mut total = 0;
        let mut data = Vec::new();
        if has_body {
            let Some((n, ieof)) = read_chunks(&mut r, &mut data) else {
                return;
            };
            total += n;
            if header("preview").is_some() {
                match action {
                    IcapAction::AllowAfterPreview => {
                        st.bodies.lock().unwrap().push(total);
                        let _ =
                            w.write_all(b"ICAP/1.0 204 No Content\r\nISTag: \"double-1\"\r\n\r\n");
                        continue;
                    }
                    IcapAction::ContinueAfterIeof => {
                        let _ = w.write_all(b"ICAP/1.0 100 Continue\r\n\r\n");
                        thread::sleep(Duration::from_millis(200));
                        return;
                    }
                    _ => {}
                }
                if !ieof {
                    if w.write_all(b"ICAP/1.0 100 Continue\r\n\r\n").is_err() {
                        return;
                    }
                    match action {
                        IcapAction::AllowMidBody | IcapAction::ResetAfterContinue => {
                            let got = read_one_chunk(&mut r).unwrap_or(0);
                            st.bodies.lock().unwrap().push(total + got);
                            if let IcapAction::ResetAfterContinue = action {
                                crate::scanner::reset(&w);
                                return;
                            }
                            let _ = w.write_all(
                                b"ICAP/1.0 204 No Content\r\nISTag: \"double-1\"\r\n\r\n",
                            );
                            st.held.lock().unwrap().push(w);
                            return;
                        }
                        _ => {}
                    }
                    let Some((n, _)) = read_chunks(&mut r, &mut data) else {
                        return;
                    };
                    total += n;
                }
            }
        }
        st.bodies.lock().unwrap().push(total);
        if let IcapAction::Silent = action {
            st.held.lock().unwrap().push(w);
            return;
        }
        let out = match action {
            IcapAction::EicarAware if crate::contains(&data, crate::EICAR) => {
                block_answer("EICAR found")
            }
            IcapAction::Raw(bytes) => {
                let _ = w.write_all(&bytes);
                let _ = w.shutdown(Shutdown::Write);
                return;
            }
            IcapAction::SlowDrip(interval) => {
                for b in b"ICAP/1.0 204 No Content\r\nISTag: \"double-1\"\r\n\r\n" {
                    if w.write_all(&[*b]).is_err() {
                        return;
                    }
                    thread::sleep(interval);
                }
                continue;
            }
            _ => {
                // A little work, so that concurrent scans overlap.
                thread::sleep(Duration::from_millis(20));
                let istag = st.istag.lock().unwrap().clone();
                format!("ICAP/1.0 204 No Content\r\nISTag: {istag}\r\n\r\n").into_bytes()
            }
        };
        if w.write_all(&out).is_err() {
            return;
        }
        if st.close_after.load(Ordering::Acquire) {
            let _ = w.shutdown(Shutdown::Both);
            return;
        }
    }
}

/// Counts a REQMOD in progress for as long as it lives.
struct Active<'a>(&'a AtomicUsize);

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
