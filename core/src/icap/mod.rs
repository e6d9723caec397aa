//! ICAP (RFC 3507, `icap://`, `icaps://` scanners): the message codec, chunked bodies, and the client in
//! steps: the connection and its I/O, OPTIONS, the REQMOD exchange, the answer.

mod answer;
pub mod chunked;
mod client;
pub mod codec;
mod exchange;
mod io;
mod options;

pub use client::IcapClient;
