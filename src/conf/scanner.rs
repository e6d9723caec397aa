//! What merging builds from a location's scanner directives (`ometascan_pass`, and
//! `ometascan_response_pass`): the TLS client (so that `nginx -t` reports a missing CA bundle
//! or a bad name), the servers of the scanner's group, and the health check registered for the
//! workers.

use std::sync::Arc;

use ngx::ffi::*;
use ometascan_core::net::tls::TlsClient;
use ometascan_core::upstream::balancer::{Balance, PeerSpec};
use ometascan_core::upstream::health::HealthSpec;

use super::options::tls_settings;
use super::{LocConf, Pass, PassTarget};
use crate::ngx_ext::balancing::{balancing, Method};
use crate::ngx_ext::conf::text;
use crate::ngx_ext::log::Merging;
use crate::ngx_ext::upstream::upstream_peers;

/// A scanner made ready for requests: its TLS client, its servers, how they are chosen.
pub struct Built {
    pub tls: Option<Arc<TlsClient>>,
    pub peers: Arc<Vec<PeerSpec>>,
    pub balance: Balance,
}

/// Builds the scanners of a merged location; `Err` is the message for `nginx -t`.
///
/// # Safety
/// `cf` is the configuration being merged; nginx's upstream groups are initialised.
pub unsafe fn build(cf: *mut ngx_conf_t, conf: &mut LocConf) -> Result<(), String> {
    if let Some(t) = conf.target() {
        let t = t.clone();
        // SAFETY: the caller's contract.
        conf.scanner = Some(unsafe { build_one(cf, conf, t) }?);
    }
    if let Some(Pass::Scan(t)) = &conf.response_pass {
        let t = t.as_ref().clone();
        // SAFETY: the caller's contract.
        conf.response_scanner = Some(unsafe { build_one(cf, conf, t) }?);
    }
    Ok(())
}

/// One scanner: the URL, as written, and its nginx upstream.
///
/// # Safety
/// As for [`build`].
unsafe fn build_one(
    cf: *mut ngx_conf_t,
    conf: &LocConf,
    PassTarget {
        url,
        group,
        shown,
        upstream,
    }: PassTarget,
) -> Result<Built, String> {
    let mut tls = None;
    if url.scheme.is_tls() {
        let client = TlsClient::new(tls_settings(conf, &url.host));
        client
            .config()
            .and_then(|_| client.server_name().map(|_| ()))
            .map_err(|e| format!("ometascan: TLS settings for \"{shown}\": {e}"))?;
        tls = Some(Arc::new(client));
    }
    // SAFETY: cf is the configuration being merged; upstream is one of its groups.
    let balance = unsafe { applied_balancing(cf, upstream, group) }?;
    // SAFETY: the upstream module initialised its groups before modules after it merge.
    let peers = unsafe { upstream_peers(upstream) };
    if peers.is_empty() {
        return Err(format!("ometascan: no usable servers for \"{shown}\""));
    }
    let peers = Arc::new(peers);
    if let Some(params) = &conf.health_check {
        let spec = HealthSpec {
            group,
            peers: peers.clone(),
            url,
            tls: tls.clone(),
            params: params.clone(),
        };
        // SAFETY: cf is the configuration being merged, inside the http block.
        match unsafe { super::main::configuring(cf) } {
            Some(main) => main.add_health_check(spec),
            None => return Err("no main configuration of the module".into()),
        }
    }
    Ok(Built {
        tls,
        peers,
        balance,
    })
}

/// The target's scanner as a scan takes it.
pub fn scan_target(target: &PassTarget, built: &Built) -> ometascan_core::Target {
    ometascan_core::Target {
        url: target.url.clone(),
        group: target.group,
        peers: built.peers.clone(),
        balance: built.balance,
    }
}
/// What of the scanner group's upstream block the module applies: its method when it is
/// round-robin or `least_conn`; anything else it would ignore stops `nginx -t`, by name, and a
/// `zone` is warned about (the module's balancing state is per worker process).
///
/// # Safety
/// `cf` is the configuration being merged; `upstream` one of its groups.
unsafe fn applied_balancing(
    cf: *mut ngx_conf_t,
    upstream: *mut ngx_http_upstream_srv_conf_t,
    group: usize,
) -> Result<Balance, String> {
    // SAFETY: cf is the configuration being merged and upstream one of its groups (caller).
    let found = unsafe { balancing(cf, upstream) };
    // SAFETY: the group is in the configuration pool, and so is its name.
    let name = text(unsafe { &(*upstream).host });
    if let Some(server) = found.resolved.first() {
        return Err(format!(
            "ometascan: server \"{server}\" of upstream \"{name}\" has \"resolve\", which \
             \"ometascan_pass\" does not apply (it reads the servers' addresses once, at start)"
        ));
    }
    let method = match found.method {
        Method::RoundRobin => Balance::RoundRobin,
        Method::LeastConn => Balance::LeastConn,
        Method::Other("keepalive") => {
            return Err(format!(
                "ometascan: \"keepalive\" in upstream \"{name}\" is not used by \
                 \"ometascan_pass\", which keeps its own connections to scanners \
                 (\"ometascan_keepalive\")"
            ))
        }
        Method::Other(method) => {
            return Err(format!(
                "ometascan: \"{method}\" in upstream \"{name}\" is not applied by \
                 \"ometascan_pass\" (it balances scanners round-robin or with \"least_conn\")"
            ))
        }
    };
    // SAFETY: cf is the configuration being merged, inside the http block.
    let first = unsafe { super::main::configuring(cf) }.is_some_and(|m| m.first_warning(group));
    if found.zone && first {
        let msg = format!(
            "ometascan: \"zone\" of upstream \"{name}\" is not shared by \"ometascan_pass\": \
             its balancing and failure counts are per worker process"
        );
        crate::warn!(Merging(cf), "{msg}");
    }
    Ok(method)
}
