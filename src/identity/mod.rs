//! Who the peer is: [`PeerIdentity`], extracted once per handshake from the
//! certificate chain the client presented (and restored with it on resumed
//! sessions), and `authz`, pure matching of `allow` rules.

pub mod authz;
pub mod cert;
pub mod dn;
pub mod memo;

use std::sync::Arc;

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
    /// The leaf certificate, read once per distinct leaf (shared by the
    /// connections that present it; see [`memo`]).
    #[serde(flatten)]
    pub cert: Arc<CertSummary>,
    /// The presented chain, leaf first, as DER.
    #[serde(skip)]
    pub chain: Arc<[CertificateDer<'static>]>,
    /// Which presented intermediates (bit `i`: `chain[i + 1]`) are on the
    /// path that verified; 0 when unverified or not known.
    #[serde(skip)]
    pub path: u64,
}

impl PeerIdentity {
    /// The identity of a presented chain (leaf first); the leaf is read
    /// through the process-wide [`memo`]. `None` when the chain is empty or
    /// its leaf is not a certificate.
    pub fn from_chain(
        chain: &[CertificateDer<'_>],
        verified: bool,
        failure: Option<&'static str>,
    ) -> Option<Self> {
        Some(PeerIdentity {
            verified,
            failure,
            cert: memo::summary(chain.first()?)?,
            chain: chain.iter().map(|c| c.clone().into_owned()).collect(),
            path: 0,
        })
    }

    /// The intermediates on the verified path, in the order presented.
    pub fn verified_intermediates(&self) -> impl Iterator<Item = &CertificateDer<'static>> {
        self.chain
            .iter()
            .skip(1)
            .take(64)
            .enumerate()
            .filter(|(i, _)| self.path & (1 << i) != 0)
            .map(|(_, c)| c)
    }

    /// The leaf certificate in PEM, as OpenSSL writes it (64-column lines,
    /// `\n` endings).
    pub fn leaf_pem(&self) -> String {
        self.chain.first().map(|c| pem_of(c)).unwrap_or_default()
    }

    /// Every presented certificate in PEM, leaf first.
    pub fn chain_pem(&self) -> String {
        self.chain.iter().map(|c| pem_of(c)).collect()
    }
}

fn pem_of(der: &CertificateDer<'_>) -> String {
    pem::encode_config(
        &pem::Pem::new("CERTIFICATE", der.as_ref()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}
