//! `ometascan_pieces`: the protocol in which the backend assembles files uploaded in pieces,
//! and the spool where the module keeps its own copy of each upload in progress.

use std::ffi::{c_char, c_void};
use std::time::Duration;

use ngx::ffi::*;
use ometascan_core::pieces::{Spool, SpoolLimits};

use super::lcf;
use crate::ngx_ext::conf::{
    compile_complex, conf_error, duplicate_check, parse_time, text, Directive, CONF_OK,
};

/// Where a chunking uploader's piece says what it is: a form field, or a value nginx
/// evaluates (`$arg_resumableIdentifier`).
#[derive(Debug, Clone)]
pub enum FieldSource {
    Field(String),
    Value(*mut ngx_http_complex_value_t),
}

/// `fields`: the upload's key, the piece's offset, the file's length.
#[derive(Debug, Clone)]
pub struct FieldsConf {
    pub key: FieldSource,
    pub offset: FieldSource,
    pub total: FieldSource,
}

/// A location's uploads in pieces.
#[derive(Debug, Clone)]
pub struct Pieces {
    /// tus 1.0.
    pub tus: bool,
    /// `Content-Range` on `PUT` and `PATCH`.
    pub range: bool,
    /// S3's multipart uploads.
    pub s3: bool,
    /// Chunking uploaders that describe their pieces in fields or arguments.
    pub fields: Option<FieldsConf>,
    pub spool: Spool,
}

/// `ometascan_pieces tus | content_range | s3 | fields ... spool=path [key=.. offset=.. total=..] [size=size] [uploads=number]
/// [expire=time] | off`.
pub unsafe extern "C" fn set_pieces(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx calls a handler with the configuration being parsed and the command,
    // valid for the call, and (NGX_HTTP_LOC_CONF_OFFSET) this level's LocConf.
    let (d, c) = unsafe { (Directive::new(cf, cmd), lcf(conf)) };
    duplicate_check!(d, c.pieces);
    if d.args.len() == 2 && text(&d.args[1]) == "off" {
        c.pieces = Some(None);
        return CONF_OK;
    }
    let (mut tus, mut range, mut s3, mut fields) = (false, false, false, false);
    let (mut key_src, mut offset_src, mut total_src) = (None, None, None);
    let mut limits = SpoolLimits::default();
    let mut dir = None;
    for arg in &d.args[1..] {
        let t = text(arg);
        match t.as_str() {
            "tus" if !tus => {
                tus = true;
                continue;
            }
            "content_range" if !range => {
                range = true;
                continue;
            }
            "s3" if !s3 => {
                s3 = true;
                continue;
            }
            "fields" if !fields => {
                fields = true;
                continue;
            }
            _ => {}
        }
        let Some((key, value)) = t.split_once('=') else {
            return d.invalid(
                arg,
                "it must be \"spool=\", \"size=\", \"uploads=\" or \"expire=\"",
            );
        };
        match key {
            "spool" => {
                let path = std::path::PathBuf::from(value);
                if !path.is_absolute() || !path.is_dir() {
                    return d.invalid(
                        arg,
                        "the spool must be an existing directory, by its full path",
                    );
                }
                dir = Some(path);
            }
            "size" => match size(value) {
                Some(n) => limits.max_upload = n,
                None => return d.invalid(arg, "it must be a size above zero"),
            },
            "uploads" => match value.parse::<usize>() {
                Ok(n) if n > 0 && n <= 10_000_000 => limits.max_uploads = n,
                _ => return d.invalid(arg, "it must be a number from 1 to 10000000"),
            },
            "key" | "offset" | "total" => {
                let source = if value.starts_with('$') {
                    // SAFETY: cf is the configuration nginx passed to the handler.
                    match unsafe { compile_complex(cf, &after_eq(arg)) } {
                        Some(cv) => FieldSource::Value(cv),
                        None => return conf_error(),
                    }
                } else if value.is_empty() {
                    return d.invalid(arg, "it must name a form field or hold a variable");
                } else {
                    FieldSource::Field(value.to_string())
                };
                let slot = match key {
                    "key" => &mut key_src,
                    "offset" => &mut offset_src,
                    _ => &mut total_src,
                };
                *slot = Some(source);
            }
            "expire" => match time(value) {
                Some(t) => limits.expire = t,
                None => return d.invalid(arg, "it must be a time above zero"),
            },
            _ => {
                return d.invalid(
                    arg,
                    "it must be \"spool=\", \"size=\", \"uploads=\" or \"expire=\"",
                )
            }
        }
    }
    if !tus && !range && !s3 && !fields {
        return d.fail(
            "a protocol is required: \"tus\", \"content_range\", \"s3\", \"fields\" (or \"off\")",
        );
    }
    let fields = match (fields, key_src, offset_src, total_src) {
        (true, Some(key), Some(offset), Some(total)) => Some(FieldsConf { key, offset, total }),
        (false, None, None, None) => None,
        (true, ..) => return d.fail("\"fields\" needs \"key=\", \"offset=\" and \"total=\""),
        (false, ..) => return d.fail("\"key=\", \"offset=\" and \"total=\" go with \"fields\""),
    };
    let Some(dir) = dir else {
        return d.fail("\"spool=\" is required: the directory where uploads in progress are kept");
    };
    c.pieces = Some(Some(Pieces {
        tus,
        range,
        s3,
        fields,
        spool: Spool::new(dir, limits),
    }));
    CONF_OK
}

fn size(value: &str) -> Option<u64> {
    let mut v = ngx_str_t {
        len: value.len(),
        data: value.as_ptr() as *mut u8,
    };
    // SAFETY: ngx_parse_offset only reads the string, which lives through this call.
    let n = unsafe { ngx_parse_offset(&mut v) };
    u64::try_from(n).ok().filter(|&n| n > 0)
}

fn time(value: &str) -> Option<Duration> {
    parse_time(&ngx_str_t {
        len: value.len(),
        data: value.as_ptr() as *mut u8,
    })
}

/// The part of a `name=value` argument after `=`, in the argument's own memory (the
/// configuration pool, which the compiled value may point into).
fn after_eq(arg: &ngx_str_t) -> ngx_str_t {
    let bytes = arg.as_bytes();
    let at = bytes
        .iter()
        .position(|&b| b == b'=')
        .map_or(bytes.len(), |i| i + 1);
    ngx_str_t {
        len: bytes.len() - at,
        // at <= len: a pointer within the argument (or just past it, for an empty value).
        data: arg.data.wrapping_add(at),
    }
}
