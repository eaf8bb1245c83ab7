//! Mutual TLS *to* upstreams: one `ClientConfig` per upstream (so two
//! identity profiles to the same host never share sessions or pooled
//! connections), presenting a certificate of ours, verifying the upstream
//! against a trust bundle or the system roots, and optionally pinning the
//! upstream's identity with `allow`.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::config::model;
use crate::identity::authz::{self, Allow, Decision};
use crate::identity::PeerIdentity;
use crate::material::Material;

use super::{client, TlsError};

/// What building an upstream needs besides its own settings: the limits,
/// the loaded material, the crypto provider, and the system roots (loaded
/// once, by the first upstream that asks for them).
pub(crate) struct UpstreamContext<'a> {
    /// Connection limits (connect timeout).
    pub limits: &'a crate::config::model::Limits,
    /// Certificates and trust bundles.
    pub material: &'a crate::material::Material,
    /// The crypto provider.
    pub provider: &'a std::sync::Arc<rustls::crypto::CryptoProvider>,
    /// The system roots, once loaded.
    pub system: Option<std::sync::Arc<rustls::RootCertStore>>,
}

/// The prepared TLS side of one upstream.
#[derive(Debug)]
pub struct UpstreamTls {
    /// Its own client config (own session store).
    pub config: Arc<ClientConfig>,
    /// SNI sent and name verified.
    pub server_name: ServerName<'static>,
}

/// webpki verification, then the `allow` pin on the upstream's identity.
#[derive(Debug)]
struct Pinned {
    upstream: String,
    inner: Arc<WebPkiServerVerifier>,
    allow: Option<Allow>,
}

impl ServerCertVerifier for Pinned {
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
        if let Some(rule) = &self.allow {
            let id = PeerIdentity::from_chain(std::slice::from_ref(end_entity), true, None);
            if authz::decide(rule, id.as_ref()) != Decision::Allow {
                tracing::warn!(
                    upstream = self.upstream.as_str(),
                    subject = id.as_ref().map_or("", |i| i.cert.subject.as_str()),
                    uri_sans = id
                        .as_ref()
                        .map_or(String::new(), |i| i.cert.uri_sans.join(","))
                        .as_str(),
                    "upstream identity not allowed by upstreams.tls.allow"
                );
                return Err(rustls::Error::InvalidCertificate(
                    CertificateError::ApplicationVerificationFailure,
                ));
            }
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(m, c, d)
    }

    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(m, c, d)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The system's trust anchors, loaded once per snapshot when needed.
pub(crate) fn system_roots() -> Result<Arc<RootCertStore>, TlsError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    for c in found.certs {
        let _ = roots.add(c);
    }
    if roots.is_empty() {
        return Err(TlsError::NoSystemRoots);
    }
    Ok(Arc::new(roots))
}

impl UpstreamTls {
    /// Prepares upstream `name`.
    pub fn build(
        name: &str,
        t: &model::UpstreamTls,
        alpn: &[&[u8]],
        material: &Material,
        provider: &Arc<CryptoProvider>,
        system: &mut Option<Arc<RootCertStore>>,
    ) -> Result<Self, TlsError> {
        let roots = match &t.trust_bundle {
            Some(b) => material
                .trust_bundles
                .get(b)
                .map(|b| b.roots.clone())
                .ok_or_else(|| super::not_loaded("trust bundle", b))?,
            None => match system {
                Some(r) => r.clone(),
                None => {
                    let r = system_roots()?;
                    *system = Some(r.clone());
                    r
                }
            },
        };
        let inner = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|source| TlsError::Verifier {
                upstream: name.to_string(),
                source,
            })?;
        let verifier = Arc::new(Pinned {
            upstream: name.to_string(),
            inner,
            allow: t.allow.clone(),
        });
        let presented = match &t.certificate {
            Some(c) => {
                let id = material
                    .identities
                    .get(c)
                    .ok_or_else(|| super::not_loaded("certificate", c))?;
                client::Presented::Certificate(id.certified_key.clone())
            }
            None => client::Presented::Nothing,
        };
        let alpn = match &t.alpn {
            Some(list) => list.iter().map(|a| a.as_bytes().to_vec()).collect(),
            None => alpn.iter().map(|a| a.to_vec()).collect(),
        };
        let config = client::config(
            provider.clone(),
            client::ServerCheck::Verifier(verifier),
            presented,
            alpn,
        )
        .map_err(|e| TlsError::Config {
            what: format!("upstream {name}"),
            source: e,
        })?;
        Ok(UpstreamTls {
            config: Arc::new(config),
            server_name: t.server_name.clone(),
        })
    }
}
