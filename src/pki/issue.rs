//! Leaf certificates: `cert issue` (a new key) and `cert sign` (a CSR's
//! key). The profile decides basic constraints, key usage and extended key
//! usage — never the CSR.

use std::net::IpAddr;

use rcgen::{
    CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose, SanType,
};

use super::ca::{random_serial, set_validity, Ca};
use super::keys::KeyType;
use super::{CsrRefusal, PkiError};

/// What a leaf is for (SPEC §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Profile {
    /// serverAuth
    Server,
    /// clientAuth
    Client,
    /// serverAuth and clientAuth
    Peer,
}

/// Options of `cert issue`.
#[derive(Debug, Clone, Default)]
pub(crate) struct IssueSpec {
    /// Common name (default: the first SAN).
    pub cn: Option<String>,
    /// DNS SANs.
    pub dns: Vec<String>,
    /// IP SANs.
    pub ip: Vec<IpAddr>,
    /// URI SANs.
    pub uri: Vec<String>,
    /// email SANs.
    pub email: Vec<String>,
    /// Organization.
    pub org: Option<String>,
    /// Organizational unit.
    pub ou: Option<String>,
    /// Validity in days.
    pub days: u32,
    /// Key type.
    pub key_type: KeyType,
}

/// A new leaf: the certificate followed by the CA's chain, and the key.
pub(crate) struct Issued {
    /// `PREFIX.crt`: leaf, then intermediates up to (not including) the root.
    pub cert_pem: String,
    /// `PREFIX.key` (PKCS#8); empty for `cert sign`.
    pub key_pem: String,
}

fn profile_usage(params: &mut CertificateParams, profile: Profile, rsa: bool) {
    params.is_ca = IsCa::ExplicitNoCa;
    let mut ku = vec![KeyUsagePurpose::DigitalSignature];
    if rsa && profile != Profile::Client {
        ku.push(KeyUsagePurpose::KeyEncipherment);
    }
    params.key_usages = ku;
    params.extended_key_usages = match profile {
        Profile::Server => vec![ExtendedKeyUsagePurpose::ServerAuth],
        Profile::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
        Profile::Peer => vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
    };
    params.use_authority_key_identifier_extension = true;
}

fn dns_ok(name: &str) -> bool {
    let n = name.strip_prefix("*.").unwrap_or(name);
    !n.is_empty()
        && n.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Issues a leaf with a new key.
pub(crate) fn issue(ca: &Ca, profile: Profile, spec: &IssueSpec) -> Result<Issued, PkiError> {
    if profile == Profile::Server && spec.dns.is_empty() && spec.ip.is_empty() {
        return Err(PkiError::Usage("a server certificate needs at least one --dns or --ip (clients check the name they connect to)"));
    }
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    for d in &spec.dns {
        if !dns_ok(d) {
            return Err(PkiError::NotA {
                flag: "--dns",
                value: d.clone(),
                kind: "a DNS name",
            });
        }
        params
            .subject_alt_names
            .push(SanType::DnsName(d.as_str().try_into()?));
    }
    for ip in &spec.ip {
        params.subject_alt_names.push(SanType::IpAddress(*ip));
    }
    for u in &spec.uri {
        if !u.contains(':') || u.chars().any(char::is_whitespace) {
            return Err(PkiError::NotA {
                flag: "--uri",
                value: u.clone(),
                kind: "a URI (for example spiffe://example.org/ns/app/sa/web)",
            });
        }
        params
            .subject_alt_names
            .push(SanType::URI(u.as_str().try_into()?));
    }
    for m in &spec.email {
        if !m.contains('@') {
            return Err(PkiError::NotA {
                flag: "--email",
                value: m.clone(),
                kind: "an email address",
            });
        }
        params
            .subject_alt_names
            .push(SanType::Rfc822Name(m.as_str().try_into()?));
    }
    let cn = match &spec.cn {
        Some(cn) => cn.clone(),
        None => spec
            .dns
            .first()
            .cloned()
            .or_else(|| spec.ip.first().map(ToString::to_string))
            .or_else(|| spec.uri.first().cloned())
            .or_else(|| spec.email.first().cloned())
            .ok_or(PkiError::Usage(
                "give --cn or at least one SAN (--dns, --ip, --uri, --email)",
            ))?,
    };
    params.distinguished_name = DistinguishedName::new();
    if let Some(o) = &spec.org {
        params
            .distinguished_name
            .push(DnType::OrganizationName, o.as_str());
    }
    if let Some(ou) = &spec.ou {
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, ou.as_str());
    }
    params
        .distinguished_name
        .push(DnType::CommonName, cn.as_str());
    let rsa = matches!(
        spec.key_type,
        KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096
    );
    profile_usage(&mut params, profile, rsa);
    set_validity(&mut params, spec.days);
    params.serial_number = Some(random_serial()?);
    let key = spec.key_type.generate()?;
    let cert = params.signed_by(&key, &ca.issuer)?;
    Ok(Issued {
        cert_pem: format!("{}{}", cert.pem(), ca.chain_pem),
        key_pem: key.serialize_pem(),
    })
}

/// Whether the DER writer under rcgen (yasna) writes `s` as a
/// PrintableString: it accepts a narrower set than X.680 (no `?`), and
/// panics on the rest.
pub(crate) fn printable_for_writer(s: &str) -> bool {
    s.bytes().all(|b| {
        b == b' '
            || (b'\''..=b':').contains(&b) && b != b'*'
            || b == b'='
            || b.is_ascii_alphabetic()
    })
}

/// The CSR's subject, with a PrintableString value that the writer cannot
/// write (`a?b`, valid X.680) carried as a UTF8String of the same text:
/// the subject reads the same (RFC 5280 §7.1 compares names after
/// normalization, whatever the string type).
fn writable_dn(dn: &rcgen::DistinguishedName) -> rcgen::DistinguishedName {
    let mut out = rcgen::DistinguishedName::new();
    for (kind, value) in dn.iter() {
        let value = match value {
            rcgen::DnValue::PrintableString(p) if !printable_for_writer(p.as_str()) => {
                rcgen::DnValue::Utf8String(p.as_str().to_string())
            }
            other => other.clone(),
        };
        out.push(kind.clone(), value);
    }
    out
}

/// Signs a CSR (PEM or DER). The CSR's signature is verified; its subject and
/// SANs are kept; basic constraints and key usages come from the profile
/// only, so a CSR asking for CA:TRUE still gets a leaf.
pub(crate) fn sign(ca: &Ca, profile: Profile, csr: &[u8], days: u32) -> Result<Issued, PkiError> {
    let parsed = if csr.starts_with(b"-----") {
        let text = std::str::from_utf8(csr).map_err(|_| CsrRefusal::NotText)?;
        CertificateSigningRequestParams::from_pem(text)
    } else {
        CertificateSigningRequestParams::from_der(&csr.to_vec().into())
    };
    let req = parsed.map_err(|e| match e {
        rcgen::Error::InvalidCertificationRequestSignature => CsrRefusal::Signature,
        rcgen::Error::UnsupportedExtension => CsrRefusal::Extension,
        other => CsrRefusal::Rcgen(other),
    })?;
    // The key's algorithm comes from the CSR's SubjectPublicKeyInfo, not
    // from its signature algorithm (a P-384 key may sign with SHA-256).
    let der = if csr.starts_with(b"-----") {
        pem::parse(csr)
            .map(|p| p.into_contents())
            .map_err(|_| CsrRefusal::Pem)?
    } else {
        csr.to_vec()
    };
    let spki = {
        use x509_cert::der::{Decode, Encode};
        let r = x509_cert::request::CertReq::from_der(&der).map_err(CsrRefusal::Der)?;
        // rcgen keeps one value per attribute type: a subject with two CNs
        // (or two OUs) would be signed with only one of them, a subject
        // other than the one the requester and a reviewer saw.
        let asked: usize = r.info.subject.0.iter().map(|rdn| rdn.0.len()).sum();
        if asked != req.params.distinguished_name.iter().count() {
            return Err(CsrRefusal::RepeatedAttribute.into());
        }
        r.info.public_key.to_der().map_err(CsrRefusal::Key)?
    };
    let public_key =
        rcgen::SubjectPublicKeyInfo::from_der(&spki).map_err(|_| CsrRefusal::KeyType)?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = writable_dn(&req.params.distinguished_name);
    params.subject_alt_names = req.params.subject_alt_names.clone();
    if profile == Profile::Server && params.subject_alt_names.is_empty() {
        return Err(CsrRefusal::NoName.into());
    }
    let alg = rcgen::PublicKeyData::algorithm(&public_key);
    let rsa = [
        &rcgen::PKCS_RSA_SHA256,
        &rcgen::PKCS_RSA_SHA384,
        &rcgen::PKCS_RSA_SHA512,
    ]
    .iter()
    .any(|a| **a == *alg);
    profile_usage(&mut params, profile, rsa);
    set_validity(&mut params, days);
    params.serial_number = Some(random_serial()?);
    let cert = params.signed_by(&public_key, &ca.issuer)?;
    Ok(Issued {
        cert_pem: format!("{}{}", cert.pem(), ca.chain_pem),
        key_pem: String::new(),
    })
}
