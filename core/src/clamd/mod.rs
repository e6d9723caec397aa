//! ClamAV's clamd as the scanner, in its own protocol: the body (or each object of it) sent
//! with `zINSTREAM` in length-prefixed chunks on a connection of its own, the `FOUND` line
//! turned into a block with the module's page, the signature database's version (`zVERSION`)
//! as the state verdicts are cached under, `zPING` for health checks ([`reply`] reads the
//! answers). With `ometascan_clamd_fildes on`, an object is handed to a clamd on a local
//! socket as a file descriptor ([`fildes`]).

pub mod client;
pub mod fildes;
pub mod reply;

pub use client::ClamdClient;
