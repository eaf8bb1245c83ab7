//! Probing, the part that talks to the network: connect like a client,
//! record what the server showed (its chain, whether and how it asked for a
//! client certificate) and how the handshake and request ended. No
//! judgement here: [`super::diagnosis`] turns an [`Observation`] into words.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, SignatureScheme};
use x509_cert::der::Decode;

use super::diagnosis::{Negotiated, Observation};
use super::Options;
use crate::identity::dn::rfc2253;
use crate::tls::client;
use crate::tools::{self, parse_target, resolved};

/// Why nothing could be observed: the lines already known (the address
/// tried) and the reason.
pub(super) struct Unreachable {
    pub(super) lines: Vec<String>,
    pub(super) why: String,
}

fn setup(why: impl Into<String>) -> Unreachable {
    Unreachable {
        lines: Vec::new(),
        why: why.into(),
    }
}

/// A tool error, in words, as what stopped the probe.
fn unusable(e: impl std::error::Error) -> Unreachable {
    setup(crate::words::error_chain(&e))
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

/// Connects, handshakes, and for an https:// target sends one GET.
pub(super) fn observe(opts: &Options) -> Result<Observation, Unreachable> {
    let target = parse_target(&opts.target).map_err(unusable)?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let algs = provider.signature_verification_algorithms;
    let client_key =
        tools::client_certificate(opts.cert.as_deref(), opts.key.as_deref(), &provider)
            .map_err(unusable)?;
    let inner = match &opts.ca {
        None => None,
        Some(ca) => {
            let roots = crate::material::roots_from_file(ca).map_err(unusable)?;
            Some(
                WebPkiServerVerifier::builder_with_provider(
                    Arc::new(roots),
                    Arc::new(provider.clone()),
                )
                .build()
                .map_err(|_| {
                    setup(format!(
                        "{}: holds no CA certificate that can verify a server",
                        ca.display()
                    ))
                })?,
            )
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
    let alpn = match target.path {
        Some(_) => vec![b"http/1.1".to_vec()],
        None => Vec::new(),
    };
    let config = client::config(
        Arc::new(provider),
        client::ServerCheck::Verifier(recorder.clone()),
        client::Presented::Resolver(asked.clone()),
        alpn,
    )
    .map_err(|_| setup("no TLS protocol version is available"))?;
    let sni = opts.sni.clone().unwrap_or_else(|| target.host.clone());
    let server_name = ServerName::try_from(sni.clone())
        .map_err(|_| setup(format!("{sni:?} is not a valid server name")))?;
    let addr = match resolved(&opts.resolve, &target.host, target.port).map_err(unusable)? {
        Some(a) => a,
        None => match (target.host.as_str(), target.port)
            .to_socket_addrs()
            .map(|mut a| a.next())
        {
            Ok(Some(a)) => a,
            _ => return Err(setup(format!("cannot resolve {}", target.host))),
        },
    };
    // An IP address is never sent as SNI (RFC 6066).
    let sni_sent = match &server_name {
        ServerName::IpAddress(_) => None,
        _ => Some(sni.clone()),
    };
    let tcp =
        TcpStream::connect_timeout(&addr, Duration::from_secs(10)).map_err(|e| Unreachable {
            lines: vec![super::diagnosis::connecting_line(addr, sni_sent.as_deref())],
            why: format!("cannot connect to {addr}: {e}"),
        })?;
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
    let conn = rustls::ClientConnection::new(Arc::new(config), server_name)
        .map_err(|_| setup("cannot start a TLS client connection"))?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut error: Option<rustls::Error> = None;
    while tls.conn.is_handshaking() {
        if let Err(e) = tls.conn.complete_io(&mut tls.sock) {
            error = Some(rustls_error(&e));
            break;
        }
    }
    let mut negotiated = None;
    let mut http = target.path.clone().map(|p| (p, None));
    if error.is_none() {
        negotiated = tls
            .conn
            .protocol_version()
            .and_then(crate::tls::version_name)
            .map(|v| Negotiated {
                version: v.to_string(),
                cipher: tls
                    .conn
                    .negotiated_cipher_suite()
                    .and_then(|c| crate::tls::cipher_name(c.suite()))
                    .unwrap_or("?")
                    .to_string(),
                alpn: tls
                    .conn
                    .alpn_protocol()
                    .map(|a| String::from_utf8_lossy(a).into_owned()),
            });
        // TLS 1.3 servers judge the client certificate after the client's
        // handshake is done: the verdict arrives with the first read.
        let outcome = match &target.path {
            Some(path) => {
                // With --sni the request names that host too (like curl --resolve).
                let host = opts.sni.as_deref().unwrap_or(&target.host);
                get(&mut tls, path, host, target.port)
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
                        Ok(None)
                    }
                    other => other.map(|_| None),
                }
            }
        };
        match outcome {
            Ok(status) => {
                if let Some((_, s)) = &mut http {
                    *s = status;
                }
            }
            Err(e) => error = Some(rustls_error(&e)),
        }
    }
    let (server_chain, server_error) = match recorder.seen.lock().ok().and_then(|s| s.clone()) {
        Some((chain, verdict)) => (
            Some(chain.into_iter().map(|c| c.to_vec()).collect()),
            verdict,
        ),
        None => (None, None),
    };
    Ok(Observation {
        addr,
        sni_sent,
        name_checked: sni,
        ca: opts.ca.as_ref().map(|p| p.display().to_string()),
        negotiated,
        server_chain,
        server_error,
        asked: asked.hints.lock().ok().and_then(|h| h.clone()),
        client_chain: client_key.map(|k| k.cert.iter().map(|c| c.to_vec()).collect()),
        error,
        http,
    })
}

/// One GET; the status of the response, if one came.
fn get(
    tls: &mut rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    path: &str,
    host: &str,
    port: u16,
) -> std::io::Result<Option<u16>> {
    tls.write_all(&tools::get_request(path, host, port, "portcullis-probe"))?;
    tls.flush()?;
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
    Ok(tools::status_code(&buf))
}

fn rustls_error(e: &std::io::Error) -> rustls::Error {
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(re) => re.clone(),
        None => rustls::Error::General(e.to_string()),
    }
}
