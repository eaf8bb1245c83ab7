//! The client-certificate verifier: trust bundle, verify depth, clientAuth
//! EKU and CRLs (SPEC §3). One per host entry that requests a certificate.
//!
//! rustls' `WebPkiClientVerifier` cannot limit the number of intermediates
//! nor accept-but-mark a chain (`optionalNoCa`), so this wraps webpki's path
//! building directly and keeps rustls' own signature checks for proof of key
//! possession.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, SignatureScheme,
};
use rustls_pki_types::{CertificateDer, UnixTime};

use crate::config::model::CrlCheck;
use crate::material::TrustBundle;

use super::classify::HandshakeResult;

/// The verified path had more intermediates than `verifyDepth` allows.
#[derive(Debug, thiserror::Error)]
#[error("certificate chain is longer than verifyDepth allows")]
pub struct ChainTooLong;

/// Verifies client certificates for one host entry.
#[derive(Debug)]
pub struct ClientVerifier {
    /// Listener name, for refusal logs.
    listener: String,
    bundle: Arc<TrustBundle>,
    required: bool,
    /// `optionalNoCa`: the handshake accepts any chain; the identity is
    /// marked by re-running [`ClientVerifier::verify_chain`] afterwards.
    accept_unverified: bool,
    max_intermediates: Option<usize>,
    crl_check: CrlCheck,
    subjects: Vec<DistinguishedName>,
    algs: WebPkiSupportedAlgorithms,
}

impl ClientVerifier {
    /// A verifier for `bundle`.
    pub fn new(
        listener: &str,
        bundle: Arc<TrustBundle>,
        required: bool,
        accept_unverified: bool,
        verify_depth: Option<u32>,
        crl_check: CrlCheck,
        algs: WebPkiSupportedAlgorithms,
    ) -> Self {
        // SPEC §3 / issue: the CertificateRequest names the trust bundle's CA
        // subjects, so clients with several certificates pick the right one.
        let subjects = bundle.roots.subjects();
        ClientVerifier {
            listener: listener.to_string(),
            bundle,
            required,
            accept_unverified,
            max_intermediates: verify_depth.map(|d| d as usize),
            crl_check,
            subjects,
            algs,
        }
    }

    /// Verifies a chain against the trust bundle, depth, EKU and CRLs.
    pub fn verify_chain(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        let cert = webpki::EndEntityCert::try_from(end_entity).map_err(pki_error)?;
        let crls: Vec<&webpki::CertRevocationList<'_>> = self.bundle.crls.iter().collect();
        let revocation = if crls.is_empty() {
            None
        } else {
            let depth = match self.crl_check {
                CrlCheck::Leaf => webpki::RevocationCheckDepth::EndEntity,
                CrlCheck::Chain => webpki::RevocationCheckDepth::Chain,
            };
            // Like OpenSSL's crl_check: a certificate whose issuer published
            // no CRL here cannot be shown unrevoked, so it is refused; an
            // expired CRL is refused too rather than silently trusted.
            webpki::RevocationOptionsBuilder::new(&crls).ok().map(|b| {
                b.with_depth(depth)
                    .with_status_policy(webpki::UnknownStatusPolicy::Deny)
                    .with_expiration_policy(webpki::ExpirationPolicy::Enforce)
                    .build()
            })
        };
        let max = self.max_intermediates;
        // OpenSSL 3 `-verify_depth N`: at most N intermediates between the
        // leaf and the trust anchor. Rejecting inside path building lets
        // webpki try a shorter path before giving up.
        let depth_check = move |path: &webpki::VerifiedPath<'_>| match max {
            Some(max) if path.intermediate_certificates().count() > max => {
                Err(webpki::Error::MaximumPathDepthExceeded)
            }
            _ => Ok(()),
        };
        cert.verify_for_usage(
            self.algs.all,
            &self.bundle.roots.roots,
            intermediates,
            now,
            webpki::KeyUsage::client_auth(),
            revocation,
            Some(&depth_check),
        )
        .map(|_| ())
        .map_err(pki_error)
    }
}

/// webpki's errors as rustls certificate errors (which pick the alert).
fn pki_error(e: webpki::Error) -> rustls::Error {
    use webpki::Error as E;
    let ce = match e {
        E::BadDer | E::BadDerTime | E::TrailingData(_) => CertificateError::BadEncoding,
        E::CertExpired { .. } | E::InvalidCertValidity => CertificateError::Expired,
        E::CertNotValidYet { .. } => CertificateError::NotValidYet,
        E::CertRevoked => CertificateError::Revoked,
        E::UnknownIssuer => CertificateError::UnknownIssuer,
        E::UnknownRevocationStatus => CertificateError::UnknownRevocationStatus,
        E::CrlExpired { .. } => CertificateError::ExpiredRevocationList,
        E::InvalidSignatureForPublicKey => CertificateError::BadSignature,
        #[allow(deprecated)]
        E::RequiredEkuNotFound | E::RequiredEkuNotFoundContext(_) | E::EmptyEkuExtension => {
            CertificateError::InvalidPurpose
        }
        E::MaximumPathDepthExceeded => CertificateError::Other(OtherError(Arc::new(ChainTooLong))),
        E::CaUsedAsEndEntity => CertificateError::BadEncoding,
        other => CertificateError::Other(OtherError(Arc::new(other))),
    };
    rustls::Error::InvalidCertificate(ce)
}

impl ClientCertVerifier for ClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.required
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.subjects
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if !self.accept_unverified {
            if let Err(e) = self.verify_chain(end_entity, intermediates, now) {
                // SPEC §3: refusals are logged with the presented subject and
                // fingerprint (never more of the certificate).
                let summary = crate::identity::CertSummary::from_der(end_entity).ok();
                tracing::warn!(
                    listener = self.listener.as_str(),
                    result = HandshakeResult::from_rustls(&e).as_str(),
                    subject = summary.as_ref().map_or("", |s| s.subject.as_str()),
                    fingerprint = summary.as_ref().map_or("", |s| s.sha256.as_str()),
                    error = %e,
                    "client certificate rejected"
                );
                return Err(e);
            }
        }
        Ok(ClientCertVerified::assertion())
    }

    // SPEC §3: even optionalNoCa checks the CertificateVerify signature, so a
    // client cannot present a certificate whose key it does not hold.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}
