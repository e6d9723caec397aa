//! TLS for tests: certificates made on the spot (rcgen) and a TLS front that terminates TLS
//! and forwards to a plain double, recording what each client said in its handshake.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A certificate with its key.
pub struct Issued {
    pub cert: rcgen::Certificate,
    pub key: KeyPair,
}

impl Issued {
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    pub fn der(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }
}

/// A certificate authority.
pub fn ca(name: &str) -> Issued {
    let key = KeyPair::generate().expect("key");
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    let cert = p.self_signed(&key).expect("self-signed CA");
    Issued { cert, key }
}

/// An intermediate CA signed by `parent`.
pub fn intermediate(name: &str, parent: &Issued) -> Issued {
    let key = KeyPair::generate().expect("key");
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    let cert = p
        .signed_by(&key, &parent.cert, &parent.key)
        .expect("intermediate");
    Issued { cert, key }
}

/// A server certificate for `names` (DNS names or IP addresses), signed by `issuer`, or
/// self-signed without one. `expired` puts its validity in the past.
pub fn server(names: &[&str], issuer: Option<&Issued>, expired: bool) -> Issued {
    let key = KeyPair::generate().expect("key");
    let mut p = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .expect("params");
    p.distinguished_name.push(
        DnType::CommonName,
        names.first().copied().unwrap_or("scanner"),
    );
    if expired {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let cert = match issuer {
        Some(i) => p.signed_by(&key, &i.cert, &i.key).expect("server cert"),
        None => p.self_signed(&key).expect("self-signed server cert"),
    };
    Issued { cert, key }
}

/// What one client handshake looked like.
#[derive(Debug, Clone)]
pub struct Handshake {
    pub sni: Option<String>,
    pub resumed: bool,
    pub version: Option<String>,
    pub suite: Option<String>,
}

/// Which protocol versions and TLS 1.2 suites the front offers.
#[derive(Debug, Clone, Default)]
pub struct FrontOptions {
    /// Only TLS 1.2 (else 1.2 and 1.3).
    pub tls12_only: bool,
    /// Only TLS 1.3.
    pub tls13_only: bool,
    /// TLS 1.2 suites by IANA name; empty: all.
    pub suites: Vec<String>,
}

/// Terminates TLS on a port of its own and forwards each connection to `127.0.0.1:backend`.
pub struct TlsFront {
    pub port: u16,
    handshakes: Arc<Mutex<Vec<Handshake>>>,
    _rt: tokio::runtime::Runtime,
}

impl TlsFront {
    pub fn start(
        chain: &[&Issued],
        leaf_key: &KeyPair,
        backend: u16,
        opts: FrontOptions,
    ) -> TlsFront {
        let mut provider = rustls::crypto::ring::default_provider();
        if !opts.suites.is_empty() {
            provider.cipher_suites.retain(|s| match s {
                rustls::SupportedCipherSuite::Tls13(_) => true,
                rustls::SupportedCipherSuite::Tls12(_) => {
                    opts.suites.contains(&format!("{:?}", s.suite()))
                }
            });
        }
        let versions: Vec<&'static rustls::SupportedProtocolVersion> = if opts.tls12_only {
            vec![&rustls::version::TLS12]
        } else if opts.tls13_only {
            vec![&rustls::version::TLS13]
        } else {
            vec![&rustls::version::TLS12, &rustls::version::TLS13]
        };
        let certs: Vec<CertificateDer<'static>> = chain.iter().map(|c| c.der()).collect();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&versions)
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("rt");
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind TLS front");
        let port = listener.local_addr().expect("addr").port();
        let handshakes = Arc::new(Mutex::new(Vec::new()));
        let hs = handshakes.clone();
        rt.spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let hs = hs.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    {
                        let (_, conn) = tls.get_ref();
                        hs.lock().unwrap().push(Handshake {
                            sni: conn.server_name().map(str::to_string),
                            resumed: matches!(
                                conn.handshake_kind(),
                                Some(rustls::HandshakeKind::Resumed)
                            ),
                            version: conn.protocol_version().map(|v| format!("{v:?}")),
                            suite: conn
                                .negotiated_cipher_suite()
                                .map(|s| format!("{:?}", s.suite())),
                        });
                    }
                    let addr: SocketAddr = ([127, 0, 0, 1], backend).into();
                    let Ok(mut plain) = tokio::net::TcpStream::connect(addr).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
        TlsFront {
            port,
            handshakes,
            _rt: rt,
        }
    }

    pub fn handshakes(&self) -> Vec<Handshake> {
        self.handshakes.lock().unwrap().clone()
    }
}
