//! What a client certificate says, rendered: DNs, certificate summaries,
//! XFCC elements and PROXY v2 headers built from arbitrary identities.

use std::sync::Arc;

use rustls_pki_types::CertificateDer;
use x509_cert::der::Decode;

use super::Input;
use crate::forward::xfcc::{element, Detail};
use crate::identity::{CertSummary, PeerIdentity};
use crate::stream::proxy_v2::{encode, Fields, HeaderError};

/// `s` split at the `sep` bytes that no backslash escapes.
fn split_unescaped(s: &str, sep: u8) -> Vec<&str> {
    let b = s.as_bytes();
    let (mut parts, mut start, mut i) = (Vec::new(), 0, 0);
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            c if c == sep => {
                parts.push(&s[start..i]);
                start = i + 1;
                i += 1;
            }
            _ => i += 1,
        }
    }
    parts.push(&s[start.min(s.len())..]);
    parts
}

/// An RFC 2253 rendering is printable ASCII and has exactly the RDNs and
/// attributes of the name: no value can pose as another RDN (`,O=admins`)
/// or attribute (`+CN=x`).
pub(super) fn dn(data: &[u8]) {
    let Ok(name) = x509_cert::name::Name::from_der(data) else {
        return;
    };
    let text = crate::identity::dn::rfc2253(&name);
    assert!(
        text.bytes().all(|b| (0x20..0x7f).contains(&b)),
        "not printable ASCII: {text:?}"
    );
    let present: Vec<_> = name.0.iter().rev().filter(|r| !r.0.is_empty()).collect();
    if present.is_empty() {
        assert_eq!(text, "");
        return;
    }
    let rdns = split_unescaped(&text, b',');
    assert_eq!(rdns.len(), present.len(), "{text:?}");
    for (rdn, atvs) in rdns.iter().zip(present) {
        let parts = split_unescaped(rdn, b'+');
        assert_eq!(parts.len(), atvs.0.len(), "{text:?}");
        for p in parts {
            assert!(split_unescaped(p, b'=').len() >= 2, "{text:?}");
        }
    }
}

/// A certificate is read the same by the identity and inspect paths, and
/// its names render as DNs do.
pub(super) fn x509(data: &[u8]) {
    let _ = crate::pki::inspect::cert_info(data);
    let Ok(summary) = CertSummary::from_der(data) else {
        return;
    };
    assert_eq!(summary.sha256.len(), 64);
    assert!(summary.subject.bytes().all(|b| (0x20..0x7f).contains(&b)));
    for n in &summary.dns_sans {
        let _ = summary.covers_hostname(n);
        let _ = crate::identity::cert::dns_name_matches(n, "a.test");
    }
    assert_eq!(
        crate::identity::memo::summary(data).as_deref(),
        Some(&summary)
    );
}

/// Envoy's documented XFCC grammar, written apart from the encoder:
/// elements split at `,`, pairs at `;`, key and value at the first `=`,
/// all outside double quotes; inside quotes `\"` is a quote and every
/// other character is itself.
fn envoy_parse(header: &str) -> Option<Vec<Vec<(String, String)>>> {
    let mut elements = vec![Vec::new()];
    let (mut key, mut value) = (String::new(), String::new());
    let (mut in_value, mut quoted, mut was_quoted) = (false, false, false);
    let mut chars = header.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '\\' if chars.peek() == Some(&'"') => {
                    chars.next();
                    value.push('"');
                }
                '"' => quoted = false,
                c => value.push(c),
            }
            continue;
        }
        match c {
            '"' if in_value && value.is_empty() && !was_quoted => {
                quoted = true;
                was_quoted = true;
            }
            '=' if !in_value => in_value = true,
            ';' | ',' => {
                if !in_value {
                    return None;
                }
                elements
                    .last_mut()?
                    .push((std::mem::take(&mut key), std::mem::take(&mut value)));
                in_value = false;
                was_quoted = false;
                if c == ',' {
                    elements.push(Vec::new());
                }
            }
            c if in_value => {
                if was_quoted {
                    return None;
                }
                value.push(c)
            }
            c => key.push(c),
        }
    }
    if quoted || !in_value {
        return None;
    }
    elements.last_mut()?.push((key, value));
    Some(elements)
}

fn needs_quotes(v: &str) -> bool {
    v.contains([',', ';', '=', '"'])
}

/// An element for an arbitrary identity parses back, with Envoy's rules,
/// into exactly the pairs it was made of: no subject or SAN can end its
/// quotes early and pose as `By`, `Hash` or `URI` pairs, or as a second
/// element.
pub(super) fn xfcc(data: &[u8]) {
    let mut input = Input::new(data);
    let by: Vec<String> = (0..input.byte() % 3).map(|_| input.text(64)).collect();
    let subject = input.text(200);
    let uris: Vec<String> = (0..input.byte() % 4).map(|_| input.text(100)).collect();
    let dnss: Vec<String> = (0..input.byte() % 4).map(|_| input.text(100)).collect();
    let mut details: Vec<Detail> = [
        Detail::Cert,
        Detail::Chain,
        Detail::Subject,
        Detail::Uri,
        Detail::Dns,
    ]
    .into_iter()
    .filter(|_| input.flag())
    .collect();
    details.sort();
    let der = input.rest().to_vec();
    let id = PeerIdentity {
        verified: true,
        failure: None,
        cert: Arc::new(CertSummary {
            subject: subject.clone(),
            issuer: String::new(),
            common_names: vec![],
            organizations: vec![],
            organizational_units: vec![],
            dns_sans: dnss.clone(),
            uri_sans: uris.clone(),
            ip_sans: vec![],
            email_sans: vec![],
            serial: "01".into(),
            sha256: "ab".repeat(32),
            not_before: 0,
            not_after: 0,
            is_ca: false,
            eku: None,
        }),
        chain: vec![CertificateDer::from(der)].into(),
        path: Default::default(),
    };
    let out = element(&by, &id, &details);
    // What cannot be sent as a header value is never sent (the caller
    // drops it); the grammar only holds for what can.
    if ::http::HeaderValue::from_str(&out).is_err() {
        return;
    }
    let parsed = envoy_parse(&out).unwrap_or_else(|| panic!("not Envoy's grammar: {out:?}"));
    assert_eq!(parsed.len(), 1, "one element became several: {out:?}");
    let pairs = &parsed[0];
    // A value is left out only when it would need quotes and ends in a
    // backslash.
    let kept = |v: &String, quoted: bool| !((quoted || needs_quotes(v)) && v.ends_with('\\'));
    let mut want: Vec<(&str, String)> = Vec::new();
    for b in by.iter().filter(|b| kept(b, false)) {
        want.push(("By", b.clone()));
    }
    want.push(("Hash", "ab".repeat(32)));
    for d in &details {
        match d {
            Detail::Cert => want.push(("Cert", crate::forward::percent_encode(&id.leaf_pem()))),
            Detail::Chain => want.push(("Chain", crate::forward::percent_encode(&id.chain_pem()))),
            Detail::Subject => {
                let run = subject.len() - subject.trim_end_matches('\\').len();
                let s = if run > 0 && run % 2 == 0 {
                    format!("{}\\5C", &subject[..subject.len() - 2])
                } else {
                    subject.clone()
                };
                if kept(&s, true) {
                    want.push(("Subject", s));
                }
            }
            Detail::Uri => {
                if uris.is_empty() {
                    want.push(("URI", String::new()));
                }
                for u in uris.iter().filter(|u| kept(u, false)) {
                    want.push(("URI", u.clone()));
                }
            }
            Detail::Dns => {
                for d in dnss.iter().filter(|d| kept(d, false)) {
                    want.push(("DNS", d.clone()));
                }
            }
        }
    }
    let got: Vec<(&str, String)> = pairs.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    assert_eq!(got, want, "{out:?}");
}

/// A PROXY v2 header for arbitrary fields is whole and parses back to
/// them; what does not fit is refused whole or (the certificate) left out
/// whole.
pub(super) fn proxy_v2(data: &[u8]) {
    let mut input = Input::new(data);
    let v6 = input.flag();
    let mixed = input.byte() == 7;
    let port = u16::from_le_bytes([input.byte(), input.byte()]);
    let v4 = std::net::SocketAddr::from(([10, 0, 0, input.byte()], port));
    let v6a = std::net::SocketAddr::from(([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1], port));
    let (client, local) = match (v6, mixed) {
        (false, false) => (v4, v4),
        (true, false) => (v6a, v6a),
        (false, true) => (v4, v6a),
        (true, true) => (v6a, v4),
    };
    let authority = input.flag().then(|| input.text(70_000));
    let alpn = input.flag().then(|| input.bytes(70_000).to_vec());
    let version = input.flag().then(|| input.text(300));
    let cipher = input.flag().then(|| input.text(300));
    let cn = input.flag().then(|| input.text(70_000));
    let (presented, resumed, verified) = (input.flag(), input.flag(), input.flag());
    let cert = input.flag().then(|| input.rest().to_vec());
    let f = Fields {
        client,
        local,
        authority: authority.as_deref(),
        alpn: alpn.as_deref(),
        version: version.as_deref(),
        cipher: cipher.as_deref(),
        presented,
        resumed,
        verified,
        cn: cn.as_deref(),
        client_cert: cert.as_deref(),
    };
    let h = match encode(&f) {
        Ok(h) => h,
        Err(HeaderError::TooLarge { needed }) => {
            assert!(needed > usize::from(u16::MAX));
            return;
        }
        Err(HeaderError::Encode(_)) => {
            assert!(mixed, "only mixed address families fail to encode");
            return;
        }
    };
    use proxy_header::{ParseConfig, ProxyHeader, Tlv};
    let (parsed, used) = ProxyHeader::parse(&h.bytes, ParseConfig::default())
        .unwrap_or_else(|e| panic!("our header does not parse: {e:?}"));
    assert_eq!(used, h.bytes.len(), "one whole header");
    assert_eq!(parsed.authority(), authority.as_deref());
    assert_eq!(parsed.alpn(), alpn.as_deref());
    let ssl = parsed.ssl().expect("an SSL TLV");
    assert_eq!(ssl.cn(), cn.as_deref());
    assert_eq!(ssl.version(), version.as_deref());
    assert_eq!(ssl.cipher(), cipher.as_deref());
    assert_eq!(ssl.client_cert_sess(), presented);
    assert_eq!(ssl.verify() == 0, verified || !presented);
    let sent = ssl.tlvs().find_map(|t| match t {
        Ok(Tlv::Custom(0x28, der)) => Some(der.into_owned()),
        _ => None,
    });
    match (&cert, h.client_cert_omitted) {
        (Some(c), false) => assert_eq!(sent.as_deref(), Some(c.as_slice())),
        (_, true) => assert!(sent.is_none() && cert.is_some()),
        (None, false) => assert!(sent.is_none()),
    }
}
