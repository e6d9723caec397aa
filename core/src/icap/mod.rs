//! ICAP (RFC 3507, `icap://`, `icaps://` scanners): the message codec, and the client in
//! steps: the connection and its I/O, OPTIONS, the REQMOD exchange, the answer.

mod answer;
mod client;
pub mod codec;
mod exchange;
mod io;
mod options;

pub use client::IcapClient;
