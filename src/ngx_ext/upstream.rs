//! The servers of an nginx `upstream {}` group, read as plain values.

use std::time::Duration;

use ngx::ffi::*;
use ometascan_core::upstream::balancer::PeerSpec;

use crate::ngx_ext::conf::text;

/// The servers of an upstream group as nginx initialised them: primaries, then backups;
/// `down` ones left out.
///
/// # Safety
/// `us` must be an upstream whose round-robin peers nginx has initialised.
pub unsafe fn upstream_peers(us: *mut ngx_http_upstream_srv_conf_t) -> Vec<PeerSpec> {
    let mut out = Vec::new();
    // SAFETY: per the contract, the peer lists are valid and read-only.
    unsafe {
        if us.is_null() {
            return out;
        }
        let mut group = (*us).peer.data as *mut ngx_http_upstream_rr_peers_t;
        let mut backup = false;
        while !group.is_null() {
            let mut p = (*group).peer;
            while !p.is_null() {
                if (*p).down == 0 {
                    if let Some(addr) = sockaddr_to_std((*p).sockaddr) {
                        out.push(PeerSpec {
                            addr,
                            name: text(&(*p).name),
                            weight: (*p).weight.max(1) as u32,
                            max_fails: (*p).max_fails as u32,
                            fail_timeout: Duration::from_secs((*p).fail_timeout.max(0) as u64),
                            backup,
                        });
                    }
                }
                p = (*p).next;
            }
            group = (*group).next;
            backup = true;
        }
    }
    out
}

unsafe fn sockaddr_to_std(sa: *const sockaddr) -> Option<std::net::SocketAddr> {
    // SAFETY: sa points to a sockaddr of the family it declares.
    unsafe {
        if sa.is_null() {
            return None;
        }
        match (*sa).sa_family as i32 {
            libc::AF_INET => {
                let sin = &*(sa as *const libc::sockaddr_in);
                let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                Some(std::net::SocketAddr::from((ip, u16::from_be(sin.sin_port))))
            }
            libc::AF_INET6 => {
                let sin6 = &*(sa as *const libc::sockaddr_in6);
                let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                Some(std::net::SocketAddr::from((
                    ip,
                    u16::from_be(sin6.sin6_port),
                )))
            }
            _ => None,
        }
    }
}
