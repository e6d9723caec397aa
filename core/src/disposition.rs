//! Renaming the `filename` of a `Content-Disposition` header after the scanner's.

/// Splits a header value into its `;`-separated items, honouring quoted strings.
fn split_params(v: &str) -> Vec<&str> {
    split_params_open(v).0
}

/// [`split_params`], and whether the last item leaves a quoted string open (which, written
/// back, would swallow whatever follows it).
fn split_params_open(v: &str) -> (Vec<&str>, bool) {
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in v.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            ';' if !in_quotes => {
                out.push(&v[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&v[start..]);
    (out, in_quotes)
}

fn param_name(item: &str) -> Option<String> {
    let (name, _) = item.split_once('=')?;
    Some(name.trim().to_ascii_lowercase())
}

/// Returns the client's `Content-Disposition` with its `filename` and `filename*` parameters
/// replaced by those of the scanner's header. `None` when the scanner's header names no file.
pub fn rename_filename(client: &str, scanner: &str) -> Option<String> {
    let scanner_params: Vec<&str> = split_params(scanner)
        .into_iter()
        .skip(1)
        .filter(|p| {
            matches!(
                param_name(p).as_deref(),
                Some("filename") | Some("filename*")
            )
        })
        .map(str::trim)
        .collect();
    if scanner_params.is_empty() {
        return None;
    }
    let (mut client_items, open) = split_params_open(client);
    // An unclosed quote of the client's would take in the scanner's filename: its item goes
    // (of the disposition type, what comes before the quote stays).
    let unquoted_type = client_items
        .first()
        .map(|t| t.split('"').next().unwrap_or("").to_string());
    if open && client_items.len() > 1 {
        client_items.pop();
    } else if open {
        client_items.clear();
    }
    let mut items: Vec<String> = client_items
        .into_iter()
        .enumerate()
        .filter(|(i, p)| {
            *i == 0
                || !matches!(
                    param_name(p).as_deref(),
                    Some("filename") | Some("filename*")
                )
        })
        .map(|(_, p)| p.trim().to_string())
        .collect();
    if items.is_empty() {
        items.push(unquoted_type.unwrap_or_default().trim().to_string());
    }
    items.extend(scanner_params.iter().map(|s| s.to_string()));
    Some(items.join("; "))
}

/// The value of parameter `name` of a `Content-Disposition` value (quotes removed).
pub fn param(value: &str, name: &str) -> Option<String> {
    split_params(value).into_iter().skip(1).find_map(|p| {
        if param_name(p).as_deref() != Some(name) {
            return None;
        }
        let v = p.split_once('=')?.1.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(v);
        Some(v.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_both_forms() {
        assert_eq!(
            rename_filename(
                "attachment; filename=\"report.docx\"; size=10",
                "attachment; filename=\"sanitized_report.docx\""
            )
            .as_deref(),
            Some("attachment; size=10; filename=\"sanitized_report.docx\"")
        );
        assert_eq!(
            rename_filename(
                "form-data; name=\"f\"; filename=\"a;b.pdf\"; filename*=UTF-8''a%3Bb.pdf",
                "inline; filename*=UTF-8''clean.pdf; filename=\"clean.pdf\""
            )
            .as_deref(),
            Some("form-data; name=\"f\"; filename*=UTF-8''clean.pdf; filename=\"clean.pdf\"")
        );
    }

    #[test]
    fn parameters_are_read() {
        let cd = "form-data; name=\"file\"; filename=\"a;b.gz\"";
        assert_eq!(param(cd, "name").as_deref(), Some("file"));
        assert_eq!(param(cd, "filename").as_deref(), Some("a;b.gz"));
        assert_eq!(param(cd, "filename*"), None);
        assert_eq!(param("form-data; name=x", "name").as_deref(), Some("x"));
    }

    #[test]
    fn scanner_without_filename_changes_nothing() {
        assert_eq!(
            rename_filename("attachment; filename=a", "attachment"),
            None
        );
    }

    #[test]
    fn a_clients_unclosed_quote_cannot_swallow_the_scanners_filename() {
        let renamed = rename_filename(
            "attachment; filename=\"evil.exe\"; note=\"open",
            "attachment; filename=\"clean.txt\"",
        )
        .unwrap();
        assert_eq!(renamed, "attachment; filename=\"clean.txt\"");
        assert_eq!(param(&renamed, "filename").as_deref(), Some("clean.txt"));
        let (_, open) = split_params_open(&renamed);
        assert!(!open);
        let renamed = rename_filename("attach\"ment", "inline; filename=\"c\"").unwrap();
        assert_eq!(renamed, "attach; filename=\"c\"");
        // Found by fuzzing: what follows the open quote is not read as parameters either.
        let renamed = rename_filename("Y\"; filename=; x", "a; filename=\"c\"").unwrap();
        assert_eq!(param(&renamed, "filename").as_deref(), Some("c"));
    }
}
