//! ICAP (RFC 3507, `icap://`, `icaps://` scanners): the message codec and the client.

mod client;
pub mod codec;

pub use client::IcapClient;
