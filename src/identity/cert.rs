//! What a certificate says, read once from its DER: names, SANs, serial,
//! fingerprint, validity. Used for peer identities and for the load-time
//! checks of our own material.

use std::net::IpAddr;

use x509_cert::der::asn1::ObjectIdentifier;
use x509_cert::der::{Decode, Tag, Tagged};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, SubjectAltName};
use x509_cert::name::Name;
use x509_cert::Certificate;

const OID_CN: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");
const OID_O: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.10");
const OID_OU: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.11");
/// id-kp-serverAuth
pub const EKU_SERVER_AUTH: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.1");
/// id-kp-clientAuth
pub const EKU_CLIENT_AUTH: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.2");

/// The parts of a certificate that portcullis reports and checks.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CertSummary {
    /// Subject as `openssl x509 -nameopt RFC2253` prints it.
    pub subject: String,
    /// Issuer, in the same form.
    pub issuer: String,
    /// Values of the subject's CN attributes.
    pub common_names: Vec<String>,
    /// Values of the subject's O attributes.
    pub organizations: Vec<String>,
    /// Values of the subject's OU attributes.
    pub organizational_units: Vec<String>,
    /// DNS SANs.
    pub dns_sans: Vec<String>,
    /// URI SANs.
    pub uri_sans: Vec<String>,
    /// IP SANs.
    pub ip_sans: Vec<IpAddr>,
    /// email SANs.
    pub email_sans: Vec<String>,
    /// Serial number, upper-case hex.
    pub serial: String,
    /// SHA-256 of the DER, lower-case hex.
    pub sha256: String,
    /// notBefore, seconds since the Unix epoch.
    pub not_before: u64,
    /// notAfter, seconds since the Unix epoch.
    pub not_after: u64,
    /// basicConstraints CA:TRUE.
    pub is_ca: bool,
    /// Extended key usages, when the extension is present.
    #[serde(skip)]
    pub eku: Option<Vec<ObjectIdentifier>>,
}

/// A certificate that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("not a valid X.509 certificate")]
pub struct BadCertificate(#[source] x509_cert::der::Error);

impl CertSummary {
    /// Reads a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, BadCertificate> {
        let cert = Certificate::from_der(der).map_err(BadCertificate)?;
        let tbs = &cert.tbs_certificate;
        let mut s = CertSummary {
            subject: super::dn::rfc2253(&tbs.subject),
            issuer: super::dn::rfc2253(&tbs.issuer),
            common_names: attribute_values(&tbs.subject, OID_CN),
            organizations: attribute_values(&tbs.subject, OID_O),
            organizational_units: attribute_values(&tbs.subject, OID_OU),
            dns_sans: Vec::new(),
            uri_sans: Vec::new(),
            ip_sans: Vec::new(),
            email_sans: Vec::new(),
            serial: hex_upper(tbs.serial_number.as_bytes()),
            sha256: hex_lower(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der).as_ref()),
            not_before: tbs.validity.not_before.to_unix_duration().as_secs(),
            not_after: tbs.validity.not_after.to_unix_duration().as_secs(),
            is_ca: false,
            eku: None,
        };
        if let Ok(Some((_, san))) = tbs.get::<SubjectAltName>() {
            for name in san.0 {
                match name {
                    GeneralName::DnsName(n) => s.dns_sans.push(n.to_string()),
                    GeneralName::UniformResourceIdentifier(u) => s.uri_sans.push(u.to_string()),
                    GeneralName::Rfc822Name(m) => s.email_sans.push(m.to_string()),
                    GeneralName::IpAddress(ip) => {
                        let b = ip.as_bytes();
                        if let Ok(v4) = <[u8; 4]>::try_from(b) {
                            s.ip_sans.push(IpAddr::from(v4));
                        } else if let Ok(v6) = <[u8; 16]>::try_from(b) {
                            s.ip_sans.push(IpAddr::from(v6));
                        }
                    }
                    _ => {}
                }
            }
        }
        if let Ok(Some((_, bc))) = tbs.get::<BasicConstraints>() {
            s.is_ca = bc.ca;
        }
        if let Ok(Some((_, eku))) = tbs.get::<ExtendedKeyUsage>() {
            s.eku = Some(eku.0);
        }
        Ok(s)
    }

    /// Whether the certificate may be used for `usage` (no EKU = any usage).
    pub fn allows_usage(&self, usage: ObjectIdentifier) -> bool {
        self.eku.as_ref().is_none_or(|list| list.contains(&usage))
    }

    /// Whether the certificate is valid for the DNS name `host` (RFC 6125:
    /// DNS SANs, or the CN only when there are no DNS SANs; a wildcard
    /// covers exactly one left-most label). A wildcard `host` ("*.a.test")
    /// is covered only by the same wildcard.
    pub fn covers_hostname(&self, host: &str) -> bool {
        let names: &[String] = if self.dns_sans.is_empty() {
            &self.common_names
        } else {
            &self.dns_sans
        };
        names.iter().any(|n| dns_name_matches(n, host))
    }
}

/// RFC 6125 §6.4.3 matching of a presented name against a reference name.
pub fn dns_name_matches(presented: &str, reference: &str) -> bool {
    let p = presented.trim_end_matches('.').to_ascii_lowercase();
    let r = reference.trim_end_matches('.').to_ascii_lowercase();
    if p == r {
        return true;
    }
    match (p.strip_prefix("*."), r.split_once('.')) {
        (Some(suffix), Some((first, rest))) => !first.is_empty() && first != "*" && rest == suffix,
        _ => false,
    }
}

fn attribute_values(name: &Name, oid: ObjectIdentifier) -> Vec<String> {
    let mut out = Vec::new();
    for rdn in name.0.iter() {
        for atv in rdn.0.iter() {
            if atv.oid == oid {
                let v = &atv.value;
                let text = match v.tag() {
                    Tag::Utf8String
                    | Tag::PrintableString
                    | Tag::Ia5String
                    | Tag::TeletexString => String::from_utf8_lossy(v.value()).into_owned(),
                    _ => continue,
                };
                out.push(text);
            }
        }
    }
    out
}

/// Upper-case hex without separators.
pub fn hex_upper(bytes: &[u8]) -> String {
    hex_lower(bytes).to_ascii_uppercase()
}

/// Lower-case hex without separators.
pub fn hex_lower(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_cover_one_label() {
        assert!(dns_name_matches("*.a.test", "x.a.test"));
        assert!(dns_name_matches("*.A.test.", "X.a.TEST"));
        assert!(!dns_name_matches("*.a.test", "y.x.a.test"));
        assert!(!dns_name_matches("*.a.test", "a.test"));
        assert!(dns_name_matches("*.a.test", "*.a.test"));
        assert!(!dns_name_matches("x.a.test", "*.a.test"));
    }
}
