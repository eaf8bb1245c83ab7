//! `clientAuth`, `allow` and the identity forwarding settings.

use super::*;

/// Compiles an `allow` block, reporting each bad entry at its own path.
pub(super) fn allow(e: &mut Errors<'_>, p: &KeyPath, a: &raw::Allow) -> Option<model::Allow> {
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
pub(super) const MANAGED_HEADERS: [&str; 11] = [
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

pub(super) fn forward_settings(
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
            Err(why) => {
                e.push(&hp, why.to_string());
                ok = false;
            }
        }
    }
    ok.then_some(Settings {
        mode,
        details,
        pass_certificate: h.pass_certificate_to_upstream.unwrap_or(false),
        client_cert_headers: h.client_cert_headers.unwrap_or(false),
        request_headers,
    })
}

pub(super) fn client_auth(
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
