//! `cert inspect`: what a file holds, for people (validity as "expires in 87
//! days") or machines (`--json`). Keys are described by type and size only.

use std::fmt::Write;
use std::path::Path;

use serde::Serialize;
use x509_cert::der::Decode;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::SubjectAltName;

use super::keys::{classify, describe_spki};
use super::{read, PkiError};
use crate::identity::dn::rfc2253;
use crate::identity::CertSummary;
use crate::words::rfc3339;

/// A certificate as inspected.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CertInfo {
    /// RFC 2253 subject.
    pub subject: String,
    /// RFC 2253 issuer.
    pub issuer: String,
    /// Serial, hex.
    pub serial: String,
    /// RFC 3339.
    pub not_before: String,
    /// RFC 3339.
    pub not_after: String,
    /// "expires in 87 days", "expired 3 days ago", …
    pub validity: String,
    /// `DNS:…`, `IP:…`, `URI:…`, `email:…`
    pub sans: Vec<String>,
    /// basicConstraints CA:TRUE.
    pub is_ca: bool,
    /// Public key type and size.
    pub key: String,
    /// Extended key usages (absent = any).
    pub extended_key_usage: Option<Vec<String>>,
    /// SHA-256 of the DER, hex.
    pub sha256: String,
}

/// One revoked entry of a CRL.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RevokedInfo {
    /// Serial, hex.
    pub serial: String,
    /// RFC 3339.
    pub revoked_at: String,
}

/// One thing found in a file.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub(crate) enum Item {
    /// A certificate.
    Certificate(CertInfo),
    /// A private key: type and size only.
    PrivateKey {
        /// "ECDSA P-256", "RSA 2048", …
        key: String,
    },
    /// A certificate signing request.
    Csr {
        /// Requested subject.
        subject: String,
        /// Public key type and size.
        key: String,
        /// Requested SANs.
        sans: Vec<String>,
        /// Whether its signature verifies.
        signature_valid: bool,
    },
    /// A CRL.
    Crl {
        /// Issuer.
        issuer: String,
        /// RFC 3339.
        this_update: String,
        /// RFC 3339.
        next_update: Option<String>,
        /// Revoked certificates.
        revoked: Vec<RevokedInfo>,
    },
    /// A PKCS#12 bundle.
    Pkcs12 {
        /// Kind of the key inside.
        key: Option<String>,
        /// Certificates inside.
        certificates: Vec<CertInfo>,
    },
}

/// Everything found in one file.
#[derive(Debug, Serialize)]
pub(crate) struct FileReport {
    /// The file.
    pub file: String,
    /// What it holds.
    pub items: Vec<Item>,
}

fn now() -> u64 {
    rustls_pki_types::UnixTime::now().as_secs()
}

/// "expires in N days" and friends.
pub(crate) fn validity_words(not_before: u64, not_after: u64, now: u64) -> String {
    let days = |s: u64| s / 86_400;
    if now < not_before {
        format!(
            "not valid yet: valid in {} days",
            days(not_before - now).max(1)
        )
    } else if now > not_after {
        match days(now - not_after) {
            0 => "expired today".into(),
            1 => "expired 1 day ago".into(),
            n => format!("expired {n} days ago"),
        }
    } else {
        match days(not_after - now) {
            0 => "expires in less than a day".into(),
            1 => "expires in 1 day".into(),
            n => format!("expires in {n} days"),
        }
    }
}

fn san_strings(names: &[GeneralName]) -> Vec<String> {
    names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DnsName(d) => Some(format!("DNS:{d}")),
            GeneralName::UniformResourceIdentifier(u) => Some(format!("URI:{u}")),
            GeneralName::Rfc822Name(m) => Some(format!("email:{m}")),
            GeneralName::IpAddress(ip) => {
                let b = ip.as_bytes();
                let addr: Option<std::net::IpAddr> = <[u8; 4]>::try_from(b)
                    .map(Into::into)
                    .ok()
                    .or_else(|| <[u8; 16]>::try_from(b).map(Into::into).ok());
                addr.map(|a| format!("IP:{a}"))
            }
            _ => None,
        })
        .collect()
}

fn eku_name(oid: &str) -> String {
    match oid {
        "1.3.6.1.5.5.7.3.1" => "serverAuth".into(),
        "1.3.6.1.5.5.7.3.2" => "clientAuth".into(),
        "1.3.6.1.5.5.7.3.3" => "codeSigning".into(),
        "1.3.6.1.5.5.7.3.4" => "emailProtection".into(),
        "1.3.6.1.5.5.7.3.8" => "timeStamping".into(),
        "1.3.6.1.5.5.7.3.9" => "OCSPSigning".into(),
        other => other.to_string(),
    }
}

/// Inspects one DER certificate.
pub(crate) fn cert_info(der: &[u8]) -> Result<CertInfo, PkiError> {
    let s = CertSummary::from_der(der)?;
    let c = x509_cert::Certificate::from_der(der).map_err(|source| PkiError::Der {
        what: "certificate",
        source,
    })?;
    let sans = match c.tbs_certificate.get::<SubjectAltName>() {
        Ok(Some((_, san))) => san_strings(&san.0),
        _ => Vec::new(),
    };
    Ok(CertInfo {
        validity: validity_words(s.not_before, s.not_after, now()),
        subject: s.subject,
        issuer: s.issuer,
        serial: s.serial,
        not_before: rfc3339(s.not_before),
        not_after: rfc3339(s.not_after),
        sans,
        is_ca: s.is_ca,
        key: describe_spki(&c.tbs_certificate.subject_public_key_info),
        extended_key_usage: s
            .eku
            .map(|list| list.iter().map(|o| eku_name(&o.to_string())).collect()),
        sha256: s.sha256,
    })
}

fn csr_item(der: &[u8]) -> Result<Item, PkiError> {
    let req = x509_cert::request::CertReq::from_der(der).map_err(|source| PkiError::Der {
        what: "CSR",
        source,
    })?;
    let info = &req.info;
    let mut sans = Vec::new();
    for attr in info.attributes.iter() {
        // extensionRequest (PKCS#9)
        if attr.oid.to_string() == "1.2.840.113549.1.9.14" {
            for v in attr.values.iter() {
                let Ok(exts) = v.decode_as::<x509_cert::ext::Extensions>() else {
                    continue;
                };
                for e in exts {
                    if e.extn_id.to_string() == "2.5.29.17" {
                        if let Ok(san) = SubjectAltName::from_der(e.extn_value.as_bytes()) {
                            sans.extend(san_strings(&san.0));
                        }
                    }
                }
            }
        }
    }
    let signature_valid =
        rcgen::CertificateSigningRequestParams::from_der(&der.to_vec().into()).is_ok();
    Ok(Item::Csr {
        subject: rfc2253(&info.subject),
        key: describe_spki(&info.public_key),
        sans,
        signature_valid,
    })
}

fn crl_item(der: &[u8]) -> Result<Item, PkiError> {
    let crl = x509_cert::crl::CertificateList::from_der(der).map_err(|source| PkiError::Der {
        what: "CRL",
        source,
    })?;
    let t = crl.tbs_cert_list;
    Ok(Item::Crl {
        issuer: rfc2253(&t.issuer),
        this_update: rfc3339(t.this_update.to_unix_duration().as_secs()),
        next_update: t
            .next_update
            .map(|n| rfc3339(n.to_unix_duration().as_secs())),
        revoked: t
            .revoked_certificates
            .unwrap_or_default()
            .iter()
            .map(|r| RevokedInfo {
                serial: crate::identity::cert::hex_upper(r.serial_number.as_bytes()),
                revoked_at: rfc3339(r.revocation_date.to_unix_duration().as_secs()),
            })
            .collect(),
    })
}

fn key_item(der: rustls_pki_types::PrivateKeyDer<'_>) -> Result<Item, PkiError> {
    let k = classify(&der).ok_or(PkiError::UnknownKey)?;
    Ok(Item::PrivateKey { key: k.kind })
}

/// Inspects one file. `password` opens PKCS#12 files.
pub(crate) fn inspect(path: &Path, password: Option<&str>) -> Result<FileReport, PkiError> {
    let bytes = read(path)?;
    let file = path.display().to_string();
    let fail = |e: PkiError| PkiError::In {
        path: path.to_path_buf(),
        source: Box::new(e),
    };
    let mut items = Vec::new();
    if bytes.starts_with(b"-----BEGIN") || bytes.windows(10).any(|w| w == b"-----BEGIN") {
        let blocks = pem::parse_many(&bytes).map_err(|e| fail(e.into()))?;
        for b in blocks {
            let der = b.contents();
            let item = match b.tag() {
                "CERTIFICATE" => Item::Certificate(cert_info(der).map_err(fail)?),
                "CERTIFICATE REQUEST" | "NEW CERTIFICATE REQUEST" => csr_item(der).map_err(fail)?,
                "X509 CRL" => crl_item(der).map_err(fail)?,
                "PRIVATE KEY" => {
                    key_item(rustls_pki_types::PrivatePkcs8KeyDer::from(der.to_vec()).into())
                        .map_err(fail)?
                }
                "RSA PRIVATE KEY" => {
                    key_item(rustls_pki_types::PrivatePkcs1KeyDer::from(der.to_vec()).into())
                        .map_err(fail)?
                }
                "EC PRIVATE KEY" => {
                    key_item(rustls_pki_types::PrivateSec1KeyDer::from(der.to_vec()).into())
                        .map_err(fail)?
                }
                "ENCRYPTED PRIVATE KEY" => return Err(fail(PkiError::Encrypted)),
                other => return Err(fail(PkiError::UnknownBlock(other.to_string()))),
            };
            items.push(item);
        }
    } else if let Some(pw) = password {
        let c = super::p12::open(&bytes, pw).map_err(fail)?;
        items.push(Item::Pkcs12 {
            key: c.key,
            certificates: c
                .certs
                .iter()
                .map(|d| cert_info(d))
                .collect::<Result<_, _>>()
                .map_err(fail)?,
        });
    } else if let Ok(info) = cert_info(&bytes) {
        items.push(Item::Certificate(info));
    } else if let Ok(item) = crl_item(&bytes) {
        items.push(item);
    } else if let Ok(item) = csr_item(&bytes) {
        items.push(item);
    } else if let Ok(item) =
        key_item(rustls_pki_types::PrivatePkcs8KeyDer::from(bytes.clone()).into())
    {
        items.push(item);
    } else if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("p12") || e.eq_ignore_ascii_case("pfx"))
    {
        return Err(PkiError::NeedsPassword {
            path: path.to_path_buf(),
        });
    } else {
        return Err(fail(PkiError::UnknownFile));
    }
    if items.is_empty() {
        return Err(fail(PkiError::Empty));
    }
    Ok(FileReport { file, items })
}

fn cert_text(out: &mut String, c: &CertInfo, indent: &str) {
    let _ = writeln!(out, "{indent}subject:  {}", c.subject);
    let _ = writeln!(out, "{indent}issuer:   {}", c.issuer);
    let _ = writeln!(
        out,
        "{indent}valid:    {} to {} ({})",
        c.not_before, c.not_after, c.validity
    );
    if !c.sans.is_empty() {
        let _ = writeln!(out, "{indent}names:    {}", c.sans.join(", "));
    }
    let _ = writeln!(out, "{indent}key:      {}", c.key);
    let usage = match &c.extended_key_usage {
        Some(list) => list.join(", "),
        None => "any (no extended key usage)".into(),
    };
    let _ = writeln!(out, "{indent}usage:    {usage}");
    let _ = writeln!(
        out,
        "{indent}CA:       {}",
        if c.is_ca { "yes" } else { "no" }
    );
    let _ = writeln!(out, "{indent}serial:   {}", c.serial);
    let _ = writeln!(out, "{indent}sha256:   {}", c.sha256);
}

/// The human-readable report.
pub(crate) fn text(reports: &[FileReport]) -> String {
    let mut out = String::new();
    for r in reports {
        let n = r.items.len();
        for (i, item) in r.items.iter().enumerate() {
            let which = if n > 1 {
                format!(" ({} of {n})", i + 1)
            } else {
                String::new()
            };
            match item {
                Item::Certificate(c) => {
                    let _ = writeln!(out, "{}: certificate{which}", r.file);
                    cert_text(&mut out, c, "  ");
                }
                Item::PrivateKey { key } => {
                    let _ = writeln!(out, "{}: private key{which}\n  key:      {key}", r.file);
                }
                Item::Csr {
                    subject,
                    key,
                    sans,
                    signature_valid,
                } => {
                    let _ = writeln!(out, "{}: certificate signing request{which}", r.file);
                    let _ = writeln!(out, "  subject:  {subject}");
                    if !sans.is_empty() {
                        let _ = writeln!(out, "  names:    {}", sans.join(", "));
                    }
                    let _ = writeln!(out, "  key:      {key}");
                    let _ = writeln!(
                        out,
                        "  signature: {}",
                        if *signature_valid { "valid" } else { "INVALID" }
                    );
                }
                Item::Crl {
                    issuer,
                    this_update,
                    next_update,
                    revoked,
                } => {
                    let _ = writeln!(out, "{}: CRL{which}", r.file);
                    let _ = writeln!(out, "  issuer:   {issuer}");
                    let _ = writeln!(
                        out,
                        "  updated:  {this_update}, next update {}",
                        next_update.as_deref().unwrap_or("not set")
                    );
                    let _ = writeln!(out, "  revoked:  {}", revoked.len());
                    for e in revoked {
                        let _ = writeln!(out, "    {} at {}", e.serial, e.revoked_at);
                    }
                }
                Item::Pkcs12 { key, certificates } => {
                    let _ = writeln!(out, "{}: PKCS#12{which}", r.file);
                    let _ = writeln!(out, "  key:      {}", key.as_deref().unwrap_or("none"));
                    for (j, c) in certificates.iter().enumerate() {
                        let _ = writeln!(out, "  certificate {} of {}:", j + 1, certificates.len());
                        cert_text(&mut out, c, "    ");
                    }
                }
            }
        }
    }
    out
}
