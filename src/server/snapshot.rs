//! Everything a running gateway needs, prepared at load from the validated
//! config and the loaded material: per-host TLS configs, SNI tables, route
//! tables, upstream clients (one per upstream identity). Connections clone
//! one `Arc` of it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::RootCertStore;

use crate::config::model::{self, Config};
use crate::forward::HostForward;
use crate::http::{self, route::RouteTable};
use crate::material::Material;
use crate::stream;
use crate::tls::upstream::UpstreamTls;
use crate::tls::{HostTls, SniTable, TlsError};

/// One listener at run time.
#[derive(Debug, Clone)]
pub enum AnyListener {
    /// `https`
    Https(Arc<http::HttpsListener>),
    /// `tls`
    Tls(Arc<stream::TlsListener>),
    /// `tcp`
    Tcp(Arc<stream::TcpListener>),
    /// `passthrough`
    Passthrough(Arc<stream::Passthrough>),
}

impl AnyListener {
    /// Its name as a metric label.
    pub fn label(&self) -> &Arc<str> {
        match self {
            AnyListener::Https(l) => &l.label,
            AnyListener::Tls(l) => &l.label,
            AnyListener::Tcp(l) => &l.label,
            AnyListener::Passthrough(l) => &l.label,
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        match self {
            AnyListener::Https(l) => &l.name,
            AnyListener::Tls(l) => &l.name,
            AnyListener::Tcp(l) => &l.name,
            AnyListener::Passthrough(l) => &l.name,
        }
    }
}

/// The prepared gateway.
#[derive(Debug)]
pub struct Snapshot {
    /// Listeners with the address each binds.
    pub listeners: Vec<(SocketAddr, AnyListener)>,
    /// Admin endpoint.
    pub admin: Option<SocketAddr>,
    /// Connection and request limits.
    pub limits: model::Limits,
    /// The config file and every material source (what reload watches).
    pub watched: Vec<std::path::PathBuf>,
    /// Content hash of `watched` taken before they were read.
    pub digest: Vec<u8>,
    /// Expiry warnings, already formatted.
    pub warnings: Vec<String>,
    /// What `check` fails on and `run` logs as errors (an expired CRL),
    /// already formatted.
    pub problems: Vec<String>,
    /// `/certificates`: every loaded certificate and trust-bundle CA.
    pub inventory: Vec<serde_json::Value>,
    /// Expiry gauges: (name, subject, notAfter).
    expiry: Vec<(String, String, u64)>,
    /// CRL gauges: (bundle, issuer, nextUpdate).
    crl_updates: Vec<(String, String, u64)>,
    /// Every (issuer, serial) the loaded CRLs revoke (SPEC §3: a reload
    /// closes the open connections they concern).
    pub revoked: Vec<(String, String)>,
    /// Every loaded CRL with the config path of its trust bundle, for the
    /// messages when one enters its last week or lapses while running.
    pub crls: Vec<(String, crate::material::CrlInfo)>,
}

/// The config file and every material source of `config`.
pub fn watched(config: &Config) -> Vec<std::path::PathBuf> {
    let mut watched = vec![config.file.clone()];
    for c in config.certificates.values() {
        watched.extend(c.paths());
    }
    for t in config.trust_bundles.values() {
        watched.extend(t.paths());
    }
    watched
}

fn inventory_entry(kind: &str, name: &str, s: &crate::identity::CertSummary) -> serde_json::Value {
    let mut sans: Vec<String> = s.dns_sans.iter().map(|d| format!("DNS:{d}")).collect();
    sans.extend(s.ip_sans.iter().map(|i| format!("IP:{i}")));
    sans.extend(s.uri_sans.iter().map(|u| format!("URI:{u}")));
    sans.extend(s.email_sans.iter().map(|m| format!("email:{m}")));
    serde_json::json!({
        "kind": kind,
        "name": name,
        "subject": s.subject,
        "sans": sans,
        "issuer": s.issuer,
        "serial": s.serial,
        "notBefore": crate::words::rfc3339(s.not_before),
        "notAfter": crate::words::rfc3339(s.not_after),
        "sha256": s.sha256,
    })
}

/// The host part of `host:port`, `[v6]:port` or a URL authority.
fn host_of(address: &str) -> &str {
    let h = match address.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => address,
    };
    h.trim_start_matches('[').trim_end_matches(']')
}

impl Snapshot {
    /// Prepares everything `config` describes with `material`.
    pub fn build(
        config: &Config,
        material: &Material,
        provider: &Arc<CryptoProvider>,
    ) -> Result<Self, TlsError> {
        let mut system: Option<Arc<RootCertStore>> = None;
        let limits = &config.limits;
        let mut http_upstreams: BTreeMap<String, Arc<http::HttpUpstream>> = BTreeMap::new();
        let mut stream_upstreams: BTreeMap<String, Arc<stream::TcpUpstream>> = BTreeMap::new();
        for (name, u) in &config.upstreams {
            match u {
                model::Upstream::Echo => {
                    http_upstreams.insert(name.clone(), Arc::new(http::HttpUpstream::Echo));
                }
                model::Upstream::Http {
                    authority,
                    host_header,
                    tls,
                } => {
                    let tls_client = match tls {
                        None => None,
                        Some(t) => {
                            let ut = UpstreamTls::build(
                                name,
                                t,
                                authority.host(),
                                &[b"http/1.1"],
                                material,
                                provider,
                                &mut system,
                            )?;
                            Some(http::https_client(&ut, limits.connect_timeout))
                        }
                    };
                    http_upstreams.insert(
                        name.clone(),
                        Arc::new(http::HttpUpstream::Http {
                            name: name.clone(),
                            authority: authority.clone(),
                            host_header: *host_header,
                            tls_client,
                        }),
                    );
                }
                model::Upstream::Stream { address, tls } => {
                    let tls = match tls {
                        None => None,
                        Some(t) => Some(Arc::new(UpstreamTls::build(
                            name,
                            t,
                            host_of(address),
                            &[],
                            material,
                            provider,
                            &mut system,
                        )?)),
                    };
                    stream_upstreams.insert(
                        name.clone(),
                        Arc::new(stream::TcpUpstream {
                            name: name.clone(),
                            address: address.clone(),
                            tls,
                            connect_timeout: limits.connect_timeout,
                        }),
                    );
                }
            }
        }
        let stream_up = |name: &str| {
            stream_upstreams
                .get(name)
                .cloned()
                .ok_or_else(|| TlsError::Config {
                    what: format!("upstream {name}"),
                    source: rustls::Error::General("not a TCP upstream".into()),
                })
        };
        let client = http::upstream_client(limits.connect_timeout);
        let mut listeners = Vec::new();
        for l in &config.listeners {
            let rt = match &l.stream {
                None => AnyListener::Https(Arc::new(https_listener(
                    l,
                    config,
                    material,
                    provider,
                    &http_upstreams,
                    &stream_upstreams,
                    &client,
                )?)),
                Some(model::Stream::Tls {
                    certificate,
                    client_auth,
                    upstream,
                    proxy_protocol,
                }) => {
                    let allow = match client_auth {
                        model::ClientAuth::Verify(p) | model::ClientAuth::OptionalNoCa(p) => {
                            p.allow.clone()
                        }
                        model::ClientAuth::None => None,
                    };
                    AnyListener::Tls(Arc::new(stream::TlsListener {
                        name: l.name.clone(),
                        label: Arc::from(l.name.as_str()),
                        tls: HostTls::build(l, certificate, client_auth, material, provider)?,
                        allow,
                        upstream: stream_up(upstream)?,
                        proxy_protocol: *proxy_protocol,
                        succession: Default::default(),
                    }))
                }
                Some(model::Stream::Tcp { upstream }) => {
                    AnyListener::Tcp(Arc::new(stream::TcpListener {
                        name: l.name.clone(),
                        label: Arc::from(l.name.as_str()),
                        upstream: stream_up(upstream)?,
                    }))
                }
                Some(model::Stream::Passthrough {
                    routes,
                    default_upstream,
                }) => {
                    let upstreams = routes
                        .iter()
                        .map(|(_, u)| stream_up(u))
                        .collect::<Result<Vec<_>, _>>()?;
                    AnyListener::Passthrough(Arc::new(stream::Passthrough {
                        name: l.name.clone(),
                        label: Arc::from(l.name.as_str()),
                        sni: SniTable::from_patterns(
                            routes.iter().enumerate().map(|(i, (p, _))| (i, p)),
                        ),
                        upstreams,
                        default_upstream: default_upstream.as_deref().map(stream_up).transpose()?,
                    }))
                }
            };
            listeners.push((l.address, rt));
        }
        let watched = watched(config);
        let mut inventory = Vec::new();
        let mut expiry = Vec::new();
        let mut crl_updates = Vec::new();
        for (name, id) in &material.identities {
            inventory.push(inventory_entry("certificate", name, &id.leaf));
            expiry.push((name.clone(), id.leaf.subject.clone(), id.leaf.not_after));
        }
        let mut revoked = Vec::new();
        let mut crls = Vec::new();
        for (name, b) in &material.trust_bundles {
            revoked.extend(b.revoked.iter().cloned());
            for ca in &b.cas {
                inventory.push(inventory_entry("trustBundle", name, ca));
                expiry.push((name.clone(), ca.subject.clone(), ca.not_after));
            }
            for crl in &b.crl_info {
                if let Some(n) = crl.next_update {
                    crl_updates.push((name.clone(), crl.issuer.clone(), n));
                }
                crls.push((format!("trustBundles.{name}"), crl.clone()));
            }
        }
        Ok(Snapshot {
            listeners,
            admin: config.admin,
            limits: config.limits.clone(),
            watched,
            digest: Vec::new(),
            warnings: material
                .warnings
                .iter()
                .map(|w| format!("{}: {}: {}", config.locate(&w.path), w.path, w.message))
                .collect(),
            problems: material
                .problems
                .iter()
                .map(|p| format!("{}: {}: {}", config.locate(&p.path), p.path, p.message))
                .collect(),
            inventory,
            expiry,
            crl_updates,
            revoked,
            crls,
        })
    }

    /// A snapshot with nothing in it (before the first one is published).
    pub fn empty() -> Self {
        Snapshot {
            listeners: Vec::new(),
            admin: None,
            limits: model::Limits::default(),
            watched: Vec::new(),
            digest: Vec::new(),
            warnings: Vec::new(),
            problems: Vec::new(),
            inventory: Vec::new(),
            expiry: Vec::new(),
            crl_updates: Vec::new(),
            revoked: Vec::new(),
            crls: Vec::new(),
        }
    }

    /// The runtime listener called `name`.
    pub fn listener(&self, name: &str) -> Option<&AnyListener> {
        self.listeners
            .iter()
            .map(|(_, l)| l)
            .find(|l| l.name() == name)
    }

    /// Tells every listener of this snapshot what replaced it in `next`
    /// (the listener of the same name and kind, or none), so that their open
    /// connections re-judge their policy (SPEC §2).
    pub fn retire_into(&self, next: &Snapshot) {
        use crate::closer::Next;
        fn next_of<T>(found: Option<&Arc<T>>) -> Next<T> {
            found.map_or(Next::Removed, |n| Next::Replaced(n.clone()))
        }
        for (_, l) in &self.listeners {
            match (l, next.listener(l.name())) {
                (AnyListener::Https(old), found) => old.succession.retire(next_of(match found {
                    Some(AnyListener::Https(n)) => Some(n),
                    _ => None,
                })),
                (AnyListener::Tls(old), found) => old.succession.retire(next_of(match found {
                    Some(AnyListener::Tls(n)) => Some(n),
                    _ => None,
                })),
                _ => {}
            }
        }
    }

    /// Logs the warnings, and the problems as errors: `run` starts (or
    /// reloads) with an expired CRL, but says so as loudly as `check`.
    pub fn log_findings(&self) {
        for w in &self.warnings {
            log_warning(w);
        }
        for p in &self.problems {
            log_problem(p);
        }
    }

    /// Logs the CRLs whose standing changed in the seconds `(after, upto]`
    /// (entered their last week, lapsed), as [`Snapshot::log_findings`]
    /// would have at `upto`.
    pub fn log_crl_turns(&self, after: u64, upto: u64) {
        use crate::material::crl::{turned, Freshness};
        for (path, f) in turned(&self.crls, after, upto) {
            match f {
                Freshness::Fresh => {}
                Freshness::Expiring(m) => log_warning(&format!("{path}: {m}")),
                Freshness::Expired(m) => log_problem(&format!("{path}: {m}")),
            }
        }
    }

    /// Sets the certificate and CRL gauges to this snapshot's material.
    pub fn record_metrics(&self) {
        use crate::telemetry::metrics::{metrics, CertLabels, CrlLabels};
        let m = metrics();
        m.cert_expiry.clear();
        for (name, subject, t) in &self.expiry {
            m.cert_expiry
                .get_or_create(&CertLabels {
                    name: name.clone(),
                    subject: subject.clone(),
                })
                .set(i64::try_from(*t).unwrap_or(i64::MAX));
        }
        m.crl_next_update.clear();
        for (bundle, issuer, t) in &self.crl_updates {
            m.crl_next_update
                .get_or_create(&CrlLabels {
                    trust_bundle: bundle.clone(),
                    issuer: issuer.clone(),
                })
                .set(i64::try_from(*t).unwrap_or(i64::MAX));
        }
    }
}

fn log_warning(w: &str) {
    tracing::warn!(warning = w, "certificate warning");
}

fn log_problem(p: &str) {
    tracing::error!(problem = p, "certificate problem");
}

fn https_listener(
    l: &model::Listener,
    config: &Config,
    material: &Material,
    provider: &Arc<CryptoProvider>,
    upstreams: &BTreeMap<String, Arc<http::HttpUpstream>>,
    stream_upstreams: &BTreeMap<String, Arc<stream::TcpUpstream>>,
    client: &http::UpstreamClient,
) -> Result<http::HttpsListener, TlsError> {
    let mut hosts = Vec::new();
    // strictSni samePolicy: equal certificate and client auth.
    let mut policies: Vec<(&str, &model::ClientAuth)> = Vec::new();
    for h in &l.hosts {
        let label: Arc<str> = Arc::from(match h.hostnames.first() {
            Some(model::HostPattern::Exact(n)) => n.clone(),
            Some(model::HostPattern::Wildcard(s)) => format!("*{s}"),
            _ => "*".to_string(),
        });
        let key = (h.certificate.as_str(), &h.client_auth);
        let policy_id = match policies.iter().position(|p| *p == key) {
            Some(p) => p,
            None => {
                policies.push(key);
                policies.len() - 1
            }
        };
        if let Some(pt) = &h.passthrough {
            hosts.push(http::Host {
                tls: None,
                passthrough: stream_upstreams.get(pt).cloned(),
                allow: None,
                forward: HostForward::new(&h.forward, &[]),
                routes: RouteTable::new(&[], |_| None),
                strict_sni: h.strict_sni,
                escaped_slashes: h.escaped_slashes,
                policy_id,
                label,
            });
            continue;
        }
        let own_uris = material
            .identities
            .get(&h.certificate)
            .map(|c| c.leaf.uri_sans.clone())
            .unwrap_or_default();
        let allow = match &h.client_auth {
            model::ClientAuth::Verify(p) | model::ClientAuth::OptionalNoCa(p) => p.allow.clone(),
            model::ClientAuth::None => None,
        };
        hosts.push(http::Host {
            tls: Some(HostTls::build(
                l,
                &h.certificate,
                &h.client_auth,
                material,
                provider,
            )?),
            passthrough: None,
            allow,
            forward: HostForward::new(&h.forward, &own_uris),
            routes: RouteTable::new(&h.routes, |r| {
                upstreams.get(&r.upstream).map(|u| {
                    Arc::new(http::Target {
                        upstream: u.clone(),
                        allow: r.allow.clone(),
                    })
                })
            }),
            strict_sni: h.strict_sni,
            escaped_slashes: h.escaped_slashes,
            policy_id,
            label,
        });
    }
    Ok(http::HttpsListener {
        name: l.name.clone(),
        label: Arc::from(l.name.as_str()),
        records_hello: hosts.iter().any(|h| h.passthrough.is_some()),
        hosts,
        sni: SniTable::new(&l.hosts),
        limits: config.limits.clone(),
        access_log: config.access_log,
        client: client.clone(),
        server: http::server_builder(&config.limits),
        succession: Default::default(),
    })
}
