//! The handlers of the policy directives: what is not scanned (`ometascan_bypass`), what is
//! too large to scan (`ometascan_max_size`), what a failed scan means (`ometascan_on_error`),
//! and how many scans run at once (`ometascan_max_scans`).

use std::ffi::{c_char, c_void};

use ngx::ffi::*;

use ometascan_core::BodyLimits;

use super::{lcf, MaxScans, OnError, OverSize};
use crate::ngx_ext::conf::{conf_error, duplicate_check, text, time_param, Directive, CONF_OK};
use crate::ngx_ext::value::ComplexValue;

/// Largest `ometascan_max_scans` accepted.
const MAX_SCANS: usize = 100_000;

/// `ometascan_bypass string ...`: a request for which any value is non-empty and not "0" is
/// not scanned.
pub unsafe extern "C" fn set_bypass(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx calls a handler with the configuration being parsed and the command,
    // valid for the call, and (NGX_HTTP_LOC_CONF_OFFSET) this level's LocConf.
    let (d, c) = unsafe { (Directive::new(cf, cmd), lcf(conf)) };
    duplicate_check!(d, c.bypass);
    // SAFETY: cf is the configuration nginx passed to the handler.
    match unsafe { bypass_values(cf, &d) } {
        Some(values) => c.bypass = Some(values),
        None => return conf_error(),
    }
    CONF_OK
}

/// The arguments of a bypass directive, compiled as values that may hold variables.
///
/// # Safety
/// `cf` is the configuration being parsed, `d` its directive.
pub unsafe fn bypass_values(cf: *mut ngx_conf_t, d: &Directive) -> Option<Vec<ComplexValue>> {
    d.args[1..]
        .iter()
        // SAFETY: cf is the configuration being parsed (caller).
        .map(|v| unsafe { ComplexValue::compile(cf, v) })
        .collect()
}

/// `ometascan_max_size size [over=reject|pass]`.
pub unsafe extern "C" fn set_max_size(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx calls a handler with the configuration being parsed and the command,
    // valid for the call, and (NGX_HTTP_LOC_CONF_OFFSET) this level's LocConf.
    let (d, c) = unsafe { (Directive::new(cf, cmd), lcf(conf)) };
    duplicate_check!(d, c.max_size);
    match size_and_over(&d) {
        Ok(v) => c.max_size = Some(v),
        Err(e) => return e,
    }
    CONF_OK
}

/// `size [over=reject|pass]`; `Err` is the handler's answer.
pub fn size_and_over(d: &Directive) -> Result<(u64, OverSize), *mut c_char> {
    let mut v = d.args[1];
    // SAFETY: ngx_parse_offset only reads the string.
    let size = unsafe { ngx_parse_offset(&mut v) };
    if size <= 0 {
        return Err(d.invalid(&d.args[1], "it must be a size above zero"));
    }
    let over = match d.args.get(2).map(text).as_deref() {
        None | Some("over=reject") => OverSize::Reject,
        Some("over=pass") => OverSize::Pass,
        Some(_) => return Err(d.invalid(&d.args[2], "it must be \"over=reject\" or \"over=pass\"")),
    };
    Ok((size as u64, over))
}

/// `ometascan_on_error block | pass`.
pub unsafe extern "C" fn set_on_error(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx calls a handler with the configuration being parsed and the command,
    // valid for the call, and (NGX_HTTP_LOC_CONF_OFFSET) this level's LocConf.
    let (d, c) = unsafe { (Directive::new(cf, cmd), lcf(conf)) };
    duplicate_check!(d, c.on_error);
    c.on_error = Some(match d.args[1].as_bytes() {
        b"block" => OnError::Block,
        b"pass" => OnError::Pass,
        _ => return d.invalid(&d.args[1], "it must be \"block\" or \"pass\""),
    });
    CONF_OK
}

/// `ometascan_max_scans number [wait=time]`: at most `number` scans at once, per worker, in
/// the locations that inherit the directive from where it is written; a scan waits for its
/// turn at most `wait` (10s), then the client gets 503 with `Retry-After`.
pub unsafe extern "C" fn set_max_scans(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx calls a handler with the configuration being parsed and the command,
    // valid for the call, and (NGX_HTTP_LOC_CONF_OFFSET) this level's LocConf.
    let (d, c) = unsafe { (Directive::new(cf, cmd), lcf(conf)) };
    duplicate_check!(d, c.max_scans);
    let Some(max) = text(&d.args[1])
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=MAX_SCANS).contains(n))
    else {
        let why = format!("it must be a number from 1 to {MAX_SCANS}");
        return d.invalid(&d.args[1], &why);
    };
    let mut wait = ometascan_core::scan::options::DEFAULT_QUEUE_WAIT;
    if let Some(w) = d.args.get(2) {
        match time_param(w, "wait=") {
            Some(d) => wait = d,
            None => return d.invalid(w, "it must be \"wait=time\""),
        }
    }
    c.max_scans = Some(MaxScans {
        max,
        wait,
        id: super::next_id(),
    });
    CONF_OK
}

/// `ometascan_body_limits [parts=number] [part_header=size] [fields=number] [objects=number]
/// [decoded=size] [decode_time=time] [zstd_window=size] [depth=number]`:
/// the bounds of reading a body into its objects; a body over one is refused (413).
pub unsafe extern "C" fn set_body_limits(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx calls a handler with the configuration being parsed and the command,
    // valid for the call, and (NGX_HTTP_LOC_CONF_OFFSET) this level's LocConf.
    let (d, c) = unsafe { (Directive::new(cf, cmd), lcf(conf)) };
    duplicate_check!(d, c.body_limits);
    let mut limits = BodyLimits::default();
    for arg in &d.args[1..] {
        let t = text(arg);
        let Some((key, value)) = t.split_once('=') else {
            let why = "it must be \"parts=\", \"part_header=\", \"fields=\", \"objects=\", \
                       \"decoded=\", \"decode_time=\", \"zstd_window=\" or \"depth=\"";
            return d.invalid(arg, why);
        };
        let number = value
            .parse::<usize>()
            .ok()
            .filter(|&n| n > 0 && n <= 1 << 24);
        let size = {
            let mut v = ngx_str_t {
                len: value.len(),
                data: value.as_ptr() as *mut u8,
            };
            // SAFETY: ngx_parse_size only reads the string, which lives through this call.
            let n = unsafe { ngx_parse_size(&mut v) };
            (n > 0 && n <= 1 << 24).then_some(n as usize)
        };
        match key {
            "decoded" | "zstd_window" => {
                let max = if key == "decoded" {
                    1u64 << 40
                } else {
                    ometascan_core::body::decode::MAX_ZSTD_WINDOW
                };
                let mut v = ngx_str_t {
                    len: value.len(),
                    data: value.as_ptr() as *mut u8,
                };
                // SAFETY: ngx_parse_offset only reads the string, which lives through this call.
                let n = unsafe { ngx_parse_offset(&mut v) };
                let Some(n) = u64::try_from(n).ok().filter(|&n| n > 0 && n <= max) else {
                    let why = format!("it must be a size above zero and at most {max}");
                    return d.invalid(arg, &why);
                };
                if key == "decoded" {
                    limits.decode.max_bytes = n;
                } else {
                    limits.decode.zstd_window = n;
                }
                continue;
            }
            "decode_time" => {
                let mut v = ngx_str_t {
                    len: value.len(),
                    data: value.as_ptr() as *mut u8,
                };
                // SAFETY: ngx_parse_time only reads the string, which lives through this call.
                let ms = unsafe { ngx_parse_time(&mut v, 0) };
                let Some(ms) = u64::try_from(ms).ok().filter(|&ms| ms > 0) else {
                    return d.invalid(arg, "it must be a time above zero");
                };
                limits.decode.max_time = std::time::Duration::from_millis(ms);
                continue;
            }
            "depth" => {
                let max = ometascan_core::scan::options::MAX_DEPTH;
                let Some(n) = value.parse::<usize>().ok().filter(|&n| n > 0 && n <= max) else {
                    let why = format!("it must be a number from 1 to {max}");
                    return d.invalid(arg, &why);
                };
                limits.max_depth = n;
                continue;
            }
            _ => {}
        }
        let slot = match (key, number, size) {
            ("parts", Some(_), _) => &mut limits.multipart.max_parts,
            ("fields", Some(_), _) => &mut limits.max_fields,
            ("objects", Some(_), _) => &mut limits.max_objects,
            ("part_header", _, Some(_)) => &mut limits.multipart.max_header,
            _ => {
                let why = "it must be \"parts=N\", \"part_header=size\", \"fields=N\" or \
                           \"objects=N\", each above zero and at most 16777216";
                return d.invalid(arg, why);
            }
        };
        *slot = if key == "part_header" { size } else { number }.unwrap_or(1);
    }
    c.body_limits = Some(limits);
    CONF_OK
}
