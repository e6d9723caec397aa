//! What merging builds from a location's scanner directives: the TLS client (so that
//! `nginx -t` reports a missing CA bundle or a bad name), the servers of the scanner's group,
//! and the health check registered for the workers.

use std::sync::Arc;

use ngx::ffi::*;
use ometascan_core::net::tls::TlsClient;
use ometascan_core::upstream::health::HealthSpec;

use super::settings::tls_settings;
use super::LocConf;
use crate::ngx_ext::upstream::upstream_peers;

/// Builds the scanner setup of a merged location; `Err` is the message for `nginx -t`.
///
/// # Safety
/// `cf` is the configuration being merged; nginx's upstream groups are initialised.
pub unsafe fn build(cf: *mut ngx_conf_t, conf: &mut LocConf) -> Result<(), String> {
    let Some((url, shown, upstream)) = conf
        .target()
        .map(|t| (t.url.clone(), t.shown.clone(), t.upstream))
    else {
        return Ok(());
    };
    if url.scheme.is_tls() {
        let client = TlsClient::new(tls_settings(conf, &url.host));
        client
            .config()
            .and_then(|_| client.server_name().map(|_| ()))
            .map_err(|e| format!("ometascan: TLS settings for \"{shown}\": {e}"))?;
        conf.tls = Some(Arc::new(client));
    }
    // SAFETY: the upstream module initialised its groups before modules after it merge.
    let peers = unsafe { upstream_peers(upstream) };
    if peers.is_empty() {
        return Err(format!("ometascan: no usable servers for \"{shown}\""));
    }
    let peers = Arc::new(peers);
    if let Some(params) = &conf.health_check {
        let spec = HealthSpec {
            group: upstream as usize,
            peers: peers.clone(),
            url,
            tls: conf.tls.clone(),
            params: params.clone(),
        };
        // SAFETY: cf is the configuration being merged, inside the http block.
        match unsafe { super::main::configuring(cf) } {
            Some(main) => main.add_health_check(spec),
            None => return Err("no main configuration of the module".into()),
        }
    }
    conf.peers = Some(peers);
    Ok(())
}
