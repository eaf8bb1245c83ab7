//! Raw types → model. Collects *every* problem, each with file, line and key
//! path, instead of stopping at the first.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::model::{self, Config};
use super::node::{KeyPath, Node, Segment};
use super::raw;
use super::{ConfigError, ConfigErrors};

/// Collects errors against one file.
struct Errors<'a> {
    file: &'a Path,
    root: &'a Node,
    list: Vec<ConfigError>,
    /// `section.name` of elements that exist but are invalid (already
    /// reported), so references to them do not report again.
    broken: BTreeSet<String>,
}

impl Errors<'_> {
    fn push(&mut self, path: &KeyPath, message: impl Into<String>) {
        self.list.push(ConfigError {
            file: self.file.to_path_buf(),
            line: Some(self.root.line_of(path)),
            path: path.to_string(),
            message: message.into(),
        });
    }

    /// Deserializes the part of the tree at `path`; on failure records the
    /// error with the exact key path serde reached.
    fn parse<T: DeserializeOwned>(
        &mut self,
        path: &KeyPath,
        value: &serde_json::Value,
    ) -> Option<T> {
        match serde_path_to_error::deserialize::<_, T>(value) {
            Ok(v) => Some(v),
            Err(e) => {
                let mut full = path.clone();
                for seg in e.path().iter() {
                    match seg {
                        serde_path_to_error::Segment::Seq { index } => {
                            full.0.push(Segment::Index(*index))
                        }
                        serde_path_to_error::Segment::Map { key } => {
                            full.0.push(Segment::Key(key.clone()))
                        }
                        serde_path_to_error::Segment::Enum { .. }
                        | serde_path_to_error::Segment::Unknown => {}
                    }
                }
                let mut message = e.into_inner().to_string();
                if let Some(hint) = nearest_name(&message) {
                    message.push_str(&format!("; did you mean \"{hint}\"?"));
                }
                self.push(&full, message.replace('`', "\""));
                None
            }
        }
    }

    /// Reports a reference to `name` in `section` that does not resolve,
    /// unless the element exists and its own error was reported already.
    fn dangling(&mut self, path: &KeyPath, section: &str, what: &str, name: &str) {
        if !self.broken.contains(&format!("{section}.{name}")) {
            self.push(
                path,
                format!("no {what} named \"{name}\" under \"{section}\""),
            );
        }
    }
}

/// Validates a parsed document read from `file`.
pub fn validate(file: &Path, root: &Node) -> Result<Config, ConfigErrors> {
    let mut e = Errors {
        file,
        root,
        list: Vec::new(),
        broken: BTreeSet::new(),
    };
    for (path, line, first) in root.duplicates() {
        e.list.push(ConfigError {
            file: file.to_path_buf(),
            line: Some(line),
            path: path.to_string(),
            message: format!("duplicate key (first given at line {first})"),
        });
    }
    let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let top_path = KeyPath::default();
    let top: raw::Top = match root.kind {
        super::node::Kind::Null => raw::Top::default(),
        _ => e.parse(&top_path, &root.to_json()).unwrap_or_default(),
    };

    let admin = top.admin.as_ref().and_then(|v| {
        let p = top_path.key("admin");
        let a: raw::Admin = e.parse(&p, v)?;
        parse_addr(&mut e, &p.key("address"), &a.address)
    });

    let certificates = section(
        &mut e,
        "certificates",
        top.certificates.as_ref(),
        |e, p, c: raw::Certificate| certificate_source(e, p, c, &base),
    );

    let trust_bundles = section(
        &mut e,
        "trustBundles",
        top.trust_bundles.as_ref(),
        |e, p, t: raw::TrustBundle| {
            let ca = match (t.ca_file, t.secret_file, t.secret_dir) {
                (Some(f), None, None) => model::CaSource::File(base.join(f)),
                (None, Some(f), None) => model::CaSource::SecretFile(base.join(f)),
                (None, None, Some(d)) => model::CaSource::SecretDir(base.join(d)),
                _ => {
                    e.push(p, "a trust bundle has exactly one of \"caFile\", \"secretFile\" or \"secretDir\"");
                    return None;
                }
            };
            Some(model::TrustBundleSource {
                ca,
                crl_files: t.crl_files.iter().map(|f| base.join(f)).collect(),
            })
        },
    );

    let upstreams = section(&mut e, "upstreams", top.upstreams.as_ref(), upstream);
    upstream_refs(&mut e, &upstreams, &certificates, &trust_bundles);

    let logging: raw::Logging = top
        .logging
        .as_ref()
        .and_then(|v| e.parse(&top_path.key("logging"), v))
        .unwrap_or_default();

    let limits = top
        .limits
        .as_ref()
        .and_then(|v| {
            let p = top_path.key("limits");
            let l: raw::Limits = e.parse(&p, v)?;
            Some(limits(&mut e, &p, l))
        })
        .unwrap_or_default();

    let mut listeners = Vec::new();
    if let Some(v) = &top.listeners {
        let p = top_path.key("listeners");
        if let Some(items) = e.parse::<Vec<serde_json::Value>>(&p, v) {
            for (i, item) in items.iter().enumerate() {
                let lp = p.index(i);
                if let Some(l) = e.parse::<raw::Listener>(&lp, item) {
                    let refs = Refs {
                        certificates: &certificates,
                        trust_bundles: &trust_bundles,
                        upstreams: &upstreams,
                    };
                    if let Some(l) = listener(&mut e, &lp, l, &refs) {
                        listeners.push((lp, l));
                    }
                }
            }
        }
    }
    let mut names = BTreeSet::new();
    let mut addresses = BTreeSet::new();
    for (p, l) in &listeners {
        if !names.insert(l.name.clone()) {
            e.push(
                &p.key("name"),
                format!("duplicate listener name \"{}\"", l.name),
            );
        }
        if l.address.port() != 0 && !addresses.insert(l.address) {
            e.push(
                &p.key("address"),
                format!("another listener already binds {}", l.address),
            );
        }
    }
    if listeners.is_empty() && e.list.is_empty() {
        e.push(
            &top_path.key("listeners"),
            "at least one listener is required",
        );
    }

    let mut lines = BTreeMap::new();
    for (section, names) in [
        ("certificates", certificates.keys().collect::<Vec<_>>()),
        ("trustBundles", trust_bundles.keys().collect()),
    ] {
        for name in names {
            let path = top_path.key(section).key(name);
            lines.insert(format!("{section}.{name}"), root.line_of(&path));
        }
    }
    // Material checks also speak of hostnames (a certificate that does not
    // cover one).
    for (i, (lp, l)) in listeners.iter().enumerate() {
        for (j, h) in l.hosts.iter().enumerate() {
            for k in 0..h.hostnames.len() {
                let path = lp.key("hosts").index(j).key("hostnames").index(k);
                lines.insert(
                    format!("listeners[{i}].hosts[{j}].hostnames[{k}]"),
                    root.line_of(&path),
                );
            }
        }
    }
    if e.list.is_empty() {
        Ok(Config {
            lines,
            file: file.to_path_buf(),
            admin,
            certificates,
            trust_bundles,
            listeners: listeners.into_iter().map(|(_, l)| l).collect(),
            upstreams,
            access_log: logging.access.unwrap_or(true),
            limits,
        })
    } else {
        // Report in file order, however the checks were run.
        e.list.sort_by_key(|x| x.line);
        Err(ConfigErrors(e.list))
    }
}

fn certificate_source(
    e: &mut Errors<'_>,
    p: &KeyPath,
    c: raw::Certificate,
    base: &Path,
) -> Option<model::CertificateSource> {
    let password = match (c.password_env, c.password_file) {
        (None, None) => None,
        (Some(v), None) => Some(model::PasswordSource::Env(v)),
        (None, Some(f)) => Some(model::PasswordSource::File(base.join(f))),
        (Some(_), Some(_)) => {
            e.push(
                &p.key("passwordFile"),
                "give passwordEnv or passwordFile, not both",
            );
            return None;
        }
    };
    let src = match (
        c.cert_file,
        c.key_file,
        c.secret_file,
        c.secret_dir,
        c.pkcs12_file,
    ) {
        (Some(cert), Some(key), None, None, None) => model::CertificateSource::Files {
            cert_file: base.join(cert),
            key_file: base.join(key),
        },
        (Some(_), None, None, None, None) => {
            e.push(p, "missing key \"keyFile\"");
            return None;
        }
        (None, Some(_), None, None, None) => {
            e.push(p, "missing key \"certFile\"");
            return None;
        }
        (None, None, Some(f), None, None) => model::CertificateSource::SecretFile(base.join(f)),
        (None, None, None, Some(d), None) => model::CertificateSource::SecretDir(base.join(d)),
        (None, None, None, None, Some(f)) => match password.clone() {
            Some(password) => model::CertificateSource::Pkcs12 {
                file: base.join(f),
                password,
            },
            None => {
                e.push(p, "pkcs12File needs passwordEnv or passwordFile");
                return None;
            }
        },
        _ => {
            e.push(p, "a certificate has one source: certFile and keyFile, secretFile, secretDir or pkcs12File");
            return None;
        }
    };
    if password.is_some() && !matches!(src, model::CertificateSource::Pkcs12 { .. }) {
        e.push(p, "passwordEnv and passwordFile only apply to pkcs12File");
        return None;
    }
    Some(src)
}

/// The named things a listener may refer to.
struct Refs<'a> {
    certificates: &'a BTreeMap<String, model::CertificateSource>,
    trust_bundles: &'a BTreeMap<String, model::TrustBundleSource>,
    upstreams: &'a BTreeMap<String, model::Upstream>,
}

/// Validates a map section element by element.
fn section<R: DeserializeOwned, M>(
    e: &mut Errors<'_>,
    key: &str,
    value: Option<&serde_json::Value>,
    mut each: impl FnMut(&mut Errors<'_>, &KeyPath, R) -> Option<M>,
) -> BTreeMap<String, M> {
    let mut out = BTreeMap::new();
    let p = KeyPath::default().key(key);
    let Some(value) = value else { return out };
    let Some(items) = e.parse::<raw::Section>(&p, value) else {
        return out;
    };
    for (name, item) in items {
        let ip = p.key(&name);
        match e.parse::<R>(&ip, &item).and_then(|r| each(e, &ip, r)) {
            Some(m) => {
                out.insert(name, m);
            }
            None => {
                e.broken.insert(format!("{key}.{name}"));
            }
        }
    }
    out
}

/// For serde's "unknown field `x`, expected one of `a`, `b`" (and the same
/// for variants): the expected name closest to `x`, when one is close.
fn nearest_name(message: &str) -> Option<&str> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("unknown variant `"))?;
    let (given, expected) = rest.split_once("`, expected ")?;
    let expected = expected.strip_prefix("one of ").unwrap_or(expected);
    expected
        .split(", ")
        .filter_map(|n| n.strip_prefix('`')?.strip_suffix('`'))
        .map(|n| (strsim::damerau_levenshtein(given, n), n))
        .filter(|(d, n)| *d > 0 && *d <= (n.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

fn parse_addr(e: &mut Errors<'_>, p: &KeyPath, s: &str) -> Option<SocketAddr> {
    match s.parse() {
        Ok(a) => Some(a),
        Err(_) => {
            e.push(
                p,
                format!("\"{s}\" is not an IP:port address (for example 127.0.0.1:8443)"),
            );
            None
        }
    }
}

fn upstream_tls(
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

fn upstream(e: &mut Errors<'_>, p: &KeyPath, u: raw::Upstream) -> Option<model::Upstream> {
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
fn upstream_refs(
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

fn duration(e: &mut Errors<'_>, p: &KeyPath, s: Option<String>, default: Duration) -> Duration {
    let Some(s) = s else { return default };
    match parse_duration(&s) {
        Some(d) if !d.is_zero() => d,
        _ => {
            e.push(
                p,
                format!(
                    "\"{s}\" is not a duration greater than zero (for example 500ms, 10s, 2m, 1h)"
                ),
            );
            default
        }
    }
}

/// Parses `500ms`, `10s`, `2m`, `1h`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => Some(Duration::from_secs(n.checked_mul(60)?)),
        "h" => Some(Duration::from_secs(n.checked_mul(3600)?)),
        _ => None,
    }
}

fn limits(e: &mut Errors<'_>, p: &KeyPath, l: raw::Limits) -> model::Limits {
    let d = model::Limits::default();
    let mut count = |key: &str, v: Option<u64>, default: usize| -> usize {
        match v {
            None => default,
            Some(0) => {
                e.push(&p.key(key), "must be greater than zero");
                default
            }
            Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
        }
    };
    let max_connections = count("maxConnections", l.max_connections, d.max_connections);
    let max_request_header_bytes = count(
        "maxRequestHeaderBytes",
        l.max_request_header_bytes,
        d.max_request_header_bytes,
    );
    model::Limits {
        handshake_timeout: duration(
            e,
            &p.key("handshakeTimeout"),
            l.handshake_timeout,
            d.handshake_timeout,
        ),
        request_header_timeout: duration(
            e,
            &p.key("requestHeaderTimeout"),
            l.request_header_timeout,
            d.request_header_timeout,
        ),
        idle_timeout: duration(e, &p.key("idleTimeout"), l.idle_timeout, d.idle_timeout),
        connect_timeout: duration(
            e,
            &p.key("connectTimeout"),
            l.connect_timeout,
            d.connect_timeout,
        ),
        drain_timeout: duration(e, &p.key("drainTimeout"), l.drain_timeout, d.drain_timeout),
        // Zero (the default) is allowed here: no delay.
        shutdown_delay: match l.shutdown_delay {
            Some(s) if parse_duration(&s).is_some_and(|d| d.is_zero()) => Duration::ZERO,
            other => duration(e, &p.key("shutdownDelay"), other, d.shutdown_delay),
        },
        max_connections,
        max_request_header_bytes,
    }
}

fn listener(
    e: &mut Errors<'_>,
    p: &KeyPath,
    l: raw::Listener,
    refs: &Refs<'_>,
) -> Option<model::Listener> {
    let address = parse_addr(e, &p.key("address"), &l.address);
    let tls = l.tls.unwrap_or_default();
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
    ];
    let (protocol_name, allowed): (&str, &[&str]) = match l.protocol {
        raw::Protocol::Https => ("https", &["hosts"]),
        raw::Protocol::Tls => (
            "tls",
            &["certificate", "clientAuth", "upstream", "proxyProtocol"],
        ),
        raw::Protocol::Tcp => ("tcp", &["upstream"]),
        raw::Protocol::Passthrough => ("passthrough", &["routes", "defaultUpstream"]),
        raw::Protocol::Http => {
            e.push(
                &p.key("protocol"),
                "plain \"http\" listeners are not supported yet",
            );
            return None;
        }
    };
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
            Some(model::Stream::Tls {
                certificate: certificate?,
                client_auth: client_auth?,
                upstream: upstream?,
                proxy_protocol,
            })
        }
        raw::Protocol::Tcp => Some(model::Stream::Tcp {
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
            Some(model::Stream::Passthrough {
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
            hosts: Vec::new(),
            stream: Some(stream?),
        });
    }
    if l.hosts.is_empty() {
        e.push(
            p,
            "an https listener needs at least one entry under \"hosts\"",
        );
    }
    let mut hosts = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (j, h) in l.hosts.iter().enumerate() {
        let hp = p.key("hosts").index(j);
        let Some(h) = e.parse::<raw::Host>(&hp, h) else {
            continue;
        };
        for (k, name) in h.hostnames.iter().enumerate() {
            let key = name.trim_end_matches('.').to_ascii_lowercase();
            if let Some(prev) = seen.insert(key, j) {
                e.push(
                    &hp.key("hostnames").index(k),
                    format!("\"{name}\" is already served by hosts[{prev}] of this listener"),
                );
            }
        }
        if let Some(h) = host(e, &hp, h, refs) {
            hosts.push(h);
        }
    }
    Some(model::Listener {
        name: l.name,
        address: address?,
        min_version,
        alpn,
        session_lifetime,
        hosts,
        stream: None,
    })
}

/// A reference to an `address` upstream (what stream listeners and
/// passthrough forward to).
fn stream_upstream(
    e: &mut Errors<'_>,
    p: &KeyPath,
    name: Option<&str>,
    refs: &Refs<'_>,
) -> Option<String> {
    let Some(name) = name else {
        e.push(p, "missing: name an upstream with an \"address\"");
        return None;
    };
    match refs.upstreams.get(name) {
        Some(model::Upstream::Stream { .. }) => Some(name.to_string()),
        Some(_) => {
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

/// Parses one `hostnames` entry.
pub fn host_pattern(name: &str) -> Result<model::HostPattern, String> {
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

fn host(e: &mut Errors<'_>, p: &KeyPath, h: raw::Host, refs: &Refs<'_>) -> Option<model::Host> {
    let forward = forward_settings(e, p, &h);
    let mut ok = true;
    let mut hostnames = Vec::new();
    if h.hostnames.is_empty() {
        e.push(&p.key("hostnames"), "needs at least one name");
        ok = false;
    }
    for (k, name) in h.hostnames.iter().enumerate() {
        match host_pattern(name) {
            Ok(pat) => hostnames.push(pat),
            Err(msg) => {
                e.push(&p.key("hostnames").index(k), msg);
                ok = false;
            }
        }
    }
    if let Some(pt) = &h.passthrough {
        // Not terminated: nothing of TLS or HTTP applies.
        for (k, present) in [
            ("certificate", h.certificate.is_some()),
            ("clientAuth", h.client_auth.is_some()),
            ("routes", !h.routes.is_empty()),
            ("strictSni", h.strict_sni.is_some()),
            ("escapedSlashes", h.escaped_slashes.is_some()),
            ("forwardClientCert", h.forward_client_cert.is_some()),
            ("xfccDetails", h.xfcc_details.is_some()),
            (
                "passCertificateToUpstream",
                h.pass_certificate_to_upstream.is_some(),
            ),
            ("requestHeaders", h.request_headers.is_some()),
        ] {
            if present {
                e.push(
                    &p.key(k),
                    "does not apply to a passthrough host (its TLS is not terminated)",
                );
                ok = false;
            }
        }
        let upstream = stream_upstream(e, &p.key("passthrough"), Some(pt), refs);
        if !ok {
            return None;
        }
        return Some(model::Host {
            hostnames,
            certificate: String::new(),
            client_auth: model::ClientAuth::None,
            strict_sni: model::StrictSni::On,
            escaped_slashes: model::EscapedSlashes::Reject,
            routes: Vec::new(),
            forward: forward.unwrap_or_default(),
            passthrough: Some(upstream?),
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
    let mut routes = Vec::new();
    if h.routes.is_empty() {
        e.push(p, "missing key \"routes\" (at least one route)");
        ok = false;
    }
    for (k, r) in h.routes.iter().enumerate() {
        let rp = p.key("routes").index(k);
        let Some(r) = e.parse::<raw::Route>(&rp, r) else {
            ok = false;
            continue;
        };
        let allow = r.allow.as_ref().and_then(|a| allow(e, &rp.key("allow"), a));
        if r.allow.is_some() && matches!(client_auth, Some(model::ClientAuth::None)) {
            e.push(
                &rp.key("allow"),
                "needs client certificates: set clientAuth.mode (require, optional or optionalNoCa) on this host",
            );
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
        match refs.upstreams.get(&r.upstream) {
            None => {
                e.dangling(&rp.key("upstream"), "upstreams", "upstream", &r.upstream);
                ok = false;
            }
            Some(model::Upstream::Stream { .. }) => {
                e.push(
                    &rp.key("upstream"),
                    format!("upstream \"{}\" is a TCP upstream (address); an HTTP route needs builtin or url", r.upstream),
                );
                ok = false;
            }
            Some(_) => {}
        }
        match matcher {
            Some(matcher) => routes.push(model::Route {
                matcher,
                upstream: r.upstream,
                allow,
            }),
            None => ok = false,
        }
    }
    if !ok {
        return None;
    }
    Some(model::Host {
        hostnames,
        certificate: certificate?,
        client_auth: client_auth?,
        strict_sni,
        escaped_slashes: match h.escaped_slashes {
            None | Some(raw::EscapedSlashes::Reject) => model::EscapedSlashes::Reject,
            Some(raw::EscapedSlashes::Keep) => model::EscapedSlashes::Keep,
        },
        routes,
        forward: forward?,
        passthrough: None,
    })
}

/// SPEC §2: routes match the canonical path, so a route written in another
/// form could never match; say which form to write.
fn canonical_route(e: &mut Errors<'_>, p: &KeyPath, path: &str) -> bool {
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

/// Compiles an `allow` block, reporting each bad entry at its own path.
fn allow(e: &mut Errors<'_>, p: &KeyPath, a: &raw::Allow) -> Option<model::Allow> {
    let spec = crate::identity::authz::AllowSpec {
        common_names: &a.common_names,
        organizations: &a.organizations,
        organizational_units: &a.organizational_units,
        uri_sans: &a.uri_sans,
        dns_sans: &a.dns_sans,
        sha256_fingerprints: &a.sha256_fingerprints,
    };
    match model::Allow::compile(&spec) {
        Ok(a) => Some(a),
        Err(errors) => {
            for (list, i, err) in errors {
                let at = if list.is_empty() {
                    p.clone()
                } else {
                    p.key(&list).index(i)
                };
                e.push(&at, err.to_string());
            }
            None
        }
    }
}

/// Headers the gateway manages itself, which `requestHeaders` may not set.
const MANAGED_HEADERS: [&str; 11] = [
    "host",
    "connection",
    "content-length",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "keep-alive",
    "proxy-connection",
    "x-forwarded-for",
    "x-forwarded-proto",
];

fn forward_settings(
    e: &mut Errors<'_>,
    p: &KeyPath,
    h: &raw::Host,
) -> Option<crate::forward::Settings> {
    use crate::forward::{Detail, Mode, Settings, Template};
    let mut ok = true;
    let mode = match h.forward_client_cert {
        None | Some(raw::ForwardClientCert::Sanitize) => Mode::Sanitize,
        Some(raw::ForwardClientCert::ForwardOnly) => Mode::ForwardOnly,
        Some(raw::ForwardClientCert::AppendForward) => Mode::AppendForward,
        Some(raw::ForwardClientCert::SanitizeSet) => Mode::SanitizeSet,
        Some(raw::ForwardClientCert::AlwaysForwardOnly) => Mode::AlwaysForwardOnly,
    };
    let mut details = Vec::new();
    match &h.xfcc_details {
        None => details = vec![Detail::Subject, Detail::Uri, Detail::Dns],
        Some(list) => {
            for (i, d) in list.iter().enumerate() {
                let detail = match d {
                    raw::XfccDetail::Cert => Detail::Cert,
                    raw::XfccDetail::Chain => Detail::Chain,
                    raw::XfccDetail::Subject => Detail::Subject,
                    raw::XfccDetail::Uri => Detail::Uri,
                    raw::XfccDetail::Dns => Detail::Dns,
                    raw::XfccDetail::By | raw::XfccDetail::Hash => {
                        e.push(
                            &p.key("xfccDetails").index(i),
                            "By and Hash are always present; list only Cert, Chain, Subject, URI, DNS",
                        );
                        ok = false;
                        continue;
                    }
                };
                if !details.contains(&detail) {
                    details.push(detail);
                }
            }
        }
    }
    // Envoy's order, whatever the order in the file.
    details.sort();
    let mut request_headers = Vec::new();
    for (name, value) in h.request_headers.iter().flatten() {
        let hp = p.key("requestHeaders").key(name);
        let lower = name.to_ascii_lowercase();
        if http::HeaderName::from_bytes(lower.as_bytes()).is_err() {
            e.push(&hp, format!("\"{name}\" is not a valid header name"));
            ok = false;
            continue;
        }
        if MANAGED_HEADERS.contains(&lower.replace('_', "-").as_str())
            || lower.replace('_', "-") == "x-forwarded-client-cert"
        {
            e.push(
                &hp,
                format!("\"{name}\" is set by the gateway itself and cannot be templated"),
            );
            ok = false;
            continue;
        }
        match Template::parse(value) {
            Ok(t) => request_headers.push((lower, t)),
            Err(msg) => {
                e.push(&hp, msg);
                ok = false;
            }
        }
    }
    ok.then_some(Settings {
        mode,
        details,
        pass_certificate: h.pass_certificate_to_upstream.unwrap_or(false),
        request_headers,
    })
}

fn client_auth(
    e: &mut Errors<'_>,
    p: &KeyPath,
    ca: raw::ClientAuth,
    refs: &Refs<'_>,
) -> Option<model::ClientAuth> {
    if ca.mode == raw::ClientAuthMode::None {
        for (k, set) in [
            ("trustBundle", ca.trust_bundle.is_some()),
            ("verifyDepth", ca.verify_depth.is_some()),
            ("crlCheck", ca.crl_check.is_some()),
            ("allow", ca.allow.is_some()),
        ] {
            if set {
                e.push(
                    &p.key(k),
                    "has no effect with mode \"none\" (no certificate is requested)",
                );
            }
        }
        return Some(model::ClientAuth::None);
    }
    let trust_bundle = match ca.trust_bundle {
        None => {
            e.push(
                p,
                "missing key \"trustBundle\" (a mode that requests a certificate needs one)",
            );
            return None;
        }
        Some(t) => t,
    };
    let Some(bundle) = refs.trust_bundles.get(&trust_bundle) else {
        e.dangling(
            &p.key("trustBundle"),
            "trustBundles",
            "trust bundle",
            &trust_bundle,
        );
        return None;
    };
    if ca.crl_check.is_some() && bundle.crl_files.is_empty() {
        e.push(
            &p.key("crlCheck"),
            format!("trust bundle \"{trust_bundle}\" has no crlFiles to check against"),
        );
    }
    let allow = match &ca.allow {
        None => None,
        Some(a) => Some(allow(e, &p.key("allow"), a)?),
    };
    let policy = model::VerifyPolicy {
        allow,
        required: ca.mode == raw::ClientAuthMode::Require,
        trust_bundle,
        verify_depth: ca.verify_depth,
        crl_check: match ca.crl_check {
            Some(raw::CrlCheck::Chain) => model::CrlCheck::Chain,
            _ => model::CrlCheck::Leaf,
        },
    };
    Some(match ca.mode {
        raw::ClientAuthMode::OptionalNoCa => model::ClientAuth::OptionalNoCa(policy),
        _ => model::ClientAuth::Verify(policy),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_units() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("1d"), None);
    }

    #[test]
    fn host_patterns_normalize() {
        assert_eq!(
            host_pattern("A.Test."),
            Ok(model::HostPattern::Exact("a.test".into()))
        );
        assert_eq!(
            host_pattern("*.X.test"),
            Ok(model::HostPattern::Wildcard(".x.test".into()))
        );
        assert_eq!(host_pattern("*"), Ok(model::HostPattern::CatchAll));
        assert!(host_pattern("a..test").is_err());
        assert!(host_pattern("*x.test").is_err());
        assert!(host_pattern("a.*.test").is_err());
        assert!(host_pattern("").is_err());
    }
}
