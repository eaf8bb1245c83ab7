//! Everything a running gateway needs, prepared at load from the validated
//! config and the loaded material: per-host TLS configs, SNI tables, route
//! tables, upstream clients (one per upstream identity). Connections clone
//! one `Arc` of it.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;

use crate::config::model::{self, Config};
use crate::http;
use crate::material::Material;
use crate::stream;
use crate::tls::TlsError;

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
    /// `http`
    Http(Arc<http::plain::HttpListener>),
}

impl AnyListener {
    /// Its name as a metric label.
    pub fn label(&self) -> &Arc<str> {
        match self {
            AnyListener::Https(l) => &l.label,
            AnyListener::Tls(l) => &l.label,
            AnyListener::Tcp(l) => &l.label,
            AnyListener::Passthrough(l) => &l.label,
            AnyListener::Http(l) => &l.label,
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        match self {
            AnyListener::Https(l) => &l.name,
            AnyListener::Tls(l) => &l.name,
            AnyListener::Tcp(l) => &l.name,
            AnyListener::Passthrough(l) => &l.name,
            AnyListener::Http(l) => &l.name,
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
    /// What the loaded material says: `/certificates`, the expiry and CRL
    /// gauges, the revoked serials and the CRLs' dates.
    pub facts: super::inventory::Inventory,
    /// ACME certificates not obtained yet, with the reason (`/readyz` is
    /// 503 while there is any).
    pub pending: Vec<(String, String)>,
    /// The ACME certificates of the config.
    pub acme: Vec<crate::acme::manager::Wanted>,
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
    watched.extend(
        config
            .session_tickets
            .as_ref()
            .map(|s| s.path().to_path_buf()),
    );
    watched
}

impl Snapshot {
    /// Prepares everything `config` describes with `material`.
    pub fn build(
        config: &Config,
        material: &Material,
        provider: &Arc<CryptoProvider>,
    ) -> Result<Self, TlsError> {
        let limits = &config.limits;
        let mut cx = crate::tls::upstream::UpstreamContext {
            limits,
            material,
            provider,
            system: None,
        };
        let http_upstreams = config
            .upstreams
            .http
            .iter()
            .map(|(name, u)| http::build::upstream(name, u, &mut cx).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        let tcp_upstreams = config
            .upstreams
            .tcp
            .iter()
            .map(|(name, u)| stream::build::upstream(name, u, &mut cx).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        // Ids are indices into these (see `model::Upstreams`).
        let upstreams = http::build::Upstreams {
            http: &http_upstreams,
            tcp: &tcp_upstreams,
        };
        let mut listeners = Vec::new();
        for l in &config.listeners {
            let rt = match &l.kind {
                model::ListenerKind::Https { .. } => AnyListener::Https(Arc::new(
                    http::build::listener(l, config, material, provider, &upstreams)?,
                )),
                model::ListenerKind::Tls {
                    certificate,
                    client_auth,
                    upstream,
                    proxy_protocol,
                } => AnyListener::Tls(Arc::new(stream::build::tls_listener(
                    l,
                    certificate,
                    client_auth,
                    tcp_upstreams[upstream.index()].clone(),
                    *proxy_protocol,
                    material,
                    provider,
                )?)),
                model::ListenerKind::Http { redirect, hosts } => AnyListener::Http(Arc::new(
                    http::build::plain_listener(l, redirect, hosts, config, &upstreams),
                )),
                model::ListenerKind::Tcp { upstream } => AnyListener::Tcp(Arc::new(
                    stream::build::tcp_listener(l, tcp_upstreams[upstream.index()].clone()),
                )),
                model::ListenerKind::Passthrough {
                    routes,
                    default_upstream,
                } => AnyListener::Passthrough(Arc::new(stream::build::passthrough(
                    l,
                    routes,
                    *default_upstream,
                    &tcp_upstreams,
                ))),
            };
            listeners.push((l.address, rt));
        }
        let watched = watched(config);
        Ok(Snapshot {
            listeners,
            admin: config.admin,
            limits: config.limits.clone(),
            watched,
            digest: Vec::new(),
            warnings: material
                .warnings
                .iter()
                .map(|w| format!("{}: {}: {}", config.locate(&w.path), w.path, w.message()))
                .collect(),
            problems: material
                .problems
                .iter()
                .map(|p| format!("{}: {}: {}", config.locate(&p.path), p.path, p.message()))
                .collect(),
            facts: super::inventory::Inventory::of(material),
            pending: material
                .pending
                .iter()
                .map(|(n, why)| (n.clone(), why.clone()))
                .collect(),
            acme: config
                .certificates
                .iter()
                .filter_map(|(n, c)| match c {
                    model::CertificateSource::Acme(a) => Some(crate::acme::manager::Wanted {
                        name: n.clone(),
                        spec: (**a).clone(),
                        roots: a
                            .trust_bundle
                            .as_ref()
                            .and_then(|t| material.trust_bundles.get(t))
                            .map(|b| b.roots.clone()),
                    }),
                    _ => None,
                })
                .collect(),
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
            facts: Default::default(),
            pending: Vec::new(),
            acme: Vec::new(),
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
        for (path, f) in turned(&self.facts.crls, after, upto) {
            match f {
                Freshness::Fresh => {}
                Freshness::Expiring(m) => log_warning(&format!("{path}: {m}")),
                Freshness::Expired(m) => log_problem(&format!("{path}: {m}")),
            }
        }
    }
}

fn log_warning(w: &str) {
    tracing::warn!(warning = w, "certificate warning");
}

fn log_problem(p: &str) {
    tracing::error!(problem = p, "certificate problem");
}
