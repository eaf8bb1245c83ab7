//! `portcullis probe` (SPEC §6): connect like a client and say, in words,
//! why a mutual-TLS handshake works or not — the server chain and whether
//! it verifies for the name, whether the server asked for a client
//! certificate and which CA names it accepts, whether ours was accepted,
//! and for `https://` URLs the status of a GET.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{
    AlertDescription, CertificateError, ClientConfig, DigitallySignedStruct, SignatureScheme,
};
use x509_cert::der::Decode;

use self::alerts::{accepted_issuer, alert_label, stale_crl_words};
use crate::identity::dn::rfc2253;
use crate::identity::CertSummary;
use crate::material::rfc3339;
use crate::pki::inspect::validity_words;

mod alerts;

/// What to probe, and with what.
#[derive(Debug, Clone)]
pub struct Options {
    /// `https://host[:port][/path]` or `host:port`.
    pub target: String,
    /// Client certificate (PEM chain).
    pub cert: Option<PathBuf>,
    /// Client key (PEM).
    pub key: Option<PathBuf>,
    /// CA bundle to verify the server with.
    pub ca: Option<PathBuf>,
    /// SNI to send (default: the host, unless it is an IP address).
    pub sni: Option<String>,
    /// `NAME:PORT:ADDR` entries, as curl's `--resolve`: connect to ADDR
    /// when the target is NAME:PORT, still sending NAME.
    pub resolve: Vec<String>,
}

/// The address `--resolve` gives `host:port`, if any entry names it.
fn resolved(entries: &[String], host: &str, port: u16) -> Result<Option<SocketAddr>, String> {
    for e in entries {
        let bad = || {
            format!("--resolve {e:?}: expected NAME:PORT:ADDRESS (for example api.example.com:8443:127.0.0.1)")
        };
        let (name, rest) = e.split_once(':').ok_or_else(bad)?;
        let (p, addr) = rest.split_once(':').ok_or_else(bad)?;
        let p: u16 = p.parse().map_err(|_| bad())?;
        let ip: std::net::IpAddr = addr
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| bad())?;
        if name.eq_ignore_ascii_case(host) && p == port {
            return Ok(Some(SocketAddr::new(ip, port)));
        }
    }
    Ok(None)
}

/// The outcome: the report text, and whether everything succeeded.
pub struct Report {
    /// What an operator reads.
    pub text: String,
    /// Exit 0 when true.
    pub ok: bool,
}

/// `https://HOST[:PORT][/PATH]` or `HOST:PORT` (IPv6 in brackets).
pub(crate) struct Target {
    pub(crate) host: String,
    pub(crate) port: u16,
    /// Present for https:// URLs.
    pub(crate) path: Option<String>,
}

/// Parses a probe or bench target.
pub(crate) fn parse_target(t: &str) -> Result<Target, String> {
    let (rest, https) = match t.strip_prefix("https://") {
        Some(r) => (r, true),
        None if t.contains("://") => {
            return Err(format!(
                "{t}: only https:// URLs or HOST:PORT can be probed"
            ))
        }
        None => (t, false),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) if https => (&rest[..i], Some(rest[i..].to_string())),
        None if https => (rest, Some("/".to_string())),
        _ => (rest, None),
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, p) = v6
            .split_once(']')
            .ok_or_else(|| format!("{t}: unclosed [ in the address"))?;
        (h.to_string(), p.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (authority.to_string(), None),
        }
    };
    let port = match (port, https) {
        (Some(p), _) => p.parse().map_err(|_| format!("{t}: {p:?} is not a port"))?,
        (None, true) => 443,
        (None, false) => return Err(format!("{t}: give HOST:PORT or an https:// URL")),
    };
    if host.is_empty() {
        return Err(format!("{t}: no host"));
    }
    Ok(Target { host, port, path })
}

/// Records the server chain and judges it without stopping the handshake,
/// so the rest (client authentication) can still be diagnosed.
#[derive(Debug)]
struct Recorder {
    inner: Option<Arc<WebPkiServerVerifier>>,
    seen: Mutex<Option<(Vec<CertificateDer<'static>>, Option<rustls::Error>)>>,
    algs: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict = self.inner.as_ref().and_then(|v| {
            v.verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
                .err()
        });
        let mut chain = vec![end_entity.clone().into_owned()];
        chain.extend(intermediates.iter().map(|c| c.clone().into_owned()));
        if let Ok(mut s) = self.seen.lock() {
            *s = Some((chain, verdict));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// Records the CertificateRequest: that it came, and the CA names in it.
#[derive(Debug)]
struct Asked {
    key: Option<Arc<CertifiedKey>>,
    hints: Mutex<Option<Vec<String>>>,
}

impl ResolvesClientCert for Asked {
    fn resolve(
        &self,
        root_hint_subjects: &[&[u8]],
        _: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        let names = root_hint_subjects
            .iter()
            .map(|der| match x509_cert::name::Name::from_der(der) {
                Ok(n) => rfc2253(&n),
                Err(_) => "(unreadable name)".to_string(),
            })
            .collect();
        if let Ok(mut h) = self.hints.lock() {
            *h = Some(names);
        }
        self.key.clone()
    }

    fn has_certs(&self) -> bool {
        true
    }
}

fn load_client(
    cert: &std::path::Path,
    key: &std::path::Path,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<Arc<CertifiedKey>, String> {
    crate::material::certified_key_from_files(cert, key, provider).map(Arc::new)
}

fn names_of(s: &CertSummary) -> String {
    let mut v: Vec<String> = s.dns_sans.clone();
    v.extend(s.ip_sans.iter().map(ToString::to_string));
    if v.is_empty() {
        v = s.common_names.clone();
    }
    v.join(", ")
}

/// Probes; never panics, always returns a report.
pub fn probe(opts: &Options) -> Report {
    let mut out = String::new();
    let fail = |mut out: String, why: String| {
        let _ = writeln!(out, "FAILED: {why}");
        Report {
            text: out,
            ok: false,
        }
    };
    let target = match parse_target(&opts.target) {
        Ok(t) => t,
        Err(e) => return fail(out, e),
    };
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let algs = provider.signature_verification_algorithms;
    let client_key = match (&opts.cert, &opts.key) {
        (Some(c), Some(k)) => match load_client(c, k, &provider) {
            Ok(ck) => Some(ck),
            Err(e) => return fail(out, e),
        },
        (None, None) => None,
        _ => return fail(out, "give --cert and --key together".into()),
    };
    let inner = match &opts.ca {
        None => None,
        Some(ca) => {
            let roots = match crate::material::roots_from_file(ca) {
                Ok(roots) => roots,
                Err(e) => return fail(out, e),
            };
            match WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                Arc::new(provider.clone()),
            )
            .build()
            {
                Ok(v) => Some(v),
                Err(e) => return fail(out, format!("{}: {e}", ca.display())),
            }
        }
    };
    let recorder = Arc::new(Recorder {
        inner,
        seen: Mutex::new(None),
        algs,
    });
    let asked = Arc::new(Asked {
        key: client_key.clone(),
        hints: Mutex::new(None),
    });
    let mut config = match ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
    {
        Ok(b) => b
            .dangerous()
            .with_custom_certificate_verifier(recorder.clone())
            .with_client_cert_resolver(asked.clone()),
        Err(e) => return fail(out, e.to_string()),
    };
    config.alpn_protocols = if target.path.is_some() {
        vec![b"http/1.1".to_vec()]
    } else {
        Vec::new()
    };
    let sni = opts.sni.clone().unwrap_or_else(|| target.host.clone());
    let name_for_check = sni.clone();
    let server_name = match ServerName::try_from(sni.clone()) {
        Ok(n) => n,
        Err(_) => return fail(out, format!("{sni:?} is not a valid server name")),
    };
    let addr = match resolved(&opts.resolve, &target.host, target.port) {
        Err(e) => return fail(out, e),
        Ok(Some(a)) => a,
        Ok(None) => match (target.host.as_str(), target.port)
            .to_socket_addrs()
            .map(|mut a| a.next())
        {
            Ok(Some(a)) => a,
            _ => return fail(out, format!("cannot resolve {}", target.host)),
        },
    };
    // An IP address is never sent as SNI (RFC 6066): say so rather than
    // claim a name the server never saw.
    let sent = match &server_name {
        ServerName::IpAddress(_) => {
            "no server name: the target is an IP address; give --sni NAME or --resolve NAME:PORT:ADDRESS to send one".to_string()
        }
        _ => format!("server name {sni}"),
    };
    let _ = writeln!(out, "connecting to {addr} ({sent})");
    let server_name_sent = !matches!(server_name, ServerName::IpAddress(_));
    let tcp = match TcpStream::connect_timeout(&addr, Duration::from_secs(10)) {
        Ok(t) => t,
        Err(e) => return fail(out, format!("cannot connect to {addr}: {e}")),
    };
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
    let conn = match rustls::ClientConnection::new(Arc::new(config), server_name) {
        Ok(c) => c,
        Err(e) => return fail(out, e.to_string()),
    };
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut error: Option<rustls::Error> = None;
    while tls.conn.is_handshaking() {
        if let Err(e) = tls.conn.complete_io(&mut tls.sock) {
            error = Some(rustls_error(&e));
            break;
        }
    }
    let mut http_status = None;
    if error.is_none() {
        if let Some(v) = tls
            .conn
            .protocol_version()
            .and_then(crate::tls::version_name)
        {
            let cipher = tls
                .conn
                .negotiated_cipher_suite()
                .and_then(|c| crate::tls::cipher_name(c.suite()))
                .unwrap_or("?");
            let alpn = tls
                .conn
                .alpn_protocol()
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .unwrap_or_else(|| "none".into());
            let _ = writeln!(out, "TLS: {v}, {cipher}, ALPN {alpn}");
        }
        // TLS 1.3 servers judge the client certificate after the client's
        // handshake is done: the verdict arrives with the first read.
        let outcome = match &target.path {
            Some(path) => {
                // With --sni the request names that host too (like curl --resolve).
                let host = opts.sni.as_deref().unwrap_or(&target.host);
                let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: portcullis-probe\r\nConnection: close\r\n\r\n");
                tls.write_all(req.as_bytes())
                    .and_then(|_| tls.flush())
                    .and_then(|_| {
                        let mut buf = Vec::new();
                        let mut chunk = [0u8; 4096];
                        loop {
                            match tls.read(&mut chunk) {
                                Ok(0) => break,
                                Ok(n) => {
                                    buf.extend_from_slice(&chunk[..n]);
                                    if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                                        break;
                                    }
                                }
                                Err(e) if buf.is_empty() => return Err(e),
                                Err(_) => break,
                            }
                        }
                        Ok(buf)
                    })
            }
            None => {
                let _ = tls.sock.set_read_timeout(Some(Duration::from_millis(1500)));
                let mut chunk = [0u8; 1];
                match tls.read(&mut chunk) {
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        Ok(Vec::new())
                    }
                    other => other.map(|_| Vec::new()),
                }
            }
        };
        match outcome {
            Ok(head) if target.path.is_some() => {
                let text = String::from_utf8_lossy(&head);
                http_status = text.split(' ').nth(1).and_then(|s| s.parse::<u16>().ok());
            }
            Ok(_) => {}
            Err(e) => error = Some(rustls_error(&e)),
        }
    }

    // The server chain.
    let seen = recorder.seen.lock().ok().and_then(|s| s.clone());
    let mut failure: Option<String> = None;
    if let Some((chain, verdict)) = &seen {
        let _ = writeln!(out, "server certificate chain:");
        let now = UnixTime::now().as_secs();
        let mut leaf: Option<CertSummary> = None;
        for (i, der) in chain.iter().enumerate() {
            match CertSummary::from_der(der) {
                Ok(s) => {
                    let _ = writeln!(out, "  {i}: {}", s.subject);
                    let _ = writeln!(out, "     issued by {}", s.issuer);
                    if i == 0 {
                        let _ = writeln!(out, "     names: {}", names_of(&s));
                    }
                    let _ = writeln!(
                        out,
                        "     valid {} to {} ({})",
                        rfc3339(s.not_before),
                        rfc3339(s.not_after),
                        validity_words(s.not_before, s.not_after, now)
                    );
                    if i == 0 {
                        leaf = Some(s);
                    }
                }
                Err(e) => {
                    let _ = writeln!(out, "  {i}: unreadable ({e})");
                }
            }
        }
        match (&opts.ca, verdict, &leaf) {
            (None, _, _) => {
                let _ = writeln!(
                    out,
                    "server certificate: not verified (give --ca to check it)"
                );
            }
            (Some(ca), None, _) => {
                let _ = writeln!(
                    out,
                    "server certificate: verified against {} for {name_for_check}",
                    ca.display()
                );
            }
            (Some(ca), Some(e), leaf) => {
                let why = match (e, leaf) {
                    (
                        rustls::Error::InvalidCertificate(
                            CertificateError::NotValidForName
                            | CertificateError::NotValidForNameContext { .. },
                        ),
                        Some(l),
                    ) => {
                        format!("the server's certificate does not cover {name_for_check}: it covers {}", names_of(l))
                    }
                    (
                        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
                        Some(l),
                    ) => format!(
                        "the server's certificate is not issued by a CA in {}: it was issued by {}",
                        ca.display(),
                        l.issuer
                    ),
                    (
                        rustls::Error::InvalidCertificate(
                            CertificateError::Expired | CertificateError::ExpiredContext { .. },
                        ),
                        Some(l),
                    ) => {
                        format!(
                            "the server's certificate expired on {}",
                            rfc3339(l.not_after)
                        )
                    }
                    (other, _) => format!("the server's certificate does not verify: {other}"),
                };
                let _ = writeln!(out, "server certificate: {why}");
                failure = Some(why);
            }
        }
    }

    // Client authentication.
    let hints = asked.hints.lock().ok().and_then(|h| h.clone());
    let accepted_cas = |h: &[String]| {
        if h.is_empty() {
            "it did not say which CAs it accepts".to_string()
        } else {
            format!("it accepts certificates issued by {}", h.join(" or "))
        }
    };
    let saw_server = recorder.seen.lock().map(|s| s.is_some()).unwrap_or(false);
    match &hints {
        None if error.is_some() && !saw_server => {
            let _ = writeln!(
                out,
                "client certificate: the handshake ended before the server could ask for one"
            );
        }
        None => {
            let _ = writeln!(out, "client certificate: the server did not ask for one");
        }
        Some(h) => {
            let _ = writeln!(
                out,
                "client certificate: the server asked for one; {}",
                accepted_cas(h)
            );
        }
    }
    if let Some(e) = &error {
        let why = match (e, &hints, &client_key) {
            (
                rustls::Error::AlertReceived(
                    AlertDescription::CertificateRequired | AlertDescription::HandshakeFailure,
                ),
                Some(h),
                None,
            ) => {
                format!(
                    "the server requires a client certificate; {}",
                    accepted_cas(h)
                )
            }
            (rustls::Error::AlertReceived(AlertDescription::UnrecognisedName), _, _) => {
                match &server_name_sent {
                    true => format!(
                        "the server does not serve the name {name_for_check} (unrecognized_name); give --sni with a name it serves"
                    ),
                    false => "the server needs a server name (SNI) and an IP address sends none (unrecognized_name); give --sni NAME or --resolve NAME:PORT:ADDRESS".to_string(),
                }
            }
            (rustls::Error::AlertReceived(AlertDescription::UnknownCA), Some(h), Some(ck)) => {
                match accepted_issuer(&ck.cert, h) {
                    Some(issuer) => stale_crl_words(&issuer),
                    None => format!(
                        "your certificate was refused: {}",
                        alert_label(AlertDescription::UnknownCA)
                    ),
                }
            }
            (rustls::Error::AlertReceived(a), Some(_), Some(_)) => {
                format!("your certificate was refused: {}", alert_label(*a))
            }
            (other, _, _) => format!("the handshake failed: {other}"),
        };
        if let (Some(_), Some(ck)) = (&hints, &client_key) {
            if let Ok(s) = CertSummary::from_der(&ck.cert[0]) {
                let _ = writeln!(
                    out,
                    "client certificate sent: {} (issued by {})",
                    s.subject, s.issuer
                );
            }
        }
        return fail(out, failure.unwrap_or(why));
    }
    if let (Some(_), Some(ck)) = (&hints, &client_key) {
        if let Ok(s) = CertSummary::from_der(&ck.cert[0]) {
            let _ = writeln!(
                out,
                "client certificate sent: {} (issued by {}) — accepted",
                s.subject, s.issuer
            );
        }
    }
    if let Some(path) = &target.path {
        match http_status {
            Some(s) => {
                let _ = writeln!(out, "HTTP: GET {path} -> {s}");
                if s >= 400 && failure.is_none() {
                    failure = Some(format!("the server answered {s} to GET {path}"));
                }
            }
            None => {
                failure.get_or_insert_with(|| "no HTTP response".to_string());
            }
        }
    }
    match failure {
        Some(why) => fail(out, why),
        None => {
            let _ = writeln!(
                out,
                "OK: handshake{} succeeded",
                if target.path.is_some() {
                    " and request"
                } else {
                    ""
                }
            );
            Report {
                text: out,
                ok: true,
            }
        }
    }
}

fn rustls_error(e: &std::io::Error) -> rustls::Error {
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(re) => re.clone(),
        None => rustls::Error::General(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        let t = parse_target("https://a.test/x?y").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_deref()),
            ("a.test", 443, Some("/x?y"))
        );
        let t = parse_target("https://[::1]:8443").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_deref()),
            ("::1", 8443, Some("/"))
        );
        let t = parse_target("127.0.0.1:2379").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.path), ("127.0.0.1", 2379, None));
        assert!(parse_target("a.test").is_err());
        assert!(parse_target("http://a.test").is_err());
    }
}
