//! `listeners`: addresses, protocols and the stream side of `tls` and `tcp` listeners.

use super::*;

pub(super) fn listener(
    e: &mut Errors<'_>,
    p: &KeyPath,
    mut l: raw::Listener,
    refs: &Refs<'_>,
) -> Option<model::Listener> {
    let address = parse_addr(e, &p.key("address"), &l.address);
    let has_tls = l.tls.is_some();
    let tls = l.tls.take().unwrap_or_default();
    let min_version = match &tls.min_version {
        None => model::TlsVersion::V12,
        Some(serde_json::Value::String(v)) if v == "1.2" => model::TlsVersion::V12,
        Some(serde_json::Value::String(v)) if v == "1.3" => model::TlsVersion::V13,
        Some(serde_json::Value::Number(n)) => {
            e.push(
                &p.key("tls").key("minVersion"),
                format!("{n} is read as a number; quote it: minVersion: \"{n}\""),
            );
            model::TlsVersion::V12
        }
        Some(other) => {
            e.push(
                &p.key("tls").key("minVersion"),
                format!("{other} is not one of \"1.2\", \"1.3\""),
            );
            model::TlsVersion::V12
        }
    };
    let https = l.protocol == raw::Protocol::Https;
    // SPEC §2 default 5m; a resumed session skips the certificate's
    // signature check, so its lifetime is bounded (at most a day, as
    // RFC 8446 §4.6.1 bounds tickets).
    let session_lifetime = match &tls.session_lifetime {
        None => Duration::from_secs(300),
        Some(s) => match parse_duration(s) {
            Some(d) if d >= Duration::from_secs(1) && d <= Duration::from_secs(86_400) => d,
            _ => {
                e.push(
                    &p.key("tls").key("sessionLifetime"),
                    format!("\"{s}\" is not a duration from 1s to 24h (e.g. 5m)"),
                );
                Duration::from_secs(300)
            }
        },
    };
    let alpn = match tls.alpn {
        None if https => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        None => Vec::new(),
        Some(list) => {
            let mut out = Vec::new();
            for (i, a) in list.iter().enumerate() {
                match a.as_str() {
                    "h2" | "http/1.1" => out.push(a.as_bytes().to_vec()),
                    other if !https && !other.is_empty() => out.push(other.as_bytes().to_vec()),
                    other => e.push(
                        &p.key("tls").key("alpn").index(i),
                        format!("\"{other}\" is not an HTTP protocol this listener speaks (h2, http/1.1)"),
                    ),
                }
            }
            out
        }
    };
    let keys_present = [
        ("certificate", l.certificate.is_some()),
        ("clientAuth", l.client_auth.is_some()),
        ("upstream", l.upstream.is_some()),
        ("proxyProtocol", l.proxy_protocol.is_some()),
        ("routes", l.routes.is_some()),
        ("defaultUpstream", l.default_upstream.is_some()),
        ("hosts", !l.hosts.is_empty()),
        ("redirect", l.redirect.is_some()),
    ];
    let (protocol_name, allowed): (&str, &[&str]) = match l.protocol {
        raw::Protocol::Https => ("https", &["hosts"]),
        raw::Protocol::Tls => (
            "tls",
            &["certificate", "clientAuth", "upstream", "proxyProtocol"],
        ),
        raw::Protocol::Tcp => ("tcp", &["upstream"]),
        raw::Protocol::Passthrough => ("passthrough", &["routes", "defaultUpstream"]),
        raw::Protocol::Http => ("http", &["hosts", "redirect"]),
    };
    if l.protocol == raw::Protocol::Http && has_tls {
        e.push(
            &p.key("tls"),
            "does not apply to an \"http\" listener (plain HTTP)",
        );
    }
    for (k, present) in keys_present {
        if present && !allowed.contains(&k) {
            e.push(
                &p.key(k),
                format!("does not apply to a \"{protocol_name}\" listener"),
            );
        }
    }
    let stream = match l.protocol {
        raw::Protocol::Tls => {
            let certificate = match &l.certificate {
                None => {
                    e.push(
                        p,
                        "missing key \"certificate\" (a tls listener presents one)",
                    );
                    None
                }
                Some(c) if !refs.certificates.contains_key(c) => {
                    e.dangling(&p.key("certificate"), "certificates", "certificate", c);
                    None
                }
                Some(c) => Some(c.clone()),
            };
            let client_auth = match &l.client_auth {
                None => Some(model::ClientAuth::None),
                Some(v) => {
                    let cp = p.key("clientAuth");
                    e.parse::<raw::ClientAuth>(&cp, v)
                        .and_then(|ca| client_auth(e, &cp, ca, refs))
                }
            };
            let proxy_protocol = match l.proxy_protocol.as_deref() {
                None => false,
                Some("v2") => true,
                Some(other) => {
                    e.push(
                        &p.key("proxyProtocol"),
                        format!("\"{other}\" is not supported; use v2"),
                    );
                    false
                }
            };
            let upstream = stream_upstream(e, &p.key("upstream"), l.upstream.as_deref(), refs);
            Some(model::ListenerKind::Tls {
                certificate: certificate?,
                client_auth: Box::new(client_auth?),
                upstream: upstream?,
                proxy_protocol,
            })
        }
        raw::Protocol::Http => plain(e, p, &l, refs),
        raw::Protocol::Tcp => Some(model::ListenerKind::Tcp {
            upstream: stream_upstream(e, &p.key("upstream"), l.upstream.as_deref(), refs)?,
        }),
        raw::Protocol::Passthrough => {
            let mut routes = Vec::new();
            let mut ok = true;
            if l.routes.as_ref().is_none_or(Vec::is_empty) {
                e.push(
                    p,
                    "a passthrough listener needs \"routes\" (sni and upstream)",
                );
                ok = false;
            }
            for (k, r) in l.routes.iter().flatten().enumerate() {
                let rp = p.key("routes").index(k);
                let pattern = match host_pattern(&r.sni) {
                    Ok(pat) => Some(pat),
                    Err(msg) => {
                        e.push(&rp.key("sni"), msg);
                        None
                    }
                };
                let up = stream_upstream(e, &rp.key("upstream"), Some(&r.upstream), refs);
                match (pattern, up) {
                    (Some(pat), Some(up)) => routes.push((pat, up)),
                    _ => ok = false,
                }
            }
            let default_upstream = match &l.default_upstream {
                None => None,
                Some(d) => {
                    let up = stream_upstream(e, &p.key("defaultUpstream"), Some(d), refs);
                    ok &= up.is_some();
                    up
                }
            };
            if !ok {
                return None;
            }
            Some(model::ListenerKind::Passthrough {
                routes,
                default_upstream,
            })
        }
        _ => None,
    };
    if !https {
        return Some(model::Listener {
            name: l.name,
            address: address?,
            min_version,
            alpn,
            session_lifetime,
            kind: stream?,
        });
    }
    if l.hosts.is_empty() {
        e.push(
            p,
            "an https listener needs at least one entry under \"hosts\"",
        );
    }
    let (hosts, _) = each_host(e, p, &l, refs, host);
    Some(model::Listener {
        name: l.name,
        address: address?,
        min_version,
        alpn,
        session_lifetime,
        kind: model::ListenerKind::Https { hosts },
    })
}

/// An `http` listener's `redirect` and `hosts`.
fn plain(
    e: &mut Errors<'_>,
    p: &KeyPath,
    l: &raw::Listener,
    refs: &Refs<'_>,
) -> Option<model::ListenerKind> {
    let r = l.redirect.as_ref();
    let rp = p.key("redirect");
    let port = match r.and_then(|r| r.port) {
        None => Some(443),
        Some(0) => {
            e.push(&rp.key("port"), "0 is not a port");
            None
        }
        Some(port) => Some(port),
    };
    let status = match r.and_then(|r| r.status) {
        None => Some(308),
        Some(s @ (301 | 302 | 307 | 308)) => Some(s),
        Some(s) => {
            e.push(
                &rp.key("status"),
                format!("{s} is not a redirect status; use 301, 302, 307 or 308"),
            );
            None
        }
    };
    let (hosts, ok) = each_host(e, p, l, refs, plain_host);
    if !ok {
        return None;
    }
    Some(model::ListenerKind::Http {
        redirect: model::Redirect {
            port: port?,
            status: status?,
        },
        hosts,
    })
}

/// Each of a listener's `hosts`, read on its own and built by `build`; a
/// hostname may appear in one entry only. Returns the built entries and
/// whether every one was valid.
fn each_host<T>(
    e: &mut Errors<'_>,
    p: &KeyPath,
    l: &raw::Listener,
    refs: &Refs<'_>,
    build: impl Fn(&mut Errors<'_>, &KeyPath, raw::Host, &Refs<'_>) -> Option<T>,
) -> (Vec<T>, bool) {
    let mut out = Vec::new();
    let mut ok = true;
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (j, h) in l.hosts.iter().enumerate() {
        let hp = p.key("hosts").index(j);
        let Some(h) = e.parse::<raw::Host>(&hp, h) else {
            ok = false;
            continue;
        };
        for (k, name) in h.hostnames.iter().enumerate() {
            let key = name.trim_end_matches('.').to_ascii_lowercase();
            if let Some(prev) = seen.insert(key, j) {
                e.push(
                    &hp.key("hostnames").index(k),
                    format!("\"{name}\" is already served by hosts[{prev}] of this listener"),
                );
                ok = false;
            }
        }
        match build(e, &hp, h, refs) {
            Some(h) => out.push(h),
            None => ok = false,
        }
    }
    (out, ok)
}

/// A reference to an `address` upstream (what stream listeners and
/// passthrough forward to).
pub(super) fn stream_upstream(
    e: &mut Errors<'_>,
    p: &KeyPath,
    name: Option<&str>,
    refs: &Refs<'_>,
) -> Option<model::TcpUpstreamId> {
    let Some(name) = name else {
        e.push(p, "missing: name an upstream with an \"address\"");
        return None;
    };
    match refs.upstreams.get(name) {
        Some(UpstreamId::Tcp(id)) => Some(*id),
        Some(UpstreamId::Http(_)) => {
            e.push(
                p,
                format!(
                    "upstream \"{name}\" is not a TCP upstream: give it an \"address\" (HOST:PORT)"
                ),
            );
            None
        }
        None => {
            e.dangling(p, "upstreams", "upstream", name);
            None
        }
    }
}
