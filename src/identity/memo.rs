//! What a leaf certificate says, read once per distinct leaf for the whole
//! process: a client that reconnects (or resumes) is not parsed again.
//! [`CertSummary`] is a pure function of the certificate's bytes, so one
//! memo serves every listener, snapshot and upstream.
//!
//! Found by the exact bytes: the 64-bit hash (SipHash with a random key, so
//! it cannot be steered into collisions) only picks the slot, and a hit
//! compares the bytes. It says nothing about trust. Leaves over
//! [`MAX_REMEMBERED_LEAF`] bytes are read afresh every time, so the memo
//! holds a few MiB at most however large the certificates clients send.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::{Arc, LazyLock, Mutex};

use super::CertSummary;

/// Entries per memo (here and in `tls::cache`).
pub(crate) const CAPACITY: usize = 1024;

/// Leaves larger than this are not remembered (a usual one is 0.5–2 KiB).
pub const MAX_REMEMBERED_LEAF: usize = 4096;

static PROCESS: LazyLock<SummaryMemo> = LazyLock::new(SummaryMemo::default);

/// What `leaf` says, from the process-wide memo. `None` when it is not a
/// readable certificate.
pub fn summary(leaf: &[u8]) -> Option<Arc<CertSummary>> {
    PROCESS.summary(leaf)
}

/// How many locks a memo is split over: a handshake locks one shard,
/// chosen by its key, so worker threads rarely wait on each other.
const SHARDS: usize = 16;

/// A memo bounded at [`CAPACITY`] entries, split over [`SHARDS`] maps
/// (each bounded at its share) by the low bits of the key's hash.
#[derive(Debug)]
pub(crate) struct Sharded<K, V> {
    shards: [Mutex<HashMap<K, V>>; SHARDS],
}

impl<K, V> Default for Sharded<K, V> {
    fn default() -> Self {
        Sharded {
            shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
        }
    }
}

impl<K: Eq + Hash + Copy, V> Sharded<K, V> {
    fn shard(&self, pick: u64) -> std::sync::MutexGuard<'_, HashMap<K, V>> {
        self.shards[pick as usize % SHARDS]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// What `f` makes of the entry of `key` (`pick` is its hash).
    pub(crate) fn get_with<R>(&self, pick: u64, key: &K, f: impl FnOnce(&V) -> R) -> Option<R> {
        self.shard(pick).get(key).map(f)
    }

    /// Remembers `v` for `key`, dropping an arbitrary entry of its shard
    /// when the shard is full.
    pub(crate) fn insert(&self, pick: u64, key: K, v: V) {
        let mut m = self.shard(pick);
        if m.len() >= CAPACITY / SHARDS && !m.contains_key(&key) {
            if let Some(k) = m.keys().next().copied() {
                m.remove(&k);
            }
        }
        m.insert(key, v);
    }

    /// Entries remembered.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        (0..SHARDS as u64).map(|i| self.shard(i).len()).sum()
    }
}

/// A remembered leaf: its bytes (to confirm a hit) and what it says.
type Entry = (Box<[u8]>, Arc<CertSummary>);

/// Leaf bytes → what they say.
#[derive(Debug, Default)]
struct SummaryMemo {
    hasher: RandomState,
    slots: Sharded<u64, Entry>,
}

impl SummaryMemo {
    fn summary(&self, leaf: &[u8]) -> Option<Arc<CertSummary>> {
        let key = self.hasher.hash_one(leaf);
        let hit = self.slots.get_with(key, &key, |(bytes, s)| {
            (**bytes == *leaf).then(|| s.clone())
        });
        if let Some(Some(s)) = hit {
            return Some(s);
        }
        let s = Arc::new(CertSummary::from_der(leaf).ok()?);
        if leaf.len() <= MAX_REMEMBERED_LEAF {
            self.slots.insert(key, key, (leaf.into(), s.clone()));
        }
        Some(s)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, KeyPair, SanType};

    use super::*;

    fn cert(names: &[&str]) -> rcgen::Certificate {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        for n in names {
            p.subject_alt_names
                .push(SanType::DnsName((*n).try_into().unwrap()));
        }
        p.self_signed(&key).unwrap()
    }

    #[test]
    fn small_leaves_are_read_once_and_told_apart_by_their_bytes() {
        let (a, b) = (cert(&["a.test"]), cert(&["b.test"]));
        let m = SummaryMemo::default();
        let first = m.summary(a.der()).unwrap();
        assert!(
            Arc::ptr_eq(&first, &m.summary(a.der()).unwrap()),
            "read once"
        );
        assert_eq!(m.summary(b.der()).unwrap().dns_sans, ["b.test"]);
        assert_eq!(m.summary(a.der()).unwrap().dns_sans, ["a.test"]);
        assert_eq!(m.len(), 2);
        assert!(m.summary(b"not a certificate").is_none());
    }

    #[test]
    fn large_leaves_are_read_but_not_remembered() {
        let names: Vec<String> = (0..400).map(|i| format!("n{i}.padding.test")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let big = cert(&names);
        assert!(big.der().len() > MAX_REMEMBERED_LEAF);
        let m = SummaryMemo::default();
        assert_eq!(m.summary(big.der()).unwrap().dns_sans.len(), 400);
        assert_eq!(m.len(), 0);
    }

    #[test]
    fn sharded_memos_stay_bounded_and_keep_the_newest() {
        let m: Sharded<u64, ()> = Sharded::default();
        let hasher = RandomState::new();
        for i in 0..4 * CAPACITY as u64 {
            m.insert(hasher.hash_one(i), i, ());
            let newest = hasher.hash_one(i);
            assert_eq!(m.get_with(newest, &i, |_| ()), Some(()));
        }
        assert!(m.len() <= CAPACITY, "{}", m.len());
        // Every shard took its share: the keys spread.
        assert!(m.len() > CAPACITY * 3 / 4, "{}", m.len());
    }
}
