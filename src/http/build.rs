//! The https side of a snapshot, built from the validated model and the
//! loaded material: upstreams and listeners with their host entries.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

use super::route::RouteTable;
use crate::config::model::{self, Config};
use crate::forward::HostForward;
use crate::material::Material;
use crate::stream;
use crate::tls::upstream::{UpstreamContext, UpstreamTls};
use crate::tls::{HostTls, SniTable, TlsError};

/// An HTTP upstream (`url`, `endpoints` or the built-in echo).
pub(crate) fn upstream(
    name: &str,
    u: &model::HttpUpstream,
    cx: &mut UpstreamContext<'_>,
) -> Result<super::HttpUpstream, TlsError> {
    let (endpoints, host_header, tls, balance, health, version) = match u {
        model::HttpUpstream::Echo => return Ok(super::HttpUpstream::Echo),
        model::HttpUpstream::Url {
            endpoints,
            host_header,
            tls,
            balance,
            health,
            version,
        } => (
            endpoints,
            host_header.clone(),
            tls,
            *balance,
            *health,
            *version,
        ),
    };
    let http2 = version == model::HttpVersion::Http2;
    // `auto` over TLS: ALPN chooses; WebSocket upgrades still need
    // HTTP/1.1, so those connect with a config that offers only it.
    let negotiate = version == model::HttpVersion::Auto && tls.is_some();
    let alpn: &[&[u8]] = match (http2, negotiate) {
        (true, _) => &[b"h2"],
        (false, true) => &[b"h2", b"http/1.1"],
        (false, false) => &[b"http/1.1"],
    };
    // One client config for the upstream (its own session store); each
    // endpoint sends its own server name.
    let mut build = |alpn: &[&[u8]]| match tls {
        None => Ok(None),
        Some(t) => {
            UpstreamTls::build(name, t, alpn, cx.material, cx.provider, &mut cx.system).map(Some)
        }
    };
    let main_tls = build(alpn)?;
    let h1_tls = if negotiate {
        build(&[b"http/1.1"])?
    } else {
        None
    };
    let connect_timeout = cx.limits.connect_timeout;
    let built = endpoints
        .iter()
        .map(|ep| {
            let connect = |tls: &Option<UpstreamTls>| {
                let tls = match (tls, &ep.server_name) {
                    (Some(t), Some(server_name)) => Some(Arc::new(UpstreamTls {
                        config: t.config.clone(),
                        server_name: server_name.clone(),
                    })),
                    _ => None,
                };
                stream::TcpUpstream {
                    name: name.to_string(),
                    address: ep.authority.as_str().to_string(),
                    tls,
                    connect_timeout,
                }
            };
            let mode = match (http2, negotiate) {
                (true, _) => super::pool::Mode::Http2,
                (false, true) => super::pool::Mode::Negotiate(connect(&h1_tls)),
                (false, false) => super::pool::Mode::Http1,
            };
            // Checked a header value by validation.
            let host = http::HeaderValue::from_str(ep.authority.as_str())
                .unwrap_or_else(|_| http::HeaderValue::from_static("invalid"));
            super::balance::Endpoint::new(
                ep.authority.as_str(),
                host,
                super::pool::Pool::new(connect(&main_tls), mode),
            )
        })
        .collect();
    Ok(super::HttpUpstream::Http {
        name: name.to_string(),
        host_header,
        balancer: Arc::new(super::balance::Balancer::new(
            name, built, balance, health, http2,
        )),
    })
}

/// The runtime upstreams a listener's references point into, in the
/// model's order.
pub(crate) struct Upstreams<'a> {
    /// `model::Upstreams::http`, built.
    pub(crate) http: &'a [Arc<super::HttpUpstream>],
    /// `model::Upstreams::tcp`, built.
    pub(crate) tcp: &'a [Arc<stream::TcpUpstream>],
}

/// An `https` listener: its host entries with their TLS, routes and
/// forwarding.
pub(crate) fn listener(
    l: &model::Listener,
    config: &Config,
    material: &Material,
    provider: &Arc<CryptoProvider>,
    upstreams: &Upstreams<'_>,
) -> Result<super::HttpsListener, TlsError> {
    let mut hosts = Vec::new();
    let mut passthrough = Vec::new();
    let mut entries = Vec::new();
    // strictSni samePolicy: equal certificate and client auth.
    let mut policies: Vec<(&str, &model::ClientAuth)> = Vec::new();
    for h in l.hosts() {
        let t = match &h.kind {
            model::HostKind::Passthrough { upstream } => {
                passthrough.push(upstreams.tcp[upstream.index()].clone());
                entries.push(super::Entry::Passthrough(passthrough.len() - 1));
                continue;
            }
            model::HostKind::Terminate(t) => t,
        };
        let label: Arc<str> = Arc::from(label_of(&h.hostnames));
        let key = (t.certificate.as_str(), &t.client_auth);
        let policy_id = match policies.iter().position(|p| *p == key) {
            Some(p) => p,
            None => {
                policies.push(key);
                policies.len() - 1
            }
        };
        let own_uris = material
            .identities
            .get(&t.certificate)
            .map(|c| c.leaf.uri_sans.clone())
            .unwrap_or_default();
        let allow = match &t.client_auth {
            model::ClientAuth::Verify(p) | model::ClientAuth::OptionalNoCa(p) => p.allow.clone(),
            model::ClientAuth::None => None,
        };
        let routes = t.routes.iter().map(|r| {
            let target = super::Target {
                upstream: upstreams.http[r.upstream.index()].clone(),
                allow: r.allow.clone(),
            };
            (&r.matcher, Arc::new(target))
        });
        hosts.push(super::Host {
            tls: HostTls::build(
                l,
                crate::tls::Entry {
                    hostnames: &h.hostnames,
                    routes: &t.routes,
                    client_cert_headers: t.forward.client_cert_headers,
                },
                &t.certificate,
                &t.client_auth,
                material,
                provider,
            )?,
            hsts: t.hsts.as_ref().map(hsts_value),
            allow,
            forward: HostForward::new(&t.forward, &own_uris),
            routes: RouteTable::new(routes),
            strict_sni: t.strict_sni,
            escaped_slashes: t.escaped_slashes,
            policy_id,
            label,
        });
        entries.push(super::Entry::Host(hosts.len() - 1));
    }
    let sni = SniTable::from_patterns(
        l.hosts()
            .iter()
            .zip(&entries)
            .flat_map(|(h, e)| h.hostnames.iter().map(move |p| (*e, p))),
    );
    Ok(super::HttpsListener {
        name: l.name.clone(),
        label: Arc::from(l.name.as_str()),
        hosts,
        passthrough,
        sni,
        limits: config.limits.clone(),
        access_log: config.access_log,
        server: super::server_builder(&config.limits),
        succession: Default::default(),
    })
}

/// The `Strict-Transport-Security` value of `hsts:`.
fn hsts_value(h: &model::Hsts) -> http::HeaderValue {
    let mut v = format!("max-age={}", h.max_age);
    if h.include_sub_domains {
        v.push_str("; includeSubDomains");
    }
    // Digits and ASCII letters only.
    http::HeaderValue::from_str(&v).unwrap_or(http::HeaderValue::from_static("max-age=0"))
}

/// An `http` listener: redirects to the names `config`'s https listeners
/// serve, and its own plain host entries.
pub(crate) fn plain_listener(
    l: &model::Listener,
    redirect: &model::Redirect,
    plain_hosts: &[model::PlainHost],
    config: &Config,
    upstreams: &Upstreams<'_>,
) -> super::plain::HttpListener {
    // Every name an https host entry sets with requestHeaders is stripped
    // from plain requests too: a route shared with an https host must not
    // receive a client's own copy of what the gateway sets there.
    let set_names: Vec<&str> = config
        .listeners
        .iter()
        .flat_map(|l| l.hosts())
        .filter_map(|h| match &h.kind {
            model::HostKind::Terminate(t) => Some(t),
            model::HostKind::Passthrough { .. } => None,
        })
        .flat_map(|t| t.forward.request_headers.iter().map(|(n, _)| n.as_str()))
        .collect();
    let hosts = plain_hosts
        .iter()
        .map(|h| super::plain::PlainHost {
            routes: RouteTable::new(h.routes.iter().map(|r| {
                let target = super::Target {
                    upstream: upstreams.http[r.upstream.index()].clone(),
                    allow: None,
                };
                (&r.matcher, Arc::new(target))
            })),
            escaped_slashes: h.escaped_slashes,
            strip: HostForward::strip_only(set_names.iter().copied()),
            label: Arc::from(label_of(&h.hostnames)),
        })
        .collect();
    let names = SniTable::from_patterns(
        plain_hosts
            .iter()
            .enumerate()
            .flat_map(|(i, h)| h.hostnames.iter().map(move |p| (i, p))),
    );
    let secure = SniTable::from_patterns(
        config
            .listeners
            .iter()
            .flat_map(|l| l.hosts())
            .flat_map(|h| h.hostnames.iter())
            .filter(|p| !matches!(p, model::HostPattern::CatchAll))
            .map(|p| ((), p)),
    );
    super::plain::HttpListener {
        name: l.name.clone(),
        label: Arc::from(l.name.as_str()),
        hosts,
        names,
        secure,
        redirect_port: match redirect.port {
            443 => String::new(),
            p => format!(":{p}"),
        },
        redirect_status: http::StatusCode::from_u16(redirect.status)
            .unwrap_or(http::StatusCode::PERMANENT_REDIRECT),
        limits: config.limits.clone(),
        access_log: config.access_log,
        server: super::plain::server_builder(&config.limits),
    }
}

/// A host entry's first hostname, as a metric label.
fn label_of(hostnames: &[model::HostPattern]) -> String {
    match hostnames.first() {
        Some(model::HostPattern::Exact(n)) => n.clone(),
        Some(model::HostPattern::Wildcard(s)) => format!("*{s}"),
        _ => "*".to_string(),
    }
}
