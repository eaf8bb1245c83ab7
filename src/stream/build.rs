//! The stream side of a snapshot, built from the validated model and the
//! loaded material: TCP upstreams and the `tls`, `tcp` and `passthrough`
//! listeners.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

use super::{Passthrough, TcpListener, TcpUpstream, TlsListener};
use crate::config::model;
use crate::material::Material;
use crate::tls::upstream::{UpstreamContext, UpstreamTls};
use crate::tls::{HostTls, SniTable, TlsError};

/// A TCP upstream (`address`), with TLS to it when configured.
pub(crate) fn upstream(
    name: &str,
    u: &model::TcpUpstream,
    cx: &mut UpstreamContext<'_>,
) -> Result<TcpUpstream, TlsError> {
    let tls = match &u.tls {
        None => None,
        Some(t) => Some(Arc::new(UpstreamTls::build(
            name,
            t,
            &[],
            cx.material,
            cx.provider,
            &mut cx.system,
        )?)),
    };
    Ok(TcpUpstream {
        name: name.to_string(),
        address: u.address.clone(),
        tls,
        connect_timeout: cx.limits.connect_timeout,
    })
}

/// A `tls` listener: terminate, authenticate, splice.
pub(crate) fn tls_listener(
    l: &model::Listener,
    certificate: &str,
    client_auth: &model::ClientAuth,
    upstream: Arc<TcpUpstream>,
    proxy_protocol: bool,
    material: &Material,
    provider: &Arc<CryptoProvider>,
) -> Result<TlsListener, TlsError> {
    let allow = match client_auth {
        model::ClientAuth::Verify(p) | model::ClientAuth::OptionalNoCa(p) => p.allow.clone(),
        model::ClientAuth::None => None,
    };
    Ok(TlsListener {
        name: l.name.clone(),
        label: Arc::from(l.name.as_str()),
        tls: HostTls::build(
            l,
            crate::tls::Entry {
                hostnames: &[],
                routes: &[],
                client_cert_headers: false,
            },
            certificate,
            client_auth,
            material,
            provider,
        )?,
        allow,
        upstream,
        proxy_protocol,
        succession: Default::default(),
    })
}

/// A `tcp` listener: plain in, (usually mutual TLS) out.
pub(crate) fn tcp_listener(l: &model::Listener, upstream: Arc<TcpUpstream>) -> TcpListener {
    TcpListener {
        name: l.name.clone(),
        label: Arc::from(l.name.as_str()),
        upstream,
    }
}

/// A `passthrough` listener: route the raw TLS stream by SNI.
pub(crate) fn passthrough(
    l: &model::Listener,
    routes: &[(model::HostPattern, model::TcpUpstreamId)],
    default_upstream: Option<model::TcpUpstreamId>,
    upstreams: &[Arc<TcpUpstream>],
) -> Passthrough {
    Passthrough {
        name: l.name.clone(),
        label: Arc::from(l.name.as_str()),
        sni: SniTable::from_patterns(routes.iter().enumerate().map(|(i, (p, _))| (i, p))),
        upstreams: routes
            .iter()
            .map(|(_, u)| upstreams[u.index()].clone())
            .collect(),
        default_upstream: default_upstream.map(|u| upstreams[u.index()].clone()),
    }
}
