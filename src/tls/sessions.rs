//! Session resumption with a lifetime (SPEC §2 `tls.sessionLifetime`, §3).
//!
//! A resumed session skips the client certificate's signature check and
//! carries the chain verified when the session was made, so how long it may
//! be resumed is a security setting, not only a cache size:
//!
//! - [`TimedTickets`] wraps rustls' ticketer: every ticket (TLS 1.3, and
//!   TLS 1.2 session tickets) carries its creation time inside the
//!   encryption, and one older than the lifetime does not decrypt. The keys
//!   are either random and rotate every lifetime (erasure, as RFC 8446
//!   §4.6.1 wants), or derived from the shared `sessionTickets` keys (see
//!   `tickets`), which the operator rotates.
//! - [`SessionStore`] replaces rustls' TLS 1.2 session-ID cache, which has
//!   no lifetime at all: entries expire, and the store is bounded in bytes
//!   (a stored session holds the client's chain, which the client chooses),
//!   not only in count.
//!
//! Each host entry has its own of both (see `HostTls::build`), so a session
//! never crosses host policies; the carried chain is judged again when a
//! session resumes (`server::conn`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::server::{ProducesTickets, StoresServerSessions};
use rustls_pki_types::UnixTime;

/// Seconds since the epoch.
fn now() -> u64 {
    UnixTime::now().as_secs()
}

/// Whether something made at `created` is still usable at `now`.
fn fresh(created: u64, now: u64, lifetime: u64) -> bool {
    // A time in the future (clock stepped back) is not trusted either.
    created <= now && now - created <= lifetime
}

/// How far ahead of this replica's clock another replica's may be: a
/// ticket it made "in the future" by up to this much still resumes here
/// (shared keys only), and lives at most this much longer.
pub(crate) const REPLICA_CLOCK_SKEW: u64 = 5;

fn seconds(lifetime: Duration) -> u32 {
    u32::try_from(lifetime.as_secs().max(1)).unwrap_or(u32::MAX)
}

/// A ticketer whose tickets expire after a lifetime.
#[derive(Debug)]
pub(crate) struct TimedTickets {
    inner: Box<dyn ProducesTickets>,
    lifetime: u64,
    /// Seconds a creation time may be ahead of the clock.
    skew: u64,
}

/// One key generation of rustls' own (AES-256-GCM) ticketer.
#[derive(Debug)]
struct Generation(Arc<dyn ProducesTickets>);

impl ProducesTickets for Generation {
    fn enabled(&self) -> bool {
        self.0.enabled()
    }
    fn lifetime(&self) -> u32 {
        self.0.lifetime()
    }
    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.0.encrypt(plain)
    }
    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        self.0.decrypt(cipher)
    }
}

fn generation() -> Result<Box<dyn ProducesTickets>, rustls::crypto::GetRandomFailed> {
    rustls::crypto::aws_lc_rs::Ticketer::new()
        .map(|t| Box::new(Generation(t)) as Box<dyn ProducesTickets>)
        .map_err(|_| rustls::crypto::GetRandomFailed)
}

impl TimedTickets {
    /// A ticketer for tickets that live `lifetime`.
    pub(crate) fn new(lifetime: Duration) -> Result<Arc<Self>, rustls::Error> {
        let secs = seconds(lifetime);
        Ok(Arc::new(TimedTickets {
            inner: Box::new(rustls::ticketer::TicketRotator::new(secs, generation)?),
            lifetime: u64::from(secs),
            skew: 0,
        }))
    }

    /// A ticketer for tickets that live `lifetime`, sealed with keys
    /// derived from the shared ones (`sessionTickets`).
    pub(crate) fn shared(lifetime: Duration, keys: super::tickets::SharedTickets) -> Arc<Self> {
        Arc::new(TimedTickets {
            inner: Box::new(keys),
            lifetime: u64::from(seconds(lifetime)),
            skew: REPLICA_CLOCK_SKEW,
        })
    }
}

impl ProducesTickets for TimedTickets {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        u32::try_from(self.lifetime).unwrap_or(u32::MAX)
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let mut stamped = Vec::with_capacity(plain.len() + 8);
        stamped.extend_from_slice(&now().to_be_bytes());
        stamped.extend_from_slice(plain);
        self.inner.encrypt(&stamped)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        let plain = self.inner.decrypt(cipher)?;
        let (stamp, rest) = plain.split_first_chunk::<8>()?;
        // Another replica's clock may be a little ahead of ours.
        let created = u64::from_be_bytes(*stamp).saturating_sub(self.skew);
        fresh(created, now(), self.lifetime).then(|| rest.to_vec())
    }
}

/// A TLS session-ID store with a lifetime, bounded in bytes.
#[derive(Debug)]
pub(crate) struct SessionStore {
    lifetime: u64,
    max_bytes: usize,
    state: Mutex<Stored>,
}

#[derive(Debug, Default)]
struct Stored {
    map: HashMap<Vec<u8>, (u64, Vec<u8>)>,
    bytes: usize,
}

impl Stored {
    fn remove(&mut self, key: &[u8]) -> Option<(u64, Vec<u8>)> {
        let v = self.map.remove(key)?;
        self.bytes -= key.len() + v.1.len();
        Some(v)
    }
}

/// The memory one host entry's session store may hold.
pub(crate) const SESSION_STORE_BYTES: usize = 4 * 1024 * 1024;

impl SessionStore {
    /// A store whose sessions live `lifetime`, holding at most `max_bytes`
    /// of keys and values.
    pub(crate) fn new(lifetime: Duration, max_bytes: usize) -> Arc<Self> {
        Arc::new(SessionStore {
            lifetime: lifetime.as_secs().max(1),
            max_bytes,
            state: Mutex::default(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Stored> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    #[cfg(test)]
    /// Bytes held (keys and values).
    pub(crate) fn bytes(&self) -> usize {
        self.lock().bytes
    }
}

impl StoresServerSessions for SessionStore {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        let size = key.len() + value.len();
        if size > self.max_bytes {
            return false;
        }
        let now = now();
        let mut s = self.lock();
        s.remove(&key);
        if s.bytes + size > self.max_bytes {
            // Expired sessions go first, then any (a cache may forget).
            let lifetime = self.lifetime;
            let expired: Vec<Vec<u8>> = s
                .map
                .iter()
                .filter(|(_, (t, _))| !fresh(*t, now, lifetime))
                .map(|(k, _)| k.clone())
                .collect();
            for k in expired {
                s.remove(&k);
            }
            while s.bytes + size > self.max_bytes {
                let Some(k) = s.map.keys().next().cloned() else {
                    break;
                };
                s.remove(&k);
            }
        }
        s.bytes += size;
        s.map.insert(key, (now, value));
        true
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        let mut s = self.lock();
        let (t, v) = s.map.get(key)?;
        if fresh(*t, now(), self.lifetime) {
            return Some(v.clone());
        }
        s.remove(key);
        None
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        let (t, v) = self.lock().remove(key)?;
        fresh(t, now(), self.lifetime).then_some(v)
    }

    fn can_cache(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freshness_is_bounded_both_ways() {
        assert!(fresh(100, 100, 300));
        assert!(fresh(100, 400, 300));
        assert!(!fresh(100, 401, 300));
        assert!(!fresh(101, 100, 300), "made in the future");
    }

    #[test]
    fn tickets_round_trip_and_reject_forgeries() {
        let t = TimedTickets::new(Duration::from_secs(300)).unwrap_or_else(|e| panic!("{e}"));
        let c = t.encrypt(b"session").unwrap_or_default();
        assert_eq!(t.decrypt(&c).as_deref(), Some(&b"session"[..]));
        let mut bad = c.clone();
        if let Some(b) = bad.last_mut() {
            *b ^= 1;
        }
        assert_eq!(t.decrypt(&bad), None);
        let other = TimedTickets::new(Duration::from_secs(300)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(other.decrypt(&c), None, "another host's key");
        assert_eq!(t.lifetime(), 300);
    }

    #[test]
    fn expired_stamp_does_not_decrypt() {
        let t = TimedTickets::new(Duration::from_secs(60)).unwrap_or_else(|e| panic!("{e}"));
        // A ticket whose stamp is older than the lifetime, sealed with the
        // current key, as if made 61 s ago.
        let mut stamped = (now() - 61).to_be_bytes().to_vec();
        stamped.extend_from_slice(b"old");
        let c = t.inner.encrypt(&stamped).unwrap_or_default();
        assert_eq!(t.decrypt(&c), None);
        let mut stamped = (now() - 59).to_be_bytes().to_vec();
        stamped.extend_from_slice(b"new");
        let c = t.inner.encrypt(&stamped).unwrap_or_default();
        assert_eq!(t.decrypt(&c).as_deref(), Some(&b"new"[..]));
    }

    #[test]
    fn store_expires_and_stays_within_its_bytes() {
        let s = SessionStore::new(Duration::from_secs(60), 1000);
        assert!(s.put(b"k".to_vec(), vec![0; 100]));
        assert_eq!(s.get(b"k").map(|v| v.len()), Some(100));
        for i in 0..100u32 {
            assert!(s.put(i.to_be_bytes().to_vec(), vec![1; 96]));
            assert!(s.bytes() <= 1000);
        }
        assert!(
            !s.put(b"huge".to_vec(), vec![0; 2000]),
            "larger than the store"
        );
        // An entry stored long ago is gone.
        s.lock()
            .map
            .insert(b"old".to_vec(), (now() - 61, vec![2; 4]));
        s.lock().bytes += 7;
        assert_eq!(s.get(b"old"), None);
        assert_eq!(s.take(b"old"), None);
        assert!(s.bytes() <= 1000);
    }
}
