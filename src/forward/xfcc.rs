//! `x-forwarded-client-cert` in Envoy's grammar: elements separated by `,`,
//! key=value pairs by `;`, values containing `,` `;` `=` (and `Subject`,
//! `Cert`, `Chain` always) double-quoted with `"` and `\` escaped.

use http::HeaderValue;

use crate::identity::PeerIdentity;

use super::percent_encode;

/// `forwardClientCert` (Envoy's `forward_client_cert_details`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Remove any incoming header; add nothing.
    #[default]
    Sanitize,
    /// Keep the incoming header when the client has a verified certificate.
    ForwardOnly,
    /// Append the gateway's element to the incoming header.
    AppendForward,
    /// Replace the incoming header with the gateway's element.
    SanitizeSet,
    /// Keep the incoming header untouched, whatever the client presented.
    AlwaysForwardOnly,
}

/// An `xfccDetails` key (`By` and `Hash` are always present).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Detail {
    /// URL-encoded PEM of the client certificate.
    Cert,
    /// URL-encoded PEM of the presented chain.
    Chain,
    /// RFC 2253 subject.
    Subject,
    /// Each URI SAN.
    Uri,
    /// Each DNS SAN.
    Dns,
}

fn push_pair(out: &mut String, key: &str, value: &str, always_quote: bool) {
    if !out.is_empty() {
        out.push(';');
    }
    out.push_str(key);
    out.push('=');
    if always_quote || value.contains([',', ';', '=', '"']) {
        out.push('"');
        for ch in value.chars() {
            if ch == '"' || ch == '\\' {
                out.push('\\');
            }
            out.push(ch);
        }
        out.push('"');
    } else {
        out.push_str(value);
    }
}

/// The gateway's element for a verified client, keys in Envoy's order:
/// By, Hash, Cert, Chain, Subject, URI, DNS. `details` must be sorted.
pub fn element(by: &[String], id: &PeerIdentity, details: &[Detail]) -> String {
    let mut out = String::new();
    for uri in by {
        push_pair(&mut out, "By", uri, false);
    }
    push_pair(&mut out, "Hash", &id.cert.sha256, false);
    for d in details {
        match d {
            Detail::Cert => push_pair(&mut out, "Cert", &percent_encode(&id.leaf_pem()), true),
            Detail::Chain => push_pair(&mut out, "Chain", &percent_encode(&id.chain_pem()), true),
            Detail::Subject => push_pair(&mut out, "Subject", &id.cert.subject, true),
            Detail::Uri => {
                // As Envoy: the key is present even without a URI SAN.
                if id.cert.uri_sans.is_empty() {
                    push_pair(&mut out, "URI", "", false);
                }
                for u in &id.cert.uri_sans {
                    push_pair(&mut out, "URI", u, false);
                }
            }
            Detail::Dns => {
                for d in &id.cert.dns_sans {
                    push_pair(&mut out, "DNS", d, false);
                }
            }
        }
    }
    out
}

/// What the upstream receives, given the mode, whether the client has a
/// verified certificate, the gateway's element (`own`, present for a
/// verified client in the modes that add one) and the incoming value (all
/// incoming headers joined by `,`). `None` = no header. Header values are
/// shared, not copied; only appending builds a new one.
pub fn outgoing(
    mode: Mode,
    verified: bool,
    own: Option<&HeaderValue>,
    incoming: Option<HeaderValue>,
) -> Option<HeaderValue> {
    match mode {
        Mode::AlwaysForwardOnly => incoming,
        // SPEC §4: without a verified client certificate every other mode
        // removes the header.
        _ if !verified => None,
        Mode::Sanitize => None,
        Mode::ForwardOnly => incoming,
        Mode::AppendForward => own.map(|own| match incoming.filter(|p| !p.is_empty()) {
            Some(prev) => join(&[prev.as_bytes(), own.as_bytes()]).unwrap_or_else(|| own.clone()),
            None => own.clone(),
        }),
        Mode::SanitizeSet => own.cloned(),
    }
}

/// `parts` joined by `,` as one header value (`None` if a part is not one).
pub fn join(parts: &[&[u8]]) -> Option<HeaderValue> {
    let mut v = Vec::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            v.push(b',');
        }
        v.extend_from_slice(p);
    }
    HeaderValue::from_maybe_shared(bytes::Bytes::from(v)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::CertSummary;

    fn id() -> PeerIdentity {
        PeerIdentity {
            verified: true,
            failure: None,
            cert: std::sync::Arc::new(CertSummary {
                subject: "CN=client,O=Acme\\, Inc.".into(),
                issuer: "CN=CA".into(),
                common_names: vec!["client".into()],
                organizations: vec![],
                organizational_units: vec![],
                dns_sans: vec!["a.test".into(), "b.test".into()],
                uri_sans: vec!["spiffe://td/ns/x".into(), "https://x.test/?a=b".into()],
                ip_sans: vec![],
                email_sans: vec![],
                serial: "01".into(),
                sha256: "ab".repeat(32),
                not_before: 0,
                not_after: 0,
                is_ca: false,
                eku: None,
            }),
            chain: Vec::new().into(),
        }
    }

    #[test]
    fn element_in_envoy_order_with_quoting() {
        let e = element(
            &["spiffe://td/gw".into()],
            &id(),
            &[Detail::Subject, Detail::Uri, Detail::Dns],
        );
        assert_eq!(
            e,
            format!(
                "By=spiffe://td/gw;Hash={};Subject=\"CN=client,O=Acme\\\\, Inc.\";URI=spiffe://td/ns/x;URI=\"https://x.test/?a=b\";DNS=a.test;DNS=b.test",
                "ab".repeat(32)
            )
        );
    }

    #[test]
    fn uri_key_stays_without_uri_sans() {
        let mut i = id();
        std::sync::Arc::make_mut(&mut i.cert).uri_sans.clear();
        let e = element(&[], &i, &[Detail::Uri]);
        assert_eq!(e, format!("Hash={};URI=", "ab".repeat(32)));
    }

    /// Every mode × verified client or not × incoming header or not.
    #[test]
    fn modes_table() {
        let own = Some("Hash=1");
        let inc = Some("Hash=0");
        // mode, the gateway's element (Some = verified client), incoming, expected
        type Row<'a> = (Mode, Option<&'a str>, Option<&'a str>, Option<&'a str>);
        let table: &[Row<'_>] = &[
            (Mode::Sanitize, own, inc, None),
            (Mode::Sanitize, own, None, None),
            (Mode::Sanitize, None, inc, None),
            (Mode::Sanitize, None, None, None),
            (Mode::ForwardOnly, own, inc, Some("Hash=0")),
            (Mode::ForwardOnly, own, None, None),
            (Mode::ForwardOnly, None, inc, None),
            (Mode::ForwardOnly, None, None, None),
            (Mode::AppendForward, own, inc, Some("Hash=0,Hash=1")),
            (Mode::AppendForward, own, None, Some("Hash=1")),
            (Mode::AppendForward, None, inc, None),
            (Mode::AppendForward, None, None, None),
            (Mode::SanitizeSet, own, inc, Some("Hash=1")),
            (Mode::SanitizeSet, own, None, Some("Hash=1")),
            (Mode::SanitizeSet, None, inc, None),
            (Mode::SanitizeSet, None, None, None),
            (Mode::AlwaysForwardOnly, own, inc, Some("Hash=0")),
            (Mode::AlwaysForwardOnly, own, None, None),
            (Mode::AlwaysForwardOnly, None, inc, Some("Hash=0")),
            (Mode::AlwaysForwardOnly, None, None, None),
        ];
        let hv = |s: &str| HeaderValue::from_str(s).unwrap();
        for (mode, own, inc, want) in table {
            let verified = own.is_some();
            let out = outgoing(*mode, verified, own.map(hv).as_ref(), inc.map(hv));
            assert_eq!(
                out.as_ref().map(|v| v.to_str().unwrap()),
                *want,
                "{mode:?} own={own:?} incoming={inc:?}"
            );
        }
    }
}
