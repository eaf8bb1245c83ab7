//! Handshake outcomes as the SPEC §3 result labels, decided in one place.

use rustls::CertificateError;

use super::verifier::ChainTooLong;

/// `result` label of `portcullis_tls_handshakes_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HandshakeResult {
    /// Handshake completed.
    Ok,
    /// A certificate was required and none was sent.
    NoCertificate,
    /// The chain does not lead to the trust bundle.
    UnknownCa,
    /// A certificate of the chain has expired.
    Expired,
    /// A certificate of the chain is not valid yet.
    NotYetValid,
    /// Revoked, or revocation status could not be established from the CRLs.
    Revoked,
    /// The certificate is not for client authentication (EKU).
    BadUsage,
    /// More intermediates than `verifyDepth` allows.
    ChainTooLong,
    /// Refused by policy (unknown SNI, `allow` unmet).
    Denied,
    /// Anything else: protocol errors, timeouts, I/O.
    Error,
}

impl HandshakeResult {
    /// The SPEC spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            HandshakeResult::Ok => "ok",
            HandshakeResult::NoCertificate => "no_certificate",
            HandshakeResult::UnknownCa => "unknown_ca",
            HandshakeResult::Expired => "expired",
            HandshakeResult::NotYetValid => "not_yet_valid",
            HandshakeResult::Revoked => "revoked",
            HandshakeResult::BadUsage => "bad_usage",
            HandshakeResult::ChainTooLong => "chain_too_long",
            HandshakeResult::Denied => "denied",
            HandshakeResult::Error => "error",
        }
    }

    /// Classifies a rustls error.
    pub fn from_rustls(e: &rustls::Error) -> Self {
        match e {
            rustls::Error::NoCertificatesPresented => HandshakeResult::NoCertificate,
            rustls::Error::InvalidCertificate(ce) => Self::from_certificate_error(ce),
            _ => HandshakeResult::Error,
        }
    }

    /// Classifies a certificate error.
    pub fn from_certificate_error(ce: &CertificateError) -> Self {
        match ce {
            CertificateError::UnknownIssuer => HandshakeResult::UnknownCa,
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                HandshakeResult::Expired
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                HandshakeResult::NotYetValid
            }
            CertificateError::Revoked
            | CertificateError::UnknownRevocationStatus
            | CertificateError::ExpiredRevocationList
            | CertificateError::ExpiredRevocationListContext { .. } => HandshakeResult::Revoked,
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                HandshakeResult::BadUsage
            }
            CertificateError::Other(other) if other.0.downcast_ref::<ChainTooLong>().is_some() => {
                HandshakeResult::ChainTooLong
            }
            _ => HandshakeResult::Error,
        }
    }

    /// Classifies the error a TLS accept future failed with.
    pub fn from_io(e: &std::io::Error) -> Self {
        match e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            Some(re) => Self::from_rustls(re),
            None => HandshakeResult::Error,
        }
    }
}
