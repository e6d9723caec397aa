//! Whether nginx's not-modified filter (after the module's in the chain) will answer a
//! conditional request with `304`, which has no body to scan. The same tests as that filter,
//! read from the request and the response head; when in doubt, the answer is "no" and the
//! response is held and scanned.

use ngx::ffi::*;
use ngx::http::{HttpModuleLocationConf, NgxHttpCoreModule, Request};

use crate::ngx_ext::headers::{conditional, parse_http_time};

/// `if_modified_since` of the core location configuration.
const IMS_OFF: ngx_uint_t = 0;
const IMS_EXACT: ngx_uint_t = 1;

pub fn will_be_not_modified(r: &Request) -> bool {
    let c = conditional(r);
    // Preconditions that may fail (412) are left to nginx, after the scan.
    if c.preconditions || r.as_ref().disable_not_modified() != 0 {
        return false;
    }
    if c.if_modified_since.is_none() && c.if_none_match.is_none() {
        return false;
    }
    if let Some(ims) = c.if_modified_since {
        if modified_since(r, ims, c.last_modified) {
            return false;
        }
    }
    if let Some(inm) = c.if_none_match {
        if !none_match_fails(inm, c.etag) {
            return false;
        }
    }
    true
}

/// As nginx tests `If-Modified-Since`: modified unless the date is the last modification
/// (`if_modified_since exact`) or not before it (`before`).
fn modified_since(r: &Request, ims: &[u8], last_modified: time_t) -> bool {
    let mode = NgxHttpCoreModule::location_conf(r).map_or(IMS_EXACT, |c| c.if_modified_since);
    if last_modified == -1 || mode == IMS_OFF {
        return true;
    }
    let t = parse_http_time(ims);
    if mode == IMS_EXACT {
        t != last_modified
    } else {
        t < last_modified
    }
}

/// Whether `If-None-Match` names the response's entity tag (weak comparison), or is `*`.
fn none_match_fails(list: &[u8], etag: Option<&[u8]>) -> bool {
    let Some(etag) = etag else {
        return false;
    };
    if list.trim_ascii() == b"*" {
        return true;
    }
    let weakless = |t: &[u8]| -> Vec<u8> {
        let t = t.trim_ascii();
        t.strip_prefix(b"W/").unwrap_or(t).to_vec()
    };
    let want = weakless(etag);
    list.split(|&b| b == b',').any(|t| weakless(t) == want)
}

#[cfg(test)]
mod tests {
    use super::none_match_fails;

    #[test]
    fn entity_tags_compare_weakly_and_star_matches_any() {
        assert!(none_match_fails(b"\"a\"", Some(b"\"a\"")));
        assert!(none_match_fails(b"W/\"a\"", Some(b"\"a\"")));
        assert!(none_match_fails(b"\"x\", \"a\"", Some(b"W/\"a\"")));
        assert!(none_match_fails(b"*", Some(b"\"a\"")));
        assert!(!none_match_fails(b"\"b\"", Some(b"\"a\"")));
        assert!(!none_match_fails(b"*", None));
    }
}
