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

use super::cache::{VerifiedChains, Window};

/// The verified path had more intermediates than `verifyDepth` allows.
#[derive(Debug, thiserror::Error)]
#[error("certificate chain is longer than verifyDepth allows")]
pub(crate) struct ChainTooLong;

/// Verifies client certificates for one host entry.
#[derive(Debug)]
pub struct ClientVerifier {
    bundle: Arc<TrustBundle>,
    required: bool,
    /// `optionalNoCa`: the handshake accepts any chain; the identity is
    /// marked by re-running [`ClientVerifier::verify_chain`] afterwards.
    accept_unverified: bool,
    max_intermediates: Option<usize>,
    crl_check: CrlCheck,
    subjects: Vec<DistinguishedName>,
    algs: WebPkiSupportedAlgorithms,
    /// Chains that verified, with the time window in which that holds. The
    /// verifier is immutable and rebuilt on reload, so this never outlives
    /// the trust bundle and CRLs it was filled under (see `tls::cache`).
    verified: VerifiedChains,
    /// Earliest nextUpdate of this bundle's CRLs (`Some(0)` when one could
    /// not be read, which disables the cache).
    crl_until: Option<u64>,
}

impl ClientVerifier {
    /// Whether a certificate is required (`require`).
    pub(crate) fn required(&self) -> bool {
        self.required
    }

    /// A verifier for `bundle`.
    pub fn new(
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
        let crl_until = bundle
            .crl_info
            .iter()
            .map(|c| c.next_update.unwrap_or(0))
            .min();
        ClientVerifier {
            bundle,
            required,
            accept_unverified,
            max_intermediates: verify_depth.map(|d| d as usize),
            crl_check,
            subjects,
            algs,
            verified: VerifiedChains::default(),
            crl_until,
        }
    }

    /// Whether the CRLs must cover the whole chain (`crlCheck: chain`), so a
    /// revoked intermediate concerns the connections of its leaves.
    pub fn checks_chain(&self) -> bool {
        self.crl_check == CrlCheck::Chain
    }

    /// Verifies a chain against the trust bundle, depth, EKU and CRLs. A
    /// chain that verified before, inside the window in which that result
    /// holds, is not verified again.
    pub fn verify_chain(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        self.verified_path(end_entity, intermediates, now)
            .map(|_| ())
    }

    /// [`ClientVerifier::verify_chain`], saying which of `intermediates`
    /// form the verified path, in issuing order — what RFC 9440's
    /// `Client-Cert-Chain` carries, rather than whatever else the client
    /// sent along.
    pub fn verified_path(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<crate::identity::VerifiedPath, rustls::Error> {
        let secs = now.as_secs();
        if let Some(window) = self.verified.get(end_entity, intermediates) {
            if window.holds(secs) {
                return Ok(window.path);
            }
        }
        let window = self.verify_uncached(end_entity, intermediates, now)?;
        if window.holds(secs) {
            self.verified.insert(end_entity, intermediates, window);
        }
        Ok(window.path)
    }

    /// The full check; on success, the window in which its result holds.
    fn verify_uncached(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<Window, rustls::Error> {
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
        let path = cert
            .verify_for_usage(
                self.algs.all,
                &self.bundle.roots.roots,
                intermediates,
                now,
                webpki::KeyUsage::client_auth(),
                revocation,
                Some(&depth_check),
            )
            .map_err(pki_error)?;
        // The result changes only when a certificate on the path enters or
        // leaves its validity, or when a consulted CRL expires. (Trust
        // anchors' own dates are not checked by webpki, nor here.)
        let mut window = Window {
            from: 0,
            until: match revocation {
                // No CRL dates known while CRLs are in use: do not remember.
                Some(_) => self.crl_until.unwrap_or(0),
                None => u64::MAX,
            },
            path: Default::default(),
        };
        // The leaf's dates come from the identity memo: the identity is read
        // right after the handshake anyway.
        window.narrow(
            crate::identity::memo::summary(end_entity).map(|s| (s.not_before, s.not_after)),
        );
        for c in path.intermediate_certificates() {
            window.narrow(validity(&c.der()));
            // (webpki yields the path from the leaf's issuer upward.)
            match intermediates
                .iter()
                .position(|p| p.as_ref() == c.der().as_ref())
            {
                Some(i) => window.path.push(i),
                // Not one the client sent: record nothing about the path.
                None => window.path.push(usize::MAX - 1),
            }
        }
        Ok(window)
    }
}

impl ClientVerifier {
    /// The bundle's CRL whose lapse `e` reports (found by its nextUpdate,
    /// the one thing webpki's error carries).
    fn lapsed_crl(&self, e: &rustls::Error) -> Option<&crate::material::CrlInfo> {
        let rustls::Error::InvalidCertificate(CertificateError::ExpiredRevocationListContext {
            next_update,
            ..
        }) = e
        else {
            return None;
        };
        self.bundle
            .crl_info
            .iter()
            .find(|c| c.next_update == Some(next_update.as_secs()))
    }
}

/// notBefore and notAfter of a DER certificate (an intermediate), in Unix
/// seconds.
fn validity(der: &[u8]) -> Option<(u64, u64)> {
    use x509_cert::der::Decode;
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    let v = &cert.tbs_certificate.validity;
    Some((
        v.not_before.to_unix_duration().as_secs(),
        v.not_after.to_unix_duration().as_secs(),
    ))
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
        // With its dates, so the refusal says when the CRL lapsed. The
        // client gets `unknown_ca`, as from OpenSSL when revocation status
        // cannot be established (rustls' mapping).
        E::CrlExpired { time, next_update } => {
            CertificateError::ExpiredRevocationListContext { time, next_update }
        }
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
                // SPEC §3: the refusal is logged on one line by the
                // connection, which knows the client's address; it gets the
                // presented subject, issuer and fingerprint (never more of
                // the certificate) and the reason in words from this note.
                let summary = crate::identity::memo::summary(end_entity);
                let crl = self.lapsed_crl(&e);
                super::rejection::leave(super::rejection::Rejection {
                    subject: summary
                        .as_ref()
                        .map_or_else(String::new, |s| s.subject.clone()),
                    issuer: summary
                        .as_ref()
                        .map_or_else(String::new, |s| s.issuer.clone()),
                    fingerprint: summary
                        .as_ref()
                        .map_or_else(String::new, |s| s.sha256.clone()),
                    reason: super::rejection::words(&e, summary.as_deref(), &self.bundle.name, crl),
                    crl: crl.map(|c| (c.source.clone(), c.issuer.clone(), c.renew.clone())),
                });
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rcgen::{
        BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
        ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, SerialNumber,
    };
    use rustls::RootCertStore;
    use time::OffsetDateTime;

    use super::*;

    const DAY: u64 = 86_400;

    struct Pki {
        root: CertificateDer<'static>,
        inter: CertificateDer<'static>,
        leaf: CertificateDer<'static>,
        /// The intermediate's CRL (revokes nothing), valid for an hour.
        crl: rustls_pki_types::CertificateRevocationListDer<'static>,
        now: u64,
    }

    fn params(cn: &str, ca: bool, serial: u8, days: (i64, i64)) -> CertificateParams {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.serial_number = Some(SerialNumber::from(vec![serial]));
        let now = OffsetDateTime::now_utc();
        p.not_before = now + time::Duration::days(days.0);
        p.not_after = now + time::Duration::days(days.1);
        if ca {
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        } else {
            p.is_ca = IsCa::ExplicitNoCa;
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        }
        p
    }

    /// root (±60 days) → intermediate (±60 days) → leaf (±1 day).
    fn pki() -> Pki {
        let alg = &rcgen::PKCS_ECDSA_P256_SHA256;
        let (rk, ik, lk) = (
            KeyPair::generate_for(alg).unwrap(),
            KeyPair::generate_for(alg).unwrap(),
            KeyPair::generate_for(alg).unwrap(),
        );
        let rp = params("root", true, 1, (-60, 60));
        let root = rp.self_signed(&rk).unwrap();
        let ip = params("inter", true, 2, (-60, 60));
        let inter = ip.signed_by(&ik, &Issuer::new(rp, rk)).unwrap();
        let inter_issuer = Issuer::new(ip, ik);
        let leaf = params("leaf", false, 3, (-1, 1))
            .signed_by(&lk, &inter_issuer)
            .unwrap();
        let now = OffsetDateTime::now_utc();
        let crl = CertificateRevocationListParams {
            this_update: now - time::Duration::minutes(1),
            next_update: now + time::Duration::hours(1),
            crl_number: SerialNumber::from(vec![1]),
            issuing_distribution_point: None,
            revoked_certs: Vec::new(),
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&inter_issuer)
        .unwrap();
        Pki {
            root: root.der().clone(),
            inter: inter.der().clone(),
            leaf: leaf.der().clone(),
            crl: crl.der().clone(),
            now: now.unix_timestamp() as u64,
        }
    }

    fn verifier(p: &Pki, with_crl: bool) -> ClientVerifier {
        let mut roots = RootCertStore::empty();
        roots.add(p.root.clone()).unwrap();
        let (crls, crl_info) = if with_crl {
            let parsed = webpki::OwnedCertRevocationList::from_der(&p.crl).unwrap();
            (
                vec![webpki::CertRevocationList::from(parsed)],
                vec![crate::material::CrlInfo {
                    issuer: "CN=inter".to_string(),
                    next_update: Some(p.now + 3600),
                    source: "inter.crl".to_string(),
                    renew: String::new(),
                }],
            )
        } else {
            (Vec::new(), Vec::new())
        };
        let bundle = TrustBundle {
            name: "t".into(),
            roots: Arc::new(roots),
            cas: Vec::new(),
            crls,
            crl_info,
            crl_digests: Vec::new(),
            revoked: Vec::new(),
        };
        let algs = rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms;
        ClientVerifier::new(Arc::new(bundle), true, false, None, CrlCheck::Leaf, algs)
    }

    fn at(secs: u64) -> UnixTime {
        UnixTime::since_unix_epoch(Duration::from_secs(secs))
    }

    fn cert_error(r: Result<(), rustls::Error>) -> CertificateError {
        match r {
            Err(rustls::Error::InvalidCertificate(e)) => e,
            other => panic!("expected a certificate error, got {other:?}"),
        }
    }

    #[test]
    fn a_remembered_chain_is_still_checked_against_the_time() {
        let p = pki();
        let v = verifier(&p, false);
        let chain = [p.inter.clone()];
        v.verify_chain(&p.leaf, &chain, at(p.now)).unwrap();
        assert_eq!(v.verified.len(), 1);
        assert_eq!(
            cert_error(v.verify_chain(&p.leaf, &chain, at(p.now + 2 * DAY))),
            CertificateError::Expired
        );
        assert_eq!(
            cert_error(v.verify_chain(&p.leaf, &chain, at(p.now - 2 * DAY))),
            CertificateError::NotValidYet
        );
        v.verify_chain(&p.leaf, &chain, at(p.now + 60)).unwrap();
    }

    #[test]
    fn a_remembered_chain_does_not_vouch_for_the_leaf_alone() {
        let p = pki();
        let v = verifier(&p, false);
        v.verify_chain(&p.leaf, std::slice::from_ref(&p.inter), at(p.now))
            .unwrap();
        assert_eq!(
            cert_error(v.verify_chain(&p.leaf, &[], at(p.now))),
            CertificateError::UnknownIssuer
        );
    }

    #[test]
    fn a_remembered_result_ends_when_the_crl_expires() {
        let p = pki();
        let v = verifier(&p, true);
        let chain = [p.inter.clone()];
        v.verify_chain(&p.leaf, &chain, at(p.now)).unwrap();
        assert_eq!(v.verified.len(), 1);
        assert!(matches!(
            cert_error(v.verify_chain(&p.leaf, &chain, at(p.now + 7200))),
            CertificateError::ExpiredRevocationListContext { next_update, .. }
                if next_update.as_secs() == p.now + 3600
        ));
    }
}
