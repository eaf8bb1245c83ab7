//! What keeps an authenticated connection honest after its handshake (SPEC
//! §2, §3): a resumed session is judged again; a handshake that a reload
//! overtook is judged again by the new configuration; the client
//! certificate (and, with `crlCheck: chain`, its intermediates) is
//! registered so that a CRL reload finds the connection; its notAfter
//! closes it; a reload that changes its policy drains it.
//!
//! The order matters: the connection is registered *before* it is judged
//! against the newest configuration, and a reload publishes the new
//! configuration *before* it looks up the registry, so a CRL published
//! while a handshake runs either finds the connection or is found by it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::closer::{self, CloseReason, Closer, Registered, Registry};
use crate::http;
use crate::identity::PeerIdentity;
use crate::stream;
use crate::telemetry::metrics;
use crate::tls::{HandshakeResult, HostTls};

/// Held for as long as the connection, or a tunnel made from it, is open.
#[derive(Debug, Default)]
pub(super) struct Guard {
    _registered: Vec<Registered>,
    /// The client certificate's notAfter.
    pub(super) not_after: Option<u64>,
}

/// Judges a finished handshake again where needed and registers its
/// identity. `overtaken` is the newest configuration's TLS side of the same
/// entry when a reload was published during the handshake (and kept the
/// policy: a changed policy is drained by [`still_serves`]).
pub(super) fn after_handshake(
    host_tls: &HostTls,
    tls: &rustls::ServerConnection,
    identity: Option<&PeerIdentity>,
    closer: &Arc<Closer>,
    registry: &Arc<Registry>,
    overtaken: Option<&HostTls>,
) -> Result<Guard, HandshakeResult> {
    let refuse = |e: rustls::Error| HandshakeResult::from_rustls(&e);
    host_tls.judge_resumed(tls).map_err(refuse)?;
    let Some(id) = identity.filter(|i| i.verified) else {
        return Ok(Guard::default());
    };
    let mut registered = vec![registry.register(&id.cert.issuer, &id.cert.serial, closer)];
    if host_tls.checks_chain_crls() {
        for der in id.chain.iter().skip(1) {
            if let Some(s) = crate::identity::memo::summary(der) {
                registered.push(registry.register(&s.issuer, &s.serial, closer));
            }
        }
    }
    if let Some(newest) = overtaken {
        newest.judge_chain(&id.chain).map_err(refuse)?;
    }
    Ok(Guard {
        _registered: registered,
        not_after: Some(id.cert.not_after),
    })
}

/// Resolves when the connection must close: asked by its [`Closer`], or
/// its client certificate's notAfter has passed.
pub(super) async fn must_close(closer: &Closer, not_after: Option<u64>) -> CloseReason {
    let expiry = async {
        match not_after {
            Some(t) => {
                let now = rustls_pki_types::UnixTime::now().as_secs();
                // notAfter is the last valid second.
                let left = t.saturating_add(1).saturating_sub(now);
                tokio::time::sleep(Duration::from_secs(left)).await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        r = closer.closed() => r,
        _ = expiry => CloseReason::Expired,
    }
}

/// Counts and logs a connection the gateway closes.
pub(super) fn log_closed(
    listener: &Arc<str>,
    client: SocketAddr,
    id: Option<&PeerIdentity>,
    why: CloseReason,
) {
    metrics::connection_closed(listener, why.as_str());
    tracing::info!(
        listener = &**listener,
        client = %client,
        reason = why.as_str(),
        subject = id.map_or("", |i| i.cert.subject.as_str()),
        issuer = id.map_or("", |i| i.cert.issuer.as_str()),
        fingerprint = id.map_or("", |i| i.cert.sha256.as_str()),
        "closing connection"
    );
}

/// Whether a connection made on `made` (its entry picked by `sni`) may stay
/// open under the newest configuration, and if so that configuration's
/// listener and entry.
pub(super) fn still_serves(
    made: &Arc<http::HttpsListener>,
    sni: Option<&str>,
    key: &[u8; 32],
) -> Option<(Arc<http::HttpsListener>, usize)> {
    let newest = closer::newest(made)?;
    let entry = newest.sni.lookup(sni)?.host()?;
    (newest.hosts[entry].policy_key() == key).then_some((newest, entry))
}

/// Whether a stream accepted by `made` may stay open under the newest
/// configuration: same client-authentication policy, and its `allow` still
/// admits the identity (a stream has no next request to judge).
pub(super) fn still_admits(
    made: &Arc<stream::TlsListener>,
    key: &[u8; 32],
    identity: Option<&PeerIdentity>,
) -> Option<Arc<stream::TlsListener>> {
    use crate::identity::authz::{decide, Decision};
    let newest = closer::newest(made)?;
    if &newest.tls.policy_key != key {
        return None;
    }
    match &newest.allow {
        Some(rule) if decide(rule, identity) != Decision::Allow => None,
        _ => Some(newest),
    }
}
