//! A raw HTTP/1.x client: exact control over what goes on the wire.

use std::io::{self, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::http1::{read_body, read_head, Framing, Head};

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub head: Head,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.header(name)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A keep-alive connection to nginx.
pub struct Conn {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

impl Conn {
    pub fn open(port: u16) -> io::Result<Conn> {
        let s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(Duration::from_secs(120)))?;
        let r = BufReader::new(s.try_clone()?);
        Ok(Conn { w: s, r })
    }

    pub fn stream(&self) -> &TcpStream {
        &self.w
    }

    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.w.write_all(bytes)
    }

    /// Sends a request with a Content-Length body.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Response> {
        let mut msg = format!("{method} {path} HTTP/1.1\r\nHost: test.local\r\n");
        for (n, v) in headers {
            msg.push_str(&format!("{n}: {v}\r\n"));
        }
        if !body.is_empty() || method != "GET" {
            msg.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        msg.push_str("\r\n");
        self.w.write_all(msg.as_bytes())?;
        self.w.write_all(body)?;
        self.read_response(method == "HEAD")
    }

    pub fn read_response(&mut self, head_only: bool) -> io::Result<Response> {
        let head = read_head(&mut self.r)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "no response"))?;
        let status = head
            .start
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad status line"))?;
        let framing = if head_only || status == 204 || status == 304 {
            Framing::None
        } else if head
            .header("transfer-encoding")
            .is_some_and(|v| v.contains("chunked"))
        {
            Framing::Chunked
        } else if let Some(n) = head.header("content-length").and_then(|v| v.parse().ok()) {
            Framing::Length(n)
        } else {
            Framing::Close
        };
        let mut body = Vec::new();
        read_body(&mut self.r, framing, |c| body.extend_from_slice(c))?;
        Ok(Response { status, head, body })
    }

    /// Whether the server closed the connection (reads EOF within the timeout).
    pub fn is_closed(&mut self, wait: Duration) -> bool {
        let _ = self.w.set_read_timeout(Some(wait));
        let mut b = [0u8; 1];
        matches!(self.r.read(&mut b), Ok(0))
    }
}

/// One request on a new connection.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Response> {
    Conn::open(port)?.request(method, path, headers, body)
}

/// A POST of `body` to `path`.
pub fn post(port: u16, path: &str, body: &[u8]) -> io::Result<Response> {
    request(
        port,
        "POST",
        path,
        &[("Content-Type", "application/octet-stream")],
        body,
    )
}
