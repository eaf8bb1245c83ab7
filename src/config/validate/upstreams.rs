//! `upstreams`: URLs, TLS to upstreams, and the references to them.

use super::*;

pub(super) fn upstream_tls(
    e: &mut Errors<'_>,
    p: &KeyPath,
    t: &raw::UpstreamTls,
) -> Option<model::UpstreamTls> {
    let allow = match &t.allow {
        None => None,
        Some(a) => Some(allow(e, &p.key("allow"), a)?),
    };
    if let Some(n) = &t.server_name {
        if rustls_pki_types::ServerName::try_from(n.as_str()).is_err() {
            e.push(
                &p.key("serverName"),
                format!("\"{n}\" is not a DNS name or IP address"),
            );
            return None;
        }
    }
    Some(model::UpstreamTls {
        certificate: t.certificate.clone(),
        trust_bundle: t.trust_bundle.clone(),
        server_name: t.server_name.clone(),
        allow,
        alpn: t.alpn.clone(),
    })
}

pub(super) fn upstream(
    e: &mut Errors<'_>,
    p: &KeyPath,
    u: raw::Upstream,
) -> Option<model::Upstream> {
    let tls = match &u.tls {
        None => None,
        Some(t) => Some(upstream_tls(e, &p.key("tls"), t)?),
    };
    match (u.builtin, u.url, u.address) {
        (Some(raw::Builtin::Echo), None, None) => {
            for (k, set) in [
                ("hostHeader", u.host_header.is_some()),
                ("tls", tls.is_some()),
            ] {
                if set {
                    e.push(&p.key(k), "does not apply to the echo upstream");
                }
            }
            Some(model::Upstream::Echo)
        }
        (None, Some(url), None) => {
            let up = p.key("url");
            let uri: http::Uri = match url.parse() {
                Ok(u) => u,
                Err(err) => {
                    e.push(&up, format!("\"{url}\" is not a URL: {err}"));
                    return None;
                }
            };
            let tls = match (uri.scheme_str(), tls) {
                (Some("http"), None) => None,
                (Some("http"), Some(_)) => {
                    e.push(&p.key("tls"), "needs an https:// url");
                    return None;
                }
                // An https:// URL without `tls`: the system roots, no client certificate.
                (Some("https"), t) => Some(t.unwrap_or_default()),
                _ => {
                    e.push(
                        &up,
                        format!("\"{url}\" must start with http:// or https://"),
                    );
                    return None;
                }
            };
            if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
                e.push(
                    &up,
                    "an upstream URL has no path or query (routes keep the request's path)",
                );
                return None;
            }
            let authority = uri.authority()?.clone();
            let host_header = match u.host_header {
                Some(raw::HostHeader::Upstream) => model::HostHeader::Upstream,
                _ => model::HostHeader::Preserve,
            };
            Some(model::Upstream::Http {
                authority,
                host_header,
                tls,
            })
        }
        (None, None, Some(address)) => {
            if u.host_header.is_some() {
                e.push(&p.key("hostHeader"), "only applies to a url upstream");
            }
            let ok = match address.rsplit_once(':') {
                Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0),
                None => false,
            };
            if !ok {
                e.push(&p.key("address"), format!("\"{address}\" is not HOST:PORT"));
                return None;
            }
            Some(model::Upstream::Stream { address, tls })
        }
        _ => {
            e.push(
                p,
                "an upstream has exactly one of \"builtin\", \"url\" or \"address\"",
            );
            None
        }
    }
}

/// Checks the names an upstream's `tls` refers to.
pub(super) fn upstream_refs(
    e: &mut Errors<'_>,
    upstreams: &BTreeMap<String, model::Upstream>,
    certificates: &BTreeMap<String, model::CertificateSource>,
    trust_bundles: &BTreeMap<String, model::TrustBundleSource>,
) {
    for (name, u) in upstreams {
        let tls = match u {
            model::Upstream::Http { tls: Some(t), .. }
            | model::Upstream::Stream { tls: Some(t), .. } => t,
            _ => continue,
        };
        let p = KeyPath::default().key("upstreams").key(name).key("tls");
        if let Some(c) = &tls.certificate {
            if !certificates.contains_key(c) {
                e.dangling(&p.key("certificate"), "certificates", "certificate", c);
            }
        }
        if let Some(t) = &tls.trust_bundle {
            if !trust_bundles.contains_key(t) {
                e.dangling(&p.key("trustBundle"), "trustBundles", "trust bundle", t);
            }
        }
    }
}
