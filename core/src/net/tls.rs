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

// ---------------------------------------------------------------------------------------------
// The client side: a rustls configuration built from the directives' values.

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// CA bundles of the usual distributions, for `ometascan_ssl_verify on` without
/// `ometascan_ssl_trusted_certificate`.
const SYSTEM_BUNDLES: [&str; 3] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// The TLS directives of a location, in plain values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub verify: bool,
    pub trusted_certificate: Option<String>,
    pub verify_depth: u32,
    pub versions: Vec<TlsVersion>,
    pub ciphers: Vec<Suite>,
    pub session_reuse: bool,
    /// Name to verify and to send in SNI (`ometascan_ssl_name`, else the URL's host).
    pub name: String,
    pub send_sni: bool,
}

/// A location's TLS client: the rustls configuration is built once per worker, on first use,
/// and shared by all its connections (which is also what makes session resumption work).
#[derive(Debug)]
pub struct TlsClient {
    pub settings: TlsSettings,
    config: OnceLock<Result<Arc<ClientConfig>, String>>,
}

impl TlsClient {
    pub fn new(settings: TlsSettings) -> Self {
        TlsClient {
            settings,
            config: OnceLock::new(),
        }
    }

    pub fn config(&self) -> Result<Arc<ClientConfig>, String> {
        self.config
            .get_or_init(|| build_config(&self.settings).map(Arc::new))
            .clone()
    }

    pub fn server_name(&self) -> Result<ServerName<'static>, String> {
        ServerName::try_from(self.settings.name.clone())
            .map_err(|_| format!("invalid TLS server name \"{}\"", self.settings.name))
    }
}

fn provider(settings: &TlsSettings) -> CryptoProvider {
    let mut p = rustls::crypto::ring::default_provider();
    p.cipher_suites.retain(|s| match s {
        rustls::SupportedCipherSuite::Tls13(_) => true,
        rustls::SupportedCipherSuite::Tls12(_) => {
            let name = format!("{:?}", s.suite());
            settings.ciphers.iter().any(|c| c.iana == name)
        }
    });
    p
}

/// Builds the rustls configuration; checks a CA bundle only when verification needs it.
pub fn build_config(settings: &TlsSettings) -> Result<ClientConfig, String> {
    let provider = Arc::new(provider(settings));
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = settings
        .versions
        .iter()
        .map(|v| match v {
            TlsVersion::Tls12 => &rustls::version::TLS12,
            TlsVersion::Tls13 => &rustls::version::TLS13,
        })
        .collect();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("TLS configuration: {e}"))?;
    let verifier: Arc<dyn ServerCertVerifier> = if settings.verify {
        let mut roots = RootCertStore::empty();
        let certs = match &settings.trusted_certificate {
            Some(path) => load_ca_file(Path::new(path)).map_err(|e| e.to_string())?,
            None => SYSTEM_BUNDLES
                .iter()
                .find_map(|p| load_ca_file(Path::new(p)).ok())
                .ok_or("no system CA bundle found for ometascan_ssl_verify")?,
        };
        let (_added, _ignored) = roots.add_parsable_certificates(certs);
        let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| format!("TLS verifier: {e}"))?;
        Arc::new(DepthVerifier {
            inner,
            depth: settings.verify_depth,
        })
    } else {
        Arc::new(NoVerify {
            provider: provider.clone(),
        })
    };
    let mut config = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.enable_sni = settings.send_sni;
    if !settings.session_reuse {
        config.resumption = Resumption::disabled();
    }
    Ok(config)
}

/// Full verification, plus nginx's verify depth: the chain from the scanner's certificate to a
/// trusted root may hold at most `depth` certificates above the scanner's own.
#[derive(Debug)]
struct DepthVerifier {
    inner: Arc<WebPkiServerVerifier>,
    depth: u32,
}

impl ServerCertVerifier for DepthVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified =
            self.inner
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)?;
        // Intermediates plus the root above them.
        if intermediates.len() as u32 + 1 > self.depth {
            return Err(rustls::Error::General(format!(
                "certificate chain too long ({} certificates above the scanner's, ometascan_ssl_verify_depth is {})",
                intermediates.len() + 1,
                self.depth
            )));
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `ometascan_ssl_verify off`: any certificate is accepted, but the handshake is still
/// checked against it, so the connection is encrypted to whoever holds that key.
#[derive(Debug)]
struct NoVerify {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Describes a TLS failure the way an operator needs to read it.
pub fn describe_tls_error(e: &std::io::Error) -> String {
    if let Some(inner) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        return match inner {
            rustls::Error::InvalidCertificate(c) => {
                format!("certificate verify error: {}", cert_error(c))
            }
            rustls::Error::General(g) => format!("certificate verify error: {g}"),
            other => other.to_string(),
        };
    }
    e.to_string()
}

fn cert_error(e: &rustls::CertificateError) -> String {
    use rustls::CertificateError as C;
    match e {
        C::Expired | C::ExpiredContext { .. } => "certificate has expired".into(),
        C::NotValidYet | C::NotValidYetContext { .. } => "certificate is not yet valid".into(),
        C::UnknownIssuer => "unable to get local issuer certificate (unknown CA)".into(),
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            "certificate does not match the scanner's name".into()
        }
        C::BadSignature => "bad certificate signature".into(),
        C::Revoked => "certificate revoked".into(),
        other => format!("{other:?}"),
    }
}
