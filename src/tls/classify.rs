//! Handshake outcomes as the SPEC §3 result labels, decided in one place.

use rustls::CertificateError;

use super::verifier::ChainTooLong;

/// `result` label of `portcullis_tls_handshakes_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum HandshakeResult {
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
    /// Revoked, or revocation status could not be established from the CRLs
    /// (no CRL of the certificate's issuer in the bundle).
    Revoked,
    /// The CRL that covers the certificate is past its nextUpdate: the
    /// certificate may be fine, the gateway's CRL is stale (SPEC §3).
    CrlExpired,
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
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            HandshakeResult::Ok => "ok",
            HandshakeResult::NoCertificate => "no_certificate",
            HandshakeResult::UnknownCa => "unknown_ca",
            HandshakeResult::Expired => "expired",
            HandshakeResult::NotYetValid => "not_yet_valid",
            HandshakeResult::Revoked => "revoked",
            HandshakeResult::CrlExpired => "crl_expired",
            HandshakeResult::BadUsage => "bad_usage",
            HandshakeResult::ChainTooLong => "chain_too_long",
            HandshakeResult::Denied => "denied",
            HandshakeResult::Error => "error",
        }
    }

    /// Classifies a rustls error.
    pub(crate) fn from_rustls(e: &rustls::Error) -> Self {
        match e {
            rustls::Error::NoCertificatesPresented => HandshakeResult::NoCertificate,
            rustls::Error::InvalidCertificate(ce) => Self::from_certificate_error(ce),
            _ => HandshakeResult::Error,
        }
    }

    /// Classifies a certificate error.
    pub(crate) fn from_certificate_error(ce: &CertificateError) -> Self {
        match ce {
            CertificateError::UnknownIssuer => HandshakeResult::UnknownCa,
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                HandshakeResult::Expired
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                HandshakeResult::NotYetValid
            }
            CertificateError::Revoked | CertificateError::UnknownRevocationStatus => {
                HandshakeResult::Revoked
            }
            // Not `revoked`: nothing is known against the client, and the fix
            // (renew the CRL) is on the gateway's side.
            CertificateError::ExpiredRevocationList
            | CertificateError::ExpiredRevocationListContext { .. } => HandshakeResult::CrlExpired,
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                HandshakeResult::BadUsage
            }
            CertificateError::Other(other) if other.0.downcast_ref::<ChainTooLong>().is_some() => {
                HandshakeResult::ChainTooLong
            }
            _ => HandshakeResult::Error,
        }
    }

    /// What went wrong with a handshake that failed for another reason
    /// than a refused certificate (whose reason the verifier words; see
    /// `rejection`), in words — never a library's internal names.
    pub(crate) fn words(self, e: &std::io::Error) -> &'static str {
        use rustls::Error as E;
        let inner = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
        match (self, inner) {
            (HandshakeResult::NoCertificate, _) => {
                "the client sent no certificate, and this host requires one"
            }
            (_, Some(E::AlertReceived(_))) => "the client ended the handshake with an alert (it did not accept this server, or gave up)",
            (_, Some(E::PeerIncompatible(_))) => {
                "the client and this listener have no TLS version, cipher suite or signature scheme in common"
            }
            (_, Some(E::NoApplicationProtocol)) => {
                "the client and this listener have no ALPN protocol in common"
            }
            (_, Some(E::InvalidMessage(_) | E::PeerMisbehaved(_) | E::InappropriateHandshakeMessage { .. } | E::InappropriateMessage { .. })) => {
                "the client did not follow the TLS protocol"
            }
            (_, Some(E::DecryptError)) => {
                "the client's handshake signature or data did not verify (a key that does not match its certificate?)"
            }
            (_, Some(E::InvalidCertificate(_))) => "the client certificate could not be verified",
            (_, Some(_)) => "the TLS handshake failed",
            (_, None) => match e.kind() {
                std::io::ErrorKind::UnexpectedEof => "the client closed the connection during the handshake",
                std::io::ErrorKind::ConnectionReset => "the client reset the connection during the handshake",
                std::io::ErrorKind::TimedOut => "the handshake timed out",
                _ => "the connection failed during the handshake",
            },
        }
    }

    /// Classifies the error a TLS accept future failed with.
    pub(crate) fn from_io(e: &std::io::Error) -> Self {
        match e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            Some(re) => Self::from_rustls(re),
            None => HandshakeResult::Error,
        }
    }
}

/// A TLS alert by its RFC 8446 name (`certificate_required`,
/// `unknown_ca`), never rustls's variant spelling; the one place that
/// names alerts, for probe and bench.
pub(crate) fn alert_name(a: rustls::AlertDescription) -> String {
    if a == rustls::AlertDescription::UnrecognisedName {
        return "unrecognized_name".into();
    }
    let mut out = String::new();
    let mut prev_upper = true;
    for c in format!("{a:?}").chars() {
        if c.is_ascii_uppercase() && !prev_upper {
            out.push('_');
        }
        prev_upper = c.is_ascii_uppercase();
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// What a client (bench) saw fail, as the key of its error counts: the
/// alert the server sent by name, our own TLS refusal by its result label
/// (`tls: unknown_ca`), or what the socket said.
pub(crate) fn client_failure(e: &std::io::Error) -> String {
    if let Some(re) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        return match re {
            rustls::Error::AlertReceived(a) => alert_name(*a),
            other => format!("tls: {}", HandshakeResult::from_rustls(other).as_str()),
        };
    }
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connect_refused".into(),
        std::io::ErrorKind::ConnectionReset => "reset".into(),
        std::io::ErrorKind::UnexpectedEof => "eof".into(),
        std::io::ErrorKind::TimedOut => "timeout".into(),
        _ => "io".into(),
    }
}

/// `kind` label of `portcullis_upstream_errors_total`: why a request or a
/// stream could not reach its upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UpstreamFailure {
    /// Nothing listens there.
    Refused,
    /// No answer within `limits.connectTimeout`.
    Timeout,
    /// The TLS handshake with the upstream failed.
    Tls,
    /// Any other I/O or protocol failure.
    Io,
}

impl UpstreamFailure {
    /// The label.
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamFailure::Refused => "refused",
            UpstreamFailure::Timeout => "timeout",
            UpstreamFailure::Tls => "tls",
            UpstreamFailure::Io => "io",
        }
    }

    /// Classifies an error and its sources (hyper's client errors wrap the
    /// io or rustls error that caused them).
    pub fn of(e: &(dyn std::error::Error + 'static)) -> Self {
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(c) = cur {
            if c.downcast_ref::<rustls::Error>().is_some() {
                return UpstreamFailure::Tls;
            }
            if let Some(io) = c.downcast_ref::<std::io::Error>() {
                return match io.kind() {
                    std::io::ErrorKind::ConnectionRefused => UpstreamFailure::Refused,
                    std::io::ErrorKind::TimedOut => UpstreamFailure::Timeout,
                    _ if io.get_ref().is_some_and(|i| i.is::<rustls::Error>()) => {
                        UpstreamFailure::Tls
                    }
                    _ => UpstreamFailure::Io,
                };
            }
            cur = c.source();
        }
        UpstreamFailure::Io
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_have_their_rfc_names() {
        use rustls::AlertDescription as A;
        assert_eq!(alert_name(A::UnknownCA), "unknown_ca");
        assert_eq!(alert_name(A::CertificateRequired), "certificate_required");
        assert_eq!(alert_name(A::HandshakeFailure), "handshake_failure");
        assert_eq!(alert_name(A::UnrecognisedName), "unrecognized_name");
        assert_eq!(alert_name(A::BadRecordMac), "bad_record_mac");
    }

    #[test]
    fn an_expired_crl_is_its_own_result_not_revoked() {
        use rustls::pki_types::UnixTime;
        let at = |s| UnixTime::since_unix_epoch(std::time::Duration::from_secs(s));
        for ce in [
            CertificateError::ExpiredRevocationList,
            CertificateError::ExpiredRevocationListContext {
                time: at(20),
                next_update: at(10),
            },
        ] {
            let e = rustls::Error::InvalidCertificate(ce);
            assert_eq!(HandshakeResult::from_rustls(&e).as_str(), "crl_expired");
        }
        for ce in [
            CertificateError::Revoked,
            CertificateError::UnknownRevocationStatus,
        ] {
            let e = rustls::Error::InvalidCertificate(ce);
            assert_eq!(HandshakeResult::from_rustls(&e).as_str(), "revoked");
        }
    }
}
