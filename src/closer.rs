//! Closing open connections from outside them (SPEC §3): a client
//! certificate revoked by a reloaded CRL or past its notAfter, and a
//! connection whose host policy a reload changed (SPEC §2).
//!
//! Each connection owns a [`Closer`]; its task waits on it next to its I/O
//! and, once asked, shuts down the way its protocol allows (HTTP/1.1 after
//! the in-flight response with `Connection: close`, HTTP/2 with GOAWAY, a
//! `tls` stream at once). Nothing here runs per request: expiry is one timer
//! per connection, and a reload looks up only the connections whose
//! certificate serial a CRL lists, through the [`Registry`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use arc_swap::ArcSwapOption;

/// Why a connection was closed (`portcullis_connections_closed_total`'s
/// `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// A CRL now lists the client certificate.
    Revoked,
    /// The client certificate's notAfter passed.
    Expired,
    /// A reload changed the connection's client-authentication policy.
    PolicyChanged,
}

impl CloseReason {
    /// The SPEC label.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Revoked => "revoked",
            CloseReason::Expired => "expired",
            CloseReason::PolicyChanged => "policy_changed",
        }
    }
}

/// The handle that asks one connection to close: the reason, and a
/// `Notify` for the connection's task (a few words per connection; every
/// open connection has one).
#[derive(Debug, Default)]
pub struct Closer {
    /// 0 while open, else [`CloseReason::code`].
    reason: std::sync::atomic::AtomicU8,
    notify: tokio::sync::Notify,
}

impl CloseReason {
    fn code(self) -> u8 {
        match self {
            CloseReason::Revoked => 1,
            CloseReason::Expired => 2,
            CloseReason::PolicyChanged => 3,
        }
    }

    fn from_code(c: u8) -> Option<Self> {
        match c {
            1 => Some(CloseReason::Revoked),
            2 => Some(CloseReason::Expired),
            3 => Some(CloseReason::PolicyChanged),
            _ => None,
        }
    }
}

impl Closer {
    /// Asks the connection to close; the first reason given sticks.
    /// Returns whether this call was the first.
    pub fn close(&self, reason: CloseReason) -> bool {
        use std::sync::atomic::Ordering;
        let first = self
            .reason
            .compare_exchange(0, reason.code(), Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if first {
            self.notify.notify_waiters();
        }
        first
    }

    /// Why the connection was asked to close, if it was.
    pub fn reason(&self) -> Option<CloseReason> {
        CloseReason::from_code(self.reason.load(std::sync::atomic::Ordering::Acquire))
    }

    /// Resolves when the connection is asked to close.
    pub async fn closed(&self) -> CloseReason {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            // Registered before the check, so a close between the two is
            // not missed.
            notified.as_mut().enable();
            if let Some(r) = self.reason() {
                return r;
            }
            notified.await;
        }
    }
}

/// What became of a listener at a reload.
#[derive(Debug)]
pub enum Next<T> {
    /// The new configuration's listener of the same name and kind.
    Replaced(Arc<T>),
    /// The new configuration has no such listener.
    Removed,
}

/// A listener's place in the line of configurations: set once, when a
/// reload publishes the next one, so that the connections it accepted can
/// find the newest version of their listener (SPEC §2: same policy → new
/// rules, changed policy → drained) without a lookup by name.
#[derive(Debug)]
pub struct Succession<T> {
    next: ArcSwapOption<Next<T>>,
    retired: tokio::sync::Notify,
}

impl<T> Default for Succession<T> {
    fn default() -> Self {
        Succession {
            next: ArcSwapOption::empty(),
            retired: tokio::sync::Notify::new(),
        }
    }
}

/// A listener that has a [`Succession`].
pub trait Successive: Sized {
    /// Its succession.
    fn succession(&self) -> &Succession<Self>;
}

impl<T: Successive> Succession<T> {
    /// Whether no reload has replaced this listener (one atomic load).
    pub fn is_current(&self) -> bool {
        self.next.load().is_none()
    }

    /// Publishes what replaced this listener and wakes its connections.
    pub fn retire(&self, next: Next<T>) {
        self.next.store(Some(Arc::new(next)));
        self.retired.notify_waiters();
    }

    /// Resolves once this listener has been retired.
    pub async fn retired(&self) {
        loop {
            let notified = self.retired.notified();
            tokio::pin!(notified);
            // Registered before the check: a retirement between the two
            // is not missed (`next` is stored before the waiters are woken).
            notified.as_mut().enable();
            if !self.is_current() {
                return;
            }
            notified.await;
        }
    }
}

/// Resolves once `l` has been retired (owning it, so the caller may replace
/// its own handle meanwhile).
pub(crate) async fn retirement<T: Successive>(l: Arc<T>) {
    l.succession().retired().await;
}

/// The newest configuration's version of `origin` (`origin` itself when
/// no reload happened since), or `None` when a reload removed it.
///
/// The link from `origin` is then pointed straight at the newest version,
/// so a connection that outlives many reloads keeps two versions of its
/// listener alive, not every one in between.
pub(crate) fn newest<T: Successive>(origin: &Arc<T>) -> Option<Arc<T>> {
    let first = origin.succession().next.load_full();
    let mut l = match first.as_deref() {
        None => return Some(origin.clone()),
        Some(Next::Removed) => return None,
        Some(Next::Replaced(n)) => n.clone(),
    };
    loop {
        let next = l.succession().next.load_full();
        match next.as_deref() {
            None => break,
            Some(Next::Removed) => return None,
            Some(Next::Replaced(n)) => l = n.clone(),
        }
    }
    if let Some(Next::Replaced(direct)) = first.as_deref() {
        if !Arc::ptr_eq(direct, &l) {
            origin
                .succession()
                .next
                .store(Some(Arc::new(Next::Replaced(l.clone()))));
        }
    }
    Some(l)
}

/// The upgraded tunnels (WebSocket) a connection has open: the connection's
/// task keeps judging them after the HTTP connection has handed them off.
#[derive(Debug, Default)]
pub(crate) struct Tunnels {
    open: std::sync::atomic::AtomicUsize,
    notify: tokio::sync::Notify,
}

/// One open tunnel; dropping it closes the count.
#[derive(Debug)]
pub(crate) struct Tunnel(Arc<Tunnels>);

impl Drop for Tunnel {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering;
        if self.0.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.notify.notify_waiters();
        }
    }
}

impl Tunnels {
    /// Counts one more open tunnel until the returned value drops.
    pub(crate) fn open(self: &Arc<Self>) -> Tunnel {
        self.open.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Tunnel(self.clone())
    }

    /// How many are open.
    pub(crate) fn count(&self) -> usize {
        self.open.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Resolves when none is open.
    pub(crate) async fn all_closed(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.count() == 0 {
                return;
            }
            notified.await;
        }
    }
}

type Key = (String, String);
/// The connections of one certificate: (registration id, closer).
type Holders = Vec<(u64, Weak<Closer>)>;

/// Open connections by the (issuer, serial) of their client certificate.
#[derive(Debug, Default)]
pub struct Registry {
    by_cert: Mutex<HashMap<Key, Holders>>,
    next: std::sync::atomic::AtomicU64,
}

/// Removes its connection from the registry when dropped.
#[derive(Debug)]
pub struct Registered {
    registry: Arc<Registry>,
    key: Key,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut m = self.registry.lock();
        if let Some(v) = m.get_mut(&self.key) {
            v.retain(|(id, _)| *id != self.id);
            if v.is_empty() {
                m.remove(&self.key);
            }
        }
    }
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Holders>> {
        self.by_cert.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a connection authenticated with the certificate `serial`
    /// of `issuer` (RFC 2253 and upper-case hex, as `CertSummary` has them).
    pub fn register(
        self: &Arc<Self>,
        issuer: &str,
        serial: &str,
        closer: &Arc<Closer>,
    ) -> Registered {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let key = (issuer.to_string(), serial.to_string());
        self.lock()
            .entry(key.clone())
            .or_default()
            .push((id, Arc::downgrade(closer)));
        Registered {
            registry: self.clone(),
            key,
            id,
        }
    }

    /// Closes every open connection whose certificate is in `revoked`
    /// ((issuer, serial) pairs); returns how many were asked to close.
    pub fn revoke<'a>(&self, revoked: impl IntoIterator<Item = &'a (String, String)>) -> usize {
        let m = self.lock();
        if m.is_empty() {
            return 0;
        }
        let mut n = 0;
        for key in revoked {
            for (_, c) in m.get(key).into_iter().flatten() {
                if c.upgrade().is_some_and(|c| c.close(CloseReason::Revoked)) {
                    n += 1;
                }
            }
        }
        n
    }

    /// Number of registered connections.
    pub fn len(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }

    /// Whether no connection is registered.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_reason_sticks() {
        let c = Closer::default();
        assert_eq!(c.reason(), None);
        assert!(c.close(CloseReason::Expired));
        assert!(!c.close(CloseReason::Revoked));
        assert_eq!(c.reason(), Some(CloseReason::Expired));
    }

    #[test]
    fn revocation_reaches_only_listed_certificates_and_forgets_closed_ones() {
        let r = Arc::new(Registry::default());
        let a = Arc::new(Closer::default());
        let b = Arc::new(Closer::default());
        let other_issuer = Arc::new(Closer::default());
        let ga = r.register("CN=CA", "0A", &a);
        let _gb = r.register("CN=CA", "0B", &b);
        let _go = r.register("CN=Other", "0A", &other_issuer);
        assert_eq!(r.len(), 3);
        let n = r.revoke(&[("CN=CA".to_string(), "0A".to_string())]);
        assert_eq!(n, 1);
        assert_eq!(a.reason(), Some(CloseReason::Revoked));
        assert_eq!(b.reason(), None);
        assert_eq!(other_issuer.reason(), None);
        drop(ga);
        assert_eq!(r.len(), 2);
    }

    #[derive(Debug, Default)]
    struct L(Succession<L>, u32);
    impl Successive for L {
        fn succession(&self) -> &Succession<L> {
            &self.0
        }
    }

    #[tokio::test]
    async fn newest_follows_every_reload_and_sees_removal() {
        let a = Arc::new(L(Succession::default(), 1));
        let b = Arc::new(L(Succession::default(), 2));
        let c = Arc::new(L(Succession::default(), 3));
        assert!(a.0.is_current());
        assert_eq!(newest(&a).map(|l| l.1), Some(1));
        a.0.retire(Next::Replaced(b.clone()));
        a.0.retired().await;
        b.0.retire(Next::Replaced(c.clone()));
        assert!(!a.0.is_current());
        assert_eq!(newest(&a).map(|l| l.1), Some(3));
        c.0.retire(Next::Removed);
        assert!(newest(&a).is_none());
    }

    #[test]
    fn newest_lets_the_versions_in_between_go() {
        let a = Arc::new(L(Succession::default(), 1));
        let mut versions = Vec::new();
        let mut last = a.clone();
        for i in 2..10 {
            let n = Arc::new(L(Succession::default(), i));
            last.0.retire(Next::Replaced(n.clone()));
            versions.push(Arc::downgrade(&n));
            last = n;
        }
        assert_eq!(newest(&a).map(|l| l.1), Some(9));
        // Only `a`'s link, and `last` here, hold versions now.
        let alive = versions.iter().filter(|w| w.upgrade().is_some()).count();
        assert_eq!(alive, 1, "versions in between are still held");
    }

    #[tokio::test]
    async fn tunnels_count_until_dropped() {
        let t = Arc::new(Tunnels::default());
        let one = t.open();
        let two = t.open();
        assert_eq!(t.count(), 2);
        drop(one);
        assert_eq!(t.count(), 1);
        let t2 = t.clone();
        let waiter = tokio::spawn(async move { t2.all_closed().await });
        drop(two);
        assert!(waiter.await.is_ok());
        assert_eq!(t.count(), 0);
    }

    #[tokio::test]
    async fn closed_resolves_after_close() {
        let c = Arc::new(Closer::default());
        let c2 = c.clone();
        let waiter = tokio::spawn(async move { c2.closed().await });
        c.close(CloseReason::PolicyChanged);
        assert_eq!(waiter.await.ok(), Some(CloseReason::PolicyChanged));
    }
}
