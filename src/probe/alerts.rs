//! What a refusal alert tells the client, in words. An alert is all the
//! client learns of the server's reason, and some alerts stand for several
//! reasons: the words say what is certain and what is only likely. Also
//! the words for a server chain that does not verify and for a handshake
//! that failed.

use rustls::{AlertDescription, CertificateError};

use super::diagnosis::{names_of, Observation};
use crate::identity::CertSummary;
use crate::words::rfc3339;

/// The result label (or the words) an alert stands for.
pub(super) fn alert_label(a: AlertDescription) -> String {
    match a {
        AlertDescription::UnknownCA => "unknown_ca".into(),
        AlertDescription::CertificateExpired => "expired (or not yet valid)".into(),
        AlertDescription::CertificateRevoked => "revoked".into(),
        AlertDescription::UnsupportedCertificate => "bad_usage (not a client certificate)".into(),
        AlertDescription::BadCertificate | AlertDescription::CertificateUnknown => {
            "bad_certificate".into()
        }
        AlertDescription::DecryptError => "the key does not match the certificate".into(),
        AlertDescription::AccessDenied => "access_denied".into(),
        other => crate::tls::classify::alert_name(other),
    }
}

/// The issuer of our leaf, when our chain reaches a CA the server named in
/// its CertificateRequest (a certificate of the chain was issued by one of
/// them, or is one of them).
pub(super) fn accepted_issuer(chain: &[impl AsRef<[u8]>], hints: &[String]) -> Option<String> {
    let summaries: Vec<CertSummary> = chain
        .iter()
        .filter_map(|c| CertSummary::from_der(c.as_ref()).ok())
        .collect();
    let reaches = summaries
        .iter()
        .any(|s| hints.contains(&s.issuer) || hints.contains(&s.subject));
    if !reaches {
        return None;
    }
    summaries.first().map(|l| l.issuer.clone())
}

/// `unknown_ca` for a certificate whose chain leads to a CA the server says
/// it accepts. The alert alone cannot say why; rustls and OpenSSL send it
/// too when the revocation status cannot be established, and a stale CRL is
/// by far the commonest cause of that, so it is named as the likely one —
/// as likely, not as fact.
pub(super) fn stale_crl_words(issuer: &str) -> String {
    format!(
        "your certificate was refused with unknown_ca, although it was issued under a CA the server \
         accepts: most likely the server could not check its revocation because the server's CRL for \
         {issuer} has expired (or it has none for that CA; the alert cannot tell which). That is for the \
         server's operator: a portcullis server logs the first as crl_expired, its `portcullis check` \
         names the CRL, and `portcullis ca crl` renews it"
    )
}

pub(super) fn accepted_cas(h: &[String]) -> String {
    if h.is_empty() {
        "it did not say which CAs it accepts".to_string()
    } else {
        format!("it accepts certificates issued by {}", h.join(" or "))
    }
}

/// Why the server chain does not verify, in words.
pub(super) fn server_problem(
    e: &rustls::Error,
    leaf: Option<&CertSummary>,
    ca: &str,
    name: &str,
) -> String {
    use CertificateError as C;
    match (e, leaf) {
        (
            rustls::Error::InvalidCertificate(
                C::NotValidForName | C::NotValidForNameContext { .. },
            ),
            Some(l),
        ) => format!(
            "the server's certificate does not cover {name}: it covers {}",
            names_of(l)
        ),
        (rustls::Error::InvalidCertificate(C::UnknownIssuer), Some(l)) => format!(
            "the server's certificate is not issued by a CA in {ca}: it was issued by {}",
            l.issuer
        ),
        (rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. }), Some(l)) => {
            format!(
                "the server's certificate expired on {}",
                rfc3339(l.not_after)
            )
        }
        (other, _) => format!(
            "the server's certificate does not verify: {}",
            client_side_words(other)
        ),
    }
}

/// Why the handshake failed, in words.
pub(super) fn handshake_problem(o: &Observation, e: &rustls::Error) -> String {
    match (e, &o.asked, &o.client_chain) {
        (
            rustls::Error::AlertReceived(
                AlertDescription::CertificateRequired | AlertDescription::HandshakeFailure,
            ),
            Some(h),
            None,
        ) => format!("the server requires a client certificate; {}", accepted_cas(h)),
        (rustls::Error::AlertReceived(AlertDescription::UnrecognisedName), _, _) => match &o.sni_sent {
            Some(_) => format!(
                "the server does not serve the name {} (unrecognized_name); give --sni with a name it serves",
                o.name_checked
            ),
            None => "the server needs a server name (SNI) and an IP address sends none (unrecognized_name); give --sni NAME or --resolve NAME:PORT:ADDRESS".to_string(),
        },
        (rustls::Error::AlertReceived(AlertDescription::UnknownCA), Some(h), Some(cert)) => {
            match accepted_issuer(cert, h) {
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
        (rustls::Error::AlertReceived(a), _, _) => {
            format!("the handshake failed: the server sent the alert {}", alert_label(*a))
        }
        (other, _, _) => format!("the handshake failed: {}", client_side_words(other)),
    }
}

/// A TLS error seen by this client, in words (never a variant name).
pub(super) fn client_side_words(e: &rustls::Error) -> String {
    use rustls::Error as E;
    use CertificateError as C;
    match e {
        E::InvalidCertificate(c) => match c {
            C::NotValidYet | C::NotValidYetContext { .. } => "it is not valid yet".into(),
            C::Revoked => "it is revoked".into(),
            C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
                "it is not for server use (extended key usage)".into()
            }
            C::BadSignature | C::UnsupportedSignatureAlgorithmContext { .. } => {
                "its signature does not verify".into()
            }
            C::BadEncoding => "it cannot be read as an X.509 certificate".into(),
            _ => format!(
                "{} ({})",
                "it was refused",
                crate::tls::HandshakeResult::from_rustls(e).as_str()
            ),
        },
        E::PeerIncompatible(_) => {
            "the server and this client have no TLS version, cipher suite or signature scheme in common".into()
        }
        E::NoApplicationProtocol => "the server and this client have no ALPN protocol in common".into(),
        E::InvalidMessage(_) | E::PeerMisbehaved(_) | E::InappropriateHandshakeMessage { .. } | E::InappropriateMessage { .. } => {
            "the server did not speak TLS as expected (is this a TLS port?)".into()
        }
        E::DecryptError => "a handshake signature did not verify".into(),
        // I/O errors, carried as text by observe (their Display is words).
        E::General(text) => text.clone(),
        _ => "the TLS handshake failed".into(),
    }
}
