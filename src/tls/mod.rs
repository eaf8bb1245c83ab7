//! The TLS boundary: one prepared `ServerConfig` per host entry, the SNI
//! table that picks it, the client verifier, and the classification of
//! handshake outcomes.
//!
//! Three roles, three types: [`SniTable`] picks the host entry (and so the
//! certificate), [`verifier::ClientVerifier`] judges the chain, and
//! `identity` judges who it is.

pub(crate) mod cache;
pub(crate) mod classify;
pub(crate) mod client;
pub(crate) mod rejection;
pub(crate) mod sessions;
pub(crate) mod tickets;
pub(crate) mod upstream;
pub(crate) mod verifier;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::{CertificateDer, UnixTime};

use crate::config::model::{self, ClientAuth, HostPattern};
use crate::identity::PeerIdentity;
use crate::material::Material;

pub(crate) use classify::{HandshakeResult, UpstreamFailure};
pub(crate) use verifier::ClientVerifier;

/// A certificate resolver that always presents one certificate: the host
/// entry was already chosen from the SNI before this config was picked.
#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl ResolvesServerCert for Fixed {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// An ACME certificate not obtained yet: nothing to present.
#[derive(Debug)]
pub(crate) struct Pending;

impl ResolvesServerCert for Pending {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        None
    }
}

/// Presents one certificate whatever the ClientHello says.
pub(crate) fn fixed(key: Arc<CertifiedKey>) -> Arc<dyn ResolvesServerCert> {
    Arc::new(Fixed(key))
}

/// How a host entry treats client certificates after the handshake.
#[derive(Debug, Clone)]
pub enum PeerPolicy {
    /// No certificate is requested.
    None,
    /// Any certificate that reached the application was verified by this
    /// verifier (kept to judge a resumed session's chain again).
    Verified(Arc<ClientVerifier>),
    /// `optionalNoCa`: re-check the chain to mark the identity.
    Mark(Arc<ClientVerifier>),
}

/// The TLS side of one host entry.
#[derive(Debug)]
pub struct HostTls {
    /// Its own config: certificate, verifier, ALPN, and its own session
    /// cache and ticket key.
    pub config: Arc<ServerConfig>,
    /// What a presented certificate means.
    pub policy: PeerPolicy,
    /// The client-authentication policy as SPEC §2's reload rule compares
    /// it: mode, the trust bundle's CAs, verifyDepth, crlCheck (not the
    /// CRLs, not `allow`). Equal keys in two snapshots mean a connection may
    /// follow the new routes; different keys mean it is drained.
    pub policy_key: [u8; 32],
    /// The name of its ACME certificate while it has not been obtained
    /// (handshakes are refused with `internal_error`, SPEC §5).
    pub pending: Option<String>,
    /// Whether identities record their verified path (the entry forwards
    /// RFC 9440 `Client-Cert-Chain`); otherwise a handshake the verifier
    /// accepted costs nothing more here.
    pub record_path: bool,
}

/// The digest of a client-authentication policy (see
/// [`HostTls::policy_key`]).
pub(crate) fn policy_key(client_auth: &ClientAuth, material: &Material) -> [u8; 32] {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut field = |b: &[u8]| {
        ctx.update(&(b.len() as u64).to_be_bytes());
        ctx.update(b);
    };
    match client_auth {
        ClientAuth::None => field(b"none"),
        ClientAuth::Verify(p) | ClientAuth::OptionalNoCa(p) => {
            field(match (client_auth, p.required) {
                (ClientAuth::OptionalNoCa(_), _) => b"optionalNoCa",
                (_, true) => b"require",
                (_, false) => b"optional",
            });
            let mut cas: Vec<&str> = material
                .trust_bundles
                .get(&p.trust_bundle)
                .map(|b| b.cas.iter().map(|c| c.sha256.as_str()).collect())
                .unwrap_or_default();
            cas.sort_unstable();
            cas.dedup();
            for ca in cas {
                field(ca.as_bytes());
            }
            field(&p.verify_depth.map_or(u64::MAX, u64::from).to_be_bytes());
            field(match p.crl_check {
                model::CrlCheck::Leaf => b"leaf",
                model::CrlCheck::Chain => b"chain",
            });
        }
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(ctx.finish().as_ref());
    key
}

/// The host entry a TLS config is built for, as far as its session
/// tickets are scoped to it (a `tls` listener: no names, no routes).
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// Its hostnames.
    pub hostnames: &'a [model::HostPattern],
    /// Its routes (their `allow` rules).
    pub routes: &'a [model::Route],
    /// Whether it forwards RFC 9440 `Client-Cert-Chain` (identities then
    /// carry their verified path).
    pub client_cert_headers: bool,
}

/// What the session tickets of one host entry are scoped to, when they are
/// sealed with keys derived from the shared `sessionTickets` keys (SPEC §3):
/// the listener and its TLS settings, the entry's names and certificate
/// name, its client-authentication policy (mode, CAs, depth, crlCheck), its
/// CRLs as loaded and every `allow` rule of the entry. A reload that
/// changes any of these changes the entry's ticket key, so its tickets stop
/// resuming there; a reload that changes none (the server certificate
/// renewed, another entry edited) keeps them. Equal on every replica that
/// runs the same config with the same material.
pub(crate) fn ticket_scope(
    listener: &model::Listener,
    entry: Entry<'_>,
    certificate: &str,
    client_auth: &ClientAuth,
    material: &Material,
) -> [u8; 32] {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut field = |b: &[u8]| {
        ctx.update(&(b.len() as u64).to_be_bytes());
        ctx.update(b);
    };
    field(b"portcullis ticket scope v1");
    field(listener.name.as_bytes());
    field(match listener.min_version {
        model::TlsVersion::V12 => b"1.2",
        model::TlsVersion::V13 => b"1.3",
    });
    field(&listener.session_lifetime.as_secs().to_be_bytes());
    field(&(listener.alpn.len() as u64).to_be_bytes());
    for p in &listener.alpn {
        field(p);
    }
    field(&(entry.hostnames.len() as u64).to_be_bytes());
    for h in entry.hostnames {
        match h {
            model::HostPattern::Exact(n) => (field(b"exact"), field(n.as_bytes())),
            model::HostPattern::Wildcard(n) => (field(b"wildcard"), field(n.as_bytes())),
            model::HostPattern::CatchAll => (field(b"catch-all"), field(b"")),
        };
    }
    field(certificate.as_bytes());
    field(&policy_key(client_auth, material));
    let none = [0u8; 32];
    let allow = |a: &Option<model::Allow>| a.as_ref().map_or(none, |a| *a.digest());
    match client_auth {
        ClientAuth::None => field(b"no client auth"),
        ClientAuth::Verify(p) | ClientAuth::OptionalNoCa(p) => {
            field(&allow(&p.allow));
            if let Some(b) = material.trust_bundles.get(&p.trust_bundle) {
                field(&(b.crl_digests.len() as u64).to_be_bytes());
                for d in &b.crl_digests {
                    field(d);
                }
            }
        }
    }
    field(&(entry.routes.len() as u64).to_be_bytes());
    for r in entry.routes {
        field(&allow(&r.allow));
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(ctx.finish().as_ref());
    key
}

/// Errors building TLS configs.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rustls refused the configuration.
    #[error("TLS configuration for {what}")]
    Config {
        /// Which host entry.
        what: String,
        /// Why.
        #[source]
        source: rustls::Error,
    },
    /// A name the material does not hold. `material::load` loads every
    /// name the validated config holds or fails, so this means a snapshot
    /// was built from another config's material.
    #[error("{what} {name} is not in the loaded material")]
    NotLoaded {
        /// `certificate`, `trust bundle`.
        what: &'static str,
        /// Its config name.
        name: String,
    },
    /// An upstream without a trust bundle on a machine without CAs.
    #[error("no system CA certificates found; give the upstream a trustBundle")]
    NoSystemRoots,
    /// webpki cannot verify servers with these CAs.
    #[error("upstream {upstream}: its trust bundle cannot verify servers")]
    Verifier {
        /// The upstream.
        upstream: String,
        /// Why.
        #[source]
        source: rustls::server::VerifierBuilderError,
    },
}

/// [`TlsError::NotLoaded`].
pub(crate) fn not_loaded(what: &'static str, name: &str) -> TlsError {
    TlsError::NotLoaded {
        what,
        name: name.to_string(),
    }
}

impl HostTls {
    /// Prepares the config of host entry `host` of `listener`.
    ///
    /// Resumption cannot widen access (SPEC §3, nginx CVE-2025-23419): every
    /// host entry gets its *own* session cache and its *own* ticket key, so a
    /// session established on a host without client auth cannot be resumed
    /// on one that requires it, nor across hosts with different trust
    /// bundles. Without `sessionTickets` a reload builds new configs with
    /// new random keys, which invalidates every session made before it;
    /// with it, the entry's key is derived from the shared keys and
    /// [`ticket_scope`], so only a reload that changes the entry's policy
    /// does. A resumed session carries the client chain that was verified
    /// when it was made.
    pub fn build(
        listener: &model::Listener,
        entry: Entry<'_>,
        certificate: &str,
        client_auth: &ClientAuth,
        material: &Material,
        provider: &Arc<CryptoProvider>,
    ) -> Result<Self, TlsError> {
        let what = format!("listener {} certificate {certificate}", listener.name);
        let err = |source| TlsError::Config {
            what: what.clone(),
            source,
        };
        let versions: &[&rustls::SupportedProtocolVersion] = match listener.min_version {
            model::TlsVersion::V12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
            model::TlsVersion::V13 => &[&rustls::version::TLS13],
        };
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .map_err(err)?;
        let algs = provider.signature_verification_algorithms;
        let make = |p: &model::VerifyPolicy, unverified: bool| {
            material.trust_bundles.get(&p.trust_bundle).map(|b| {
                Arc::new(ClientVerifier::new(
                    b.clone(),
                    p.required,
                    unverified,
                    p.verify_depth,
                    p.crl_check,
                    algs,
                ))
            })
        };
        let (builder, policy) = match client_auth {
            ClientAuth::None => (builder.with_no_client_auth(), PeerPolicy::None),
            ClientAuth::Verify(p) => match make(p, false) {
                Some(v) => (
                    builder.with_client_cert_verifier(v.clone()),
                    PeerPolicy::Verified(v),
                ),
                None => return Err(not_loaded("trust bundle", &p.trust_bundle)),
            },
            ClientAuth::OptionalNoCa(p) => match make(p, true) {
                Some(v) => (
                    builder.with_client_cert_verifier(v.clone()),
                    PeerPolicy::Mark(v),
                ),
                None => return Err(not_loaded("trust bundle", &p.trust_bundle)),
            },
        };
        let pending = material.pending.contains_key(certificate);
        let mut config = match material.identities.get(certificate) {
            Some(identity) => {
                builder.with_cert_resolver(Arc::new(Fixed(identity.certified_key.clone())))
            }
            // Refused before rustls sees it (see `server::conn`); no
            // certificate to present meanwhile.
            None if pending => builder.with_cert_resolver(Arc::new(Pending)),
            None => return Err(not_loaded("certificate", certificate)),
        };
        config.alpn_protocols = listener.alpn.clone();
        // Our cipher order (see `server::provider`), as nginx's
        // ssl_prefer_server_ciphers.
        config.ignore_client_order = true;
        // One ticket is enough for one resumption; each costs an encryption.
        config.send_tls13_tickets = 1;
        // SPEC §3: sessions and tickets live `tls.sessionLifetime`, and the
        // TLS 1.2 session cache is bounded in bytes (see `sessions`).
        config.session_storage =
            sessions::SessionStore::new(listener.session_lifetime, sessions::SESSION_STORE_BYTES);
        config.ticketer = match &material.ticket_keys {
            // Shared by the replicas, scoped to this entry (see `tickets`).
            Some(keys) => {
                let scope = ticket_scope(listener, entry, certificate, client_auth, material);
                sessions::TimedTickets::shared(
                    listener.session_lifetime,
                    tickets::for_scope(keys, &scope).map_err(err)?,
                )
            }
            None => sessions::TimedTickets::new(listener.session_lifetime).map_err(err)?,
        };
        Ok(HostTls {
            config: Arc::new(config),
            policy,
            policy_key: policy_key(client_auth, material),
            pending: pending.then(|| certificate.to_string()),
            record_path: entry.client_cert_headers,
        })
    }

    /// SPEC §3: a resumed session is judged again at the moment it resumes,
    /// as a full handshake would judge its chain now (expired since,
    /// revoked by the current CRLs, outside the verify window). rustls
    /// resumes with the chain verified when the session was made and does
    /// not look at it again. (`optionalNoCa` re-checks every chain in
    /// [`HostTls::peer_identity`] anyway.)
    pub fn judge_resumed(&self, conn: &rustls::ServerConnection) -> Result<(), rustls::Error> {
        if conn.handshake_kind() != Some(rustls::HandshakeKind::Resumed) {
            return Ok(());
        }
        let chain = conn.peer_certificates().unwrap_or_default();
        // A session without a certificate where one is required: rustls
        // does not resume one, but a ticket forged with a stolen shared
        // key could carry one.
        if let PeerPolicy::Verified(v) = &self.policy {
            if chain.is_empty() && v.required() {
                return Err(rustls::Error::NoCertificatesPresented);
            }
        }
        self.judge_chain(chain)
    }

    /// Verifies a client chain (leaf first) with this entry's verifier as
    /// of now: for a resumed session, for a handshake that a reload
    /// overtook, and for a request served by another entry than the
    /// handshake's. Memoized, so a chain seen before costs a hash.
    pub fn judge_chain(&self, chain: &[CertificateDer<'_>]) -> Result<(), rustls::Error> {
        let PeerPolicy::Verified(verifier) = &self.policy else {
            return Ok(());
        };
        match chain.split_first() {
            Some((leaf, rest)) => verifier.verify_chain(leaf, rest, UnixTime::now()),
            None => Ok(()),
        }
    }

    /// Whether the CRLs must cover the whole client chain.
    pub fn checks_chain_crls(&self) -> bool {
        match &self.policy {
            PeerPolicy::Verified(v) | PeerPolicy::Mark(v) => v.checks_chain(),
            PeerPolicy::None => false,
        }
    }

    /// The client's identity after a completed handshake (or resumption).
    pub fn peer_identity(&self, conn: &rustls::ServerConnection) -> Option<PeerIdentity> {
        let chain = conn.peer_certificates()?;
        let (leaf, rest) = chain.split_first()?;
        let judged = match &self.policy {
            PeerPolicy::None => return None,
            // Verified in the handshake; the path, when it is wanted, is a
            // look-up in the verifier's memo.
            PeerPolicy::Verified(_) if !self.record_path => Ok(Default::default()),
            PeerPolicy::Verified(v) | PeerPolicy::Mark(v) => {
                v.verified_path(leaf, rest, UnixTime::now())
            }
        };
        let (verified, failure, path) = match judged {
            Ok(path) => (true, None, path),
            Err(e) => (
                false,
                Some(HandshakeResult::from_rustls(&e).as_str()),
                Default::default(),
            ),
        };
        let mut id = PeerIdentity::from_chain(chain, verified, failure)?;
        id.path = path;
        Some(id)
    }
}

/// The protocol version as OpenSSL and Envoy spell it.
pub(crate) fn version_name(v: rustls::ProtocolVersion) -> Option<&'static str> {
    match v {
        rustls::ProtocolVersion::TLSv1_3 => Some("TLSv1.3"),
        rustls::ProtocolVersion::TLSv1_2 => Some("TLSv1.2"),
        _ => None,
    }
}

/// The cipher suite's IANA name (`TLS_AES_128_GCM_SHA256`, …).
pub(crate) fn cipher_name(suite: rustls::CipherSuite) -> Option<&'static str> {
    use rustls::CipherSuite as C;
    match suite {
        C::TLS13_AES_128_GCM_SHA256 => Some("TLS_AES_128_GCM_SHA256"),
        C::TLS13_AES_256_GCM_SHA384 => Some("TLS_AES_256_GCM_SHA384"),
        C::TLS13_CHACHA20_POLY1305_SHA256 => Some("TLS_CHACHA20_POLY1305_SHA256"),
        other => other.as_str(),
    }
}

/// Picks a host entry by name: exact names, then wildcards (one label), then
/// the `"*"` catch-all. Case-insensitive; a trailing dot is ignored.
#[derive(Debug, Clone)]
pub struct SniTable<T = usize> {
    exact: HashMap<String, T>,
    wildcard: HashMap<String, T>,
    catch_all: Option<T>,
}

impl<T> Default for SniTable<T> {
    fn default() -> Self {
        SniTable {
            exact: HashMap::new(),
            wildcard: HashMap::new(),
            catch_all: None,
        }
    }
}

/// `name` in lower case without a trailing dot (borrowed when already so).
pub(crate) fn normalize_host(name: &str) -> Cow<'_, str> {
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    if trimmed.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(trimmed.to_ascii_lowercase())
    } else {
        Cow::Borrowed(trimmed)
    }
}

impl<T: Copy> SniTable<T> {
    /// Builds a table from (entry, pattern) pairs; the first entry for a
    /// name wins.
    pub fn from_patterns<'a>(patterns: impl IntoIterator<Item = (T, &'a HostPattern)>) -> Self {
        let mut t = SniTable::default();
        for (i, p) in patterns {
            {
                match p {
                    HostPattern::Exact(n) => {
                        t.exact.entry(n.clone()).or_insert(i);
                    }
                    HostPattern::Wildcard(suffix) => {
                        t.wildcard.entry(suffix.clone()).or_insert(i);
                    }
                    HostPattern::CatchAll => {
                        t.catch_all.get_or_insert(i);
                    }
                }
            }
        }
        t
    }

    /// The entry that lists `name` itself (no wildcard, no catch-all).
    pub fn lookup_exact(&self, name: &str) -> Option<T> {
        self.exact.get(normalize_host(name).as_ref()).copied()
    }

    /// The host entry for `name` (`None` = no SNI).
    pub fn lookup(&self, name: Option<&str>) -> Option<T> {
        let Some(name) = name else {
            return self.catch_all;
        };
        let name = normalize_host(name);
        if let Some(i) = self.exact.get(name.as_ref()) {
            return Some(*i);
        }
        if let Some(dot) = name.find('.') {
            if dot > 0 {
                if let Some(i) = self.wildcard.get(&name[dot..]) {
                    return Some(*i);
                }
            }
        }
        self.catch_all
    }
}

/// The crypto provider used everywhere (aws-lc-rs). It is also installed as
/// the process default at start-up.
pub fn provider() -> Arc<CryptoProvider> {
    let mut p = rustls::crypto::aws_lc_rs::default_provider();
    // Prefer AES-128-GCM with SHA-256 in TLS 1.3: equally strong for this
    // use, and its key schedule runs on SHA-256, which the CPU accelerates,
    // where SHA-384 costs ~9% of a full handshake (profile in bench notes).
    p.cipher_suites.sort_by_key(|s| match s.suite() {
        rustls::CipherSuite::TLS13_AES_128_GCM_SHA256 => 0,
        rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256 => 1,
        rustls::CipherSuite::TLS13_AES_256_GCM_SHA384 => 2,
        _ => 3,
    });
    Arc::new(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::validate::host_pattern;

    fn table(names: &[&[&str]]) -> SniTable {
        let patterns: Vec<(usize, HostPattern)> = names
            .iter()
            .enumerate()
            .flat_map(|(i, ns)| {
                ns.iter()
                    .filter_map(move |n| Some((i, host_pattern(n).ok()?)))
            })
            .collect();
        SniTable::from_patterns(patterns.iter().map(|(i, p)| (*i, p)))
    }

    #[test]
    fn exact_before_wildcard_case_and_dot_insensitive() {
        let t = table(&[&["*.a.test"], &["x.a.test"]]);
        assert_eq!(t.lookup(Some("x.a.test")), Some(1));
        assert_eq!(t.lookup(Some("X.A.Test.")), Some(1));
        assert_eq!(t.lookup(Some("y.a.test")), Some(0));
        assert_eq!(
            t.lookup(Some("z.y.a.test")),
            None,
            "a wildcard covers one label"
        );
        assert_eq!(t.lookup(Some("a.test")), None);
        assert_eq!(t.lookup(None), None);
    }

    #[test]
    fn catch_all_takes_unknown_and_missing_names() {
        let t = table(&[&["a.test"], &["*"]]);
        assert_eq!(t.lookup(Some("b.test")), Some(1));
        assert_eq!(t.lookup(None), Some(1));
        assert_eq!(t.lookup(Some("a.test")), Some(0));
    }
}
