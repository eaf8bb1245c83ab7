//! Identity forwarded to upstreams (SPEC §4), compiled per host at load and
//! prepared once per connection:
//!
//! 1. every identity header a client sent is removed — whatever its case,
//!    `_` read as `-`, however often repeated (hop-by-hop headers were
//!    removed before, so `Connection:` cannot be used against us);
//! 2. `x-forwarded-client-cert` per the host's mode;
//! 3. the ingress-nginx `ssl-client-*` headers, then `requestHeaders`.
//!
//! Only a verified identity is ever forwarded as one: XFCC and template
//! variables stay empty for an unverified (optionalNoCa) certificate, and
//! `ssl-client-verify` says `FAILED:reason` for it.

pub(crate) mod template;
pub(crate) mod xfcc;

use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::identity::PeerIdentity;

pub(crate) use template::Template;
pub(crate) use xfcc::{Detail, Mode};

/// Headers that carry client identity and that no client may send (SPEC §4
/// plus the names Traefik and RFC 9440 use).
pub(crate) const IDENTITY_HEADERS: [&str; 8] = [
    "ssl-client-cert",
    "ssl-client-verify",
    "ssl-client-subject-dn",
    "ssl-client-issuer-dn",
    "x-forwarded-tls-client-cert",
    "x-forwarded-tls-client-cert-info",
    "client-cert",
    "client-cert-chain",
];

const XFCC: &str = "x-forwarded-client-cert";

/// Every byte except ALPHA DIGIT `-._~` as `%XX` (upper case): ingress-nginx's
/// `$ssl_client_escaped_cert`, and for PEM the same as Envoy's encoding.
pub(crate) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3 / 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b >> 4)]));
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b & 0xf)]));
        }
    }
    out
}

/// Connection facts templates may use.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConnFacts<'a> {
    /// SNI.
    pub sni: Option<&'a str>,
    /// `TLSv1.3`, …
    pub version: Option<&'static str>,
    /// Cipher suite name.
    pub cipher: Option<&'static str>,
}

/// One host entry's forwarding settings, as validated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Settings {
    /// `forwardClientCert`
    pub mode: Mode,
    /// `xfccDetails`, sorted in Envoy's order.
    pub details: Vec<Detail>,
    /// `passCertificateToUpstream`
    pub pass_certificate: bool,
    /// `clientCertHeaders`: RFC 9440 `Client-Cert` and `Client-Cert-Chain`.
    pub client_cert_headers: bool,
    /// `requestHeaders`: lower-case name and template.
    pub request_headers: Vec<(String, Template)>,
}

/// The compiled forwarding of one host entry.
#[derive(Debug)]
pub struct HostForward {
    settings: Settings,
    /// URI SANs of the host's own certificate (XFCC `By`).
    by: Vec<String>,
    /// Names to strip, lower case with `_` as `-` (XFCC handled apart).
    strip: Vec<String>,
    headers: Vec<(HeaderName, Template)>,
}

/// What one connection adds to every request, computed once.
#[derive(Debug, Default)]
pub struct Prepared {
    /// The gateway's XFCC element, for a verified client.
    xfcc: Option<HeaderValue>,
    /// Headers set on every request.
    set: Vec<(HeaderName, HeaderValue)>,
}

/// The largest identity header value a connection prepares. The values
/// are kept for the connection's life and the client chooses the
/// certificate they are made of (a chain of up to 64 KiB, PEM- and
/// URL-encoded for `Cert`/`Chain`/`ssl-client-cert`), so they are bounded;
/// a larger value is left out (an absent identity header never widens
/// access), and upstreams refuse such headers anyway.
pub(crate) const MAX_VALUE_BYTES: usize = 16 * 1024;

fn bounded_value(value: &str) -> Option<HeaderValue> {
    if value.len() > MAX_VALUE_BYTES {
        return None;
    }
    HeaderValue::from_str(value).ok()
}

/// Certificates as an RFC 8941 list of byte sequences (`:BASE64:`, comma
/// separated): RFC 9440's `Client-Cert` (one) and `Client-Cert-Chain`.
fn sf_binary<'a, 'b: 'a>(
    certs: impl IntoIterator<Item = &'a rustls_pki_types::CertificateDer<'b>>,
) -> String {
    use base64::Engine;
    let mut out = String::new();
    for (i, c) in certs.into_iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push(':');
        base64::engine::general_purpose::STANDARD.encode_string(c.as_ref(), &mut out);
        out.push(':');
    }
    out
}

/// `x-forwarded-client-cert`, built at compile time.
const XFCC_NAME: HeaderName = HeaderName::from_static(XFCC);

/// Whether `name`, lower-cased with `_` read as `-`, equals `wanted` (which
/// is lower case with `-`).
pub(crate) fn same_header(name: &str, wanted: &str) -> bool {
    name.len() == wanted.len()
        && name
            .bytes()
            .zip(wanted.bytes())
            .all(|(a, b)| a.to_ascii_lowercase() == b || (a == b'_' && b == b'-'))
}

impl Prepared {
    /// Nothing to add (no client identity).
    pub(crate) const fn none() -> Self {
        Prepared {
            xfcc: None,
            set: Vec::new(),
        }
    }
}

impl HostForward {
    /// Strips every identity header and every one of `names` (lower case,
    /// `_` read as `-`), and sets nothing: the forwarding of plain HTTP.
    pub(crate) fn strip_only<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        let mut strip: Vec<String> = IDENTITY_HEADERS.iter().map(|s| s.to_string()).collect();
        for name in names {
            let norm = name.to_ascii_lowercase().replace('_', "-");
            if !strip.contains(&norm) && norm != XFCC {
                strip.push(norm);
            }
        }
        HostForward {
            settings: Settings::default(),
            by: Vec::new(),
            strip,
            headers: Vec::new(),
        }
    }

    /// Compiles a host's settings; `by` are its own certificate's URI SANs.
    pub fn new(settings: &Settings, by: &[String]) -> Self {
        let mut strip: Vec<String> = IDENTITY_HEADERS.iter().map(|s| s.to_string()).collect();
        let mut headers = Vec::new();
        for (name, t) in &settings.request_headers {
            let norm = name.replace('_', "-");
            if !strip.contains(&norm) && norm != XFCC {
                strip.push(norm);
            }
            if let Ok(h) = HeaderName::from_bytes(name.as_bytes()) {
                headers.push((h, t.clone()));
            }
        }
        HostForward {
            settings: settings.clone(),
            by: by.to_vec(),
            strip,
            headers,
        }
    }

    /// Computes, once per connection, what every request will carry.
    pub fn prepare(&self, id: Option<&PeerIdentity>, facts: &ConnFacts<'_>) -> Prepared {
        let verified = id.filter(|i| i.verified);
        let xfcc = match self.settings.mode {
            Mode::AppendForward | Mode::SanitizeSet => verified.and_then(|i| {
                let e = xfcc::element(&self.by, i, &self.settings.details);
                let v = bounded_value(&e);
                if v.is_none() {
                    tracing::warn!(
                        "x-forwarded-client-cert is not a valid header value or is over {MAX_VALUE_BYTES} bytes; left out"
                    );
                }
                v
            }),
            _ => None,
        };
        let mut set = Vec::new();
        let mut add = |name: &'static str, value: &str| {
            match bounded_value(value) {
            Some(v) => set.push((HeaderName::from_static(name), v)),
            None => tracing::warn!(
                header = name,
                "identity value is not a valid header value or is over {MAX_VALUE_BYTES} bytes; header left out"
            ),
        }
        };
        if self.settings.pass_certificate {
            match id {
                None => add("ssl-client-verify", "NONE"),
                Some(i) => {
                    match (i.verified, i.failure) {
                        (true, _) => add("ssl-client-verify", "SUCCESS"),
                        (false, reason) => add(
                            "ssl-client-verify",
                            &format!("FAILED:{}", reason.unwrap_or("error")),
                        ),
                    }
                    add("ssl-client-cert", &percent_encode(&i.leaf_pem()));
                    add("ssl-client-subject-dn", &i.cert.subject);
                    add("ssl-client-issuer-dn", &i.cert.issuer);
                }
            }
        }
        // RFC 9440: verified clients only.
        if let (true, Some(i)) = (self.settings.client_cert_headers, verified) {
            if let Some(leaf) = i.chain.first() {
                add("client-cert", &sf_binary([leaf]));
                // The intermediates the verification used, not whatever
                // else the client sent along.
                if i.verified_intermediates().next().is_some() {
                    add("client-cert-chain", &sf_binary(i.verified_intermediates()));
                }
            }
        }
        for (name, t) in &self.headers {
            match bounded_value(&t.render(id, facts)) {
                Some(v) => set.push((name.clone(), v)),
                None => tracing::warn!(
                    header = name.as_str(),
                    "rendered value is not a valid header value or is over {MAX_VALUE_BYTES} bytes; header left out"
                ),
            }
        }
        Prepared { xfcc, set }
    }

    /// Applies the host's policy to one request's headers (after hop-by-hop
    /// removal).
    pub fn apply(&self, prepared: &Prepared, verified_client: bool, headers: &mut HeaderMap) {
        // Incoming XFCC (exact name only; spellings with `_` are stripped).
        let incoming = match self.settings.mode {
            Mode::ForwardOnly | Mode::AppendForward | Mode::AlwaysForwardOnly => {
                let mut all = headers
                    .get_all(&XFCC_NAME)
                    .iter()
                    .filter(|v| v.to_str().is_ok());
                match (all.next(), all.next()) {
                    (None, _) => None,
                    (Some(one), None) => Some(one.clone()),
                    (Some(a), Some(b)) => {
                        let mut parts = vec![a.as_bytes(), b.as_bytes()];
                        parts.extend(all.map(HeaderValue::as_bytes));
                        xfcc::join(&parts)
                    }
                }
            }
            _ => None,
        };
        let doomed: Vec<HeaderName> = headers
            .keys()
            .filter(|k| {
                let n = k.as_str();
                same_header(n, XFCC) || self.strip.iter().any(|w| same_header(n, w))
            })
            .cloned()
            .collect();
        for name in doomed {
            headers.remove(name);
        }
        let own = prepared.xfcc.as_ref();
        if let Some(v) = xfcc::outgoing(self.settings.mode, verified_client, own, incoming) {
            headers.insert(XFCC_NAME, v);
        }
        for (name, value) in &prepared.set {
            headers.insert(name.clone(), value.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding_keeps_only_unreserved() {
        assert_eq!(
            percent_encode("-----BEGIN CERTIFICATE-----\nMIIB+/=\n"),
            "-----BEGIN%20CERTIFICATE-----%0AMIIB%2B%2F%3D%0A"
        );
        assert_eq!(percent_encode("a.b_c~d"), "a.b_c~d");
    }

    #[test]
    fn prepared_values_are_bounded_in_bytes() {
        let max = "a".repeat(MAX_VALUE_BYTES);
        assert!(bounded_value(&max).is_some());
        assert!(bounded_value(&format!("{max}a")).is_none());
        assert!(bounded_value("bad\nvalue").is_none());
    }

    #[test]
    fn header_names_compare_case_and_underscore_insensitively() {
        assert!(same_header("SSL_CLIENT_VERIFY", "ssl-client-verify"));
        assert!(same_header("Ssl-Client-Verify", "ssl-client-verify"));
        assert!(!same_header("ssl-client-verifyx", "ssl-client-verify"));
    }
}
