//! Why a client certificate was refused, in words, for the one line a
//! refused handshake is logged on (SPEC §3).
//!
//! The verifier knows the presented certificate and the reason; the
//! connection knows the client's address and SNI. rustls calls the verifier
//! synchronously inside the poll that then fails the handshake, on the same
//! thread, so the verifier leaves its [`Rejection`] in a thread-local slot
//! and the connection takes it before it next yields. The slot is cleared
//! before every handshake, so a note never outlives its handshake.

use std::cell::RefCell;

use rustls::{CertificateError, OtherError};

use crate::identity::CertSummary;
use crate::material::CrlInfo;
use crate::words::rfc3339;

use super::verifier::ChainTooLong;

pub(crate) use crate::telemetry::Rejection;

thread_local! {
    static NOTE: RefCell<Option<Rejection>> = const { RefCell::new(None) };
}

/// Leaves the note of a refusal for the connection.
pub(super) fn leave(r: Rejection) {
    NOTE.with(|n| *n.borrow_mut() = Some(r));
}

/// Takes the note the verifier left during this handshake, if any. Called
/// before a handshake (to clear) and right after it fails.
pub(crate) fn take() -> Option<Rejection> {
    NOTE.with(|n| n.borrow_mut().take())
}

/// The reason a verification error gives, in words with what fixes it.
pub(super) fn words(
    e: &rustls::Error,
    leaf: Option<&CertSummary>,
    bundle: &str,
    lapsed: Option<&CrlInfo>,
) -> String {
    let issuer = leaf.map_or("its issuer", |l| l.issuer.as_str());
    let rustls::Error::InvalidCertificate(ce) = e else {
        return "the certificate could not be verified".into();
    };
    match ce {
        CertificateError::UnknownIssuer => format!(
            "issued by {issuer}, which trust bundle \"{bundle}\" does not contain: add that CA to the bundle, or present a certificate from one of its CAs"
        ),
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => format!(
            "it expired on {}: issue a new client certificate",
            leaf.map_or_else(|| "its notAfter".into(), |l| rfc3339(l.not_after))
        ),
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => format!(
            "it is not valid before {}: check the clocks of the client's CA and of this host",
            leaf.map_or_else(|| "its notBefore".into(), |l| rfc3339(l.not_before))
        ),
        CertificateError::Revoked => {
            format!("it is revoked by the CRL of {issuer} in trust bundle \"{bundle}\"")
        }
        CertificateError::ExpiredRevocationList
        | CertificateError::ExpiredRevocationListContext { .. } => match lapsed {
            Some(c) => format!(
                "the CRL {} of {} expired on {}, so no certificate it covers can be checked: {}",
                c.source,
                c.issuer,
                c.next_update.map_or_else(|| "its nextUpdate".into(), rfc3339),
                c.renew
            ),
            None => format!(
                "a CRL of trust bundle \"{bundle}\" has expired: renew it (`portcullis ca crl`)"
            ),
        },
        CertificateError::UnknownRevocationStatus => format!(
            "trust bundle \"{bundle}\" has no CRL from {issuer}, and crlCheck needs one for every certificate it covers: add it to crlFiles"
        ),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "it lacks the clientAuth extended key usage (a server certificate?): issue it as a client certificate (`portcullis cert issue --profile client`)".into()
        }
        CertificateError::Other(OtherError(inner)) if inner.is::<ChainTooLong>() => {
            "its chain has more intermediates than the host's verifyDepth allows".into()
        }
        CertificateError::BadSignature => {
            "a signature in its chain does not verify".into()
        }
        CertificateError::BadEncoding => "it is not a well-formed certificate".into(),
        _ => "it could not be verified".into(),
    }
}
