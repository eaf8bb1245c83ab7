//! Host entries: hostnames, routes and their paths.

use super::*;

/// Parses one `hostnames` entry.
pub(crate) fn host_pattern(name: &str) -> Result<model::HostPattern, String> {
    let n = name.trim_end_matches('.').to_ascii_lowercase();
    if n == "*" {
        return Ok(model::HostPattern::CatchAll);
    }
    let (wild, rest) = match n.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, n.as_str()),
    };
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if rest.is_empty() || !rest.split('.').all(label_ok) {
        return Err(format!(
            "\"{name}\" is not a hostname (a DNS name, \"*.\" followed by one, or \"*\" for any)"
        ));
    }
    Ok(if wild {
        model::HostPattern::Wildcard(format!(".{rest}"))
    } else {
        model::HostPattern::Exact(rest.to_string())
    })
}

pub(super) fn host(
    e: &mut Errors<'_>,
    p: &KeyPath,
    h: raw::Host,
    refs: &Refs<'_>,
) -> Option<model::Host> {
    let forward = forward_settings(e, p, &h);
    let (hostnames, mut ok) = hostnames(e, p, &h.hostnames, None);
    if let Some(pt) = &h.passthrough {
        // Not terminated: nothing of TLS or HTTP applies.
        ok &= only_keys(
            e,
            p,
            &h,
            &["hostnames", "passthrough"],
            "does not apply to a passthrough host (its TLS is not terminated)",
        );
        let upstream = stream_upstream(e, &p.key("passthrough"), Some(pt), refs);
        if !ok {
            return None;
        }
        return Some(model::Host {
            hostnames,
            kind: model::HostKind::Passthrough {
                upstream: upstream?,
            },
        });
    }
    let certificate = match h.certificate {
        None => {
            e.push(p, "missing key \"certificate\"");
            None
        }
        Some(c) if !refs.certificates.contains_key(&c) => {
            e.dangling(&p.key("certificate"), "certificates", "certificate", &c);
            None
        }
        Some(c) => Some(c),
    };
    let client_auth = match h.client_auth {
        None => Some(model::ClientAuth::None),
        Some(v) => {
            let cp = p.key("clientAuth");
            e.parse::<raw::ClientAuth>(&cp, &v)
                .and_then(|ca| client_auth(e, &cp, ca, refs))
        }
    };
    let strict_sni = match &h.strict_sni {
        None | Some(serde_json::Value::Bool(true)) => model::StrictSni::On,
        Some(serde_json::Value::Bool(false)) => model::StrictSni::Off,
        Some(serde_json::Value::String(s)) if s == "samePolicy" => model::StrictSni::SamePolicy,
        Some(other) => {
            e.push(
                &p.key("strictSni"),
                format!("{other} is not one of true, false, samePolicy"),
            );
            model::StrictSni::On
        }
    };
    let no_allow = matches!(client_auth, Some(model::ClientAuth::None)).then_some(
        "needs client certificates: set clientAuth.mode (require, optional or optionalNoCa) on this host",
    );
    let routes = routes(e, p, &h.routes, no_allow, refs);
    let hsts = h.hsts.as_ref().map(|v| model::Hsts {
        max_age: v.max_age,
        include_sub_domains: v.include_sub_domains,
    });
    if !ok {
        return None;
    }
    Some(model::Host {
        hostnames,
        kind: model::HostKind::Terminate(Box::new(model::Terminate {
            certificate: certificate?,
            client_auth: client_auth?,
            strict_sni,
            escaped_slashes: escaped_slashes(h.escaped_slashes),
            routes: routes?,
            forward: forward?,
            hsts,
        })),
    })
}

/// The `routes` of a host entry; `no_allow`: why a route `allow` can never
/// be met there (no client certificates are asked for), if so.
fn routes(
    e: &mut Errors<'_>,
    p: &KeyPath,
    raw_routes: &[serde_json::Value],
    no_allow: Option<&'static str>,
    refs: &Refs<'_>,
) -> Option<Vec<model::Route>> {
    let mut ok = true;
    let mut routes = Vec::new();
    if raw_routes.is_empty() {
        e.push(p, "missing key \"routes\" (at least one route)");
        ok = false;
    }
    for (k, r) in raw_routes.iter().enumerate() {
        let rp = p.key("routes").index(k);
        let Some(r) = e.parse::<raw::Route>(&rp, r) else {
            ok = false;
            continue;
        };
        let allow = r.allow.as_ref().and_then(|a| allow(e, &rp.key("allow"), a));
        if let (Some(_), Some(why)) = (&r.allow, no_allow) {
            e.push(&rp.key("allow"), why);
            ok = false;
        }
        let matcher = match (r.path, r.path_prefix) {
            (Some(path), None) if path.starts_with('/') => {
                canonical_route(e, &rp.key("path"), &path).then_some(model::PathMatch::Exact(path))
            }
            (None, Some(prefix)) if prefix.starts_with('/') => {
                canonical_route(e, &rp.key("pathPrefix"), &prefix)
                    .then_some(model::PathMatch::Prefix(prefix))
            }
            (Some(_), Some(_)) | (None, None) => {
                e.push(&rp, "a route has exactly one of \"path\" or \"pathPrefix\"");
                None
            }
            (Some(s), None) => {
                e.push(&rp.key("path"), format!("\"{s}\" must start with /"));
                None
            }
            (None, Some(s)) => {
                e.push(&rp.key("pathPrefix"), format!("\"{s}\" must start with /"));
                None
            }
        };
        let upstream = match refs.upstreams.get(&r.upstream) {
            None => {
                e.dangling(&rp.key("upstream"), "upstreams", "upstream", &r.upstream);
                None
            }
            Some(UpstreamId::Tcp(_)) => {
                e.push(
                    &rp.key("upstream"),
                    format!("upstream \"{}\" is a TCP upstream (address); an HTTP route needs builtin, url or endpoints", r.upstream),
                );
                None
            }
            Some(UpstreamId::Http(id)) => Some(*id),
        };
        match (matcher, upstream) {
            (Some(matcher), Some(upstream)) => routes.push(model::Route {
                matcher,
                upstream,
                allow,
            }),
            _ => ok = false,
        }
    }
    ok.then_some(routes)
}

/// A host entry of an `http` listener: hostnames, routes and
/// `escapedSlashes`; nothing of TLS or client identity applies.
pub(super) fn plain_host(
    e: &mut Errors<'_>,
    p: &KeyPath,
    h: raw::Host,
    refs: &Refs<'_>,
) -> Option<model::PlainHost> {
    let (hostnames, mut ok) = hostnames(
        e,
        p,
        &h.hostnames,
        Some("\"*\" is not allowed on an http listener: it would take every name into plaintext; list the names"),
    );
    ok &= only_keys(
        e,
        p,
        &h,
        &["hostnames", "routes", "escapedSlashes"],
        "does not apply to a host of an http listener (plain HTTP: no TLS, no client identity)",
    );
    let routes = routes(
        e,
        p,
        &h.routes,
        Some("needs client certificates, which plain HTTP has none of: serve this route on an https listener"),
        refs,
    );
    if !ok {
        return None;
    }
    Some(model::PlainHost {
        hostnames,
        escaped_slashes: escaped_slashes(h.escaped_slashes),
        routes: routes?,
    })
}

/// A host entry's `hostnames`: at least one, each a hostname pattern;
/// `no_catch_all`: why `"*"` is refused here, if it is. Returns the patterns
/// and whether all were valid.
fn hostnames(
    e: &mut Errors<'_>,
    p: &KeyPath,
    names: &[String],
    no_catch_all: Option<&'static str>,
) -> (Vec<model::HostPattern>, bool) {
    let mut ok = true;
    let mut out = Vec::new();
    if names.is_empty() {
        e.push(&p.key("hostnames"), "needs at least one name");
        ok = false;
    }
    for (k, name) in names.iter().enumerate() {
        match (host_pattern(name), no_catch_all) {
            (Ok(model::HostPattern::CatchAll), Some(why)) => {
                e.push(&p.key("hostnames").index(k), why);
                ok = false;
            }
            (Ok(pat), _) => out.push(pat),
            (Err(msg), _) => {
                e.push(&p.key("hostnames").index(k), msg);
                ok = false;
            }
        }
    }
    (out, ok)
}

/// Refuses, with `why`, every key of a host entry that is set and not in
/// `allowed`; returns whether none was.
fn only_keys(e: &mut Errors<'_>, p: &KeyPath, h: &raw::Host, allowed: &[&str], why: &str) -> bool {
    let mut ok = true;
    for (k, present) in [
        ("certificate", h.certificate.is_some()),
        ("clientAuth", h.client_auth.is_some()),
        ("routes", !h.routes.is_empty()),
        ("strictSni", h.strict_sni.is_some()),
        ("escapedSlashes", h.escaped_slashes.is_some()),
        ("passthrough", h.passthrough.is_some()),
        ("forwardClientCert", h.forward_client_cert.is_some()),
        ("xfccDetails", h.xfcc_details.is_some()),
        (
            "passCertificateToUpstream",
            h.pass_certificate_to_upstream.is_some(),
        ),
        ("clientCertHeaders", h.client_cert_headers.is_some()),
        ("requestHeaders", h.request_headers.is_some()),
        ("hsts", h.hsts.is_some()),
    ] {
        if present && !allowed.contains(&k) {
            e.push(&p.key(k), why);
            ok = false;
        }
    }
    ok
}

fn escaped_slashes(v: Option<raw::EscapedSlashes>) -> model::EscapedSlashes {
    match v {
        None | Some(raw::EscapedSlashes::Reject) => model::EscapedSlashes::Reject,
        Some(raw::EscapedSlashes::Keep) => model::EscapedSlashes::Keep,
    }
}

/// SPEC §2: routes match the canonical path, so a route written in another
/// form could never match; say which form to write.
pub(super) fn canonical_route(e: &mut Errors<'_>, p: &KeyPath, path: &str) -> bool {
    use crate::path::{canonicalize, route_key};
    let canonical =
        canonicalize(path, model::EscapedSlashes::Keep).map(|c| route_key(&c).into_owned());
    match canonical {
        Ok(c) if c == path => true,
        Ok(c) => {
            e.push(
                p,
                format!("\"{path}\" is not a canonical path and would never match; write \"{c}\""),
            );
            false
        }
        Err(why) => {
            e.push(p, format!("\"{path}\": {why}"));
            false
        }
    }
}
