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

mod acme;
mod auth;
mod hosts;
mod listeners;
mod upstreams;

use auth::*;
use hosts::*;
use listeners::*;
use upstreams::*;

pub(crate) use hosts::host_pattern;

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
pub(crate) fn validate(file: &Path, root: &Node) -> Result<Config, ConfigErrors> {
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

    let session_tickets = top.session_tickets.as_ref().and_then(|v| {
        let p = top_path.key("sessionTickets");
        let t: raw::SessionTickets = e.parse(&p, v)?;
        match (t.key_file, t.secret_file, t.secret_dir) {
            (Some(f), None, None) => Some(model::TicketKeySource::File(base.join(f))),
            (None, Some(f), None) => Some(model::TicketKeySource::SecretFile(base.join(f))),
            (None, None, Some(d)) => Some(model::TicketKeySource::SecretDir(base.join(d))),
            _ => {
                e.push(
                    &p,
                    "give exactly one of \"keyFile\", \"secretFile\" or \"secretDir\"",
                );
                None
            }
        }
    });
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
    // (The trust bundle an acme block names is checked with the listeners.)

    let trust_bundles = section(
        &mut e,
        "trustBundles",
        top.trust_bundles.as_ref(),
        |e, p, t: raw::TrustBundle| {
            if t.key.is_some() && t.config_map_file.is_none() {
                e.push(&p.key("key"), "only applies to configMapFile");
                return None;
            }
            let ca = match (t.ca_file, t.secret_file, t.secret_dir, t.config_map_file) {
                (Some(f), None, None, None) => model::CaSource::File(base.join(f)),
                (None, Some(f), None, None) => model::CaSource::SecretFile(base.join(f)),
                (None, None, Some(d), None) => model::CaSource::SecretDir(base.join(d)),
                (None, None, None, Some(f)) => model::CaSource::ConfigMapFile {
                    file: base.join(f),
                    key: t.key.unwrap_or_else(|| "ca.crt".to_string()),
                },
                _ => {
                    e.push(p, "a trust bundle has exactly one of \"caFile\", \"secretFile\", \"secretDir\" or \"configMapFile\"");
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
    let (upstreams, upstream_ids) = upstream_refs(&mut e, upstreams, &certificates, &trust_bundles);

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
                        upstreams: &upstream_ids,
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
    let listeners_only: Vec<&model::Listener> = listeners.iter().map(|(_, l)| l).collect();
    let mut certificates = certificates;
    for (name, src) in certificates.iter_mut() {
        if let model::CertificateSource::Acme(a) = src {
            let ap = top_path.key("certificates").key(name).key("acme");
            acme::uses(
                &mut e,
                &ap,
                name,
                a,
                &listeners_only,
                &upstreams,
                &trust_bundles,
            );
        }
    }
    // One name, one order in flight: challenge answers are kept by name.
    let mut ordered: BTreeMap<String, String> = BTreeMap::new();
    for (name, src) in &certificates {
        if let model::CertificateSource::Acme(a) = src {
            for d in &a.domains {
                if let Some(other) = ordered.insert(d.clone(), name.clone()) {
                    e.push(
                        &top_path.key("certificates").key(name).key("acme"),
                        format!("\"{d}\" is ordered by certificates.{other} too; one ACME certificate per name"),
                    );
                }
            }
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
    if session_tickets.is_some() {
        let path = top_path.key("sessionTickets");
        lines.insert("sessionTickets".to_string(), root.line_of(&path));
    }
    // Material checks also speak of hostnames (a certificate that does not
    // cover one).
    for (i, (lp, l)) in listeners.iter().enumerate() {
        for (j, h) in l.hosts().iter().enumerate() {
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
            session_tickets,
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
    if let Some(v) = &c.acme {
        let others = [
            c.cert_file.is_some(),
            c.key_file.is_some(),
            c.secret_file.is_some(),
            c.secret_dir.is_some(),
            c.pkcs12_file.is_some(),
            password.is_some(),
        ];
        if others.into_iter().any(|x| x) {
            e.push(p, "a certificate has one source: acme, or certFile and keyFile, secretFile, secretDir or pkcs12File");
            return None;
        }
        let ap = p.key("acme");
        let name = match p.0.last() {
            Some(Segment::Key(k)) => k.clone(),
            _ => String::new(),
        };
        return e
            .parse::<raw::Acme>(&ap, v)
            .and_then(|a| acme::source(e, &ap, &name, a, base))
            .map(|a| model::CertificateSource::Acme(Box::new(a)));
    }
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
    upstreams: &'a BTreeMap<String, UpstreamId>,
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
pub(crate) fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => Some(Duration::from_secs(n.checked_mul(60)?)),
        "h" => Some(Duration::from_secs(n.checked_mul(3600)?)),
        "d" => Some(Duration::from_secs(n.checked_mul(86_400)?)),
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
        assert_eq!(
            parse_duration("30d"),
            Some(Duration::from_secs(30 * 86_400))
        );
        assert_eq!(parse_duration("1w"), None);
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
