//! Every rustls `ClientConfig` portcullis makes comes from [`config`]: the
//! one per upstream (`tls::upstream`), `probe`'s and `bench`'s. One place
//! picks the protocol versions and the provider; the callers differ only
//! in how the server is checked and what certificate is presented, and say
//! so with the two enums below.

use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, SignatureScheme};

/// How the server's certificate is judged.
pub(crate) enum ServerCheck {
    /// webpki against these anchors, the name checked (bench).
    Roots(Arc<RootCertStore>),
    /// The caller's verifier: webpki plus the upstream's `allow` pin, or
    /// probe's verifier that records what it saw.
    Verifier(Arc<dyn ServerCertVerifier>),
}

/// What the client presents when the server asks for a certificate.
pub(crate) enum Presented {
    /// No certificate.
    Nothing,
    /// This certificate, whatever the server asks for.
    Certificate(Arc<CertifiedKey>),
    /// The caller's resolver (probe records the CA names the server hints).
    Resolver(Arc<dyn ResolvesClientCert>),
}

/// A client config with rustls's safe default versions (TLS 1.2 and 1.3).
pub(crate) fn config(
    provider: Arc<CryptoProvider>,
    check: ServerCheck,
    presented: Presented,
    alpn: Vec<Vec<u8>>,
) -> Result<ClientConfig, rustls::Error> {
    let builder =
        ClientConfig::builder_with_provider(provider).with_safe_default_protocol_versions()?;
    let builder = match check {
        ServerCheck::Roots(roots) => builder.with_root_certificates(roots),
        ServerCheck::Verifier(v) => builder.dangerous().with_custom_certificate_verifier(v),
    };
    let mut config = match presented {
        Presented::Nothing => builder.with_no_client_auth(),
        Presented::Certificate(key) => builder.with_client_cert_resolver(Arc::new(Fixed(key))),
        Presented::Resolver(r) => builder.with_client_cert_resolver(r),
    };
    config.alpn_protocols = alpn;
    Ok(config)
}

/// Presents one client certificate whatever the server asks for.
#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl ResolvesClientCert for Fixed {
    fn resolve(&self, _: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
    fn has_certs(&self) -> bool {
        true
    }
}
