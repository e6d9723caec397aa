//! The document as quick-xml reads it: the body in UTF-8, chunk by chunk, with the bytes of
//! the event being read counted so that no event grows past [`MAX_VALUE`] in memory.

use std::io::{self, BufRead, Read};

use bytes::Bytes;

use super::encoding::{Source, Transcoder};
use super::{over_event, Halt, MAX_VALUE};
use crate::body::{BodyReader, FILE_CHUNK};
use crate::scan::ScanError;

/// The body in UTF-8, chunk by chunk (a `BufRead` for quick-xml).
pub(super) struct Feed {
    reader: BodyReader,
    transcoder: Option<Transcoder>,
    out: Bytes,
    pos: usize,
    ended: bool,
    /// Bytes consumed since the current event began.
    pub(super) event: u64,
    /// The current event went over [`MAX_VALUE`].
    over: bool,
    /// Reading the body failed.
    failed: Option<io::Error>,
    /// Nothing was handed to quick-xml yet.
    start: bool,
}

impl Feed {
    pub(super) fn new(source: &Source) -> Self {
        Feed {
            reader: source.body.reader(FILE_CHUNK),
            transcoder: Transcoder::new(source.form),
            out: Bytes::new(),
            pos: 0,
            ended: false,
            event: 0,
            over: false,
            failed: None,
            start: true,
        }
    }

    /// Skips the byte order marks the document's text begins with. quick-xml skips one at the
    /// start of what it reads only when its first read holds all three bytes: done here, the
    /// answer does not depend on how the body is cut.
    fn skip_marks(&mut self) -> io::Result<()> {
        let mut head: Vec<u8> = Vec::new();
        loop {
            while head.len() < 3 && !self.ended {
                self.refill()?;
                head.extend_from_slice(&self.out[self.pos..]);
            }
            if !head.starts_with(&[0xef, 0xbb, 0xbf]) {
                break;
            }
            head.drain(..3);
        }
        self.out = Bytes::from(head);
        self.pos = 0;
        Ok(())
    }

    fn refill(&mut self) -> io::Result<()> {
        self.pos = 0;
        match self.reader.next_chunk_max(FILE_CHUNK) {
            None => {
                self.ended = true;
                let mut out = Vec::new();
                if let Some(t) = &mut self.transcoder {
                    t.finish(&mut out);
                }
                self.out = Bytes::from(out);
            }
            Some(Err(e)) => {
                self.ended = true;
                self.out = Bytes::new();
                self.failed = Some(e);
                return Err(io::Error::other("reading the body failed"));
            }
            Some(Ok(chunk)) => {
                self.out = match &mut self.transcoder {
                    None => chunk,
                    Some(t) => {
                        let mut out = Vec::with_capacity(chunk.len() * 2);
                        t.feed(&chunk, &mut out);
                        Bytes::from(out)
                    }
                }
            }
        }
        Ok(())
    }

    /// Why quick-xml failed: a limit, the body's reading, or the document itself.
    pub(super) fn failure(&mut self) -> Halt {
        if self.over {
            Halt::Error(over_event())
        } else if let Some(e) = self.failed.take() {
            Halt::Error(ScanError::Body(e))
        } else {
            Halt::Malformed
        }
    }
}

impl Read for Feed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for Feed {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.start {
            self.start = false;
            self.skip_marks()?;
        }
        while self.pos == self.out.len() && !self.ended {
            if self.event > MAX_VALUE {
                self.over = true;
                return Err(io::Error::other("an XML event over the limit"));
            }
            self.refill()?;
        }
        Ok(&self.out[self.pos..])
    }

    fn consume(&mut self, n: usize) {
        let n = n.min(self.out.len() - self.pos);
        self.pos += n;
        self.event += n as u64;
    }
}
