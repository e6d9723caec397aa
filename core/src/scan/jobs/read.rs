//! The readings of an object (see [`super::readings`]): multipart, url-encoded, JSON, XML
//! and charsets, each handing over objects that are scanned and read in turn, one level
//! deeper.

use super::readings::{self, charset_of, Readings};
use super::{blank, codings, file_request, is_file, label, Job, Jobs, Place, OCTETS};
use crate::body::charset_body::{self, CharsetError};
use crate::body::decode::{self, Coding};
use crate::body::multipart::{self, part_body, Part};
use crate::body::text::JOIN_MAX;
use crate::body::{base64, json, urlencoded, xml, RequestBody, FILE_CHUNK};
use crate::disposition;
use crate::scan::ScanError;

/// The label of what a reading of `parent` at `depth` hands over: as it is at the first
/// level (the request's own fields), after its parent's below.
fn child(parent: &dyn Fn() -> String, depth: usize, name: &str) -> String {
    if depth <= 1 {
        name.to_string()
    } else {
        format!("{} > {name}", parent())
    }
}

impl Jobs<'_> {
    /// Reads the object `body` at `depth`, declared as `ct`, as backends read a body of that
    /// type and content (see [`super::readings`]).
    pub(super) fn read(
        &mut self,
        label: &dyn Fn() -> String,
        body: &RequestBody,
        ct: &[u8],
        depth: usize,
    ) -> Result<(), ScanError> {
        let found = readings::readings(body, ct, None)?;
        self.read_as(label, body, ct, found, depth)
    }

    /// Applies the readings `found` of an object at `depth`; what they hand over is at
    /// `depth + 1`.
    pub(super) fn read_as(
        &mut self,
        label: &dyn Fn() -> String,
        body: &RequestBody,
        ct: &[u8],
        found: Readings,
        depth: usize,
    ) -> Result<(), ScanError> {
        if !found.any() {
            return Ok(());
        }
        let max = self.opts.body_limits.max_depth;
        if depth >= max {
            return Err(ScanError::over_limit(format!(
                "{} holds bodies nested more than {max} deep",
                label()
            )));
        }
        if let Some(b) = &found.multipart {
            return self.multipart(label, body, b, charset_of(ct), depth);
        }
        if found.urlencoded {
            self.urlencoded(label, body, charset_of(ct), depth)?;
        }
        if let Some(len) = found.json {
            self.json(label, body, len, depth)?;
        }
        if found.xml {
            self.xml(label, body, depth)?;
        }
        if let Some(cs) = &found.charset {
            self.charset(label, body, cs, depth)?;
        }
        Ok(())
    }

    /// A multipart body, part by part; `charset`: the one its type names, which Django and
    /// Starlette decode every field with.
    fn multipart(
        &mut self,
        parent: &dyn Fn() -> String,
        body: &RequestBody,
        boundary: &[u8],
        charset: Option<String>,
        depth: usize,
    ) -> Result<(), ScanError> {
        let limits = self.opts.body_limits.multipart;
        let form = multipart::split(body, boundary, FILE_CHUNK, limits).map_err(|e| match e {
            multipart::SplitError::Body(e) => ScanError::Body(e),
            e if e.is_limit() => ScanError::over_limit(format!("multipart body: {e}")),
            e => ScanError::ambiguous(format!("multipart body: {e}")),
        })?;
        for (what, (offset, len)) in [
            ("the preamble", form.preamble),
            ("the epilogue", form.epilogue),
        ] {
            let range = part_body(body, offset, len);
            if len > 0 && !blank(&range)? {
                let name = child(parent, depth + 1, what);
                self.value(&|| name.clone(), range, b"", true, true, depth + 1)?;
            }
        }
        for p in &form.parts {
            self.part(parent, body, p, charset.as_deref(), depth + 1)?;
        }
        Ok(())
    }

    /// One part of a multipart body at `depth` (1: of the request's own).
    fn part(
        &mut self,
        parent: &dyn Fn() -> String,
        body: &RequestBody,
        p: &Part,
        form_charset: Option<&str>,
        depth: usize,
    ) -> Result<(), ScanError> {
        let data = part_body(body, p.offset, p.len);
        let label = child(parent, depth, &label(p));
        let ct = p.header("content-type").cloned().unwrap_or_default();
        let codings = codings(p);
        let b64 = codings.contains(&Coding::Base64);
        for &coding in &codings {
            let decoded = match coding {
                Coding::Base64 => base64::declared(&data, &self.opts.spill_dir)?,
                c => vec![decode::decode_within(
                    &data,
                    c,
                    &self.opts.spill_dir,
                    &self.opts.body_limits.decode,
                )?],
            };
            for d in decoded {
                self.decoded_as(format!("{label} ({coding:?}-decoded)"), d, &ct, depth + 1)?;
            }
        }
        // A field (no file name) without a charset of its own is decoded with the form's.
        if let Some(cs) = form_charset.filter(|_| charset_of(&ct).is_none() && !named(p)) {
            self.charset(&|| label.clone(), &data, cs, depth)?;
        }
        if !is_file(p) && p.len <= JOIN_MAX as u64 {
            return self.value(&|| label.clone(), data, &ct, true, !b64, depth);
        }
        if !b64 {
            for decoded in base64::sniff(&data, &self.opts.spill_dir)? {
                self.decoded(format!("{label} (base64)"), decoded, depth + 1)?;
            }
        }
        self.read(&|| label.clone(), &data, &ct, depth)?;
        let request = file_request(self.req, p, data);
        self.push(Job {
            label,
            request,
            // Only a part of the request's own body can be replaced by a sanitized version.
            place: (depth == 1).then(|| Place::Part(p.clone())),
        })
    }

    /// A url-encoded body: every name and value decoded (and, in `charset`, as Django
    /// decodes them with it).
    fn urlencoded(
        &mut self,
        parent: &dyn Fn() -> String,
        body: &RequestBody,
        charset: Option<String>,
        depth: usize,
    ) -> Result<(), ScanError> {
        let opts = self.opts;
        let max = opts.body_limits.max_fields;
        let each = urlencoded::each_field(body, max, |f| {
            let name = || {
                let raw = part_body(body, f.name.0, f.name.1.min(64 * 3))
                    .to_vec()
                    .unwrap_or_default();
                String::from_utf8_lossy(&urlencoded::decode_bytes(&raw))
                    .chars()
                    .take(64)
                    .collect::<String>()
            };
            for (what, range) in [("name of", Some(f.name)), ("field", f.value)] {
                let Some(range) = range.filter(|r| r.1 > 0) else {
                    continue;
                };
                let label = || child(parent, depth + 1, &format!("{what} \"{}\"", name()));
                let decoded = if range.1 <= JOIN_MAX as u64 {
                    let raw = part_body(body, range.0, range.1)
                        .to_vec()
                        .map_err(ScanError::Body)?;
                    let decoded = urlencoded::decode_bytes(&raw);
                    if memchr::memchr(b'+', &raw).is_some() {
                        // python-multipart hands values over undecoded: a `+` of base64
                        // stays one there.
                        for d in base64::sniff_bytes(&raw, &opts.spill_dir)? {
                            self.decoded(format!("{} (base64)", label()), d, depth + 2)?;
                        }
                    }
                    let changed = urlencoded::changes(&raw);
                    self.short_value(&label, &decoded, b"", changed, true, depth + 1)?;
                    RequestBody::memory(&decoded)
                } else {
                    let decoded = urlencoded::decode_range(body, range, &opts.spill_dir)?;
                    self.value(&label, decoded.clone(), b"", true, true, depth + 1)?;
                    decoded
                };
                if let Some(cs) = &charset {
                    self.charset(&label, &decoded, cs, depth + 1)?;
                }
            }
            Ok(())
        })?;
        each.map_err(|max| ScanError::over_limit(format!("more than {max} url-encoded fields")))
    }

    /// A JSON document whose value lies in the first `len` bytes: every string unescaped.
    fn json(
        &mut self,
        parent: &dyn Fn() -> String,
        body: &RequestBody,
        len: u64,
        depth: usize,
    ) -> Result<(), ScanError> {
        let opts = self.opts;
        // Past this many alone, strings are scanned in archives: room is left for the archives
        // and for the jobs of the rest of the request.
        let alone = opts.body_limits.max_objects.saturating_sub(self.jobs.len()) / 2;
        let value = body.slice(0, len);
        let strings = json::strings(&value, &opts.spill_dir, alone)?;
        let key = |k: &str| child(parent, depth + 1, &format!("JSON key \"{k}\""));
        if let Some(body) = strings.joined {
            let label = child(parent, depth + 1, "the escaped JSON strings");
            self.object(label, body, b"text/plain")?;
        }
        for (k, body) in strings.alone {
            self.object(key(&k), body, OCTETS)?;
        }
        for (k, body) in strings.decoded {
            self.decoded(format!("{} (base64)", key(&k)), body, depth + 2)?;
        }
        for (i, tar) in strings.bundled.into_iter().enumerate() {
            let label = child(parent, depth + 1, &format!("JSON strings ({})", i + 1));
            self.object(label, tar, b"application/x-tar")?;
        }
        for (k, body) in strings.nested {
            let label = key(&k);
            self.read(&|| label.clone(), &body, b"", depth + 1)?;
        }
        Ok(())
    }

    /// An XML document: every element's text and attribute value, as Go's `encoding/xml` and
    /// the JDK's DOM hand them over.
    fn xml(
        &mut self,
        parent: &dyn Fn() -> String,
        body: &RequestBody,
        depth: usize,
    ) -> Result<(), ScanError> {
        let (dir, max) = (
            self.opts.spill_dir.clone(),
            self.opts.body_limits.max_fields,
        );
        xml::values(body, &dir, max, &mut |name, value| {
            let label = child(parent, depth + 1, name);
            self.value(&|| label.clone(), value, b"", true, true, depth + 1)
        })
    }

    /// Text in the charset `cs`, decoded as the backends that read it decode it; a charset
    /// the module cannot decode is refused.
    fn charset(
        &mut self,
        label: &dyn Fn() -> String,
        body: &RequestBody,
        cs: &str,
        depth: usize,
    ) -> Result<(), ScanError> {
        let dir = self.opts.spill_dir.clone();
        let texts = charset_body::readings(cs, body, &dir).map_err(|e| match e {
            CharsetError::Unknown(e) => {
                ScanError::ambiguous(format!("{} is in charset \"{}\"", label(), e.0))
            }
            CharsetError::Scan(e) => e,
        })?;
        for text in texts {
            let name = format!("{} (charset {cs})", label());
            self.value(&|| name.clone(), text, b"", true, true, depth + 1)?;
        }
        Ok(())
    }
}

/// Whether a part names a file (in any of its `Content-Disposition` headers).
fn named(p: &Part) -> bool {
    p.headers_named("content-disposition").any(|cd| {
        let cd = String::from_utf8_lossy(cd);
        disposition::param(&cd, "filename").is_some()
            || disposition::param(&cd, "filename*").is_some()
    })
}
