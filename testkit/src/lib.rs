//! Test doubles and harness for the module's integration tests and the demo.
//!
//! - [`ScannerDouble`]: a scanner speaking the HTTP scan protocol, scriptable per request.
//! - [`Backend`]: an HTTP/1.1 server that records exactly what it received.
//! - [`Nginx`]: runs the real nginx binary with the module in a private prefix.
//! - [`client`]: a raw HTTP/1.x client with full control over framing.

pub mod backend;
pub mod cicap;
pub mod client;
pub mod http1;
pub mod icap_double;
pub mod nginx;
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

/// 64-bit FNV-1a, to compare large bodies without keeping them.
pub fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for &b in data {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// Incremental FNV-1a.
#[derive(Debug, Clone, Copy)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf29ce484222325)
    }
}

impl Fnv {
    pub fn update(&mut self, data: &[u8]) {
        for &b in data {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(0x100000001b3);
        }
    }

    pub fn finish(&self) -> u64 {
        self.0
    }
}

/// Whether `hay` contains `needle`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}
