//! Session resumption never widens access (SPEC §3, nginx CVE-2025-23419):
//! a session made on a host without client auth cannot be resumed on one
//! that requires it; a resumed session keeps its verified identity.

use std::sync::Arc;

use rustls::client::{ClientSessionMemoryCache, ClientSessionStore};
use rustls::pki_types::ServerName;
use rustls::{AlertDescription, HandshakeKind, NamedGroup};

use crate::sni::two_hosts;
use crate::support::client::{connect, exchange, get_request};
use crate::support::{Ca, Leaf, Outcome};

/// A client session store that offers whatever it holds to *every* server
/// name: the attacker's client.
#[derive(Debug)]
pub struct AnyName(ClientSessionMemoryCache);

impl AnyName {
    /// A fresh store, for `ClientConfig::resumption`.
    pub fn resumption() -> rustls::client::Resumption {
        rustls::client::Resumption::store(Arc::new(AnyName(ClientSessionMemoryCache::new(32))))
    }
}

fn fixed() -> ServerName<'static> {
    ServerName::try_from("any.name").unwrap()
}

impl ClientSessionStore for AnyName {
    fn set_kx_hint(&self, _: ServerName<'static>, group: NamedGroup) {
        self.0.set_kx_hint(fixed(), group)
    }
    fn kx_hint(&self, _: &ServerName<'_>) -> Option<NamedGroup> {
        self.0.kx_hint(&fixed())
    }
    fn set_tls12_session(
        &self,
        _: ServerName<'static>,
        v: rustls::client::Tls12ClientSessionValue,
    ) {
        self.0.set_tls12_session(fixed(), v)
    }
    fn tls12_session(&self, _: &ServerName<'_>) -> Option<rustls::client::Tls12ClientSessionValue> {
        self.0.tls12_session(&fixed())
    }
    fn remove_tls12_session(&self, _: &ServerName<'static>) {
        self.0.remove_tls12_session(&fixed())
    }
    fn insert_tls13_ticket(
        &self,
        _: ServerName<'static>,
        v: rustls::client::Tls13ClientSessionValue,
    ) {
        self.0.insert_tls13_ticket(fixed(), v)
    }
    fn take_tls13_ticket(
        &self,
        _: &ServerName<'static>,
    ) -> Option<rustls::client::Tls13ClientSessionValue> {
        self.0.take_tls13_ticket(&fixed())
    }
}

fn client(
    ca: &Ca,
    cert: Option<&Leaf>,
    version: &'static rustls::SupportedProtocolVersion,
) -> Arc<rustls::ClientConfig> {
    let base = crate::support::client::config_with(&ca.der, cert, &[], Some(version));
    let mut c = (*base).clone();
    c.resumption = AnyName::resumption();
    Arc::new(c)
}

fn cross_host(version: &'static rustls::SupportedProtocolVersion) {
    let t = two_hosts("", &[]);
    let cfg = client(&t.ca, None, version);
    // A full handshake on the open host; reading the response also
    // collects the session ticket(s).
    let mut s = connect(t.gw.addr("main"), "open.test", &cfg).unwrap();
    assert_eq!(
        exchange(&mut s, &get_request("/", "open.test")).status(),
        200
    );
    // Control: the session does resume on the host it was made on.
    let mut again = connect(t.gw.addr("main"), "open.test", &cfg).unwrap();
    assert_eq!(
        again.conn.handshake_kind(),
        Some(HandshakeKind::Resumed),
        "control: resumption works at all"
    );
    assert_eq!(
        exchange(&mut again, &get_request("/", "open.test")).status(),
        200
    );
    // The attack: offer it with SNI locked.test.
    let out = match connect(t.gw.addr("main"), "locked.test", &cfg) {
        Ok(mut s) => {
            assert_ne!(s.conn.handshake_kind(), Some(HandshakeKind::Resumed));
            exchange(&mut s, &get_request("/", "locked.test"))
        }
        Err(o) => o,
    };
    assert!(
        matches!(
            out,
            Outcome::Alert(
                AlertDescription::CertificateRequired | AlertDescription::HandshakeFailure
            )
        ),
        "{out:?}"
    );
    assert_eq!(
        t.upstream.seen().len(),
        2,
        "only the two open.test requests"
    );
}

#[test]
fn tls13_ticket_from_open_host_does_not_resume_on_locked_host() {
    cross_host(&rustls::version::TLS13);
}

#[test]
fn tls12_session_from_open_host_does_not_resume_on_locked_host() {
    cross_host(&rustls::version::TLS12);
}

#[test]
fn resumed_session_keeps_the_verified_identity() {
    let t = two_hosts("", &[]);
    let leaf = t.ca.leaf(&crate::support::Spec::client("resumer"));
    let cfg = client(&t.ca, Some(&leaf), &rustls::version::TLS13);
    let mut s = connect(t.gw.addr("main"), "locked.test", &cfg).unwrap();
    let first = exchange(&mut s, &get_request("/echo", "locked.test")).json();
    let mut s = connect(t.gw.addr("main"), "locked.test", &cfg).unwrap();
    assert_eq!(s.conn.handshake_kind(), Some(HandshakeKind::Resumed));
    let second = exchange(&mut s, &get_request("/echo", "locked.test")).json();
    assert_eq!(second["tls"]["peer"]["subject"], "CN=resumer");
    assert_eq!(second["tls"]["peer"]["verified"], true);
    assert_eq!(
        first["tls"]["peer"]["sha256"],
        second["tls"]["peer"]["sha256"]
    );
}
