//! Every walk over nginx's raw structures the module needs, each behind a small function with
//! its own safety contract: configuration arguments and errors, request headers, buffers and
//! pool memory, pages sent to the client, upstream peers, and log lines with request context.

pub mod buf;
pub mod conf;
pub mod headers;
pub mod log;
pub mod page;
pub mod pool;
pub mod upstream;
