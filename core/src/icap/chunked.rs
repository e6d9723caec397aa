//! ICAP's chunked bodies (RFC 3507 §4.5: HTTP chunking, with the `ieof` extension on the last
//! chunk): the decoder of a scanner's body, and the chunk-size line of what is sent.

use crate::icap::codec::IcapError;

/// Longest chunk-size line (size and extensions, `ieof` among them) accepted.
pub const MAX_CHUNK_LINE: usize = 1024;

/// Incremental decoder of an ICAP chunked body (RFC 3507 §4.5: HTTP chunking, with the
/// `ieof` extension on the last chunk).
#[derive(Debug, Default)]
pub struct ChunkDecoder {
    /// Bytes left in the current chunk, plus its CRLF once data is done.
    remaining: usize,
    in_data: bool,
    done: bool,
}

/// What [`ChunkDecoder::decode`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// Body data at `range` of the input.
    Data(std::ops::Range<usize>),
    /// The last chunk was read.
    End,
    /// More input is needed.
    NeedMore,
}

impl ChunkDecoder {
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Decodes from `buf`, returning what was found and how many bytes of `buf` it used.
    pub fn decode(&mut self, buf: &[u8]) -> Result<(Decoded, usize), IcapError> {
        if self.done {
            return Ok((Decoded::End, 0));
        }
        if self.in_data {
            if self.remaining > 0 {
                if buf.is_empty() {
                    return Ok((Decoded::NeedMore, 0));
                }
                let n = self.remaining.min(buf.len());
                self.remaining -= n;
                return Ok((Decoded::Data(0..n), n));
            }
            // Data done: expect CRLF.
            if buf.len() < 2 {
                return Ok((Decoded::NeedMore, 0));
            }
            if &buf[..2] != b"\r\n" {
                return Err(IcapError::Chunk);
            }
            self.in_data = false;
            return Ok((Decoded::NeedMore, 2));
        }
        // The same limit whether the line comes whole or in pieces.
        let window = &buf[..buf.len().min(MAX_CHUNK_LINE + 1)];
        let Some(eol) = window.iter().position(|&b| b == b'\n') else {
            if buf.len() > MAX_CHUNK_LINE {
                return Err(IcapError::Chunk);
            }
            return Ok((Decoded::NeedMore, 0));
        };
        let line = std::str::from_utf8(&buf[..eol]).map_err(|_| IcapError::Chunk)?;
        let line = line.strip_suffix('\r').unwrap_or(line);
        // Hex digits only (`from_str_radix` would take a sign), then white space before any
        // extension.
        let size_text = line
            .split(';')
            .next()
            .unwrap_or("")
            .trim_end_matches([' ', '\t']);
        if size_text.is_empty()
            || size_text.len() > 15
            || !size_text.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(IcapError::Chunk);
        }
        let size = usize::from_str_radix(size_text, 16).map_err(|_| IcapError::Chunk)?;
        if size == 0 {
            // Last chunk: an empty line (no trailers are used in ICAP bodies) must follow.
            let rest = &buf[eol + 1..];
            if rest.len() < 2 && rest.first() != Some(&b'\n') {
                return Ok((Decoded::NeedMore, 0));
            }
            let used = if rest.starts_with(b"\r\n") {
                2
            } else if rest.starts_with(b"\n") {
                1
            } else {
                return Err(IcapError::Chunk);
            };
            self.done = true;
            return Ok((Decoded::End, eol + 1 + used));
        }
        self.remaining = size;
        self.in_data = true;
        Ok((Decoded::NeedMore, eol + 1))
    }
}

/// The chunk-size line for `n` bytes.
pub fn chunk_header(n: usize) -> Vec<u8> {
    format!("{n:x}\r\n").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` to a fresh decoder in pieces of `cut` bytes; the body, or the error.
    fn dechunk(input: &[u8], cut: usize) -> Result<Vec<u8>, IcapError> {
        let mut d = ChunkDecoder::default();
        let (mut out, mut pending, mut fed) = (Vec::new(), Vec::new(), 0);
        loop {
            let (found, used) = d.decode(&pending)?;
            if let Decoded::Data(r) = &found {
                out.extend_from_slice(&pending[r.clone()]);
            }
            pending.drain(..used);
            match found {
                Decoded::End => return Ok(out),
                Decoded::NeedMore if used == 0 => {
                    if fed == input.len() {
                        return Err(IcapError::Chunk);
                    }
                    let next = (fed + cut).min(input.len());
                    pending.extend_from_slice(&input[fed..next]);
                    fed = next;
                }
                _ => {}
            }
        }
    }

    #[test]
    fn chunk_sizes_are_hex_digits_only_and_the_line_limit_holds_however_it_is_cut() {
        assert_eq!(
            dechunk(b"5\r\nhello\r\n0; ieof\r\n\r\n", 3).unwrap(),
            b"hello"
        );
        assert_eq!(
            dechunk(b"5 ;x\r\nhello\r\n0\r\n\r\n", 100).unwrap(),
            b"hello"
        );
        for bad in [
            &b"+5\r\nhello\r\n0\r\n\r\n"[..],
            b"-0\r\n\r\n",
            b" 5\r\nhello\r\n0\r\n\r\n",
        ] {
            for cut in [1, 2, 100] {
                assert!(dechunk(bad, cut).is_err(), "{bad:?} cut {cut}");
            }
        }
        let mut long = b"5;".to_vec();
        long.extend(std::iter::repeat_n(b'x', MAX_CHUNK_LINE));
        long.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
        let mut ok = b"5;".to_vec();
        ok.extend(std::iter::repeat_n(b'x', MAX_CHUNK_LINE - 3));
        ok.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
        for cut in [1, 7, 512, 4096] {
            assert!(dechunk(&long, cut).is_err(), "cut {cut}");
            assert_eq!(dechunk(&ok, cut).unwrap(), b"hello", "cut {cut}");
        }
    }

    #[test]
    fn chunk_decoding_across_splits() {
        let wire = b"5\r\nhello\r\n3; ext\r\nabc\r\n0; ieof\r\n\r\n";
        for split in 0..wire.len() {
            let mut d = ChunkDecoder::default();
            let mut out = Vec::new();
            let mut buf: Vec<u8> = wire[..split].to_vec();
            let mut fed = split;
            loop {
                let (what, used) = d.decode(&buf).unwrap();
                if let Decoded::Data(r) = &what {
                    out.extend_from_slice(&buf[r.clone()]);
                }
                buf.drain(..used);
                match what {
                    Decoded::End => break,
                    Decoded::NeedMore if used == 0 => {
                        assert!(fed < wire.len(), "stuck at split {split}");
                        buf.extend_from_slice(&wire[fed..]);
                        fed = wire.len();
                    }
                    _ => {}
                }
            }
            assert_eq!(out, b"helloabc", "split {split}");
            assert!(buf.is_empty());
        }
        let mut d = ChunkDecoder::default();
        assert!(d.decode(b"zz\r\n").is_err());
        let mut d = ChunkDecoder::default();
        let (_, n) = d.decode(b"2\r\nab").unwrap();
        let (_, m) = d.decode(&b"2\r\nabXY"[n..]).unwrap();
        assert!(d.decode(&b"2\r\nabXY"[n + m..]).is_err());
    }
}
