//! `upstreams`: URLs, TLS to upstreams, and the references to them.

use super::*;

/// `upstreams.NAME.tls` (or its defaults, `t` absent, for an `https://`
/// URL); `host` is the URL's or address's host, the default server name.
pub(super) fn upstream_tls(
    e: &mut Errors<'_>,
    p: &KeyPath,
    t: Option<&raw::UpstreamTls>,
    host: &str,
) -> Option<model::UpstreamTls> {
    let allow = match t.and_then(|t| t.allow.as_ref()) {
        None => None,
        Some(a) => Some(allow(e, &p.key("allow"), a)?),
    };
    let given = t.and_then(|t| t.server_name.as_deref());
    let name = given.unwrap_or(host);
    let name = name.trim_start_matches('[').trim_end_matches(']');
    let server_name = match rustls_pki_types::ServerName::try_from(name) {
        Ok(n) => n.to_owned(),
        Err(_) if given.is_some() => {
            e.push(
                &p.key("serverName"),
                format!("\"{name}\" is not a DNS name or IP address"),
            );
            return None;
        }
        Err(_) => {
            e.push(
                p,
                format!("the upstream's host \"{name}\" is not a DNS name or IP address; give tls.serverName"),
            );
            return None;
        }
    };
    Some(model::UpstreamTls {
        certificate: t.and_then(|t| t.certificate.clone()),
        trust_bundle: t.and_then(|t| t.trust_bundle.clone()),
        server_name,
        allow,
        alpn: t.and_then(|t| t.alpn.clone()),
    })
}

/// One endpoint URL: its scheme and authority.
fn endpoint_url(
    e: &mut Errors<'_>,
    up: &KeyPath,
    url: &str,
) -> Option<(bool, http::uri::Authority)> {
    let uri: http::Uri = match url.parse() {
        Ok(u) => u,
        Err(err) => {
            e.push(up, format!("\"{url}\" is not a URL: {err}"));
            return None;
        }
    };
    let https = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => {
            e.push(up, format!("\"{url}\" must start with http:// or https://"));
            return None;
        }
    };
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        e.push(
            up,
            "an upstream URL has no path or query (routes keep the request's path)",
        );
        return None;
    }
    let authority = uri.authority()?.clone();
    if authority.as_str().contains('@') {
        e.push(
            up,
            "an upstream URL has no user information (user:password@ is never sent)",
        );
        return None;
    }
    // An authority holds only URI characters, all valid in a header; the
    // Host sent with `hostHeader: upstream`.
    if http::HeaderValue::from_str(authority.as_str()).is_err() {
        e.push(up, "its host:port cannot be sent as a Host header");
        return None;
    }
    Some((https, authority))
}

/// A `url` or `endpoints` upstream; `urls` with the key path of each.
fn http_upstream(
    e: &mut Errors<'_>,
    p: &KeyPath,
    u: &raw::Upstream,
    urls: &[(KeyPath, String)],
) -> Option<Upstream> {
    let tls_path = p.key("tls");
    let mut parsed = Vec::new();
    for (up, url) in urls {
        let (https, authority) = endpoint_url(e, up, url)?;
        if let Some((first, _)) = parsed.first() {
            if *first != https {
                e.push(up, "every endpoint has the scheme of the first");
                return None;
            }
        }
        if parsed
            .iter()
            .any(|(_, a): &(bool, http::uri::Authority)| *a == authority)
        {
            e.push(up, format!("\"{authority}\" is listed twice"));
            return None;
        }
        parsed.push((https, authority));
    }
    let https = parsed.first().is_some_and(|(h, _)| *h);
    let first_host = parsed
        .first()
        .map(|(_, a)| a.host().to_string())
        .unwrap_or_default();
    let tls = match (https, &u.tls) {
        (false, None) => None,
        (false, Some(_)) => {
            e.push(&tls_path, "needs an https:// url");
            return None;
        }
        // An https:// URL without `tls`: the system roots, no client certificate.
        (true, t) => Some(upstream_tls(e, &tls_path, t.as_ref(), &first_host)?),
    };
    let given = u
        .tls
        .as_ref()
        .and_then(|t| t.server_name.is_some().then_some(()));
    let mut endpoints = Vec::new();
    for ((up, _), (_, authority)) in urls.iter().zip(parsed) {
        let server_name = match (&tls, given) {
            (None, _) => None,
            (Some(t), Some(())) => Some(t.server_name.clone()),
            (Some(_), None) => {
                let host = authority
                    .host()
                    .trim_start_matches('[')
                    .trim_end_matches(']');
                match rustls_pki_types::ServerName::try_from(host) {
                    Ok(n) => Some(n.to_owned()),
                    Err(_) => {
                        e.push(
                            up,
                            format!("the host \"{host}\" is not a DNS name or IP address; give tls.serverName"),
                        );
                        return None;
                    }
                }
            }
        };
        endpoints.push(model::Endpoint {
            authority,
            server_name,
        });
    }
    let host_header = match u.host_header {
        Some(raw::HostHeader::Upstream) => model::HostHeader::Upstream,
        _ => model::HostHeader::Preserve,
    };
    let balance = match u.load_balancing {
        Some(raw::LoadBalancing::LeastRequest) => model::Balance::LeastRequest,
        _ => model::Balance::RoundRobin,
    };
    let health = match &u.health_check {
        None => None,
        Some(h) => {
            let hp = p.key("healthCheck");
            let max_failures = h.max_failures.unwrap_or(5);
            if max_failures == 0 {
                e.push(&hp.key("maxFailures"), "must be at least 1");
            }
            let eject_for = super::duration(
                e,
                &hp.key("ejectFor"),
                h.eject_for.clone(),
                std::time::Duration::from_secs(30),
            );
            Some(model::HealthCheck {
                max_failures,
                eject_for,
            })
        }
    };
    Some(Upstream::Http(model::HttpUpstream::Url {
        endpoints,
        host_header,
        tls,
        balance,
        health,
        version: match u.version {
            None | Some(raw::HttpVersion::Auto) => model::HttpVersion::Auto,
            Some(raw::HttpVersion::Http1) => model::HttpVersion::Http1,
            Some(raw::HttpVersion::Http2) => model::HttpVersion::Http2,
        },
    }))
}

/// One validated upstream, before the section is split by kind.
pub(super) enum Upstream {
    Http(model::HttpUpstream),
    Tcp(model::TcpUpstream),
}

/// The host part of `host:port` or `[v6]:port`.
fn host_of(address: &str) -> &str {
    match address.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => address,
    }
}

pub(super) fn upstream(e: &mut Errors<'_>, p: &KeyPath, u: raw::Upstream) -> Option<Upstream> {
    let tls_path = p.key("tls");
    let is_url = u.url.is_some() || u.endpoints.is_some();
    for (k, set) in [
        ("loadBalancing", u.load_balancing.is_some()),
        ("healthCheck", u.health_check.is_some()),
        ("version", u.version.is_some()),
    ] {
        if set && !is_url {
            e.push(&p.key(k), "only applies to a url or endpoints upstream");
        }
    }
    match (
        u.builtin,
        u.url.clone(),
        u.address.clone(),
        u.endpoints.clone(),
    ) {
        (Some(raw::Builtin::Echo), None, None, None) => {
            for (k, set) in [
                ("hostHeader", u.host_header.is_some()),
                ("tls", u.tls.is_some()),
            ] {
                if set {
                    e.push(&p.key(k), "does not apply to the echo upstream");
                }
            }
            Some(Upstream::Http(model::HttpUpstream::Echo))
        }
        (None, Some(url), None, None) => http_upstream(e, p, &u, &[(p.key("url"), url)]),
        (None, None, None, Some(list)) => {
            let ep = p.key("endpoints");
            if list.is_empty() {
                e.push(&ep, "give at least one endpoint URL");
                return None;
            }
            let urls: Vec<(KeyPath, String)> = list
                .into_iter()
                .enumerate()
                .map(|(i, url)| (ep.index(i), url))
                .collect();
            http_upstream(e, p, &u, &urls)
        }
        (None, None, Some(address), None) => {
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
            let tls = match &u.tls {
                None => None,
                Some(t) => Some(upstream_tls(e, &tls_path, Some(t), host_of(&address))?),
            };
            Some(Upstream::Tcp(model::TcpUpstream { address, tls }))
        }
        _ => {
            e.push(
                p,
                "an upstream has exactly one of \"builtin\", \"url\", \"endpoints\" or \"address\"",
            );
            None
        }
    }
}

/// Splits the section by kind, checks the names an upstream's `tls`
/// refers to, and returns each name's id.
pub(super) fn upstream_refs(
    e: &mut Errors<'_>,
    section: BTreeMap<String, Upstream>,
    certificates: &BTreeMap<String, model::CertificateSource>,
    trust_bundles: &BTreeMap<String, model::TrustBundleSource>,
) -> (model::Upstreams, BTreeMap<String, UpstreamId>) {
    let mut all = model::Upstreams::default();
    let mut ids = BTreeMap::new();
    for (name, u) in section {
        let tls = match &u {
            Upstream::Http(model::HttpUpstream::Url { tls, .. }) => tls.as_ref(),
            Upstream::Http(model::HttpUpstream::Echo) => None,
            Upstream::Tcp(t) => t.tls.as_ref(),
        };
        if let Some(tls) = tls {
            let p = KeyPath::default().key("upstreams").key(&name).key("tls");
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
        let id = match u {
            Upstream::Http(h) => {
                all.http.push((name.clone(), h));
                UpstreamId::Http(model::HttpUpstreamId::new(all.http.len() - 1))
            }
            Upstream::Tcp(t) => {
                all.tcp.push((name.clone(), t));
                UpstreamId::Tcp(model::TcpUpstreamId::new(all.tcp.len() - 1))
            }
        };
        ids.insert(name, id);
    }
    (all, ids)
}

/// What an upstream's name refers to.
#[derive(Clone, Copy)]
pub(super) enum UpstreamId {
    Http(model::HttpUpstreamId),
    Tcp(model::TcpUpstreamId),
}
