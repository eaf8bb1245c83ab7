//! Everything a running gateway needs, prepared at load from the validated
//! config and the loaded material: per-host TLS configs, SNI tables, route
//! tables, upstream clients. Connections clone one `Arc` of it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;

use crate::config::model::{self, Config};
use crate::forward::HostForward;
use crate::http::{self, route::RouteTable};
use crate::material::Material;
use crate::tls::{HostTls, SniTable, TlsError};

/// The prepared gateway.
#[derive(Debug)]
pub struct Snapshot {
    /// Listeners with the address each binds.
    pub listeners: Vec<(SocketAddr, Arc<http::Listener>)>,
    /// Admin endpoint.
    pub admin: Option<SocketAddr>,
    /// Connection and request limits.
    pub limits: model::Limits,
}

impl Snapshot {
    /// Prepares everything `config` describes with `material`.
    pub fn build(
        config: &Config,
        material: &Material,
        provider: &Arc<CryptoProvider>,
    ) -> Result<Self, TlsError> {
        let upstreams: BTreeMap<String, Arc<http::Upstream>> = config
            .upstreams
            .iter()
            .map(|(name, u)| {
                let rt = match u {
                    model::Upstream::Echo => http::Upstream::Echo,
                    model::Upstream::Http {
                        authority,
                        host_header,
                    } => http::Upstream::Http {
                        name: name.clone(),
                        authority: authority.clone(),
                        host_header: *host_header,
                    },
                };
                (name.clone(), Arc::new(rt))
            })
            .collect();
        let client = http::upstream_client();
        let mut listeners = Vec::new();
        for l in &config.listeners {
            let mut hosts = Vec::new();
            // strictSni samePolicy: equal certificate and client auth.
            let mut policies: Vec<(&str, &model::ClientAuth)> = Vec::new();
            for (i, h) in l.hosts.iter().enumerate() {
                let key = (h.certificate.as_str(), &h.client_auth);
                let policy_id = match policies.iter().position(|p| *p == key) {
                    Some(p) => p,
                    None => {
                        policies.push(key);
                        policies.len() - 1
                    }
                };
                let own_uris = material
                    .identities
                    .get(&h.certificate)
                    .map(|c| c.leaf.uri_sans.clone())
                    .unwrap_or_default();
                let allow = match &h.client_auth {
                    model::ClientAuth::Verify(p) | model::ClientAuth::OptionalNoCa(p) => {
                        p.allow.clone()
                    }
                    model::ClientAuth::None => None,
                };
                hosts.push(http::Host {
                    tls: HostTls::build(l, i, material, provider)?,
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
                    policy_id,
                });
            }
            let listener = http::Listener {
                name: l.name.clone(),
                hosts,
                sni: SniTable::new(&l.hosts),
                limits: config.limits.clone(),
                access_log: config.access_log,
                client: client.clone(),
                server: http::server_builder(&config.limits),
            };
            listeners.push((l.address, Arc::new(listener)));
        }
        Ok(Snapshot {
            listeners,
            admin: config.admin,
            limits: config.limits.clone(),
        })
    }
}
