//! The HTTP scan protocol (`http://`, `https://` scanners): the client's request goes to the
//! scanner as an HTTP/1.1 request, and the scanner's answer is the verdict. See
//! `docs/protocol.md`.

pub mod answer;
mod client;
pub mod request;

pub use client::HttpClient;
