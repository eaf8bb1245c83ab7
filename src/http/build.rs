//! The https side of a snapshot, built from the validated model and the
//! loaded material: upstreams and listeners with their host entries.

use std::collections::BTreeMap;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;

use super::route::RouteTable;
use crate::config::model::{self, Config};
use crate::forward::HostForward;
use crate::material::Material;
use crate::stream;
use crate::tls::upstream::{UpstreamContext, UpstreamTls};
use crate::tls::{HostTls, SniTable, TlsError};

/// An HTTP upstream (`url` or the built-in echo).
pub(crate) fn upstream(
    name: &str,
    authority: &http::uri::Authority,
    host_header: model::HostHeader,
    tls: Option<&model::UpstreamTls>,
    cx: &mut UpstreamContext<'_>,
) -> Result<super::HttpUpstream, TlsError> {
    let tls_client = match tls {
        None => None,
        Some(t) => {
            let ut = UpstreamTls::build(
                name,
                t,
                authority.host(),
                &[b"http/1.1"],
                cx.material,
                cx.provider,
                &mut cx.system,
            )?;
            Some(super::https_client(&ut, cx.limits.connect_timeout))
        }
    };
    Ok(super::HttpUpstream::Http {
        name: name.to_string(),
        authority: authority.clone(),
        host_header,
        tls_client,
    })
}

/// An `https` listener: its host entries with their TLS, routes and
/// forwarding.
pub(crate) fn listener(
    l: &model::Listener,
    config: &Config,
    material: &Material,
    provider: &Arc<CryptoProvider>,
    upstreams: &BTreeMap<String, Arc<super::HttpUpstream>>,
    stream_upstreams: &BTreeMap<String, Arc<stream::TcpUpstream>>,
    client: &super::UpstreamClient,
) -> Result<super::HttpsListener, TlsError> {
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
            hosts.push(super::Host {
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
        hosts.push(super::Host {
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
                    Arc::new(super::Target {
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
    Ok(super::HttpsListener {
        name: l.name.clone(),
        label: Arc::from(l.name.as_str()),
        records_hello: hosts.iter().any(|h| h.passthrough.is_some()),
        hosts,
        sni: SniTable::new(&l.hosts),
        limits: config.limits.clone(),
        access_log: config.access_log,
        client: client.clone(),
        server: super::server_builder(&config.limits),
        succession: Default::default(),
    })
}
