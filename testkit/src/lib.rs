//! Test doubles and harness for the module's integration tests and the demo.
//!
//! - [`ScannerDouble`]: a scanner speaking the HTTP scan protocol, scriptable per request.
//! - [`Backend`]: an HTTP/1.1 server that records exactly what it received.
//! - [`Nginx`]: runs the real nginx binary with the module in a private prefix.
//! - [`client`]: a raw HTTP/1.x client with full control over framing.

pub mod backend;
pub mod cicap;
pub mod clamd;
pub mod client;
pub mod http1;
pub mod icap_double;
pub mod nginx;
pub mod redis;
pub mod scanner;
pub mod tls;

pub use backend::Backend;
pub use nginx::Nginx;
pub use scanner::{Action, ScannerDouble};

/// The EICAR anti-virus test string.
pub const EICAR: &[u8] = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

/// Deterministic pseudo-random bytes (xorshift), for bodies that compress badly.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A fast 64-bit hash of a whole body, to compare large bodies without keeping them.
pub fn fnv1a(data: &[u8]) -> u64 {
    let mut h = Fnv::default();
    h.update(data);
    h.finish()
}

/// Incremental body hash: eight bytes at a time (FNV-style mixing), the same result however
/// the body is split.
#[derive(Debug, Clone, Copy)]
pub struct Fnv {
    h: u64,
    pending: [u8; 8],
    n: usize,
    len: u64,
}

impl Default for Fnv {
    fn default() -> Self {
        Fnv {
            h: 0xcbf29ce484222325,
            pending: [0; 8],
            n: 0,
            len: 0,
        }
    }
}

impl Fnv {
    fn mix(&mut self, word: u64) {
        self.h = (self.h ^ word).wrapping_mul(0x100000001b3).rotate_left(29);
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if self.n > 0 {
            let take = (8 - self.n).min(data.len());
            self.pending[self.n..self.n + take].copy_from_slice(&data[..take]);
            self.n += take;
            data = &data[take..];
            if self.n < 8 {
                return;
            }
            let w = u64::from_le_bytes(self.pending);
            self.mix(w);
            self.n = 0;
        }
        let mut chunks = data.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.mix(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        self.pending[..rest.len()].copy_from_slice(rest);
        self.n = rest.len();
    }

    pub fn finish(&self) -> u64 {
        let mut h = *self;
        if h.n > 0 {
            let mut w = [0u8; 8];
            w[..h.n].copy_from_slice(&h.pending[..h.n]);
            h.mix(u64::from_le_bytes(w));
        }
        h.mix(h.len);
        h.h
    }
}

/// Whether `hay` contains `needle`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && memchr::memmem::find(hay, needle).is_some()
}

/// Looks for a needle in a body that arrives in pieces (the needle may straddle two).
#[derive(Debug, Clone)]
pub struct StreamFind {
    needle: &'static [u8],
    tail: Vec<u8>,
    found: bool,
}

impl StreamFind {
    pub fn new(needle: &'static [u8]) -> Self {
        StreamFind {
            needle,
            tail: Vec::new(),
            found: false,
        }
    }

    pub fn update(&mut self, piece: &[u8]) {
        if self.found || self.needle.is_empty() {
            return;
        }
        let keep = self.needle.len() - 1;
        // The bytes around the boundary, then the piece itself.
        let head = &piece[..piece.len().min(keep)];
        let mut seam = std::mem::take(&mut self.tail);
        seam.extend_from_slice(head);
        self.found = contains(&seam, self.needle) || contains(piece, self.needle);
        if piece.len() >= keep {
            self.tail = piece[piece.len() - keep..].to_vec();
        } else {
            let start = seam.len().saturating_sub(keep);
            self.tail = seam[start..].to_vec();
        }
    }

    pub fn found(&self) -> bool {
        self.found
    }
}

/// `data` as one zstd frame (HTTP's `Content-Encoding: zstd`).
pub fn zstd(data: &[u8]) -> Vec<u8> {
    ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
}

#[cfg(test)]
mod tests {
    #[test]
    fn stream_find_sees_a_needle_split_anywhere() {
        let mut body = super::random_bytes(300, 9);
        body.splice(100..100, super::EICAR.iter().copied());
        for split in 0..body.len() {
            for step in [1, 3, 50, 1000] {
                let mut f = super::StreamFind::new(super::EICAR);
                f.update(&body[..split]);
                for c in body[split..].chunks(step) {
                    f.update(c);
                }
                assert!(f.found(), "split {split} step {step}");
            }
        }
        let mut f = super::StreamFind::new(super::EICAR);
        for c in super::random_bytes(5000, 2).chunks(7) {
            f.update(c);
        }
        assert!(!f.found());
    }

    #[test]
    fn hash_is_split_independent() {
        let data = super::random_bytes(1000, 3);
        let whole = super::fnv1a(&data);
        for split in [0, 1, 7, 8, 9, 500, 999, 1000] {
            let mut h = super::Fnv::default();
            h.update(&data[..split]);
            h.update(&data[split..]);
            assert_eq!(h.finish(), whole, "split {split}");
        }
        assert_ne!(super::fnv1a(b"a"), super::fnv1a(b"a\0"));
    }
}
