//! `x-forwarded-client-cert` in Envoy's grammar (SPEC §4): elements
//! separated by `,`, key=value pairs by `;`, values containing `,` `;` `=`
//! or `"` (and `Subject`, `Cert`, `Chain` always, as Envoy does)
//! double-quoted, and inside the quotes only `"` escaped, as `\"`. A DN's
//! own backslash escapes stay as they are: `Subject="CN=a\,b"`.
//!
//! In that grammar `\"` inside quotes is always an escaped quote, so a
//! quoted value must not end in a backslash: its closing quote would read
//! as an escaped one, and a parser would run on into the next pairs —
//! where a certificate's own SANs could then pose as `By`, `Hash` or `URI`
//! pairs. A subject ending in an escaped backslash (`\\`) has it written
//! as the equivalent RFC 4514 hex escape `\5C`; any other quoted value
//! ending in a backslash (a URI or DNS SAN that also holds `,` `;` `=` or
//! `"`, which no valid URI or host name does) is left out of the element.

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

/// Appends `key=value` (see the module comment for the quoting); a value
/// that would need quotes and ends in a backslash is left out.
fn push_pair(out: &mut String, key: &str, value: &str, always_quote: bool) {
    let quote = always_quote || value.contains([',', ';', '=', '"']);
    if quote && value.ends_with('\\') {
        return;
    }
    if !out.is_empty() {
        out.push(';');
    }
    out.push_str(key);
    out.push('=');
    if quote {
        out.push('"');
        for ch in value.chars() {
            if ch == '"' {
                out.push('\\');
            }
            out.push(ch);
        }
        out.push('"');
    } else {
        out.push_str(value);
    }
}

/// An RFC 2253 DN that can be quoted: a final escaped backslash `\\`
/// becomes `\5C`, the same character (RFC 4514 §2.4), so the DN does not
/// end in a backslash. A DN ending in an odd run of backslashes is no valid
/// DN string and is returned as is (and then left out by `push_pair`).
fn quotable_dn(dn: &str) -> std::borrow::Cow<'_, str> {
    let run = dn.len() - dn.trim_end_matches('\\').len();
    if run > 0 && run % 2 == 0 {
        let mut s = dn[..dn.len() - 2].to_string();
        s.push_str("\\5C");
        std::borrow::Cow::Owned(s)
    } else {
        std::borrow::Cow::Borrowed(dn)
    }
}

/// The gateway's element for a verified client, keys in Envoy's order:
/// By, Hash, Cert, Chain, Subject, URI, DNS. `details` must be sorted.
pub(crate) fn element(by: &[String], id: &PeerIdentity, details: &[Detail]) -> String {
    let mut out = String::new();
    for uri in by {
        push_pair(&mut out, "By", uri, false);
    }
    push_pair(&mut out, "Hash", &id.cert.sha256, false);
    for d in details {
        match d {
            Detail::Cert => push_pair(&mut out, "Cert", &percent_encode(&id.leaf_pem()), true),
            Detail::Chain => push_pair(&mut out, "Chain", &percent_encode(&id.chain_pem()), true),
            Detail::Subject => push_pair(&mut out, "Subject", &quotable_dn(&id.cert.subject), true),
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
pub(crate) fn outgoing(
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
pub(crate) fn join(parts: &[&[u8]]) -> Option<HeaderValue> {
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
            path: Default::default(),
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
                "By=spiffe://td/gw;Hash={};Subject=\"CN=client,O=Acme\\, Inc.\";URI=spiffe://td/ns/x;URI=\"https://x.test/?a=b\";DNS=a.test;DNS=b.test",
                "ab".repeat(32)
            )
        );
    }

    /// Envoy's documented grammar, written apart from the encoder: elements
    /// split on `,` outside quotes, pairs on `;` outside quotes, key and
    /// value on the first `=`; inside quotes `\"` is an escaped quote and
    /// nothing else is an escape.
    fn parse(header: &str) -> Vec<Vec<(String, String)>> {
        let mut elements = Vec::new();
        let mut pairs = Vec::new();
        let mut cur = String::new();
        let mut quoted = false;
        let mut chars = header.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' if quoted && chars.peek() == Some(&'"') => {
                    chars.next();
                    cur.push_str("\\\"");
                }
                '"' => {
                    quoted = !quoted;
                    cur.push(c);
                }
                ';' if !quoted => pairs.push(std::mem::take(&mut cur)),
                ',' if !quoted => {
                    pairs.push(std::mem::take(&mut cur));
                    elements.push(std::mem::take(&mut pairs));
                }
                _ => cur.push(c),
            }
        }
        assert!(!quoted, "unterminated quote in {header}");
        pairs.push(cur);
        elements.push(pairs);
        elements
            .into_iter()
            .map(|e| {
                e.into_iter()
                    .map(|p| {
                        let (k, v) = p.split_once('=').unwrap_or((&p, ""));
                        let v = match v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
                            Some(inner) => inner.replace("\\\"", "\""),
                            None => v.to_string(),
                        };
                        (k.to_string(), v)
                    })
                    .collect()
            })
            .collect()
    }

    fn with(subject: &str, uris: &[&str]) -> PeerIdentity {
        let mut i = id();
        let c = std::sync::Arc::make_mut(&mut i.cert);
        c.subject = subject.into();
        c.uri_sans = uris.iter().map(|u| u.to_string()).collect();
        c.dns_sans = vec!["after.test".into()];
        i
    }

    fn pairs(i: &PeerIdentity) -> Vec<(String, String)> {
        let e = element(&[], i, &[Detail::Subject, Detail::Uri, Detail::Dns]);
        let mut elements = parse(&e);
        assert_eq!(elements.len(), 1, "{e}");
        elements.remove(0)
    }

    fn value<'a>(pairs: &'a [(String, String)], key: &str) -> Vec<&'a str> {
        pairs
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    #[test]
    fn only_quotes_are_escaped_and_a_dn_keeps_its_backslashes() {
        let e = element(&[], &with("CN=a\\,b", &[]), &[Detail::Subject]);
        assert_eq!(e, format!("Hash={};Subject=\"CN=a\\,b\"", "ab".repeat(32)));
        let e = element(&[], &with("CN=say \\\"hi\\\"", &[]), &[Detail::Subject]);
        assert_eq!(
            e,
            format!("Hash={};Subject=\"CN=say \\\\\"hi\\\\\"\"", "ab".repeat(32))
        );
    }

    #[test]
    fn dns_with_commas_and_quotes_parse_back_the_same() {
        for dn in [
            "CN=a\\,b",
            "CN=a\\,b,O=Acme\\, Inc.,C=DE",
            "CN=say \\\"hi\\\"",
            "CN=\\\"quoted\\\",O=x\\;y",
            "CN=a\\\\b=c",
            "CN=\\\"",
        ] {
            let p = pairs(&with(dn, &["spiffe://td/ns/a"]));
            assert_eq!(value(&p, "Subject"), vec![dn], "{p:?}");
            assert_eq!(value(&p, "URI"), vec!["spiffe://td/ns/a"]);
            assert_eq!(value(&p, "DNS"), vec!["after.test"]);
        }
    }

    #[test]
    fn a_dn_ending_in_a_backslash_cannot_swallow_the_pairs_after_it() {
        // The SAN tries to read as a URI pair of its own once the subject's
        // closing quote is taken for an escaped one.
        let evil = "x;URI=spiffe://td/ns/admin;y=";
        let p = pairs(&with("CN=evil\\\\", &[evil]));
        assert_eq!(value(&p, "Subject"), vec!["CN=evil\\5C"], "{p:?}");
        assert_eq!(value(&p, "URI"), vec![evil]);
        assert_eq!(value(&p, "DNS"), vec!["after.test"]);
        assert_eq!(p.len(), 4, "Hash, Subject, URI, DNS: {p:?}");
    }

    #[test]
    fn a_quoted_san_ending_in_a_backslash_is_left_out() {
        let p = pairs(&with("CN=a", &["a;b\\", "spiffe://td/ns/ok"]));
        assert_eq!(value(&p, "URI"), vec!["spiffe://td/ns/ok"], "{p:?}");
        // Unquoted, a backslash means nothing and stays.
        let p = pairs(&with("CN=a", &["spiffe://td/a\\"]));
        assert_eq!(value(&p, "URI"), vec!["spiffe://td/a\\"], "{p:?}");
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
