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
    /// Which presented intermediates form the path that verified, in
    /// issuing order; empty when unverified or not known.
    #[serde(skip)]
    pub path: VerifiedPath,
}

/// The presented intermediates on a verified path, in issuing order (the
/// leaf's issuer first): entry `k` holds an index into the intermediates
/// plus one, 0 after the last. A path of more than 8 intermediates, or one
/// using a certificate presented past the 254th, is not recorded, and then
/// nothing is claimed about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VerifiedPath([u8; 8]);

impl VerifiedPath {
    const UNKNOWN: VerifiedPath = VerifiedPath([u8::MAX; 8]);

    /// Appends the intermediate at `index` (the next one up the path).
    pub(crate) fn push(&mut self, index: usize) {
        if *self == Self::UNKNOWN {
            return;
        }
        match (self.0.iter().position(|b| *b == 0), u8::try_from(index + 1)) {
            (Some(k), Ok(v)) if v != u8::MAX => self.0[k] = v,
            _ => *self = Self::UNKNOWN,
        }
    }

    /// The indices, in issuing order (none when not recorded).
    pub fn indices(&self) -> impl Iterator<Item = usize> + '_ {
        let known = *self != Self::UNKNOWN;
        self.0
            .iter()
            .take_while(move |b| known && **b != 0)
            .map(|b| usize::from(*b) - 1)
    }
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
            path: VerifiedPath::default(),
        })
    }

    /// The intermediates on the verified path, in issuing order.
    pub fn verified_intermediates(&self) -> impl Iterator<Item = &CertificateDer<'static>> {
        self.path.indices().filter_map(|i| self.chain.get(i + 1))
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

#[cfg(test)]
mod tests {
    use super::VerifiedPath;

    #[test]
    fn verified_paths_keep_issuing_order_and_give_up_past_eight() {
        let mut p = VerifiedPath::default();
        assert_eq!(p.indices().count(), 0);
        p.push(2);
        p.push(0);
        assert_eq!(p.indices().collect::<Vec<_>>(), [2, 0]);
        for i in 0..6 {
            p.push(i);
        }
        assert_eq!(p.indices().count(), 8);
        p.push(1);
        assert_eq!(p.indices().count(), 0, "nine: not recorded");
        let mut far = VerifiedPath::default();
        far.push(254);
        assert_eq!(far.indices().count(), 0, "an index that does not fit");
        let mut ok = VerifiedPath::default();
        ok.push(253);
        assert_eq!(ok.indices().collect::<Vec<_>>(), [253]);
    }
}
