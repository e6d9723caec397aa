//! The boundary of a `multipart/*` request, read the way each family of form parsers reads it
//! from the `Content-Type`, and refused where they would not all read the same one:
//!
//! - as RFC 2045 parameters (busboy, python-multipart, Starlette): the `boundary` parameter, a
//!   token or a quoted string, the first or the last one where it is given twice;
//! - RFC 2231's `boundary*=` (werkzeug and Django prefer it);
//! - from the first `boundary` substring, up to `,` or `;` or within quotes (PHP), or up to
//!   `;` (formidable), whichever parameter it belongs to (`xboundary=`);
//! - from the last `boundary=` substring, up to `"`, `;` or `,` even inside quotes (Rack);
//! - an unquoted value as far as it is made of token characters (werkzeug: it stops at `"`,
//!   `/`, `=`, `(`, `:` ...).
//!
//! A form whose readings differ could be split one way by the module and another way by the
//! backend: it is refused (400), never scanned whole. So are RFC 2231 continuations
//! (`boundary*0=`, `boundary*1=`), which Go and Django assemble and prefer to `boundary=`.

/// Longest boundary accepted (RFC 2046 allows 70 characters; real parsers take more).
pub const MAX_BOUNDARY: usize = 200;

/// Why the boundary cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BoundaryError {
    #[error("the boundary is read differently by different parsers")]
    Ambiguous,
    #[error("the boundary is longer than {MAX_BOUNDARY} bytes or holds control bytes")]
    Invalid,
}

/// Whether a content type is a `multipart/*` one (after leading white space).
pub fn is_multipart(content_type: &[u8]) -> bool {
    let t = content_type.trim_ascii_start();
    t.len() >= 10 && t[..10].eq_ignore_ascii_case(b"multipart/")
}

/// The boundary every parser reads: `Ok(None)` when the type is no multipart one or none
/// reads a boundary (no parser splits the body then).
pub fn boundary(content_type: &[u8]) -> Result<Option<Vec<u8>>, BoundaryError> {
    if !is_multipart(content_type) {
        return Ok(None);
    }
    let params = rfc_params(content_type);
    // RFC 2231 continuations (`boundary*0=`, `boundary*1*=`): Go and Django assemble them and
    // prefer them to a plain `boundary=`; the others do not read them. No client sends them.
    let continued = params.iter().any(|(k, _)| {
        k.len() > 9
            && k[..9].eq_ignore_ascii_case(b"boundary*")
            && k[9..].iter().any(u8::is_ascii_digit)
    });
    if continued {
        return Err(BoundaryError::Ambiguous);
    }
    let named = |n: &'static str| {
        params
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(n.as_bytes()))
            .map(|(_, v)| v.clone())
    };
    let mut readings: Vec<Vec<u8>> = Vec::new();
    readings.extend(named("boundary").next());
    readings.extend(named("boundary").next_back());
    readings.extend(named("boundary*").filter_map(|v| rfc2231(&v)));
    readings.extend(php(content_type));
    readings.extend(formidable(content_type));
    readings.extend(rack(content_type));
    readings.extend(werkzeug(content_type));
    let Some(first) = readings.first().cloned() else {
        return Ok(None);
    };
    if readings.iter().any(|r| *r != first) {
        return Err(BoundaryError::Ambiguous);
    }
    let valid = !first.is_empty()
        && first.len() <= MAX_BOUNDARY
        && !first.iter().any(|&b| b.is_ascii_control() || b == 0x7f);
    if !valid {
        return Err(BoundaryError::Invalid);
    }
    Ok(Some(first))
}

/// `type; name=value; name="quoted \" value"` as (name, value) pairs, values unquoted; an
/// unquoted value runs to the next `;`, trimmed.
fn rfc_params(ct: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    let Some(start) = ct.iter().position(|&b| b == b';') else {
        return out;
    };
    let mut i = start + 1;
    while i < ct.len() {
        let name_end = ct[i..]
            .iter()
            .position(|&b| b == b'=' || b == b';')
            .map_or(ct.len(), |p| i + p);
        let name = ct[i..name_end].trim_ascii().to_vec();
        if name_end >= ct.len() || ct[name_end] == b';' {
            i = name_end + 1;
            continue;
        }
        let mut j = name_end + 1;
        while j < ct.len() && (ct[j] == b' ' || ct[j] == b'\t') {
            j += 1;
        }
        let mut value = Vec::new();
        if ct.get(j) == Some(&b'"') {
            j += 1;
            while j < ct.len() && ct[j] != b'"' {
                if ct[j] == b'\\' && j + 1 < ct.len() {
                    j += 1;
                }
                value.push(ct[j]);
                j += 1;
            }
            // Past the closing quote, up to the next parameter.
            while j < ct.len() && ct[j] != b';' {
                j += 1;
            }
        } else {
            let end = ct[j..]
                .iter()
                .position(|&b| b == b';')
                .map_or(ct.len(), |p| j + p);
            value = ct[j..end].trim_ascii().to_vec();
            j = end;
        }
        out.push((name, value));
        i = j + 1;
    }
    out
}

/// RFC 2231 `charset'language'%XX...`.
fn rfc2231(v: &[u8]) -> Option<Vec<u8>> {
    let mut it = v.splitn(3, |&b| b == b'\'');
    let (_, _, text) = (it.next()?, it.next()?, it.next()?);
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i] == b'%' {
            let hex = std::str::from_utf8(text.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(text[i]);
            i += 1;
        }
    }
    Some(out)
}

/// The first `boundary` substring (case-sensitive first, then in any case), its `=`, then a
/// quoted value or one up to `,` or `;`.
fn php(ct: &[u8]) -> Option<Vec<u8>> {
    let at = memchr::memmem::find(ct, b"boundary")
        .or_else(|| memchr::memmem::find(&ct.to_ascii_lowercase(), b"boundary"))?;
    let eq = at + ct[at..].iter().position(|&b| b == b'=')?;
    let v = &ct[eq + 1..];
    if let Some(q) = v.strip_prefix(b"\"") {
        let end = q.iter().position(|&b| b == b'"')?;
        return Some(q[..end].to_vec());
    }
    let end = v
        .iter()
        .position(|&b| b == b',' || b == b';')
        .unwrap_or(v.len());
    Some(v[..end].to_vec())
}

/// `/boundary=(?:"([^"]+)"|([^;]+))/i`: the first `boundary=` in any case.
fn formidable(ct: &[u8]) -> Option<Vec<u8>> {
    let at = memchr::memmem::find(&ct.to_ascii_lowercase(), b"boundary=")?;
    let v = &ct[at + 9..];
    if let Some(q) = v.strip_prefix(b"\"") {
        if let Some(end) = q.iter().position(|&b| b == b'"') {
            if end > 0 {
                return Some(q[..end].to_vec());
            }
        }
    }
    let end = v.iter().position(|&b| b == b';').unwrap_or(v.len());
    (end > 0).then(|| v[..end].to_vec())
}

/// `%r|\Amultipart/.*boundary=\"?([^\";,]+)\"?|ni` (Rack): the last `boundary=` in any case
/// that a value follows.
fn rack(ct: &[u8]) -> Option<Vec<u8>> {
    let lower = ct.to_ascii_lowercase();
    let starts: Vec<usize> = memchr::memmem::find_iter(&lower, b"boundary=").collect();
    starts.into_iter().rev().find_map(|at| {
        let v = &ct[at + 9..];
        let v = v.strip_prefix(b"\"").unwrap_or(v);
        let end = v
            .iter()
            .position(|&b| matches!(b, b'"' | b';' | b','))
            .unwrap_or(v.len());
        (end > 0).then(|| v[..end].to_vec())
    })
}

/// werkzeug's reading of an unquoted `boundary=` parameter (a parameter's name right before
/// `=`): as many token characters (`[A-Za-z0-9_!#$%&'*+.^`|~-]`) as follow.
fn werkzeug(ct: &[u8]) -> Vec<Vec<u8>> {
    let token = |b: &u8| b.is_ascii_alphanumeric() || b"_!#$%&'*+.^`|~-".contains(b);
    let lower = ct.to_ascii_lowercase();
    memchr::memmem::find_iter(&lower, b"boundary=")
        .filter(|&at| {
            // A parameter of its own: `;` and blanks before it.
            let before = lower[..at].trim_ascii_end();
            before.ends_with(b";")
        })
        .filter_map(|at| {
            let v = &ct[at + 9..];
            if v.first() == Some(&b'"') {
                return None;
            }
            let end = v.iter().position(|b| !token(b)).unwrap_or(v.len());
            (end > 0).then(|| v[..end].to_vec())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(ct: &str) -> Result<Option<Vec<u8>>, BoundaryError> {
        boundary(ct.as_bytes())
    }

    #[test]
    fn what_real_clients_send_reads_one_way() {
        for (ct, want) in [
            (
                "multipart/form-data; boundary=----WebKitFormBoundaryx7",
                "----WebKitFormBoundaryx7",
            ),
            (
                "multipart/form-data; boundary=------------------------d74496d66958873e",
                "------------------------d74496d66958873e",
            ),
            (
                "Multipart/Form-Data; charset=utf-8; boundary=\"a b\"",
                "a b",
            ),
            ("multipart/form-data; boundary=\"a/b=c:d\"", "a/b=c:d"),
            ("multipart/form-data;boundary=~#!%x", "~#!%x"),
            (
                "multipart/form-data; boundary=\"===============5727394521397352928==\"",
                "===============5727394521397352928==",
            ),
            (
                &format!("multipart/form-data; boundary={}", "b".repeat(150)),
                &"b".repeat(150),
            ),
        ] {
            assert_eq!(b(ct), Ok(Some(want.as_bytes().to_vec())), "{ct}");
        }
        assert_eq!(b("multipart/form-data"), Ok(None));
        assert_eq!(b("application/json; boundary=x"), Ok(None));
    }

    #[test]
    fn readings_that_differ_are_refused() {
        for ct in [
            "multipart/form-data; xboundary=K; boundary=M",
            "multipart/form-data; boundary=a; boundary=b",
            "multipart/form-data; boundary=a; boundary*=utf-8''b",
            "multipart/form-data; boundary=a,b",
            "multipart/form-data; boundary= a",
            "multipart/form-data; boundary=\"a\\\"b\"",
            // RFC 2231 continuations: Go and Django assemble and prefer them.
            "multipart/form-data; boundary=a; boundary*0=a; boundary*1=b",
            "multipart/form-data; boundary*0*=utf-8''a; boundary*1=b",
            // Rack stops at `"`, `;` and `,` even inside quotes.
            "multipart/form-data; boundary=\"a;b\"",
            "multipart/form-data; boundary=\"quoted,comma\"",
            // werkzeug stops an unquoted value at the first character no token holds.
            "multipart/form-data; boundary=a/b",
            "multipart/form-data; boundary=a=b",
            "multipart/form-data; boundary=~#!%'()+_-./:=?x",
        ] {
            assert_eq!(b(ct), Err(BoundaryError::Ambiguous), "{ct}");
        }
        assert_eq!(
            b(&format!(
                "multipart/form-data; boundary={}",
                "b".repeat(201)
            )),
            Err(BoundaryError::Invalid)
        );
        assert_eq!(
            b("multipart/form-data; boundary="),
            Err(BoundaryError::Invalid)
        );
    }
}
