//! The body of a request to scan: a sequence of memory parts and file ranges, streamed to the
//! scanner in bounded chunks and never collected in memory.

pub mod base64;
pub mod boundary;
pub mod bundle;
pub mod charset;
pub mod charset_body;
pub mod decode;
pub mod json;
pub mod json_check;
pub mod multipart;
pub mod nested;
pub mod rebuild;
pub mod sink;
pub mod text;
pub mod urlencoded;
pub mod utf;
pub mod xml;

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Frame, SizeHint};

/// Largest piece read from a file part at once.
pub const FILE_CHUNK: usize = 256 * 1024;

/// One piece of the body.
#[derive(Debug, Clone)]
pub enum BodyPart {
    /// Bytes of nginx's memory buffers, lent by the adapter (or owned bytes in tests).
    Memory(Bytes),
    /// A range of a file (nginx's request body temp file, opened through a duplicated fd).
    File {
        file: Arc<File>,
        offset: u64,
        len: u64,
    },
}

impl BodyPart {
    pub fn len(&self) -> u64 {
        match self {
            BodyPart::Memory(b) => b.len() as u64,
            BodyPart::File { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The whole request body; cheap to clone (parts are shared), so a scan can be replayed on a
/// fresh connection.
#[derive(Debug, Clone, Default)]
pub struct RequestBody {
    parts: Vec<BodyPart>,
    len: u64,
}

impl RequestBody {
    pub fn new() -> Self {
        Self::default()
    }

    /// A body of one memory part, a copy of `data`.
    pub fn memory(data: &[u8]) -> Self {
        let mut b = RequestBody::new();
        b.push(BodyPart::Memory(Bytes::copy_from_slice(data)));
        b
    }

    /// All the bytes, for a small body (a field, a header's worth).
    pub fn to_vec(&self) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.len as usize);
        let mut r = self.reader(FILE_CHUNK);
        while let Some(c) = r.next_chunk() {
            out.extend_from_slice(&c?);
        }
        Ok(out)
    }

    pub fn push(&mut self, part: BodyPart) {
        if !part.is_empty() {
            self.len += part.len();
            self.parts.push(part);
        }
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn parts(&self) -> &[BodyPart] {
        &self.parts
    }

    /// The bytes `start..start + len` as a body of their own (parts shared, nothing copied);
    /// cut at the body's end.
    pub fn slice(&self, start: u64, len: u64) -> RequestBody {
        let mut out = RequestBody::new();
        let (mut at, end) = (0u64, start.saturating_add(len));
        for part in &self.parts {
            let (from, to) = (at, at + part.len());
            at = to;
            let (a, b) = (from.max(start), to.min(end));
            if a >= b {
                continue;
            }
            let (skip, take) = (a - from, b - a);
            out.push(match part {
                BodyPart::Memory(bytes) => {
                    BodyPart::Memory(bytes.slice(skip as usize..(skip + take) as usize))
                }
                BodyPart::File { file, offset, .. } => BodyPart::File {
                    file: file.clone(),
                    offset: offset + skip,
                    len: take,
                },
            });
        }
        out
    }

    /// A cursor over the body; file parts are read `chunk` bytes at a time.
    pub fn reader(&self, chunk: usize) -> BodyReader {
        BodyReader {
            parts: self.parts.clone(),
            index: 0,
            offset: 0,
            chunk: chunk.max(1),
        }
    }
}

/// A body the module produced (decoded, or a scanner's), as a body to scan.
impl From<crate::scan::SanitizedBody> for RequestBody {
    fn from(b: crate::scan::SanitizedBody) -> Self {
        let mut r = RequestBody::new();
        r.push(match b {
            crate::scan::SanitizedBody::Memory(bytes) => BodyPart::Memory(bytes),
            crate::scan::SanitizedBody::File { file, len } => BodyPart::File {
                file: Arc::new(file),
                offset: 0,
                len,
            },
            crate::scan::SanitizedBody::Parts(body) => return body,
        });
        r
    }
}

/// What [`BodyReader::next_piece`] hands out: bytes, or a range of a file to send as it is.
#[derive(Debug, Clone)]
pub enum Piece {
    Bytes(Bytes),
    File {
        file: Arc<File>,
        offset: u64,
        len: u64,
    },
}

/// Reads a [`RequestBody`] piece by piece.
#[derive(Debug)]
pub struct BodyReader {
    parts: Vec<BodyPart>,
    index: usize,
    offset: u64,
    chunk: usize,
}

impl BodyReader {
    /// The next chunk, or `None` at the end of the body: a memory part whole (shared, not
    /// copied), a file part in reads of at most the reader's chunk size.
    ///
    /// File parts are read with `pread` from the page cache; a file that turns out shorter than
    /// nginx said is an error, never a silently short body.
    pub fn next_chunk(&mut self) -> Option<io::Result<Bytes>> {
        self.next(usize::MAX)
    }

    /// The next piece: with `files`, what is left of a file part as one range (for a transport
    /// that sends files itself), else as [`BodyReader::next_chunk`].
    pub fn next_piece(&mut self, files: bool) -> Option<io::Result<Piece>> {
        if files {
            if let Some(piece) = self.next_file_range() {
                return Some(Ok(piece));
            }
        }
        self.next_chunk().map(|r| r.map(Piece::Bytes))
    }

    /// What is left of the current part, once the parts read to the end are skipped.
    fn remaining(&mut self) -> Option<u64> {
        loop {
            let remaining = self.parts.get(self.index)?.len() - self.offset;
            if remaining > 0 {
                return Some(remaining);
            }
            self.index += 1;
            self.offset = 0;
        }
    }

    /// What is left of the current part when it is a file part.
    fn next_file_range(&mut self) -> Option<Piece> {
        let remaining = self.remaining()?;
        let Some(BodyPart::File { file, offset, .. }) = self.parts.get(self.index) else {
            return None;
        };
        let piece = Piece::File {
            file: file.clone(),
            offset: offset + self.offset,
            len: remaining,
        };
        self.index += 1;
        self.offset = 0;
        Some(piece)
    }

    /// The next chunk of at most `max` bytes (and at most the reader's chunk size).
    pub fn next_chunk_max(&mut self, max: usize) -> Option<io::Result<Bytes>> {
        self.next(max.min(self.chunk).max(1))
    }

    fn next(&mut self, memory_limit: usize) -> Option<io::Result<Bytes>> {
        let remaining = self.remaining()?;
        let part = self.parts.get(self.index)?;
        let limit = match part {
            BodyPart::Memory(_) => memory_limit,
            BodyPart::File { .. } => memory_limit.min(self.chunk),
        };
        let want = remaining.min(limit as u64) as usize;
        let out = match part {
            BodyPart::Memory(b) => {
                let start = self.offset as usize;
                Ok(b.slice(start..start + want))
            }
            BodyPart::File { file, offset, .. } => {
                let mut buf = BytesMut::zeroed(want);
                match read_exact_at(file, &mut buf, offset + self.offset) {
                    Ok(()) => Ok(buf.freeze()),
                    Err(e) => Err(e),
                }
            }
        };
        if out.is_ok() {
            self.offset += want as u64;
        } else {
            // Stop after an error: the stream is broken.
            self.index = self.parts.len();
        }
        Some(out)
    }
}

fn read_exact_at(file: &File, mut buf: &mut [u8], mut pos: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match file.read_at(buf, pos) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "request body file is shorter than expected",
                ))
            }
            Ok(n) => {
                buf = &mut buf[n..];
                pos += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A [`RequestBody`] as a hyper request body. Calls `on_end` once the last byte was handed over.
pub struct StreamBody {
    reader: BodyReader,
    remaining: u64,
    on_end: Option<Box<dyn FnOnce() + Send>>,
}

impl StreamBody {
    pub fn new(body: &RequestBody, on_end: Box<dyn FnOnce() + Send>) -> Self {
        StreamBody {
            reader: body.reader(FILE_CHUNK),
            remaining: body.len(),
            on_end: Some(on_end),
        }
    }

    fn finish(&mut self) {
        if let Some(f) = self.on_end.take() {
            f();
        }
    }
}

impl http_body::Body for StreamBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        match this.reader.next_chunk() {
            Some(Ok(b)) => {
                this.remaining -= b.len() as u64;
                if this.remaining == 0 {
                    this.finish();
                }
                Poll::Ready(Some(Ok(Frame::data(b))))
            }
            Some(Err(e)) => Poll::Ready(Some(Err(e))),
            None => {
                this.finish();
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn reads_memory_and_file_parts_in_order() {
        let mut f = crate::body::testing::temp_file();
        f.write_all(b"0123456789").unwrap();
        let file = Arc::new(f);
        let mut body = RequestBody::new();
        body.push(BodyPart::Memory(Bytes::from_static(b"ab")));
        body.push(BodyPart::File {
            file: file.clone(),
            offset: 2,
            len: 6,
        });
        body.push(BodyPart::Memory(Bytes::new()));
        body.push(BodyPart::Memory(Bytes::from_static(b"z")));
        assert_eq!(body.len(), 9);
        let mut r = body.reader(4);
        let mut out = Vec::new();
        let mut sizes = Vec::new();
        while let Some(c) = r.next_chunk() {
            let c = c.unwrap();
            sizes.push(c.len());
            out.extend_from_slice(&c);
        }
        assert_eq!(out, b"ab234567z");
        // File reads are cut at the chunk size; memory parts come whole.
        assert_eq!(sizes, [2, 4, 2, 1]);
        let mut r = body.reader(4);
        let mut sizes = Vec::new();
        while let Some(c) = r.next_chunk_max(1) {
            sizes.push(c.unwrap().len());
        }
        assert_eq!(sizes, [1; 9]);
    }

    #[test]
    fn short_file_is_an_error() {
        let mut f = crate::body::testing::temp_file();
        f.write_all(b"abc").unwrap();
        let mut body = RequestBody::new();
        body.push(BodyPart::File {
            file: Arc::new(f),
            offset: 0,
            len: 10,
        });
        let mut r = body.reader(100);
        assert!(r.next_chunk().unwrap().is_err());
        assert!(r.next_chunk().is_none());
    }
}

/// Bodies for the unit tests of this module's files.
#[cfg(test)]
pub(crate) mod testing {
    use super::{BodyPart, RequestBody};
    use bytes::Bytes;

    /// A body of memory parts, one per piece.
    pub fn mem(pieces: &[&[u8]]) -> RequestBody {
        let mut b = RequestBody::new();
        for p in pieces {
            b.push(BodyPart::Memory(Bytes::copy_from_slice(p)));
        }
        b
    }

    /// An unlinked temp file open for reading and writing.
    pub fn temp_file() -> std::fs::File {
        let path = std::env::temp_dir().join(format!(
            "ometascan-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .expect("temp file");
        let _ = std::fs::remove_file(&path);
        f
    }

    /// All the bytes of a body, read in small chunks.
    pub fn bytes_of(b: &RequestBody) -> Vec<u8> {
        let mut r = b.reader(7);
        let mut out = Vec::new();
        while let Some(c) = r.next_chunk() {
            out.extend_from_slice(&c.expect("read"));
        }
        out
    }
}
