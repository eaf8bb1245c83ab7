//! Probing, the part that judges: an [`Observation`] (what the server
//! showed and how the handshake ended) becomes a [`Diagnosis`] — the facts
//! in order and the verdict in words. Pure: no I/O, no clock but `now`, so
//! every situation is a row in a table test.

use std::net::SocketAddr;

#[cfg(test)]
use rustls::{AlertDescription, CertificateError};

use super::alerts::{accepted_cas, handshake_problem, server_problem};
use crate::identity::CertSummary;
use crate::pki::inspect::validity_words;
use crate::words::rfc3339;

/// What was negotiated.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub(crate) struct Negotiated {
    /// `TLSv1.3`, …
    pub version: String,
    /// IANA cipher suite name.
    pub cipher: String,
    /// ALPN protocol, if any.
    pub alpn: Option<String>,
}

/// What a probe saw.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Observation {
    /// Where it connected.
    pub addr: SocketAddr,
    /// The server name sent (`None`: the target was an IP address).
    pub sni_sent: Option<String>,
    /// The name the server certificate is checked for.
    pub name_checked: String,
    /// `--ca`, as given.
    pub ca: Option<String>,
    /// Version, cipher and ALPN, when the handshake completed.
    pub negotiated: Option<Negotiated>,
    /// The server's chain (DER, leaf first), when it sent one.
    pub server_chain: Option<Vec<Vec<u8>>>,
    /// Why the chain does not verify against `--ca`, if it does not.
    pub server_error: Option<rustls::Error>,
    /// The CA names of the server's CertificateRequest (`None`: it did not
    /// ask for a certificate).
    pub asked: Option<Vec<String>>,
    /// Our client chain (DER, leaf first), when `--cert` was given.
    pub client_chain: Option<Vec<Vec<u8>>>,
    /// How the handshake (or the first read) failed.
    pub error: Option<rustls::Error>,
    /// For https:// targets: the path and the response status, if any.
    pub http: Option<(String, Option<u16>)>,
}

/// One server certificate as reported.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub(crate) struct ChainEntry {
    /// Subject (RFC 2253), or why it could not be read.
    pub subject: String,
    /// Issuer.
    pub issuer: String,
    /// DNS and IP SANs (or the CN when there are none).
    pub names: String,
    /// notBefore, RFC 3339.
    pub not_before: String,
    /// notAfter, RFC 3339.
    pub not_after: String,
    /// `valid for 89 more days`, `expired 3 days ago`, …
    pub validity: String,
}

/// The verdict and the facts behind it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub(crate) struct Diagnosis {
    /// The report, line by line, without the final verdict line.
    #[serde(skip)]
    pub lines: Vec<String>,
    /// Whether the handshake (and request) worked.
    pub ok: bool,
    /// Why not, in words.
    pub reason: Option<String>,
    /// Where it connected.
    pub address: String,
    /// The server name sent.
    pub server_name: Option<String>,
    /// Version, cipher and ALPN.
    pub tls: Option<Negotiated>,
    /// The server chain.
    pub server_chain: Vec<ChainEntry>,
    /// Whether the server certificate verified against `--ca` for the
    /// name (`None`: not checked).
    pub server_verified: Option<bool>,
    /// Whether the server asked for a client certificate.
    pub client_certificate_requested: bool,
    /// The CA names it said it accepts.
    pub accepted_issuers: Vec<String>,
    /// The subject of the client certificate sent, if one was.
    pub client_certificate_sent: Option<String>,
    /// Whether it was accepted (`None`: none was sent).
    pub client_certificate_accepted: Option<bool>,
    /// The HTTP status of the GET.
    pub http_status: Option<u16>,
}

/// `connecting to ADDR (server name NAME)`.
pub(super) fn connecting_line(addr: SocketAddr, sni_sent: Option<&str>) -> String {
    let sent = match sni_sent {
        None => "no server name: the target is an IP address; give --sni NAME or --resolve NAME:PORT:ADDRESS to send one".to_string(),
        Some(sni) => format!("server name {sni}"),
    };
    format!("connecting to {addr} ({sent})")
}

pub(super) fn names_of(s: &CertSummary) -> String {
    let mut v: Vec<String> = s.dns_sans.clone();
    v.extend(s.ip_sans.iter().map(ToString::to_string));
    if v.is_empty() {
        v = s.common_names.clone();
    }
    v.join(", ")
}

/// Judges what was observed; `now` is the time in seconds since the epoch.
pub(crate) fn diagnose(o: &Observation, now: u64) -> Diagnosis {
    let mut lines = vec![connecting_line(o.addr, o.sni_sent.as_deref())];
    let mut d = Diagnosis {
        lines: Vec::new(),
        ok: false,
        reason: None,
        address: o.addr.to_string(),
        server_name: o.sni_sent.clone(),
        tls: o.negotiated.clone(),
        server_chain: Vec::new(),
        server_verified: None,
        client_certificate_requested: o.asked.is_some(),
        accepted_issuers: o.asked.clone().unwrap_or_default(),
        client_certificate_sent: None,
        client_certificate_accepted: None,
        http_status: o.http.as_ref().and_then(|(_, s)| *s),
    };
    if let Some(n) = &o.negotiated {
        lines.push(format!(
            "TLS: {}, {}, ALPN {}",
            n.version,
            n.cipher,
            n.alpn.as_deref().unwrap_or("none")
        ));
    }
    // The server chain.
    let mut failure: Option<String> = None;
    if let Some(chain) = &o.server_chain {
        lines.push("server certificate chain:".into());
        let mut leaf: Option<CertSummary> = None;
        for (i, der) in chain.iter().enumerate() {
            match CertSummary::from_der(der) {
                Ok(s) => {
                    lines.push(format!("  {i}: {}", s.subject));
                    lines.push(format!("     issued by {}", s.issuer));
                    if i == 0 {
                        lines.push(format!("     names: {}", names_of(&s)));
                    }
                    let validity = validity_words(s.not_before, s.not_after, now);
                    lines.push(format!(
                        "     valid {} to {} ({validity})",
                        rfc3339(s.not_before),
                        rfc3339(s.not_after),
                    ));
                    d.server_chain.push(ChainEntry {
                        subject: s.subject.clone(),
                        issuer: s.issuer.clone(),
                        names: names_of(&s),
                        not_before: rfc3339(s.not_before),
                        not_after: rfc3339(s.not_after),
                        validity,
                    });
                    if i == 0 {
                        leaf = Some(s);
                    }
                }
                Err(e) => lines.push(format!("  {i}: unreadable ({e})")),
            }
        }
        match (&o.ca, &o.server_error) {
            (None, _) => {
                lines.push("server certificate: not verified (give --ca to check it)".into())
            }
            (Some(ca), None) => {
                d.server_verified = Some(true);
                lines.push(format!(
                    "server certificate: verified against {ca} for {}",
                    o.name_checked
                ));
            }
            (Some(ca), Some(e)) => {
                d.server_verified = Some(false);
                let why = server_problem(e, leaf.as_ref(), ca, &o.name_checked);
                lines.push(format!("server certificate: {why}"));
                failure = Some(why);
            }
        }
    }

    // Client authentication.
    match &o.asked {
        None if o.error.is_some() && o.server_chain.is_none() => lines.push(
            "client certificate: the handshake ended before the server could ask for one".into(),
        ),
        None => lines.push("client certificate: the server did not ask for one".into()),
        Some(h) => lines.push(format!(
            "client certificate: the server asked for one; {}",
            accepted_cas(h)
        )),
    }
    let ours = o
        .client_chain
        .as_ref()
        .and_then(|c| c.first())
        .and_then(|c| CertSummary::from_der(c).ok())
        .filter(|_| o.asked.is_some());
    if let Some(s) = &ours {
        d.client_certificate_sent = Some(s.subject.clone());
    }
    if let Some(e) = &o.error {
        let why = handshake_problem(o, e);
        if let Some(s) = &ours {
            d.client_certificate_accepted = Some(false);
            lines.push(format!(
                "client certificate sent: {} (issued by {})",
                s.subject, s.issuer
            ));
        }
        d.reason = Some(failure.unwrap_or(why));
        d.lines = lines;
        return d;
    }
    if let Some(s) = &ours {
        d.client_certificate_accepted = Some(true);
        lines.push(format!(
            "client certificate sent: {} (issued by {}) — accepted",
            s.subject, s.issuer
        ));
    }
    if let Some((path, status)) = &o.http {
        match status {
            Some(s) => {
                lines.push(format!("HTTP: GET {path} -> {s}"));
                if *s >= 400 && failure.is_none() {
                    failure = Some(format!("the server answered {s} to GET {path}"));
                }
            }
            None => {
                failure.get_or_insert_with(|| "no HTTP response".to_string());
            }
        }
    }
    d.ok = failure.is_none();
    d.reason = failure;
    d.lines = lines;
    d
}

impl Diagnosis {
    /// The report as an operator reads it: the facts, then `OK: …` or
    /// `FAILED: reason`.
    pub(crate) fn text(&self, request: bool) -> String {
        let mut out = String::new();
        for l in &self.lines {
            out.push_str(l);
            out.push('\n');
        }
        match (&self.reason, self.ok) {
            (why, false) => {
                out.push_str(&format!(
                    "FAILED: {}\n",
                    why_or(why.as_deref().unwrap_or(""))
                ));
            }
            (_, true) => out.push_str(&format!(
                "OK: handshake{} succeeded\n",
                if request { " and request" } else { "" }
            )),
        }
        out
    }
}

fn why_or(why: &str) -> &str {
    if why.is_empty() {
        "unknown"
    } else {
        why
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, IsCa, Issuer, KeyPair};

    struct Pki {
        server: Vec<u8>,
        client: Vec<u8>,
    }

    fn pki() -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.distinguished_name.push(DnType::CommonName, "Client CA");
        ca.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let issuer = Issuer::new(ca, ca_key);
        let leaf = |cn: &str, dns: &[&str]| {
            let key = KeyPair::generate().unwrap();
            let mut p =
                CertificateParams::new(dns.iter().map(|d| d.to_string()).collect::<Vec<_>>())
                    .unwrap();
            p.distinguished_name.push(DnType::CommonName, cn);
            p.signed_by(&key, &issuer).unwrap().der().to_vec()
        };
        Pki {
            server: leaf("server", &["a.test"]),
            client: leaf("alice", &[]),
        }
    }

    /// A handshake that worked: server verified, certificate asked for
    /// and accepted, GET / answered 200.
    fn worked(p: &Pki) -> Observation {
        Observation {
            addr: "127.0.0.1:8443".parse().unwrap(),
            sni_sent: Some("a.test".into()),
            name_checked: "a.test".into(),
            ca: Some("ca.crt".into()),
            negotiated: Some(Negotiated {
                version: "TLSv1.3".into(),
                cipher: "TLS13_AES_128_GCM_SHA256".into(),
                alpn: Some("http/1.1".into()),
            }),
            server_chain: Some(vec![p.server.clone()]),
            server_error: None,
            asked: Some(vec!["CN=Client CA".into()]),
            client_chain: Some(vec![p.client.clone()]),
            error: None,
            http: Some(("/".into(), Some(200))),
        }
    }

    fn alert(a: AlertDescription) -> Option<rustls::Error> {
        Some(rustls::Error::AlertReceived(a))
    }

    #[test]
    fn observations_to_verdicts() {
        let p = pki();
        let now = rustls::pki_types::UnixTime::now().as_secs();
        type Change = fn(&mut Observation, &Pki);
        let table: &[(&str, Change, Option<&str>)] = &[
            ("works", |_, _| {}, None),
            (
                "no certificate, one required",
                |o, _| {
                    o.client_chain = None;
                    o.error = alert(AlertDescription::CertificateRequired);
                },
                Some("the server requires a client certificate; it accepts certificates issued by CN=Client CA"),
            ),
            (
                "unknown server name",
                |o, _| {
                    o.asked = None;
                    o.server_chain = None;
                    o.error = alert(AlertDescription::UnrecognisedName);
                },
                Some("the server does not serve the name a.test (unrecognized_name); give --sni with a name it serves"),
            ),
            (
                "an IP address sends no name",
                |o, _| {
                    o.sni_sent = None;
                    o.asked = None;
                    o.server_chain = None;
                    o.error = alert(AlertDescription::UnrecognisedName);
                },
                Some("the server needs a server name (SNI) and an IP address sends none (unrecognized_name); give --sni NAME or --resolve NAME:PORT:ADDRESS"),
            ),
            (
                "server certificate for another name",
                |o, _| {
                    o.name_checked = "b.test".into();
                    o.server_error = Some(rustls::Error::InvalidCertificate(
                        CertificateError::NotValidForName,
                    ));
                },
                Some("the server's certificate does not cover b.test: it covers a.test"),
            ),
            (
                "server certificate from another CA",
                |o, _| {
                    o.server_error = Some(rustls::Error::InvalidCertificate(
                        CertificateError::UnknownIssuer,
                    ));
                },
                Some("the server's certificate is not issued by a CA in ca.crt: it was issued by CN=Client CA"),
            ),
            (
                "our certificate expired",
                |o, _| o.error = alert(AlertDescription::CertificateExpired),
                Some("your certificate was refused: expired (or not yet valid)"),
            ),
            (
                "unknown_ca for a chain the server says it accepts: a stale CRL",
                |o, _| o.error = alert(AlertDescription::UnknownCA),
                None,
            ),
            (
                "a forbidden path",
                |o, _| o.http = Some(("/admin".into(), Some(403))),
                Some("the server answered 403 to GET /admin"),
            ),
            (
                "no HTTP answer",
                |o, _| o.http = Some(("/".into(), None)),
                Some("no HTTP response"),
            ),
            (
                "not a TLS port",
                |o, _| {
                    o.asked = None;
                    o.server_chain = None;
                    o.negotiated = None;
                    o.error = Some(rustls::Error::InvalidMessage(
                        rustls::InvalidMessage::InvalidContentType,
                    ));
                },
                Some("the handshake failed: the server did not speak TLS as expected (is this a TLS port?)"),
            ),
        ];
        for (what, change, want) in table {
            let mut o = worked(&p);
            change(&mut o, &p);
            let d = diagnose(&o, now);
            match want {
                None if *what == "works" => {
                    assert!(d.ok, "{what}: {d:?}");
                    assert_eq!(d.reason, None, "{what}");
                    assert_eq!(d.client_certificate_accepted, Some(true));
                    assert_eq!(d.server_verified, Some(true));
                    assert_eq!(d.http_status, Some(200));
                    let text = d.text(true);
                    assert!(
                        text.contains(
                            "client certificate sent: CN=alice (issued by CN=Client CA) — accepted"
                        ),
                        "{text}"
                    );
                    assert!(
                        text.ends_with("OK: handshake and request succeeded\n"),
                        "{text}"
                    );
                }
                None => {
                    // The stale-CRL row: its words come from alerts.rs.
                    assert!(!d.ok);
                    let why = d.reason.clone().unwrap();
                    assert!(
                        why.contains("CN=Client CA") && why.contains("CRL"),
                        "{what}: {why}"
                    );
                    assert_eq!(d.client_certificate_accepted, Some(false));
                }
                Some(w) => {
                    assert!(!d.ok, "{what}: {d:?}");
                    assert_eq!(d.reason.as_deref(), Some(*w), "{what}");
                    assert!(d.text(true).ends_with(&format!("FAILED: {w}\n")), "{what}");
                }
            }
        }
    }

    #[test]
    fn the_json_names_every_fact() {
        let p = pki();
        let d = diagnose(&worked(&p), 0);
        let v = serde_json::to_value(&d).unwrap();
        for key in [
            "ok",
            "reason",
            "address",
            "server_name",
            "tls",
            "server_chain",
            "server_verified",
            "client_certificate_requested",
            "accepted_issuers",
            "client_certificate_sent",
            "client_certificate_accepted",
            "http_status",
        ] {
            assert!(v.get(key).is_some(), "{key} missing in {v}");
        }
        assert_eq!(v["server_chain"][0]["names"], "a.test");
        assert_eq!(v["accepted_issuers"][0], "CN=Client CA");
    }

    #[test]
    fn an_ended_handshake_is_not_reported_as_not_asked() {
        let p = pki();
        let mut o = worked(&p);
        o.asked = None;
        o.server_chain = None;
        o.error = Some(rustls::Error::General("connection reset by peer".into()));
        let d = diagnose(&o, 0);
        assert!(d
            .lines
            .iter()
            .any(|l| l
                == "client certificate: the handshake ended before the server could ask for one"));
        assert_eq!(
            d.reason.as_deref(),
            Some("the handshake failed: connection reset by peer")
        );
    }
}
