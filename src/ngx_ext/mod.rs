//! Every walk over nginx's raw structures the module needs, each behind a small function:
//! configuration arguments and errors, the request (its line, body, ctx slot, phases), request
//! headers, buffers and pool memory, pages sent to the client, upstream peers, and log lines
//! with request context.
//!
//! Functions on a request take ngx's `&Request` / `&mut Request`. One is made only where nginx
//! hands the module a request (a phase handler, the body handler, a request cleanup, a
//! variable's getter, the runtime's completion handler for a request whose slot is live), on
//! nginx's thread, and it does not outlive that call: the request is allocated and not freed
//! for as long as the reference lives, and so are its pool, connection, header lists, body and
//! configuration. The SAFETY lines below rely on that and say which of these memory is.

pub mod balancing;
pub mod body;
pub mod buf;
pub mod cell;
pub mod conf;
pub mod fd;
pub mod headers;
pub mod hooks;
pub mod log;
pub mod page;
pub mod pool;
pub mod request;
pub mod shm;
pub mod upstream;
pub mod value;
