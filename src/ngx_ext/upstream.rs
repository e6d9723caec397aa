//! The servers of an nginx `upstream {}` group, read as plain values.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use ngx::ffi::*;
use ometascan_core::net::peer::PeerAddr;
use ometascan_core::upstream::balancer::PeerSpec;

use crate::ngx_ext::conf::text;

/// The servers of an upstream group as nginx initialised them: primaries, then backups;
/// `down` ones left out.
///
/// # Safety
/// `us` must be null or an upstream whose round-robin peers nginx has initialised.
pub unsafe fn upstream_peers(us: *mut ngx_http_upstream_srv_conf_t) -> Vec<PeerSpec> {
    let mut out = Vec::new();
    if us.is_null() {
        return out;
    }
    // SAFETY: us is an upstream whose round-robin peers nginx has initialised (caller): its
    // peer data is the primary list, in the configuration pool, not changed after.
    let mut group = unsafe { (*us).peer.data } as *mut ngx_http_upstream_rr_peers_t;
    let mut backup = false;
    while !group.is_null() {
        // SAFETY: group is a live list of peers.
        let (mut p, next) = unsafe { ((*group).peer, (*group).next) };
        while !p.is_null() {
            // SAFETY: p is a live peer of the group.
            let peer = unsafe { &*p };
            // SAFETY: p is an initialised peer: its sockaddr is null or `socklen` bytes of an
            // address of the family it declares.
            if let Some(spec) = unsafe { peer_spec(peer, backup) } {
                out.push(spec);
            }
            p = peer.next;
        }
        group = next;
        backup = true;
    }
    out
}

/// One server, unless it is `down` or its address is neither IP nor a local socket.
///
/// # Safety
/// `p` must be a peer nginx initialised.
unsafe fn peer_spec(p: &ngx_http_upstream_rr_peer_t, backup: bool) -> Option<PeerSpec> {
    if p.down != 0 {
        return None;
    }
    // SAFETY: an initialised peer's sockaddr is null or an address of the family it says.
    let addr = unsafe { peer_addr(p.sockaddr, p.socklen) }?;
    Some(PeerSpec {
        addr,
        name: text(&p.name),
        weight: p.weight.max(1) as u32,
        max_fails: p.max_fails as u32,
        fail_timeout: Duration::from_secs(p.fail_timeout.max(0) as u64),
        backup,
        max_conns: p.max_conns,
    })
}

/// # Safety
/// `sa` must be null or point to `len` bytes of a sockaddr of the family it declares.
unsafe fn peer_addr(sa: *const sockaddr, len: socklen_t) -> Option<PeerAddr> {
    if sa.is_null() {
        return None;
    }
    // SAFETY: sa is non-null and points to a sockaddr (caller), whose family comes first.
    let family = unsafe { (*sa).sa_family } as i32;
    match family {
        libc::AF_INET => {
            // SAFETY: the family says it is a sockaddr_in.
            let sin = unsafe { &*(sa as *const libc::sockaddr_in) };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::from((ip, u16::from_be(sin.sin_port))).into())
        }
        libc::AF_INET6 => {
            // SAFETY: the family says it is a sockaddr_in6.
            let sin6 = unsafe { &*(sa as *const libc::sockaddr_in6) };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::from((ip, u16::from_be(sin6.sin6_port))).into())
        }
        libc::AF_UNIX => {
            // SAFETY: the family says it is a sockaddr_un, of which nginx gave `len` bytes.
            local_path(unsafe { &*(sa as *const libc::sockaddr_un) }, len)
        }
        _ => None,
    }
}

/// The path of a local socket's address of `len` bytes (its NUL, if any, not included).
fn local_path(sun: &libc::sockaddr_un, len: socklen_t) -> Option<PeerAddr> {
    let offset = std::mem::offset_of!(libc::sockaddr_un, sun_path);
    let len = (len as usize)
        .saturating_sub(offset)
        .min(sun.sun_path.len());
    let path: Vec<u8> = sun.sun_path[..len]
        .iter()
        .map(|&c| c as u8)
        .take_while(|&b| b != 0)
        .collect();
    (!path.is_empty()).then(|| PeerAddr::local(std::ffi::OsStr::from_bytes(&path)))
}
