//! Minimal HTTP/1.x message reading for the doubles.

use std::io::{self, BufRead, BufReader, Read};
use std::net::TcpStream;

#[derive(Debug, Clone, Default)]
pub struct Head {
    /// Request line or status line.
    pub start: String,
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Reads a message head; `Ok(None)` on a clean EOF before any byte.
pub fn read_head(r: &mut BufReader<TcpStream>) -> io::Result<Option<Head>> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut head = Head {
        start: line.trim_end().to_string(),
        headers: Vec::new(),
    };
    loop {
        let mut l = String::new();
        if r.read_line(&mut l)? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "eof in head"));
        }
        let l = l.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            break;
        }
        if let Some((n, v)) = l.split_once(':') {
            head.headers
                .push((n.trim().to_string(), v.trim().to_string()));
        }
    }
    Ok(Some(head))
}

/// A request as a double or the backend received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub head: Head,
    /// The body, when not larger than the keep limit.
    pub body: Vec<u8>,
    pub body_len: u64,
    pub body_hash: u64,
}

impl Recorded {
    pub fn method(&self) -> &str {
        self.head.start.split(' ').next().unwrap_or("")
    }

    pub fn target(&self) -> &str {
        self.head.start.split(' ').nth(1).unwrap_or("")
    }
}

/// How a body is framed.
pub enum Framing {
    Length(u64),
    Chunked,
    Close,
    None,
}

pub fn request_framing(h: &Head) -> Framing {
    if h.header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    {
        Framing::Chunked
    } else if let Some(n) = h.header("content-length").and_then(|v| v.parse().ok()) {
        Framing::Length(n)
    } else {
        Framing::None
    }
}

/// Reads a body, feeding it to `sink` piece by piece.
pub fn read_body(
    r: &mut BufReader<TcpStream>,
    framing: Framing,
    mut sink: impl FnMut(&[u8]),
) -> io::Result<u64> {
    let mut total = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    match framing {
        Framing::None => {}
        Framing::Length(mut n) => {
            while n > 0 {
                let want = n.min(buf.len() as u64) as usize;
                let got = r.read(&mut buf[..want])?;
                if got == 0 {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "short body"));
                }
                sink(&buf[..got]);
                n -= got as u64;
                total += got as u64;
            }
        }
        Framing::Close => loop {
            let got = r.read(&mut buf)?;
            if got == 0 {
                break;
            }
            sink(&buf[..got]);
            total += got as u64;
        },
        Framing::Chunked => loop {
            let mut size_line = String::new();
            r.read_line(&mut size_line)?;
            let size_hex = size_line.trim().split(';').next().unwrap_or("");
            let mut size = u64::from_str_radix(size_hex, 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
            if size == 0 {
                // Trailers until the empty line.
                loop {
                    let mut l = String::new();
                    if r.read_line(&mut l)? == 0 || l.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            while size > 0 {
                let want = size.min(buf.len() as u64) as usize;
                let got = r.read(&mut buf[..want])?;
                if got == 0 {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "short chunk"));
                }
                sink(&buf[..got]);
                size -= got as u64;
                total += got as u64;
            }
            let mut crlf = String::new();
            r.read_line(&mut crlf)?;
        },
    }
    Ok(total)
}
