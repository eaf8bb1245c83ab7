//! The chains one client verifier accepted, so a client that reconnects
//! with the chain it used before does not cost a second path build (an
//! ECDSA verify per link, about a fifth of a full mTLS handshake's CPU).
//! (What a leaf says is remembered separately, in `identity::memo`.)
//!
//! Verification depends on the verifier (trust bundle, depth, EKU, CRLs),
//! which is immutable and owns its memo: a reload builds a new verifier with
//! an empty memo, so a newly published CRL is always consulted. The other
//! input, the time, is handled by storing the window in which the result
//! holds (see [`Window`]). Chains are found by the SHA-256 of their exact
//! bytes (every certificate, in order, length-prefixed), so a memo costs 32
//! bytes per chain, not the chain, and at most `CAPACITY` chains are kept.
//!
//! Proof of key possession is never memoized: rustls checks the client's
//! CertificateVerify signature on every full handshake.

use rustls_pki_types::CertificateDer;

use crate::identity::memo::Sharded;

/// The chains one verifier accepted, by SHA-256 of their bytes (sharded:
/// every worker thread's handshakes on this host entry look here).
#[derive(Debug, Default)]
pub(crate) struct VerifiedChains {
    slots: Sharded<[u8; 32], Window>,
}

/// The shard of a chain: the first bytes of its SHA-256.
fn pick(key: &[u8; 32]) -> u64 {
    u64::from_le_bytes([
        key[0], key[1], key[2], key[3], key[4], key[5], key[6], key[7],
    ])
}

impl VerifiedChains {
    fn key(leaf: &[u8], rest: &[CertificateDer<'_>]) -> [u8; 32] {
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        for c in std::iter::once(leaf).chain(rest.iter().map(|c| c.as_ref())) {
            ctx.update(&(c.len() as u64).to_be_bytes());
            ctx.update(c);
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(ctx.finish().as_ref());
        key
    }

    /// The window of a chain that verified before.
    pub(crate) fn get(&self, leaf: &[u8], rest: &[CertificateDer<'_>]) -> Option<Window> {
        let key = Self::key(leaf, rest);
        self.slots.get_with(pick(&key), &key, |w| *w)
    }

    /// Remembers that a chain verified, valid in `window`.
    pub(crate) fn insert(&self, leaf: &[u8], rest: &[CertificateDer<'_>], window: Window) {
        let key = Self::key(leaf, rest);
        self.slots.insert(pick(&key), key, window);
    }

    /// Number of remembered chains.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }
}

/// The seconds (Unix time) in which a successful verification still holds:
/// every certificate on the verified path is inside its validity and every
/// CRL consulted is before its nextUpdate. Outside it the chain is verified
/// afresh (and then fails or gets a new window).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    /// Latest notBefore on the path.
    pub from: u64,
    /// Earliest notAfter on the path, or CRL nextUpdate if sooner.
    pub until: u64,
    /// The presented intermediates on the verified path, in issuing order.
    pub path: crate::identity::VerifiedPath,
}

impl Window {
    /// Narrows to a certificate's validity (`None`, unreadable: empty).
    pub(crate) fn narrow(&mut self, validity: Option<(u64, u64)>) {
        match validity {
            Some((from, until)) => {
                self.from = self.from.max(from);
                self.until = self.until.min(until);
            }
            None => self.until = 0,
        }
    }

    /// Whether a check at `now` would give the same answer.
    pub(crate) fn holds(&self, now: u64) -> bool {
        // webpki: a certificate is valid when notBefore <= now <= notAfter
        // (`until` exclusive is one second stricter); a CRL is expired when
        // now >= nextUpdate (the same as here).
        self.from <= now && now < self.until
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::memo::CAPACITY;

    fn der(b: &[u8]) -> CertificateDer<'static> {
        CertificateDer::from(b.to_vec())
    }

    #[test]
    fn verified_chains_are_told_apart_by_every_byte_and_boundary() {
        let v = VerifiedChains::default();
        let w = Window {
            from: 1,
            until: 2,
            path: Default::default(),
        };
        v.insert(b"leaf", &[der(b"int")], w);
        assert_eq!(v.get(b"leaf", &[der(b"int")]), Some(w));
        assert_eq!(v.get(b"leaf", &[]), None, "missing intermediate");
        assert_eq!(v.get(b"lea", &[der(b"fint")]), None, "moved boundary");
        assert_eq!(v.get(b"leafint", &[]), None, "joined certificates");
        assert_eq!(v.get(b"int", &[der(b"leaf")]), None, "swapped order");
        for i in 0..4 * CAPACITY {
            v.insert(i.to_string().as_bytes(), &[], w);
        }
        assert!(
            v.len() <= CAPACITY && v.len() > CAPACITY * 3 / 4,
            "{}",
            v.len()
        );
    }

    #[test]
    fn window_is_half_open() {
        let w = Window {
            from: 10,
            until: 20,
            path: Default::default(),
        };
        assert!(!w.holds(9));
        assert!(w.holds(10));
        assert!(w.holds(19));
        assert!(!w.holds(20));
    }
}
