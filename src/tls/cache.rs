//! Memos of work done on presented client chains, so a client that
//! reconnects (or resumes) with the chain it used before costs neither a
//! second path build (an ECDSA verify per link, about a fifth of a full
//! mTLS handshake's CPU) nor a second X.509 parse of its identity.
//!
//! - [`VerifiedChains`]: per verifier, the chains that verified and the
//!   window in which that holds. Verification depends on the verifier
//!   (trust bundle, depth, EKU, CRLs), which is immutable and owns its memo:
//!   a reload builds a new verifier with an empty memo, so a newly published
//!   CRL is always consulted. The other input, the time, is handled by
//!   storing the window in which the result holds (see [`Window`]). Chains
//!   are found by the SHA-256 of their exact bytes (every certificate, in
//!   order, length-prefixed), so a memo costs 32 bytes per chain, not the
//!   chain.
//! - [`Identities`]: what a leaf certificate says (the parsed identity), a
//!   pure function of its bytes, found by the exact bytes: the 64-bit hash
//!   (SipHash with a random key, so it cannot be steered into collisions)
//!   only picks the slot; a hit compares the bytes. It says nothing about
//!   whether the chain is trusted. Leaves over [`MAX_REMEMBERED_LEAF`] bytes
//!   are read afresh every time, so it holds at most a few MiB however
//!   large the certificates clients send.
//!
//! Proof of key possession is never memoized: rustls checks the client's
//! CertificateVerify signature on every full handshake. Both memos are
//! bounded; past `CAPACITY` an arbitrary entry is dropped.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};

use rustls_pki_types::CertificateDer;

use crate::identity::CertSummary;

/// Entries per memo.
const CAPACITY: usize = 1024;

/// A chain as stored: leaf first.
pub type Chain = Arc<[CertificateDer<'static>]>;

/// A bounded map from a presented chain (leaf, then intermediates) to `V`.
#[derive(Debug)]
pub struct ChainCache<V> {
    hasher: RandomState,
    slots: Mutex<HashMap<u64, (Chain, V)>>,
}

impl<V: Clone> Default for ChainCache<V> {
    fn default() -> Self {
        ChainCache {
            hasher: RandomState::new(),
            slots: Mutex::new(HashMap::new()),
        }
    }
}

impl<V: Clone> ChainCache<V> {
    fn key(&self, leaf: &[u8], rest: &[CertificateDer<'_>]) -> u64 {
        use std::hash::Hasher;
        let mut h = self.hasher.build_hasher();
        h.write_usize(leaf.len());
        h.write(leaf);
        for c in rest {
            h.write_usize(c.len());
            h.write(c);
        }
        h.finish()
    }

    /// The stored chain and value for exactly this chain.
    pub fn get(&self, leaf: &[u8], rest: &[CertificateDer<'_>]) -> Option<(Chain, V)> {
        let key = self.key(leaf, rest);
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let (chain, v) = slots.get(&key)?;
        let same = chain.len() == rest.len() + 1
            && chain[0].as_ref() == leaf
            && chain[1..]
                .iter()
                .zip(rest)
                .all(|(a, b)| a.as_ref() == b.as_ref());
        same.then(|| (chain.clone(), v.clone()))
    }

    /// Stores `v` for `chain` (leaf first; must not be empty).
    pub fn insert(&self, chain: Chain, v: V) {
        let Some((leaf, rest)) = chain.split_first() else {
            return;
        };
        let key = self.key(leaf, rest);
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if slots.len() >= CAPACITY && !slots.contains_key(&key) {
            if let Some(k) = slots.keys().next().copied() {
                slots.remove(&k);
            }
        }
        slots.insert(key, (chain, v));
    }

    /// Number of stored chains.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.slots.lock().map(|s| s.len()).unwrap_or(0)
    }
}

/// Leaves larger than this are not remembered (a usual one is 0.5–2 KiB).
pub const MAX_REMEMBERED_LEAF: usize = 4096;

/// Identities read from leaf certificates, by the leaf's exact bytes.
#[derive(Debug, Default)]
pub struct Identities(ChainCache<Arc<CertSummary>>);

impl Identities {
    /// What `leaf` says, read once per distinct (small) leaf. `None` when it
    /// is not a readable certificate.
    pub fn summary(&self, leaf: &[u8]) -> Option<Arc<CertSummary>> {
        if let Some((_, s)) = self.0.get(leaf, &[]) {
            return Some(s);
        }
        let s = Arc::new(CertSummary::from_der(leaf).ok()?);
        if leaf.len() <= MAX_REMEMBERED_LEAF {
            let key: Chain = Arc::new([CertificateDer::from(leaf.to_vec())]);
            self.0.insert(key, s.clone());
        }
        Some(s)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// Owns a presented chain.
pub fn owned_chain(leaf: &CertificateDer<'_>, rest: &[CertificateDer<'_>]) -> Chain {
    std::iter::once(leaf)
        .chain(rest)
        .map(|c| c.clone().into_owned())
        .collect()
}

/// The chains one verifier accepted, by SHA-256 of their bytes.
#[derive(Debug, Default)]
pub struct VerifiedChains {
    slots: Mutex<HashMap<[u8; 32], Window>>,
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
    pub fn get(&self, leaf: &[u8], rest: &[CertificateDer<'_>]) -> Option<Window> {
        let key = Self::key(leaf, rest);
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.get(&key).copied()
    }

    /// Remembers that a chain verified, valid in `window`.
    pub fn insert(&self, leaf: &[u8], rest: &[CertificateDer<'_>], window: Window) {
        let key = Self::key(leaf, rest);
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if slots.len() >= CAPACITY && !slots.contains_key(&key) {
            if let Some(k) = slots.keys().next().copied() {
                slots.remove(&k);
            }
        }
        slots.insert(key, window);
    }

    /// Number of remembered chains.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.slots.lock().map(|s| s.len()).unwrap_or(0)
    }
}

/// The seconds (Unix time) in which a successful verification still holds:
/// every certificate on the verified path is inside its validity and every
/// CRL consulted is before its nextUpdate. Outside it the chain is verified
/// afresh (and then fails or gets a new window).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Latest notBefore on the path.
    pub from: u64,
    /// Earliest notAfter on the path, or CRL nextUpdate if sooner.
    pub until: u64,
}

impl Window {
    /// Narrows to a certificate's validity (`None`, unreadable: empty).
    pub fn narrow(&mut self, validity: Option<(u64, u64)>) {
        match validity {
            Some((from, until)) => {
                self.from = self.from.max(from);
                self.until = self.until.min(until);
            }
            None => self.until = 0,
        }
    }

    /// Whether a check at `now` would give the same answer.
    pub fn holds(&self, now: u64) -> bool {
        // webpki: a certificate is valid when notBefore <= now <= notAfter
        // (`until` exclusive is one second stricter); a CRL is expired when
        // now >= nextUpdate (the same as here).
        self.from <= now && now < self.until
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn der(b: &[u8]) -> CertificateDer<'static> {
        CertificateDer::from(b.to_vec())
    }

    #[test]
    fn hit_needs_the_same_bytes_in_the_same_order() {
        let c: ChainCache<u8> = ChainCache::default();
        c.insert(owned_chain(&der(b"leaf"), &[der(b"int")]), 7);
        assert_eq!(c.get(b"leaf", &[der(b"int")]).map(|x| x.1), Some(7));
        assert!(c.get(b"leaf", &[]).is_none(), "missing intermediate");
        assert!(c.get(b"leaf", &[der(b"int"), der(b"x")]).is_none());
        assert!(c.get(b"leaF", &[der(b"int")]).is_none());
        assert!(c.get(b"int", &[der(b"leaf")]).is_none());
    }

    #[test]
    fn stays_bounded() {
        let c: ChainCache<()> = ChainCache::default();
        for i in 0..CAPACITY + 10 {
            c.insert(owned_chain(&der(i.to_string().as_bytes()), &[]), ());
        }
        assert_eq!(c.len(), CAPACITY);
        let last = (CAPACITY + 9).to_string();
        assert!(c.get(last.as_bytes(), &[]).is_some(), "newest entry kept");
    }

    #[test]
    fn verified_chains_are_told_apart_by_every_byte_and_boundary() {
        let v = VerifiedChains::default();
        let w = Window { from: 1, until: 2 };
        v.insert(b"leaf", &[der(b"int")], w);
        assert_eq!(v.get(b"leaf", &[der(b"int")]), Some(w));
        assert_eq!(v.get(b"leaf", &[]), None, "missing intermediate");
        assert_eq!(v.get(b"lea", &[der(b"fint")]), None, "moved boundary");
        assert_eq!(v.get(b"leafint", &[]), None, "joined certificates");
        assert_eq!(v.get(b"int", &[der(b"leaf")]), None, "swapped order");
        for i in 0..CAPACITY + 10 {
            v.insert(i.to_string().as_bytes(), &[], w);
        }
        assert_eq!(v.len(), CAPACITY);
    }

    #[test]
    fn identities_remember_small_leaves_only() {
        use rcgen::{CertificateParams, KeyPair, SanType};
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let small = CertificateParams::new(vec!["a.test".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        for i in 0..400 {
            p.subject_alt_names.push(SanType::DnsName(
                format!("n{i}.padding.test").try_into().unwrap(),
            ));
        }
        let big = p.self_signed(&key).unwrap();
        assert!(big.der().len() > MAX_REMEMBERED_LEAF);

        let ids = Identities::default();
        let a = ids.summary(small.der()).unwrap();
        let b = ids.summary(small.der()).unwrap();
        assert!(Arc::ptr_eq(&a, &b), "read once");
        assert_eq!(a.dns_sans, ["a.test"]);
        let c = ids.summary(big.der()).unwrap();
        assert_eq!(c.dns_sans.len(), 400, "large leaves are still read");
        assert_eq!(ids.len(), 1, "but not remembered");
        assert!(ids.summary(b"not a certificate").is_none());
    }

    #[test]
    fn window_is_half_open() {
        let w = Window {
            from: 10,
            until: 20,
        };
        assert!(!w.holds(9));
        assert!(w.holds(10));
        assert!(w.holds(19));
        assert!(!w.holds(20));
    }
}
