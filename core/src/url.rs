//! Parsing of the `ometascan_pass` URL.

use std::fmt;

/// Protocol spoken to the scanner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
    Icap,
    Icaps,
    /// ClamAV's clamd, its own protocol (`INSTREAM`) over TCP.
    Clamd,
}

impl Scheme {
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
            Scheme::Icap => 1344,
            Scheme::Icaps => 11344,
            Scheme::Clamd => 3310,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
            Scheme::Icap => "icap",
            Scheme::Icaps => "icaps",
            Scheme::Clamd => "clamd",
        }
    }

    pub fn is_tls(self) -> bool {
        matches!(self, Scheme::Https | Scheme::Icaps)
    }
}

/// A parsed scanner address: `scheme://host[:port][/path]`, or `clamd+unix:///path` for clamd
/// on a local socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannerUrl {
    pub scheme: Scheme,
    /// Host name or address, without the brackets of an IPv6 literal.
    pub host: String,
    pub port: u16,
    /// Whether the port was written in the URL.
    pub explicit_port: bool,
    /// Path without a trailing `/` (empty when none was given).
    pub path: String,
    /// The local (Unix-domain) socket the scanner listens on, for `clamd+unix://`; then the
    /// host is `localhost` and the port 0.
    pub socket: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlError {
    #[error(
        "invalid URL prefix (expected http://, https://, icap://, icaps://, clamd:// or \
         clamd+unix://)"
    )]
    Scheme,
    #[error("no host in URL")]
    NoHost,
    #[error("invalid host in URL")]
    Host,
    #[error("invalid port in URL")]
    Port,
    #[error("user info is not allowed in URL")]
    UserInfo,
    #[error("invalid character in URL path")]
    Path,
    #[error("a clamd URL takes no path (clamd has no services)")]
    ClamdPath,
    #[error("the socket's path must be absolute, printable and at most 107 bytes")]
    Socket,
}

/// The longest path a Unix-domain socket address holds (`sun_path`, less its NUL).
const MAX_SOCKET_PATH: usize = 107;

impl ScannerUrl {
    pub fn parse(s: &str) -> Result<Self, UrlError> {
        if let Some(path) = strip_prefix_ci(s, "clamd+unix://") {
            return Self::local(path);
        }
        let (scheme, rest) = if let Some(r) = strip_prefix_ci(s, "http://") {
            (Scheme::Http, r)
        } else if let Some(r) = strip_prefix_ci(s, "https://") {
            (Scheme::Https, r)
        } else if let Some(r) = strip_prefix_ci(s, "icap://") {
            (Scheme::Icap, r)
        } else if let Some(r) = strip_prefix_ci(s, "icaps://") {
            (Scheme::Icaps, r)
        } else if let Some(r) = strip_prefix_ci(s, "clamd://") {
            (Scheme::Clamd, r)
        } else {
            return Err(UrlError::Scheme);
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(UrlError::UserInfo);
        }
        if authority.is_empty() {
            return Err(UrlError::NoHost);
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let end = v6.find(']').ok_or(UrlError::Host)?;
            let host = &v6[..end];
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(UrlError::Host);
            }
            let after = &v6[end + 1..];
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or(UrlError::Port)?),
            };
            (host, port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(UrlError::NoHost);
        }
        if !authority.starts_with('[')
            && !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
        {
            return Err(UrlError::Host);
        }
        let (port, explicit_port) = match port {
            None => (scheme.default_port(), false),
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 && !p.starts_with('+') => (n, true),
                _ => return Err(UrlError::Port),
            },
        };
        if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(UrlError::Path);
        }
        let path = path.trim_end_matches('/').to_string();
        // clamd has no services: a path would say something the protocol cannot.
        if scheme == Scheme::Clamd && !path.is_empty() {
            return Err(UrlError::ClamdPath);
        }
        Ok(ScannerUrl {
            scheme,
            host: host.to_string(),
            port,
            explicit_port,
            path,
            socket: None,
        })
    }

    /// clamd on the local socket at `path`.
    fn local(path: &str) -> Result<Self, UrlError> {
        let printable = path.bytes().all(|b| b > b' ' && b != 0x7f);
        if !path.starts_with('/') || !printable || path.len() > MAX_SOCKET_PATH {
            return Err(UrlError::Socket);
        }
        Ok(ScannerUrl {
            scheme: Scheme::Clamd,
            host: "localhost".into(),
            port: 0,
            explicit_port: false,
            path: String::new(),
            socket: Some(path.to_string()),
        })
    }

    /// `host:port` as written in a `Host` header (IPv6 in brackets).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for ScannerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(socket) = &self.socket {
            return write!(f, "{}+unix://{socket}", self.scheme.as_str());
        }
        write!(
            f,
            "{}://{}{}",
            self.scheme.as_str(),
            self.authority(),
            self.path
        )
    }
}

/// `s` without an ASCII `prefix` in any case. Compared as bytes: a value whose first bytes
/// end inside a UTF-8 character is no match (slicing the `str` there would panic).
fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.as_bytes().get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix.as_bytes()) {
        s.get(prefix.len()..)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_cut_inside_a_utf8_character_is_refused_not_a_panic() {
        // Found by fuzzing: the 7th byte of "http:/é" is inside the "é".
        for v in [
            "http:/é",
            "https:/\u{e9}x",
            "icaps:/€€",
            "é",
            "icap:/\u{10348}",
        ] {
            assert!(ScannerUrl::parse(v).is_err(), "{v}");
        }
    }

    #[test]
    fn parses_all_forms() {
        let u = ScannerUrl::parse("http://scanner:8043").unwrap();
        assert_eq!(
            (u.scheme, u.host.as_str(), u.port, u.path.as_str()),
            (Scheme::Http, "scanner", 8043, "")
        );
        let u = ScannerUrl::parse("https://10.0.0.1/scan/").unwrap();
        assert_eq!((u.port, u.path.as_str()), (443, "/scan"));
        let u = ScannerUrl::parse("icap://[::1]/virus_scan").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("::1", 1344, "/virus_scan")
        );
        assert_eq!(u.to_string(), "icap://[::1]:1344/virus_scan");
        let u = ScannerUrl::parse("ICAPS://h:1").unwrap();
        assert_eq!((u.scheme, u.port), (Scheme::Icaps, 1));
        let u = ScannerUrl::parse("clamd://127.0.0.1").unwrap();
        assert_eq!(
            (u.scheme, u.port, u.path.as_str()),
            (Scheme::Clamd, 3310, "")
        );
        assert_eq!(ScannerUrl::parse("clamd://h:3311/").unwrap().port, 3311);
        assert_eq!(
            ScannerUrl::parse("clamd://h/scan"),
            Err(UrlError::ClamdPath)
        );
        let u = ScannerUrl::parse("clamd+unix:///run/clamav/clamd.ctl").unwrap();
        assert_eq!(
            (u.scheme, u.socket.as_deref()),
            (Scheme::Clamd, Some("/run/clamav/clamd.ctl"))
        );
        assert_eq!(u.to_string(), "clamd+unix:///run/clamav/clamd.ctl");
    }

    #[test]
    fn a_local_socket_is_an_absolute_printable_path_that_fits() {
        for bad in [
            "clamd+unix://",
            "clamd+unix://run/clamd.ctl",
            "clamd+unix:///run/clam d.ctl",
            "clamd+unix:///run/\u{7f}",
        ] {
            assert_eq!(ScannerUrl::parse(bad), Err(UrlError::Socket), "{bad}");
        }
        let long = format!("clamd+unix:///{}", "a".repeat(106));
        assert!(ScannerUrl::parse(&long).is_ok());
        let longer = format!("clamd+unix:///{}", "a".repeat(107));
        assert_eq!(ScannerUrl::parse(&longer), Err(UrlError::Socket));
    }

    #[test]
    fn rejects_bad_urls() {
        assert_eq!(ScannerUrl::parse("ftp://x"), Err(UrlError::Scheme));
        assert_eq!(ScannerUrl::parse("scanner:80"), Err(UrlError::Scheme));
        assert_eq!(ScannerUrl::parse("http://"), Err(UrlError::NoHost));
        assert_eq!(ScannerUrl::parse("http://:80"), Err(UrlError::NoHost));
        assert_eq!(ScannerUrl::parse("http://h:0"), Err(UrlError::Port));
        assert_eq!(ScannerUrl::parse("http://h:65536"), Err(UrlError::Port));
        assert_eq!(ScannerUrl::parse("http://h:x"), Err(UrlError::Port));
        assert_eq!(ScannerUrl::parse("http://[zz]:1"), Err(UrlError::Host));
        assert_eq!(ScannerUrl::parse("http://u@h"), Err(UrlError::UserInfo));
        assert_eq!(ScannerUrl::parse("http://h%/"), Err(UrlError::Host));
    }
}
