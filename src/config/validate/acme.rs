//! `certificates.NAME.acme`: the block itself, then (with the listeners)
//! which names it orders and whether they can be validated.

use super::*;

/// The block, with `domains` as written (defaults are filled in by [`uses`]).
pub(super) fn source(
    e: &mut Errors<'_>,
    p: &KeyPath,
    name: &str,
    a: raw::Acme,
    base: &Path,
) -> Option<model::AcmeSource> {
    let mut ok = true;
    // The name is a file name in storageDir.
    let safe = !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !safe {
        e.push(
            p,
            format!("the certificate name \"{name}\" names its files in storageDir: use letters, digits, '-', '_' and '.'"),
        );
        ok = false;
    }
    match a.directory_url.parse::<http::Uri>() {
        Ok(u) if u.scheme_str() == Some("https") && u.host().is_some() => {}
        _ => {
            e.push(
                &p.key("directoryUrl"),
                format!(
                    "\"{}\" is not an https:// URL (RFC 8555 directories are served over HTTPS)",
                    a.directory_url
                ),
            );
            ok = false;
        }
    }
    if let Some(m) = &a.email {
        let valid = m
            .split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty() && !d.contains('@'))
            && !m
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || b == b',');
        if !valid {
            e.push(&p.key("email"), format!("\"{m}\" is not an email address"));
            ok = false;
        }
    }
    let mut domains = Vec::new();
    for (i, d) in a.domains.iter().flatten().enumerate() {
        let dp = p.key("domains").index(i);
        match host_pattern(d) {
            Ok(model::HostPattern::Exact(n)) => {
                if !domains.contains(&n) {
                    domains.push(n);
                }
            }
            Ok(model::HostPattern::Wildcard(_)) => {
                e.push(
                    &dp,
                    format!("\"{d}\": a wildcard can only be validated with dns-01, which portcullis does not answer; list the names"),
                );
                ok = false;
            }
            Ok(model::HostPattern::CatchAll) | Err(_) => {
                e.push(&dp, format!("\"{d}\" is not a DNS name"));
                ok = false;
            }
        }
    }
    if a.domains.as_ref().is_some_and(Vec::is_empty) {
        e.push(
            &p.key("domains"),
            "is empty; leave it out to order every hostname of the host entries that use this certificate",
        );
        ok = false;
    }
    let key_type = match &a.key_type {
        None => crate::pki::keys::KeyType::default(),
        Some(k) => match <crate::pki::keys::KeyType as clap::ValueEnum>::from_str(k, false) {
            Ok(t) => t,
            Err(_) => {
                e.push(
                    &p.key("keyType"),
                    format!("\"{k}\" is not one of ecdsa-p256, ecdsa-p384, ed25519, rsa2048, rsa3072, rsa4096"),
                );
                ok = false;
                crate::pki::keys::KeyType::default()
            }
        },
    };
    let renew_before = match &a.renew_before {
        None => None,
        Some(s) => match parse_duration(s) {
            Some(d) if d >= Duration::from_secs(1) => Some(d),
            _ => {
                e.push(
                    &p.key("renewBefore"),
                    format!("\"{s}\" is not a duration of at least 1s (e.g. 30d, 12h)"),
                );
                ok = false;
                None
            }
        },
    };
    if a.storage_dir.is_empty() {
        e.push(&p.key("storageDir"), "is empty");
        ok = false;
    }
    if !ok {
        return None;
    }
    let storage_dir = base.join(&a.storage_dir);
    Some(model::AcmeSource {
        directory_url: a.directory_url,
        email: a.email,
        domains,
        challenge: match a.challenge {
            None | Some(raw::AcmeChallenge::Http01) => model::AcmeChallenge::Http01,
            Some(raw::AcmeChallenge::TlsAlpn01) => model::AcmeChallenge::TlsAlpn01,
        },
        file: storage_dir.join(format!("{name}.pem")),
        storage_dir,
        trust_bundle: a.trust_bundle,
        key_type,
        renew_before,
    })
}

/// Checks an acme certificate against the listeners that use it, and fills
/// in its default `domains`: every hostname of the https host entries that
/// use it.
#[allow(clippy::too_many_arguments)]
pub(super) fn uses(
    e: &mut Errors<'_>,
    p: &KeyPath,
    name: &str,
    a: &mut model::AcmeSource,
    listeners: &[&model::Listener],
    upstreams: &model::Upstreams,
    trust_bundles: &BTreeMap<String, model::TrustBundleSource>,
) {
    if let Some(t) = &a.trust_bundle {
        if !trust_bundles.contains_key(t) {
            e.dangling(&p.key("trustBundle"), "trustBundles", "trust bundle", t);
        }
    }
    // Where the certificate is used: https host entries only.
    let mut served: Vec<(String, &model::HostPattern)> = Vec::new();
    for (i, l) in listeners.iter().enumerate() {
        if let model::ListenerKind::Tls { certificate, .. } = &l.kind {
            if certificate == name {
                e.push(
                    p,
                    format!("listeners[{i}] (tls) uses this certificate; an ACME certificate serves https host entries only"),
                );
            }
        }
        for (j, h) in l.hosts().iter().enumerate() {
            if let model::HostKind::Terminate(t) = &h.kind {
                if t.certificate == name {
                    for pat in &h.hostnames {
                        served.push((format!("listeners[{i}].hosts[{j}]"), pat));
                    }
                }
            }
        }
    }
    let upstream_tls = upstreams
        .http
        .iter()
        .filter_map(|(n, u)| match u {
            model::HttpUpstream::Url { tls: Some(t), .. } => Some((n, t)),
            _ => None,
        })
        .chain(
            upstreams
                .tcp
                .iter()
                .filter_map(|(n, u)| u.tls.as_ref().map(|t| (n, t))),
        );
    for (n, t) in upstream_tls {
        if t.certificate.as_deref() == Some(name) {
            e.push(
                p,
                format!("upstream \"{n}\" presents this certificate as a client certificate; an ACME certificate serves https host entries only"),
            );
        }
    }
    if served.is_empty() {
        e.push(
            p,
            "no https host entry uses this certificate, so nothing would validate or serve it",
        );
        return;
    }
    if a.domains.is_empty() {
        for (at, pat) in &served {
            match pat {
                model::HostPattern::Exact(n) => {
                    if !a.domains.contains(n) {
                        a.domains.push(n.clone());
                    }
                }
                model::HostPattern::Wildcard(s) => e.push(
                    p,
                    format!("{at} serves \"*{s}\" with this certificate: a wildcard can only be validated with dns-01, which portcullis does not answer; give the certificate `domains` and serve the wildcard with another certificate"),
                ),
                model::HostPattern::CatchAll => {}
            }
        }
    } else {
        let serves = |d: &str| {
            served.iter().any(|(_, pat)| match pat {
                model::HostPattern::Exact(n) => n == d,
                // One label before the suffix, as SNI matching does.
                model::HostPattern::Wildcard(suffix) => d
                    .strip_suffix(suffix.as_str())
                    .is_some_and(|label| !label.is_empty() && !label.contains('.')),
                model::HostPattern::CatchAll => false,
            })
        };
        for (i, d) in a.domains.iter().enumerate() {
            if !serves(d) {
                e.push(
                    &p.key("domains").index(i),
                    format!("\"{d}\": no https host entry that uses this certificate serves it"),
                );
            }
        }
        for (at, pat) in &served {
            if let model::HostPattern::Exact(n) = pat {
                if !a.domains.contains(n) {
                    e.push(
                        &p.key("domains"),
                        format!("{at} serves \"{n}\" with this certificate; add it to domains"),
                    );
                }
            }
        }
    }
    if a.domains.is_empty() {
        e.push(
            p,
            "the host entries that use this certificate have no DNS names (only \"*\"); give domains",
        );
    }
    let has_http = listeners
        .iter()
        .any(|l| matches!(l.kind, model::ListenerKind::Http { .. }));
    if a.challenge == model::AcmeChallenge::Http01 && !has_http {
        e.push(
            &p.key("challenge"),
            "http-01 is answered by an http listener (port 80) and there is none: add one, or use tls-alpn-01",
        );
    }
}
