//! Who the peer is: [`PeerIdentity`], extracted once per handshake from the
//! certificate chain the client presented.

pub mod cert;

use rustls_pki_types::CertificateDer;

pub use cert::CertSummary;

/// The client's identity on one connection.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PeerIdentity {
    /// Whether the chain verified against the host's trust bundle. Only
    /// `optionalNoCa` ever yields an unverified identity (SPEC §3).
    pub verified: bool,
    /// Why verification failed, as a SPEC result label (`unknown_ca`, …).
    pub failure: Option<&'static str>,
    /// The leaf certificate.
    #[serde(flatten)]
    pub cert: CertSummary,
}

impl PeerIdentity {
    /// Reads the identity of a presented chain (leaf first). `None` when the
    /// chain is empty or its leaf is not a certificate.
    pub fn from_chain(
        chain: &[CertificateDer<'_>],
        verified: bool,
        failure: Option<&'static str>,
    ) -> Option<Self> {
        let leaf = chain.first()?;
        let cert = CertSummary::from_der(leaf).ok()?;
        Some(PeerIdentity {
            verified,
            failure,
            cert,
        })
    }
}
