//! `ometascan_pieces`: the protocol in which the backend assembles files uploaded in pieces,
//! and the spool where the module keeps its own copy of each upload in progress.

use std::ffi::{c_char, c_void};
use std::time::Duration;

use ngx::ffi::*;
use ometascan_core::pieces::{Spool, SpoolLimits};

use super::lcf;
use crate::ngx_ext::conf::{conf_error, duplicate_check, parse_time, text, Directive, CONF_OK};
use crate::ngx_ext::value::ComplexValue;

/// Where a chunking uploader's piece says what it is: a form field, or a value nginx
/// evaluates (`$arg_resumableIdentifier`).
#[derive(Debug, Clone)]
pub enum FieldSource {
    Field(String),
    Value(ComplexValue),
}

/// Where a piece is: its offset, or its number (from 0 or from 1) and the chunk size.
#[derive(Debug, Clone)]
pub enum PlaceConf {
    Offset(FieldSource),
    Numbered {
        number: FieldSource,
        first: u64,
        chunk: FieldSource,
    },
}

/// How big the file is: in bytes, or in pieces.
#[derive(Debug, Clone)]
pub enum SizeConf {
    Bytes(FieldSource),
    Pieces(FieldSource),
}

/// `fields`: the upload's key, the piece's place, the file's size; `parallel`: pieces may
/// come in any order.
#[derive(Debug, Clone)]
pub struct FieldsConf {
    pub key: FieldSource,
    pub place: PlaceConf,
    pub size: SizeConf,
    pub parallel: bool,
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

/// `ometascan_pieces tus | content_range | s3 | fields [parallel] ... spool=path [key=..
/// offset=.. | index=.. chunk=.. | number=.. chunk=.. total=.. | count=..] [size=size]
/// [space=size] [uploads=number] [expire=time] | off`.
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
    let mut p = Parsed::default();
    for arg in &d.args[1..] {
        // SAFETY: cf is the configuration nginx passed to this handler.
        if let Err(e) = unsafe { p.arg(cf, &d, arg) } {
            return e;
        }
    }
    let pieces = match p.finish(&d) {
        Ok(pieces) => pieces,
        Err(e) => return e,
    };
    // SAFETY: cf is the configuration nginx passed to this handler, within the http block.
    let Some(main) = (unsafe { crate::conf::main::configuring(cf) }) else {
        return conf_error();
    };
    if !main.spools.iter().any(|s| s.dir() == pieces.spool.dir()) {
        main.spools.push(pieces.spool.clone());
    }
    c.pieces = Some(Some(pieces));
    CONF_OK
}

const ARGS: &str = "it must be \"tus\", \"content_range\", \"s3\", \"fields\", \"parallel\", \
                    \"spool=\", \"key=\", \"offset=\", \"index=\", \"number=\", \"chunk=\", \
                    \"total=\", \"count=\", \"size=\", \"space=\", \"uploads=\" or \"expire=\", each once";

/// The names of a piece's description, in the order of `Parsed::sources`.
const SOURCES: [&str; 7] = [
    "key", "offset", "index", "number", "chunk", "total", "count",
];

/// The directive's arguments as they are read.
#[derive(Default)]
struct Parsed {
    tus: bool,
    range: bool,
    s3: bool,
    fields: bool,
    parallel: bool,
    sources: [Option<FieldSource>; 7],
    limits: SpoolLimits,
    dir: Option<std::path::PathBuf>,
}

impl Parsed {
    /// Reads one argument.
    ///
    /// # Safety
    /// `cf` is the configuration being parsed.
    unsafe fn arg(
        &mut self,
        cf: *mut ngx_conf_t,
        d: &Directive,
        arg: &ngx_str_t,
    ) -> Result<(), *mut c_char> {
        let t = text(arg);
        let flag = match t.as_str() {
            "tus" => Some(&mut self.tus),
            "content_range" => Some(&mut self.range),
            "s3" => Some(&mut self.s3),
            "fields" => Some(&mut self.fields),
            "parallel" => Some(&mut self.parallel),
            _ => None,
        };
        if let Some(flag) = flag {
            if *flag {
                return Err(d.invalid(arg, ARGS));
            }
            *flag = true;
            return Ok(());
        }
        let Some((key, value)) = t.split_once('=') else {
            return Err(d.invalid(arg, ARGS));
        };
        match key {
            "spool" => {
                let path = std::path::PathBuf::from(value);
                if !path.is_absolute() || !path.is_dir() {
                    let why = "the spool must be an existing directory, by its full path";
                    return Err(d.invalid(arg, why));
                }
                self.dir = Some(path);
            }
            "size" => {
                let n =
                    size(value).ok_or_else(|| d.invalid(arg, "it must be a size above zero"))?;
                self.limits.max_upload = n;
            }
            "space" => {
                let n =
                    size(value).ok_or_else(|| d.invalid(arg, "it must be a size above zero"))?;
                self.limits.max_space = n;
            }
            "uploads" => match value.parse::<usize>() {
                Ok(n) if n > 0 && n <= 10_000_000 => self.limits.max_uploads = n,
                _ => return Err(d.invalid(arg, "it must be a number from 1 to 10000000")),
            },
            "expire" => {
                let t =
                    time(value).ok_or_else(|| d.invalid(arg, "it must be a time above zero"))?;
                self.limits.expire = t;
            }
            _ if SOURCES.contains(&key) => {
                let at = SOURCES.iter().position(|k| *k == key).unwrap_or(0);
                if self.sources[at].is_some() {
                    return Err(d.invalid(arg, ARGS));
                }
                // SAFETY: cf is the configuration being parsed (caller).
                self.sources[at] = Some(unsafe { source(cf, d, arg, value) }?);
            }
            _ => return Err(d.invalid(arg, ARGS)),
        }
        Ok(())
    }

    fn finish(self, d: &Directive) -> Result<Pieces, *mut c_char> {
        if !self.tus && !self.range && !self.s3 && !self.fields {
            return Err(d.fail(
                "a protocol is required: \"tus\", \"content_range\", \"s3\", \"fields\" (or \"off\")",
            ));
        }
        let given = self.sources.iter().any(Option::is_some);
        let fields = match (self.fields, given) {
            (true, _) => Some(fields_conf(d, self.sources, self.parallel)?),
            (false, false) if !self.parallel => None,
            (false, _) => {
                return Err(d.fail(
                    "\"key=\", \"offset=\", \"total=\" and the others, and \"parallel\", go \
                     with \"fields\"",
                ))
            }
        };
        let dir = self.dir.ok_or_else(|| {
            d.fail("\"spool=\" is required: the directory where uploads in progress are kept")
        })?;
        Ok(Pieces {
            tus: self.tus,
            range: self.range,
            s3: self.s3,
            fields,
            spool: Spool::new(dir, self.limits),
        })
    }
}

/// The description of a chunking uploader's piece: a key, one place (`offset=`, or `index=`
/// or `number=` with `chunk=`), one size (`total=`, or `count=` with a number).
fn fields_conf(
    d: &Directive,
    sources: [Option<FieldSource>; 7],
    parallel: bool,
) -> Result<FieldsConf, *mut c_char> {
    let [key, offset, index, number, chunk, total, count] = sources;
    let key = key.ok_or_else(|| d.fail("\"fields\" needs \"key=\""))?;
    let numbered = |number, first| match chunk.clone() {
        Some(chunk) => Ok(PlaceConf::Numbered {
            number,
            first,
            chunk,
        }),
        None => Err(d.fail("\"index=\" and \"number=\" need \"chunk=\", the chunk size")),
    };
    let place = match (offset, index, number) {
        (Some(o), None, None) if chunk.is_none() => PlaceConf::Offset(o),
        (None, Some(i), None) => numbered(i, 0)?,
        (None, None, Some(n)) => numbered(n, 1)?,
        _ => return Err(d.fail(
            "\"fields\" needs one of \"offset=\", \"index=\" (from 0) and \"number=\" (from 1), \
                 \"chunk=\" only with the last two",
        )),
    };
    let size = match (total, count) {
        (Some(t), None) => SizeConf::Bytes(t),
        (None, Some(c)) if matches!(place, PlaceConf::Numbered { .. }) => SizeConf::Pieces(c),
        _ => {
            return Err(d.fail(
                "\"fields\" needs one of \"total=\" (bytes) and \"count=\" (pieces, with \
                 \"index=\" or \"number=\")",
            ))
        }
    };
    Ok(FieldsConf {
        key,
        place,
        size,
        parallel,
    })
}

/// A form field's name, or (starting with `$`, or a number) a value nginx evaluates.
///
/// # Safety
/// `cf` is the configuration being parsed.
unsafe fn source(
    cf: *mut ngx_conf_t,
    d: &Directive,
    arg: &ngx_str_t,
    value: &str,
) -> Result<FieldSource, *mut c_char> {
    if value.starts_with('$') || (!value.is_empty() && value.bytes().all(|b| b.is_ascii_digit())) {
        // SAFETY: cf is the configuration being parsed (caller).
        return match unsafe { ComplexValue::compile(cf, &after_eq(arg)) } {
            Some(cv) => Ok(FieldSource::Value(cv)),
            None => Err(conf_error()),
        };
    }
    if value.is_empty() {
        return Err(d.invalid(arg, "it must name a form field or hold a variable"));
    }
    Ok(FieldSource::Field(value.to_string()))
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
