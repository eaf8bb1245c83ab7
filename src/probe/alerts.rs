//! What a refusal alert tells the client, in words. An alert is all the
//! client learns of the server's reason, and some alerts stand for several
//! reasons: the words say what is certain and what is only likely.

use rustls::pki_types::CertificateDer;
use rustls::AlertDescription;

use crate::identity::CertSummary;

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
        // The RFC 8446 name (`handshake_failure`), not rustls's variant.
        other => format!("{other:?}")
            .chars()
            .fold(String::new(), |mut s, c| {
                if c.is_ascii_uppercase() && !s.is_empty() {
                    s.push('_');
                }
                s.push(c.to_ascii_lowercase());
                s
            }),
    }
}

/// The issuer of our leaf, when our chain reaches a CA the server named in
/// its CertificateRequest (a certificate of the chain was issued by one of
/// them, or is one of them).
pub(super) fn accepted_issuer(
    chain: &[CertificateDer<'static>],
    hints: &[String],
) -> Option<String> {
    let summaries: Vec<CertSummary> = chain
        .iter()
        .filter_map(|c| CertSummary::from_der(c).ok())
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
