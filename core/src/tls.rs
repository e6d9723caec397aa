//! TLS settings of a location, validated from the directives' plain values: protocol versions,
//! OpenSSL-style cipher lists mapped onto the suites the TLS library offers, and CA bundles.

use std::path::Path;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

/// Protocol versions the TLS library speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TlsConfigError {
    #[error("invalid protocol \"{0}\"")]
    UnknownProtocol(String),
    #[error("no protocol version usable by the TLS library is enabled (TLSv1.2 and TLSv1.3 are)")]
    NoUsableProtocol,
    #[error("cipher list \"{0}\" selects no usable cipher suite")]
    NoCipher(String),
    #[error("cannot read \"{path}\" ({reason})")]
    Unreadable { path: String, reason: String },
    #[error("no certificate found in \"{0}\"")]
    NoCertificate(String),
    #[error("invalid certificate in \"{path}\" ({reason})")]
    BadCertificate { path: String, reason: String },
}

/// Result of parsing `ometascan_ssl_protocols`: the usable versions and the names ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protocols {
    pub versions: Vec<TlsVersion>,
    pub ignored: Vec<String>,
}

pub fn parse_protocols<S: AsRef<str>>(names: &[S]) -> Result<Protocols, TlsConfigError> {
    let mut versions = Vec::new();
    let mut ignored = Vec::new();
    for n in names {
        let n = n.as_ref();
        match n {
            "SSLv2" | "SSLv3" | "TLSv1" | "TLSv1.1" => ignored.push(n.to_string()),
            "TLSv1.2" => push_unique(&mut versions, TlsVersion::Tls12),
            "TLSv1.3" => push_unique(&mut versions, TlsVersion::Tls13),
            _ => return Err(TlsConfigError::UnknownProtocol(n.to_string())),
        }
    }
    if versions.is_empty() {
        return Err(TlsConfigError::NoUsableProtocol);
    }
    Ok(Protocols { versions, ignored })
}

fn push_unique<T: PartialEq>(v: &mut Vec<T>, x: T) {
    if !v.contains(&x) {
        v.push(x);
    }
}

/// A TLS 1.2 suite the library offers, with the attributes OpenSSL's cipher-string keywords
/// select on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suite {
    /// OpenSSL name.
    pub openssl: &'static str,
    /// IANA name, as the TLS library calls it.
    pub iana: &'static str,
    auth: &'static str,
    enc: &'static str,
    bits: u16,
    mac: &'static str,
}

/// TLS 1.2 suites, in the library's order of preference. TLS 1.3 suites are not governed by
/// the cipher list (as with OpenSSL).
pub const TLS12_SUITES: [Suite; 6] = [
    Suite {
        openssl: "ECDHE-ECDSA-AES256-GCM-SHA384",
        iana: "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        auth: "ECDSA",
        enc: "AESGCM",
        bits: 256,
        mac: "SHA384",
    },
    Suite {
        openssl: "ECDHE-ECDSA-AES128-GCM-SHA256",
        iana: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        auth: "ECDSA",
        enc: "AESGCM",
        bits: 128,
        mac: "SHA256",
    },
    Suite {
        openssl: "ECDHE-ECDSA-CHACHA20-POLY1305",
        iana: "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        auth: "ECDSA",
        enc: "CHACHA20",
        bits: 256,
        mac: "AEAD",
    },
    Suite {
        openssl: "ECDHE-RSA-AES256-GCM-SHA384",
        iana: "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        auth: "RSA",
        enc: "AESGCM",
        bits: 256,
        mac: "SHA384",
    },
    Suite {
        openssl: "ECDHE-RSA-AES128-GCM-SHA256",
        iana: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        auth: "RSA",
        enc: "AESGCM",
        bits: 128,
        mac: "SHA256",
    },
    Suite {
        openssl: "ECDHE-RSA-CHACHA20-POLY1305",
        iana: "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        auth: "RSA",
        enc: "CHACHA20",
        bits: 256,
        mac: "AEAD",
    },
];

/// Whether `suite` matches one OpenSSL keyword or cipher name; `None` for a keyword that
/// selects nothing the library offers (NULL, RC4, 3DES, ...), which is valid but empty.
fn matches(suite: &Suite, word: &str) -> bool {
    if word.eq_ignore_ascii_case(suite.openssl) {
        return true;
    }
    match word {
        "ALL"
        | "DEFAULT"
        | "HIGH"
        | "ECDHE"
        | "EECDH"
        | "kECDHE"
        | "kEECDH"
        | "AEAD"
        | "TLSv1.2"
        | "FIPS"
        | "SSLv3"
        | "COMPLEMENTOFDEFAULT" => word != "COMPLEMENTOFDEFAULT",
        "aRSA" | "RSA" => suite.auth == "RSA",
        "aECDSA" | "ECDSA" => suite.auth == "ECDSA",
        "AESGCM" => suite.enc == "AESGCM",
        "AES" => suite.enc == "AESGCM",
        "AES128" => suite.enc == "AESGCM" && suite.bits == 128,
        "AES256" => suite.enc == "AESGCM" && suite.bits == 256,
        "CHACHA20" => suite.enc == "CHACHA20",
        "SHA256" => suite.mac == "SHA256",
        "SHA384" => suite.mac == "SHA384",
        _ => false,
    }
}

/// Maps an OpenSSL cipher string onto [`TLS12_SUITES`]: `:`/`,`/space separated items, `+`
/// joining keywords into an intersection, `!` excluding for good, `-` removing, `+` at the
/// start moving to the end, `@` directives ignored. An empty selection is an error.
pub fn select_ciphers(spec: &str) -> Result<Vec<Suite>, TlsConfigError> {
    let mut selected: Vec<Suite> = Vec::new();
    let mut banned: Vec<Suite> = Vec::new();
    for item in spec.split([':', ',', ' ']).filter(|s| !s.is_empty()) {
        if item.starts_with('@') {
            continue;
        }
        let (op, body) = match item.as_bytes()[0] {
            b'!' | b'-' | b'+' => (item.as_bytes()[0], &item[1..]),
            _ => (0, item),
        };
        let words: Vec<&str> = body.split('+').filter(|w| !w.is_empty()).collect();
        let hit: Vec<Suite> = TLS12_SUITES
            .iter()
            .filter(|s| !words.is_empty() && words.iter().all(|w| matches(s, w)))
            .copied()
            .collect();
        match op {
            b'!' => {
                selected.retain(|s| !hit.contains(s));
                banned.extend(hit);
            }
            b'-' => selected.retain(|s| !hit.contains(s)),
            b'+' => {
                let (moved, keep): (Vec<Suite>, Vec<Suite>) =
                    selected.iter().partition(|s| hit.contains(s));
                selected = keep;
                selected.extend(moved);
            }
            _ => {
                for s in hit {
                    if !banned.contains(&s) && !selected.contains(&s) {
                        selected.push(s);
                    }
                }
            }
        }
    }
    if selected.is_empty() {
        return Err(TlsConfigError::NoCipher(spec.to_string()));
    }
    Ok(selected)
}

/// Loads a PEM bundle of CA certificates; an unreadable file or one without a valid
/// certificate is an error.
pub fn load_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let shown = path.display().to_string();
    let data = std::fs::read(path).map_err(|e| TlsConfigError::Unreadable {
        path: shown.clone(),
        reason: e.to_string(),
    })?;
    let mut certs = Vec::new();
    for c in CertificateDer::pem_slice_iter(&data) {
        let c = c.map_err(|e| TlsConfigError::BadCertificate {
            path: shown.clone(),
            reason: format!("{e:?}"),
        })?;
        if c.len() < 16 || c[0] != 0x30 {
            return Err(TlsConfigError::BadCertificate {
                path: shown,
                reason: "not a DER certificate".into(),
            });
        }
        certs.push(c);
    }
    if certs.is_empty() {
        return Err(TlsConfigError::NoCertificate(shown));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(spec: &str) -> Vec<&'static str> {
        select_ciphers(spec)
            .unwrap()
            .iter()
            .map(|s| s.openssl)
            .collect()
    }

    #[test]
    fn protocols() {
        let p = parse_protocols(&["TLSv1.1", "TLSv1.2", "TLSv1.3"]).unwrap();
        assert_eq!(p.versions, vec![TlsVersion::Tls12, TlsVersion::Tls13]);
        assert_eq!(p.ignored, vec!["TLSv1.1".to_string()]);
        assert_eq!(
            parse_protocols(&["SSLv3", "TLSv1"]),
            Err(TlsConfigError::NoUsableProtocol)
        );
        assert!(matches!(
            parse_protocols(&["TLSv2"]),
            Err(TlsConfigError::UnknownProtocol(_))
        ));
    }

    #[test]
    fn cipher_lists() {
        assert_eq!(names("DEFAULT").len(), 6);
        assert_eq!(names("HIGH:!aNULL:!MD5").len(), 6);
        assert_eq!(
            names("ECDHE-RSA-AES128-GCM-SHA256"),
            vec!["ECDHE-RSA-AES128-GCM-SHA256"]
        );
        assert_eq!(
            names("ECDHE+AESGCM:!aECDSA"),
            vec!["ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-AES128-GCM-SHA256"]
        );
        assert_eq!(
            names("ALL:-AES256:!CHACHA20"),
            vec![
                "ECDHE-ECDSA-AES128-GCM-SHA256",
                "ECDHE-RSA-AES128-GCM-SHA256"
            ]
        );
        assert_eq!(
            names("AES128:+aECDSA"),
            vec![
                "ECDHE-RSA-AES128-GCM-SHA256",
                "ECDHE-ECDSA-AES128-GCM-SHA256"
            ]
        );
        assert_eq!(names("!CHACHA20:ALL").len(), 4);
        assert!(select_ciphers("RC4-SHA").is_err());
        assert!(select_ciphers("NONSENSE").is_err());
        assert!(select_ciphers("HIGH:!HIGH").is_err());
    }

    #[test]
    fn ca_files() {
        let dir = std::env::temp_dir();
        let bad = dir.join(format!("ometascan-ca-bad-{}", std::process::id()));
        std::fs::write(&bad, "not a pem").unwrap();
        assert!(matches!(
            load_ca_file(&bad),
            Err(TlsConfigError::NoCertificate(_))
        ));
        std::fs::remove_file(&bad).unwrap();
        assert!(matches!(
            load_ca_file(Path::new("/nonexistent/ca.pem")),
            Err(TlsConfigError::Unreadable { .. })
        ));
    }
}
