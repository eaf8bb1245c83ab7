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

/// The host part of `host:port`, `[v6]:port` or a URL authority.
fn host_of(address: &str) -> &str {
    let h = match address.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => address,
    };
    h.trim_start_matches('[').trim_end_matches(']')
}

/// A TCP upstream (`address`), with TLS to it when configured.
pub(crate) fn upstream(
    name: &str,
    address: &str,
    tls: Option<&model::UpstreamTls>,
    cx: &mut UpstreamContext<'_>,
) -> Result<TcpUpstream, TlsError> {
    let tls = match tls {
        None => None,
        Some(t) => Some(Arc::new(UpstreamTls::build(
            name,
            t,
            host_of(address),
            &[],
            cx.material,
            cx.provider,
            &mut cx.system,
        )?)),
    };
    Ok(TcpUpstream {
        name: name.to_string(),
        address: address.to_string(),
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
        tls: HostTls::build(l, certificate, client_auth, material, provider)?,
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
    routes: &[(model::HostPattern, String)],
    default_upstream: Option<&str>,
    upstream: &dyn Fn(&str) -> Result<Arc<TcpUpstream>, TlsError>,
) -> Result<Passthrough, TlsError> {
    Ok(Passthrough {
        name: l.name.clone(),
        label: Arc::from(l.name.as_str()),
        sni: SniTable::from_patterns(routes.iter().enumerate().map(|(i, (p, _))| (i, p))),
        upstreams: routes
            .iter()
            .map(|(_, u)| upstream(u))
            .collect::<Result<Vec<_>, _>>()?,
        default_upstream: default_upstream.map(upstream).transpose()?,
    })
}
